"""The FMZ-level contract for markets, tickers and perpetual swaps, run against every exchange's
fake (FAKES in conftest.py), like tests/test_contract.py.

Every fake lists the same swaps (tests/fakes/engine.py SWAP_MARKETS), so the numbers are the
same everywhere:
  BTC_USDT.swap  1 contract = 0.01 BTC, lot 0.1, mid 50000 step 0.1, book 10/20/30.. contracts,
                 max leverage 100, funding 0.0001 every 8 h
  ETH_USDT.swap  1 contract = 0.1 ETH, lot 1, mid 3000 step 0.01, book 100/200/.. contracts,
                 max leverage 50, funding -0.00005 every 4 h
  BTC_USD.swap   1 contract = 100 USD (margined in BTC), lot 1, mid 50000, max leverage 125
Leverage starts at 10; margin = notional / leverage, held in the balance's "frozen".
A fake whose swap orders go to another path than ORDER_PATH names it SWAP_ORDER_PATH (see
FakeExchange in tests/fakes/base.py for every attribute read here).
An exchange runs this suite once its module serves swaps (lists `positions` in METHODS).

Amounts below are in the engine's contracts. FMZ amounts are the exchange's own contracts: OKX's
are the engine's, but a Bybit or Binance USDT perpetual counts in coins (1 contract = 1 BTC). Such
a fake names, in CONTRACT_UNITS, how many of its exchange's units one engine contract is
({"BTC_USDT.swap": Decimal("0.01"), ...}), and `units()` converts. A fake whose exchange serves
only some of the swaps (no coin-margined ones, say) lists those it serves in SWAPS.
"""
import time
from decimal import Decimal

import pytest

import fmz_plugin
from exchanges import EXCHANGES
from tests.conftest import paper_client

HOUR_MS = 3_600_000


@pytest.fixture
def exchange(exchange, account, tmp_path):
    """Each test on the fake's own account and on a paper account (conftest.paper_client)."""
    return paper_client(exchange, tmp_path) if account == "paper" else exchange


@pytest.fixture(autouse=True)
def serves_swaps(exchange):
    if "positions" not in EXCHANGES[exchange.exchange.lower()].METHODS:
        pytest.skip(f"{exchange.exchange} does not serve perpetual swaps yet")


def units(ex, symbol, contracts):
    """`contracts` engine contracts of a swap in the exchange's own amount unit, as FMZ sees them."""
    unit = ex.fake.CONTRACT_UNITS.get(symbol, 1)
    return float(Decimal(str(contracts)) * Decimal(unit))


def ct_val(ex, symbol, engine_ct_val):
    """The contract value the exchange reports for a swap whose engine contract is engine_ct_val."""
    return float(Decimal(str(engine_ct_val)) / Decimal(ex.fake.CONTRACT_UNITS.get(symbol, 1)))


def swaps_of(ex):
    """The perpetual swaps the exchange serves (its fake's SWAPS)."""
    return set(ex.fake.SWAPS)


def spots_of(ex):
    """The spot markets the exchange serves: none on a swap-only exchange (its fake's SPOT)."""
    return {"BTC_USDT", "ETH_USDT"} if ex.fake.SPOT else set()


def digits(number):
    return max(0, -Decimal(repr(number)).normalize().as_tuple().exponent)


def trade(ex, symbol, side, contracts, price=-1):
    """Place an order of `contracts` engine contracts; returns its id."""
    return ex.data("trade", symbol=symbol, type=side, price=price, amount=units(ex, symbol, contracts))["id"]


def balance(ex, currency):
    return {r["currency"]: r for r in ex.data("accounts")}[currency]


def position(ex, symbol):
    (found,) = ex.data("positions", symbol=symbol)
    return found


def refused(ex, reason, method, **params):
    """The error carries the exchange's own code for that engine refusal."""
    error = ex.error(method, **params)
    assert error.startswith(ex.refusal(reason, method)), error
    return error


# ---------------------------------------------------------------------------- markets and tickers

