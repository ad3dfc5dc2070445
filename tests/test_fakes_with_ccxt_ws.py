"""The fakes' WebSocket streams speak their exchange's dialect: CCXT's async `ccxt.pro` clients,
written by other people against the real streams, watch tickers, books and trades through each
fake without knowing it is one (as tests/test_fakes_with_ccxt.py does for REST).

CCXT is never a dependency of this project; without it this file is skipped. To run it:

    /work/venv-ccxt/bin/python -m pytest tests/test_fakes_with_ccxt_ws.py   (ccxt, aiohttp, pytest)
"""
import asyncio
from decimal import Decimal as D

import pytest

ccxt = pytest.importorskip("ccxt")
pytest.importorskip("aiohttp")
import ccxt.pro  # noqa: E402  (after the skip, as the file needs ccxt)

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
