"""The protocol's names as the docker may send them: every alias answers what its PROTOCOL
method answers, the order's direction in a separate param (and contradictions refused),
`records` periods sent in seconds, the status counters per method, and the vocabulary the
docker is seen to use (`seen` on the status page)."""
import json
import logging
import types

import pytest

import fmz_plugin
from fmz_plugin import ALIASES, PROTOCOL, PluginError, dispatch, records_params, trade_params
from tests.test_status import get

# Valid params of each PROTOCOL method (as the docker sends them: strings).
PARAMS = {
    "ticker": {"symbol": "BTC_USDT"},
    "depth": {"symbol": "BTC_USDT", "limit": "5"},
    "trades": {"symbol": "BTC_USDT"},
    "records": {"symbol": "BTC_USDT", "period": "60", "limit": "3"},
    "accounts": {},
    "assets": {},
    "trade": {"symbol": "BTC_USDT", "type": "buy", "price": "40000", "amount": "0.5"},
    "orders": {"symbol": "BTC_USDT"},
    "order": {"id": "BTC-USDT,1", "symbol": "BTC_USDT"},
    "historyorders": {"symbol": "BTC_USDT", "since": "0", "limit": "10"},
    "cancel": {"id": "BTC-USDT,1", "symbol": "BTC_USDT"},
    "markets": {},
    "tickers": {"symbol": "USDT.swap"},
    "positions": {"symbol": "BTC_USDT.swap"},
    "margin_level": {"symbol": "BTC_USDT.swap", "level": "10"},
    "fundings": {"symbol": "BTC_USDT.swap"},
}
FMZ_NAMES = ["GetTicker", "GetDepth", "GetTrades", "GetRecords", "GetAccount", "GetAssets", "CreateOrder",
             "GetOrders", "GetOrder", "GetHistoryOrders", "CancelOrder", "GetMarkets", "GetTickers",
             "GetPositions", "GetPosition", "SetMarginLevel", "GetFundings"]


@pytest.fixture
def echo(monkeypatch):
    """A served exchange "Echo" whose every handler answers its own name and the arguments it
    got: two requests answer alike exactly when they reach the same handler with the same
    arguments."""
    def handler(name):
        return lambda api, **kwargs: ({"method": name, "kwargs": {k: str(v) for k, v in kwargs.items()}}, None)
    module = types.SimpleNamespace(NAME="Echo", BASE_URL="http://127.0.0.1:9", HOSTS={},
                                   METHODS={name: handler(name) for name in [*PROTOCOL, "__api_"]})
    monkeypatch.setitem(fmz_plugin.EXCHANGES, "echo", module)

    def call(method, params, stats=None, header_names=()):
        envelope = {"access_key": "k", "secret_key": "s", "method": method, "params": params, "nonce": 1}
        return dispatch("Echo", envelope, stats=stats, header_names=header_names)
    return call


# ---------------------------------------------------------------------------- aliases

def test_every_protocol_method_is_in_the_params_table():
    assert set(PARAMS) == set(PROTOCOL) and set(ALIASES.values()) <= set(PROTOCOL)


@pytest.mark.parametrize("alias", sorted(set(ALIASES) - {"buy", "sell"}))
def test_every_alias_answers_what_its_method_answers(echo, alias):
    method = ALIASES[alias]
    expected = echo(method, PARAMS[method])
    assert expected["data"]["method"] == method
    assert echo(alias, PARAMS[method]) == expected


@pytest.mark.parametrize("name", FMZ_NAMES)
def test_fmz_function_names_in_any_case_and_with_underscores(echo, name):
    method = fmz_plugin.method_of(name)
    expected = echo(method, PARAMS[method])
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")       # get_ticker
    for called in (name, name.upper(), name.lower(), snake):
        assert echo(called, PARAMS[method]) == expected, called


@pytest.mark.parametrize("method", sorted(PROTOCOL))
def test_canonical_names_in_any_case(echo, method):
    assert echo(method.upper(), PARAMS[method]) == echo(method, PARAMS[method])


@pytest.mark.parametrize("name, side", [("Buy", "buy"), ("Sell", "sell"), ("buy", "buy"), ("SELL", "sell")])
def test_buy_and_sell_are_trade_with_that_side(echo, name, side):
    params = {"symbol": "BTC_USDT", "price": "40000", "amount": "0.5"}
    assert echo(name, params) == echo("trade", dict(params, type=side))
    assert echo(name, dict(params, type=side)) == echo("trade", dict(params, type=side))


