"""Many robots on one plugin, throttle on (issue #13): a burst of orders larger than the limit is
all placed, in turn, and the fake exchange, which records when each request arrived, never sees
more than the limit in any window. Limits are made small so the tests stay short; no assertion
depends on how fast the machine is."""
import threading

import pytest

import fmz_plugin
from exchanges import EXCHANGES, _kit
from tests.conftest import PluginClient

pytestmark = pytest.mark.repo_only        # sets the plugin's throttle and limits in this process


def module_of(exchange):
    return EXCHANGES[exchange.exchange.lower()]


def throttled(exchange, monkeypatch, endpoint, limit, max_wait=30.0):
    """Throttle on in the plugin serving `exchange`, with `limit` for `endpoint`."""
    monkeypatch.setitem(module_of(exchange).RATE_LIMITS, endpoint, limit)
    exchange.server.settings.throttle = _kit.Throttle()
    exchange.server.settings.max_wait = max_wait


def robots(exchange, count, work):
    """`count` robots, each with a connection of its own, running `work(client, n)`; their
    answers, in no particular order."""
    answers, lock = [], threading.Lock()

    def robot(n):
        client = PluginClient(exchange.url, exchange.exchange, exchange.access_key, exchange.secret_key)
        for answer in work(client, n):
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=robot, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_burst_larger_than_the_limit_is_all_placed_and_never_over_the_limit(exchange, monkeypatch):
    """Four robots place 3 orders each under a limit of 4 orders per 0.3 s: all 12 are placed
    (none refused), and no 0.3 s at the exchange saw more than 4 of them arrive."""
    exchange.data("markets")                          # instruments cached: an order is one request
    order = f"POST {exchange.fake.ORDER_PATH}"
    throttled(exchange, monkeypatch, order, (4, 0.3))

    def place(client, n):
        return [client.call("trade", symbol="BTC_USDT", type="buy", price=40000 - 10 * (3 * n + i),
                            amount="0.001") for i in range(3)]

    answers = robots(exchange, 4, place)
    assert [a for a in answers if "error" in a] == []
    assert len({a["data"]["id"] for a in answers}) == 12
    assert len(exchange.fake.engine.orders) == 12
    assert exchange.fake.most_in_window(0.3, "POST", exchange.fake.ORDER_PATH) <= 4


def test_a_call_that_cannot_go_within_max_wait_is_refused_naming_the_limit(exchange, monkeypatch):
    exchange.data("accounts")
    endpoint = f"{exchange.fake.requests[-1][0]} {exchange.fake.requests[-1][1].split('?')[0]}"
    throttled(exchange, monkeypatch, endpoint, (1, 60.0), max_wait=0.5)
    assert exchange.data("accounts")
    error = exchange.error("accounts")
    assert error.startswith(f"{exchange.fake.NAME} {endpoint}: not sent")
    assert "1 requests per 60 s" in error and "0.5 s" in error


def test_the_listen_backlog_holds_a_burst_of_robots():
    assert fmz_plugin.Server.request_queue_size >= 128
