"""_throttle.Throttle on its own: waiting in line instead of refusing, counting a call from the moment
it is let go until a window after its answer, failing only what cannot go within max_wait, and
forgetting idle buckets. Driven by a fake clock (no sleeping), or by real threads whose order,
not speed, is asserted."""
import random
import threading
import time

import pytest

from exchanges import _kit, _throttle
from exchanges._throttle import Limit, Refused, Throttle


class FakeClock:
    """time.monotonic stand-in: waiting advances it, so a wait costs no real time."""

    def __init__(self):
        self.now, self.waited = 0.0, []

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.waited.append(round(seconds, 9))
        self.now += seconds


def on_fake_clock(max_wait=5.0, margin=0.0):
    clock = FakeClock()
    return Throttle(max_wait=max_wait, margin=margin, clock=clock, wait=clock.wait), clock


def call(throttle, limit, key="bucket", max_wait=None):
    """Let one call go and answer it at once; returns the time it was let go."""
    turn = throttle.turn([(key, limit, limit.units({}))], "X GET /t", max_wait)
    went = throttle.clock()
    turn.done()
    return went


def test_a_burst_waits_in_line_instead_of_failing():
    """Paced: one every half second, not two at once and a stall, again and again."""
    throttle, clock = on_fake_clock(max_wait=10)
    went = [call(throttle, Limit(2, 1.0)) for _ in range(6)]
    assert went == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_a_steady_load_is_spread_evenly_through_the_window():
    """OKX's 20 tickers per 2 s, asked without pause: one every 0.1 s from the first, never the
    whole limit at once and a stall until the window clears."""
    throttle, clock = on_fake_clock(max_wait=10)
    limit = Limit(20, 2.0)
    went = [call(throttle, limit) for _ in range(100)]
    assert went[0] == 0.0 and {round(b - a, 9) for a, b in zip(went, went[1:])} == {0.1}
    for i, start in enumerate(went):
        assert sum(1 for t in went[i:] if t < start + limit.seconds - 1e-9) <= limit.requests


def test_paced_calls_with_latency_stay_even_and_under_the_limit():
    """Answers taking 50 ms (each call counted until a window after it): no call waits more than
    one pace and one answer after the one before it (no stall until the window clears), and the
    count stays under the limit however late within its flight each call arrived."""
    throttle, clock = on_fake_clock(max_wait=10)
    limit = Limit(20, 2.0)
    went = []
    for _ in range(200):
        turn = throttle.turn([("b", limit, 1)], "X")
        went.append(clock.now)
        clock.now += 0.05
        turn.done()
    gaps = [b - a for a, b in zip(went, went[1:])]
    assert max(gaps) <= 0.1 + 0.05 + 1e-9
    answered = [t + 0.05 for t in went]
    for i, late in enumerate(answered):
        assert sum(1 for t in went[i + 1:] if t < late + limit.seconds - 1e-9) + 1 <= limit.requests


def test_an_urgent_call_goes_before_the_reads_waiting_in_line():
    """An order asking while a read waits for its turn goes first (#23: orders starved by reads)."""
    throttle, clock = on_fake_clock(max_wait=10)
    weight = Limit(100, 10.0)
    call(throttle, weight.costing(100), "w")      # the whole limit: the next call waits 10 s
    went = []

    def wait(seconds):                            # while the next read waits, an order asks
        if not went:
            went.append("order asks")
            turn = throttle.turn([("w", weight, 1)], "order", urgent=True)
            went.append("order")
            turn.done()
        clock.now += seconds

    throttle.wait_for_change = wait
    throttle.turn([("w", weight.costing(50), 50)], "read").done()
    went.append("read")
    assert went == ["order asks", "order", "read"]


def test_reads_waiting_in_line_are_refused_before_an_urgent_call_is():
    """Eight depth reads of 50 waiting (42 s of pace): a ninth read cannot go within 3 s and is
    refused; an order is counted behind the urgent calls alone, and goes at once."""
    throttle, clock = on_fake_clock(max_wait=3)
    weight = Limit(100, 10.0)
    bucket = throttle._bucket("w", weight, clock.now)
    bucket.queued_units = 8 * 50
    with pytest.raises(Refused):
        throttle.turn([("w", weight, 50)], "read")
    throttle.turn([("w", weight, 1)], "order", urgent=True).done()
    assert clock.waited == []


def test_reads_leave_a_tenth_of_a_shared_budget_to_orders():
    """A budget several endpoints share (Binance's request weight): reads fill 90 of 100, then
    wait for the window; an order still goes at once."""
    throttle, clock = on_fake_clock(max_wait=1)
    weight = Limit(100, 60.0, pool="request weight")
    for _ in range(9):
        call(throttle, weight.costing(10), "w")
    with pytest.raises(Refused):
        call(throttle, weight.costing(10), "w")
    throttle.turn([("w", weight, 10)], "order", urgent=True).done()
    assert clock.now == 0.0