def test_buy_with_a_sell_type_is_refused(echo):
    error = echo("Buy", {"symbol": "BTC_USDT", "type": "sell", "price": "1", "amount": "1"})["error"]
    assert "the method Buy" in error and 'type "sell"' in error and "contradict" in error


def test_sell_carrying_a_close_long_is_a_close_long(echo):
    answer = echo("Sell", {"symbol": "BTC_USDT.swap", "type": "closebuy", "price": "1", "amount": "1"})
    assert answer["data"]["kwargs"]["order_type"] == "closebuy"


@pytest.mark.parametrize("name, meant", [("tiker", "ticker"), ("GetTick", "ticker"), ("tradez", "trade"), ("", None),
                                         ("__api", None)])
def test_unknown_method_lists_the_methods_served(echo, name, meant):
    error = echo(name, {})["error"]
    guess = f" (did you mean {meant}?)" if meant else ""
    assert error == f"unknown method: {name}{guess}; served: {', '.join(PROTOCOL)}, __api_<path>"


def test_unknown_method_lists_only_what_the_exchange_serves(echo):
    fmz_plugin.EXCHANGES["echo"].METHODS = {"ticker": None, "depth": None}
    assert echo("tiker", {})["error"] == "unknown method: tiker (did you mean ticker?); served: ticker, depth"
    assert echo("acount", {})["error"] == "unknown method: acount; served: ticker, depth"      # not served: no hint


def test_aliases_reach_the_real_exchange(okx):
    assert okx.data("GetTicker", symbol="BTC_USDT")["buy"] == okx.data("ticker", symbol="BTC_USDT")["buy"]
    book, canonical = okx.data("GetDepth", symbol="ETH_USDT", limit=2), okx.data("depth", symbol="ETH_USDT", limit=2)
    assert (book["asks"], book["bids"]) == (canonical["asks"], canonical["bids"])
    assert okx.data("GetAccount") == okx.data("accounts")
    order_id = okx.data("Buy", symbol="BTC_USDT", price=40000, amount=0.5)["id"]
    assert okx.data("GetOrder", id=order_id, symbol="BTC_USDT") == okx.data("order", id=order_id, symbol="BTC_USDT")
    assert [o["id"] for o in okx.data("GetOrders", symbol="BTC_USDT")] == [order_id]
    assert okx.data("CancelOrder", id=order_id, symbol="BTC_USDT") is True
    assert okx.data("GetOrder", id=order_id, symbol="BTC_USDT")["status"] == "canceled"


# ---------------------------------------------------------------------------- the order's direction

@pytest.mark.parametrize("params, order_type", [
    ({"type": "buy"}, "buy"),
    ({"type": "SELL"}, "sell"),
    ({"type": "closebuy"}, "closebuy"),
    ({"type": "closesell"}, "closesell"),
    ({"type": "sell", "direction": "closebuy"}, "closebuy"),
    ({"type": "buy", "direction": "closesell"}, "closesell"),
    ({"type": "buy", "direction": "buy"}, "buy"),
    ({"type": "sell", "offset": "close"}, "closebuy"),
    ({"type": "buy", "offset": "close"}, "closesell"),
    ({"type": "buy", "offset": "open"}, "buy"),
    ({"type": "closebuy", "offset": "close"}, "closebuy"),
    ({"direction": "closesell"}, "closesell"),
    ({"offset": "sell"}, "sell"),
    ({"type": "sell", "direction": "closebuy", "offset": "close"}, "closebuy"),
    ({"type": "buy", "direction": "", "offset": ""}, "buy"),
])
def test_direction_or_offset_param_completes_the_type(params, order_type):
    assert trade_params(dict(params, symbol="BTC_USDT.swap", price="1", amount="1"))["order_type"] == order_type


@pytest.mark.parametrize("params, named_side, says", [
    ({"type": "buy", "direction": "closebuy"}, None, ['type "buy"', 'direction "closebuy"', "a sell that closes a long"]),
    ({"type": "sell", "direction": "closesell"}, None, ['type "sell"', "a buy that closes a short"]),
    ({"type": "buy", "direction": "sell"}, None, ['type "buy"', 'direction "sell"']),
    ({"type": "closebuy", "offset": "open"}, None, ['type "closebuy"', 'offset "open"', "an order that opens"]),
    ({"type": "buy", "direction": "closesell", "offset": "open"}, None, ['direction "closesell"', 'offset "open"']),
    ({"type": "closesell"}, "sell", ["the method Sell", 'type "closesell"']),
])
def test_contradictory_directions_are_refused(params, named_side, says):
    with pytest.raises(PluginError) as refused:
        trade_params(dict(params, symbol="BTC_USDT.swap", price="1", amount="1"), named_side)
    message = str(refused.value)
    assert "contradict each other" in message and "refused rather than guessed" in message
    for words in says:
        assert words in message, message


