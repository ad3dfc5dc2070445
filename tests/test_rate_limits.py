"""Rate limits: the exchange's own "too many requests" answers, and the client-side throttle
(_throttle.Throttle) that holds every robot sharing a key under the exchange's documented limits
(the module's RATE_LIMITS table). No assertion here depends on how fast the machine is: the
throttle is driven by a fake clock, or by limits so tight that the count decides."""
import random
import threading

import pytest

from exchanges import EXCHANGES, _kit, _throttle
from tests.conftest import PluginClient


# These set the plugin's settings and _kit's waits in this process: not run against the bundle.
pytestmark = pytest.mark.repo_only


@pytest.fixture(autouse=True)
def quick_waits(monkeypatch):
    monkeypatch.setattr(_kit, "RATE_LIMIT_WAIT", 0.01)


def module_of(exchange):
    return EXCHANGES[exchange.exchange.lower()]


def endpoint_of(exchange, method, **params):
    """The RATE_LIMITS key ("VERB /path") of the first request `method` sends once the markets
    cache is warm (Alpaca's first call loads the asset list first), found by calling it twice."""
    exchange.data(method, **params)
    before = len(exchange.fake.requests)
    exchange.data(method, **params)
    verb, target, _ = exchange.fake.requests[before]
    return f"{verb} {target.split('?')[0]}"


def limits_for(exchange, endpoint):
    """The Limits of RATE_LIMITS for one "VERB /path", through a template such as
    "GET /v2/{market}/book" where the path has a part that varies."""
    return _throttle.endpoint_limits(module_of(exchange).RATE_LIMITS, *endpoint.split(" ", 1))[1]


def requests_to(exchange, endpoint):
    return [r for r in exchange.fake.requests if f"{r[0]} {r[1].split('?')[0]}" == endpoint]


# ---------------------------------------------------------------------------- the exchange says "slow down"

def test_every_exchange_documents_its_limits(exchange):
    limits = module_of(exchange).RATE_LIMITS
    for method, params in [("ticker", {"symbol": exchange.fake.SYMBOL}), ("accounts", {})]:
        assert limits_for(exchange, endpoint_of(exchange, method, **params))
    assert limits_for(exchange, f"POST {exchange.fake.ORDER_PATH}")
    for entry in limits.values():
        for limit in _throttle.limits_of(entry):
            assert isinstance(limit.requests, int) and limit.requests > 0 and limit.seconds > 0
            assert limit.per in (None, "ip", "key") or limit.per.startswith(("ip+", "key+"))


def test_rate_limited_read_waits_once_then_names_the_limit(exchange):
    endpoint = endpoint_of(exchange, "ticker", symbol=exchange.fake.SYMBOL)
    probes = len(requests_to(exchange, endpoint))
    exchange.fake.inject("429", times=2)
    error = exchange.error("ticker", symbol=exchange.fake.SYMBOL)
    limit = limits_for(exchange, endpoint)[0]
    assert error.startswith(f"{exchange.fake.NAME} rate limit reached for {endpoint}")
    assert f"{exchange.fake.NAME} allows {limit.describe()}" in error
    assert len(requests_to(exchange, endpoint)) == probes + 2   # the call and its one retry
    assert exchange.data("ticker", symbol=exchange.fake.SYMBOL)


def test_one_rate_limited_answer_on_a_read_is_waited_out(exchange):
    exchange.fake.inject("429")
    assert exchange.data("accounts")


def test_rate_limited_order_is_not_resent(exchange):
    exchange.fake.inject("429", path=exchange.fake.ORDER_PATH, method="POST")
    error = exchange.error("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    assert "rate limit reached for POST" in error
    assert exchange.fake.engine.orders == {}
    assert len(requests_to(exchange, f"POST {exchange.fake.ORDER_PATH}")) == 1


def test_http_429_without_a_json_body_is_a_rate_limit_too(exchange):
    original = exchange.fake.rate_limited
    exchange.fake.rate_limited = lambda: (429, "<html>slow down</html>")
    exchange.fake.inject("429", times=2)
    try:
        assert "rate limit reached" in exchange.error("ticker", symbol=exchange.fake.SYMBOL)
    finally:
        exchange.fake.rate_limited = original


# ---------------------------------------------------------------------------- the throttle in the plugin

def throttled(exchange, monkeypatch, endpoint, limit, throttle=None):
    monkeypatch.setitem(module_of(exchange).RATE_LIMITS, endpoint, limit)
    exchange.server.settings.throttle = throttle or _throttle.Throttle()
    exchange.fake.requests.clear()


def test_robots_sharing_a_key_never_exceed_the_limit(exchange, monkeypatch):
    """Eight robots, one key, a limit of 5 requests per 1000 s: exactly 5 reach the exchange;
    every other call, whose turn could not come within --max-wait, is answered at once with an
    error naming the limit."""
    endpoint = endpoint_of(exchange, "ticker", symbol=exchange.fake.SYMBOL)
    throttled(exchange, monkeypatch, endpoint, (5, 1000.0))
    exchange.server.settings.shared_reads = None          # each robot's ticker a call of its own
    answers, lock = [], threading.Lock()

    def robot():
        client = PluginClient(exchange.url, exchange.exchange, exchange.access_key, exchange.secret_key)
        for _ in range(3):
            answer = client.call("ticker", symbol=exchange.fake.SYMBOL)
            with lock:
                answers.append(answer)

    robots = [threading.Thread(target=robot) for _ in range(8)]
    for thread in robots:
        thread.start()
    for thread in robots:
        thread.join()
    errors = [a["error"] for a in answers if "error" in a]
    assert len(answers) == 24 and len(errors) == 19
    assert len(requests_to(exchange, endpoint)) == 5
    assert all("limit of 5 requests per 1000 s" in e and endpoint in e and "not sent" in e for e in errors)


def test_throttle_waits_briefly_instead_of_failing(exchange, monkeypatch):
    endpoint = endpoint_of(exchange, "ticker", symbol=exchange.fake.SYMBOL)
    throttled(exchange, monkeypatch, endpoint, (2, 0.05))
    for _ in range(6):
        assert exchange.data("ticker", symbol=exchange.fake.SYMBOL)
    assert len(requests_to(exchange, endpoint)) == 6


def test_private_limits_are_per_key(exchange, monkeypatch):
    endpoint = endpoint_of(exchange, "accounts")
    throttled(exchange, monkeypatch, endpoint, (1, 1000.0))
    assert exchange.data("accounts")
    assert "held back by this plugin" in exchange.error("accounts")
    other = PluginClient(exchange.url, exchange.exchange, "other-key-".ljust(64, "0"), exchange.secret_key)
    other.error("accounts")              # refused by the exchange (Coinbase's 401 is then resent after a
    assert len(requests_to(exchange, endpoint)) == 2       # clock check, and that resend is held back)
