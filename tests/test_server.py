"""The envelope and the server: bad input of every kind gets a clear {"error"}, and the next
request is served normally."""
import json

import pytest

import fmz_plugin
from tests.conftest import PluginClient, head_and_json, raw_exchange, serving
from tests.test_hostile import CORPUS, corpus_body


# The envelope cases of the hostile corpus (tests/test_hostile.py), which runs every case against
# every exchange in this process; here they also run against the one-file bundle.
ENVELOPE_CASES = ["not json", "empty body", "json array", "json string", "method missing", "method unknown",
                  "method a number", "access_key missing", "secret_key missing", "params a list",
                  "params a string", "symbol missing", "symbol a number", "amount negative", "amount NaN",
                  "amount with unit", "price zero", "type unknown", "depth limit fractional", "order id missing"]


@pytest.mark.parametrize("name", ENVELOPE_CASES)
def test_bad_envelope_answers_error_then_serves_next(okx, name):
    answer = okx.post(corpus_body(CORPUS[name], okx))
    assert set(answer) == {"error"} and answer["error"], answer
    assert okx.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


def test_unknown_method_names_it_and_lists_the_methods_served(okx):
    error = okx.error("teleport")
    assert error.startswith("unknown method: teleport; served: ticker, depth, trades, records, accounts, ")
    assert error.endswith(", fundings, __api_<path>")


