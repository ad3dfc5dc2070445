"""Market data from the stream (exchanges/_stream.py) with OKX's dialect, against the fake OKX's
WebSocket (tests/fakes/okx.py): subscribe, answer locally, resync, drop and reconnect, idle,
keepalive. A request answered by the stream leaves no trace in the fake's REST log.

Tests that shorten the manager's intervals reach into the plugin's process (repo mode only);
the others run against the bundle too.
"""
import contextlib
import json
import socket
import zlib

import pytest

import fmz_plugin
from exchanges import _stream, okx
from tests.conftest import PluginClient, serving
from tests.fakes.base import FakeExchange
from tests.fakes.okx import API_KEY, PASSPHRASE, SECRET, FakeOKX

TICKER_PATH, BOOKS_PATH, TRADES_PATH = "/api/v5/market/ticker", "/api/v5/market/books", "/api/v5/market/trades"
PUBLIC = "/ws/v5/public"
WAIT = 10.0        # seconds any awaited event may take at most (it takes milliseconds)


@contextlib.contextmanager
def streaming(request, mode, fake, ws_url=None):
    """A plugin client of `fake` whose OKX stream is the fake's (or `ws_url`); .server in repo mode."""
    urls = {"okx": fake.url, "okx.ws": ws_url or fake.ws_url}
    if mode == "bundle":
        with request.getfixturevalue("bundle_forker").plugin(urls) as url:
            yield _client(url, fake, None)
        return
    with serving(urls, stream=True) as (url, server):
        yield _client(url, fake, server)


def _client(url, fake, server):
    client = PluginClient(url, "OKX", fake.ACCESS_KEY, fake.SECRET_KEY)
    client.fake, client.server = fake, server
    return client


@pytest.fixture
def fake():
    with FakeOKX() as fake:
        yield fake


@pytest.fixture
def client(request, plugin_mode, fake):
    with streaming(request, plugin_mode, fake) as client:
        yield client


@pytest.fixture
def repo_client(request, fake):
    with streaming(request, "repo", fake) as client:
        yield client


@pytest.fixture
def quick(monkeypatch):
    """The manager's intervals shortened, so idle, keepalive and reconnects happen in a blink."""
    monkeypatch.setattr(_stream, "TICK", 0.02)
    monkeypatch.setattr(_stream, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(_stream, "BACKOFF_MAX", 0.2)


def rest_calls(fake, path):
    return len(fake.sent(path))


def from_stream(client, path, method, **params):
    """Ask until an answer comes without a REST request (the stream went live), at most WAIT
    seconds of asking; the answer."""
    for _ in range(5000):
        before = rest_calls(client.fake, path)
        data = client.data(method, **params)
        if rest_calls(client.fake, path) == before:
            return data
    raise AssertionError(f"{method} never came from the stream")


def subscriptions(fake, op="subscribe"):
    """The args of every subscribe (or unsubscribe) the fake received, in order."""
    found = []
    for path, message in list(fake.ws_received):
        if path == PUBLIC and message.startswith("{") and json.loads(message).get("op") == op:
            found += json.loads(message)["args"]
    return found


def wait_state(client, predicate):
    assert client.server.settings.streams.wait_for(predicate, WAIT), "the stream never reached that state"


def okx_status(client):
    return client.server.settings.streams.status().get("OKX", {})


# -- Subscribing and answering ---------------------------------------------------------------------

def test_first_request_subscribes_as_okx_documents(client):
    answer = client.data("ticker", symbol="BTC_USDT")
    assert answer["symbol"] == "BTC_USDT" and rest_calls(client.fake, TICKER_PATH) == 1
    client.fake.ws_wait(lambda: subscriptions(client.fake))
    path, message = client.fake.ws_received[0]
    assert path == PUBLIC
    assert json.loads(message) == {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}


def test_a_symbol_the_exchange_refuses_is_never_subscribed(client):
    assert client.error("ticker", symbol="NOPE_USDT").startswith("OKX 51001")
    client.data("ticker", symbol="BTC_USDT")
    client.fake.ws_wait(lambda: subscriptions(client.fake))
    assert subscriptions(client.fake) == [{"channel": "tickers", "instId": "BTC-USDT"}]


def test_ticker_from_the_stream_is_the_rest_answer_without_a_rest_call(client):
    rest = client.data("ticker", symbol="ETH_USDT.swap")
    streamed = from_stream(client, TICKER_PATH, "ticker", symbol="ETH_USDT.swap")
    calls = rest_calls(client.fake, TICKER_PATH)
    for _ in range(20):
        assert client.data("ticker", symbol="ETH_USDT.swap") == streamed
    assert rest_calls(client.fake, TICKER_PATH) == calls
    assert {k: v for k, v in streamed.items() if k != "time"} == {k: v for k, v in rest.items() if k != "time"}
    assert streamed["time"] > 0 and rest["time"] > 0


def test_depth_from_the_stream_matches_rest_level_for_level(client):
    rest = client.data("depth", symbol="BTC_USDT", limit=20)
    streamed = from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=20)
    assert streamed["asks"] == rest["asks"] and streamed["bids"] == rest["bids"]
    assert len(streamed["asks"]) == 20 and streamed["asks"][0][0] < streamed["asks"][1][0]
    assert streamed["bids"][0][0] > streamed["bids"][1][0]
    assert from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT")["asks"] == rest["asks"]   # default 20


