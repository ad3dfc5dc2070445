"""Hostile or broken clients: address allow-list, slow and huge requests, and a corpus of
malformed envelopes. Every answer is JSON, the connection is never just dropped, and the
server serves a valid request right after."""
import contextlib
import http.client
import json
import socket

import pytest

import fmz_plugin
from tests.conftest import raw_exchange, serving


def raw_post(url, body, path="/OKX", headers=None):
    """POST on a fresh connection; returns (status, decoded JSON answer)."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.getheader("Content-Type").startswith("application/json")
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------- --allow

@pytest.fixture
def plugin_allowing(okx_fake):
    with contextlib.ExitStack() as servers:
        yield lambda allow: servers.enter_context(serving({"okx": okx_fake.url}, allow=allow))[0]


def ticker_body(okx_fake):
    return json.dumps({"access_key": okx_fake.ACCESS_KEY, "secret_key": okx_fake.SECRET_KEY,
                       "method": "ticker", "params": {"symbol": "BTC_USDT"}, "nonce": 1}).encode()


def test_allow_refuses_other_addresses_with_403_json(plugin_allowing, okx_fake):
    url = plugin_allowing(["10.1.2.3", "192.168.0.0/16"])
    status, answer = raw_post(url, ticker_body(okx_fake))
    assert status == 403 and answer == {"error": "client address 127.0.0.1 is not allowed (see --allow)"}
    assert okx_fake.requests == []


def test_allow_admits_listed_addresses_and_networks(plugin_allowing, okx_fake):
    for allow in (["127.0.0.1"], ["10.0.0.1", "127.0.0.0/8"]):
        status, answer = raw_post(plugin_allowing(allow), ticker_body(okx_fake))
        assert status == 200 and answer["data"]["symbol"] == "BTC_USDT"


def test_allow_matches_ipv4_mapped_ipv6_clients():
    settings = fmz_plugin.Settings(allow=["10.0.0.5"])
    assert settings.allows("::ffff:10.0.0.5") and not settings.allows("::ffff:10.0.0.6")
    assert not settings.allows("not-an-address") and fmz_plugin.Settings().allows("203.0.113.9")


def test_allow_flag_is_validated(capsys):
    assert fmz_plugin.parse_args(["--allow", "127.0.0.1, 10.0.0.0/8"]).allow_list == ["127.0.0.1", "10.0.0.0/8"]
    assert fmz_plugin.parse_args([]).allow_list is None
    for bad in ("nobody", "", "10.0.0.300"):
        with pytest.raises(SystemExit):
            fmz_plugin.parse_args(["--allow", bad])


# ---------------------------------------------------------------------------- the docker's socket

@pytest.fixture
def slow_clients_time_out(monkeypatch):
    monkeypatch.setattr(fmz_plugin.Handler, "timeout", 0.3)
    monkeypatch.setattr(fmz_plugin.Handler, "request_timeout", 0.3)


@pytest.mark.repo_only
def test_slow_body_is_answered_and_the_server_moves_on(plugin_server, slow_clients_time_out, okx):
    answer = raw_exchange(plugin_server, b"POST /OKX HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{", half_close=False)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    assert json.loads(body) == {"error": "the request did not arrive whole within 0.3s"}
    assert okx.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


@pytest.mark.repo_only
def test_silent_connection_is_closed_without_blocking_others(plugin_server, slow_clients_time_out, okx):
    host, port = plugin_server.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as idle:
        assert okx.data("ticker", symbol="BTC_USDT")      # served while the idle one waits
        assert idle.recv(100) == b""                      # then the idle one is closed by the server


def test_body_over_the_cap_is_refused_before_reading_it(plugin_server, okx):
    answer = raw_exchange(plugin_server, b"POST /OKX HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{"
                          % (fmz_plugin.MAX_BODY + 1))
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"error": f"the request body is over {fmz_plugin.MAX_BODY} bytes"}
    assert okx.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


def test_body_at_the_cap_is_read(okx):
    body = json.dumps(okx.envelope("ticker", {"symbol": "BTC_USDT"}, padding="x" * 1000)).encode()
    body = body[:-1] + b" " * (fmz_plugin.MAX_BODY - len(body)) + b"}"
    assert len(body) == fmz_plugin.MAX_BODY and okx.post(body)["data"]["symbol"] == "BTC_USDT"


# ---------------------------------------------------------------------------- a corpus of bad input

KEYS = object()          # stands for the exchange's real keys in the corpus below
TRADE = {"symbol": "BTC_USDT", "type": "buy", "price": "30000", "amount": "0.01"}


def trade_with(**changes):
    params = {**TRADE, **changes}
    return {"method": "trade", "params": {k: v for k, v in params.items() if v is not ...}}


# name -> raw body bytes, or the envelope fields that differ from a valid ticker call
CORPUS = {
    # the envelope
    "not json": b"hello",
    "empty body": b"",
    "json array": b"[1, 2]",
    "json string": b'"ticker"',
    "json number": b"42",
    "json null": b"null",
    "nested far too deeply": b"[" * 200_000 + b"]" * 200_000,
    "invalid utf-8": b'{"method": "\xff\xfe"}',
    "utf-8 bom": b'\xef\xbb\xbf{"method": "ticker"}',
    "duplicate keys, last not a string": b'{"access_key":"a","secret_key":"b","method":"ticker","method":7}',
    "method missing": {"method": ...},
    "method unknown": {"method": "teleport"},
    "access_key missing": {"access_key": ...},
    "secret_key missing": {"secret_key": ...},
    "method a number": {"method": 7},
    "method null": {"method": None},
    "method a list": {"method": ["ticker"]},
    "method an object": {"method": {"name": "ticker"}},
    "method empty": {"method": ""},
    "method very long": {"method": "t" * 100_000},
    "method unicode": {"method": "тикер"},
    "method with NUL": {"method": "\u0000ticker"},
    "method with newline": {"method": "ticker\nfake log line"},
    "access_key a number": {"access_key": 12345},
    "secret_key a list": {"secret_key": ["s", "p"]},
    "access_key with CRLF": {"method": "accounts", "params": {}, "access_key": "key\r\nX-Evil: 1"},
    "secret_key with CRLF": {"method": "accounts", "params": {}, "secret_key": "s,p\r\nX-Evil: 1"},
    "secret_key not ASCII": {"method": "accounts", "params": {}, "secret_key": "秘密,口令"},
    "params a list": {"params": ["BTC_USDT"]},
    "params a string": {"params": "symbol=BTC_USDT"},
    "params a number": {"params": 5},
    "params true": {"params": True},
    # symbols
    "symbol missing": {"params": {}},
    "symbol empty": {"params": {"symbol": ""}},
    "symbol blank": {"params": {"symbol": "   "}},
    "symbol a number": {"params": {"symbol": 5}},
    "symbol null": {"params": {"symbol": None}},
    "symbol a list": {"params": {"symbol": ["BTC", "USDT"]}},
    "symbol nested junk": {"params": {"symbol": {"a": [1, {"b": [None, {"c": 1e308}]}]}}},
    "symbol cyrillic": {"params": {"symbol": "БТЦ_USDT"}},
    "symbol full-width": {"params": {"symbol": "ＢＴＣ_ＵＳＤＴ"}},
    "symbol emoji": {"params": {"symbol": "🚀_USDT"}},
    "symbol very long": {"params": {"symbol": "B" * 100_000 + "_USDT"}},
    "symbol with NUL": {"params": {"symbol": "BTC\u0000_USDT"}},
    "symbol path traversal": {"params": {"symbol": "../../BTC_USDT"}},
    "symbol unknown kind": {"params": {"symbol": "BTC_USDT.future"}},
    "symbol three parts": {"params": {"symbol": "BTC_USDT_X"}},
    # trade numbers and sides
    "amount negative": trade_with(amount="-1"),
    "amount zero": trade_with(amount="0"),
    "amount NaN": trade_with(amount="NaN"),
    "amount sNaN": trade_with(amount="sNaN"),
    "amount Infinity": trade_with(amount="Infinity"),
    "amount huge": trade_with(amount="1e400"),
    "amount astronomically huge": trade_with(amount="9e999999999"),
    "amount 5000 digits": trade_with(amount="9" * 5000),
    "amount tiny": trade_with(amount="1e-999999999"),
    "amount hex": trade_with(amount="0x10"),
    "amount empty": trade_with(amount=""),
    "amount missing": trade_with(amount=...),
    "amount true": trade_with(amount=True),
    "amount a list": trade_with(amount=[1]),
    "amount an object": trade_with(amount={"value": 1}),
    "amount with unit": trade_with(amount="0.01 BTC"),
    "price words": trade_with(price="thirty thousand"),
    "price negative": trade_with(price="-5"),
    "price zero": trade_with(price=0),
    "price -2": trade_with(price=-2),
    "price huge float": trade_with(price=1e308),
    "type missing": trade_with(type=...),
    "type unknown": trade_with(type="hold"),
    "type a number": trade_with(type=1),
    "type injection": trade_with(type="buy; DROP TABLE orders"),
    "trade symbol empty": trade_with(symbol=""),
    # limits, periods, times
    "depth limit negative": {"method": "depth", "params": {"symbol": "BTC_USDT", "limit": "-5"}},
    "depth limit words": {"method": "depth", "params": {"symbol": "BTC_USDT", "limit": "many"}},
    "depth limit fractional": {"method": "depth", "params": {"symbol": "BTC_USDT", "limit": 2.5}},
    "depth limit huge": {"method": "depth", "params": {"symbol": "BTC_USDT", "limit": "1e30"}},
    "records period zero": {"method": "records", "params": {"symbol": "BTC_USDT", "period": "0"}},
    "records period unknown": {"method": "records", "params": {"symbol": "BTC_USDT", "period": "7"}},
    "records period fractional": {"method": "records", "params": {"symbol": "BTC_USDT", "period": "60.5"}},
    "history since negative": {"method": "historyorders", "params": {"symbol": "BTC_USDT", "since": "-1"}},
    "history since words": {"method": "historyorders", "params": {"symbol": "BTC_USDT", "since": "yesterday"}},
    # order ids
    "order id missing": {"method": "order", "params": {"symbol": "BTC_USDT"}},
    "order id empty": {"method": "order", "params": {"id": "", "symbol": "BTC_USDT"}},
    "order id a list": {"method": "order", "params": {"id": ["1"], "symbol": "BTC_USDT"}},
    "order id true": {"method": "cancel", "params": {"id": True, "symbol": "BTC_USDT"}},
    "order id without parts": {"method": "order", "params": {"id": "12345", "symbol": "BTC_USDT"}},
    "order id too many parts": {"method": "cancel", "params": {"id": "a,b,c,d", "symbol": "BTC_USDT"}},
    "order id very long": {"method": "cancel", "params": {"id": "x" * 100_000, "symbol": "BTC_USDT"}},
    "order id path traversal": {"method": "order", "params": {"id": "../../etc/passwd", "symbol": "BTC_USDT"}},
    "order id with CRLF": {"method": "cancel", "params": {"id": "BTC,1\r\nX: y", "symbol": "BTC_USDT"}},
    # exchange.IO
    "io absolute url": {"method": "__api_https://evil.example/x"},
    "io unicode path": {"method": "__api_/api/ключ"},
    "io dot segments": {"method": "__api_/api/../../x"},
    "io empty path": {"method": "__api_"},
    # futures calls
    "margin level missing": {"method": "margin_level", "params": {"symbol": "BTC_USDT.swap"}},
    "margin level zero": {"method": "margin_level", "params": {"symbol": "BTC_USDT.swap", "level": "0"}},
    "margin level words": {"method": "margin_level", "params": {"symbol": "BTC_USDT.swap", "level": "max"}},
}


def corpus_body(case, client):
    """A corpus case as the bytes to POST, with the client's keys where the case keeps them."""
    if isinstance(case, bytes):
        return case
    envelope = {"access_key": client.access_key, "secret_key": client.secret_key, "method": "ticker",
                "params": {"symbol": "BTC_USDT"}, "nonce": 1}
    envelope.update(case)
    params = envelope.get("params")
    if isinstance(params, dict) and params.get("symbol") == "BTC_USDT":    # what the exchange trades
        envelope["params"] = {**params, "symbol": client.fake.SYMBOL}
    return json.dumps({k: v for k, v in envelope.items() if v is not ...}).encode()


@pytest.mark.parametrize("name", CORPUS)
def test_bad_input_is_a_clear_error_and_the_next_request_works(served, name):
    answer = served.post(corpus_body(CORPUS[name], served))     # asserts HTTP 200 and JSON
    assert set(answer) == {"error"}, answer
    assert isinstance(answer["error"], str) and 0 < len(answer["error"]) < 400, answer
    assert "internal error" not in answer["error"], answer
    assert served.data("ticker", symbol=served.fake.SYMBOL)["symbol"] == served.fake.SYMBOL


def test_unknown_http_verb_in_io_is_refused(served):
    assert "verb" in served.call("__api_/api/x", http_method="TRACE")["error"]
