"""The fakes' WebSocket streams speak their exchange's dialect: CCXT's async `ccxt.pro` clients
(OKX, Binance spot and USDT-M, Bybit spot and linear, BingX spot and swap),
written by other people against the real streams, watch tickers, books and trades through each
fake without knowing it is one (as tests/test_fakes_with_ccxt.py does for REST).

CCXT is never a dependency of this project; without it this file is skipped. To run it:

    /work/venv-ccxt/bin/python -m pytest tests/test_fakes_with_ccxt_ws.py   (ccxt, aiohttp, pytest)
"""
import asyncio
import re
from decimal import Decimal as D

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
import ccxt.pro  # noqa: E402  (after the skip, as the file needs ccxt)

from tests.fakes.binance import FakeBinance  # noqa: E402
from tests.fakes.bingx import FakeBingX  # noqa: E402
from tests.fakes.bybit import FakeBybit  # noqa: E402
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


def test_okx_watch_ticker():
    async def check(client, fake):
        ticker = await soon(client.watch_ticker("BTC/USDT"))
        assert (ticker["bid"], ticker["ask"], ticker["last"]) == (50000, 50000.1, 50000)
        assert ticker["symbol"] == "BTC/USDT" and ticker["timestamp"] > 1_600_000_000_000
        swap = await soon(client.watch_ticker("ETH/USDT:USDT"))
        assert swap["symbol"] == "ETH/USDT:USDT" and swap["last"] == 3000
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "buy", "market", D("0.001"))     # a fill pushes a fresh ticker
        moved = await soon(client.watch_ticker("BTC/USDT"))
        assert moved["timestamp"] >= ticker["timestamp"]
    watching(FakeOKX, okx_client, check)


def test_okx_watch_order_book_snapshot_and_updates():
    async def check(client, fake):
        book = await soon(client.watch_order_book("BTC/USDT"))           # the books channel (400 levels)
        assert book["asks"][0] == [50000.1, 0.5] and book["bids"][0] == [50000, 0.5]
        assert len(book["asks"]) == len(book["bids"]) == 400
        fake.push_book_update(("BTC", "USDT"), asks=[["50000.1", "0"]], bids=[["50000.05", "2"]])
        book = await soon(client.watch_order_book("BTC/USDT"))            # CCXT checks prevSeqId
        assert book["asks"][0] == [50000.2, 1] and book["bids"][0] == [50000.05, 2]
        small = await soon(client.watch_order_book("ETH/USDT", limit=5))  # the books5 channel
        assert small["asks"][0][:2] == [3000.01, 0.5] and len(small["bids"]) == 5
    watching(FakeOKX, okx_client, check)


def test_okx_watch_trades_sees_the_engines_fills():
    async def check(client, fake):
        waiting = asyncio.ensure_future(client.watch_trades("BTC/USDT"))
        await fake_subscribed(fake, "trades", "BTC-USDT")
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "sell", "market", D("0.5"))      # one fill: 0.5 at 50000
        trades = await soon(waiting)
        assert [(t["price"], t["amount"], t["side"], t["symbol"]) for t in trades] == [(50000, 0.5, "sell", "BTC/USDT")]
        assert trades[0]["timestamp"] > 1_600_000_000_000 and trades[0]["id"]
    watching(FakeOKX, okx_client, check)


async def fake_subscribed(fake, channel, inst):
    """Wait (bounded, without blocking the event loop) until the fake took a subscription."""
    subscribed = lambda: any((channel, inst) in topics for topics in fake.ws_subscriptions.values())
    await asyncio.get_running_loop().run_in_executor(None, fake.ws_wait, subscribed)


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
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "buy", "market", D("0.001"))     # a fill pushes a fresh ticker
        moved = await soon(client.watch_ticker("BTC/USDT", {"name": "ticker"}))
        assert moved["timestamp"] >= ticker["timestamp"]
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
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "sell", "market", D("0.5"))      # one fill: 0.5 at 50000
        trades = await soon(waiting)
        assert [(t["price"], t["amount"], t["side"], t["symbol"]) for t in trades] == [(50000, 0.5, "sell", "BTC/USDT")]
        assert trades[0]["timestamp"] > 1_600_000_000_000 and trades[0]["id"]
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


def test_bybit_watch_trades_sees_the_engines_fills():
    async def check(client, fake):
        waiting = asyncio.ensure_future(client.watch_trades("BTC/USDT"))
        await bybit_subscribed(fake, "publicTrade.BTCUSDT")
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "sell", "market", D("0.5"))      # one fill: 0.5 at 50000
        trades = await soon(waiting)
        assert [(t["price"], t["amount"], t["side"], t["symbol"]) for t in trades] == [(50000, 0.5, "sell", "BTC/USDT")]
        assert trades[0]["timestamp"] > 1_600_000_000_000 and trades[0]["id"]
    watching(FakeBybit, bybit_client, check)


async def bybit_subscribed(fake, topic):
    subscribed = lambda: any(topic in topics for topics in list(fake.ws_subscriptions.values()))
    await asyncio.get_running_loop().run_in_executor(None, fake.ws_wait, subscribed)


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


def test_bingx_watch_trades_sees_the_engines_fills():
    async def check(client, fake):
        waiting = asyncio.ensure_future(client.watch_trades("BTC/USDT"))
        await bingx_subscribed(fake, "BTC-USDT@trade")
        with fake.lock:
            fake.engine.place(("BTC", "USDT"), "sell", "market", D("0.5"))      # one fill: 0.5 at 50000
        trades = await soon(waiting)
        assert [(t["price"], t["amount"], t["side"], t["symbol"]) for t in trades] == [(50000, 0.5, "sell", "BTC/USDT")]
    watching(FakeBingX, bingx_client, check)


async def bingx_subscribed(fake, name):
    subscribed = lambda: any(name in names for names in list(fake.ws_subscriptions.values()))
    await asyncio.get_running_loop().run_in_executor(None, fake.ws_wait, subscribed)
