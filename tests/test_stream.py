"""Market data from the stream (exchanges/_stream.py) with each exchange's dialect, against the
fakes' WebSockets (tests/fakes/<exchange>.py): subscribe, answer locally, resync, drop and
reconnect, idle, keepalive. A request answered by the stream leaves no trace in the fake's REST
log. The tests that do not depend on a dialect run for every streaming exchange (VENUES).

Tests that shorten the manager's intervals reach into the plugin's process (repo mode only);
the others run against the bundle too.
"""
import contextlib
import json
import socket
import zlib

import pytest

import fmz_plugin
from exchanges import _stream, alpaca, binance, bingx, bitvavo, blofin, bybit, coinbase, okx
from tests.conftest import PluginClient, serving
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.base import FakeExchange
from tests.fakes.binance import FakeBinance
from tests.fakes.bingx import FakeBingX
from tests.fakes.bitvavo import FakeBitvavo
from tests.fakes.blofin import FakeBloFin
from tests.fakes.bybit import FakeBybit
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.okx import PASSPHRASE, FakeOKX

TICKER_PATH, CANDLES_PATH = "/api/v5/market/ticker", "/api/v5/market/candles"
PUBLIC = "/ws/v5/public"
WAIT = 10.0        # seconds any awaited event may take at most (it takes milliseconds)


class Venue:
    """What the exchange-neutral tests need to know of one exchange's stream and its fake."""

    def __init__(self, name, fake_class, module, ws_urls, subscriptions, ticker_topic, depth_topic=None,
                 secrets=(), contract=1, swaps=True, login=False):
        self.name, self.fake_class, self.module = name, fake_class, module
        self.swaps = swaps                    # it lists BTC_USDT.swap and ETH_USDT.swap
        self.login = login                    # its stream logs in with the robot's key first (no public channel)
        self.depth_topic = depth_topic        # how BTC_USDT's depth channel appears there (a diff book)
        self.contract = contract              # the amount of one BTC_USDT.swap contract in the plugin's unit
        self.ws_urls = ws_urls                # fake -> the --base-url entries of its stream
        self.subscriptions = subscriptions    # (fake, op) -> the topics subscribed (or unsubscribed), in order
        self.ticker_topic = ticker_topic      # how BTC_USDT's ticker channel appears there
        self.secrets = secrets                # more secrets than the fake's key and secret

    def traded(self, symbol):
        """The symbol as this exchange trades it: one that serves swaps only (BloFin) has
        BTC_USDT.swap where the others have BTC_USDT."""
        return symbol if self.fake_class.SPOT or symbol.endswith(".swap") else symbol + ".swap"

    def pair(self, symbol="BTC_USDT"):
        """The fake engine's pair of a symbol: ("BTC", "USDT"), or ("BTC", "USDT", "swap")."""
        name, _, kind = self.traded(symbol).partition(".")
        return tuple(name.split("_")) + ((kind,) if kind else ())

    def market_buy(self, client, symbol="BTC_USDT"):
        """A market buy that fills at once: 10 USDT of a spot symbol, or one contract of a swap."""
        symbol = self.traded(symbol)
        amount = self.contract if symbol.endswith(".swap") else 10
        return client.data("trade", symbol=symbol, type="buy", price=-1, amount=amount)

    def __repr__(self):
        return self.name


def okx_subscriptions(fake, op="subscribe"):
    """The args of every subscribe (or unsubscribe) the fake OKX received, in order."""
    found = []
    for path, message in list(fake.ws_received):
        if path == PUBLIC and message.startswith("{") and json.loads(message).get("op") == op:
            found += json.loads(message)["args"]
    return found


def binance_subscriptions(fake, op="subscribe"):
    """The stream names of every SUBSCRIBE (or UNSUBSCRIBE) the fake Binance received, in order."""
    found = []
    for path, message in list(fake.ws_received):
        request = json.loads(message)
        if request.get("method") == op.upper():
            found += request["params"]
    return found


def bybit_subscriptions(fake, op="subscribe"):
    """The topics of every subscribe (or unsubscribe) the fake Bybit received, in order, less the
    orderbook.1 a spot ticker takes along."""
    found = []
    for path, message in list(fake.ws_received):
        request = json.loads(message)
        if request.get("op") == op:
            found += [arg for arg in request["args"] if not arg.startswith("orderbook.1.")]
    return found


def blofin_subscriptions(fake, op="subscribe"):
    """The args of every subscribe (or unsubscribe) the fake BloFin received, in order."""
    found = []
    for path, message in list(fake.ws_received):
        if message.startswith("{") and json.loads(message).get("op") == op:
            found += json.loads(message)["args"]
    return found


def bingx_subscriptions(fake, op="subscribe"):
    """The dataType of every sub (or unsub) the fake BingX received, in order."""
    found = []
    for path, message in list(fake.ws_received):
        request = json.loads(message) if message.startswith("{") else {}
        if request.get("reqType") == {"subscribe": "sub", "unsubscribe": "unsub"}[op]:
            found.append(request["dataType"])
    return found


def bitvavo_subscriptions(fake, op="subscribe"):
    """"name:market" of every channel the fake Bitvavo was asked to subscribe (or unsubscribe), in
    order, less the ticker channel a ticker24h takes along."""
    found = []
    for path, message in list(fake.ws_received):
        request = json.loads(message)
        if request.get("action") == op:
            found += [f"{c['name']}:{market}" for c in request["channels"] for market in c["markets"]
                      if c["name"] != "ticker"]
    return found


def alpaca_subscriptions(fake, op="subscribe"):
    """"method:SYMBOL" of every topic the fake Alpaca was asked to subscribe (or unsubscribe), in
    order: quotes are a ticker's, orderbooks a depth's, trades alone a trades topic's."""
    found = []
    for path, message in list(fake.ws_received):
        request = json.loads(message)
        if request.get("action") == op:
            tickers = request.get("quotes") or []
            found += [f"ticker:{name}" for name in tickers] + [f"depth:{name}" for name in request.get("orderbooks") or []]
            found += [f"trades:{name}" for name in request.get("trades") or [] if name not in tickers]
    return found


def coinbase_subscriptions(fake, op="subscribe"):
    """"channel:PRODUCT" of every channel the fake Coinbase was asked to subscribe (or unsubscribe),
    in order, less the heartbeats channel a connection takes along."""
    found = []
    for path, message in list(fake.ws_received):
        request = json.loads(message)
        if request.get("type") == op and request.get("channel") != "heartbeats":
            found += [f"{request['channel']}:{product}" for product in request.get("product_ids") or []]
    return found