def test_a_call_counts_until_a_window_after_its_answer():
    """The exchange counts arrivals: a call that took 0.3 s to come back may have arrived late,
    so its window starts when its answer came, not when it was let go."""
    throttle, clock = on_fake_clock()
    limit = Limit(1, 1.0)
    turn = throttle.turn([("b", limit, 1)], "X")
    clock.now = 0.3
    turn.done()
    assert call(throttle, limit, "b") == 1.3


def test_calls_in_flight_count_in_every_window():
    throttle, clock = on_fake_clock(max_wait=0.5)
    limit = Limit(2, 1.0)
    turns = [throttle.turn([("b", limit, 1)], "X") for _ in range(2)]
    clock.now = 100.0                       # long after: still in flight, still counted
    with pytest.raises(Refused, match="not sent"):
        throttle.turn([("b", limit, 1)], "X")
    turns[0].done()
    assert call(throttle, limit, "b", max_wait=5) == 101.0


def test_the_window_has_a_safety_margin():
    throttle, clock = on_fake_clock(margin=0.05)
    limit = Limit(1, 2.0)
    call(throttle, limit)
    assert call(throttle, limit) == 2.05


def test_a_call_that_cannot_go_within_max_wait_fails_at_once_naming_the_limit():
    throttle, clock = on_fake_clock(max_wait=0.5)
    limit = Limit(1, 2.0, per="key")
    call(throttle, limit)
    with pytest.raises(Refused, match=r"X GET /t: not sent, its turn under the exchange's limit of "
                                          r"1 requests per 2 s per API key cannot come within 0.5 s") as error:
        call(throttle, limit)
    assert clock.waited == []
    clock.now = 2.0
    assert call(throttle, limit) == 2.0      # nothing was reserved by the refused call


def test_max_wait_counts_the_calls_waiting_ahead():
    """Ten calls in line for 2 per second: the 9th goes at 4 s, so with 3 s to wait it fails."""
    throttle, clock = on_fake_clock()
    limit = Limit(2, 1.0)
    for _ in range(2):
        call(throttle, limit)
    bucket = throttle.buckets["bucket"]
    bucket.queued_units = 6                  # six calls of other threads waiting ahead
    with pytest.raises(Refused, match="cannot come within 3 s"):
        throttle.turn([("bucket", limit, 1)], "X", max_wait=3)
    assert bucket.lower_bound(clock.now, 1) == 4.0


def test_a_call_heavier_than_the_whole_limit_fails_at_once():
    throttle, clock = on_fake_clock()
    with pytest.raises(Refused, match="limit of 10 spot weight per 60 s"):
        throttle.turn([("w", Limit(10, 60, pool="spot weight"), 11)], "X")


def test_weights_add_up_against_one_budget():
    throttle, clock = on_fake_clock(max_wait=100)
    weight = Limit(10, 60.0, per="ip", pool="request weight")
    assert [call(throttle, weight.costing(4), key="ip") for _ in range(3)] == [0.0, 24.0, 60.0]   # paced, then the window


def test_a_call_under_two_limits_waits_for_both():
    throttle, clock = on_fake_clock(max_wait=100)
    orders, weight = Limit(1, 10.0), Limit(3, 60.0)
    went = []
    for _ in range(4):
        turn = throttle.turn([("orders", orders, 1), ("weight", weight, 1)], "X")
        went.append(clock.now)
        turn.done()
    assert went == [0.0, 20.0, 40.0, 60.0]         # paced by the slower, then the weight's window


def test_the_exchange_count_from_its_headers_is_followed():
    """The exchange says 9 of 10 are used (another program on this IP): one more fits (at its
    pace), then the next waits for a window."""
    throttle, clock = on_fake_clock(max_wait=100)
    weight = Limit(10, 60.0, per="ip", used=lambda headers: int(headers["used"]))
    turn = throttle.turn([("w", weight, 1)], "X")
    turn.observe({"used": "9"})
    turn.done()
    assert call(throttle, weight, "w") == 6.0
    assert call(throttle, weight, "w") == 60.0


def test_buckets_are_independent():
    throttle, clock = on_fake_clock(max_wait=0)
    call(throttle, Limit(1, 1.0), "a")
    call(throttle, Limit(1, 1.0), "b")
    with pytest.raises(Refused):
        call(throttle, Limit(1, 1.0), "a")