def test_depth_deeper_than_the_stream_keeps_is_served_by_rest(client):
    from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=5)
    before = rest_calls(client.fake, BOOKS_PATH)
    client.data("depth", symbol="BTC_USDT", limit=okx.STREAM_DEPTH + 1)       # (OKX's REST gives 400 at most too)
    assert rest_calls(client.fake, BOOKS_PATH) == before + 1


def test_a_fill_reaches_the_streamed_trades_and_ticker(client):
    rest = client.data("trades", symbol="BTC_USDT")
    first = from_stream(client, TRADES_PATH, "trades", symbol="BTC_USDT")
    assert first == rest or first[-1]["time"] >= rest[-1]["time"]
    ticker = from_stream(client, TICKER_PATH, "ticker", symbol="BTC_USDT")
    client.data("trade", symbol="BTC_USDT", type="buy", price=-1, amount=10)    # a market buy: fills
    calls = rest_calls(client.fake, TRADES_PATH)
    for _ in range(5000):
        rows = client.data("trades", symbol="BTC_USDT")
        if rows[-1]["id"] != first[-1]["id"]:
            break
    assert rows[-1]["type"] == "buy" and rows[-1]["price"] == 50000.1 and len(rows) == 100
    assert rows[-1]["time"] >= rows[0]["time"]
    assert rest_calls(client.fake, TRADES_PATH) == calls
    for _ in range(5000):
        moved = client.data("ticker", symbol="BTC_USDT")
        if moved["time"] != ticker["time"]:
            break
    assert moved["time"] > ticker["time"]


def test_an_update_changes_the_local_book(client):
    from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=5)
    client.fake.push_book_update(("BTC", "USDT"), asks=[["50000.1", "0"], ["50000.15", "0.25"]], bids=[["50000", "9"]])
    for _ in range(5000):
        book = client.data("depth", symbol="BTC_USDT", limit=5)
        if book["asks"][0][0] == 50000.15:
            break
    assert book["asks"][:2] == [[50000.15, 0.25], [50000.2, 1]] and book["bids"][0] == [50000, 9]


def test_a_message_it_cannot_read_is_skipped(client):
    from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=5)
    for session in list(client.fake.ws_sessions):
        session.send_text("{not json")
        session.send_text('{"arg": {"channel": "books", "instId": "BTC-USDT"}, "data": 7}')
    client.fake.push_book_update(("BTC", "USDT"), bids=[["50000", "4"]])
    for _ in range(5000):
        book = from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=5)
        if book["bids"][0] == [50000, 4]:
            break
    assert book["bids"][0] == [50000, 4] and client.fake.ws_connections == 1


# -- Book integrity --------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["checksum", "gap"])
def test_a_bad_checksum_or_a_sequence_gap_resubscribes_for_a_fresh_snapshot(client, fault):
    from_stream(client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=5)
    client.fake.fault_next_book = fault
    client.fake.push_book_update(("BTC", "USDT"), asks=[["50000.1", "3"]])
    client.fake.ws_wait(lambda: subscriptions(client.fake, "unsubscribe") == [{"channel": "books", "instId": "BTC-USDT"}])
    client.fake.ws_wait(lambda: subscriptions(client.fake).count({"channel": "books", "instId": "BTC-USDT"}) == 2)
    for _ in range(5000):
        book = client.data("depth", symbol="BTC_USDT", limit=5)
        if book["asks"][0] == [50000.1, 3]:
            break
    assert book["asks"][0] == [50000.1, 3]          # the fresh snapshot has the update