def test_markets_list_spot_and_swap_with_contract_values(exchange):
    markets = exchange.data("markets")
    assert spots_of(exchange) | swaps_of(exchange) <= set(markets)
    if exchange.fake.SPOT:
        spot = markets["BTC_USDT"]
        assert (spot["symbol"], spot["base_asset"], spot["quote_asset"]) == ("BTC_USDT", "BTC", "USDT")
        assert (spot["tick_size"], spot["amount_size"], spot["min_qty"]) == (0.1, 0.00000001, 0.00001)
        assert (spot["price_precision"], spot["amount_precision"]) == (1, 8)
    else:
        assert not [name for name in markets if not name.endswith(".swap")]
    linear = markets["BTC_USDT.swap"]
    assert set(linear) == set(fmz_plugin.MARKET)
    assert (linear["base_asset"], linear["quote_asset"], linear["tick_size"]) == ("BTC", "USDT", 0.1)
    lot = units(exchange, "BTC_USDT.swap", "0.1")
    assert (linear["amount_size"], linear["min_qty"], linear["amount_precision"]) == (lot, lot, digits(lot))
    assert (linear["ct_val"], linear["ct_val_ccy"]) == (ct_val(exchange, "BTC_USDT.swap", "0.01"), "BTC")
    eth = markets["ETH_USDT.swap"]
    assert (eth["ct_val"], eth["amount_size"]) == (ct_val(exchange, "ETH_USDT.swap", "0.1"),
                                                   units(exchange, "ETH_USDT.swap", 1))
    if "BTC_USD.swap" in swaps_of(exchange):
        inverse = markets["BTC_USD.swap"]
        assert (inverse["quote_asset"], inverse["ct_val"], inverse["ct_val_ccy"]) == \
            ("USD", ct_val(exchange, "BTC_USD.swap", 100), "USD")


def test_tickers_every_market_in_one_answer(exchange):
    tickers = {t["symbol"]: t for t in exchange.data("tickers")}
    assert spots_of(exchange) | swaps_of(exchange) <= set(tickers)
    one = "BTC_USDT" if exchange.fake.SPOT else "BTC_USDT.swap"
    assert tickers[one] == exchange.data("ticker", symbol=one) | {"time": tickers[one]["time"]}
    assert (tickers["ETH_USDT.swap"]["buy"], tickers["ETH_USDT.swap"]["sell"]) == (3000, 3000.01)


def test_tickers_of_a_range(exchange):
    symbols = {t["symbol"] for t in exchange.data("tickers", symbol="USDT.swap")}
    assert symbols == {"BTC_USDT.swap", "ETH_USDT.swap"}


def test_swap_ticker_and_depth_in_contracts(exchange):
    ticker = exchange.data("ticker", symbol="BTC_USDT.swap")
    assert (ticker["symbol"], ticker["buy"], ticker["sell"]) == ("BTC_USDT.swap", 50000, 50000.1)
    book = exchange.data("depth", symbol="BTC_USDT.swap", limit=5)
    assert book["asks"][0] == [50000.1, units(exchange, "BTC_USDT.swap", 10)]
    assert book["bids"][1] == [49999.9, units(exchange, "BTC_USDT.swap", 20)]


# ---------------------------------------------------------------------------- opening and closing

def test_open_long_holds_margin(exchange):
    # 10 contracts x 0.01 BTC at 50000.1 = 5000.001 USDT notional, / leverage 10
    order_id = trade(exchange, "BTC_USDT.swap", "buy", 10)
    order = exchange.data("order", id=order_id, symbol="BTC_USDT.swap")
    assert (order["symbol"], order["type"], order["status"]) == ("BTC_USDT.swap", "buy", "filled")
    assert (order["deal_amount"], order["avg_price"]) == (units(exchange, "BTC_USDT.swap", 10), 50000.1)
    assert position(exchange, "BTC_USDT.swap") == {
        "symbol": "BTC_USDT.swap", "margin_level": 10, "amount": units(exchange, "BTC_USDT.swap", 10),
        "frozen_amount": 0, "price": 50000.1,
        "profit": -0.01, "type": 0, "contract_type": "swap", "margin": 500.001}
    usdt = balance(exchange, "USDT")
    assert (usdt["free"], usdt["frozen"]) == (99499.999, 500.001)


def test_open_short_fills_across_book_levels_and_holds_margin(exchange):
    # bids 3000 x 100, 2999.99 x 200: a sell of 150 contracts fills 100 + 50
    trade(exchange, "ETH_USDT.swap", "sell", 150)
    held = position(exchange, "ETH_USDT.swap")
    assert (held["type"], held["amount"], held["margin_level"]) == (1, units(exchange, "ETH_USDT.swap", 150), 10)
    assert held["price"] == pytest.approx((3000 * 100 + 2999.99 * 50) / 150)
    assert held["margin"] == pytest.approx(150 * 0.1 * held["price"] / 10, abs=1e-6)