def test_idle_buckets_are_forgotten():
    """60,000 keys seen once each: once their windows have passed, the next call drops them."""
    throttle, clock = on_fake_clock()
    limit = Limit(5, 2.0)
    for n in range(60_000):
        call(throttle, limit, key=("OKX", "url", f"key{n}", "GET /t"))
    assert len(throttle.buckets) == 60_000
    clock.now += 2.0 + _throttle.THROTTLE_SWEEP
    call(throttle, limit, key="fresh")
    assert list(throttle.buckets) == ["fresh"]


def test_a_bucket_still_counting_is_kept():
    throttle, clock = on_fake_clock()
    call(throttle, Limit(1, 60.0), "slow")
    clock.now += _throttle.THROTTLE_SWEEP
    call(throttle, Limit(1, 1.0), "other")
    assert "slow" in throttle.buckets


@pytest.mark.parametrize("seed", range(5))
def test_never_more_than_the_limit_in_any_window(seed):
    """Random arrivals (bursts and gaps) and random answer times: counted from their answers,
    the calls let go never put more than `limit` arrivals into any window, wherever between
    being let go and being answered each one arrived."""
    rng = random.Random(seed)
    limit = Limit(rng.randint(1, 6), rng.choice([0.5, 1.0, 2.0]))
    throttle, clock = on_fake_clock(max_wait=1000)
    latest_arrivals, earliest_arrivals = [], []
    for _ in range(200):
        clock.now += rng.choice([0, 0, 0, rng.random() * limit.seconds])
        turn = throttle.turn([("b", limit, 1)], "X")
        earliest_arrivals.append(clock.now)
        clock.now += rng.random() * 0.1          # the call travels, then is answered
        latest_arrivals.append(clock.now)
        turn.done()
    # the worst case for the exchange: every call arrived as late as possible, the next ones early
    for i, late in enumerate(latest_arrivals):
        inside = [t for t in earliest_arrivals[i + 1:] if t < late + limit.seconds - 1e-9]
        assert len(inside) + 1 <= limit.requests


def test_calls_go_in_the_order_they_came():
    """Real threads, a limit of one call per 20 ms: each joins the line only once the one before
    it is in line, and they are let go in exactly that order."""
    throttle = Throttle(max_wait=30, margin=0)
    limit = Limit(1, 0.02)
    call(throttle, limit)
    order, lock = [], threading.Lock()

    def robot(n):
        turn = throttle.turn([("bucket", limit, 1)], "X")
        with lock:
            order.append(n)
        turn.done()

    threads = []
    for n in range(8):
        threads.append(threading.Thread(target=robot, args=(n,)))
        threads[-1].start()
        with throttle.changed:
            assert throttle.changed.wait_for(
                lambda: n < len(order) + len(throttle.buckets["bucket"].queue), timeout=10)
    for thread in threads:
        thread.join()
    assert order == list(range(8))


def test_a_plain_tuple_is_one_limit_counted_per_key_or_per_ip():
    assert [(l.requests, l.seconds, l.per) for l in _throttle.limits_of((20, 2.0))] == [(20, 2.0, None)]
    many = [Limit(1, 1), Limit(2, 2)]
    assert _throttle.limits_of(many) == many and _throttle.limits_of(None) == []

    class Exchange:
        NAME, BASE_URL, HOSTS = "X", "https://x", {}

    api = _kit.Api(Exchange, "the-key", "s")
    endpoint, params = "POST /order", {"instId": "BTC-USDT"}
    assert api._bucket_key(Limit(1, 1), endpoint, params, True, None) == ("X", "https://x", ("the-key", ""), endpoint)
    assert api._bucket_key(Limit(1, 1), endpoint, params, False, None) == ("X", "https://x", ("", ""), endpoint)
    assert api._bucket_key(Limit(1, 1, per="key+instId"), endpoint, params, True, None)[2] == ("the-key", "BTC-USDT")
    assert api._bucket_key(Limit(1, 1, per="ip", pool="w"), endpoint, params, True, None)[2:] == (("", ""), "w")


def test_the_api_raises_a_refusal_as_a_rate_limited_plugin_error():
    class Exchange:
        NAME, BASE_URL, HOSTS, RATE_LIMITS = "X", "https://x", {}, {"GET /t": (1, 2.0)}

    clock = FakeClock()
    api = _kit.Api(Exchange, "key", "s", throttle=Throttle(max_wait=0.5, clock=clock, wait=clock.wait))
    api._wait_for_turn(_kit.Request("GET", "/t"), {}, False, None)
    with pytest.raises(_kit.PluginError, match="X GET /t: not sent, its turn") as error:
        api._wait_for_turn(_kit.Request("GET", "/t"), {}, False, None)
    assert error.value.rate_limited and not error.value.ambiguous


