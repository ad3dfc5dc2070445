"""The FMZ-level contract, run against every exchange through its own fake (see FAKES in
conftest.py): the docker's request -> plugin -> fake exchange -> FMZ-shaped answer.

Every fake lists the same markets and book (tests/fakes/engine.py), so the expected numbers
are the same for every exchange: BTC_USDT mid 50000 step 0.1, ETH_USDT mid 3000 step 0.01;
balances USDT 100000, BTC 1, ETH 10.
"""
import time

import pytest

import fmz_plugin
from tests.conftest import paper_client


@pytest.fixture
def exchange(exchange, account, tmp_path):
    """Each test on the fake's own account and on a paper account (conftest.paper_client)."""
    return paper_client(exchange, tmp_path) if account == "paper" else exchange


@pytest.fixture(autouse=True)
def serves_spot(exchange):
    if not exchange.fake.SPOT:
        pytest.skip(f"{exchange.fake.NAME} serves perpetual swaps only (test_contract_swap.py)")


def order_requests(ex):
    """What the plugin sent to place orders (target and body), oldest first, without the client
    order ids of the orders placed (a UUID's "e-" is not an exponent)."""
    sent = [target + " " + body for verb, target, body in ex.fake.requests
            if verb == "POST" and target.split("?")[0] == ex.fake.ORDER_PATH]
    for order in ex.fake.engine.orders.values():
        sent = [text.replace(order["client_id"], "") if order["client_id"] else text for text in sent]
    return sent


def balance(ex, currency):
    return {r["currency"]: r for r in ex.data("accounts")}[currency]


def test_ticker_answers_best_prices_24h_figures_and_ms_time(exchange):
    answer = exchange.call("ticker", symbol="BTC_USDT")
    t = answer["data"]
    assert t["symbol"] == "BTC_USDT"
    assert (t["buy"], t["sell"], t["last"]) == (50000, 50000.1, 50000)
    assert t["high"] >= t["low"] > 0 and t["open"] > 0 and t["vol"] > 0
    assert isinstance(t["time"], int) and t["time"] > 1.7e12
    assert answer["raw"]


@pytest.mark.parametrize("text", ["btc_usdt", "Btc_Usdt", "BTC_USDT"])
def test_symbol_in_any_case(exchange, text):
    assert exchange.data("ticker", symbol=text)["symbol"] == "BTC_USDT"


@pytest.mark.parametrize("text", ["USDT", "BTC-USDT", "BTC_USDT_X", "_USDT", "BTC_USDT.future"])
def test_incomplete_or_malformed_symbol_is_an_error(exchange, text):
    assert "symbol" in exchange.error("ticker", symbol=text)
    assert exchange.fake.requests == []


def test_unknown_instrument_carries_exchange_code(exchange):
    error = exchange.error("ticker", symbol="NOPE_USDT")
    assert error.startswith(f"{exchange.fake.NAME} {exchange.fake.CODES['unknown_symbol']}:")


def test_depth_honours_limit_and_orders_sides(exchange):
    book = exchange.data("depth", symbol="ETH_USDT", limit=5)
    assert len(book["asks"]) == 5 and len(book["bids"]) == 5
    asks, bids = [p for p, _ in book["asks"]], [p for p, _ in book["bids"]]
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]
    assert book["asks"][0] == [3000.01, 0.5] and book["bids"][0] == [3000, 0.5]
    assert isinstance(book["time"], int)


def test_trades_oldest_first(exchange):
    rows = exchange.data("trades", symbol="BTC_USDT")
    assert len(rows) >= 50
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert set(rows[0]) == set(fmz_plugin.TRADE)
    assert isinstance(rows[0]["id"], str) and {r["type"] for r in rows} == {"buy", "sell"}


def test_records_oldest_first_in_ms_with_period_in_minutes(exchange):
    rows = exchange.data("records", symbol="BTC_USDT", period=60, limit=10)
    assert len(rows) == 10
    times = [r[0] for r in rows]
    assert times == sorted(times) and {b - a for a, b in zip(times, times[1:])} == {3_600_000}
    assert all(len(r) == 6 and r[2] >= r[3] for r in rows)


def test_records_more_than_one_exchange_page(exchange):
    rows = exchange.data("records", symbol="BTC_USDT", period=1, limit=1200)
    times = [r[0] for r in rows]
    assert len(rows) == 1200 and len(set(times)) == 1200 and times == sorted(times)


def test_records_refuse_a_period_the_exchange_has_not(exchange):
    assert "7-minute" in exchange.error("records", symbol="BTC_USDT", period=7)


def test_accounts_every_currency_free_and_frozen(exchange):
    rows = exchange.data("accounts")
    assert {"currency": "USDT", "free": 100000, "frozen": 0} in rows
    assert {"currency": "BTC", "free": 1, "frozen": 0} in rows
    assert exchange.data("assets") == rows