def test_partial_close_then_close_all(exchange):
    trade(exchange, "BTC_USDT.swap", "buy", 10)
    close_id = trade(exchange, "BTC_USDT.swap", "closebuy", 4)
    closing = exchange.data("order", id=close_id, symbol="BTC_USDT.swap")
    assert (closing["type"], closing["offset"]) == ("sell", "close")         # a close-long sells
    held = position(exchange, "BTC_USDT.swap")
    assert (held["amount"], held["price"], held["margin"]) == (units(exchange, "BTC_USDT.swap", 6), 50000.1, 300.0006)
    trade(exchange, "BTC_USDT.swap", "closebuy", 6)
    assert exchange.data("positions", symbol="BTC_USDT.swap") == []
    usdt = balance(exchange, "USDT")             # opened at 50000.1, closed at 50000: -0.01 USDT
    assert (usdt["free"], usdt["frozen"]) == (99999.99, 0)


def test_closesell_closes_a_short(exchange):
    trade(exchange, "ETH_USDT.swap", "sell", 5)
    trade(exchange, "ETH_USDT.swap", "closesell", 5)
    assert exchange.data("positions", symbol="ETH_USDT.swap") == []


def test_resting_swap_order_lists_and_cancels(exchange):
    order_id = trade(exchange, "BTC_USDT.swap", "buy", 5, price=40000)
    order = exchange.data("order", id=order_id, symbol="BTC_USDT.swap")
    assert (order["amount"], order["price"], order["status"], order["type"]) == \
        (units(exchange, "BTC_USDT.swap", 5), 40000, "pending", "buy")
    assert [o["id"] for o in exchange.data("orders", symbol="BTC_USDT.swap")] == [order_id]
    assert balance(exchange, "USDT")["frozen"] == 200                  # 5 x 0.01 x 40000 / 10
    assert exchange.data("cancel", id=order_id, symbol="BTC_USDT.swap") is True
    assert balance(exchange, "USDT")["frozen"] == 0
    assert exchange.data("positions", symbol="BTC_USDT.swap") == []


def test_contract_amounts_round_down_to_the_lot(exchange):
    trade(exchange, "ETH_USDT.swap", "buy", "2.7")
    assert position(exchange, "ETH_USDT.swap")["amount"] == units(exchange, "ETH_USDT.swap", 2)
    error = exchange.error("trade", symbol="BTC_USDT.swap", type="buy", price=-1,
                           amount=units(exchange, "BTC_USDT.swap", "0.05"))
    assert f"below the minimum {units(exchange, 'BTC_USDT.swap', '0.1')!r}" in error


def test_coin_margined_swap_takes_margin_in_the_coin(exchange):
    if "BTC_USD.swap" not in swaps_of(exchange):
        pytest.skip(f"{exchange.exchange} serves no coin-margined swaps")
    # 100 contracts x 100 USD at 50000.1 = 0.19999960 BTC notional, / leverage 10
    trade(exchange, "BTC_USD.swap", "buy", 100)
    held = position(exchange, "BTC_USD.swap")
    assert (held["amount"], held["type"], held["margin"]) == (units(exchange, "BTC_USD.swap", 100), 0, 0.01999996)
    assert balance(exchange, "BTC")["frozen"] == 0.01999996


@pytest.mark.live_only
def test_swap_order_is_placed_once_when_the_answer_is_lost(exchange):
    path = exchange.fake.SWAP_ORDER_PATH or exchange.fake.ORDER_PATH
    exchange.fake.inject("drop_after", path=path)
    assert trade(exchange, "BTC_USDT.swap", "buy", 1)
    assert len(exchange.fake.engine.orders) == 1
    assert position(exchange, "BTC_USDT.swap")["amount"] == units(exchange, "BTC_USDT.swap", 1)


# ---------------------------------------------------------------------------- leverage, listing, funding