def test_max_wait_is_a_flag_and_a_strategy_parameter():
    import fmz_plugin
    assert fmz_plugin.settings_of(fmz_plugin.parse_args([])).max_wait == _throttle.THROTTLE_MAX_WAIT == 10
    assert fmz_plugin.settings_of(fmz_plugin.parse_args(["--max-wait", "2.5"])).max_wait == 2.5
    with pytest.raises(SystemExit):
        fmz_plugin.parse_args(["--max-wait", "-1"])
    argv = fmz_plugin.strategy_argv({"MaxWait": 3.0})
    assert argv[argv.index("--max-wait") + 1] == "3"


def test_a_templated_key_counts_every_path_it_matches_as_one_endpoint():
    table = {"GET /v2/{market}/book": Limit(10, 1.0, per="ip"), "DELETE /v2/orders/{id}": (5, 1.0),
             "GET /v2/ticker": (20, 1.0)}
    assert _throttle.endpoint_limits(table, "GET", "/v2/ticker")[0] == "GET /v2/ticker"
    key, limits, in_path = _throttle.endpoint_limits(table, "GET", "/v2/BTC-EUR/book")
    assert (key, limits[0].requests, in_path) == ("GET /v2/{market}/book", 10, {"market": "BTC-EUR"})
    assert _throttle.endpoint_limits(table, "DELETE", "/v2/orders/abc-123")[2] == {"id": "abc-123"}
    assert _throttle.endpoint_limits(table, "GET", "/v2/BTC-EUR/book/extra")[1] == []
    assert _throttle.endpoint_limits(table, "POST", "/v2/BTC-EUR/book")[1] == []

    class Exchange:
        NAME, BASE_URL, HOSTS, RATE_LIMITS = "X", "https://x", {}, table

    clock = FakeClock()
    api = _kit.Api(Exchange, "key", "s", throttle=Throttle(clock=clock, wait=clock.wait))
    for market in ("BTC-EUR", "ETH-EUR"):
        request = _kit.Request("GET", f"/v2/{market}/book")
        api._wait_for_turn(request, {}, False, None).done()
    assert list(api.throttle.buckets) == [("X", "https://x", ("", ""), "GET /v2/{market}/book")]


def test_a_call_held_by_one_limit_holds_up_no_call_under_another():
    """An order waits for the order limit; meanwhile a read under the weight budget it also
    falls under goes at once: the order holds no place in the weight budget's line."""
    throttle, clock = on_fake_clock(max_wait=1)      # a second to wait: the weight lets its burst go
    weight, orders = Limit(100, 60.0), Limit(1, 10.0)
    order = [("a weight", weight, 1), ("b orders", orders, 1)]      # the weight is taken first
    throttle.turn([("a weight", weight, 1)], "read").done()
    throttle.turn(order, "order", max_wait=100).done()
    went = []

    def wait(seconds):                       # while the second order waits, a read asks
        if not went:
            turn = throttle.turn([("a weight", weight, 1)], "read")
            went.append(("read", clock.now))
            turn.done()
        clock.now += seconds

    throttle.wait_for_change = wait
    throttle.turn(order, "order", max_wait=100).done()
    went.append(("order", clock.now))
    assert went == [("read", 0.0), ("order", 10.0)]


def test_robots_asking_the_same_read_share_its_paced_turn():
    """While a read waits for its paced turn, five robots asking the same join it (shared
    reads): one exchange call when the pace lets it go, one answer for all six."""
    throttle, clock = on_fake_clock(max_wait=10)
    limit = Limit(20, 2.0)
    call(throttle, limit, "ticker")            # the pace holds the next read 0.1 s
    shared, went, answers, lock = _kit.SingleFlight(), [], [], threading.Lock()

    def exchange_call():
        turn = throttle.turn([("ticker", limit, 1)], "X GET /ticker")
        went.append(clock.now)
        turn.done()
        return {"last": "50000.1"}

    def robot():
        answer = shared.get("GET /ticker", exchange_call)
        with lock:
            answers.append(answer)

    robots = [threading.Thread(target=robot) for _ in range(5)]

    def wait(seconds):                         # the leader waits for its turn: the others ask now
        if not went and not robots[0].ident:
            for thread in robots:
                thread.start()
            with shared.lock:
                flight = shared.flights["GET /ticker"]
            deadline = time.monotonic() + 10
            while flight.joined < 5 and time.monotonic() < deadline:
                time.sleep(0.001)             # the joiners are real threads, parked on the flight
        clock.now += seconds

    throttle.wait_for_change = wait
    robot()
    for thread in robots:
        thread.join()
    assert went == [0.1] and answers == [{"last": "50000.1"}] * 6
