"""Orders exactly once, against every exchange's fake (the `exchange` fixture), with the faults
that broke it: an exchange that takes a request late (`queue`), an "outcome unknown" answer
(`unknown`), and client ids that are unique among OPEN orders only (so a filled order's id can
be used again, as on the real exchanges).

The rules proven here:
- A `trade` whose answer is lost makes exactly one order: the plugin waits until the request's
  own validity deadline has passed (a late original is then refused by the exchange), looks the
  client id up, and sends again only when that proves nothing was placed.
- An "outcome unknown" code is looked up like a lost answer, whatever its HTTP status.
- When nothing can be proven, the error says the order may exist and names its client id.
- `cancel`: a canceled order answers true, a second cancel too; a filled one is an error saying so.

The plugin's --timeout is set small here (it is also the validity deadline of every order), so
these tests reach into the plugin's process: not run against the bundle.
"""
import re

import pytest

from exchanges import _kit

pytestmark = pytest.mark.repo_only

TIMEOUT = 0.2                # the plugin's --timeout, and so each order's validity deadline (s)
LATE = 0.5                   # how long the exchange's engine sits on a queued request (s)
CLOCK_READ_TIMEOUT = 3.0     # each read of the exchange's clock while a deadline is waited out (s)
CLIENT_ID = re.compile(r"fmz[0-9a-f]{29}|[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")   # ours, or a UUID4


@pytest.fixture(autouse=True)
def short_timeout(exchange, monkeypatch):
    settings = exchange.server.settings
    normal, settings.timeout = settings.timeout, TIMEOUT
    monkeypatch.setattr(_kit.Api, "wait_past", patient(_kit.Api.wait_past))
    yield
    settings.timeout = normal
    exchange.fake.faults.clear()


def patient(wait_past):
    """Api.wait_past reading the exchange's clock with CLOCK_READ_TIMEOUT rather than the short
    --timeout these tests give orders: on a loaded machine a clock read of the fake can take
    longer than 0.2 s, and what these tests check is what the plugin does with the clock's
    answer, not how fast the fake gives it. A clock that fails (5xx, HTML) still fails."""
    def wait_past_patiently(api, deadline):
        short, api.timeout = api.timeout, CLOCK_READ_TIMEOUT
        try:
            return wait_past(api, deadline)
        finally:
            api.timeout = short
    return wait_past_patiently


def placements(exchange):
    return [r for r in exchange.fake.requests if r[0] == "POST" and r[1].split("?")[0] == exchange.fake.ORDER_PATH]


def filled_now(exchange):
    """A limit buy above the best ask: it fills the moment the engine takes it."""
    return exchange.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=50010, amount=exchange.fake.AMOUNT)


def resting(exchange):
    return exchange.data("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)["id"]


def engine_orders(exchange):
    exchange.fake.wait_idle()            # a queued request has been taken (or refused) by now
    return list(exchange.fake.engine.orders.values())


# ---------------------------------------------------------------------------- trade

def test_every_order_carries_its_deadline_of_timeout_after_signing(exchange):
    """OKX expTime, Binance/Bybit/BingX recvWindow, Bitvavo's access window: --timeout (Alpaca's
    and Coinbase's requests carry none: a client id never makes two orders there, which is their
    proof instead)."""
    exchange.data("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    (placed,) = [r for r in exchange.fake.recent if r.method == "POST" and r.path == exchange.fake.ORDER_PATH]
    deadline = exchange.fake.deadline_of(placed)
    if not exchange.fake.DEADLINES:
        assert deadline is None
    else:
        assert 0 < deadline - placed.arrived_ms <= TIMEOUT * 1000


@pytest.mark.parametrize("kind", ["queue", "delay"])
def test_an_order_the_exchange_takes_late_fills_once(exchange, kind):
    """The first send sits in the exchange's queue ("queue") or in the network ("delay") past the
    plugin's timeout. Resending the same client id at once would fill twice (the first one is not
    open, so its id is free again); the plugin instead waits out the deadline, after which the
    exchange refuses the late original."""
    exchange.fake.inject(kind, path=exchange.fake.ORDER_PATH, method="POST", seconds=LATE)
    answer = filled_now(exchange)
    orders = engine_orders(exchange)
    assert len(orders) == 1, (answer, orders)
    assert orders[0]["status"] == "filled"
    assert "error" not in answer and orders[0]["id"] in answer["data"]["id"]


def test_an_order_taken_late_but_before_its_deadline_is_found_not_doubled(exchange):
    """Queued a little less than the deadline: the client has given up, the exchange still takes
    the original, and the plugin finds it by its client id instead of sending another."""
    exchange.fake.inject("queue", path=exchange.fake.ORDER_PATH, method="POST", seconds=TIMEOUT * 0.8)
    exchange.server.settings.timeout = TIMEOUT / 2
    answer = filled_now(exchange)
    orders = engine_orders(exchange)
    assert len(orders) == 1 and "error" not in answer, (answer, orders)
    assert orders[0]["id"] in answer["data"]["id"]


def test_an_outcome_unknown_answer_is_looked_up_not_reported_as_a_failure(exchange):
    """OKX 50004 (HTTP 400), Binance -1007 (HTTP 408), Bybit 10000 (HTTP 200): the order was
    taken; the robot gets its id, not an error that would make it place a second one."""
    exchange.fake.inject("unknown", path=exchange.fake.ORDER_PATH, method="POST")
    answer = exchange.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)
    (order,) = engine_orders(exchange)
    assert "error" not in answer, answer
    assert order["id"] in answer["data"]["id"] and len(placements(exchange)) == 1


@pytest.mark.parametrize("price", [40000, 50010], ids=["resting", "filled"])
def test_an_order_answered_without_its_id_is_looked_up_not_an_internal_error(exchange, price):
    """The exchange took the order but its answer lacks the id row (OKX data [], Binance without
    orderId, ...): the mapping fails after the send. That is an ambiguous outcome, resolved by the
    client id like a lost answer; "internal error" made robots retry and fill a second time."""
    exchange.fake.inject("no_id", path=exchange.fake.ORDER_PATH, method="POST")
    answer = exchange.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=price, amount=exchange.fake.AMOUNT)
    orders = engine_orders(exchange)
    assert len(orders) == 1 and "error" not in answer, (answer, orders)
    assert orders[0]["id"] in answer["data"]["id"] and len(placements(exchange)) == 1