def test_leverage_change_applies_to_the_next_open(exchange):
    assert exchange.data("margin_level", symbol="BTC_USDT.swap", level=20) is True
    trade(exchange, "BTC_USDT.swap", "buy", 10)
    held = position(exchange, "BTC_USDT.swap")
    assert (held["margin_level"], held["margin"]) == (20, 250.0005)
    assert exchange.data("marginlevel", symbol="BTC_USDT.swap", level=100) is True


def test_positions_by_symbol_range_and_all(exchange):
    opened = {"BTC_USDT.swap": ("buy", 1), "ETH_USDT.swap": ("sell", 2), "BTC_USD.swap": ("buy", 3)}
    for symbol in swaps_of(exchange):
        trade(exchange, symbol, opened[symbol][0], opened[symbol][1])
    everything = {p["symbol"]: (p["type"], p["amount"]) for p in exchange.data("positions")}
    assert everything == {symbol: (0 if side == "buy" else 1, units(exchange, symbol, contracts))
                          for symbol, (side, contracts) in opened.items() if symbol in swaps_of(exchange)}
    assert {p["symbol"] for p in exchange.data("positions", symbol="USDT.swap")} == {"BTC_USDT.swap", "ETH_USDT.swap"}
    if "BTC_USD.swap" in swaps_of(exchange):
        assert [p["symbol"] for p in exchange.data("positions", symbol="BTC_USD.swap")] == ["BTC_USD.swap"]
    assert exchange.data("positions", symbol="ETH_USDT.swap")[0]["type"] == 1


def test_funding_rate_next_time_and_interval(exchange):
    now = int(time.time() * 1000)
    eth_interval = exchange.fake.FUNDING_INTERVAL or 4 * HOUR_MS     # the engine's, unless the exchange publishes none
    (funding,) = exchange.data("fundings", symbol="ETH_USDT.swap")
    assert (funding["symbol"], funding["rate"], funding["interval"]) == ("ETH_USDT.swap", -0.00005, eth_interval)
    assert funding["time"] % funding["interval"] == 0 and now < funding["time"] <= now + eth_interval + 60_000
    every = {f["symbol"]: f for f in exchange.data("fundings")}
    assert swaps_of(exchange) <= set(every)
    assert (every["BTC_USDT.swap"]["rate"], every["BTC_USDT.swap"]["interval"]) == (0.0001, 8 * HOUR_MS)
    assert {f["symbol"] for f in exchange.data("fundings", symbol="USDT.swap")} == {"BTC_USDT.swap", "ETH_USDT.swap"}


# ---------------------------------------------------------------------------- hedge (long/short) mode

def test_hedge_mode_holds_long_and_short_apart(exchange):
    exchange.set_hedge_mode(True)
    btc = lambda contracts: units(exchange, "BTC_USDT.swap", contracts)
    trade(exchange, "BTC_USDT.swap", "buy", 5)
    trade(exchange, "BTC_USDT.swap", "sell", 3)
    held = sorted((p["type"], p["amount"]) for p in exchange.data("positions", symbol="BTC_USDT.swap"))
    assert held == [(0, btc(5)), (1, btc(3))]
    refused(exchange, "close_exceeds_position", "trade", symbol="BTC_USDT.swap", type="closesell", price=-1,
            amount=btc(4))
    close_id = trade(exchange, "BTC_USDT.swap", "closebuy", 5)
    closing = exchange.data("order", id=close_id, symbol="BTC_USDT.swap")
    assert (closing["type"], closing["offset"]) == ("sell", "close")
    assert [(p["type"], p["amount"]) for p in exchange.data("positions", symbol="BTC_USDT.swap")] == [(1, btc(3))]
    trade(exchange, "BTC_USDT.swap", "closesell", 3)
    assert exchange.data("positions") == []


# ---------------------------------------------------------------------------- FMZ's Order fields

ORDER_FIELDS = set(fmz_plugin.ORDER)          # the answer contract, written once in fmz_plugin
# FMZ order type -> (type: the side that goes to the book, offset); a close needs a position first
BOOK_SIDES = {"buy": ("buy", "open"), "sell": ("sell", "open"), "closebuy": ("sell", "close"),
              "closesell": ("buy", "close")}
OPENED_BEFORE = {"closebuy": "buy", "closesell": "sell"}


