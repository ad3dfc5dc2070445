"""The fakes speak their exchange's dialect: CCXT, a client written by other people against the
real APIs, signs, sends and parses through each fake without knowing it is one.

CCXT is never a dependency of this project; CI has no ccxt and skips this file. To run it:

    python3 -m venv /tmp/ccxt-venv && /tmp/ccxt-venv/bin/pip install ccxt pytest
    /tmp/ccxt-venv/bin/python -m pytest tests/test_fakes_with_ccxt.py
"""
import contextlib
import re

import pytest

ccxt = pytest.importorskip("ccxt")

from tests.fakes.alpaca import FakeAlpaca  # noqa: E402  (after the skip, as the file needs ccxt)
from tests.fakes.binance import FakeBinance  # noqa: E402
from tests.fakes.bingx import FakeBingX  # noqa: E402
from tests.fakes.bitvavo import FakeBitvavo  # noqa: E402
from tests.fakes.blofin import FakeBloFin  # noqa: E402
from tests.fakes.bybit import FakeBybit  # noqa: E402
from tests.fakes.coinbase import ED25519_NAME, ED25519_SECRET, EC_PEM, FakeCoinbase  # noqa: E402
from tests.fakes.okx import DEMO_API_KEY, FakeOKX  # noqa: E402


@contextlib.contextmanager
def loaded(fake_class, make_client, **options):
    """A CCXT client (`make_client(fake)`, then `options`) of a fresh fake, kept at `.fake` (and
    make_client at `.make_client`), its markets loaded."""
    with fake_class() as fake:
        client = make_client(fake)
        client.options.update(options)
        client.fake = fake
        client.make_client = make_client
        client.load_markets()
        yield client


def client_fixture(name, fake_class, make_client, **options):
    """The fixture `name`: a CCXT client of a fresh fake, as loaded() makes it."""
    @pytest.fixture(name=name)
    def fixture():
        with loaded(fake_class, make_client, **options) as client:
            yield client
    return fixture


def impostor_of(client, *credentials):
    """Another client of the same fake, made with other credentials, sharing the loaded markets."""
    impostor = client.make_client(client.fake, *credentials)
    impostor.markets, impostor.markets_by_id = client.markets, client.markets_by_id
    return impostor


