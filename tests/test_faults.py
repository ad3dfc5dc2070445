"""The network and the exchange misbehave; the plugin stays correct. Run against every
exchange's fake (the `exchange` fixture), with the fault switches of tests/fakes/base.py.

The rules proven here:
- `trade`: exactly one order exists afterwards (none where the exchange provably refused) and
  the answer's id is that order; never two orders, never a failure for an order that exists.
- `cancel` is sent once, never repeated; an unanswered cancel is resolved by looking the order up.
- Every other method answers data (a read retried once) or a clear error naming the exchange
  and what went wrong, and the next request succeeds.
"""
import http.client
import json

import pytest

from exchanges import _kit, _orders

FAULTS = ["drop_after", "drop_before", "5xx", "html", "truncated", "delay", "429"]
# What a trader reads for each fault, when it is not retried away.
FAULT_WORDS = {
    "drop_after": "connection lost", "drop_before": "connection lost", "5xx": "HTTP 503",
    "html": "HTTP 502", "truncated": "not JSON", "delay": "no answer within", "429": "rate limit",
}
SHORT_TIMEOUT = 0.2          # the plugin's --timeout while a "delay" fault or an order's fault is armed
                             # (it is also each order's deadline, waited out after a lost answer)
READ_TIMEOUT = 0.02          # the same for a read whose every try is delayed (no healthy call under it)
DELAY = 0.3                  # how long the fake then sits on the request


# These set the plugin's settings and _kit's waits in this process: not run against the bundle.
pytestmark = pytest.mark.repo_only


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(_kit, "RETRY_BACKOFF", 0.01)
    monkeypatch.setattr(_kit, "RATE_LIMIT_WAIT", 0.01)


def call_under_fault(exchange, kind, method, times=1, path=None, verb=None, timeout=SHORT_TIMEOUT, **params):
    """Arm one fault, make one call, disarm what is left. The --timeout is short for "delay" and
    for orders and cancels (whose deadline, waited out after a lost answer, is the --timeout);
    other calls keep the fixture's, so a busy machine does not turn a healthy read into a timeout."""
    fake, settings = exchange.fake, exchange.server.settings
    fake.inject(kind, path=path, method=verb, times=times, seconds=DELAY)
    short = kind == "delay" or method in ("trade", "cancel")
    normal, settings.timeout = settings.timeout, timeout if short else settings.timeout
    try:
        return exchange.call(method, **params)
    finally:
        settings.timeout = normal
        fake.faults.clear()


def assert_clear_error(exchange, answer, kind):
    assert set(answer) == {"error"}, answer
    assert answer["error"].startswith(exchange.fake.NAME), answer
    assert FAULT_WORDS[kind] in answer["error"], answer


def assert_next_request_works(exchange):
    assert exchange.data("ticker", symbol=exchange.fake.SYMBOL)["symbol"] == exchange.fake.SYMBOL


def placements(exchange):
    return [r for r in exchange.fake.requests if r[0] == "POST" and r[1].split("?")[0] == exchange.fake.ORDER_PATH]


def cancels(exchange):
    verb, path = exchange.fake.CANCEL_ROUTE
    return [r for r in exchange.fake.requests if r[0] == verb and path in (None, r[1].split("?")[0])]


