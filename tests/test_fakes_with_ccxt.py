"""The fakes speak their exchange's dialect: CCXT, a client written by other people against the
real APIs, signs, sends and parses through each fake without knowing it is one.

CCXT is never a dependency of this project; CI has no ccxt and skips this file. To run it:

    python3 -m venv /tmp/ccxt-venv && /tmp/ccxt-venv/bin/pip install ccxt pytest
    /tmp/ccxt-venv/bin/python -m pytest tests/test_fakes_with_ccxt.py
"""
import pytest

ccxt = pytest.importorskip("ccxt")

from tests.fakes.okx import FakeOKX  # noqa: E402  (after the skip: nothing to import without ccxt)


def okx_client(fake, secret_key=None):
    secret, passphrase = (secret_key or fake.SECRET_KEY).split(",")
    client = ccxt.okx({"apiKey": fake.ACCESS_KEY, "secret": secret, "password": passphrase,
                       "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"rest": fake.url}
    client.has["fetchCurrencies"] = False           # /asset/currencies: not a fake endpoint
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["createOrder"] = "privatePostTradeOrder"   # not batch-orders, which the fake lacks
    return client


@pytest.fixture
def okx():
    with FakeOKX() as fake:
        client = okx_client(fake)
        client.fake = fake
        client.load_markets()
        yield client


def test_okx_markets(okx):
    market = okx.market("BTC/USDT")
    assert market["id"] == "BTC-USDT" and market["spot"] and market["active"]
    assert market["precision"]["price"] == 0.1 and market["precision"]["amount"] == 0.00000001
    assert market["limits"]["amount"]["min"] == 0.00001
    assert okx.markets["OLD/USDT"]["active"] is False


def test_okx_market_data(okx):
    ticker = okx.fetch_ticker("BTC/USDT")
    assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
    assert ticker["high"] == 50500 and ticker["low"] == 49500 and ticker["baseVolume"] == 1234.5
    assert 49500 < ticker["vwap"] < 50500                      # quoteVolume is in USDT, as OKX sends
    assert ticker["timestamp"] > 1_600_000_000_000

    book = okx.fetch_order_book("BTC/USDT", limit=5)
    assert book["asks"][0][:2] == [50000.1, 0.5] and book["bids"][0][:2] == [50000, 0.5]
    assert len(book["asks"]) == len(book["bids"]) == 5

    trades = okx.fetch_trades("ETH/USDT", limit=10)
    assert len(trades) == 10 and {t["side"] for t in trades} == {"buy", "sell"}
    assert all(t["amount"] == 0.01 and t["price"] >= 3000 for t in trades)
    assert trades[0]["timestamp"] <= trades[-1]["timestamp"]       # ccxt sorts oldest first

    candles = okx.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    assert len(candles) == 5
    ts, o, h, low, c, volume = candles[-1]
    assert ts % 60_000 == 0 and h == o + 2 and low == o - 1 and c == o + 1 and volume == 10.5


def test_okx_balance(okx):
    balance = okx.fetch_balance()
    assert balance["USDT"] == {"free": 100000, "used": 0, "total": 100000}
    assert balance["BTC"]["free"] == 1


def test_okx_limit_order_lifecycle(okx):
    order = okx.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    assert order["id"]

    fetched = okx.fetch_order(order["id"], "BTC/USDT")
    assert fetched["status"] == "open" and fetched["price"] == 40000 and fetched["amount"] == 0.01
    assert fetched["filled"] == 0 and fetched["side"] == "buy" and fetched["type"] == "limit"
    assert okx.fetch_balance()["USDT"]["used"] == 400

    assert [o["id"] for o in okx.fetch_open_orders("BTC/USDT")] == [order["id"]]

    okx.cancel_order(order["id"], "BTC/USDT")
    assert okx.fetch_order(order["id"], "BTC/USDT")["status"] == "canceled"
    assert okx.fetch_open_orders("BTC/USDT") == []
    canceled = okx.fetch_canceled_orders("BTC/USDT")
    assert [(o["id"], o["status"]) for o in canceled] == [(order["id"], "canceled")]
    assert okx.fetch_closed_orders("BTC/USDT") == []       # ccxt asks orders-history for state=filled
    assert okx.fetch_balance()["USDT"] == {"free": 100000, "used": 0, "total": 100000}


def test_okx_market_orders_fill(okx):
    sell = okx.create_order("BTC/USDT", "market", "sell", 0.1)
    filled = okx.fetch_order(sell["id"], "BTC/USDT")
    assert filled["status"] == "closed" and filled["filled"] == 0.1 and filled["average"] == 50000
    assert filled["fee"]["currency"] == "USDT" and filled["cost"] == 5000

    buy = okx.create_market_buy_order_with_cost("ETH/USDT", 30)      # tgtCcy=quote_ccy: spend 30 USDT
    bought = okx.fetch_order(buy["id"], "ETH/USDT")
    assert bought["status"] == "closed" and bought["cost"] == pytest.approx(30)
    assert bought["fee"]["currency"] == "ETH" and bought["filled"] == pytest.approx(30 / 3000.01)

    closed = okx.fetch_closed_orders()
    assert {o["id"] for o in closed} == {sell["id"], buy["id"]}
    assert okx.fetch_balance()["BTC"]["total"] == pytest.approx(0.9)


def test_okx_refuses_wrong_secret(okx):
    impostor = okx_client(okx.fake, "wrong-secret," + okx.fake.SECRET_KEY.split(",")[1])
    impostor.markets, impostor.markets_by_id = okx.markets, okx.markets_by_id
    with pytest.raises(ccxt.AuthenticationError):
        impostor.fetch_balance()


def test_okx_refuses_wrong_passphrase(okx):
    impostor = okx_client(okx.fake, okx.fake.SECRET_KEY.split(",")[0] + ",wrong")
    with pytest.raises(ccxt.AuthenticationError):
        impostor.fetch_balance()


def test_okx_unknown_order(okx):
    with pytest.raises(ccxt.OrderNotFound):
        okx.fetch_order("123", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        okx.cancel_order("123", "BTC/USDT")


def test_okx_client_order_ids(okx):
    order = okx.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    assert okx.fetch_order(None, "ETH/USDT", params={"clientOrderId": "ccxtTest1"})["id"] == order["id"]
    okx.cancel_order(None, "ETH/USDT", params={"clientOrderId": "ccxtTest1"})
    assert okx.fetch_order(order["id"], "ETH/USDT")["status"] == "canceled"
    with pytest.raises(ccxt.ExchangeError):           # 51016: the id is taken
        okx.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})


def test_okx_order_refusals_map_to_ccxt_errors(okx):
    with pytest.raises(ccxt.InsufficientFunds):
        okx.create_order("BTC/USDT", "limit", "buy", 5, 40000)
    with pytest.raises(ccxt.InvalidOrder):
        okx.create_order("BTC/USDT", "limit", "buy", 0.000001, 40000)   # below minSz


def test_okx_clock(okx):
    okx.fake.clock_skew_ms = 60_000
    assert abs(okx.fetch_time() - okx.milliseconds() - 60_000) < 5_000
    with pytest.raises(ccxt.InvalidNonce):                               # 50102
        okx.fetch_balance()
    okx.load_time_difference()                                           # /public/time
    assert okx.fetch_balance()["USDT"]["free"] == 100000