def test_resyncs_are_counted(repo_client):
    from_stream(repo_client, BOOKS_PATH, "depth", symbol="BTC_USDT", limit=5)
    repo_client.fake.fault_next_book = "checksum"
    repo_client.fake.push_book_update(("BTC", "USDT"))
    wait_state(repo_client, lambda: okx_status(repo_client).get("resyncs") == 1)


def test_book_checksum_is_a_signed_crc32_of_bid_then_ask_levels():
    book = _stream.Book()
    book.reset(asks=[["3368", "8"], ["3366.8", "9"]], bids=[["3366.1", "7"]])
    crc = zlib.crc32(b"3366.1:7:3366.8:9:3368:8")        # bid1, ask1, then the longer side alone
    assert okx.book_checksum(book) == (crc - (1 << 32) if crc >= 1 << 31 else crc) < 0


# -- Losing and regaining the connection -----------------------------------------------------------

def test_a_dropped_connection_falls_back_to_rest_then_resubscribes(repo_client, quick, monkeypatch):
    fake = repo_client.fake
    streamed = from_stream(repo_client, TICKER_PATH, "ticker", symbol="BTC_USDT")
    monkeypatch.setattr(_stream, "BACKOFF_FIRST", 0.5)    # long enough to be asked while down
    fake.ws_drop()
    wait_state(repo_client, lambda: okx_status(repo_client)["connected"] == 0)
    before = rest_calls(fake, TICKER_PATH)
    assert repo_client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"      # no error
    assert rest_calls(fake, TICKER_PATH) == before + 1
    fake.ws_wait(lambda: fake.ws_connections == 2 and len(subscriptions(fake)) == 2)
    assert subscriptions(fake)[1] == {"channel": "tickers", "instId": "BTC-USDT"}
    assert from_stream(repo_client, TICKER_PATH, "ticker", symbol="BTC_USDT")["symbol"] == streamed["symbol"]
    assert okx_status(repo_client)["reconnects"] == 1


def test_an_unreachable_stream_leaves_rest_answering(request, plugin_mode, fake):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with streaming(request, plugin_mode, fake, ws_url=f"ws://127.0.0.1:{port}") as client:
        for count in range(1, 4):
            assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
            assert rest_calls(fake, TICKER_PATH) == count


def test_a_stream_host_that_refuses_the_upgrade_leaves_rest_answering(request, plugin_mode, fake):
    with FakeExchange() as no_stream, streaming(request, plugin_mode, fake, ws_url=no_stream.ws_url) as client:
        for count in range(1, 4):
            assert client.data("depth", symbol="BTC_USDT", limit=5)["asks"]
            assert rest_calls(fake, BOOKS_PATH) == count


def test_silent_connection_is_closed_and_replaced(repo_client, quick, monkeypatch):
    monkeypatch.setattr(okx, "STREAM_KEEPALIVE", 0.05)
    monkeypatch.setattr(okx, "STREAM_SILENCE", 0.3)
    repo_client.fake.ws_answers_ping = False
    repo_client.data("ticker", symbol="BTC_USDT")
    repo_client.fake.ws_wait(lambda: repo_client.fake.ws_connections >= 2)


# -- Keepalive, idle channels, limits --------------------------------------------------------------

def test_keepalive_pings_keep_the_connection(repo_client, quick, monkeypatch):
    monkeypatch.setattr(okx, "STREAM_KEEPALIVE", 0.05)
    repo_client.fake.ws_idle_limit = 0.5                    # the fake closes a client silent this long
    repo_client.data("ticker", symbol="BTC_USDT")
    pings = lambda: [m for p, m in list(repo_client.fake.ws_received) if m == "ping"]
    repo_client.fake.ws_wait(lambda: len(pings()) >= 5)
    assert repo_client.fake.ws_connections == 1


def test_a_channel_nobody_asks_for_is_unsubscribed(repo_client, quick, monkeypatch):
    monkeypatch.setattr(_stream, "IDLE_AFTER", 0.2)
    repo_client.data("ticker", symbol="BTC_USDT")
    repo_client.fake.ws_wait(lambda: subscriptions(repo_client.fake, "unsubscribe")
                             == [{"channel": "tickers", "instId": "BTC-USDT"}])
    wait_state(repo_client, lambda: not okx_status(repo_client))      # the empty connection closed
    repo_client.fake.ws_wait(lambda: not repo_client.fake.ws_sessions)


