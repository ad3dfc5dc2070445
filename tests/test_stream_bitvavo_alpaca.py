"""Market data from the stream with the dialects of Bitvavo (a nonce-chained book whose snapshot
is the getBook action) and Alpaca (an authenticated stream: the robot's key logs in, one
connection per key and endpoint), beyond the exchange-neutral checks tests/test_stream.py runs
for them (its VENUES; its fixtures are used here). A request answered by the stream leaves no
trace in the fake's REST log.
"""
import json
import logging

import pytest

import fmz_plugin
from exchanges import _websocket
from tests.fakes.alpaca import KEY_ID, SECRET as ALPACA_SECRET
from tests.test_stream import (VENUES, WAIT, client, fake, from_stream, only, quick, repo_client, stream_status,  # noqa: F401
                               streaming, venue, wait_state)


def sent(fake, path=None):
    """Every JSON message the fake's stream received (on `path`), in order."""
    return [json.loads(m) for p, m in list(fake.ws_received) if path in (None, p) and m.startswith("{")]


def with_secret(client, secret):
    """The client with another secret_key (the same key id)."""
    client.secret_key = secret
    return client


@only("bitvavo", "alpaca")
def test_records_stay_rest(client):
    for count in range(1, 3):
        before = len(client.fake.requests)
        assert client.data("records", symbol="BTC_USDT", period=1, limit=5)
        assert len(client.fake.requests) > before
    assert not client.fake.ws_connections


# -- Bitvavo: a public stream, a nonce-chained book -----------------------------------------------

@only("bitvavo")
def test_bitvavo_book_subscribes_then_asks_the_snapshot(client):
    client.data("depth", symbol="BTC_USDT", limit=5)
    client.fake.ws_wait(lambda: len(sent(client.fake)) == 2)
    assert sent(client.fake) == [{"action": "subscribe", "channels": [{"name": "book", "markets": ["BTC-USDT"]}]},
                                 {"action": "getBook", "market": "BTC-USDT", "depth": 1000}]


@only("bitvavo")
def test_bitvavo_nonce_gap_takes_a_fresh_snapshot(repo_client):
    fake = repo_client.fake
    from_stream(repo_client, None, "depth", symbol="BTC_USDT", limit=5)
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
def test_bitvavo_ticker_channel_moves_the_best_prices_between_ticker24h_pushes(client):
    first = from_stream(client, None, "ticker", symbol="BTC_USDT")
    assert first["last"] == 50000                                        # ticker24h's last
    with client.fake.lock:
        client.fake.ws_subscriptions = {session: topics - {("ticker24h", "BTC-USDT")}      # ticker24h goes quiet
                                        for session, topics in client.fake.ws_subscriptions.items()}
    client.data("trade", symbol="BTC_USDT", type="buy", price=50010, amount=0.01)      # fills at 50000.1
    for _ in range(5000):
        ticker = from_stream(client, None, "ticker", symbol="BTC_USDT")
        if ticker["last"] != first["last"]:
            break
    assert (ticker["last"], ticker["buy"], ticker["sell"]) == (50000.1, 50000, 50000.1)     # the ticker channel's
    assert (ticker["high"], ticker["vol"]) == (first["high"], first["vol"]) and ticker["time"] >= first["time"]


# -- Alpaca: the robot's key logs in, one connection per key ---------------------------------------

@only("alpaca")
def test_alpaca_logs_in_with_the_robots_key_then_subscribes(client):
    client.data("depth", symbol="BTC_USD")
    client.fake.ws_wait(lambda: len(sent(client.fake)) == 2)
    assert sent(client.fake) == [{"action": "auth", "key": KEY_ID, "secret": ALPACA_SECRET},
                                 {"action": "subscribe", "orderbooks": ["BTC/USD"]}]


@only("alpaca")
def test_alpaca_subscribes_only_once_its_login_is_answered(repo_client):
    fake = repo_client.fake
    fake.ws_hold_auth = True
    actions = lambda: [message["action"] for message in sent(fake)]
    repo_client.data("ticker", symbol="BTC_USD")
    fake.ws_wait(lambda: fake.ws_held_auths)
    assert repo_client.data("ticker", symbol="BTC_USD")["symbol"] == "BTC_USD"          # REST meanwhile
    assert actions() == ["auth"]
    fake.release_auth()
    fake.ws_wait(lambda: actions() == ["auth", "subscribe"])
    assert from_stream(repo_client, None, "ticker", symbol="BTC_USD")["symbol"] == "BTC_USD"


@only("alpaca")
def test_alpaca_stocks_stream_on_the_keys_feed_and_depth_stays_rest(request, plugin_mode, fake):
    for secret, path in ((ALPACA_SECRET, "/v2/iex"), (ALPACA_SECRET + ",sip", "/v2/sip")):
        with streaming(request, plugin_mode, fake, VENUES["alpaca"]) as client:
            with_secret(client, secret)
            rest = client.data("ticker", symbol="AAPL_USD")
            streamed = from_stream(client, None, "ticker", symbol="AAPL_USD")
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
    alpaca = VENUES["alpaca"]
    with streaming(request, "repo", fake, alpaca) as first, streaming(request, "repo", fake, alpaca) as second:
        from_stream(first, None, "ticker", symbol="BTC_USD")
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