@pytest.mark.parametrize("hedge", [False, True], ids=["net", "hedge"])
@pytest.mark.parametrize("order_type", list(BOOK_SIDES))
def test_swap_orders_carry_fmz_order_fields_in_every_listing(exchange, order_type, hedge):
    """type is only buy or sell, offset open or close, contract_type swap, time the creation in
    ms: in order, orders and historyorders, in net and hedge mode."""
    exchange.set_hedge_mode(hedge)
    started = int(time.time() * 1000)
    if order_type in OPENED_BEFORE:
        trade(exchange, "BTC_USDT.swap", OPENED_BEFORE[order_type], 2)
    side, offset = BOOK_SIDES[order_type]
    resting = trade(exchange, "BTC_USDT.swap", order_type, 1, price=40000 if side == "buy" else 60000)
    filled = trade(exchange, "BTC_USDT.swap", order_type, 1)

    def check(order):
        assert set(order) == ORDER_FIELDS and order["symbol"] == "BTC_USDT.swap"
        assert fmz_plugin.order_problems(order) == []
        assert (order["type"], order["offset"], order["contract_type"]) == (side, offset, "swap")
        assert isinstance(order["time"], int) and started - 1000 <= order["time"] <= started + 60_000

    check(exchange.data("order", id=resting, symbol="BTC_USDT.swap"))
    check(exchange.data("order", id=filled, symbol="BTC_USDT.swap"))
    (listed,) = exchange.data("orders", symbol="BTC_USDT.swap")
    assert listed["id"] == resting
    check(listed)
    exchange.data("cancel", id=resting, symbol="BTC_USDT.swap")
    history = {o["id"]: o for o in exchange.data("historyorders", symbol="BTC_USDT.swap", since=0, limit=10)}
    assert {resting, filled} <= set(history)
    check(history[resting])
    check(history[filled])


# ---------------------------------------------------------------------------- errors

@pytest.mark.live_only
@pytest.mark.parametrize("level", [101, 1000])
def test_leverage_above_the_maximum_is_refused(exchange, level):
    refused(exchange, "leverage_too_high", "margin_level", symbol="BTC_USDT.swap", level=level)
    trade(exchange, "BTC_USDT.swap", "buy", 1)
    assert position(exchange, "BTC_USDT.swap")["margin_level"] == 10


def test_leverage_below_one_never_leaves(exchange):
    assert "level" in exchange.error("margin_level", symbol="BTC_USDT.swap", level=0)
    assert exchange.fake.requests == []


def test_closing_more_than_held_is_refused(exchange):
    btc = lambda contracts: units(exchange, "BTC_USDT.swap", contracts)
    refused(exchange, "no_position", "trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=btc(1))
    trade(exchange, "BTC_USDT.swap", "buy", 3)
    refused(exchange, "close_exceeds_position", "trade", symbol="BTC_USDT.swap", type="closebuy", price=-1,
            amount=btc(4))
    assert position(exchange, "BTC_USDT.swap")["amount"] == btc(3)


def test_insufficient_margin_is_refused(exchange):
    refused(exchange, "insufficient_margin", "trade", symbol="BTC_USDT.swap", type="buy", price=40000,
            amount=units(exchange, "BTC_USDT.swap", 90000))


def test_unknown_contract_is_refused_with_the_exchange_code(exchange):
    assert "NOPE_USDT.swap" in exchange.error("trade", symbol="NOPE_USDT.swap", type="buy", price=-1, amount=1)
    refused(exchange, "unknown_symbol", "ticker", symbol="NOPE_USDT.swap")
    refused(exchange, "unknown_symbol", "margin_level", symbol="NOPE_USDT.swap", level=5)
    refused(exchange, "unknown_symbol", "fundings", symbol="NOPE_USDT.swap")


@pytest.mark.parametrize("method", ["positions", "margin_level", "fundings"])
def test_swap_methods_refuse_spot_symbols_before_sending(exchange, method):
    error = exchange.error(method, symbol="BTC_USDT", level=5)
    assert error.startswith(f"{exchange.fake.NAME} {method} is for perpetual swaps") and "BTC_USDT" in error
    assert exchange.fake.requests == []


@pytest.mark.parametrize("order_type", ["closebuy", "closesell"])
def test_close_types_are_refused_on_spot_before_sending(exchange, order_type):
    error = exchange.error("trade", symbol="BTC_USDT", type=order_type, price=40000, amount=1)
    assert error.startswith(f"{exchange.fake.NAME} spot orders are buy or sell") and order_type in error
    assert exchange.fake.requests == []