def test_limit_buy_rests_freezes_funds_and_cancels(exchange):
    order_id = exchange.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.5)["id"]
    assert isinstance(order_id, str)
    usdt = balance(exchange, "USDT")
    assert (usdt["free"], usdt["frozen"]) == (80000, 20000)
    order = exchange.data("order", id=order_id, symbol="BTC_USDT")
    assert order == {"id": order_id, "symbol": "BTC_USDT", "amount": 0.5, "price": 40000,
                     "deal_amount": 0, "avg_price": 0, "type": "buy", "offset": "", "contract_type": "",
                     "time": order["time"], "status": "pending"}
    assert [o["id"] for o in exchange.data("orders", symbol="BTC_USDT")] == [order_id]
    assert exchange.data("cancel", id=order_id, symbol="BTC_USDT") is True
    assert exchange.data("order", id=order_id, symbol="BTC_USDT")["status"] == "canceled"
    assert exchange.data("orders", symbol="BTC_USDT") == []
    usdt = balance(exchange, "USDT")
    assert (usdt["free"], usdt["frozen"]) == (100000, 0)


def test_crossing_limit_sell_fills_against_the_book(exchange):
    # bids: 50000 x 0.5, 49999.9 x 1.0 -> a sell at 49999.9 for 0.8 fills 0.5 + 0.3
    order_id = exchange.data("trade", symbol="BTC_USDT", type="sell", price=49999.9, amount=0.8)["id"]
    order = exchange.data("order", id=order_id, symbol="BTC_USDT")
    assert order["status"] == "filled" and order["deal_amount"] == 0.8
    assert order["avg_price"] == pytest.approx((50000 * 0.5 + 49999.9 * 0.3) / 0.8)
    assert balance(exchange, "BTC")["free"] == pytest.approx(0.2)


def test_partly_filled_limit_order(exchange):
    # asks: 3000.01 x 0.5, 3000.02 x 1.0 -> a buy at 3000.02 for 2 fills 1.5 and rests 0.5
    order_id = exchange.data("trade", symbol="ETH_USDT", type="buy", price="3000.02", amount=2)["id"]
    order = exchange.data("order", id=order_id, symbol="ETH_USDT")
    assert order["status"] == "partial-filled" and order["deal_amount"] == 1.5


def test_market_buy_spends_quote_currency(exchange):
    order_id = exchange.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount=100)["id"]
    order = exchange.data("order", id=order_id, symbol="ETH_USDT")
    assert order["status"] == "filled"
    assert order["deal_amount"] * order["avg_price"] == pytest.approx(100, abs=0.01)
    assert balance(exchange, "USDT")["free"] == pytest.approx(99900, abs=0.01)


def test_market_sell_amount_is_base(exchange):
    order_id = exchange.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount=0.25)["id"]
    order = exchange.data("order", id=order_id, symbol="ETH_USDT")
    assert order["status"] == "filled" and order["deal_amount"] == 0.25
    assert balance(exchange, "ETH")["free"] == 9.75


@pytest.mark.live_only
def test_tiny_amounts_leave_as_exact_decimals(exchange):
    exchange.data("trade", symbol="BTC_USDT", type="buy", price="30000.04", amount="0.00001")
    sent = order_requests(exchange)[-1]
    assert "0.00001" in sent and "30000" in sent and "30000.04" not in sent and "e-" not in sent


@pytest.mark.live_only
def test_amount_rounds_down_to_lot_and_price_to_tick(exchange):
    exchange.data("trade", symbol="ETH_USDT", type="buy", price="1000.009", amount="0.0123456789")
    sent = order_requests(exchange)[-1]
    assert "0.012345" in sent and "0.0123456" not in sent and "1000.01" in sent


def test_amount_below_minimum_is_refused_before_sending(exchange):
    error = exchange.error("trade", symbol="BTC_USDT", type="buy", price=30000, amount="0.000001")
    assert "below the minimum 0.00001" in error
    assert order_requests(exchange) == []


@pytest.mark.live_only
def test_every_order_carries_a_client_order_id(exchange):
    exchange.data("trade", symbol="BTC_USDT", type="buy", price=30000, amount=0.001)
    (order,) = exchange.fake.engine.orders.values()
    assert exchange.fake.CLIENT_ID.fullmatch(order["client_id"]), order["client_id"]


def test_insufficient_balance_carries_exchange_code(exchange):
    error = exchange.error("trade", symbol="BTC_USDT", type="buy", price=50000, amount=100)
    assert error.startswith(exchange.refusal("insufficient"))
    assert "USDT" in error


def test_orders_follow_every_page(exchange):
    count = min(105, exchange.fake.MAX_OPEN_ORDERS or 105)       # Bitvavo: at most 100 per market
    ids = {exchange.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.001")["id"]
           for _ in range(count)}
    listed = exchange.data("orders", symbol="ETH_USDT")
    assert {o["id"] for o in listed} == ids and len(listed) == count