def test_channels_beyond_a_connections_limit_open_another(repo_client, monkeypatch):
    monkeypatch.setattr(okx, "STREAM_TOPICS", 2)
    for symbol in ("BTC_USDT", "ETH_USDT", "BTC_USDT.swap"):
        repo_client.data("ticker", symbol=symbol)
    repo_client.fake.ws_wait(lambda: repo_client.fake.ws_connections == 2 and len(subscriptions(repo_client.fake)) == 3)
    assert okx_status(repo_client)["subscriptions"] == 3 and okx_status(repo_client)["connections"] == 2


def test_subscriptions_stay_within_the_requests_a_connection_may_send(repo_client, monkeypatch):
    monkeypatch.setattr(okx, "STREAM_REQUESTS", (2, 3600.0))
    for sent, symbol in enumerate(("BTC_USDT", "ETH_USDT"), 1):
        repo_client.data("ticker", symbol=symbol)
        repo_client.fake.ws_wait(lambda: len(subscriptions(repo_client.fake)) == sent)
    for count in range(1, 4):                         # a third subscription waits its turn: REST
        before = rest_calls(repo_client.fake, TICKER_PATH)
        repo_client.data("ticker", symbol="BTC_USDT.swap")
        assert rest_calls(repo_client.fake, TICKER_PATH) == before + 1
    assert len(subscriptions(repo_client.fake)) == 2


def test_reconnects_are_paced():
    pacer = _stream.Pacer(2, 0.2)
    started = _stream.time.monotonic()
    for _ in range(3):
        pacer.wait()
    assert _stream.time.monotonic() - started >= 0.2      # the third waited for the window


def test_no_key_travels_on_a_public_channel(client):
    for method, path in (("ticker", TICKER_PATH), ("depth", BOOKS_PATH), ("trades", TRADES_PATH)):
        client.data(method, symbol="BTC_USDT")
    client.fake.ws_wait(lambda: len(subscriptions(client.fake)) == 3)
    client.data("accounts")
    text = " ".join(message for _, message in client.fake.ws_received)
    for secret in (API_KEY, SECRET, PASSPHRASE):
        assert secret not in text


def test_status_shows_the_stream(repo_client):
    from_stream(repo_client, TICKER_PATH, "ticker", symbol="BTC_USDT")
    status = okx_status(repo_client)
    assert status["connected"] == 1 and status["subscriptions"] == 1 and status["reconnects"] == 0
    assert status["connected_since"] > 0 and status["last_message_age"] >= 0
    assert set(status) >= {"messages_per_second", "resyncs"}
    report = fmz_plugin.status_report(repo_client.server)
    assert report["streams"]["OKX"]["subscriptions"] == 1
    assert "stream: connected since" in fmz_plugin.status_text(report)
    assert "stream: connected since" in fmz_plugin.status_html(report)
    assert "Streams" in fmz_plugin.status_table(report)


# -- When there is no stream -----------------------------------------------------------------------

def test_no_stream_flag_answers_from_rest(request, fake):
    forker = request.getfixturevalue("bundle_forker")
    with forker.plugin({"okx": fake.url, "okx.ws": fake.ws_url}, extra=["--no-stream"]) as url:
        client = _client(url, fake, None)
        for count in range(1, 4):
            client.data("ticker", symbol="BTC_USDT")
            assert rest_calls(fake, TICKER_PATH) == count
    assert fake.ws_connections == 0


def test_a_moved_rest_host_without_a_stream_host_does_not_stream(request, fake):
    with request.getfixturevalue("bundle_forker").plugin({"okx": fake.url}) as url:
        client = _client(url, fake, None)
        for count in range(1, 4):
            client.data("ticker", symbol="BTC_USDT")
            assert rest_calls(fake, TICKER_PATH) == count
    assert fake.ws_connections == 0


def test_stream_urls_keep_the_exchanges_path():
    assert _stream.stream_urls(okx, {}) == {"public": "wss://ws.okx.com:8443/ws/v5/public"}
    assert _stream.stream_urls(okx, {"": "http://127.0.0.1:1", "ws": "ws://127.0.0.1:2"}) == \
        {"public": "ws://127.0.0.1:2/ws/v5/public"}
    assert _stream.stream_urls(okx, {"": "http://127.0.0.1:1"}) is None


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
    def stream_topic(symbol, method):
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
        pass


def test_a_login_endpoint_gets_the_robots_keys_and_a_connection_per_key():
    sessions = {}                       # session -> [path, messages...]

    def record(session):
        sessions[session] = [session.path]
        while True:
            sessions[session].append(session.receive())
            server.ws_note(session, sessions[session][-1])

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
