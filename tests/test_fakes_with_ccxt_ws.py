"""The fakes' WebSocket streams speak their exchange's dialect: CCXT's async `ccxt.pro` clients
(OKX, Binance spot and USDT-M, Bybit spot and linear, BingX spot and swap, BloFin perpetuals,
Bitvavo, Alpaca, Coinbase),
written by other people against the real streams, watch tickers, books and trades through each
fake without knowing it is one (as tests/test_fakes_with_ccxt.py does for REST).

CCXT is never a dependency of this project; without it this file is skipped. To run it:

    /work/venv-ccxt/bin/python -m pytest tests/test_fakes_with_ccxt_ws.py   (ccxt, aiohttp, pytest)
"""
import asyncio
import json
import re
from decimal import Decimal as D

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
import ccxt.pro  # noqa: E402  (after the skip, as the file needs ccxt)

from tests.fakes.alpaca import FakeAlpaca  # noqa: E402
from tests.fakes.binance import FakeBinance  # noqa: E402
from tests.fakes.bitvavo import FakeBitvavo  # noqa: E402
from tests.fakes.bingx import FakeBingX  # noqa: E402
from tests.fakes.blofin import FakeBloFin  # noqa: E402
from tests.fakes.bybit import FakeBybit  # noqa: E402
from tests.fakes.coinbase import FakeCoinbase  # noqa: E402
from tests.fakes.okx import FakeOKX  # noqa: E402

WAIT = 10.0          # seconds any awaited message may take at most (it takes milliseconds)


def watching(fake_class, make_client, check):
    """Run `await check(client, fake)` with a fresh fake and a ccxt.pro client of it, markets loaded."""
    async def run():
        with fake_class() as fake:
            client = make_client(fake)
            try:
                await client.load_markets()
                await check(client, fake)
            finally:
                await client.close()
    asyncio.run(run())