VENUES = {
    "okx": Venue("okx", FakeOKX, okx, lambda fake: {"okx.ws": fake.ws_url}, okx_subscriptions,
                 {"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "books", "instId": "BTC-USDT"},
                 secrets=(PASSPHRASE,)),
    "bybit": Venue("bybit", FakeBybit, bybit, lambda fake: {"bybit.ws": fake.ws_url}, bybit_subscriptions,
                   "tickers.BTCUSDT", "orderbook.50.BTCUSDT", contract=0.01),
    "bingx": Venue("bingx", FakeBingX, bingx, lambda fake: {"bingx.ws": fake.ws_url}, bingx_subscriptions,
                   "BTC-USDT@ticker", contract=0.01),
    "binance": Venue("binance", FakeBinance, binance,
                     lambda fake: {"binance.ws": fake.ws_url, "binance.ws.futures": fake.ws_url + "/futures"},
                     binance_subscriptions, "btcusdt@ticker", contract=0.01),
    "blofin": Venue("blofin", FakeBloFin, blofin, lambda fake: {"blofin.ws": fake.ws_url}, blofin_subscriptions,
                    {"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "books", "instId": "BTC-USDT"},
                    secrets=(FakeBloFin.SECRET_KEY.split(",")[1],)),
    "bitvavo": Venue("bitvavo", FakeBitvavo, bitvavo, lambda fake: {"bitvavo.ws": fake.ws_url}, bitvavo_subscriptions,
                     "ticker24h:BTC-USDT", "book:BTC-USDT", swaps=False),
    "alpaca": Venue("alpaca", FakeAlpaca, alpaca, lambda fake: {"alpaca.ws": fake.ws_url}, alpaca_subscriptions,
                    "ticker:BTC/USDT", "depth:BTC/USDT", swaps=False, login=True),
    "coinbase": Venue("coinbase", FakeCoinbase, coinbase, lambda fake: {"coinbase.ws": fake.ws_url},
                      coinbase_subscriptions, "ticker:BTC-USDT", "level2:BTC-USDT", swaps=False),
}


@contextlib.contextmanager
def streaming(request, mode, fake, venue, ws_url=None):
    """A plugin client of `fake` whose stream is the fake's (or `ws_url`); .server in repo mode."""
    urls = {venue.name: fake.url, **venue.ws_urls(fake)}
    if ws_url:
        urls = {name: (ws_url if name != venue.name else url) for name, url in urls.items()}
    if mode == "bundle":
        with request.getfixturevalue("bundle_forker").plugin(urls) as url:
            yield _client(url, fake, None, venue)
        return
    with serving(urls, stream=True) as (url, server):
        yield _client(url, fake, server, venue)


def _client(url, fake, server, venue=VENUES["okx"]):
    client = PluginClient(url, fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
    client.fake, client.server, client.venue = fake, server, venue
    return client


@pytest.fixture(params=list(VENUES))
def venue(request):
    return VENUES[request.param]


@pytest.fixture
def okx_venue():
    return VENUES["okx"]


@pytest.fixture
def fake(venue):
    with venue.fake_class() as fake:
        yield fake


@pytest.fixture
def client(request, plugin_mode, fake, venue):
    with streaming(request, plugin_mode, fake, venue) as client:
        yield client


@pytest.fixture
def repo_client(request, fake, venue):
    with streaming(request, "repo", fake, venue) as client:
        yield client


@pytest.fixture
def quick(monkeypatch):
    """The manager's intervals shortened, so idle, keepalive and reconnects happen in a blink."""
    monkeypatch.setattr(_stream, "TICK", 0.02)
    monkeypatch.setattr(_stream, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(_stream, "BACKOFF_MAX", 0.2)


def rest_calls(fake, path=None):
    """REST requests the fake received (to `path`, or any)."""
    return len(fake.sent(path)) if path else len(fake.requests)


def from_stream(client, path, method, **params):
    """Ask until an answer comes without a REST request (the stream went live), at most WAIT
    seconds of asking; the answer."""
    for _ in range(5000):
        before = rest_calls(client.fake)
        data = client.data(method, **params)
        if rest_calls(client.fake) == before:
            return data
    raise AssertionError(f"{method} never came from the stream")


def subscriptions(fake, op="subscribe"):
    return VENUE_OF[type(fake)].subscriptions(fake, op)


VENUE_OF = {venue.fake_class: venue for venue in VENUES.values()}


def wait_state(client, predicate):
    assert client.server.settings.streams.wait_for(predicate, WAIT), "the stream never reached that state"


def stream_status(client):
    return client.server.settings.streams.status().get(client.fake.NAME, {})


def only(*names):
    """The test is about these exchanges' dialects."""
    return pytest.mark.parametrize("venue", [VENUES[name] for name in names], ids=list(names))


def every_but(*names):
    """The test holds for every exchange but these (whose dialect makes it moot: said where used)."""
    return only(*[name for name in VENUES if name not in names])


def skip_without_swaps(client, symbol):
    if symbol.endswith(".swap") and not client.venue.swaps:
        pytest.skip(f"{client.venue.name} lists no swaps")


FIRST_SUBSCRIBE = {     # the subscribe message BTC_USDT's ticker sends, as each exchange documents it
    "okx": (PUBLIC, {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}),
    "binance": ("/stream", {"method": "SUBSCRIBE", "params": ["btcusdt@ticker"]}),
    "bybit": ("/v5/public/spot", {"op": "subscribe", "args": ["tickers.BTCUSDT", "orderbook.1.BTCUSDT"]}),
    "bingx": ("/market", {"reqType": "sub", "dataType": "BTC-USDT@ticker"}),
    "blofin": ("/ws/public", {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}),
    "bitvavo": ("/v2/", {"action": "subscribe", "channels": [{"name": "ticker24h", "markets": ["BTC-USDT"]},
                                                            {"name": "ticker", "markets": ["BTC-USDT"]}]}),
    "alpaca": ("/v1beta3/crypto/us", {"action": "subscribe", "quotes": ["BTC/USDT"], "trades": ["BTC/USDT"],
                                      "dailyBars": ["BTC/USDT"]}),
    "coinbase": ("/", {"type": "subscribe", "product_ids": ["BTC-USDT"], "channel": "ticker"}),
}


# -- Subscribing and answering ---------------------------------------------------------------------

def test_first_request_subscribes_as_the_exchange_documents(client, venue):
    answer = client.data("ticker", symbol=venue.traded("BTC_USDT"))
    assert answer["symbol"] == venue.traded("BTC_USDT") and rest_calls(client.fake) >= 1
    client.fake.ws_wait(lambda: subscriptions(client.fake))
    path, message = client.fake.ws_received[1 if venue.login else 0]     # (after the login, tested apart)
    sent = json.loads(message)
    if venue.name == "binance":
        assert isinstance(sent.pop("id"), int)           # Binance echoes the id in its answer
    if venue.name == "bybit":
        assert sent.pop("req_id").isdigit()              # ... and Bybit its req_id
    if venue.name == "bingx":
        assert sent.pop("id").isdigit()                  # ... and BingX its id
    assert (path, sent) == FIRST_SUBSCRIBE[venue.name]


def test_a_symbol_the_exchange_refuses_is_never_subscribed(client, venue):
    assert client.error("ticker", symbol=venue.traded("NOPE_USDT"))
    client.data("ticker", symbol=venue.traded("BTC_USDT"))
    client.fake.ws_wait(lambda: subscriptions(client.fake))
    assert subscriptions(client.fake) == [venue.ticker_topic]


@only("binance")
def test_binance_futures_stream_on_its_own_host_with_the_book_ticker(client):
    client.data("ticker", symbol="ETH_USDT.swap")
    client.fake.ws_wait(lambda: subscriptions(client.fake))
    path, message = client.fake.ws_received[0]
    assert path == "/futures/stream" and json.loads(message)["params"] == ["ethusdt@ticker", "ethusdt@bookTicker"]


@pytest.mark.parametrize("symbol", ["BTC_USDT", "ETH_USDT.swap"])
def test_ticker_from_the_stream_is_the_rest_answer_without_a_rest_call(client, venue, symbol):
    skip_without_swaps(client, symbol)
    symbol = venue.traded(symbol)
    rest = client.data("ticker", symbol=symbol)
    streamed = from_stream(client, None, "ticker", symbol=symbol)
    calls = rest_calls(client.fake)
    for _ in range(20):
        assert client.data("ticker", symbol=symbol) == streamed
    assert rest_calls(client.fake) == calls
    assert {k: v for k, v in streamed.items() if k != "time"} == {k: v for k, v in rest.items() if k != "time"}
    assert streamed["time"] > 0 and rest["time"] > 0


@pytest.mark.parametrize("symbol", ["BTC_USDT", "BTC_USDT.swap"])
def test_depth_from_the_stream_matches_rest_level_for_level(client, venue, symbol):
    skip_without_swaps(client, symbol)
    symbol = venue.traded(symbol)
    rest = client.data("depth", symbol=symbol, limit=20)
    streamed = from_stream(client, None, "depth", symbol=symbol, limit=20)
    assert streamed["asks"] == rest["asks"] and streamed["bids"] == rest["bids"]
    assert len(streamed["asks"]) == 20 and streamed["asks"][0][0] < streamed["asks"][1][0]
    assert streamed["bids"][0][0] > streamed["bids"][1][0]
    assert from_stream(client, None, "depth", symbol=symbol)["asks"] == rest["asks"]   # default 20
    assert from_stream(client, None, "depth", symbol=symbol, limit=5)["bids"] == rest["bids"][:5]


def test_depth_deeper_than_the_stream_keeps_is_served_by_rest(client, venue):
    from_stream(client, None, "depth", symbol=venue.traded("BTC_USDT"), limit=5)
    before = rest_calls(client.fake)
    client.data("depth", symbol=venue.traded("BTC_USDT"), limit=venue.module.STREAM_DEPTH + 1)
    assert rest_calls(client.fake) == before + 1


@pytest.mark.parametrize("symbol", ["BTC_USDT", "BTC_USDT.swap"])
def test_a_fill_reaches_the_streamed_trades_and_ticker(client, venue, symbol):
    skip_without_swaps(client, symbol)
    symbol = venue.traded(symbol)
    rest = client.data("trades", symbol=symbol)
    first = from_stream(client, None, "trades", symbol=symbol)
    assert first == rest or first[-1]["time"] >= rest[-1]["time"]
    ticker = from_stream(client, None, "ticker", symbol=symbol)
    venue.market_buy(client, symbol)
    calls = rest_calls(client.fake)
    for _ in range(5000):
        rows = client.data("trades", symbol=symbol)
        if rows[-1]["id"] != first[-1]["id"]:
            break
    assert rows[-1]["type"] == "buy" and rows[-1]["price"] == 50000.1 and len(rows) == len(rest)
    assert rows[-1]["time"] >= rows[0]["time"]
    assert rest_calls(client.fake) == calls
    for _ in range(5000):
        moved = client.data("ticker", symbol=symbol)
        if moved["time"] != ticker["time"]:
            break
    assert moved["time"] > ticker["time"]


@only("okx")
def test_records_from_the_stream_are_the_rest_answer_without_a_rest_call(client):
    rest = client.data("records", symbol="BTC_USDT", period=1, limit=50)
    streamed = from_stream(client, CANDLES_PATH, "records", symbol="BTC_USDT", period=1, limit=50)
    by_time = {row[0]: row for row in rest}           # (a minute may have turned in between)
    assert len(streamed) == 50 and all(row == by_time.get(row[0], row) for row in streamed)
    assert [b[0] - a[0] for a, b in zip(streamed, streamed[1:])] == [60_000] * 49
    before = rest_calls(client.fake, CANDLES_PATH)
    assert client.data("records", symbol="BTC_USDT", period=1, limit=20) == streamed[-20:]
    assert rest_calls(client.fake, CANDLES_PATH) == before
    business = [json.loads(m) for path, m in list(client.fake.ws_received) if path == "/ws/v5/business"]
    assert business[0] == {"op": "subscribe", "args": [{"channel": "candle1m", "instId": "BTC-USDT"}]}
    before = rest_calls(client.fake, CANDLES_PATH)
    client.data("records", symbol="BTC_USDT", period=1, limit=500)       # more than the seed held: REST
    assert rest_calls(client.fake, CANDLES_PATH) == before + 2


@only("okx", "bybit", "blofin", "bitvavo", "alpaca", "coinbase")
def test_an_update_changes_the_local_book(client, venue):
    symbol = venue.traded("BTC_USDT")
    before = from_stream(client, None, "depth", symbol=symbol, limit=5)
    client.fake.push_book_update(venue.pair(), asks=[["50000.1", "0"], ["50000.15", "0.25"]], bids=[["50000", "9"]])
    for _ in range(5000):
        book = client.data("depth", symbol=symbol, limit=5)
        if book["asks"][0][0] == 50000.15:
            break
    assert book["asks"][:2] == [[50000.15, 0.25], before["asks"][1]] and book["bids"][0] == [50000, 9]


UNREADABLE = {          # a message that names a subscribed channel but carries nonsense
    "okx": '{"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": 7}',
    "binance": '{"stream": "btcusdt@trade", "data": 7}',
    "bybit": '{"topic": "publicTrade.BTCUSDT", "type": "snapshot", "data": 7}',
    "bingx": '{"code": 0, "dataType": "BTC-USDT@trade", "data": 7}',
    "blofin": '{"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": 7}',
    "bitvavo": '{"event": "trade", "market": "BTC-USDT", "data": 7}',
    "alpaca": '[{"T": "t", "S": "BTC/USDT", "data": 7}]',
    "coinbase": '{"channel": "market_trades", "events": [{"type": "update", "trades": 7}]}',
}


def test_a_message_it_cannot_read_is_skipped(client, venue):
    first = from_stream(client, None, "trades", symbol=venue.traded("BTC_USDT"))
    for session in list(client.fake.ws_sessions):
        session.send_text("{not json")
        session.send_text(UNREADABLE[venue.name])
    venue.market_buy(client)                          # a fill: a trade after them
    for _ in range(5000):
        rows = from_stream(client, None, "trades", symbol=venue.traded("BTC_USDT"))
        if rows[-1]["id"] != first[-1]["id"]:
            break
    assert rows[-1]["price"] == 50000.1 and client.fake.ws_connections == 1


# -- Book integrity --------------------------------------------------------------------------------

@pytest.mark.parametrize("venue, fault", [(VENUES["okx"], "checksum"), (VENUES["okx"], "gap"),
                                          (VENUES["bybit"], "gap"), (VENUES["blofin"], "gap"),
                                          (VENUES["blofin"], "crossed"), (VENUES["bitvavo"], "gap"),
                                          (VENUES["coinbase"], "gap")],
                         ids=["okx-checksum", "okx-gap", "bybit-gap", "blofin-gap", "blofin-crossed",
                              "bitvavo-gap", "coinbase-gap"])
def test_a_bad_checksum_or_a_sequence_gap_resubscribes_for_a_fresh_snapshot(client, venue, fault):
    symbol = venue.traded("BTC_USDT")
    from_stream(client, None, "depth", symbol=symbol, limit=5)
    client.fake.fault_next_book = fault
    client.fake.push_book_update(venue.pair(), asks=[["50000.1", "3"]])
    client.fake.ws_wait(lambda: subscriptions(client.fake, "unsubscribe") == [venue.depth_topic])
    client.fake.ws_wait(lambda: subscriptions(client.fake).count(venue.depth_topic) == 2)
    for _ in range(5000):
        book = client.data("depth", symbol=symbol, limit=5)
        if book["asks"][0] == [50000.1, 3]:
            break
    assert book["asks"][0] == [50000.1, 3]          # the fresh snapshot has the update


@only("okx", "bybit", "blofin", "bitvavo", "coinbase")
def test_resyncs_are_counted(repo_client, venue):
    from_stream(repo_client, None, "depth", symbol=venue.traded("BTC_USDT"), limit=5)
    repo_client.fake.fault_next_book = "gap"
    repo_client.fake.push_book_update(venue.pair())
    wait_state(repo_client, lambda: stream_status(repo_client).get("resyncs") == 1)


@only("bybit")
def test_bybit_a_u1_snapshot_after_a_restart_replaces_the_book(client):
    from_stream(client, None, "depth", symbol="BTC_USDT", limit=5)
    client.fake.fault_next_book = "restart"
    client.fake.push_book_update(("BTC", "USDT"), bids=[["50000", "7"]])
    for _ in range(5000):
        book = client.data("depth", symbol="BTC_USDT", limit=5)
        if book["bids"][0] == [50000, 7]:
            break
    assert book["bids"][0] == [50000, 7]
    client.fake.push_book_update(("BTC", "USDT"), bids=[["50000", "8"]])      # u = 2 follows the u = 1 snapshot
    for _ in range(5000):
        book = client.data("depth", symbol="BTC_USDT", limit=5)
        if book["bids"][0] == [50000, 8]:
            break
    assert book["bids"][0] == [50000, 8] and not subscriptions(client.fake, "unsubscribe")


@only("bybit")
def test_bybit_linear_ticker_deltas_update_the_snapshot(client):
    first = from_stream(client, None, "ticker", symbol="BTC_USDT.swap")
    swap = next(pair for pair in client.fake.engine.swaps if pair[:2] == ("BTC", "USDT"))
    client.fake.push_ticker_delta(swap, lastPrice="50123.5")
    for _ in range(5000):
        ticker = from_stream(client, None, "ticker", symbol="BTC_USDT.swap")
        if ticker["last"] == 50123.5:
            break
    assert ticker["last"] == 50123.5
    assert {k: v for k, v in ticker.items() if k not in ("last", "time")} == \
        {k: v for k, v in first.items() if k not in ("last", "time")}          # the rest kept from the snapshot


def test_book_checksum_is_a_signed_crc32_of_bid_then_ask_levels():
    book = _stream.Book()
    book.reset(asks=[["3368", "8"], ["3366.8", "9"]], bids=[["3366.1", "7"]])
    crc = zlib.crc32(b"3366.1:7:3366.8:9:3368:8")        # bid1, ask1, then the longer side alone
    assert okx.book_checksum(book) == (crc - (1 << 32) if crc >= 1 << 31 else crc) < 0


@only("blofin")
def test_blofin_subscribes_each_channel_as_documented_on_one_connection(client):
    for method in ("ticker", "depth", "trades"):
        client.data(method, symbol="ETH_USDT.swap")
    client.data("records", symbol="ETH_USDT.swap", period=60)
    client.fake.ws_wait(lambda: len(subscriptions(client.fake)) == 4)
    assert subscriptions(client.fake) == [{"channel": channel, "instId": "ETH-USDT"}
                                          for channel in ("tickers", "books", "trades", "candle1H")]
    sent = {(path, tuple(sorted(json.loads(message)))) for path, message in list(client.fake.ws_received)}
    assert sent == {("/ws/public", ("args", "op"))} and client.fake.ws_connections == 1


@only("blofin")
def test_blofin_records_from_the_stream_are_the_rest_answer_without_a_rest_call(client):
    path = "/api/v1/market/candles"
    rest = client.data("records", symbol="BTC_USDT.swap", period=1, limit=50)
    streamed = from_stream(client, path, "records", symbol="BTC_USDT.swap", period=1, limit=50)
    by_time = {row[0]: row for row in rest}           # (a minute may have turned in between)
    assert len(streamed) == 50 and all(row == by_time.get(row[0], row) for row in streamed)
    before = rest_calls(client.fake, path)
    assert client.data("records", symbol="BTC_USDT.swap", period=1, limit=20) == streamed[-20:]
    assert rest_calls(client.fake, path) == before


@only("blofin")
def test_blofin_spot_symbols_are_refused_and_never_subscribed(client):
    assert "perpetual swaps only" in client.error("ticker", symbol="BTC_USDT")
    assert "perpetual swaps only" in client.error("depth", symbol="BTC_USDT")
    assert client.fake.ws_connections == 0 and not client.fake.requests


class Recorder:
    """A Feed that records what a dialect's stream_read hands it (one topic's book included)."""

    def __init__(self):
        self.calls, self.books = [], {}

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args[:1])

    def book(self, topic):
        return self.books.setdefault(topic, _stream.Book())

    def resync(self, topic, why):
        self.calls.append(("resync", topic))
        self.books.pop(topic, None)


def test_blofin_book_as_documented_numbers_and_all_then_a_gap_resyncs():
    feed, topic = Recorder(), ("books", "DOGE-USDT")
    arg = '"arg": {"channel": "books", "instId": "DOGE-USDT"}'
    blofin.stream_read('{"event": "subscribe", %s}' % arg, feed)
    blofin.stream_read('{%s, "action": "snapshot", "data": {"asks": [[0.08096, 1], [0.08097, 123]], '
                       '"bids": [[0.08095, 4], [0.08094, 237]], "ts": "1707491587909", "prevSeqId": "0", '
                       '"seqId": "3374250786"}}' % arg, feed)
    blofin.stream_read('{%s, "action": "update", "data": {"asks": [[0.08096, 0]], "bids": [["0.08095", "5"]], '
                       '"ts": "1707491588009", "prevSeqId": "3374250786", "seqId": "3374250790"}}' % arg, feed)
    book = feed.books[topic]
    assert book.sides() == ([("0.08097", "123")], [("0.08095", "5"), ("0.08094", "237")])
    assert book.time == 1707491588009 and feed.calls == [("subscribed", topic), ("depth", topic), ("depth", topic)]
    blofin.stream_read('{%s, "action": "update", "data": {"asks": [], "bids": [], "ts": "1707491588109", '
                       '"prevSeqId": "3374250791", "seqId": "3374250795"}}' % arg, feed)
    assert feed.calls[-1] == ("resync", topic)
    blofin.stream_read("pong", feed)
    blofin.stream_read('{"event": "error", "code": "60018", "msg": "doesn\'t exist"}', feed)
    assert len(feed.calls) == 4


# -- Losing and regaining the connection -----------------------------------------------------------

def test_a_dropped_connection_falls_back_to_rest_then_resubscribes(repo_client, venue, quick, monkeypatch):
    fake = repo_client.fake
    symbol = venue.traded("BTC_USDT")
    streamed = from_stream(repo_client, None, "ticker", symbol=symbol)
    monkeypatch.setattr(_stream, "BACKOFF_FIRST", 0.5)    # long enough to be asked while down
    fake.ws_drop()
    wait_state(repo_client, lambda: stream_status(repo_client)["connected"] == 0)
    before = rest_calls(fake)
    assert repo_client.data("ticker", symbol=symbol)["symbol"] == symbol      # no error
    assert rest_calls(fake) > before
    fake.ws_wait(lambda: fake.ws_connections == 2 and len(subscriptions(fake)) == 2)
    assert subscriptions(fake)[1] == venue.ticker_topic
    assert from_stream(repo_client, None, "ticker", symbol=symbol)["symbol"] == streamed["symbol"]
    assert stream_status(repo_client)["reconnects"] == 1


def test_an_unreachable_stream_leaves_rest_answering(request, plugin_mode, fake, venue):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with streaming(request, plugin_mode, fake, venue, ws_url=f"ws://127.0.0.1:{port}") as client:
        for _ in range(3):
            before = rest_calls(fake)
            assert client.data("ticker", symbol=venue.traded("BTC_USDT"))["symbol"] == venue.traded("BTC_USDT")
            assert rest_calls(fake) > before


@every_but("alpaca")        # its first request loads the asset list too: counted apart in its own tests
def test_a_stream_host_that_refuses_the_upgrade_leaves_rest_answering(request, plugin_mode, fake, venue):
    with FakeExchange() as no_stream, streaming(request, plugin_mode, fake, venue, ws_url=no_stream.ws_url) as client:
        for _ in range(3):
            before = rest_calls(fake)
            assert client.data("depth", symbol=venue.traded("BTC_USDT"), limit=5)["asks"]
            assert rest_calls(fake) == before + 1


@only("okx")
def test_okx_notice_of_an_upgrade_reconnects_at_once(repo_client, quick):
    from_stream(repo_client, TICKER_PATH, "ticker", symbol="BTC_USDT")
    notice = {"event": "notice", "code": "64008", "msg": "The connection will soon be closed for a service upgrade. "
                                                         "Please reconnect.", "connId": "fake"}
    for session in list(repo_client.fake.ws_sessions):
        session.send_text(json.dumps(notice))
    repo_client.fake.ws_wait(lambda: repo_client.fake.ws_connections == 2 and len(subscriptions(repo_client.fake)) == 2)
    assert from_stream(repo_client, TICKER_PATH, "ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


def test_silent_connection_is_closed_and_replaced(repo_client, venue, quick, monkeypatch):
    monkeypatch.setattr(venue.module, "STREAM_KEEPALIVE", 0.05)
    monkeypatch.setattr(venue.module, "STREAM_SILENCE", 0.3)
    repo_client.fake.ws_answers_ping = False
    repo_client.data("ticker", symbol=venue.traded("BTC_USDT"))
    repo_client.fake.ws_wait(lambda: repo_client.fake.ws_connections >= 2)


# -- Keepalive, idle channels, limits --------------------------------------------------------------

KEEPALIVE = {"okx": "ping", "bybit": '{"op": "ping"}', "blofin": "ping"}     # the exchange's text ping


@only("okx", "bybit", "blofin")
def test_text_keepalive_pings_keep_the_connection(repo_client, venue, quick, monkeypatch):
    monkeypatch.setattr(venue.module, "STREAM_KEEPALIVE", 0.05)
    repo_client.fake.ws_idle_limit = 0.5                    # the fake closes a client silent this long
    repo_client.data("ticker", symbol=venue.traded("BTC_USDT"))
    pings = lambda: [m for p, m in list(repo_client.fake.ws_received) if m == KEEPALIVE[venue.name]]
    repo_client.fake.ws_wait(lambda: len(pings()) >= 5)
    assert repo_client.fake.ws_connections == 1


@only("binance")
def test_binance_pings_are_ponged(repo_client, quick):
    fake = repo_client.fake
    fake.ws_ping_every, fake.ws_pong_limit = 0.02, 0.5        # Binance: every 20 s, a minute to pong
    repo_client.data("trades", symbol="BTC_USDT")
    fake.ws_wait(lambda: fake.ws_sessions and len(fake.ws_sessions[0].pongs) >= 5)
    assert fake.ws_connections == 1


@only("binance")
def test_binance_ping_frames_keep_a_quiet_connection(repo_client, quick, monkeypatch):
    monkeypatch.setattr(binance, "STREAM_KEEPALIVE", 0.02)
    monkeypatch.setattr(binance, "STREAM_SILENCE", 0.1)     # only the pongs to our pings are heard
    fake = repo_client.fake
    repo_client.data("trades", symbol="BTC_USDT")              # no trade happens: a quiet channel
    fake.ws_wait(lambda: fake.ws_sessions and len(fake.ws_sessions[0].pings) >= 10)
    assert fake.ws_connections == 1
    assert all(message.startswith("{") for _, message in fake.ws_received)    # no text ping on Binance


def test_a_channel_nobody_asks_for_is_unsubscribed(repo_client, venue, quick, monkeypatch):
    monkeypatch.setattr(_stream, "IDLE_AFTER", 0.2)
    repo_client.data("ticker", symbol=venue.traded("BTC_USDT"))
    repo_client.fake.ws_wait(lambda: subscriptions(repo_client.fake, "unsubscribe") == [venue.ticker_topic])
    wait_state(repo_client, lambda: not stream_status(repo_client))      # the empty connection closed
    repo_client.fake.ws_wait(lambda: not repo_client.fake.ws_sessions)


THREE_CHANNELS = (("ticker", "BTC_USDT"), ("ticker", "ETH_USDT"), ("depth", "BTC_USDT"))     # one endpoint


@every_but("alpaca")        # one connection per key: a second is refused (tested apart)
def test_channels_beyond_a_connections_limit_open_another(repo_client, venue, monkeypatch):
    monkeypatch.setattr(venue.module, "STREAM_TOPICS", 2)
    for method, symbol in THREE_CHANNELS:
        repo_client.data(method, symbol=venue.traded(symbol))
    repo_client.fake.ws_wait(lambda: repo_client.fake.ws_connections == 2 and len(subscriptions(repo_client.fake)) == 3)
    assert stream_status(repo_client)["subscriptions"] == 3 and stream_status(repo_client)["connections"] == 2


@every_but("alpaca")        # its login spends one of the requests
def test_subscriptions_stay_within_the_requests_a_connection_may_send(repo_client, venue, monkeypatch):
    monkeypatch.setattr(venue.module, "STREAM_REQUESTS", (2, 3600.0))
    for sent, (method, symbol) in enumerate(THREE_CHANNELS[:2], 1):
        repo_client.data(method, symbol=venue.traded(symbol))
        repo_client.fake.ws_wait(lambda: len(subscriptions(repo_client.fake)) == sent)
    method, symbol = THREE_CHANNELS[2]
    for count in range(1, 4):                         # a third subscription waits its turn: REST
        before = rest_calls(repo_client.fake)
        repo_client.data(method, symbol=venue.traded(symbol))
        assert rest_calls(repo_client.fake) == before + 1
    assert len(subscriptions(repo_client.fake)) == 2


def test_reconnects_are_paced():
    pacer = _stream.Pacer(2, 0.2)
    started = _stream.time.monotonic()
    for _ in range(3):
        pacer.wait()
    assert _stream.time.monotonic() - started >= 0.2      # the third waited for the window


@every_but("alpaca")        # no public channel: the key logs in (its own tests keep it out of logs)
def test_no_key_travels_on_a_public_channel(client, venue):
    for method in ("ticker", "depth", "trades"):
        client.data(method, symbol=venue.traded("BTC_USDT"))
    client.fake.ws_wait(lambda: len(subscriptions(client.fake)) == 3)
    client.data("accounts")
    text = " ".join(message for _, message in client.fake.ws_received)
    for secret in (client.fake.ACCESS_KEY, client.fake.SECRET_KEY) + venue.secrets:
        assert secret not in text


@only("bingx")
def test_bingx_pings_are_answered_in_each_hosts_form(repo_client, quick):
    fake = repo_client.fake
    fake.ws_ping_every, fake.ws_pong_limit = 0.02, 0.5      # BingX: every 5 s
    repo_client.data("ticker", symbol="BTC_USDT")
    repo_client.data("ticker", symbol="BTC_USDT.swap")
    answers = lambda path: [m for p, m in list(fake.ws_received) if p == path and "ub" not in m]
    fake.ws_wait(lambda: len(answers("/swap-market")) >= 5 and len(answers("/market")) >= 5)
    assert set(answers("/swap-market")) == {"Pong"}
    assert all(set(json.loads(m)) == {"pong", "time"} for m in answers("/market"))
    assert fake.ws_connections == 2


@only("bingx")
def test_bingx_frames_are_gzip_and_the_stream_answers_through_them(client):
    from_stream(client, None, "trades", symbol="BTC_USDT.swap")
    sent = []
    session = client.fake.ws_sessions[0]
    original, session.send_binary = session.send_binary, lambda data: (sent.append(data), original(data))
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=0.01)
    client.fake.ws_wait(lambda: sent)
    assert sent[0][:2] == b"\x1f\x8b"                     # gzip's magic: what BingX sends
    for _ in range(5000):
        rows = from_stream(client, None, "trades", symbol="BTC_USDT.swap")
        if rows[-1]["price"] == 50000.1:
            break
    assert rows[-1]["price"] == 50000.1 and rows[-1]["type"] == "buy"


class Answers:
    """A Feed that records what a dialect answers the exchange (for stream_read alone)."""

    def __init__(self):
        self.sent = []

    def send(self, text):
        self.sent.append(text)


def test_bingx_ping_in_a_gzip_frame_is_answered_pong():
    import gzip
    feed = Answers()
    bingx.stream_read(gzip.compress(b"Ping"), feed)
    bingx.stream_read(gzip.compress(b'{"ping": "5963ba3d", "time": "2023-10-02T18:51:55.089+0800"}'), feed)
    assert feed.sent == ["Pong", '{"pong": "5963ba3d", "time": "2023-10-02T18:51:55.089+0800"}']


def test_status_shows_the_stream(repo_client, venue):
    from_stream(repo_client, None, "ticker", symbol=venue.traded("BTC_USDT"))
    status = stream_status(repo_client)
    assert status["connected"] == 1 and status["subscriptions"] == 1 and status["reconnects"] == 0
    assert status["connected_since"] > 0 and status["last_message_age"] >= 0
    assert set(status) >= {"messages_per_second", "resyncs"}
    report = fmz_plugin.status_report(repo_client.server)
    assert report["streams"][repo_client.fake.NAME]["subscriptions"] == 1
    assert "stream: connected since" in fmz_plugin.status_text(report)
    assert "stream: connected since" in fmz_plugin.status_html(report)
    assert "Streams" in fmz_plugin.status_table(report)


# -- When there is no stream -----------------------------------------------------------------------

@only("okx")
def test_no_stream_flag_answers_from_rest(request, fake):
    forker = request.getfixturevalue("bundle_forker")
    with forker.plugin({"okx": fake.url, "okx.ws": fake.ws_url}, extra=["--no-stream"]) as url:
        client = _client(url, fake, None)
        for count in range(1, 4):
            client.data("ticker", symbol="BTC_USDT")
            assert rest_calls(fake, TICKER_PATH) == count
    assert fake.ws_connections == 0


@only("okx")
def test_a_moved_rest_host_without_a_stream_host_does_not_stream(request, fake):
    with request.getfixturevalue("bundle_forker").plugin({"okx": fake.url}) as url:
        client = _client(url, fake, None)
        for count in range(1, 4):
            client.data("ticker", symbol="BTC_USDT")
            assert rest_calls(fake, TICKER_PATH) == count
    assert fake.ws_connections == 0


def test_stream_urls_keep_the_exchanges_path():
    assert _stream.stream_urls(okx, {}) == okx.STREAM_URLS
    assert _stream.stream_urls(okx, {"": "http://127.0.0.1:1", "ws": "ws://127.0.0.1:2"}) == \
        {"public": "ws://127.0.0.1:2/ws/v5/public", "business": "ws://127.0.0.1:2/ws/v5/business"}
    assert _stream.stream_urls(okx, {"ws": "ws://127.0.0.1:2", "ws.business": "wss://b.example:3"}) == \
        {"public": "ws://127.0.0.1:2/ws/v5/public", "business": "wss://b.example:3/ws/v5/business"}
    assert _stream.stream_urls(okx, {"": "http://127.0.0.1:1"}) is None
    assert _stream.stream_urls(binance, {"ws": "ws://h:2", "ws.futures": "ws://h:2/futures/"}) == \
        {"spot": "ws://h:2/stream", "futures": "ws://h:2/futures/stream"}       # a host's own path stays in front


# -- An authenticated endpoint (Alpaca's data stream; private streams later) -----------------------

class Acme:
    """A made-up exchange's dialect: a public endpoint and one that logs in with the robot's keys."""
    NAME = "Acme"
    STREAM_LOGIN = ("private",)
    STREAM_KEEPALIVE, STREAM_SILENCE, STREAM_CONNECTS, STREAM_REQUESTS, STREAM_TOPICS = 20.0, 30.0, (10, 1.0), (9, 1.0), 10
    STREAM_DEPTH, DEPTH_DEFAULT, TRADES_DEFAULT = 5, 5, 10

    def __init__(self, server):
        self.STREAM_URLS = {"public": server.ws_url + "/public", "private": server.ws_url + "/private"}

    @staticmethod
    def stream_topic(symbol, method, period):
        return ("private" if method == "trades" else "public"), (method, symbol)

    @staticmethod
    def stream_subscribe(topics):
        return ["subscribe " + ",".join(f"{method}:{symbol}" for method, symbol in topics)]

    stream_unsubscribe = stream_subscribe

    @staticmethod
    def stream_login(keys):
        return [f"login {keys}"]

    @staticmethod
    def stream_ping():
        return None

    @staticmethod
    def stream_read(message, feed):
        if message == "logged in":
            feed.logged_in()


def test_a_login_endpoint_gets_the_robots_keys_and_a_connection_per_key():
    sessions = {}                       # session -> [path, messages...]

    def record(session):
        sessions[session] = [session.path]
        while True:
            sessions[session].append(session.receive())
            server.ws_note(session, sessions[session][-1])
            if sessions[session][-1].startswith("login "):
                session.send_text("logged in")      # subscriptions wait for the exchange's answer

    with FakeExchange() as server:
        server.ws_routes = {"/public": record, "/private": record}
        acme, streams = Acme(server), _stream.Streams(lambda exchange: exchange.STREAM_URLS)
        rest = lambda: ("from REST", None)
        try:
            for key in ("key-A", "key-B", "key-A"):
                for method in ("ticker", "trades"):
                    assert streams.serve(acme, method, {"symbol": "X"}, rest, lambda: key) == ("from REST", None)
            server.ws_wait(lambda: len(server.ws_received) == 5)
        finally:
            streams.close()
    assert sorted(sessions.values()) == [["/private", "login key-A", "subscribe trades:X"],
                                         ["/private", "login key-B", "subscribe trades:X"],
                                         ["/public", "subscribe ticker:X"]]       # one, and no key


def test_bybit_requests_carry_at_most_10_args():
    from exchanges._kit import Symbol
    topics = [("ticker", Symbol(base, "USDT")) for base in ("A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K")]
    messages = [json.loads(message)["args"] for message in bybit.stream_subscribe(topics)]
    assert max(map(len, messages)) <= bybit.STREAM_ARGS and sum(map(len, messages)) == 22      # ticker + orderbook.1


class Chatty(Acme):
    """A dialect whose exchange pings in text ("Ping" wants "Pong") and sends ticker deltas."""
    STREAM_LOGIN = ()

    @staticmethod
    def stream_read(message, feed):
        if message == "Ping":
            return feed.send("Pong")
        _, symbol, field, value = message.split()          # "delta X last 5": no ack names the topic
        state = feed.state(("ticker", symbol))
        state[field] = int(value)
        feed.ticker(("ticker", symbol), {"symbol": symbol, **state}, message)


def test_a_dialect_answers_the_exchange_and_keeps_state_between_deltas():
    def chatty(session):
        assert session.receive() == "subscribe ticker:X"
        server.ws_note(session, "subscribed")
        session.send_text("Ping")
        server.ws_note(session, session.receive())
        session.send_text("delta X last 5")
        session.send_text("delta X buy 4")
        server.ws_note(session, session.receive())         # until the client goes

    with FakeExchange() as server:
        server.ws_routes = {"/public": chatty}
        dialect, streams = Chatty(server), _stream.Streams(lambda exchange: exchange.STREAM_URLS)
        rest = lambda: ({"symbol": "X", "from": "REST"}, None)
        try:
            assert streams.serve(dialect, "ticker", {"symbol": "X"}, rest) == rest()
            server.ws_wait(lambda: [m for _, m in server.ws_received] == ["subscribed", "Pong"])
            for _ in range(100000):                       # ask until both deltas are in
                answer = streams.serve(dialect, "ticker", {"symbol": "X"}, rest)[0]
                if answer == {"symbol": "X", "last": 5, "buy": 4}:
                    break
            assert answer == {"symbol": "X", "last": 5, "buy": 4}
        finally:
            streams.close()


# -- Coinbase ---------------------------------------------------------------------------------------

@only("coinbase")
def test_coinbase_subscribes_one_channel_a_message_with_heartbeats_once_and_no_key(client):
    for method in ("ticker", "depth", "trades"):
        client.data(method, symbol="BTC_USDT")
    heartbeats = lambda: [m for _, m in list(client.fake.ws_received) if '"heartbeats"' in m]
    client.fake.ws_wait(lambda: len(subscriptions(client.fake)) == 3 and heartbeats())
    client.data("ticker", symbol="BTC_USDT")
    sent = [json.loads(message) for _, message in list(client.fake.ws_received)]
    channels = [m for m in sent if m.get("channel") != "heartbeats"]
    assert channels == [{"type": "subscribe", "product_ids": ["BTC-USDT"], "channel": channel}
                        for channel in ("ticker", "level2", "market_trades")]
    assert [m for m in sent if m.get("channel") == "heartbeats"] == [{"type": "subscribe", "channel": "heartbeats"}]
    assert all(set(m) <= {"type", "product_ids", "channel"} for m in sent)        # no api_key, signature nor jwt


@only("coinbase")
def test_coinbase_a_sequence_gap_in_any_channel_resyncs_the_books_only(client):
    from_stream(client, None, "depth", symbol="BTC_USDT", limit=5)
    from_stream(client, None, "ticker", symbol="BTC_USDT")
    client.fake.ws_wait(lambda: len(subscriptions(client.fake)) == 2)
    client.fake.push_heartbeat()                      # in sequence: nothing happens
    with client.fake.lock:
        for session in client.fake.ws_sequence:
            client.fake.ws_sequence[session] += 1     # a message lost ...
    client.fake.push_heartbeat()                      # ... seen at the next heartbeat
    client.fake.ws_wait(lambda: subscriptions(client.fake, "unsubscribe") == ["level2:BTC-USDT"])
    client.fake.ws_wait(lambda: subscriptions(client.fake).count("level2:BTC-USDT") == 2)
    assert from_stream(client, None, "depth", symbol="BTC_USDT", limit=5)["asks"]
    assert client.fake.ws_connections == 1


class Feed:
    """What coinbase.stream_read calls, recorded."""

    def __init__(self):
        self.calls, self.books, self.connection = [], {}, {}

    def connection_state(self):
        return self.connection

    def book(self, topic):
        return self.books.setdefault(topic, _stream.Book())

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name,) + args)


def test_coinbase_dialect_reads_documented_messages():
    feed = Feed()
    message = lambda channel, number, events: json.dumps({"channel": channel, "client_id": "", "sequence_num": number,
                                                          "timestamp": "2023-02-09T20:32:50.714964855Z",
                                                          "events": events})
    coinbase.stream_read(message("subscriptions", 0, [{"subscriptions": {"level2": ["BTC-USD"]}}]), feed)
    assert feed.calls[0] == ("subscribed", ("level2", "BTC-USD"))
    assert json.loads(feed.calls[1][1]) == {"type": "subscribe", "channel": "heartbeats"}
    snapshot = [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
        {"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.73", "new_quantity": "0.06"},
        {"side": "offer", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.74", "new_quantity": "1.5"}]}]
    coinbase.stream_read(message("l2_data", 1, snapshot), feed)
    update = [{"type": "update", "product_id": "BTC-USD", "updates": [
        {"side": "offer", "event_time": "2023-02-09T20:32:50.714964855Z", "price_level": "21921.74", "new_quantity": "0"},
        {"side": "offer", "event_time": "2023-02-09T20:32:50.714964855Z", "price_level": "21922", "new_quantity": "2"}]}]
    coinbase.stream_read(message("l2_data", 2, update), feed)
    book = feed.books[("level2", "BTC-USD")].depth(5)
    assert book["asks"] == [[22922 - 1000, 2]] and book["bids"] == [[21921.73, 0.06]]
    assert book["time"] == 1675974770714
    trades = [{"type": "update", "trades": [
        {"trade_id": "2", "product_id": "BTC-USD", "price": "2", "size": "0.1", "side": "SELL", "time": "2023-02-09T20:19:35.396Z"},
        {"trade_id": "1", "product_id": "BTC-USD", "price": "1", "size": "0.1", "side": "BUY", "time": "2023-02-09T20:19:35.396Z"}]}]
    coinbase.stream_read(message("market_trades", 3, trades), feed)
    name, topic, rows, raw = feed.calls[-1]
    assert (name, topic) == ("trades", ("market_trades", "BTC-USD")) and [r["id"] for r in rows] == ["1", "2"]
    assert rows[0]["type"] == "buy" and rows[0]["time"] == 1675973975396
    ticker = [{"type": "update", "tickers": [{"type": "ticker", "product_id": "BTC-USD", "price": "110",
                                             "volume_24_h": "16038.28", "low_24_h": "90", "high_24_h": "120",
                                             "price_percent_chg_24_h": "10", "best_bid": "109", "best_ask": "111"}]}]
    coinbase.stream_read(message("ticker", 4, ticker), feed)
    name, topic, answer, raw = feed.calls[-1]
    assert (name, topic) == ("ticker", ("ticker", "BTC-USD"))
    assert answer == {"symbol": "BTC_USD", "buy": 109, "sell": 111, "high": 120, "low": 90, "open": 100, "last": 110,
                      "vol": 16038.28, "time": 1675974770714}
    coinbase.stream_read(message("heartbeats", 6, [{"heartbeat_counter": 7}]), feed)     # 5 was lost
    assert feed.calls[-1][:2] == ("resync", ("level2", "BTC-USD"))