def test_orders_without_symbol_lists_all_spot(exchange):
    exchange.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    exchange.data("trade", symbol="BTC_USDT", type="buy", price=10000, amount="0.01")
    assert {o["symbol"] for o in exchange.data("orders")} == {"ETH_USDT", "BTC_USDT"}


def test_history_orders_since_and_limit(exchange):
    ids = []
    for _ in range(3):
        ids.append(exchange.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"])
        exchange.data("cancel", id=ids[-1], symbol="ETH_USDT")
    exchange.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")
    history = exchange.data("historyorders", symbol="ETH_USDT", since=0, limit=0)
    assert len(history) == 4 and [o["status"] for o in history[:3]] == ["canceled"] * 3
    assert history[3]["status"] == "filled" and [o["id"] for o in history[:3]] == ids
    assert len(exchange.data("historyorders", symbol="ETH_USDT", since=0, limit=2)) == 2
    assert exchange.data("historyorders", symbol="ETH_USDT", since=4102444800000, limit=10) == []


def test_cancel_filled_order_carries_exchange_code(exchange):
    order_id = exchange.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")["id"]
    error = exchange.error("cancel", id=order_id, symbol="ETH_USDT")
    assert error.startswith(exchange.refusal("order_closed", "cancel"))


def test_unknown_order_carries_exchange_code(exchange):
    error = exchange.error("order", id=exchange.fake.FOREIGN_ORDER_ID, symbol="ETH_USDT")
    assert error.startswith(exchange.refusal("unknown_order", "order"))


@pytest.mark.parametrize("bad_id", ["ETH-USDT,", ",123", "a,b,c", "x" * 300])
def test_malformed_order_id(exchange, bad_id):
    assert "order id" in exchange.error("cancel", id=bad_id, symbol="ETH_USDT")
    assert exchange.fake.requests == []


@pytest.mark.parametrize("path", ["https://evil.example/x", "//evil.example/x", "/api/../../x", "api/v5/x",
                                  "/api/v5/x?y=1", "/api/v5/\r\nHost: x"])
def test_io_refuses_paths_off_the_exchange_host(exchange, path):
    assert "refused" in exchange.error("__api_" + path)
    assert exchange.fake.requests == []


@pytest.mark.live_only
def test_clock_skew_resyncs_and_retries_once(exchange):
    exchange.fake.clock_skew_ms = 120_000
    assert exchange.data("accounts")
    assert exchange.data("accounts")
    resyncs = 1 if exchange.fake.SIGNS_TIME else 0     # Alpaca signs no timestamp
    assert sum(target.startswith(exchange.fake.TIME_PATH) for _, target, _ in exchange.fake.requests) == resyncs


def test_exchange_faults_are_clear_errors_and_the_next_call_works(exchange):
    for kind in ("html", "5xx", "truncated"):
        exchange.fake.inject(kind, times=2)           # a read retries once: fail both tries
        error = exchange.error("ticker", symbol="BTC_USDT")
        assert error.startswith(exchange.fake.NAME), error
        assert exchange.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


def test_a_single_fault_on_a_read_is_retried(exchange):
    exchange.fake.inject("5xx")
    assert exchange.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


# ---------------------------------------------------------------------------- FMZ's Order fields

ORDER_FIELDS = set(fmz_plugin.ORDER)          # the answer contract, written once in fmz_plugin


def assert_spot_order(order, side, started_ms):
    """FMZ's Order of a spot order: type buy/sell, no offset nor contract type, time = creation ms."""
    assert set(order) == ORDER_FIELDS and fmz_plugin.order_problems(order) == []
    assert (order["type"], order["offset"], order["contract_type"]) == (side, "", "")
    assert isinstance(order["time"], int) and started_ms - 1000 <= order["time"] <= started_ms + 60_000


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_spot_orders_carry_fmz_order_fields_in_every_listing(exchange, side):
    started = int(time.time() * 1000)
    resting = exchange.data("trade", symbol="ETH_USDT", type=side, price=1000 if side == "buy" else 9000,
                            amount="0.01")["id"]
    filled = exchange.data("trade", symbol="ETH_USDT", type=side, price=-1, amount="10" if side == "buy" else "0.01")["id"]
    assert_spot_order(exchange.data("order", id=resting, symbol="ETH_USDT"), side, started)
    (listed,) = exchange.data("orders", symbol="ETH_USDT")
    assert listed["id"] == resting
    assert_spot_order(listed, side, started)
    exchange.data("cancel", id=resting, symbol="ETH_USDT")
    history = exchange.data("historyorders", symbol="ETH_USDT", since=0, limit=10)
    assert {o["id"] for o in history} == {resting, filled}
    for order in history:
        assert_spot_order(order, side, started)