def okx_client(fake):
    client = ccxt.pro.okx({"enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"rest": fake.url, "ws": fake.ws_url + "/ws/v5"}     # + /public, as on OKX
    client.has["fetchCurrencies"] = False
    client.options["fetchMarkets"] = {"types": ["spot", "swap"]}
    return client


async def soon(awaitable):
    return await asyncio.wait_for(awaitable, WAIT)


async def fake_took(fake, topic):
    """Wait (bounded, without blocking the event loop) until one of the fake's sessions holds the
    subscription `topic` (as the fake keeps it in ws_subscriptions)."""
    took = lambda: any(topic in topics for topics in list(fake.ws_subscriptions.values()))
    await asyncio.get_running_loop().run_in_executor(None, fake.ws_wait, took)


async def one_sale_seen(fake, waiting, symbol, pair, amount):
    """The engine sells `amount` at market (one fill at 50000): the awaited watch_trades (`waiting`)
    answers that one trade."""
    with fake.lock:
        fake.engine.place(pair, "sell", "market", D(amount))
    trades = await soon(waiting)
    assert [(t["price"], t["amount"], t["side"], t["symbol"]) for t in trades] == [(50000, float(amount), "sell", symbol)]
    assert trades[0]["timestamp"] > 1_600_000_000_000 and trades[0]["id"]


async def a_fill_moves_the_ticker(client, fake, symbol, pair, ticker, amount="0.001", params=None):
    """The engine buys `amount` at market: the fake pushes a fresh ticker, no older than `ticker`."""
    with fake.lock:
        fake.engine.place(pair, "buy", "market", D(amount))
    moved = await soon(client.watch_ticker(symbol, params or {}))
    assert moved["timestamp"] >= ticker["timestamp"]


async def the_best_ask_goes(client, fake, symbol, pair, next_ask):
    """A book update takes the best ask (50000.1) away and bids 2 at 50000.05: CCXT's book shows
    `next_ask` first and the new bid."""
    fake.push_book_update(pair, asks=[["50000.1", "0"]], bids=[["50000.05", "2"]])
    book = await soon(client.watch_order_book(symbol))
    assert book["asks"][0] == next_ask and book["bids"][0] == [50000.05, 2]


def test_okx_watch_ticker():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT"))
        assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
        assert ticker["symbol"] == "BTC/USDT" and ticker["timestamp"] > 1_600_000_000_000
        swap = await soon(client.watch_ticker("ETH/USDT:USDT"))
        assert swap["symbol"] == "ETH/USDT:USDT" and swap["last"] == 3000
        await a_fill_moves_the_ticker(client, fake, "BTC/USDT", ("BTC", "USDT"), ticker)
    watching(FakeOKX, okx_client, check)


def test_okx_watch_order_book_snapshot_and_updates():
    async def check(client, fake):
        book = await soon(client.watch_order_book("BTC/USDT"))           # the books channel (400 levels)
        assert book["asks"][0] == [50000.1, 0.5] and book["bids"][0] == [50000, 0.5]
        assert len(book["asks"]) == len(book["bids"]) == 400
        await the_best_ask_goes(client, fake, "BTC/USDT", ("BTC", "USDT"), [50000.2, 1])    # CCXT checks prevSeqId
        small = await soon(client.watch_order_book("ETH/USDT", limit=5))  # the books5 channel
        assert small["asks"][0][:2] == [3000.01, 0.5] and len(small["bids"]) == 5
    watching(FakeOKX, okx_client, check)


def test_okx_watch_ohlcv_on_the_business_endpoint():
    async def check(client, fake):
        candles = await soon(client.watch_ohlcv("BTC/USDT", "1m"))
        assert len(candles[-1]) == 6 and candles[-1][0] % 60_000 == 0
        business = [message for path, message in list(fake.ws_received) if path == "/ws/v5/business"]
        assert '"candle1m"' in business[0]
    watching(FakeOKX, okx_client, check)


# -- Binance ---------------------------------------------------------------------------------------

def binance_client(fake):
    client = ccxt.pro.binance({"enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {api: re.sub(r"^https://[^/]+", fake.url, url) for api, url in client.urls["api"].items()
                          if isinstance(url, str)}
    # spot on /stream/ws (CCXT adds /N, and knows spot by "/stream" as in stream.binance.com); USDT-M's
    # .../ws becomes .../public/ws or .../market/ws, as on Binance
    client.urls["api"]["ws"] = {"spot": fake.ws_url + "/stream/ws", "linear": fake.ws_url + "/ws"}
    client.has["fetchCurrencies"] = False
    client.options["fetchMarkets"] = {"types": ["spot", "linear"]}
    client.options["fetchMargins"] = False
    return client


def test_binance_watch_ticker_spot_and_futures():
    async def check(client, fake):
        mini = await soon(client.watch_ticker("ETH/USDT"))                # CCXT's default: @miniTicker
        assert mini["last"] == 3000 and mini["bid"] is None
        ticker = await soon(client.watch_ticker("BTC/USDT", {"name": "ticker"}))   # the whole 24 h ticker
        assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
        assert ticker["symbol"] == "BTC/USDT" and ticker["timestamp"] > 1_600_000_000_000
        swap = await soon(client.watch_ticker("ETH/USDT:USDT"))
        assert swap["symbol"] == "ETH/USDT:USDT" and swap["last"] == 3000
        await a_fill_moves_the_ticker(client, fake, "BTC/USDT", ("BTC", "USDT"), ticker, params={"name": "ticker"})
    watching(FakeBinance, binance_client, check)


@pytest.mark.parametrize("symbol", ["BTC/USDT", "BTC/USDT:USDT"])
def test_binance_watch_order_book_diff_depth_after_the_rest_snapshot(symbol):
    async def check(client, fake):
        pair = ("BTC", "USDT") if symbol == "BTC/USDT" else linear_btc(fake)
        book = await soon(client.watch_order_book(symbol))             # diff depth + REST lastUpdateId
        assert book["asks"][0][0] == 50000.1 and book["bids"][0][0] == 50000
        fake.push_depth_update(pair, asks=[[fake.text(pair, D("50000.1")), "0"]],
                               bids=[[fake.text(pair, D("50000.05")), "2"]])
        book = await soon(client.watch_order_book(symbol))             # CCXT checks U/u (and pu)
        assert book["asks"][0][0] == 50000.2 and book["bids"][0] == [50000.05, 2]
        assert book["nonce"] == fake.update_ids[pair]
    watching(FakeBinance, binance_client, check)


def linear_btc(fake):
    """The engine's USDT-margined BTC perpetual."""
    return next(pair for pair, spec in fake.engine.swaps.items() if pair[:2] == ("BTC", "USDT") and not spec["inverse"])


def test_binance_watch_trades_sees_the_engines_fills():
    async def check(client, fake):
        waiting = asyncio.ensure_future(client.watch_trades("BTC/USDT"))
        await binance_subscribed(fake, "btcusdt@trade")
        await one_sale_seen(fake, waiting, "BTC/USDT", ("BTC", "USDT"), "0.5")
        waiting = asyncio.ensure_future(client.watch_trades("BTC/USDT:USDT"))
        await binance_subscribed(fake, "btcusdt@trade", futures=True)
        swap = linear_btc(fake)
        with fake.lock:
            fake.engine.place(swap, "buy", "market", D("1"))                    # one contract: 0.01 BTC
        trades = await soon(waiting)
        assert [(t["amount"], t["side"], t["symbol"]) for t in trades] == [(0.01, "buy", "BTC/USDT:USDT")]
    watching(FakeBinance, binance_client, check)


async def binance_subscribed(fake, name, futures=False):
    subscribed = lambda: any(name in names and fake.ws_kinds.get(session, (None,))[0] == futures
                             for session, names in list(fake.ws_subscriptions.items()))
    await asyncio.get_running_loop().run_in_executor(None, fake.ws_wait, subscribed)


# -- Bybit -----------------------------------------------------------------------------------------

def bybit_client(fake):
    client = ccxt.pro.bybit({"enableRateLimit": False, "timeout": 5000})
    rest = {name: fake.url for name in ("spot", "futures", "v2", "public", "private")}
    client.urls["api"] = {**rest, "ws": {"public": {kind: f"{fake.ws_url}/v5/public/{kind}" for kind in ("spot", "linear")}}}
    client.has["fetchCurrencies"] = False
    client.options["fetchMarkets"] = {"types": ["spot", "linear"]}
    client.options["enableUnifiedAccount"] = True
    client.options["enableUnifiedMargin"] = False
    return client


def test_bybit_watch_ticker_spot_and_linear_deltas():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT"))
        assert ticker["last"] == 50000 and ticker["symbol"] == "BTC/USDT" and ticker["timestamp"] > 1_600_000_000_000
        swap = await soon(client.watch_ticker("BTC/USDT:USDT"))
        assert (swap["bid"], swap["ask"], swap["last"]) == (50000, 50000.1, 50000)
        fake.push_ticker_delta(linear_btc(fake), lastPrice="50123.5")        # CCXT merges the delta
        swap = await soon(client.watch_ticker("BTC/USDT:USDT"))
        assert (swap["bid"], swap["last"]) == (50000, 50123.5)
    watching(FakeBybit, bybit_client, check)


@pytest.mark.parametrize("symbol", ["BTC/USDT", "BTC/USDT:USDT"])
def test_bybit_watch_order_book_snapshot_and_deltas(symbol):
    async def check(client, fake):
        pair = ("BTC", "USDT") if symbol == "BTC/USDT" else linear_btc(fake)
        book = await soon(client.watch_order_book(symbol))                  # orderbook.50
        assert book["asks"][0][0] == 50000.1 and len(book["bids"]) == 50
        fake.push_book_update(pair, asks=[["50000.1", "0"]], bids=[["50000.05", "2"]])
        book = await soon(client.watch_order_book(symbol))
        assert book["asks"][0][0] == 50000.2 and book["bids"][0] == [50000.05, 2]
    watching(FakeBybit, bybit_client, check)


# -- BingX -----------------------------------------------------------------------------------------

async def no_markets(params):
    return []


def bingx_client(fake):
    client = ccxt.pro.bingx({"enableRateLimit": False, "timeout": 5000})
    rest = {name: fake.url + "/openApi" for name, url in client.urls["api"].items() if name != "ws"}
    client.urls["api"] = {**rest, "ws": {"spot": fake.ws_url + "/market", "linear": fake.ws_url + "/swap-market"}}
    client.has["fetchCurrencies"] = False
    client.fetch_inverse_swap_markets = no_markets        # coin-M (/openApi/cswap): not served by the fake
    client.options["watchOrderBook"] = {"depth": 20}
    return client


def test_bingx_watch_ticker_spot_and_swap_through_gzip():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT"))
        assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
        swap = await soon(client.watch_ticker("BTC/USDT:USDT"))
        assert swap["symbol"] == "BTC/USDT:USDT" and (swap["bid"], swap["ask"]) == (50000, 50000.1)
    watching(FakeBingX, bingx_client, check)


@pytest.mark.parametrize("symbol", ["BTC/USDT", "BTC/USDT:USDT"])
def test_bingx_watch_order_book(symbol):
    async def check(client, fake):
        book = await soon(client.watch_order_book(symbol))
        assert book["asks"][0][0] == 50000.1 and book["bids"][0][0] == 50000 and len(book["asks"]) == 20
    watching(FakeBingX, bingx_client, check)


# -- BloFin (USDT-margined perpetuals) ------------------------------------------------------------

def blofin_client(fake):
    client = ccxt.pro.blofin({"enableRateLimit": False, "timeout": 5000})
    client.urls["api"]["rest"] = fake.url
    client.urls["api"]["ws"] = {"swap": {"public": fake.ws_url + "/ws/public", "private": fake.ws_url + "/ws/private"}}
    client.has["fetchCurrencies"] = False
    return client


BLOFIN_BTC = ("BTC", "USDT", "swap")


def test_blofin_watch_ticker():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT:USDT"))
        assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
        assert ticker["symbol"] == "BTC/USDT:USDT" and ticker["timestamp"] > 1_600_000_000_000
        await a_fill_moves_the_ticker(client, fake, "BTC/USDT:USDT", BLOFIN_BTC, ticker, amount="1")   # contract
    watching(FakeBloFin, blofin_client, check)


def test_blofin_watch_order_book_snapshot_and_updates():
    async def check(client, fake):
        book = await soon(client.watch_order_book("BTC/USDT:USDT"))     # the books channel (200 levels)
        assert book["asks"][0] == [50000.1, 10] and book["bids"][0] == [50000, 10]
        assert len(book["asks"]) == len(book["bids"]) == 200 and book["nonce"] > 0
        await the_best_ask_goes(client, fake, "BTC/USDT:USDT", BLOFIN_BTC, [50000.2, 20])
    watching(FakeBloFin, blofin_client, check)


def test_blofin_watch_ohlcv():
    async def check(client, fake):
        candles = await soon(client.watch_ohlcv("BTC/USDT:USDT", "1m"))
        assert len(candles[-1]) == 6 and candles[-1][0] % 60_000 == 0
        assert '"candle1m"' in fake.ws_received[0][1]
    watching(FakeBloFin, blofin_client, check)


# -- Bitvavo (public channels on /v2/) --------------------------------------------------------------

def bitvavo_client(fake):
    client = ccxt.pro.bitvavo({"enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"public": fake.url, "private": fake.url, "ws": fake.ws_url + "/v2"}
    return client


def test_bitvavo_watch_ticker():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT"))                # the ticker24h channel
        assert (ticker["bid"], ticker["ask"], ticker["last"], ticker["high"]) == (50000, 50000.1, 50000, 50500)
        assert ticker["symbol"] == "BTC/USDT" and ticker["timestamp"] > 1_600_000_000_000
        await a_fill_moves_the_ticker(client, fake, "BTC/USDT", ("BTC", "USDT"), ticker)
    watching(FakeBitvavo, bitvavo_client, check)


def test_bitvavo_watch_order_book_snapshot_by_getbook_and_nonce_updates():
    async def check(client, fake):
        waiting = asyncio.ensure_future(client.watch_order_book("BTC/USDT"))
        await fake_took(fake, ("book", "BTC-USDT"))
        fake.push_book_update(("BTC", "USDT"), bids=[["50000.05", "2"]])  # CCXT asks getBook on its first update
        book = await soon(waiting)
        assert book["asks"][0] == [50000.1, 0.5] and book["bids"][0] == [50000.05, 2] and len(book["asks"]) == 1000
        assert any(json.loads(m).get("action") == "getBook" for _, m in fake.ws_received)
        fake.push_book_update(("BTC", "USDT"), asks=[["50000.1", "0"]])
        book = await soon(client.watch_order_book("BTC/USDT"))            # nonce one past the snapshot's
        assert book["asks"][0] == [50000.2, 1] and book["nonce"] == fake.ws_books["BTC-USDT"]["nonce"]
    watching(FakeBitvavo, bitvavo_client, check)


# -- Alpaca (the authenticated crypto data stream) --------------------------------------------------

def alpaca_client(fake):
    client = ccxt.pro.alpaca({"apiKey": fake.ACCESS_KEY, "secret": fake.SECRET_KEY,
                              "enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"trader": fake.url, "market": fake.url, "broker": fake.url,
                          "ws": {"crypto": fake.ws_url + "/v1beta3/crypto/us", "trading": fake.ws_url + "/stream"}}
    return client


def test_alpaca_watch_ticker_after_auth():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USD"))                 # quotes, after CCXT's auth
        assert (ticker["bid"], ticker["ask"]) == (50000, 50000.1) and ticker["symbol"] == "BTC/USD"
        assert ticker["timestamp"] > 1_600_000_000_000
        assert json.loads(fake.ws_received[0][1]) == {"action": "auth", "key": fake.ACCESS_KEY, "secret": fake.SECRET_KEY}
        await a_fill_moves_the_ticker(client, fake, "BTC/USD", ("BTC", "USD"), ticker)
    watching(FakeAlpaca, alpaca_client, check)


def test_alpaca_watch_order_book_whole_then_updates():
    async def check(client, fake):
        book = await soon(client.watch_order_book("BTC/USD"))
        assert book["asks"][0] == [50000.1, 0.5] and book["bids"][0] == [50000, 0.5] and len(book["asks"]) == 100
        await the_best_ask_goes(client, fake, "BTC/USD", ("BTC", "USD"), [50000.2, 1])
    watching(FakeAlpaca, alpaca_client, check)


# -- Coinbase (the public market-data channels, no key) ---------------------------------------------

def coinbase_ws_client(fake):
    client = ccxt.pro.coinbase({"enableRateLimit": False, "timeout": 5000})
    client.urls["api"] = {"rest": fake.url, "ws": fake.ws_url}
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.has["fetchCurrencies"] = False
    return client


def test_coinbase_watch_ticker():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT"))
        assert (ticker["bid"], ticker["ask"], ticker["last"], ticker["baseVolume"]) == (50000, 50000.1, 50000, 1234.5)
        assert ticker["symbol"] == "BTC/USDT" and ticker["high"] >= ticker["low"] > 0
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "buy", "market", D("0.001"))     # a fill pushes a fresh ticker
        moved = await soon(client.watch_ticker("BTC/USDT"))
        assert moved["last"] == 50000.1
        assert all("api_key" not in m and "jwt" not in m for _, m in fake.ws_received)
    watching(FakeCoinbase, coinbase_ws_client, check)


def test_coinbase_watch_order_book_snapshot_and_updates():
    async def check(client, fake):
        book = await soon(client.watch_order_book("BTC/USDT"))             # the level2 snapshot (l2_data)
        assert book["asks"][0] == [50000.1, 0.5] and book["bids"][0] == [50000, 0.5] and len(book["asks"]) == 500
        await the_best_ask_goes(client, fake, "BTC/USDT", ("BTC", "USDT"), [50000.2, 1])
    watching(FakeCoinbase, coinbase_ws_client, check)


def test_coinbase_watch_trades_sees_the_engines_fills():
    async def check(client, fake):
        trades = await soon(client.watch_trades("BTC/USDT"))               # the snapshot: the latest trades
        assert trades and all(t["symbol"] == "BTC/USDT" for t in trades)
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "sell", "market", D("0.5"))      # one fill: 0.5 at 50000
        trades = await soon(client.watch_trades("BTC/USDT"))
        assert [(t["price"], t["amount"], t["side"]) for t in trades][-1:] == [(50000, 0.5, "sell")]
        assert trades[-1]["timestamp"] > 1_600_000_000_000 and trades[-1]["id"]
    watching(FakeCoinbase, coinbase_ws_client, check)


# -- every fake ------------------------------------------------------------------------------------

TRADE_STREAMS = {   # exchange: (fake, client, symbol, the engine's pair, the fake's topic for it, amount sold)
    "okx": (FakeOKX, okx_client, "BTC/USDT", ("BTC", "USDT"), ("trades", "BTC-USDT"), "0.5"),
    "bybit": (FakeBybit, bybit_client, "BTC/USDT", ("BTC", "USDT"), "publicTrade.BTCUSDT", "0.5"),
    "bingx": (FakeBingX, bingx_client, "BTC/USDT", ("BTC", "USDT"), "BTC-USDT@trade", "0.5"),
    "blofin": (FakeBloFin, blofin_client, "BTC/USDT:USDT", BLOFIN_BTC, ("trades", "BTC-USDT"), "2"),   # contracts
    "bitvavo": (FakeBitvavo, bitvavo_client, "BTC/USDT", ("BTC", "USDT"), ("trades", "BTC-USDT"), "0.5"),
    "alpaca": (FakeAlpaca, alpaca_client, "BTC/USD", ("BTC", "USD"), ("trades", "BTC/USD"), "0.5")}


@pytest.mark.parametrize("name", TRADE_STREAMS)
def test_watch_trades_sees_the_engines_fills(name):
    fake_class, make_client, symbol, pair, topic, amount = TRADE_STREAMS[name]

    async def check(client, fake):
        waiting = asyncio.ensure_future(client.watch_trades(symbol))
        await fake_took(fake, topic)
        await one_sale_seen(fake, waiting, symbol, pair, amount)
    watching(fake_class, make_client, check)
