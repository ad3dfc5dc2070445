"""The risk guard (exchanges/_risk.py): every rule on every exchange's fake, spot and swap, the kill
switch, the rules file re-read when it changes, and rules that are not valid.

Every fake lists the same markets (tests/fakes/engine.py): BTC_USDT bid 50000 ask 50000.1;
BTC_USDT.swap 1 contract = 0.01 BTC (a coin-counting exchange's amounts convert with `units`);
BTC_USD.swap 1 contract = 100 USD. A refused order never reaches the exchange: the fake's engine
holds no order for it.
"""
import contextlib
import json
import os
import threading
from decimal import Decimal

import pytest

import fmz_plugin
from exchanges import EXCHANGES
from exchanges._risk import RiskGuard, best_price, figure, parse_rules
from tests.conftest import FAKES, PluginClient, serving
from tests.fakes.okx import FakeOKX
from tests.test_call_check import keys_of, rows, run
from tests.test_contract_swap import units
from tests.test_status import FakeFMZ, get, tables_of

NAMES = {key: module.NAME for key, module in EXCHANGES.items()}


@pytest.fixture(params=list(FAKES))
def fake(request):
    with FAKES[request.param]() as fake:
        yield fake


@pytest.fixture
def guarded(fake, tmp_path):
    """guarded(**rules) -> a client of a plugin (in this process) serving `fake`, whose orders
    pass `rules` for that exchange, written to tmp_path/risk.json (guarded(file={...}): the
    whole file); its kill switch is tmp_path/fmz-plugin.halt."""
    with contextlib.ExitStack() as stack:
        def start(file=None, **rules):
            path = tmp_path / "risk.json"
            write(path, file if file is not None else {fake.NAME: rules})
            guard = RiskGuard(NAMES, path=str(path))
            url, server = stack.enter_context(serving({fake.NAME.lower(): fake.url}, risk=guard))
            client = PluginClient(url, fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
            client.fake, client.server, client.guard, client.path = fake, server, guard, path
            return client
        start.fake = fake
        yield start


def write(path, rules):
    """Replace the file as an editor does (a new file moved over the old one)."""
    text = rules if isinstance(rules, str) else json.dumps(rules)
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def serves_swaps(ex):
    if "positions" not in EXCHANGES[ex.exchange.lower()].METHODS:
        pytest.skip(f"{ex.exchange} serves no perpetual swaps")


def serves_spot(guarded):
    """For a test of spot orders: skipped on an exchange without spot markets (BloFin)."""
    if not guarded.fake.SPOT:
        pytest.skip(f"{guarded.fake.NAME} serves perpetual swaps only")


def refused(ex, rule_text, **order):
    """The order is refused with exactly "risk guard: `rule_text`" and never reached the exchange."""
    before = len(ex.fake.engine.orders)
    error = ex.error("trade", **order)
    assert error == f"risk guard: {rule_text}", error
    assert len(ex.fake.engine.orders) == before
    return error


def placed(ex, **order):
    return ex.data("trade", **order)["id"]


def hold_position(ex, symbol, side, contracts):
    """An open swap position of `contracts` engine contracts, made in the fake's engine."""
    base, quote = symbol.split(".")[0].split("_")
    ex.fake.engine.place((base, quote, "swap"), side, "market", Decimal(contracts))


def amount(ex, symbol, contracts):
    """`contracts` engine contracts in the exchange's amount unit, as a refusal writes it."""
    return figure(Decimal(str(units(ex, symbol, contracts))))


# ---------------------------------------------------------------------------- max_order_value

def test_order_value_over_the_limit_is_refused_before_the_exchange(guarded):
    serves_spot(guarded)
    ex = guarded(max_order_value=5000)
    refused(ex, f"order value 8,000 USDT over max_order_value 5,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.2")
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.125")       # 5,000: at the limit


def test_market_orders_are_valued_at_the_best_price(guarded):
    serves_spot(guarded)
    ex = guarded(max_order_value=5000)
    refused(ex, f"order value 10,000 USDT over max_order_value 5,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="sell", price=-1, amount="0.2")             # at the best bid, 50000
    refused(ex, f"order value 6,000 USDT over max_order_value 5,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=-1, amount=6000)              # a market buy's amount is quote
    placed(ex, symbol="BTC_USDT", type="sell", price=-1, amount="0.1")


def test_swap_order_value_is_contracts_times_contract_value_times_price(guarded):
    ex = guarded(max_order_value=3000)
    serves_swaps(ex)
    contracts = amount(ex, "BTC_USDT.swap", 10)      # 10 x 0.01 BTC x 40000 = 4000 USDT on every exchange
    refused(ex, f"order value 4,000 USDT over max_order_value 3,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT.swap", type="buy", price=40000, amount=contracts)
    refused(ex, f"order value 5,000 USDT over max_order_value 3,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT.swap", type="sell", price=-1, amount=contracts)    # at the best bid, 50000
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=30000, amount=contracts)


def test_inverse_swap_value_is_contracts_times_their_quote_value(guarded):
    ex = guarded(max_order_value=400)
    serves_swaps(ex)
    if "BTC_USD.swap" not in ex.fake.SWAPS:
        pytest.skip(f"{ex.exchange} serves no coin-margined swaps")
    refused(ex, f"order value 500 USD over max_order_value 400 ({ex.exchange}, risk.json)",
            symbol="BTC_USD.swap", type="buy", price=40000, amount=5)           # 5 x 100 USD
    placed(ex, symbol="BTC_USD.swap", type="buy", price=40000, amount=4)


@pytest.mark.parametrize("close", [{"type": "closebuy"}, {"type": "sell", "offset": "close"},
                                   {"type": "sell", "direction": "closebuy"}])
def test_a_close_passes_value_symbol_and_position_rules(guarded, close):
    ex = guarded(max_order_value=10, symbols=["ETH_USDT"], max_position=0)
    serves_swaps(ex)
    hold_position(ex, "BTC_USDT.swap", "buy", 10)
    contracts = amount(ex, "BTC_USDT.swap", 10)
    refused(ex, f"BTC_USDT.swap is not in symbols [ETH_USDT] ({ex.exchange}, risk.json)",
            symbol="BTC_USDT.swap", type="buy", price=-1, amount=contracts)
    placed(ex, symbol="BTC_USDT.swap", price=-1, amount=contracts, **close)
    assert ex.data("positions", symbol="BTC_USDT.swap") == []


# ---------------------------------------------------------------------------- max_order_amount

def test_order_amount_over_the_limit_is_refused(guarded):
    serves_spot(guarded)
    ex = guarded(max_order_amount="0.2")
    refused(ex, f"order amount 0.5 BTC over max_order_amount 0.2 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.5")
    refused(ex, f"order amount 0.2999994 BTC (at the best ask 50,000.1) over max_order_amount 0.2 "
                f"({ex.exchange}, risk.json)", symbol="BTC_USDT", type="buy", price=-1, amount=15000)
    placed(ex, symbol="BTC_USDT", type="sell", price=60000, amount="0.2")


def test_swap_order_amount_is_in_the_exchanges_amount_unit(guarded, fake):
    limit = units_of(fake, "BTC_USDT.swap", 5)
    ex = guarded(max_order_amount=limit)
    serves_swaps(ex)
    refused(ex, f"order amount {amount(ex, 'BTC_USDT.swap', 6)} over max_order_amount {figure(Decimal(limit))} "
                f"({ex.exchange}, risk.json)", symbol="BTC_USDT.swap", type="buy", price=40000,
            amount=amount(ex, "BTC_USDT.swap", 6))
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=40000, amount=amount(ex, "BTC_USDT.swap", 5))


def units_of(fake, symbol, contracts):
    return str(Decimal(contracts) * Decimal(str(fake.CONTRACT_UNITS.get(symbol, 1))))


# ---------------------------------------------------------------------------- symbols

def test_only_the_listed_symbols_may_be_traded(guarded):
    serves_spot(guarded)
    ex = guarded(symbols=["BTC_USDT", "USDT.swap"])
    refused(ex, f"ETH_USDT is not in symbols [BTC_USDT, USDT.swap] ({ex.exchange}, risk.json)",
            symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    placed(ex, symbol="btc_usdt", type="buy", price=40000, amount="0.001")
    if "positions" in EXCHANGES[ex.exchange.lower()].METHODS:
        placed(ex, symbol="ETH_USDT.swap", type="buy", price=1000, amount=amount(ex, "ETH_USDT.swap", 1))


def test_reads_and_cancels_are_never_blocked(guarded):
    serves_spot(guarded)
    ex = guarded(symbols=[], max_order_value=0)
    order_id = ex.fake.engine.place(("BTC", "USDT"), "buy", "limit", Decimal("0.001"), Decimal(40000))["id"]
    assert ex.data("ticker", symbol="ETH_USDT")["symbol"] == "ETH_USDT"
    assert len(ex.data("orders", symbol="BTC_USDT")) == 1
    refused(ex, f"BTC_USDT is not in symbols [] ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    listed = ex.data("orders", symbol="BTC_USDT")[0]["id"]
    assert ex.data("cancel", id=listed, symbol="BTC_USDT") is True
    assert ex.fake.engine.orders[order_id]["status"] == "canceled"


# ---------------------------------------------------------------------------- max_orders_per_minute

def test_orders_per_minute_count_only_orders_that_reached_the_exchange(guarded):
    serves_spot(guarded)
    ex = guarded(max_orders_per_minute=2, max_order_value=150000)
    refused(ex, f"order value 200,000 USDT over max_order_value 150,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount=5)                # refused here: not counted
    assert "below the minimum" in ex.error("trade", symbol="BTC_USDT", type="buy", price=40000,
                                           amount="0.000001")                    # never sent: not counted
    assert ex.error("trade", symbol="BTC_USDT", type="sell", price=60000, amount=2).startswith(
        f"{ex.exchange} {ex.fake.CODES['insufficient']}")                        # the exchange refused it: counted
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    refused(ex, f"3 orders within a minute over max_orders_per_minute 2 ({ex.exchange}, risk.json)",
            symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    if "positions" in EXCHANGES[ex.exchange.lower()].METHODS:                  # every market of the exchange
        refused(ex, f"3 orders within a minute over max_orders_per_minute 2 ({ex.exchange}, risk.json)",
                symbol="ETH_USDT.swap", type="buy", price=1000, amount=amount(ex, "ETH_USDT.swap", 1))


def test_orders_per_minute_forget_orders_older_than_a_minute(guarded):
    serves_spot(guarded)
    ex = guarded(max_orders_per_minute=1)
    clock = [1000.0]
    ex.guard.clock = lambda: clock[0]
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    refused(ex, f"2 orders within a minute over max_orders_per_minute 1 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    clock[0] += 60.001
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")


# ---------------------------------------------------------------------------- max_open_orders

def test_open_orders_on_the_symbol_are_counted_before_the_order(guarded):
    serves_spot(guarded)
    ex = guarded(max_open_orders=2)
    first = placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    placed(ex, symbol="BTC_USDT", type="buy", price=40001, amount="0.001")
    refused(ex, f"3 open orders on BTC_USDT over max_open_orders 2 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40002, amount="0.001")
    placed(ex, symbol="ETH_USDT", type="buy", price=1000, amount="0.01")        # another symbol
    assert ex.data("cancel", id=first, symbol="BTC_USDT") is True
    placed(ex, symbol="BTC_USDT", type="sell", price=-1, amount="0.001")       # fills at once: never open
    placed(ex, symbol="BTC_USDT", type="buy", price=40002, amount="0.001")
    refused(ex, f"3 open orders on BTC_USDT over max_open_orders 2 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40003, amount="0.001")


def test_a_check_the_exchange_cannot_answer_refuses_the_order(guarded):
    serves_spot(guarded)
    ex = guarded(max_open_orders=5)
    ex.fake.inject("5xx", times=2)                  # the open orders' read and its one retry
    error = ex.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    assert error.startswith("risk guard: cannot check max_open_orders (") and \
        error.endswith("), so the order was not sent"), error
    assert ex.fake.engine.orders == {}
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")


def test_open_orders_of_a_swap(guarded):
    ex = guarded(max_open_orders=1)
    serves_swaps(ex)
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=40000, amount=amount(ex, "BTC_USDT.swap", 1))
    refused(ex, f"2 open orders on BTC_USDT.swap over max_open_orders 1 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT.swap", type="sell", price=60000, amount=amount(ex, "BTC_USDT.swap", 1))


# ---------------------------------------------------------------------------- max_position

def test_position_after_the_order_on_the_side_it_opens(guarded, fake):
    ex = guarded(max_position=units_of(fake, "BTC_USDT.swap", 15))
    serves_swaps(ex)
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=-1, amount=amount(ex, "BTC_USDT.swap", 10))
    refused(ex, f"position on BTC_USDT.swap after the order {amount(ex, 'BTC_USDT.swap', 20)} over max_position "
                f"{amount(ex, 'BTC_USDT.swap', 15)} ({ex.exchange}, risk.json)",
            symbol="BTC_USDT.swap", type="buy", price=-1, amount=amount(ex, "BTC_USDT.swap", 10))
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=-1, amount=amount(ex, "BTC_USDT.swap", 5))
    placed(ex, symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=amount(ex, "BTC_USDT.swap", 15))
    placed(ex, symbol="BTC_USDT.swap", type="sell", price=-1, amount=amount(ex, "BTC_USDT.swap", 15))


def test_in_hedge_mode_each_side_is_its_own_position(guarded, fake):
    ex = guarded(max_position=units_of(fake, "BTC_USDT.swap", 15))
    serves_swaps(ex)
    fake.engine.set_hedge_mode(True)
    fake.engine.place(("BTC", "USDT", "swap"), "buy", "market", Decimal(10), position_side="long")
    fake.engine.place(("BTC", "USDT", "swap"), "sell", "market", Decimal(10), position_side="short")
    refused(ex, f"position on BTC_USDT.swap after the order {amount(ex, 'BTC_USDT.swap', 20)} over max_position "
                f"{amount(ex, 'BTC_USDT.swap', 15)} ({ex.exchange}, risk.json)",
            symbol="BTC_USDT.swap", type="sell", price=-1, amount=amount(ex, "BTC_USDT.swap", 10))
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=-1, amount=amount(ex, "BTC_USDT.swap", 5))
    placed(ex, symbol="BTC_USDT.swap", type="closesell", price=-1, amount=amount(ex, "BTC_USDT.swap", 10))


def test_a_resting_opening_order_counts_toward_the_position_only_once_filled(guarded, fake):
    ex = guarded(max_position=units_of(fake, "BTC_USDT.swap", 10))
    serves_swaps(ex)
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=40000, amount=amount(ex, "BTC_USDT.swap", 10))
    placed(ex, symbol="BTC_USDT.swap", type="buy", price=-1, amount=amount(ex, "BTC_USDT.swap", 10))


# ---------------------------------------------------------------------------- max_leverage

def test_leverage_over_the_limit_is_refused(guarded):
    ex = guarded(max_leverage=10)
    serves_swaps(ex)
    assert ex.error("margin_level", symbol="BTC_USDT.swap", level=20) ==         f"risk guard: leverage 20 over max_leverage 10 ({ex.exchange}, risk.json)"
    assert ex.fake.engine.leverage_of(("BTC", "USDT", "swap")) == 10 and ex.fake.engine.leverage == {}
    assert ex.data("margin_level", symbol="BTC_USDT.swap", level=5) is True
    assert ex.fake.engine.leverage_of(("BTC", "USDT", "swap")) == 5


# ---------------------------------------------------------------------------- one key's entry

def test_a_keys_entry_overrides_its_exchanges_rules_and_keeps_the_others(guarded, fake):
    serves_spot(guarded)
    ex = guarded(file={fake.NAME: {"max_order_value": 5000, "symbols": ["BTC_USDT"]},
                       f"{fake.NAME}:{fake.ACCESS_KEY[-4:]}": {"max_order_value": 100},
                       f"{fake.NAME}:zzzz": {"max_order_value": 1}})
    refused(ex, f"order value 400 USDT over max_order_value 100 ({ex.exchange} key ...{fake.ACCESS_KEY[-4:]}, "
                f"risk.json)", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")
    refused(ex, f"ETH_USDT is not in symbols [BTC_USDT] ({ex.exchange}, risk.json)",
            symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.002")


# ---------------------------------------------------------------------------- the kill switch

def test_halt_refuses_every_new_order_cancels_pass_and_resume_trades_again(guarded, capsys):
    serves_spot(guarded)
    ex = guarded()
    halt_file = str(ex.path.with_name("fmz-plugin.halt"))
    order_id = placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    assert run("halt", "--risk", ex.path, "--plugin", ex.url, "robot", "gone", "wild") == 0
    assert capsys.readouterr().out.startswith(f"trading halted: {halt_file} exists")
    assert "robot gone wild" in open(halt_file).read()
    halted = f"trading halted by {halt_file} (remove it, or run `fmz_plugin.py resume`, to trade again)"
    refused(ex, halted, symbol="ETH_USDT", type="sell", price=-1, amount="0.01")
    if "positions" in EXCHANGES[ex.exchange.lower()].METHODS:
        hold_position(ex, "BTC_USDT.swap", "buy", 1)
        refused(ex, halted, symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=amount(ex, "BTC_USDT.swap", 1))
        assert ex.data("margin_level", symbol="BTC_USDT.swap", level=3) is True     # no order
    assert ex.data("cancel", id=order_id, symbol="BTC_USDT") is True
    assert ex.data("accounts")
    assert run("resume", "--halt-file", halt_file) == 0
    assert capsys.readouterr().out == f"trading resumed: {halt_file} removed\n"
    placed(ex, symbol="ETH_USDT", type="sell", price=-1, amount="0.01")
    assert run("resume", "--halt-file", halt_file) == 0
    assert "not halted" in capsys.readouterr().out


def test_halt_without_rules_refuses_every_order_on_every_exchange(tmp_path):
    halt_file = tmp_path / "stop"
    guard = RiskGuard(NAMES, halt_file=str(halt_file))
    halt_file.write_text("")
    refusal = f"risk guard: trading halted by {halt_file} (remove it, or run `fmz_plugin.py resume`, to trade again)"
    with FakeOKX() as okx, FAKES["Binance"]() as binance, \
            serving({"okx": okx.url, "binance": binance.url}, risk=guard) as (url, server):
        for fake in (okx, binance):
            client = PluginClient(url, fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
            assert client.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.001") == refusal
            assert client.data("ticker", symbol="BTC_USDT")
            assert fake.engine.orders == {}
    assert guard.report()["refusals"] == [{"exchange": "Binance", "rule": "halt", "count": 1, "last": refusal},
                                          {"exchange": "OKX", "rule": "halt", "count": 1, "last": refusal}]


# ---------------------------------------------------------------------------- the file changes

def test_changed_rules_are_read_without_a_restart_and_a_bad_version_keeps_the_last_good(guarded, caplog):
    serves_spot(guarded)
    ex = guarded(max_order_value=5000)
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.1")               # 4,000
    write(ex.path, {ex.exchange: {"max_order_value": 1000}})
    refused(ex, f"order value 4,000 USDT over max_order_value 1,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.1")
    write(ex.path, '{"%s": {"max_order_value": 1000,}' % ex.exchange)
    refused(ex, f"order value 4,000 USDT over max_order_value 1,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.1")                  # the last good rules
    problem = ex.guard.report()["problem"]
    assert problem.startswith("risk.json is invalid, the previous rules stay: risk.json is not valid JSON:"), problem
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["risk guard: " + problem]
    status = json.loads(get(ex.url, "/status")[2])["risk"]
    assert status["problem"] == problem and status["entries"] == [ex.exchange]
    ex.path.unlink()
    refused(ex, f"order value 4,000 USDT over max_order_value 1,000 ({ex.exchange}, risk.json)",
            symbol="BTC_USDT", type="buy", price=40000, amount="0.1")                  # a deleted file too
    assert "risk.json cannot be read" in ex.guard.report()["problem"]
    write(ex.path, {ex.exchange: {"max_order_value": 4000}})
    placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.1")
    assert ex.guard.report()["problem"] == ""


@pytest.mark.parametrize("text, why", [
    ("{", "risk.json is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[]", 'risk.json must hold a JSON object of exchange paths, e.g. {"OKX": {...}}'),
    ('{"Kraken": {}}', "risk.json: 'Kraken' is no exchange this plugin serves"),
    ('{"OKX": {"max_order_valu": 1}}', "risk.json: OKX.max_order_valu is no rule; rules are symbols, "),
    ('{"OKX": {"max_order_value": -1}}', "risk.json: OKX.max_order_value must be a number >= 0, got -1"),
    ('{"OKX": {"max_order_value": true}}', "risk.json: OKX.max_order_value must be a number >= 0, got true"),
    ('{"OKX": {"max_order_value": NaN}}', "risk.json is not valid JSON: NaN is not a number"),
    ('{"OKX": {"max_open_orders": 2.5}}', "risk.json: OKX.max_open_orders must be a whole number >= 0, got 2.5"),
    ('{"OKX": {"max_leverage": 0}}', "risk.json: OKX.max_leverage must be a whole number >= 1, got 0"),
    ('{"OKX": {"symbols": "BTC_USDT"}}', "risk.json: OKX.symbols must be a list of symbols"),
    ('{"OKX": {"symbols": ["BTC-USDT"]}}', "risk.json: OKX.symbols: invalid symbol 'BTC-USDT'"),
    ('{"OKX": {}, "OKX": {}}', "risk.json is not valid JSON: 'OKX' is given twice"),
    ('{"OKX": {}, "okx": {}}', "risk.json: okx names an entry already given"),
    ('{"OKX:abc": {}}', "risk.json: 'OKX:abc': after the colon come the last 4 characters of an access key"),
    ('{"OKX": 5}', "risk.json: OKX must be an object of rules"),
    ('{"OKX": {"allow_io": "yes"}}', 'risk.json: OKX.allow_io must be true or false, got "yes"'),
    ('{"OKX": {"allow_io": 1}}', "risk.json: OKX.allow_io must be true or false, got 1"),
])
def test_rules_that_are_not_valid_say_why(text, why):
    with pytest.raises(fmz_plugin.PluginError) as refusal:
        parse_rules(text, "risk.json", NAMES)
    assert str(refusal.value).startswith(why), str(refusal.value)


def test_the_plugin_refuses_to_start_with_rules_that_are_not_valid_in_one_line(tmp_path, capsys):
    path = tmp_path / "risk.json"
    path.write_text('{"OKX": {"max_order_value": "lots"}}')
    assert run("--port", "0", "--risk", path) == 2
    err = capsys.readouterr().err
    assert err == ("fmz_plugin.py: the risk rules are not valid: risk.json: OKX.max_order_value must "
                   "be a number >= 0, got \"lots\"\n"), err
    assert run("--port", "0", "--risk", tmp_path / "missing.json") == 2
    assert capsys.readouterr().err == ("fmz_plugin.py: the risk rules are not valid: missing.json cannot "
                                       "be read: No such file or directory\n")


# ---------------------------------------------------------------------------- status, banner, FMZ

def test_status_shows_halted_and_every_refusal_per_rule(guarded):
    ex = guarded(max_order_value=1000)
    for _ in range(2):
        ex.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.1")
    halt_file = ex.guard.halt_file
    open(halt_file, "w").close()
    ex.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")
    risk = json.loads(get(ex.url, "/status")[2])["risk"]
    assert risk == {"halted": True, "halt_reason": risk["halt_reason"], "halt_file": halt_file, "rules": "risk.json",
                    "rules_file": str(ex.path), "entries": [ex.exchange], "io_allowed": [], "problem": "", "refusals": [
                        {"exchange": ex.exchange, "rule": "halt", "count": 1, "last": risk["refusals"][0]["last"]},
                        {"exchange": ex.exchange, "rule": "max_order_value", "count": 2,
                         "last": f"risk guard: order value 4,000 USDT over max_order_value 1,000 ({ex.exchange}, "
                                 "risk.json)"}]}
    page = get(ex.url, "/", accept="text/html")[2]
    section = page[page.index("<!-- risk guard -->"):page.index("<!-- /risk guard -->")]
    assert "HALTED" in section and "color:#c00" in section and "<td>max_order_value</td><td>2</td>" in section
    os.remove(halt_file)
    page = get(ex.url, "/", accept="text/html")[2]
    assert "HALTED" not in page and "Trading (kill switch" in page


def test_fmz_status_table_has_the_guards_refusals():
    guard = RiskGuard(NAMES, text='{"OKX": {"max_leverage": 3}}', halt_file="/nonexistent/halt")
    report = {"version": "x", "uptime_seconds": 1, "methods": [], "exchanges": [], "risk": guard.report()}
    report["risk"]["refusals"] = [{"exchange": "OKX", "rule": "max_leverage", "count": 1, "last": "risk guard: ..."}]
    report["risk"]["halted"] = True
    report["risk"]["halt_reason"] = "trading halted by /nonexistent/halt (remove it, ...)"
    text, tables = tables_of(fmz_plugin.status_table(report))
    assert text.endswith(", HALTED: trading halted by /nonexistent/halt (remove it, ...)")
    assert tables["Risk guard"]["rows"] == [["OKX", "max_leverage", 1, "risk guard: ..."]]


def test_the_banner_names_the_rules_and_the_kill_switch(tmp_path):
    path = tmp_path / "risk.json"
    path.write_text('{"OKX": {"max_order_value": 1}, "Bybit:ab12": {}}')
    args = fmz_plugin.parse_args(["--risk", str(path)])
    settings = fmz_plugin.settings_of(args)
    with serving({}) as (url, server):
        banner = fmz_plugin.banner(server, settings)
    assert f"Risk guard: rules of risk.json for Bybit key ...ab12, OKX; kill switch {tmp_path}/fmz-plugin.halt " \
           "(absent, trading)" in banner


def test_the_risk_strategy_parameter_holds_the_rules(okx_fake):
    rules = json.dumps({"OKX": {"max_order_value": 100}})
    parameters = {"Risk": rules, "HaltFile": "/tmp/no-such-halt-file", "BaseUrls": f"okx={okx_fake.url}"}
    argv = fmz_plugin.strategy_argv(parameters)
    assert argv[-6:-2] == ["--risk-json", rules, "--halt-file", "/tmp/no-such-halt-file"]
    settings = fmz_plugin.settings_of(fmz_plugin.strategy_args(parameters, print))
    answer = fmz_plugin.dispatch("OKX", {"access_key": okx_fake.ACCESS_KEY, "secret_key": okx_fake.SECRET_KEY,
                                         "method": "trade", "params": {"symbol": "BTC_USDT", "type": "buy",
                                                                       "price": "40000", "amount": "0.01"}},
                                 settings=settings)
    assert answer == {"error": "risk guard: order value 400 USDT over max_order_value 100 (OKX, Risk parameter)"}
    with pytest.raises(fmz_plugin.StartupError, match="Risk parameter: OKX.max_order_value must be"):
        fmz_plugin.settings_of(fmz_plugin.strategy_args({"Risk": '{"OKX": {"max_order_value": "x"}}'}, print))


def test_risk_json_in_a_terminal_is_named_as_typed(capsys):
    """--risk-json answers in the terminal's words, not in FMZ's (its Risk parameter)."""
    assert fmz_plugin.run(["--port", "0", "--risk-json", "{bad"]) == 2
    assert capsys.readouterr().err.startswith("fmz_plugin.py: the risk rules are not valid: --risk-json is not "
                                              "valid JSON: ")
    guard = fmz_plugin.risk_guard_of(fmz_plugin.parse_args(["--risk-json", '{"OKX": {"max_leverage": 3}}']))
    assert guard.report()["rules"] == "--risk-json"
    nothing = fmz_plugin.risk_guard_of(fmz_plugin.parse_args([])).report()
    assert (nothing["rules"], nothing["entries"]) == (None, [])           # no rules: named nowhere


def test_a_bad_risk_parameter_is_said_in_fmz_log(monkeypatch):
    fmz = FakeFMZ(monkeypatch, Port=0, Risk='{"OKX": {"max_order_value": -5}}')
    with pytest.raises(SystemExit):
        fmz_plugin.main()
    assert fmz.logs.get_nowait() == ("fmz-plugin cannot start: the risk rules are not valid: Risk parameter: "
                                     "OKX.max_order_value must be a number >= 0, got -5")


def test_the_bundle_carries_the_guard(bundle_forker, tmp_path):
    path = tmp_path / "risk.json"
    path.write_text('{"OKX": {"max_order_value": 100}}')
    with FakeOKX() as okx, bundle_forker.plugin({"okx": okx.url}, extra=["--risk", str(path)]) as url:
        client = PluginClient(url, "OKX", okx.ACCESS_KEY, okx.SECRET_KEY)
        assert client.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01") == \
            "risk guard: order value 400 USDT over max_order_value 100 (OKX, risk.json)"
        (tmp_path / "fmz-plugin.halt").write_text("")
        assert client.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.001").startswith(
            f"risk guard: trading halted by {tmp_path}/fmz-plugin.halt")
        assert okx.engine.orders == {}


# ---------------------------------------------------------------------------- check --trade, robots racing

PERMISSIVE = {"max_order_value": 1000000, "max_order_amount": 1000000, "max_orders_per_minute": 100,
              "max_open_orders": 50, "max_position": 1000000, "max_leverage": 100,
              "symbols": ["BTC_USDT", "ETH_USDT", "USDT.swap"]}


@pytest.mark.parametrize("symbol", ["BTC_USDT", "BTC_USDT.swap"])
def test_check_trade_passes_with_a_permissive_risk_file(guarded, symbol, capsys):
    ex = guarded(**PERMISSIVE)
    if symbol.endswith(".swap"):
        serves_swaps(ex)
    else:
        serves_spot(guarded)
    assert run("check", f"{ex.url}/{ex.exchange}", "--symbol", symbol, "--trade", "--yes", *keys_of(ex.fake)) == 0
    found = rows(capsys.readouterr().out)
    assert found["trade"][0] == found["trade: gone"][0] == "pass", found
    assert ex.guard.report()["refusals"] == []


@pytest.mark.parametrize("rule, limit", [("max_open_orders", 3), ("max_orders_per_minute", 3)])
def test_robots_racing_cannot_pass_a_limit_together(okx_fake, tmp_path, rule, limit):
    guard = RiskGuard(NAMES, text=json.dumps({"OKX": {rule: limit}}), halt_file=str(tmp_path / "halt"))
    answers = []
    with serving({"okx": okx_fake.url}, risk=guard) as (url, server):
        def robot(n):
            client = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
            answers.append(client.call("trade", symbol="BTC_USDT", type="buy", price=40000 + n, amount="0.001"))
        robots = [threading.Thread(target=robot, args=(n,)) for n in range(10)]
        for thread in robots:
            thread.start()
        for thread in robots:
            thread.join()
    placed = sum("data" in answer for answer in answers)
    # never more than the limit; a count that raced an order still in flight counts it (the guard
    # errs on refusing), so on a loaded machine one fewer may pass
    assert limit - 1 <= placed <= limit and placed == len(okx_fake.engine.orders), answers
    assert {answer["error"].split(" over ")[1] for answer in answers if "error" in answer} == \
        {f"{rule} {limit} (OKX, Risk parameter)"}, answers


# ---------------------------------------------------------------------------- exchange.IO (issue #23, 1)

def io_call(ex, verb, path, **params):
    """exchange.IO as a robot sends it: the path in the method, the verb in the Http-Method header."""
    return ex.call("__api_" + path, http_method=verb, **params)


def io_sent(ex, verb, path):
    return [r for r in ex.fake.requests if r[0] == verb and r[1].split("?")[0] == path]


def test_io_other_than_get_is_refused_while_halted_on_every_exchange(fake, tmp_path):
    """Halted, exchange.IO could still place an order (POST to the order path) or set leverage;
    now every verb but GET is refused before it is sent, with or without rules."""
    halt_file = tmp_path / "fmz-plugin.halt"
    guard = RiskGuard(NAMES, halt_file=str(halt_file))
    halt_file.write_text("")
    with serving({fake.NAME.lower(): fake.url}, risk=guard) as (url, server):
        ex = PluginClient(url, fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
        ex.fake = fake
        for verb in ("POST", "PUT", "DELETE"):
            assert io_call(ex, verb, fake.ORDER_PATH, symbol="ETHUSDT") == {
                "error": f"risk guard: exchange.IO {verb} {fake.ORDER_PATH} refused, trading halted by {halt_file} "
                         f"(remove it, or run `fmz_plugin.py resume`, to trade again)"}
        assert fake.requests == [] and fake.engine.orders == {}
        assert "data" in io_call(ex, "GET", fake.TIME_PATH)
        halt_file.unlink()
        io_call(ex, "POST", fake.ORDER_PATH, symbol="ETHUSDT")       # no rules, not halted: IO passes
        assert io_sent(ex, "POST", fake.ORDER_PATH)


def test_an_exchange_with_rules_refuses_io_other_than_get_unless_allow_io(guarded, fake):
    ex = guarded(max_order_value=5000)
    assert io_call(ex, "POST", fake.ORDER_PATH, symbol="ETHUSDT") == {
        "error": f"risk guard: exchange.IO POST {fake.ORDER_PATH} refused: {fake.NAME} has risk rules, and "
                 f"exchange.IO calls other than GET pass only with \"allow_io\": true (risk.json)"}
    assert "data" in io_call(ex, "GET", fake.TIME_PATH)
    assert not io_sent(ex, "POST", fake.ORDER_PATH)
    write(ex.path, {fake.NAME: {"max_order_value": 5000, "allow_io": True}})
    io_call(ex, "POST", fake.ORDER_PATH, symbol="ETHUSDT")
    assert len(io_sent(ex, "POST", fake.ORDER_PATH)) == 1
    assert ex.guard.report()["io_allowed"] == [fake.NAME]
    suffix = fake.ACCESS_KEY[-4:]
    write(ex.path, {fake.NAME: {"allow_io": True}, f"{fake.NAME}:{suffix}": {"allow_io": False}})
    assert io_call(ex, "DELETE", fake.ORDER_PATH)["error"].startswith(
        f"risk guard: exchange.IO DELETE {fake.ORDER_PATH} refused: {fake.NAME} key ...{suffix} has risk rules")
    assert len(io_sent(ex, "POST", fake.ORDER_PATH)) == 1 and not io_sent(ex, "DELETE", fake.ORDER_PATH)
    page = get(ex.url, "/", accept="text/html")[2]
    assert f"exchange.IO other than GET: allowed for {fake.NAME}" in page, page


# ---------------------------------------------------------------------------- a sell below the market (#23, 2)

def test_a_limit_sell_below_the_market_is_valued_at_the_best_bid(guarded):
    """0.5 BTC offered at 0.1 fills at the bid (50,000): it is worth 25,000 USDT, not 0.05."""
    ex = guarded(max_order_value=5000)
    if ex.fake.SPOT:
        refused(ex, f"order value 25,000 USDT (at the best bid 50,000) over max_order_value 5,000 ({ex.exchange}, "
                    "risk.json)", symbol="BTC_USDT", type="sell", price="0.1", amount="0.5")
        placed(ex, symbol="BTC_USDT", type="sell", price=60000, amount="0.05")      # above the bid: its own price
        placed(ex, symbol="BTC_USDT", type="sell", price=45000, amount="0.1")       # 5,000 at the bid: at the limit
    if "positions" in EXCHANGES[ex.exchange.lower()].METHODS:
        contracts = amount(ex, "BTC_USDT.swap", 12)                             # 12 x 0.01 BTC x 50000
        refused(ex, f"order value 6,000 USDT (at the best bid 50,000) over max_order_value 5,000 ({ex.exchange}, "
                    "risk.json)", symbol="BTC_USDT.swap", type="sell", price=1, amount=contracts)


# ---------------------------------------------------------------------------- keys as the exchange reads them (#23, 3)

def test_a_key_with_surrounding_spaces_is_the_key_the_exchange_reads(guarded, fake):
    """A trailing space typed into FMZ: the key is stripped everywhere (signing, the risk guard's
    per-key entry, the throttle), as the exchange reads it."""
    suffix = fake.ACCESS_KEY[-4:]
    ex = guarded(file={f"{fake.NAME}:{suffix}": {"max_order_value": 100}})
    ex.access_key, ex.secret_key = f" {fake.ACCESS_KEY}  ", f" {fake.SECRET_KEY} "
    refused(ex, f"order value 400 USDT over max_order_value 100 ({fake.NAME} key ...{suffix}, risk.json)",
            symbol=fake.SYMBOL, type="buy", price=40000, amount=fake.AMOUNT)        # 0.01 BTC on every exchange
    assert ex.data("accounts")
    placed(ex, symbol=fake.SYMBOL, type="buy", price=5000, amount=fake.AMOUNT)


# ---------------------------------------------------------------------------- the kill switch fails closed (#23, 4)

def test_a_halt_file_that_cannot_be_examined_halts(okx_fake, tmp_path):
    """A dangling symlink exists as a file; a path that cannot be looked into halts too; only
    "no such file" means trading."""
    dangling, blocked = tmp_path / "dangling.halt", tmp_path / "a-file" / "fmz-plugin.halt"
    os.symlink(tmp_path / "nowhere", dangling)
    (tmp_path / "a-file").write_text("")
    for halt_file, why in [(dangling, f"trading halted by {dangling} (remove it"),
                           (blocked, f"trading halted: the kill switch {blocked} cannot be examined (Not a "
                                     f"directory), so every new order is refused until it can")]:
        guard = RiskGuard(NAMES, halt_file=str(halt_file))
        with serving({"okx": okx_fake.url}, risk=guard) as (url, server):
            ex = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
            assert ex.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01").startswith(
                "risk guard: " + why)
            status = json.loads(get(url, "/status")[2])["risk"]
            assert status["halted"] is True and status["halt_reason"].startswith(why)
            assert "HALTED" in fmz_plugin.risk_line(status) and why in fmz_plugin.risk_line(status)
            assert why in get(url, "/", accept="text/html")[2]
    assert okx_fake.engine.orders == {}
    assert RiskGuard(NAMES, halt_file=str(tmp_path / "absent.halt")).halt_state() == (False, "")


# ---------------------------------------------------------------------------- halt acts on the plugin's file (#23, 5)

def test_halt_and_resume_act_on_the_file_the_running_plugin_watches(okx_fake, tmp_path, monkeypatch, capsys):
    watched = tmp_path / "server" / "fmz-plugin.halt"
    watched.parent.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                         # halt run from another directory
    guard = RiskGuard(NAMES, halt_file=str(watched))
    with serving({"okx": okx_fake.url}, risk=guard) as (url, server):
        ex = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
        assert run("halt", "--plugin", url, "stop") == 0
        assert capsys.readouterr().out.startswith(f"trading halted: {watched} exists (the file the plugin at {url} "
                                                  "watches)")
        assert watched.exists() and not (elsewhere / "fmz-plugin.halt").exists()
        assert ex.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01").startswith(
            f"risk guard: trading halted by {watched}")
        assert run("resume", "--plugin", url) == 0
        assert capsys.readouterr().out.startswith(f"trading resumed: {watched} removed")
        placed(ex, symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    nobody = "http://127.0.0.1:1"
    assert run("halt", "--plugin", nobody) == 0
    out = capsys.readouterr().out
    assert f"no plugin answered at {nobody}" in out and f"{elsewhere}/fmz-plugin.halt" in out, out
    assert (elsewhere / "fmz-plugin.halt").exists()
    assert run("resume", "--plugin", nobody) == 0
    assert "no plugin answered" in capsys.readouterr().out and not (elsewhere / "fmz-plugin.halt").exists()


def test_the_best_price_comes_from_the_stream_when_one_runs():
    """best_price is the one place the guard reads the market: a running stream's ticker first."""
    class Stream:
        def serve(self, exchange, method, kwargs, rest, keys=None, api=None):
            self.asked = (method, str(kwargs["symbol"]))
            return {"buy": 49000, "sell": 49001}, None
    stream = Stream()
    api = fmz_plugin.Api(EXCHANGES["okx"])
    symbol = fmz_plugin.parse_symbol("BTC_USDT")
    assert best_price(api, symbol, "sell", stream) == 49000 and best_price(api, symbol, "buy", stream) == 49001
    assert stream.asked == ("ticker", "BTC_USDT")
