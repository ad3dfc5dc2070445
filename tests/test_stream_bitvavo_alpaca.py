"""Market data from the stream (exchanges/_stream.py) with Bitvavo's and Alpaca's dialects, against
the fakes' WebSockets (tests/fakes/bitvavo.py, tests/fakes/alpaca.py). The exchange-neutral
checks run for every entry of STREAMED (one list: an exchange joins by its entry); the others
are about one dialect: Bitvavo's nonce-chained book, Alpaca's login with the robot's key.

A request answered by the stream leaves no trace in the fake's REST log. Tests that shorten the
manager's intervals reach into the plugin's process (repo mode only); the others run against
the bundle too.
"""
import contextlib
import json
import logging

import pytest

import fmz_plugin
from exchanges import _stream, _websocket
from tests.conftest import PluginClient, serving
from tests.fakes.alpaca import KEY_ID, SECRET as ALPACA_SECRET, FakeAlpaca
from tests.fakes.bitvavo import FakeBitvavo

WAIT = 10.0        # seconds any awaited event may take at most (it takes milliseconds)


class Streamed:
    """What the exchange-neutral tests need to know of one exchange's stream and its fake."""

    def __init__(self, name, fake_class, symbol, first_subscribe, ticker_path, filled):
        self.name, self.fake_class, self.symbol = name, fake_class, symbol
        self.first_subscribe = first_subscribe     # (path, message) a ticker of `symbol` subscribes with
        self.ticker_path = ticker_path             # the REST path of that ticker
        self.filled = filled                       # (price, side) of the fill a market buy of 0.01 makes

    def __repr__(self):
        return self.name


STREAMED = {
    "bitvavo": Streamed("bitvavo", FakeBitvavo, "BTC_USDT",
                        ("/v2/", {"action": "subscribe", "channels": [{"name": "ticker24h", "markets": ["BTC-USDT"]}]}),
                        "/v2/ticker/24h", (50000.1, "buy")),
    "alpaca": Streamed("alpaca", FakeAlpaca, "BTC_USD",
                       ("/v1beta3/crypto/us", {"action": "subscribe", "quotes": ["BTC/USD"], "trades": ["BTC/USD"],
                                               "dailyBars": ["BTC/USD"]}),
                       "/v1beta3/crypto/us/snapshots", (50000.1, "buy")),
}


@contextlib.contextmanager
def streaming(request, mode, fake, name, ws_url=None, secret=None):
    """A plugin client of `fake` whose stream is the fake's (or `ws_url`); .server in repo mode."""
    urls = {name: fake.url, name + ".ws": ws_url or fake.ws_url}
    if mode == "bundle":
        with request.getfixturevalue("bundle_forker").plugin(urls) as url:
            yield _client(url, fake, None, secret)
        return
    with serving(urls, stream=True) as (url, server):
        yield _client(url, fake, server, secret)


def _client(url, fake, server, secret=None):
    client = PluginClient(url, fake.NAME, fake.ACCESS_KEY, secret or fake.SECRET_KEY)
    client.fake, client.server = fake, server
    return client


@pytest.fixture(params=list(STREAMED))
def venue(request):
    return STREAMED[request.param]


@pytest.fixture
def fake(venue):
    with venue.fake_class() as fake:
        yield fake


@pytest.fixture
def client(request, plugin_mode, fake, venue):
    with streaming(request, plugin_mode, fake, venue.name) as client:
        yield client


@pytest.fixture
def repo_client(request, fake, venue):
    with streaming(request, "repo", fake, venue.name) as client:
        yield client


