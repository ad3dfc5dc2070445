"""Every method's `data`, from every exchange's fake, against the answer contract written once in
fmz_plugin (ANSWERS and its structures TICKER, ORDER, MARKET, ...): the validator `check` grades
any plugin with, so a field the contract names and an exchange forgets fails here, for every
exchange at once, spot and swap."""
import pytest

import fmz_plugin
from exchanges import EXCHANGES
from tests.conftest import paper_client

@pytest.fixture
def exchange(exchange, account, tmp_path):
    """Each test on the fake's own account and on a paper account (conftest.paper_client)."""
    return paper_client(exchange, tmp_path) if account == "paper" else exchange


SPOT_READS = [
    ("ticker", {"symbol": "BTC_USDT"}),
    ("depth", {"symbol": "BTC_USDT", "limit": 5}),
    ("trades", {"symbol": "BTC_USDT"}),
    ("records", {"symbol": "BTC_USDT", "period": 60, "limit": 5}),
    ("accounts", {}),
    ("assets", {}),
    ("markets", {}),
    ("tickers", {}),
    ("orders", {"symbol": "BTC_USDT"}),
    ("historyorders", {"symbol": "BTC_USDT", "since": 0, "limit": 10}),
]
SWAP_READS = [
    ("ticker", {"symbol": "BTC_USDT.swap"}),
    ("depth", {"symbol": "BTC_USDT.swap", "limit": 5}),
    ("trades", {"symbol": "BTC_USDT.swap"}),
    ("records", {"symbol": "BTC_USDT.swap", "period": 60, "limit": 5}),
    ("tickers", {"symbol": "USDT.swap"}),
    ("tickers", {}),
    ("markets", {}),
    ("accounts", {}),
    ("positions", {}),
    ("positions", {"symbol": "BTC_USDT.swap"}),
    ("fundings", {}),
    ("margin_level", {"symbol": "BTC_USDT.swap", "level": 10}),
]


def served(exchange, method):
    return method in EXCHANGES[exchange.exchange.lower()].METHODS


def follows(exchange, method, **params):
    """The method's data, once it is checked against the contract."""
    data = exchange.data(method, **params)
    assert fmz_plugin.answer_problems(method, data) == [], (method, params)
    return data


def test_every_protocol_method_has_its_answer_in_the_contract():
    assert set(fmz_plugin.ANSWERS) == set(fmz_plugin.PROTOCOL)


def test_spot_answers_follow_the_contract(exchange):
    if not exchange.fake.SPOT:
        pytest.skip(f"{exchange.exchange} serves perpetual swaps only")
    for method, params in SPOT_READS:
        if served(exchange, method):
            follows(exchange, method, **params)
    resting = follows(exchange, "trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
    follows(exchange, "trade", symbol="BTC_USDT", type="sell", price=-1, amount="0.01")
    follows(exchange, "order", id=resting, symbol="BTC_USDT")
    assert len(follows(exchange, "orders", symbol="BTC_USDT")) == 1
    follows(exchange, "cancel", id=resting, symbol="BTC_USDT")
    assert len(follows(exchange, "historyorders", symbol="BTC_USDT", since=0, limit=10)) == 2


@pytest.mark.parametrize("hedge", [False, True], ids=["net", "hedge"])
def test_swap_answers_follow_the_contract(exchange, hedge):
    if not served(exchange, "positions"):
        pytest.skip(f"{exchange.exchange} does not serve perpetual swaps")
    exchange.set_hedge_mode(hedge)
    lot = exchange.data("markets")["BTC_USDT.swap"]["min_qty"]
    follows(exchange, "trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=lot * 2)
    resting = follows(exchange, "trade", symbol="BTC_USDT.swap", type="closebuy", price=60000, amount=lot)["id"]
    follows(exchange, "trade", symbol="BTC_USDT.swap", type="sell", direction="closebuy", price=-1, amount=lot)
    for method, params in SWAP_READS:
        follows(exchange, method, **params)
    order = follows(exchange, "order", id=resting, symbol="BTC_USDT.swap")
    assert (order["type"], order["offset"], order["contract_type"]) == ("sell", "close", "swap")
    assert [o["id"] for o in follows(exchange, "orders", symbol="BTC_USDT.swap")] == [resting]
    follows(exchange, "cancel", id=resting, symbol="BTC_USDT.swap")
    history = follows(exchange, "historyorders", symbol="BTC_USDT.swap", since=0, limit=10)
    assert sorted((o["type"], o["offset"]) for o in history) == [("buy", "open"), ("sell", "close"), ("sell", "close")]


@pytest.mark.parametrize("method, data, defect", [
    ("order", {"id": "1", "symbol": "BTC_USDT.swap", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
               "type": "closebuy", "offset": "close", "contract_type": "swap", "time": 1.7e12, "status": "filled"},
     'order.type "closebuy" is not buy or sell'),
    ("order", {"id": "1", "symbol": "BTC_USDT.swap", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
               "type": "sell", "contract_type": "swap", "time": 1.7e12, "status": "filled"}, "order has no offset"),
    ("order", {"id": "1", "symbol": "BTC_USDT.swap", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
               "type": "sell", "offset": "", "contract_type": "swap", "time": 1.7e12, "status": "filled"},
     'order.offset "" is not open or close'),
    ("order", {"id": "1", "symbol": "BTC_USDT", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
               "type": "sell", "status": "filled"}, "order has no time"),
    ("orders", [{"id": "1", "symbol": "BTC_USDT", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
                 "type": "sell", "time": 1.7e9, "status": "filled"}], "looks like seconds"),
    ("cancel", {"ok": True}, 'cancel answered {"ok": true}, expected true'),
    ("markets", {"ETH_USDT": {"symbol": "BTC_USDT"}}, "markets[ETH_USDT].symbol \"BTC_USDT\" is not its key"),
    ("records", [[1.7e12, 1, 2, 0.5]], "records[0] [1700000000000.0, 1, 2, 0.5] is not [time, open, high"),
    ("positions", [{"symbol": "BTC_USDT.swap", "margin_level": 10, "amount": 1, "frozen_amount": 0, "price": 1,
                    "profit": 0, "type": "long", "contract_type": "swap", "margin": 1}], 'positions[0].type "long"'),
    ("fundings", [{"symbol": "BTC_USDT.swap", "rate": 0.0001, "time": 4.1e12, "interval": -1}],
     "fundings[0].interval -1 is negative"),
])
def test_the_contract_names_each_defect(method, data, defect):
    problems = fmz_plugin.answer_problems(method, data)
    assert any(defect in problem for problem in problems), problems


def test_spot_orders_may_leave_the_swap_fields_out():
    order = {"id": "1", "symbol": "BTC_USDT", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
             "type": "sell", "time": 1.7e12, "status": "filled"}
    assert fmz_plugin.order_problems(order) == []
    assert fmz_plugin.order_problems(dict(order, offset="", contract_type="")) == []