@pytest.mark.parametrize("params, says", [
    ({}, "type is missing"),
    ({"offset": "close"}, "type is missing"),
    ({"type": "long"}, "type must be buy, sell, closebuy or closesell, got 'long'"),
    ({"type": "open"}, "type must be buy, sell, closebuy or closesell"),
    ({"type": 1}, "type must be"),
    ({"type": "buy", "direction": "up"}, "direction must be buy, sell, closebuy, closesell, open or close, got 'up'"),
    ({"type": "buy", "offset": 0}, "offset must be"),
])
def test_unreadable_directions_are_named(params, says):
    with pytest.raises(PluginError) as refused:
        trade_params(dict(params, symbol="BTC_USDT.swap", price="1", amount="1"))
    assert says in str(refused.value)


def test_a_sell_with_direction_closebuy_closes_the_long(exchange):
    if "positions" not in fmz_plugin.EXCHANGES[exchange.exchange.lower()].METHODS:
        pytest.skip(f"{exchange.exchange} does not serve perpetual swaps")
    amount = exchange.data("markets")["BTC_USDT.swap"]["min_qty"]
    exchange.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=amount)
    assert exchange.data("positions", symbol="BTC_USDT.swap")[0]["amount"] == amount
    exchange.data("Sell", symbol="BTC_USDT.swap", direction="closebuy", price=-1, amount=amount)
    assert exchange.data("positions", symbol="BTC_USDT.swap") == []
    error = exchange.error("trade", symbol="BTC_USDT.swap", type="buy", direction="closebuy", price=-1, amount=amount)
    assert "contradict" in error


def test_a_close_by_direction_is_still_refused_on_spot(echo):
    error = echo("trade", {"symbol": "BTC_USDT", "type": "sell", "direction": "closebuy", "price": "1", "amount": "1"})
    assert error["error"] == ("Echo spot orders are buy or sell, not 'closebuy': closebuy/closesell are for swaps "
                              "such as BTC_USDT.swap")


# ---------------------------------------------------------------------------- records: minutes, or seconds

@pytest.mark.parametrize("sent, minutes", [
    (1, 1), (60, 60), (120, 120), (240, 240), (1440, 1440), (10080, 10080), (480, 480),
    (300, 5), (900, 15), (1800, 30), (3600, 60), (14400, 240), (86400, 1440), (604800, 10080),
    (180, 3), (28800, 480), (21600, 360),
    (7, 7), (420, 420), (6000, 6000),             # neither: left for the exchange to refuse
])
def test_records_period_in_minutes_or_else_seconds(sent, minutes):
    assert records_params({"symbol": "BTC_USDT", "period": str(sent)})["period"] == minutes


def test_records_period_defaults_to_an_hour():
    assert records_params({"symbol": "BTC_USDT"})["period"] == 60


def test_records_in_seconds_answer_what_minutes_answer(exchange):
    hourly = exchange.data("records", symbol=exchange.fake.SYMBOL, period=3600, limit=5)
    assert {b[0] - a[0] for a, b in zip(hourly, hourly[1:])} == {3_600_000}
    daily = exchange.data("GetRecords", symbol=exchange.fake.SYMBOL, period=86400, limit=3)
    assert {b[0] - a[0] for a, b in zip(daily, daily[1:])} == {86_400_000}


# ---------------------------------------------------------------------------- counting and vocabulary

def test_refused_calls_count_under_the_method_called(echo):
    stats = fmz_plugin.Stats()
    echo("GetTicker", {"symbol": "BTC_USDT"}, stats)
    echo("ticker", {}, stats)                                                    # refused: no symbol
    echo("Buy", {"symbol": "BTC_USDT", "price": "1", "amount": "lots"}, stats)    # refused: amount
    echo("trade", {"symbol": "BTC_USDT", "type": "hold", "price": "1", "amount": "1"}, stats)
    dispatch("Echo", {"method": "trade", "params": {}}, stats=stats)              # refused: no keys
    dispatch("Echo", {"access_key": "k", "secret_key": "s", "method": "positions", "params": "x"}, stats=stats)
    echo("tiker", {"symbol": "BTC_USDT"}, stats)                                  # names no served method
    dispatch("Echo", ["ticker"], stats=stats)
    dispatch("Echo", {"method": 5}, stats=stats)
    counted = {row["method"]: (row["calls"], row["errors"]) for row in stats.rows()}
    assert counted == {"ticker": (2, 1), "trade": (3, 3), "positions": (1, 1), "(bad request)": (3, 3)}