@pytest.fixture
def quick(monkeypatch):
    """The manager's intervals shortened, so reconnects happen in a blink."""
    monkeypatch.setattr(_stream, "TICK", 0.02)
    monkeypatch.setattr(_stream, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(_stream, "BACKOFF_MAX", 0.2)


def rest_calls(fake):
    return len(fake.requests)


def from_stream(client, method, **params):
    """Ask until an answer comes without a REST request (the stream went live); the answer."""
    for _ in range(5000):
        before = rest_calls(client.fake)
        data = client.data(method, **params)
        if rest_calls(client.fake) == before:
            return data
    raise AssertionError(f"{method} never came from the stream")


def sent(fake, path=None):
    """Every JSON message the fake's stream received (on `path`), in order."""
    return [json.loads(m) for p, m in list(fake.ws_received) if path in (None, p) and m.startswith("{")]


def wait_state(client, predicate):
    assert client.server.settings.streams.wait_for(predicate, WAIT), "the stream never reached that state"


def stream_status(client):
    return client.server.settings.streams.status().get(client.fake.NAME, {})


def only(name):
    return pytest.mark.parametrize("venue", [STREAMED[name]], ids=[name])


# -- Every streamed exchange -----------------------------------------------------------------------

def test_first_request_subscribes_as_the_exchange_documents(client, venue):
    assert client.data("ticker", symbol=venue.symbol)["symbol"] == venue.symbol
    path, message = venue.first_subscribe
    client.fake.ws_wait(lambda: message in sent(client.fake, path))


def test_ticker_depth_and_trades_from_the_stream_are_the_rest_answers(client, venue):
    rest = {method: client.data(method, symbol=venue.symbol) for method in ("ticker", "depth", "trades")}
    ticker = from_stream(client, "ticker", symbol=venue.symbol)
    assert {k: v for k, v in ticker.items() if k != "time"} == {k: v for k, v in rest["ticker"].items() if k != "time"}
    assert ticker["time"] > 0
    depth = from_stream(client, "depth", symbol=venue.symbol, limit=20)
    assert depth["asks"] == rest["depth"]["asks"] and depth["bids"] == rest["depth"]["bids"]
    assert len(depth["asks"]) == 20 and depth["asks"][0][0] < depth["asks"][1][0] and depth["bids"][0][0] > depth["bids"][1][0]
    trades = from_stream(client, "trades", symbol=venue.symbol)
    assert [t["id"] for t in trades] == [t["id"] for t in rest["trades"]]
    calls = rest_calls(client.fake)
    for _ in range(20):
        for method in ("ticker", "depth", "trades"):
            client.data(method, symbol=venue.symbol)
    assert rest_calls(client.fake) == calls


def test_a_fill_reaches_the_streamed_trades_and_ticker(client, venue):
    client.data("trades", symbol=venue.symbol)
    first = from_stream(client, "trades", symbol=venue.symbol)
    ticker = from_stream(client, "ticker", symbol=venue.symbol)
    client.data("trade", symbol=venue.symbol, type="buy", price=50010, amount=0.01)     # crosses: fills
    calls = rest_calls(client.fake)
    for _ in range(5000):
        rows = client.data("trades", symbol=venue.symbol)
        if rows[-1]["id"] != first[-1]["id"]:
            break
    assert (rows[-1]["price"], rows[-1]["type"]) == venue.filled and rows[-1]["amount"] == 0.01
    for _ in range(5000):
        moved = client.data("ticker", symbol=venue.symbol)
        if moved["time"] != ticker["time"]:
            break
    assert moved["time"] > ticker["time"]
    assert rest_calls(client.fake) == calls


def test_a_dropped_connection_falls_back_to_rest_then_resubscribes(repo_client, venue, quick, monkeypatch):
    fake = repo_client.fake
    from_stream(repo_client, "ticker", symbol=venue.symbol)
    monkeypatch.setattr(_stream, "BACKOFF_FIRST", 0.5)    # long enough to be asked while down
    fake.ws_drop()
    wait_state(repo_client, lambda: stream_status(repo_client)["connected"] == 0)
    before = len(fake.sent(venue.ticker_path))
    assert repo_client.data("ticker", symbol=venue.symbol)["symbol"] == venue.symbol          # no error
    assert len(fake.sent(venue.ticker_path)) == before + 1
    path, message = venue.first_subscribe
    fake.ws_wait(lambda: fake.ws_connections == 2 and sent(fake, path).count(message) == 2)
    assert from_stream(repo_client, "ticker", symbol=venue.symbol)["symbol"] == venue.symbol
    assert stream_status(repo_client)["reconnects"] == 1


# -- Bitvavo: a public stream, a nonce-chained book -----------------------------------------------

@only("bitvavo")
def test_bitvavo_book_subscribes_then_asks_the_snapshot(client):
    client.data("depth", symbol="BTC_USDT", limit=5)
    client.fake.ws_wait(lambda: len(sent(client.fake)) == 2)
    assert sent(client.fake) == [{"action": "subscribe", "channels": [{"name": "book", "markets": ["BTC-USDT"]}]},
                                 {"action": "getBook", "market": "BTC-USDT", "depth": 1000}]


@only("bitvavo")
def test_bitvavo_update_changes_the_local_book(client):
    from_stream(client, "depth", symbol="BTC_USDT", limit=5)
    client.fake.push_book_update(("BTC", "USDT"), asks=[["50000.1", "0"], ["50000.15", "0.25"]], bids=[["50000", "9"]])
    for _ in range(5000):
        book = client.data("depth", symbol="BTC_USDT", limit=5)
        if book["asks"][0][0] == 50000.15:
            break
    assert book["asks"][:2] == [[50000.15, 0.25], [50000.2, 1]] and book["bids"][0] == [50000, 9]


@only("bitvavo")
def test_bitvavo_nonce_gap_takes_a_fresh_snapshot(repo_client):
    fake = repo_client.fake
    from_stream(repo_client, "depth", symbol="BTC_USDT", limit=5)
    fake.fault_next_book = "gap"
    fake.push_book_update(("BTC", "USDT"), asks=[["50000.1", "3"]])
    book_channel = [{"name": "book", "markets": ["BTC-USDT"]}]
    fake.ws_wait(lambda: {"action": "unsubscribe", "channels": book_channel} in sent(fake))
    fake.ws_wait(lambda: [m.get("action") for m in sent(fake)][-2:] == ["subscribe", "getBook"]
                 and len([m for m in sent(fake) if m.get("action") == "getBook"]) == 2)
    for _ in range(5000):
        book = repo_client.data("depth", symbol="BTC_USDT", limit=5)
        if book["asks"][0] == [50000.1, 3]:
            break
    assert book["asks"][0] == [50000.1, 3]          # the fresh snapshot has the update the gap hid
    assert stream_status(repo_client)["resyncs"] == 1


@only("bitvavo")
def test_bitvavo_public_channels_carry_no_key(client):
    for method in ("ticker", "depth", "trades"):
        client.data(method, symbol="BTC_USDT")
    client.fake.ws_wait(lambda: any(len(topics) == 3 for topics in client.fake.ws_subscriptions.values()))
    client.data("accounts")
    text = " ".join(message for _, message in client.fake.ws_received)
    assert client.fake.ACCESS_KEY not in text and client.fake.SECRET_KEY not in text


# -- Alpaca: the robot's key logs in, one connection per key ---------------------------------------

@only("alpaca")
def test_alpaca_logs_in_with_the_robots_key_then_subscribes(client):
    client.data("depth", symbol="BTC_USD")
    client.fake.ws_wait(lambda: len(sent(client.fake)) == 2)
    assert sent(client.fake) == [{"action": "auth", "key": KEY_ID, "secret": ALPACA_SECRET},
                                 {"action": "subscribe", "orderbooks": ["BTC/USD"]}]


@only("alpaca")
def test_alpaca_stocks_stream_on_the_keys_feed_and_depth_stays_rest(request, plugin_mode, fake):
    for secret, path in ((ALPACA_SECRET, "/v2/iex"), (ALPACA_SECRET + ",sip", "/v2/sip")):
        with streaming(request, plugin_mode, fake, "alpaca", secret=secret) as client:
            rest = client.data("ticker", symbol="AAPL_USD")
            streamed = from_stream(client, "ticker", symbol="AAPL_USD")
            assert {k: v for k, v in streamed.items() if k != "time"} == {k: v for k, v in rest.items() if k != "time"}
            assert {"action": "subscribe", "quotes": ["AAPL"], "trades": ["AAPL"], "dailyBars": ["AAPL"]} in sent(fake, path)
            before = len(fake.sent("/v2/stocks/quotes/latest"))
            client.data("depth", symbol="AAPL_USD")
            client.data("depth", symbol="AAPL_USD")
            assert len(fake.sent("/v2/stocks/quotes/latest")) == before + 2
            assert not any("orderbooks" in message for message in sent(fake))


@only("alpaca")
def test_alpaca_refused_login_leaves_rest_answering_and_the_status_says_why(repo_client, quick, caplog):
    fake = repo_client.fake
    fake.ws_keys = {KEY_ID: "another-secret"}           # the stream does not take this key
    caplog.set_level(logging.DEBUG)
    for count in range(1, 4):
        assert repo_client.data("ticker", symbol="BTC_USD")["symbol"] == "BTC_USD"      # no error
        assert len(fake.sent("/v1beta3/crypto/us/snapshots")) == count
    wait_state(repo_client, lambda: stream_status(repo_client).get("problem") == "Alpaca 402: auth failed")
    report = fmz_plugin.status_report(repo_client.server)
    assert "refused: Alpaca 402: auth failed" in fmz_plugin.status_text(report)
    for secret in (ALPACA_SECRET, KEY_ID):
        assert secret not in caplog.text and secret not in json.dumps(report, default=str)
    assert "Alpaca 402: auth failed" in caplog.text


@only("alpaca")
def test_alpaca_second_connection_of_a_key_is_refused_and_rest_answers(request, fake, quick):
    with streaming(request, "repo", fake, "alpaca") as first, streaming(request, "repo", fake, "alpaca") as second:
        from_stream(first, "ticker", symbol="BTC_USD")
        for count in range(3):
            assert second.data("ticker", symbol="BTC_USD")["symbol"] == "BTC_USD"
        wait_state(second, lambda: stream_status(second).get("problem") == "Alpaca 406: connection limit exceeded")
        assert stream_status(first)["problem"] is None


@only("alpaca")
def test_fake_alpaca_refuses_a_wrong_key_with_its_error_and_closes(fake):
    ws = _websocket.connect(fake.ws_url + "/v1beta3/crypto/us", 5.0)
    try:
        assert json.loads(ws.receive(timeout=WAIT)) == [{"T": "success", "msg": "connected"}]
        ws.send_text(json.dumps({"action": "subscribe", "quotes": ["BTC/USD"]}))
        assert json.loads(ws.receive(timeout=WAIT)) == [{"T": "error", "code": 401, "msg": "not authenticated"}]
        ws.send_text(json.dumps({"action": "auth", "key": KEY_ID, "secret": "wrong"}))
        assert json.loads(ws.receive(timeout=WAIT)) == [{"T": "error", "code": 402, "msg": "auth failed"}]
        with pytest.raises((_websocket.WebSocketError, OSError)):
            ws.receive(timeout=WAIT)
    finally:
        ws.abort()