def okx_client(fake, secret_key=None):
    secret, passphrase = (secret_key or fake.SECRET_KEY).split(",")
    client = ccxt.okx({"apiKey": fake.ACCESS_KEY, "secret": secret, "password": passphrase,
                       "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"rest": fake.url}
    client.has["fetchCurrencies"] = False           # /asset/currencies: not a fake endpoint
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["createOrder"] = "privatePostTradeOrder"   # not batch-orders, which the fake lacks
    return client


okx = client_fixture("okx", FakeOKX, okx_client)


def test_okx_canceled_order_is_not_closed(okx):
    order = okx.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    okx.cancel_order(order["id"], "BTC/USDT")
    assert okx.fetch_closed_orders("BTC/USDT") == []       # ccxt asks orders-history for state=filled


def test_okx_market_order_fees(okx):
    sell = okx.create_order("BTC/USDT", "market", "sell", 0.1)
    filled = okx.fetch_order(sell["id"], "BTC/USDT")
    assert filled["fee"]["currency"] == "USDT" and filled["lastTradeTimestamp"] == filled["timestamp"]  # fillTime
    buy = okx.create_market_buy_order_with_cost("ETH/USDT", 30)
    assert okx.fetch_order(buy["id"], "ETH/USDT")["fee"]["currency"] == "ETH"


def test_okx_demo_trading(okx):
    """ccxt's sandbox mode sends x-simulated-trading: 1; OKX takes it only with a demo key (50101)."""
    okx.set_sandbox_mode(True)
    okx.urls["api"] = {"rest": okx.fake.url}
    with pytest.raises(ccxt.AuthenticationError, match="50101"):            # a live key
        okx.fetch_balance()
    okx.apiKey = DEMO_API_KEY
    assert okx.fetch_balance()["USDT"]["free"] == 100000
    okx.set_sandbox_mode(False)
    okx.urls["api"] = {"rest": okx.fake.url}
    with pytest.raises(ccxt.AuthenticationError, match="50101"):            # a demo key without the header
        okx.fetch_balance()


def test_okx_unknown_order(okx):
    with pytest.raises(ccxt.OrderNotFound):
        okx.fetch_order("123", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        okx.cancel_order("123", "BTC/USDT")


def test_okx_client_order_ids(okx):
    """A clOrdId is unique among open orders only: taken while its order rests, free once it is
    canceled; a lookup by clOrdId answers the latest order that had it."""
    order = okx.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    assert okx.fetch_order(None, "ETH/USDT", params={"clientOrderId": "ccxtTest1"})["id"] == order["id"]
    with pytest.raises(ccxt.ExchangeError):           # 51016: the id is taken
        okx.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    okx.cancel_order(None, "ETH/USDT", params={"clientOrderId": "ccxtTest1"})
    assert okx.fetch_order(order["id"], "ETH/USDT")["status"] == "canceled"
    again = okx.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    assert okx.fetch_order(None, "ETH/USDT", params={"clientOrderId": "ccxtTest1"})["id"] == again["id"] != order["id"]


def test_okx_order_refusals_map_to_ccxt_errors(okx):
    with pytest.raises(ccxt.InvalidOrder):
        okx.create_order("BTC/USDT", "limit", "buy", 0.000001, 40000)   # below minSz


# ---------------------------------------------------------------------------- Binance (spot)

def binance_client(fake, secret=None):
    client = ccxt.binance({"apiKey": fake.ACCESS_KEY, "secret": secret or fake.SECRET_KEY,
                           "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {api: re.sub(r"^https://[^/]+", fake.url, url) for api, url in client.urls["api"].items()}
    client.has["fetchCurrencies"] = False           # /sapi/v1/capital/config/getall: not a fake endpoint
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["fetchMargins"] = False          # /sapi/v1/margin/allPairs: not a fake endpoint
    client.options["fetchTradesMethod"] = "publicGetTrades"   # /api/v3/trades, not aggTrades
    return client


binance = client_fixture("binance", FakeBinance, binance_client)


def test_binance_answers_orders_it_places_and_cancels(binance):
    order = binance.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    assert order["id"] and order["status"] == "open" and order["price"] == 40000
    assert binance.cancel_order(order["id"], "BTC/USDT")["status"] == "canceled"


def test_binance_answers_a_market_order_filled(binance):
    sell = binance.create_order("BTC/USDT", "market", "sell", 0.1)
    assert sell["status"] == "closed" and sell["filled"] == 0.1 and sell["average"] == 50000


def test_binance_client_order_ids(binance):
    order = binance.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    assert order["clientOrderId"] == "ccxtTest1"
    assert binance.fetch_order(None, "ETH/USDT", params={"origClientOrderId": "ccxtTest1"})["id"] == order["id"]
    with pytest.raises(ccxt.ExchangeError, match="Duplicate order sent"):    # taken while the order is open
        binance.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    binance.cancel_order(order["id"], "ETH/USDT")
    again = binance.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    assert again["id"] != order["id"]                  # free again once it is canceled


def test_binance_refusals_map_to_ccxt_errors(binance):
    with pytest.raises(ccxt.BadRequest, match="-1013"):                   # ccxt's mapping of -1013
        binance.create_order("ETH/USDT", "limit", "buy", 0.001, 50)           # below NOTIONAL
    with pytest.raises(ccxt.OrderNotFound):
        binance.fetch_order("123", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        binance.cancel_order("123", "BTC/USDT")


# ---------------------------------------------------------------------------- Bybit (spot)

SEEN = {"acknowledged": True}   # ccxt: "fetchOrder finds only the last 500 orders", which these are


def bybit_client(fake, secret=None):
    client = ccxt.bybit({"apiKey": fake.ACCESS_KEY, "secret": secret or fake.SECRET_KEY,
                         "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {name: fake.url for name in ("spot", "futures", "v2", "public", "private")}
    client.has["fetchCurrencies"] = False            # /v5/asset/coin/query-info: not a fake endpoint
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["enableUnifiedAccount"] = True   # a unified trading account; skips /v5/user/query-api
    client.options["enableUnifiedMargin"] = False
    return client


bybit = client_fixture("bybit", FakeBybit, bybit_client)


def test_bybit_balance(bybit):
    balance = bybit.fetch_balance()
    assert balance["USDT"]["free"] == 100000 and balance["USDT"]["total"] == 100000
    assert balance["BTC"]["total"] == 1


def test_bybit_client_order_ids(bybit):
    order = bybit.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    assert bybit.fetch_order(order["id"], "ETH/USDT", params=SEEN)["clientOrderId"] == "ccxtTest1"
    bybit.cancel_order(None, "ETH/USDT", params={"orderLinkId": "ccxtTest1"})
    assert bybit.fetch_order(order["id"], "ETH/USDT", params=SEEN)["status"] == "canceled"


def test_bybit_refusals_map_to_ccxt_errors(bybit):
    with pytest.raises(ccxt.OrderNotFound):
        bybit.cancel_order("123", "BTC/USDT")


# ---------------------------------------------------------------------------- OKX perpetual swaps

okx_swap = client_fixture("okx_swap", FakeOKX, okx_client, fetchMarkets={"types": ["spot", "swap"]})


def test_okx_swap_markets_and_data(okx_swap):
    market = okx_swap.market("BTC/USDT:USDT")
    assert market["id"] == "BTC-USDT-SWAP" and market["swap"] and market["linear"]
    assert market["contractSize"] == 0.01 and market["settle"] == "USDT"
    assert okx_swap.market("BTC/USD:BTC")["inverse"]
    ticker = okx_swap.fetch_ticker("BTC/USDT:USDT")
    assert ticker["bid"] > 0 and ticker["ask"] > ticker["bid"]
    # derivatives: vol24h in contracts (ccxt passes it on as baseVolume), volCcy24h in base currency
    assert ticker["baseVolume"] == 1234.5 / 0.01 and ticker["info"]["volCcy24h"] == "1234.5"
    inverse = okx_swap.fetch_ticker("BTC/USD:BTC")                 # 100 USD contracts
    assert inverse["baseVolume"] == 1234.5 * 50000 / 100 and inverse["info"]["volCcy24h"] == "1234.5"
    funding = okx_swap.fetch_funding_rate("BTC/USDT:USDT")
    assert funding["fundingRate"] == 0.0001 and funding["fundingTimestamp"] > 0
    book = okx_swap.fetch_order_book("ETH/USDT:USDT", limit=5)
    assert len(book["asks"]) == 5 and book["asks"][0][0] > book["bids"][0][0]


def test_okx_swap_position_lifecycle(okx_swap):
    okx_swap.set_leverage(10, "BTC/USDT:USDT", params={"marginMode": "cross"})
    order = okx_swap.create_order("BTC/USDT:USDT", "market", "buy", 2)     # 2 contracts = 0.02 BTC
    fetched = okx_swap.fetch_order(order["id"], "BTC/USDT:USDT")
    assert fetched["status"] == "closed" and fetched["filled"] == 2 and fetched["average"] > 0

    positions = okx_swap.fetch_positions(["BTC/USDT:USDT"])
    assert len(positions) == 1
    position = positions[0]
    assert position["side"] == "long" and position["contracts"] == 2 and position["leverage"] == 10
    assert position["entryPrice"] > 0 and position["marginMode"] == "cross"

    resting = okx_swap.create_order("BTC/USDT:USDT", "limit", "sell", 1, 60000, params={"reduceOnly": True})
    assert [o["id"] for o in okx_swap.fetch_open_orders("BTC/USDT:USDT")] == [resting["id"]]
    okx_swap.cancel_order(resting["id"], "BTC/USDT:USDT")
    okx_swap.create_order("BTC/USDT:USDT", "market", "sell", 2, params={"reduceOnly": True})
    assert [p for p in okx_swap.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]] == []


# ---------------------------------------------------------------------------- Alpaca (crypto)

def alpaca_client(fake, secret=None):
    client = ccxt.alpaca({"apiKey": fake.ACCESS_KEY, "secret": secret or fake.SECRET_KEY,
                          "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"trader": fake.url, "market": fake.url, "broker": fake.url}
    return client


alpaca = client_fixture("alpaca", FakeAlpaca, alpaca_client)


def test_alpaca_lists_crypto_only(alpaca):
    """ccxt lists the crypto assets (asset_class=crypto): the stocks stay out."""
    assert set(alpaca.markets) == {"BTC/USDT", "ETH/USDT", "BTC/USD", "ETH/USD"}


def test_alpaca_balance(alpaca):
    """USD is the account's cash; USDT, BTC and ETH are positions (USDTUSD, BTCUSD, ETHUSD)."""
    balance = alpaca.fetch_balance()
    assert balance["USD"]["free"] == 100000 and balance["ETH"]["free"] == 10


def test_alpaca_limit_order_lifecycle(alpaca):
    order = alpaca.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    assert order["id"] and order["status"] == "open" and order["clientOrderId"].startswith("ccxt_")
    fetched = alpaca.fetch_order(order["id"])
    assert fetched["amount"] == 0.01 and fetched["price"] == 40000 and fetched["side"] == "buy"
    assert fetched["timeInForce"] == "GTC"
    assert [o["id"] for o in alpaca.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert alpaca.fetch_balance()["USDT"]["used"] == 400
    alpaca.cancel_order(order["id"])
    assert alpaca.fetch_order(order["id"])["status"] == "canceled"
    assert alpaca.fetch_open_orders() == []


def test_alpaca_refusals_map_to_ccxt_errors(alpaca):
    with pytest.raises(ccxt.InvalidOrder):                      # 40410000
        alpaca.fetch_order("00000000-0000-4000-8000-000000000001")
    with pytest.raises(ccxt.BadRequest):                        # 42210000: crypto takes gtc or ioc
        alpaca.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, params={"timeInForce": "day"})


def test_alpaca_client_order_ids_are_unique_for_good(alpaca):
    """Alpaca refuses a client_order_id it has seen, even on an order canceled since."""
    order = alpaca.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})
    alpaca.cancel_order(order["id"])
    with pytest.raises(ccxt.BadRequest, match="client_order_id must be unique"):
        alpaca.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": "ccxtTest1"})


def test_alpaca_clock(alpaca):
    """/v2/clock gives New York time with its offset and nanoseconds."""
    assert abs(alpaca.fetch_time() - alpaca.milliseconds()) < 5_000


# ---------------------------------------------------------------------------- Bitvavo (spot)

def bitvavo_client(fake, secret=None):
    client = ccxt.bitvavo({"apiKey": fake.ACCESS_KEY, "secret": secret or fake.SECRET_KEY,
                           "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"public": fake.url, "private": fake.url}
    client.options["operatorId"] = 7                 # ccxt refuses orders and cancels without one
    return client


bitvavo = client_fixture("bitvavo", FakeBitvavo, bitvavo_client)


def test_bitvavo_lists_open_orders_of_every_market_and_sends_the_operator(bitvavo):
    order = bitvavo.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    assert order["id"] and order["status"] == "open"
    assert [o["id"] for o in bitvavo.fetch_open_orders()] == [order["id"]]          # every market
    bitvavo.cancel_order(order["id"], "BTC/USDT")
    assert bitvavo.fake.operators == [7, 7]


def test_bitvavo_market_order_has_its_fill(bitvavo):
    sell = bitvavo.create_order("BTC/USDT", "market", "sell", 0.1)
    assert len(bitvavo.fetch_order(sell["id"], "BTC/USDT")["trades"]) == 1


def test_bitvavo_client_order_ids(bitvavo):
    """clientOrderId is unique among a market's open orders only (220), and finds the order."""
    client_id = "2be7d0df-d8dc-7b93-a550-8876f3b393e9"
    order = bitvavo.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": client_id})
    assert bitvavo.fetch_order(None, "ETH/USDT", params={"clientOrderId": client_id})["id"] == order["id"]
    with pytest.raises(ccxt.ExchangeError, match="220"):
        bitvavo.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": client_id})
    bitvavo.cancel_order(order["id"], "ETH/USDT")
    again = bitvavo.create_order("ETH/USDT", "limit", "sell", 1, 3100, params={"clientOrderId": client_id})
    assert again["id"] != order["id"]


def test_bitvavo_refusals_map_to_ccxt_errors(bitvavo):
    with pytest.raises(ccxt.OrderNotFound):                          # 240
        bitvavo.cancel_order("1be6d0df-d5dc-4b53-a250-3376f3b393e6", "BTC/USDT")
    sold = bitvavo.create_order("BTC/USDT", "market", "sell", 0.01)
    with pytest.raises(ccxt.OrderNotFound):                          # 233: no longer open
        bitvavo.cancel_order(sold["id"], "BTC/USDT")
    with pytest.raises(ccxt.InvalidOrder):                           # 212: below minOrderInBaseAsset
        bitvavo.create_order("BTC/USDT", "limit", "buy", 0.000005, 40000)


def test_bitvavo_open_orders_are_capped_per_market(bitvavo):
    """100 open orders a market (235); another market still takes orders."""
    ids = [bitvavo.create_order("ETH/USDT", "limit", "buy", 0.01, 1000 + i)["id"] for i in range(100)]
    with pytest.raises(ccxt.ExchangeError, match="235"):
        bitvavo.create_order("ETH/USDT", "limit", "buy", 0.01, 999)
    assert sorted(o["id"] for o in bitvavo.fetch_open_orders("ETH/USDT")) == sorted(ids)
    assert bitvavo.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)["id"]


# ---------------------------------------------------------------------------- Coinbase (spot)

def coinbase_client(fake, api_key=None, secret=None):
    """CCXT's coinbase with a CDP key (name, PEM). Its JWT names the host it sends to; Coinbase's
    own host is what a JWT must name (the fake checks it), so the fake's URL is swapped back for it."""
    class ToFake(ccxt.coinbase):
        def create_auth_token(self, seconds, method=None, url=None, useEddsa=False):
            url = url and url.replace(fake.url, "https://api.coinbase.com")
            return super().create_auth_token(seconds, method, url, useEddsa)

    client = ToFake({"apiKey": api_key or fake.ACCESS_KEY, "secret": secret or EC_PEM,
                     "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"rest": fake.url}
    client.options["fetchTime"] = "v3PublicGetBrokerageTime"
    client.options["fetchBalance"] = "v3PrivateGetBrokerageAccounts"
    client.has["fetchCurrencies"] = False
    return client


coinbase = client_fixture("coinbase", FakeCoinbase, coinbase_client, fetchMarkets={"types": ["spot"]})


def test_coinbase_market_data(coinbase):
    ticker = coinbase.fetch_ticker("BTC/USDT")
    assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
    book = coinbase.fetch_order_book("BTC/USDT", limit=5)
    assert book["asks"][0][:2] == [50000.1, 0.5] and book["bids"][0][:2] == [50000, 0.5]
    trades = coinbase.fetch_trades("ETH/USDT", limit=10)
    assert len(trades) == 10 and {t["side"] for t in trades} == {"buy", "sell"}
    candles = coinbase.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    assert len(candles) == 5 and all(ts % 60_000 == 0 for ts, *_ in candles)
    ts, o, h, low, c, volume = candles[-1]
    assert h == o + 2 and low == o - 1 and c == o + 1 and volume == 10.5
    assert abs(coinbase.fetch_time() - coinbase.milliseconds()) < 5_000


def test_coinbase_balance_and_limit_order_lifecycle(coinbase):
    assert coinbase.fetch_balance()["USDT"] == {"free": 100000, "used": 0, "total": 100000}
    order = coinbase.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    fetched = coinbase.fetch_order(order["id"], "BTC/USDT")
    assert (fetched["status"], fetched["amount"], fetched["price"], fetched["side"]) == ("open", 0.01, 40000, "buy")
    assert [o["id"] for o in coinbase.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert coinbase.fetch_balance()["USDT"]["used"] == 400
    coinbase.cancel_order(order["id"], "BTC/USDT")
    assert coinbase.fetch_order(order["id"], "BTC/USDT")["status"] == "canceled"
    assert coinbase.fetch_open_orders("BTC/USDT") == []


def test_coinbase_market_orders_fill(coinbase):
    sell = coinbase.create_order("BTC/USDT", "market", "sell", 0.1)
    assert coinbase.fetch_order(sell["id"], "BTC/USDT")["status"] == "closed"
    buy = coinbase.create_order("ETH/USDT", "market", "buy", None, params={"cost": 30})    # quote_size: 30 USDT
    bought = coinbase.fetch_order(buy["id"], "ETH/USDT")
    assert bought["status"] == "closed" and bought["filled"] == pytest.approx(0.01, rel=1e-3)
    assert {o["id"] for o in coinbase.fetch_closed_orders("ETH/USDT")} == {buy["id"]}


def test_coinbase_refusals_map_to_ccxt_errors(coinbase):
    with pytest.raises(ccxt.ExchangeError, match="NOT_FOUND"):          # ccxt has no finer class for it
        coinbase.fetch_order("1be6d0df-d5dc-4b53-a250-3376f3b393e6", "BTC/USDT")


def test_coinbase_ed25519_key(coinbase):
    ed = impostor_of(coinbase, ED25519_NAME, ED25519_SECRET)
    assert ed.fetch_balance()["BTC"]["free"] == 1
    assert coinbase.fake.jwts[-1][0]["alg"] == "EdDSA"


def test_coinbase_refuses_another_key(coinbase):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    with pytest.raises((ccxt.AuthenticationError, ccxt.ExchangeError)):
        impostor_of(coinbase, None, other.decode()).fetch_balance()


# ---------------------------------------------------------------------------- every fake

SPOT_MARKETS = {   # exchange: (BTC/USDT's id, its minimum cost where ccxt reads one, whether it lists a delisted OLD/USDT)
    "okx": ("BTC-USDT", None, True), "binance": ("BTCUSDT", 0.1, False), "bybit": ("BTCUSDT", None, False),
    "alpaca": ("BTC/USDT", None, False), "bitvavo": ("BTC-USDT", 0.1, True), "coinbase": ("BTC-USDT", 0.1, False)}


@pytest.mark.parametrize("name", SPOT_MARKETS)
def test_spot_markets(request, name):
    client = request.getfixturevalue(name)
    market_id, min_cost, lists_old = SPOT_MARKETS[name]
    market = client.market("BTC/USDT")
    assert market["id"] == market_id and market["spot"] and market["active"]
    assert market["precision"]["price"] == 0.1 and market["precision"]["amount"] == 0.00000001
    assert market["limits"]["amount"]["min"] == 0.00001
    if min_cost is not None:
        assert market["limits"]["cost"]["min"] == min_cost
    if lists_old:
        assert client.markets["OLD/USDT"]["active"] is False


@pytest.mark.parametrize("name", ["okx", "binance", "alpaca", "bitvavo"])
def test_spot_balance(request, name):
    balance = request.getfixturevalue(name).fetch_balance()
    assert balance["USDT"] == {"free": 100000, "used": 0, "total": 100000}
    assert balance["BTC"]["free"] == 1


ORDER_HISTORY = {   # exchange: how ccxt lists the BTC/USDT orders no longer open
    "okx": lambda okx: okx.fetch_canceled_orders("BTC/USDT"),
    "binance": lambda binance: binance.fetch_orders("BTC/USDT"),                # /api/v3/allOrders
    "bybit": lambda bybit: bybit.fetch_canceled_orders("BTC/USDT"),
    "bitvavo": lambda bitvavo: bitvavo.fetch_orders("BTC/USDT")}


@pytest.mark.parametrize("name", ORDER_HISTORY)
def test_spot_limit_order_lifecycle(request, name):
    """A limit buy rests (its USDT held), is listed open, is canceled, is listed in the history."""
    client = request.getfixturevalue(name)
    seen = SEEN if name == "bybit" else {}
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000)
    assert order["id"]

    fetched = client.fetch_order(order["id"], "BTC/USDT", params=seen)
    assert fetched["status"] == "open" and fetched["price"] == 40000 and fetched["amount"] == 0.01
    assert fetched["filled"] == 0 and fetched["side"] == "buy" and fetched["type"] == "limit"
    assert client.fetch_balance()["USDT"]["used"] == 400
    assert [o["id"] for o in client.fetch_open_orders("BTC/USDT")] == [order["id"]]

    client.cancel_order(order["id"], "BTC/USDT")
    assert client.fetch_order(order["id"], "BTC/USDT", params=seen)["status"] == "canceled"
    assert client.fetch_open_orders("BTC/USDT") == []
    assert [(o["id"], o["status"]) for o in ORDER_HISTORY[name](client)] == [(order["id"], "canceled")]
    usdt = {key: value for key, value in client.fetch_balance()["USDT"].items() if key != "debt"}   # ccxt: Bybit's
    assert usdt == {"free": 100000, "used": 0, "total": 100000}


def buy_eth_for_30_usdt(client):
    """ccxt's market buy by cost: OKX tgtCcy=quote_ccy, Binance quoteOrderQty, Bybit marketUnit
    quoteCoin, Alpaca notional."""
    return client.create_market_buy_order_with_cost("ETH/USDT", 30)


def both_markets_closed(client):
    return client.fetch_closed_orders("BTC/USDT") + client.fetch_closed_orders("ETH/USDT")


MARKET_ORDERS = {   # exchange: (a market buy of ETH/USDT for 30 USDT, every closed spot order)
    "okx": (buy_eth_for_30_usdt, lambda okx: okx.fetch_closed_orders()),
    "binance": (buy_eth_for_30_usdt, both_markets_closed),
    "bybit": (buy_eth_for_30_usdt, lambda bybit: bybit.fetch_closed_orders(params={"type": "spot"})),  # not linear
    "alpaca": (buy_eth_for_30_usdt, lambda alpaca: alpaca.fetch_closed_orders()),
    "bitvavo": (lambda bitvavo: bitvavo.create_order("ETH/USDT", "market", "buy", 0, params={"cost": 30}),  # amountQuote
                both_markets_closed)}


@pytest.mark.parametrize("name", MARKET_ORDERS)
def test_spot_market_orders_fill(request, name):
    """A market sell of 0.1 BTC fills at the bid, a market buy for 30 USDT at the ask."""
    client = request.getfixturevalue(name)
    buy_for_30, closed_orders = MARKET_ORDERS[name]
    seen = SEEN if name == "bybit" else {}
    sell = client.create_order("BTC/USDT", "market", "sell", 0.1)
    filled = client.fetch_order(sell["id"], "BTC/USDT", params=seen)
    assert filled["status"] == "closed" and filled["filled"] == 0.1 and filled["average"] == 50000
    assert filled["cost"] == 5000

    buy = buy_for_30(client)
    bought = client.fetch_order(buy["id"], "ETH/USDT", params=seen)
    assert bought["status"] == "closed" and bought["cost"] == pytest.approx(30)
    assert bought["filled"] == pytest.approx(30 / 3000.01, rel=1e-6)

    assert {o["id"] for o in closed_orders(client)} == {sell["id"], buy["id"]}
    assert client.fetch_balance()["BTC"]["total"] == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["okx", "binance", "bybit", "alpaca", "bitvavo", "coinbase", "bingx"])
def test_insufficient_funds(request, name):
    """5 BTC at 40000 asks twice the USDT held: Alpaca "insufficient balance for USDT", Bitvavo 216."""
    with pytest.raises(ccxt.InsufficientFunds):
        request.getfixturevalue(name).create_order("BTC/USDT", "limit", "buy", 5, 40000)


WRONG_SECRETS = {   # exchange: (wrong secrets, made from the right client; what ccxt raises; the exchange's code)
    "okx": (lambda okx: ["wrong-secret," + okx.password, okx.secret + ",wrong"], ccxt.AuthenticationError, None),
    "binance": (lambda binance: ["x" * 64], ccxt.AuthenticationError, None),
    "bybit": (lambda bybit: ["wrong-secret"], ccxt.AuthenticationError, None),
    "alpaca": (lambda alpaca: ["wrong-secret"], ccxt.PermissionDenied, None),                # 40110000
    "bitvavo": (lambda bitvavo: ["wrong-secret"], ccxt.AuthenticationError, "309"),
    "bingx": (lambda bingx: ["wrong-secret"], ccxt.AuthenticationError, None),              # 100001
    "blofin": (lambda blofin: ["wrong-secret," + blofin.password, blofin.secret + ",wrong-pass"],
               ccxt.ExchangeError, "15240[89]")}


@pytest.mark.parametrize("name", WRONG_SECRETS)
def test_refuses_wrong_secret(request, name):
    """A client signing with a wrong secret (or passphrase) is refused."""
    client = request.getfixturevalue(name)
    wrong_secrets, error, code = WRONG_SECRETS[name]
    for secret in wrong_secrets(client):
        with pytest.raises(error, match=code):
            impostor_of(client, secret).fetch_balance()


CLOCK_SKEWS = {   # exchange: (the fake's clock ahead by, in ms; what ccxt raises then; the exchange's code;
    #                         whether ccxt's load_time_difference mends it)
    "okx": (60_000, ccxt.InvalidNonce, None, True),                  # 50102
    "binance": (-60_000, ccxt.InvalidNonce, None, True),             # -1021; the fake's clock is behind
    "bybit": (60_000, ccxt.InvalidNonce, None, True),                # 10002
    "bingx": (60_000, ccxt.ExchangeError, "100421", False),
    "bitvavo": (60_000, ccxt.AuthenticationError, "304", False),     # ccxt sends an access window of 10 s
}


@pytest.mark.parametrize("name", CLOCK_SKEWS)
def test_clock_skew(request, name):
    client = request.getfixturevalue(name)
    skew, error, code, mendable = CLOCK_SKEWS[name]
    client.fake.clock_skew_ms = skew
    assert abs(client.fetch_time() - client.milliseconds() - skew) < 5_000
    with pytest.raises(error, match=code):
        client.fetch_balance()
    if mendable:
        client.load_time_difference()                                   # OKX /public/time
        assert client.fetch_balance()["USDT"]["free"] == 100000


@pytest.fixture(params=["okx", "binance", "bybit", "alpaca", "bitvavo", "coinbase"])
def any_client(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("name", ["okx", "binance", "bybit", "alpaca", "bitvavo", "bingx"])
def test_market_data(request, name):
    """Ticker, book, trades and candles of a spot market, as each fake's engine makes them."""
    client = request.getfixturevalue(name)
    ticker = client.fetch_ticker("BTC/USDT")
    assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
    assert ticker["high"] == 50500 and ticker["low"] == 49500 and ticker["baseVolume"] == 1234.5
    if name != "bybit":                                     # ccxt reads no time from Bybit's ticker
        assert ticker["timestamp"] > 1_600_000_000_000

    book = client.fetch_order_book("BTC/USDT", limit=5)
    assert book["asks"][0][:2] == [50000.1, 0.5] and book["bids"][0][:2] == [50000, 0.5]
    if name != "alpaca":                                    # Alpaca's book takes no depth
        assert len(book["asks"]) == len(book["bids"]) == 5

    trades = client.fetch_trades("ETH/USDT", limit=10)
    assert len(trades) == 10 and {t["side"] for t in trades} == {"buy", "sell"}
    assert all(t["price"] >= 3000 and t["amount"] > 0 for t in trades)
    assert trades[0]["timestamp"] <= trades[-1]["timestamp"]        # ccxt sorts oldest first

    minute = 60_000
    since = client.milliseconds() // minute * minute - 10 * minute
    candles = client.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=5)
    assert len(candles) == 5 and (candles[0][0] == since or name == "bybit")   # Bybit: its latest from there
    ts, o, h, low, c, volume = candles[-1]
    assert ts % minute == 0 and h == o + 2 and low == o - 1 and c == o + 1 and volume == 10.5


def test_okx_ticker_vwap(okx):
    assert 49500 < okx.fetch_ticker("BTC/USDT")["vwap"] < 50500      # quoteVolume is in USDT, as OKX sends
    assert {t["amount"] for t in okx.fetch_trades("ETH/USDT", limit=10)} == {0.01}


def test_bitvavo_tickers_and_book_nonce(bitvavo):
    tickers = bitvavo.fetch_tickers()
    assert tickers["ETH/USDT"]["last"] == 3000 and tickers["OLD/USDT"]["last"] is None
    assert bitvavo.fetch_order_book("BTC/USDT", limit=5)["nonce"] == 438524


def test_rate_limit_replies_read_as_rate_limits(any_client):
    any_client.fake.inject("429")
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):   # ccxt's two "slow down" errors
        any_client.fetch_balance()
    assert any_client.fetch_balance()["USDT"]["free"] == 100000


def test_outages_read_as_outages(any_client):
    any_client.fake.inject("5xx")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        any_client.fetch_ticker("BTC/USDT")


def test_candles_since(any_client):
    """ccxt's `since` becomes OKX before/after, Binance startTime, Bybit start (which Bybit answers
    with its latest candles from there, newest first)."""
    hour = 3_600_000
    since = any_client.milliseconds() // hour * hour - 10 * hour + 30 * 60_000     # half past
    candles = any_client.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=3)
    assert len(candles) == 3 and all(c[0] % hour == 0 and c[0] >= since for c in candles)
    assert [b[0] - a[0] for a, b in zip(candles, candles[1:])] == [hour, hour]
    if any_client.id != "bybit":
        assert candles[0][0] == since // hour * hour + hour


# ---------------------------------------------------------------------------- Binance and Bybit perpetuals

def swap_client(client):
    """The same client with USDT-margined perpetuals loaded too."""
    client.options["fetchMarkets"] = {"types": ["spot", "linear"]}
    client.load_markets(reload=True)
    return client


@pytest.fixture
def binance_swap(binance):
    binance.options["leverageBrackets"] = {}               # /fapi/v1/leverageBracket: not a fake endpoint
    binance.options["fetchBalance"] = {"useV2": True}      # /fapi/v2/account, as the plugin reads it
    binance.options["fetchPositionsRisk"] = {"useV2": True}
    return swap_client(binance)


@pytest.fixture
def bybit_swap(bybit):
    return swap_client(bybit)


@pytest.fixture(params=["binance_swap", "bybit_swap"])
def linear(request):
    return request.getfixturevalue(request.param)


def test_linear_swap_market_data(linear):
    market = linear.market("BTC/USDT:USDT")
    assert market["swap"] and market["linear"] and market["settle"] == "USDT" and market["contractSize"] == 1
    assert market["precision"]["amount"] == 0.001 and market["limits"]["amount"]["min"] == 0.001
    ticker = linear.fetch_ticker("BTC/USDT:USDT")
    assert ticker["last"] == 50000 and ticker["high"] > ticker["low"]
    book = linear.fetch_order_book("BTC/USDT:USDT", 5)
    assert book["asks"][0][0] == 50000.1 and book["bids"][0][0] == 50000 and len(book["asks"]) == 5
    method = {"method": "fapiPublicGetTrades"} if linear.id == "binance" else {}   # not aggTrades
    trades = linear.fetch_trades("BTC/USDT:USDT", limit=3, params=method)
    assert len(trades) == 3 and all(t["price"] > 49000 for t in trades)
    candles = linear.fetch_ohlcv("BTC/USDT:USDT", "1m", limit=3)
    assert len(candles) == 3 and candles[0][0] % 60_000 == 0
    funding = linear.fetch_funding_rate("BTC/USDT:USDT")
    assert funding["fundingRate"] == 0.0001 and funding["fundingTimestamp"] % 3_600_000 == 0
    assert funding["markPrice"] == 50000


def test_linear_swap_position_lifecycle(linear):
    linear.set_leverage(5, "BTC/USDT:USDT")
    order = linear.create_order("BTC/USDT:USDT", "market", "buy", 0.02)
    fetched = linear.fetch_order(order["id"], "BTC/USDT:USDT", params=SEEN if linear.id == "bybit" else {})
    assert fetched["status"] == "closed" and fetched["filled"] == 0.02 and fetched["average"] == 50000.1
    assert fetched["reduceOnly"] is False

    [position] = linear.fetch_positions(["BTC/USDT:USDT"])
    assert position["side"] == "long" and position["contracts"] == 0.02 and position["leverage"] == 5
    assert position["entryPrice"] == 50000.1 and position["unrealizedPnl"] == pytest.approx(-0.002)
    assert position["initialMargin"] == pytest.approx(200, abs=0.01)
    assert linear.fetch_balance({"type": "swap"})["USDT"]["used"] == pytest.approx(200, abs=0.01)

    resting = linear.create_order("BTC/USDT:USDT", "limit", "sell", 0.01, 60000, params={"reduceOnly": True})
    [listed] = linear.fetch_open_orders("BTC/USDT:USDT")
    assert listed["id"] == resting["id"] and listed["reduceOnly"] and listed["price"] == 60000
    linear.cancel_order(resting["id"], "BTC/USDT:USDT")
    assert linear.fetch_open_orders("BTC/USDT:USDT") == []

    closing = linear.create_order("BTC/USDT:USDT", "market", "sell", 0.02, params={"reduceOnly": True})
    closed = linear.fetch_order(closing["id"], "BTC/USDT:USDT", params=SEEN if linear.id == "bybit" else {})
    assert closed["status"] == "closed" and closed["reduceOnly"] is True and closed["average"] == 50000
    assert [p for p in linear.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]] == []


@pytest.fixture(params=["okx_swap", "binance_swap", "bybit_swap", "bingx"])
def any_swap(request):
    return request.getfixturevalue(request.param)


def test_hedge_mode(any_swap):
    """set_position_mode: OKX set-position-mode, Binance positionSide/dual, Bybit switch-mode."""
    amount = 2 if any_swap.id == "okx" else 0.02                 # OKX counts contracts of 0.01 BTC
    any_swap.set_position_mode(True, "BTC/USDT:USDT")
    any_swap.create_order("BTC/USDT:USDT", "market", "buy", amount, params={"hedged": True})
    any_swap.create_order("BTC/USDT:USDT", "market", "sell", amount, params={"hedged": True})
    held = {p["side"]: p for p in any_swap.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]}
    assert set(held) == {"long", "short"} and held["long"]["contracts"] == held["short"]["contracts"] == amount
    with pytest.raises(ccxt.ExchangeError):                       # not while positions are open
        any_swap.set_position_mode(False, "BTC/USDT:USDT")
    any_swap.create_order("BTC/USDT:USDT", "market", "sell", amount, params={"hedged": True, "reduceOnly": True})
    held = [p["side"] for p in any_swap.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]]
    assert held == ["short"]


def test_unknown_api_key_is_an_authentication_error(any_client):
    """OKX 50111, Binance -2015 (a key of the right shape), Bybit 10003."""
    any_client.apiKey = "A" * len(any_client.apiKey)
    with pytest.raises(ccxt.AuthenticationError):
        any_client.fetch_balance()


def test_unknown_symbol_from_the_exchange(any_client):
    """A market ccxt knows but the exchange does not list (any more) is refused by the fake."""
    market = dict(any_client.market("ETH/USDT"), id="XRP-USDT" if any_client.id in ("okx", "bitvavo", "coinbase") else "XRPUSDT",
                  symbol="XRP/USDT", base="XRP", baseId="XRP")
    any_client.markets["XRP/USDT"] = market
    refusal = ccxt.ExchangeError if any_client.id == "coinbase" else (ccxt.BadSymbol, ccxt.BadRequest)
    with pytest.raises(refusal, match="NOT_FOUND" if any_client.id == "coinbase" else None):   # ccxt has no finer
        any_client.fetch_ticker("XRP/USDT")                                                  # class for NOT_FOUND


def test_all_tickers_and_funding_rates(any_swap):
    """OKX tickers?instType and funding-rate?instId=ANY, Binance 24hr and premiumIndex without a
    symbol, Bybit tickers?category: every listed instrument in one call."""
    swaps = any_swap.fetch_tickers(params={"type": "swap"})
    assert swaps["BTC/USDT:USDT"]["last"] == 50000 and swaps["ETH/USDT:USDT"]["last"] == 3000
    rates = any_swap.fetch_funding_rates()
    assert rates["BTC/USDT:USDT"]["fundingRate"] == 0.0001 and rates["ETH/USDT:USDT"]["fundingRate"] == -0.00005
    assert abs(any_swap.fetch_time() - any_swap.milliseconds()) < 5_000


SWAP_REFUSALS = {   # exchange -> (no position to reduce, margin short), as each documents them
    "okx": ("51169", "51008"), "binance": ("-2022", "-2019"), "bybit": ("110017", "110007"),
    "bingx": ("101205", "101204")}


def test_swap_refusals(any_swap):
    """ccxt's own error classes differ (its Binance futures table is keyed on fapi.binance.com,
    which a fake on 127.0.0.1 is not), so the exchange's code is what is checked."""
    no_position, no_margin = SWAP_REFUSALS[any_swap.id]
    one = 1 if any_swap.id == "okx" else 0.01
    with pytest.raises(ccxt.ExchangeError, match=no_position):
        any_swap.create_order("BTC/USDT:USDT", "market", "sell", one, params={"reduceOnly": True})
    with pytest.raises(ccxt.ExchangeError, match=no_margin):
        any_swap.create_order("BTC/USDT:USDT", "limit", "buy", one * 10_000, 50000)
    with pytest.raises(ccxt.OrderNotFound):
        any_swap.cancel_order("123", "BTC/USDT:USDT")


def test_open_and_canceled_orders_page(any_client):
    """120 resting orders: OKX pages by `after` (100 a page), Bybit by nextPageCursor (ccxt
    follows it with paginate), Binance openOrders answers them all, Alpaca up to `limit` (500).
    Bitvavo allows 100 open orders a market: test_bitvavo_open_orders_are_capped_per_market."""
    if any_client.id == "bitvavo":
        pytest.skip("Bitvavo allows 100 open orders a market")
    ids = [any_client.create_order("ETH/USDT", "limit", "buy", 0.01, 1000 + i)["id"] for i in range(120)]
    if any_client.id == "okx":
        first = any_client.fetch_open_orders("ETH/USDT")
        oldest = min(first, key=lambda o: int(o["id"]))["id"]
        rest = any_client.fetch_open_orders("ETH/USDT", params={"after": oldest})
        found = first + rest
        assert (len(first), len(rest)) == (100, 20)
    elif any_client.id == "alpaca":
        assert len(any_client.fetch_open_orders("ETH/USDT")) == 50            # Alpaca's default limit
        found = any_client.fetch_open_orders("ETH/USDT", limit=500)
    else:
        found = any_client.fetch_open_orders("ETH/USDT", params={"paginate": True})
    assert sorted(o["id"] for o in found) == sorted(ids)
    for order_id in ids[:60]:
        any_client.cancel_order(order_id, "ETH/USDT")
    if any_client.id == "alpaca":
        canceled = any_client.fetch_closed_orders("ETH/USDT", limit=500)
        assert sorted(o["id"] for o in canceled if o["status"] == "canceled") == sorted(ids[:60])
    elif any_client.id != "okx":
        canceled = any_client.fetch_canceled_orders("ETH/USDT", params={"paginate": True})
        assert sorted(o["id"] for o in canceled) == sorted(ids[:60])


# ---------------------------------------------------------------------------- BingX (spot and perpetuals)

def bingx_client(fake, secret=None):
    client = ccxt.bingx({"apiKey": fake.ACCESS_KEY, "secret": secret or fake.SECRET_KEY,
                         "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {name: fake.url + "/openApi" for name in client.urls["api"]}
    client.has["fetchCurrencies"] = False              # /openApi/wallets/v1/capital/config: not a fake endpoint
    client.fetch_inverse_swap_markets = lambda params: []   # coin-M (/openApi/cswap): not served by the fake
    return client


bingx = client_fixture("bingx", FakeBingX, bingx_client)


def test_bingx_markets(bingx):
    """Spot from common/symbols, USDT-M perpetuals from quote/contracts (contractSize 1: coins)."""
    spot, swap = bingx.market("BTC/USDT"), bingx.market("BTC/USDT:USDT")
    assert spot["id"] == "BTC-USDT" and spot["active"] and spot["precision"] == {"amount": 1e-08, "price": 0.1}
    assert swap["linear"] and swap["contractSize"] == 1 and swap["precision"] == {"amount": 0.001, "price": 0.1}
    assert swap["limits"]["amount"]["min"] == 0.001 and swap["limits"]["cost"]["min"] == 2
    assert bingx.markets["OLD/USDT"]["active"] is False


@pytest.mark.parametrize("symbol", ["BTC/USDT", "BTC/USDT:USDT"])
def test_bingx_market_data(bingx, symbol):
    ticker = bingx.fetch_ticker(symbol)
    assert (ticker["bid"], ticker["ask"], ticker["last"], ticker["high"]) == (50000, 50000.1, 50000, 50500)
    book = bingx.fetch_order_book(symbol, 5)
    assert book["asks"][0][0] == 50000.1 and book["bids"][0][0] == 50000 and len(book["asks"]) == 5
    trades = bingx.fetch_trades(symbol, limit=10)
    assert len(trades) == 10 and {t["side"] for t in trades} == {"buy", "sell"}
    candles = bingx.fetch_ohlcv(symbol, "1m", limit=3)
    assert len(candles) == 3 and all(c[0] % 60_000 == 0 for c in candles) and candles[-1][5] == 10.5
    hour = 3_600_000
    since = bingx.milliseconds() // hour * hour - 10 * hour + 30 * 60_000
    hourly = bingx.fetch_ohlcv(symbol, "1h", since=since, limit=3)
    assert [c[0] for c in hourly] == [since // hour * hour + hour * i for i in (1, 2, 3)]


def test_bingx_balance_and_spot_order_lifecycle(bingx):
    assert bingx.fetch_balance()["USDT"] == {"free": 100000, "used": 0, "total": 100000}
    order = bingx.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, params={"clientOrderId": "ccxtTest1"})
    fetched = bingx.fetch_order(order["id"], "BTC/USDT")
    assert (fetched["status"], fetched["amount"], fetched["price"]) == ("open", 0.01, 40000)
    assert [o["id"] for o in bingx.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert bingx.fetch_balance()["USDT"]["used"] == 400
    bingx.cancel_order(None, "BTC/USDT", params={"clientOrderId": "ccxtTest1"})
    assert bingx.fetch_order(order["id"], "BTC/USDT")["status"] == "canceled"
    assert [o["id"] for o in bingx.fetch_canceled_orders("BTC/USDT")] == [order["id"]]
    again = bingx.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, params={"clientOrderId": "ccxtTest1"})
    assert again["id"] != order["id"]                  # a client id is unique among open orders only
    with pytest.raises(ccxt.DuplicateOrderId):
        bingx.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, params={"clientOrderId": "ccxtTest1"})


def test_bingx_market_orders_fill(bingx):
    sell = bingx.create_order("BTC/USDT", "market", "sell", 0.1)
    assert bingx.fetch_order(sell["id"], "BTC/USDT")["filled"] == 0.1
    buy = bingx.create_market_buy_order_with_cost("ETH/USDT", 30)      # quoteOrderQty
    assert bingx.fetch_order(buy["id"], "ETH/USDT")["cost"] == pytest.approx(30)
    assert bingx.fetch_balance()["BTC"]["free"] == pytest.approx(0.9)


def test_bingx_refusals_map_to_ccxt_errors(bingx):
    with pytest.raises(ccxt.OrderNotFound):
        bingx.cancel_order("123", "BTC/USDT:USDT")
    bingx.apiKey = "A" * len(bingx.apiKey)
    with pytest.raises(ccxt.AuthenticationError):               # 100413: key
        bingx.fetch_balance()


def test_bingx_swap_position_lifecycle(bingx):
    bingx.set_leverage(5, "BTC/USDT:USDT", {"side": "BOTH"})
    order = bingx.create_order("BTC/USDT:USDT", "market", "buy", 0.02)
    fetched = bingx.fetch_order(order["id"], "BTC/USDT:USDT")
    assert (fetched["status"], fetched["filled"], fetched["average"]) == ("closed", 0.02, 50000.1)
    [position] = bingx.fetch_positions(["BTC/USDT:USDT"])
    assert (position["side"], position["contracts"], position["leverage"]) == ("long", 0.02, 5)
    assert bingx.fetch_balance({"type": "swap"})["USDT"]["used"] == pytest.approx(200, abs=0.01)
    resting = bingx.create_order("BTC/USDT:USDT", "limit", "sell", 0.01, 60000, params={"reduceOnly": True})
    [listed] = bingx.fetch_open_orders("BTC/USDT:USDT")
    assert listed["id"] == resting["id"] and listed["reduceOnly"] and listed["price"] == 60000
    bingx.cancel_order(resting["id"], "BTC/USDT:USDT")
    bingx.create_order("BTC/USDT:USDT", "market", "sell", 0.02, params={"reduceOnly": True})
    assert bingx.fetch_positions(["BTC/USDT:USDT"]) == []
    assert len(bingx.fetch_closed_orders("BTC/USDT:USDT")) == 2


# ---------------------------------------------------------------------------- BloFin (USDT-margined perpetuals)

def blofin_client(fake, secret_key=None):
    """CCXT signs BloFin with its millisecond timestamp as the nonce, which BloFin refuses twice
    within 60 s: its clock here never reads the same millisecond twice, so the fake's nonce check
    holds without two requests of one millisecond being refused."""
    secret, passphrase = (secret_key or fake.SECRET_KEY).split(",")
    client = ccxt.blofin({"apiKey": fake.ACCESS_KEY, "secret": secret, "password": passphrase,
                         "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"rest": fake.url}
    client.has["fetchCurrencies"] = False           # /asset/currencies: not a fake endpoint
    clock = client.milliseconds
    last = [0]

    def never_twice():
        last[0] = max(clock(), last[0] + 1)
        return last[0]
    client.milliseconds = never_twice
    return client


blofin = client_fixture("blofin", FakeBloFin, blofin_client)


def test_blofin_markets_and_data(blofin):
    market = blofin.market("BTC/USDT:USDT")
    assert market["id"] == "BTC-USDT" and market["swap"] and market["linear"] and market["active"]
    assert (market["contractSize"], market["precision"]["amount"], market["limits"]["amount"]["min"]) == \
        (0.01, 0.1, 0.1)
    assert blofin.markets["OLD/USDT:USDT"]["active"] is False
    ticker = blofin.fetch_ticker("BTC/USDT:USDT")
    assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
    book = blofin.fetch_order_book("ETH/USDT:USDT", limit=5)
    assert len(book["asks"]) == 5 and book["asks"][0] == [3000.01, 100]
    trades = blofin.fetch_trades("BTC/USDT:USDT", limit=3)
    assert len(trades) == 3 and all(t["price"] >= 50000 for t in trades)
    candles = blofin.fetch_ohlcv("BTC/USDT:USDT", "1h", limit=3)
    assert len(candles) == 3 and [b[0] - a[0] for a, b in zip(candles, candles[1:])] == [3_600_000] * 2
    funding = blofin.fetch_funding_rate("BTC/USDT:USDT")
    assert funding["fundingRate"] == 0.0001 and funding["fundingTimestamp"] % (8 * 3_600_000) == 0


def test_blofin_position_lifecycle(blofin):
    assert blofin.fetch_position_mode()["hedged"] is False
    blofin.set_leverage(5, "BTC/USDT:USDT")
    order = blofin.create_order("BTC/USDT:USDT", "market", "buy", 2)           # 2 contracts = 0.02 BTC
    assert order["id"] and order["side"] == "buy"
    [position] = blofin.fetch_positions(["BTC/USDT:USDT"])
    assert (position["side"], position["contracts"], position["leverage"]) == ("long", 2, 5)
    assert position["entryPrice"] == 50000.1 and position["marginMode"] == "cross"
    assert blofin.fetch_balance()["USDT"]["free"] == pytest.approx(100000 - 200, abs=0.01)
    resting = blofin.create_order("BTC/USDT:USDT", "limit", "sell", 1, 60000, params={"reduceOnly": True})
    [listed] = blofin.fetch_open_orders("BTC/USDT:USDT")
    assert listed["id"] == resting["id"] and listed["reduceOnly"] and listed["price"] == 60000
    blofin.cancel_order(resting["id"], "BTC/USDT:USDT")
    assert blofin.fetch_open_orders("BTC/USDT:USDT") == []
    blofin.create_order("BTC/USDT:USDT", "market", "sell", 2, params={"reduceOnly": True})
    assert [p for p in blofin.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]] == []
    closed = blofin.fetch_closed_orders("BTC/USDT:USDT")
    assert sorted(o["status"] for o in closed) == ["canceled", "closed", "closed"]


def test_blofin_refusals_map_to_ccxt_errors(blofin):
    with pytest.raises(ccxt.InsufficientFunds):
        blofin.create_order("BTC/USDT:USDT", "limit", "buy", 100000, 40000)
    with pytest.raises(ccxt.InvalidOrder, match="102022"):
        blofin.create_order("BTC/USDT:USDT", "market", "sell", 1, params={"reduceOnly": True})
    with pytest.raises(ccxt.BadRequest, match="102068"):
        blofin.cancel_order("12345", "BTC/USDT:USDT")


def test_blofin_rate_limits_and_outages(blofin):
    blofin.fake.inject("429")
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.ExchangeNotAvailable)):
        blofin.fetch_balance()
    blofin.fake.inject("5xx")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        blofin.fetch_ticker("BTC/USDT:USDT")
    assert blofin.fetch_balance()["USDT"]["free"] == 100000
