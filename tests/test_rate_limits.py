"""Rate limits: the exchange's own "too many requests" answers, and the client-side throttle
(_kit.Throttle) that holds every robot sharing a key under the exchange's documented limits
(the module's RATE_LIMITS table). No assertion here depends on how fast the machine is: the
throttle is driven by a fake clock, or by limits so tight that the count decides."""
import random
import threading

import pytest

from exchanges import EXCHANGES, _kit
from tests.conftest import PluginClient


@pytest.fixture(autouse=True)
def quick_waits(monkeypatch):
    monkeypatch.setattr(_kit, "RATE_LIMIT_WAIT", 0.01)


def module_of(exchange):
    return EXCHANGES[exchange.exchange.lower()]


def endpoint_of(exchange, method, **params):
    """The RATE_LIMITS key ("VERB /path") of the one request `method` sends, found by calling it."""
    before = len(exchange.fake.requests)
    exchange.data(method, **params)
    verb, target, _ = exchange.fake.requests[before]
    return f"{verb} {target.split('?')[0]}"


def requests_to(exchange, endpoint):
    return [r for r in exchange.fake.requests if f"{r[0]} {r[1].split('?')[0]}" == endpoint]


# ---------------------------------------------------------------------------- the exchange says "slow down"

def test_every_exchange_documents_its_limits(exchange):
    limits = module_of(exchange).RATE_LIMITS
    for method, params in [("ticker", {"symbol": "BTC_USDT"}), ("accounts", {})]:
        assert endpoint_of(exchange, method, **params) in limits
    assert f"POST {exchange.fake.ORDER_PATH}" in limits
    assert all(isinstance(n, int) and n > 0 and s > 0 for n, s in limits.values())


def test_rate_limited_read_waits_once_then_names_the_limit(exchange):
    endpoint = endpoint_of(exchange, "ticker", symbol="BTC_USDT")
    exchange.fake.inject("429", times=2)
    error = exchange.error("ticker", symbol="BTC_USDT")
    requests, seconds = module_of(exchange).RATE_LIMITS[endpoint]
    assert error.startswith(f"{exchange.fake.NAME} rate limit reached for {endpoint}")
    assert f"{requests} requests per {seconds:g} s" in error
    assert len(requests_to(exchange, endpoint)) == 3            # the probe, the call, its one retry
    assert exchange.data("ticker", symbol="BTC_USDT")


def test_one_rate_limited_answer_on_a_read_is_waited_out(exchange):
    exchange.fake.inject("429")
    assert exchange.data("accounts")


def test_rate_limited_order_is_not_resent(exchange):
    exchange.fake.inject("429", path=exchange.fake.ORDER_PATH, method="POST")
    error = exchange.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")
    assert "rate limit reached for POST" in error
    assert exchange.fake.engine.orders == {}
    assert len(requests_to(exchange, f"POST {exchange.fake.ORDER_PATH}")) == 1


def test_http_429_without_a_json_body_is_a_rate_limit_too(exchange):
    original = exchange.fake.rate_limited
    exchange.fake.rate_limited = lambda: (429, "<html>slow down</html>")
    exchange.fake.inject("429", times=2)
    try:
        assert "rate limit reached" in exchange.error("ticker", symbol="BTC_USDT")
    finally:
        exchange.fake.rate_limited = original


# ---------------------------------------------------------------------------- the throttle in the plugin

def throttled(exchange, monkeypatch, endpoint, limit, throttle=None):
    monkeypatch.setitem(module_of(exchange).RATE_LIMITS, endpoint, limit)
    exchange.server.settings.throttle = throttle or _kit.Throttle()
    exchange.fake.requests.clear()


def test_robots_sharing_a_key_never_exceed_the_limit(exchange, monkeypatch):
    """Eight robots, one key, a limit of 5 requests per 1000 s: exactly 5 reach the exchange;
    every other call is answered at once with an error naming the limit."""
    endpoint = endpoint_of(exchange, "ticker", symbol="BTC_USDT")
    throttled(exchange, monkeypatch, endpoint, (5, 1000.0))
    answers, lock = [], threading.Lock()

    def robot():
        client = PluginClient(exchange.url, exchange.exchange, exchange.access_key, exchange.secret_key)
        for _ in range(3):
            answer = client.call("ticker", symbol="BTC_USDT")
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
    assert all("limit of 5 requests per 1000 s" in e and endpoint in e for e in errors)


def test_throttle_waits_briefly_instead_of_failing(exchange, monkeypatch):
    endpoint = endpoint_of(exchange, "ticker", symbol="BTC_USDT")
    throttled(exchange, monkeypatch, endpoint, (2, 0.05))
    for _ in range(6):
        assert exchange.data("ticker", symbol="BTC_USDT")
    assert len(requests_to(exchange, endpoint)) == 6


def test_private_limits_are_per_key(exchange, monkeypatch):
    endpoint = endpoint_of(exchange, "accounts")
    throttled(exchange, monkeypatch, endpoint, (1, 1000.0))
    assert exchange.data("accounts")
    assert "held back by this plugin" in exchange.error("accounts")
    other = PluginClient(exchange.url, exchange.exchange, "other-key", exchange.secret_key)
    assert "held back" not in other.error("accounts")            # reached the exchange, refused there
    assert len(requests_to(exchange, endpoint)) == 2


# ---------------------------------------------------------------------------- Throttle itself, on a fake clock

class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 9))
        self.now += seconds


def test_throttle_sleeps_until_the_oldest_call_leaves_the_window():
    clock = FakeClock()
    throttle = _kit.Throttle(max_wait=5, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        throttle.wait("bucket", 2, 1.0, "X GET /t")
    assert clock.slept == [1.0, 1.0] and clock.now == 2.0


def test_throttle_refuses_a_wait_longer_than_max_wait():
    clock = FakeClock()
    throttle = _kit.Throttle(max_wait=0.5, clock=clock, sleep=clock.sleep)
    throttle.wait("bucket", 1, 2.0, "X GET /t")
    with pytest.raises(_kit.PluginError, match=r"X GET /t: over the exchange's limit of 1 requests per 2 s.*2\.0 s"):
        throttle.wait("bucket", 1, 2.0, "X GET /t")
    clock.now = 2.0
    throttle.wait("bucket", 1, 2.0, "X GET /t")                  # free again, nothing was reserved
    assert clock.slept == []


def test_throttle_buckets_are_independent():
    clock = FakeClock()
    throttle = _kit.Throttle(max_wait=0, clock=clock, sleep=clock.sleep)
    throttle.wait("a", 1, 1.0, "a")
    throttle.wait("b", 1, 1.0, "b")
    with pytest.raises(_kit.PluginError):
        throttle.wait("a", 1, 1.0, "a")


@pytest.mark.parametrize("seed", range(5))
def test_throttle_never_lets_more_than_the_limit_into_any_window(seed):
    """Random arrivals (bursts and gaps): the send times granted never put more than `limit`
    calls into any window of `seconds`."""
    rng = random.Random(seed)
    limit, seconds = rng.randint(1, 6), rng.choice([0.5, 1.0, 2.0])
    clock, sends = FakeClock(), []
    throttle = _kit.Throttle(max_wait=10 * seconds, clock=clock, sleep=clock.sleep)
    for _ in range(200):
        clock.now += rng.choice([0, 0, 0, rng.random() * seconds])
        throttle.wait("bucket", limit, seconds, "X")
        sends.append(clock.now)
    for i, start in enumerate(sends):
        inside = [t for t in sends[i:] if t < start + seconds - 1e-9]
        assert len(inside) <= limit