def test_an_unprovable_outcome_says_the_order_may_exist_and_names_its_client_id(exchange):
    """The order's answer is lost and every lookup fails too: nothing is proven either way."""
    exchange.data("cancel", id=resting(exchange), symbol=exchange.fake.SYMBOL)    # what an order reads first
    exchange.fake.requests.clear()           # (specs, a position mode) is cached: the order is sent
    exchange.fake.inject("5xx", times=20)
    error = exchange.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000, amount=exchange.fake.AMOUNT)["error"]
    client_id = CLIENT_ID.search(placements(exchange)[0][1] + placements(exchange)[0][2]).group()
    assert client_id in error and "may exist" in error, error
    assert len(placements(exchange)) == 1, "never sent again without proof"


# ---------------------------------------------------------------------------- cancel

def test_a_second_cancel_of_a_canceled_order_answers_true(exchange):
    order_id = resting(exchange)
    assert exchange.data("cancel", id=order_id, symbol=exchange.fake.SYMBOL) is True
    assert exchange.data("cancel", id=order_id, symbol=exchange.fake.SYMBOL) is True


def test_cancel_of_a_filled_order_is_an_error_saying_it_filled(exchange):
    order_id = filled_now(exchange)["data"]["id"]
    error = exchange.error("cancel", id=order_id, symbol=exchange.fake.SYMBOL)
    assert error.startswith(exchange.fake.NAME) and "filled" in error, error


def test_a_cancel_the_exchange_takes_late_is_reported_and_a_second_cancel_answers_true(exchange):
    """The cancel's answer is lost while the exchange still holds it. Where the cancel carries a
    deadline (Binance, Bybit) the late one is refused and the order is reported still open; where
    it cannot (OKX cancels have no expTime) it may still land. Either way the robot's next cancel
    answers true."""
    order_id = resting(exchange)
    verb, path = exchange.fake.CANCEL_ROUTE
    exchange.fake.inject("queue", path=path, method=verb, seconds=LATE)
    error = exchange.error("cancel", id=order_id, symbol=exchange.fake.SYMBOL)
    assert "still open" in error or "may still" in error, error
    engine_orders(exchange)
    assert exchange.data("cancel", id=order_id, symbol=exchange.fake.SYMBOL) is True
    (order,) = exchange.fake.engine.orders.values()
    assert order["status"] == "canceled"


def test_an_outcome_unknown_cancel_is_looked_up(exchange):
    order_id = resting(exchange)
    verb, path = exchange.fake.CANCEL_ROUTE
    exchange.fake.inject("unknown", path=path, method=verb)
    assert exchange.data("cancel", id=order_id, symbol=exchange.fake.SYMBOL) is True


def test_without_the_exchanges_clock_nothing_is_sent_again(exchange):
    """The answer is lost and the exchange's time endpoint fails: the deadline cannot be proven
    past, so the order is not resent and the error says it may exist."""
    if not exchange.fake.DEADLINES:
        pytest.skip(f"{exchange.fake.NAME} needs no clock: a client id never makes two orders there")
    exchange.data("markets")
    exchange.fake.inject("html", path=exchange.fake.TIME_PATH, times=10)
    exchange.fake.inject("drop_before", path=exchange.fake.ORDER_PATH, method="POST")
    error = exchange.error("trade", symbol=exchange.fake.SYMBOL, type="buy", price=50010, amount=exchange.fake.AMOUNT)
    assert "may exist" in error and len(placements(exchange)) == 1, error
    assert engine_orders(exchange) == []


def test_the_deadline_is_waited_out_on_the_exchanges_clock_not_ours(exchange):
    """OKX accepts timestamps 30 s off, so its clock may run behind ours unnoticed: expTime then
    falls later on its clock than on ours. The plugin reads OKX's clock before resending, finds
    the deadline not yet passed there, waits, and finds the late original instead of doubling it."""
    if exchange.fake.NAME != "OKX":
        pytest.skip("the others refuse a timestamp ahead of their clock, so their offset is learnt")
    exchange.fake.clock_skew_ms = -1000              # OKX's clock runs a second behind ours
    exchange.fake.inject("queue", path=exchange.fake.ORDER_PATH, method="POST", seconds=LATE)
    answer = filled_now(exchange)
    (order,) = engine_orders(exchange)
    assert "error" not in answer and order["id"] in answer["data"]["id"] and order["status"] == "filled"
    assert len(placements(exchange)) == 1