def test_method_names_are_case_insensitive(okx):
    assert okx.data("TICKER", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


def test_unknown_exchange_path_lists_the_served_ones(okx):
    answer = okx.post(json.dumps(okx.envelope("ticker", {"symbol": "BTC_USDT"})).encode(), path="/Nowhere")
    assert answer["error"].startswith("unknown exchange path /Nowhere") and "/OKX" in answer["error"]


def test_exchange_path_is_case_insensitive(okx):
    answer = okx.post(json.dumps(okx.envelope("ticker", {"symbol": "BTC_USDT"})).encode(), path="/okx")
    assert answer["data"]["symbol"] == "BTC_USDT"


def test_get_request_answers_json_error(plugin_server):
    request = b"GET /OKX HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    head, answer = head_and_json(raw_exchange(plugin_server, request))
    assert head.startswith("HTTP/1.1 200") and "POST" in answer["error"]


@pytest.mark.repo_only
def test_content_length_longer_than_body_is_answered_once_the_body_stops(plugin_server, monkeypatch):
    monkeypatch.setattr(fmz_plugin.Handler, "timeout", 0.5)
    request = b"POST /OKX HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{}"
    head, answer = head_and_json(raw_exchange(plugin_server, request))
    assert "Content-Length" in answer["error"] or "in time" in answer["error"]


def test_content_length_shorter_than_body(okx):
    body = json.dumps(okx.envelope("ticker", {"symbol": "BTC_USDT"})).encode()
    answer = okx.post(body, headers={"Content-Length": str(len(body) - 5)})
    assert answer == {"error": "the request body is not valid JSON"}
    assert okx.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"


def test_missing_content_length_is_a_json_error(plugin_server):
    head, answer = head_and_json(raw_exchange(plugin_server, b"POST /OKX HTTP/1.1\r\nHost: x\r\n\r\n{}"))
    assert "Content-Length" in answer["error"]


def test_garbage_request_line_gets_json_not_html(plugin_server):
    head, answer = head_and_json(raw_exchange(plugin_server, b"\x16\x03\x01 garbage\r\n\r\n"))
    assert "error" in answer


def test_keep_alive_serves_many_requests_on_one_connection(okx, okx_fake):
    for _ in range(5):
        okx.data("ticker", symbol="BTC_USDT")
    assert okx_fake.connections == 1


def test_unreachable_exchange_is_a_clear_error():
    with serving({"okx": "http://127.0.0.1:9"}) as (url, _):
        client = PluginClient(url, "OKX", "k", "s,p")
        assert "cannot reach http://127.0.0.1:9" in client.error("ticker", symbol="BTC_USDT")


@pytest.mark.repo_only
def test_secrets_never_in_errors_or_logs(okx_fake, plugin_server, caplog):
    caplog.set_level("DEBUG")
    client = PluginClient(plugin_server, "OKX", "my-api-key-123", "my-secret-456,my-pass-789")
    error = client.error("accounts")
    client.error("trade", symbol="BTC_USDT", type="buy", price="1", amount="1")
    client.call("__api_/api/v5/account/balance")
    text = error + caplog.text
    for secret in ("my-api-key-123", "my-secret-456", "my-pass-789"):
        assert secret not in text


def test_cli_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        fmz_plugin.parse_args(["--help"])
    out = capsys.readouterr().out
    for flag in ("--port", "--address", "--timeout", "--base-url", "--log-level", "call", "check", "bundle"):
        assert flag in out


def test_base_url_flag_validates(capsys):
    assert fmz_plugin.parse_args(["--base-url", "okx=http://127.0.0.1:1"]).base_urls == {"okx": "http://127.0.0.1:1"}
    for bad in ("okx", "nowhere=http://x", "okx=ftp://x"):
        with pytest.raises(SystemExit):
            fmz_plugin.parse_args(["--base-url", bad])


def test_banner_names_the_url_to_paste(okx_fake):
    server = fmz_plugin.Server(("127.0.0.1", 0))
    try:
        text = fmz_plugin.banner(server, fmz_plugin.Settings())
    finally:
        server.server_close()
    assert f"http://127.0.0.1:{server.server_address[1]}/OKX" in text


def test_the_access_log_costs_nothing_per_good_request_at_info(okx_fake, caplog):
    """At info (the default): an error answer has its line, a good one none; every `every`
    seconds one line counts the answers. At debug: every request has its line."""
    access = fmz_plugin.AccessLog(every=3600)
    good, bad = {"data": {}}, {"error": "OKX 51001: Instrument ID does not exist"}
    envelope = {"method": "ticker", "params": {"symbol": "BTC_USDT"}}
    caplog.set_level("INFO", logger="fmz_plugin")
    access.note("OKX", envelope, 0.0, good)
    access.note("OKX", envelope, 0.0, bad)
    assert [r.getMessage().split()[:3] + r.getMessage().split()[4:5] for r in caplog.records] == \
        [["OKX", "ticker", "BTC_USDT", "error:"]]
    caplog.clear()
    access.every = 0
    access.note("OKX", envelope, 0.0, good)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("3 requests answered in the last ") and ", 1 of them errors" in line
    caplog.clear()
    caplog.set_level("DEBUG", logger="fmz_plugin")
    access.every = 3600
    access.note("OKX", envelope, 0.0, good)
    assert [r.getMessage().split()[:3] + r.getMessage().split()[4:] for r in caplog.records] == \
        [["OKX", "ticker", "BTC_USDT", "ok"]]


def test_the_date_header_is_made_once_a_second():
    handler = object.__new__(fmz_plugin.Handler)
    first = handler.date_time_string()
    second = fmz_plugin._DATE[0]
    assert first == fmz_plugin.http.server.BaseHTTPRequestHandler.date_time_string(handler, second)
    assert handler.date_time_string() is first or fmz_plugin._DATE[0] != second


def test_one_api_serves_every_request_of_one_key_and_settings(okx_fake):
    settings = fmz_plugin.Settings({"okx": okx_fake.url})
    envelope = {"access_key": okx_fake.ACCESS_KEY, "secret_key": okx_fake.SECRET_KEY, "method": "accounts"}
    assert "data" in fmz_plugin.dispatch("OKX", dict(envelope), settings=settings)
    (api,) = settings.apis.values()
    signed_once = list(api.signatures)
    for _ in range(2):
        assert "data" in fmz_plugin.dispatch("OKX", dict(envelope), settings=settings)
    assert list(settings.apis.values()) == [api]
    assert len(api.signatures) == len(signed_once)     # this request's alone, not all three
    fmz_plugin.dispatch("OKX", dict(envelope, access_key=okx_fake.ACCESS_KEY + "x"), settings=settings)
    assert len(settings.apis) == 2


def test_request_heads_are_read_as_http_server_reads_them(plugin_server, okx_fake):
    """The Handler reads a request's headers without the email package, by http.server's rules:
    any case, Connection close or keep-alive, HTTP/1.0 closes, at most 100 headers, HTTP/2 refused."""
    envelope = json.dumps({"access_key": okx_fake.ACCESS_KEY, "secret_key": okx_fake.SECRET_KEY,
                           "method": "ticker", "params": {"symbol": "BTC_USDT"}}).encode()
    two = (b"POST /OKX HTTP/1.1\r\ncontent-length: %d\r\nX-Folded: a\r\n b\r\n\r\n" % len(envelope) + envelope) * 2
    answers = raw_exchange(plugin_server, two)                      # kept alive: both answered
    assert answers.count(b"HTTP/1.1 200 OK") == 2 and answers.count(b'"symbol":"BTC_USDT"') == 2
    closing = b"POST /OKX HTTP/1.1\r\nCONTENT-LENGTH: %d\r\nConnection: close\r\n\r\n" % len(envelope) + envelope
    assert raw_exchange(plugin_server, closing * 2, half_close=False).count(b"HTTP/1.1 200 OK") == 1
    old = b"POST /OKX HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(envelope) + envelope
    assert raw_exchange(plugin_server, old * 2, half_close=False).count(b" 200 OK") == 1
    many = b"POST /OKX HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n"
    head, answer = head_and_json(raw_exchange(plugin_server, many))
    assert answer == {"error": "HTTP 431: Too many headers"}
    head, answer = head_and_json(raw_exchange(plugin_server, b"POST /OKX HTTP/2.0\r\n\r\n"))
    assert answer["error"].startswith("HTTP 505")