def resting_order(exchange):
    return exchange.data("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)["id"]


# ---------------------------------------------------------------------------- trade

@pytest.mark.parametrize("kind", FAULTS)
def test_trade_under_fault_makes_exactly_one_order_or_a_clear_refusal(exchange, kind):
    answer = call_under_fault(exchange, kind, "trade", path=exchange.fake.ORDER_PATH, verb="POST",
                              symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    exchange.fake.wait_idle()                     # a delayed first send has been served (and refused)
    orders = list(exchange.fake.engine.orders.values())
    if kind == "429":                             # refused by the exchange: nothing exists, nothing resent
        assert orders == [] and len(placements(exchange)) == 1
        assert_clear_error(exchange, answer, kind)
    else:
        assert len(orders) == 1, (answer, orders)
        assert "error" not in answer, answer
        assert orders[0]["id"] in answer["data"]["id"]
        assert [o["id"] for o in exchange.data("orders", symbol=exchange.fake.SYMBOL)] == [answer["data"]["id"]]
        assert len(placements(exchange)) <= 2     # at most one resend, with the same client id
    assert_next_request_works(exchange)


@pytest.mark.parametrize("kind", ["drop_after", "truncated"])
def test_trade_whose_order_arrived_is_not_sent_again(exchange, kind):
    answer = call_under_fault(exchange, kind, "trade", path=exchange.fake.ORDER_PATH, verb="POST",
                              symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    assert "data" in answer and len(placements(exchange)) == 1


def test_trade_resends_once_with_the_same_client_id(exchange):
    call_under_fault(exchange, "drop_before", "trade", path=exchange.fake.ORDER_PATH, verb="POST",
                     symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    first, second = placements(exchange)
    (order,) = exchange.fake.engine.orders.values()
    assert order["client_id"] in first[1] + first[2] and order["client_id"] in second[1] + second[2]


def test_trade_under_repeated_faults_never_doubles(exchange):
    # Every placement fails the same way: the answer says so, and at most one order exists.
    answer = call_under_fault(exchange, "5xx", "trade", times=5, path=exchange.fake.ORDER_PATH, verb="POST",
                              symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    assert_clear_error(exchange, answer, "5xx")
    # looked up after each request's deadline; Alpaca has none, but never takes one client id twice
    assert "no order was placed" in answer["error"] or "at most one order exists" in answer["error"]
    assert len(exchange.fake.engine.orders) == 0 and len(placements(exchange)) == 2
    assert_next_request_works(exchange)


# ---------------------------------------------------------------------------- cancel

@pytest.mark.parametrize("kind", FAULTS)
def test_cancel_is_sent_once_under_fault(exchange, kind):
    order_id = resting_order(exchange)
    verb, path = exchange.fake.CANCEL_ROUTE
    answer = call_under_fault(exchange, kind, "cancel", path=path, verb=verb, id=order_id, symbol=exchange.fake.SYMBOL)
    exchange.fake.wait_idle()
    sent = cancels(exchange)
    if kind == "delay" and len(sent) == 2:
        # On a loaded machine the late answer can beat the plugin's timeout: the exchange refused
        # the first cancel for its time, and a request refused for the clock is sent again once
        # after the clock is read (Api.call): safe, as the first was refused, and only then.
        requests = exchange.fake.requests
        between = requests[requests.index(sent[0]) + 1:requests.index(sent[1])]
        assert any(r[0] == "GET" and r[1].split("?")[0] == exchange.fake.TIME_PATH for r in between), requests
    else:
        assert len(sent) == 1
    (order,) = exchange.fake.engine.orders.values()
    if "data" in answer:                          # the cancel arrived, confirmed by a lookup if need be
        assert answer["data"] is True and order["status"] == "canceled"
    else:
        assert_clear_error(exchange, answer, kind)
        if kind in ("drop_before", "5xx", "html", "429"):    # never reached the book
            assert order["status"] == "open"
        if kind != "429":              # unanswered: looked up (after its deadline, where it has one)
            assert "take effect" in answer["error"]
    assert_next_request_works(exchange)
    if order["status"] == "open":                 # the robot may cancel again: it works
        assert exchange.data("cancel", id=order_id, symbol=exchange.fake.SYMBOL) is True


@pytest.mark.parametrize("kind", ["drop_after", "truncated"])
def test_cancel_that_arrived_answers_true(exchange, kind):
    order_id = resting_order(exchange)
    verb, path = exchange.fake.CANCEL_ROUTE
    answer = call_under_fault(exchange, kind, "cancel", path=path, verb=verb, id=order_id, symbol=exchange.fake.SYMBOL)
    assert answer["data"] is True and len(cancels(exchange)) == 1


# ---------------------------------------------------------------------------- every other method

def read_calls(exchange, order_id):
    return {
        "ticker": {"symbol": exchange.fake.SYMBOL},
        "depth": {"symbol": exchange.fake.SYMBOL, "limit": 5},
        "trades": {"symbol": exchange.fake.SYMBOL},
        "records": {"symbol": exchange.fake.SYMBOL, "period": 1, "limit": 10},
        "accounts": {},
        "assets": {},
        "orders": {"symbol": exchange.fake.SYMBOL},
        "order": {"id": order_id, "symbol": exchange.fake.SYMBOL},
        "historyorders": {"symbol": exchange.fake.SYMBOL, "since": 0, "limit": 10},
        "__api_" + exchange.fake.TIME_PATH: {},
    }


@pytest.mark.parametrize("kind", FAULTS)
def test_every_other_method_fails_cleanly_and_the_next_request_works(exchange, kind):
    order_id = resting_order(exchange)
    for method, params in read_calls(exchange, order_id).items():
        answer = call_under_fault(exchange, kind, method, times=2, timeout=READ_TIMEOUT, **params)  # both tries
        if "error" in answer:
            assert_clear_error(exchange, answer, kind)
        assert_next_request_works(exchange)
        assert "data" in exchange.call(method, **params), method


@pytest.mark.parametrize("kind", ["5xx", "truncated", "drop_before"])     # 429: test_rate_limits
def test_a_single_fault_on_each_read_is_retried_away(exchange, kind):
    order_id = resting_order(exchange)
    for method, params in read_calls(exchange, order_id).items():
        answer = call_under_fault(exchange, kind, method, times=1, **params)
        assert "data" in answer, (method, answer)


def test_timeout_is_a_clear_error_naming_the_limit(exchange):
    answer = call_under_fault(exchange, "delay", "ticker", times=2, timeout=READ_TIMEOUT, symbol=exchange.fake.SYMBOL)
    assert answer["error"].startswith(f"{exchange.fake.NAME}: no answer within {READ_TIMEOUT:g}s for GET ")


# ---------------------------------------------------------------------------- caches, clock, idle connections

def test_orders_after_the_first_send_only_the_order(exchange):
    """Instrument specs (tick, lot, minimum) come from the markets cache: an order costs one
    request, not an instrument list each time."""
    resting_order(exchange)
    before = len(exchange.fake.requests)
    for _ in range(3):
        resting_order(exchange)
    assert [(verb, target.split("?")[0]) for verb, target, _ in exchange.fake.requests[before:]] == \
        [("POST", exchange.fake.ORDER_PATH)] * 3



@pytest.mark.parametrize("skew_ms", [120_000, -120_000])
def test_clock_skew_on_trade_resyncs_once_and_keeps_the_offset(exchange, skew_ms):
    exchange.fake.clock_skew_ms = skew_ms
    first = exchange.data("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)["id"]
    second = exchange.data("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)["id"]
    assert first != second and len(exchange.fake.engine.orders) == 2
    assert exchange.data("accounts")
    time_calls = [t for _, t, _ in exchange.fake.requests if t.startswith(exchange.fake.TIME_PATH)]
    assert len(time_calls) == (1 if exchange.fake.SIGNS_TIME else 0)   # Alpaca signs no time


def test_connection_closed_by_the_exchange_while_idle_is_replaced(exchange):
    exchange.data("ticker", symbol=exchange.fake.SYMBOL)
    exchange.fake.close_idle()
    assert exchange.data("ticker", symbol=exchange.fake.SYMBOL)["symbol"] == exchange.fake.SYMBOL
    exchange.fake.close_idle()
    order_id = resting_order(exchange)
    exchange.fake.close_idle()
    assert exchange.data("cancel", id=order_id, symbol=exchange.fake.SYMBOL) is True
    assert len(exchange.fake.engine.orders) == 1 and len(placements(exchange)) == 1
    assert len(cancels(exchange)) == 1


def test_dead_pooled_socket_missed_by_the_check_is_still_replaced(exchange, monkeypatch):
    """The exchange closes the socket just after the pool checked it: a read is resent on a
    fresh connection; an order is resolved by its client id, never doubled."""
    monkeypatch.setattr(_kit, "_closed_by_peer", lambda conn: conn.sock is None)
    exchange.data("ticker", symbol=exchange.fake.SYMBOL)
    exchange.fake.close_idle()
    assert exchange.data("ticker", symbol=exchange.fake.SYMBOL)["symbol"] == exchange.fake.SYMBOL
    exchange.fake.close_idle()
    answer = exchange.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    (order,) = exchange.fake.engine.orders.values()
    assert order["id"] in answer["data"]["id"]


# ---------------------------------------------------------------------------- place_once, cancel_once

def ambiguous(text="no answer", deadline=1000):
    return _kit.PluginError(text, ambiguous=True, deadline=deadline)


def script(*steps):
    """A function that on each call returns or raises the next step."""
    steps = list(steps)

    def next_step():
        step = steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step
    next_step.left = steps
    return next_step


class Clock:
    """Stands in for an Api in place_once / cancel_once: records the deadlines waited out."""

    def __init__(self, readable=True):
        self.readable, self.waited = readable, []

    def wait_past(self, deadline):
        self.waited.append(deadline)
        return self.readable


def test_place_once_looks_up_an_ambiguous_send_and_answers_the_found_order():
    send, find, clock = script(ambiguous()), script("found"), Clock()
    assert _orders.place_once(send, find, clock, "fmz1") == "found" and send.left == [] and clock.waited == []


def test_place_once_resends_only_after_the_deadline_has_passed_and_the_order_is_still_absent():
    send, find, clock = script(ambiguous(deadline=1234), "placed"), script(None, None), Clock()
    assert _orders.place_once(send, find, clock, "fmz1") == "placed"
    assert clock.waited == [1234] and find.left == []


def test_place_once_finds_an_order_taken_while_the_deadline_was_waited_out():
    send, find = script(ambiguous(), "never"), script(None, "found")
    assert _orders.place_once(send, find, Clock(), "fmz1") == "found" and send.left == ["never"]


def test_place_once_never_resends_without_a_deadline_or_a_readable_clock():
    for api, failure in ((Clock(), ambiguous(deadline=None)), (Clock(readable=False), ambiguous()),
                         (None, ambiguous())):
        send, find = script(failure, "never"), script(None)
        with pytest.raises(_kit.PluginError, match="outcome unknown.*may exist \\(client order id fmz7\\)"):
            _orders.place_once(send, find, api, "fmz7")
        assert send.left == ["never"]


def test_place_once_refused_send_is_not_looked_up_or_resent():
    send, find = script(_kit.PluginError("X 51008: Insufficient balance", code="51008")), script()
    with pytest.raises(_kit.PluginError, match="51008"):
        _orders.place_once(send, find, Clock(), "fmz1")


def test_place_once_failed_lookup_says_the_order_may_exist_and_names_the_client_id():
    send, find = script(ambiguous()), script(ambiguous("lookup lost"))
    with pytest.raises(_kit.PluginError, match="lookup lost.*may exist \\(client order id fmz9\\)") as raised:
        _orders.place_once(send, find, Clock(), "fmz9")
    assert raised.value.ambiguous


def test_place_once_never_sends_a_third_time_and_says_nothing_was_placed():
    send, find = script(ambiguous(), ambiguous(), "never"), script(None, None, None, None)
    with pytest.raises(_kit.PluginError, match="sent twice.*no order was placed"):
        _orders.place_once(send, find, Clock(), "fmz1")
    assert send.left == ["never"]


def test_place_once_resend_refused_says_the_first_was_proven_not_placed():
    send = script(ambiguous(), _kit.PluginError("X 51008: Insufficient balance", code="51008"))
    with pytest.raises(_kit.PluginError, match="51008.*found not placed") as raised:
        _orders.place_once(send, script(None, None), Clock(), "fmz1")
    assert raised.value.code == "51008"


def test_cancel_once_confirms_an_unanswered_cancel_by_lookup():
    assert _orders.cancel_once(script(ambiguous()), script(({"status": "canceled"}, "raw")), Clock()) == (True, "raw")
    with pytest.raises(_kit.PluginError, match="still open \\(pending\\): the cancel did not take effect"):
        _orders.cancel_once(script(ambiguous()), script(({"status": "pending"}, "r"), ({"status": "pending"}, "r")),
                         Clock())
    with pytest.raises(_kit.PluginError, match="still pending: the cancel may still take effect"):
        _orders.cancel_once(script(ambiguous(deadline=None)), script(({"status": "pending"}, "raw")), Clock())


def test_cancel_once_a_late_cancel_that_landed_before_its_deadline_answers_true():
    lookup = script(({"status": "pending"}, "r1"), ({"status": "canceled"}, "r2"))
    assert _orders.cancel_once(script(ambiguous()), lookup, Clock()) == (True, "r2")


def test_cancel_once_explains_a_refusal_by_the_order():
    gone = _kit.PluginError("X 51400: filled, canceled or does not exist", code="51400")
    assert _orders.cancel_once(script(gone), script(({"status": "canceled"}, "raw"))) == (True, "raw")
    with pytest.raises(_kit.PluginError, match="51400.*already filled"):
        _orders.cancel_once(script(gone), script(({"status": "filled", "deal_amount": 1}, "raw")))
    with pytest.raises(_kit.PluginError, match="^X 51400: filled, canceled or does not exist$"):
        _orders.cancel_once(script(gone), script(_kit.PluginError("X 51603: Order does not exist", code="51603")))


def test_place_once_a_lookup_reply_it_cannot_read_still_says_the_order_may_exist():
    send, find = script(ambiguous()), script(KeyError("ordId"))
    with pytest.raises(_kit.PluginError, match="KeyError.*may exist \\(client order id fmz3\\)"):
        _orders.place_once(send, find, Clock(), "fmz3")


def test_cancel_once_a_lookup_reply_it_cannot_read_says_it_may_or_may_not_be_canceled():
    with pytest.raises(_kit.PluginError, match="TypeError.*may or may not be canceled"):
        _orders.cancel_once(script(ambiguous()), script(TypeError("bad")), Clock())


# ---------------------------------------------------------------------------- numbers that are not finite (issue #23)

def strict_answer(exchange, method, **params):
    """The answer as JSON allows it: NaN and Infinity are no JSON (Python's json reads them)."""
    host, port = exchange.url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/" + exchange.exchange, body=json.dumps(exchange.envelope(method, params)))
        body = conn.getresponse().read()
    finally:
        conn.close()
    return json.loads(body, parse_constant=lambda word: pytest.fail(f"{method} answered {word}: {body[:300]!r}"))


@pytest.mark.parametrize("kind", ["nan", "infinity"])
def test_numbers_that_are_not_finite_never_make_invalid_json(exchange, kind):
    """An exchange answering "NaN" (or a bare NaN token) for its numbers: the answer stays JSON,
    an error naming the number, or data without it (the robot must not compute with NaN)."""
    for method, params in [("ticker", {"symbol": "BTC_USDT"}), ("depth", {"symbol": "BTC_USDT"}),
                           ("trades", {"symbol": "BTC_USDT"}), ("records", {"symbol": "BTC_USDT", "period": 1}),
                           ("accounts", {}), ("orders", {"symbol": "BTC_USDT"})]:
        exchange.fake.inject(kind, times=10)
        answer = strict_answer(exchange, method, **params)
        exchange.fake.faults.clear()
        assert set(answer) in ({"error"}, {"data", "raw"}), answer
        assert "internal error" not in answer.get("error", ""), answer
    assert_next_request_works(exchange)