def test_vocabulary_records_names_never_values(echo, caplog):
    stats = fmz_plugin.Stats()
    headers = ["Host", "Content-Type", "Content-Length", "Http-Method"]
    with caplog.at_level(logging.INFO, logger="fmz_plugin"):
        for _ in range(3):
            echo("GetPositions", {"symbol": "BTC_USDT.swap", "currency": "USDT"}, stats, headers)
        echo("positions", {"symbol": "BTC_USDT.swap"}, stats, headers)
    seen = stats.vocabulary.rows()
    assert seen == [
        {"exchange": "Echo", "method": "GetPositions", "fields": ["access_key", "method", "nonce", "params", "secret_key"],
         "params": ["currency", "symbol"], "headers": ["Content-Length", "Content-Type", "Host", "Http-Method"],
         "calls": 3},
        {"exchange": "Echo", "method": "positions", "fields": ["access_key", "method", "nonce", "params", "secret_key"],
         "params": ["symbol"], "headers": ["Content-Length", "Content-Type", "Host", "Http-Method"], "calls": 1}]
    shapes = [r.getMessage() for r in caplog.records if "new request shape" in r.getMessage()]
    assert len(shapes) == 2 and "method GetPositions, fields [access_key, method, nonce, params, secret_key], " \
        "params [currency, symbol], headers [Content-Length, Content-Type, Host, Http-Method]" in shapes[0]
    assert "BTC_USDT" not in json.dumps(seen) + "".join(shapes)


def test_vocabulary_is_bounded_and_takes_any_input():
    vocabulary = fmz_plugin.Vocabulary(kept=3)
    for envelope in [None, [], {"method": 5}, {"method": "x\n" * 100, "params": {f"p{i}": 1 for i in range(500)}},
                     {"method": "ticker"}, {"method": "depth"}]:
        vocabulary.note("OKX", envelope, ["Host"])
    seen = vocabulary.rows()
    assert len(seen) == 3 and seen[0]["method"] is None and seen[0]["fields"] == []
    assert [row["calls"] for row in seen] == [2, 1, 1]                # None and [] have one shape
    assert seen[2]["method"] == ("x?" * 30) and len(seen[2]["params"]) == fmz_plugin.NAMES_KEPT


def test_vocabulary_counts_one_shape_whatever_order_or_length_its_names_came_in():
    vocabulary = fmz_plugin.Vocabulary()
    long_name = "p" * 2000
    for envelope, headers in [({"method": "depth", "params": {"symbol": 1, "limit": 2}}, ["Host", "Content-Type"]),
                              ({"params": {"limit": 2, "symbol": 1}, "method": "depth"}, ["Content-Type", "Host"]),
                              ({"method": "depth", "params": {"symbol": 1, "limit": 2}}, ["Host", "Content-Type"]),
                              ({"method": "depth", "params": {long_name: 1}}, []),
                              ({"method": "depth", "params": {long_name: 2}}, [])]:
        vocabulary.note("OKX", envelope, headers)
    seen = vocabulary.rows()
    assert [(row["params"], row["headers"], row["calls"]) for row in seen] == [
        (["limit", "symbol"], ["Content-Type", "Host"], 3), (["p" * 40], [], 2)]


def test_status_page_shows_what_the_docker_sent(okx):
    okx.data("GetTicker", symbol="BTC_USDT")
    okx.data("GetTicker", symbol="ETH_USDT")
    okx.error("GetPosition", symbol="BTC_USDT")
    report = json.loads(get(okx.url, "/status")[2])
    seen = {row["method"]: row for row in report["seen"]}
    assert set(seen) == {"GetTicker", "GetPosition"} and seen["GetTicker"]["calls"] == 2
    assert seen["GetTicker"]["params"] == ["symbol"] and "Content-Type" in seen["GetTicker"]["headers"]
    assert {(row["method"], row["calls"], row["errors"]) for row in report["methods"]} == \
        {("ticker", 2, 0), ("positions", 1, 1)}
    text = json.dumps(report["seen"])
    for value in [okx.access_key, *okx.secret_key.split(","), "BTC_USDT", "ETH_USDT"]:
        assert value not in text
