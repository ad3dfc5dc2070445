"""`call` (one docker request from a terminal) and `check` (the protocol contract run against
any plugin at a URL): against our plugin and its fakes, and against small broken plugins."""
import contextlib
import http.client
import http.server
import json
import re
import socket
import socketserver
import threading
import time

import pytest

import fmz_plugin
from tests.fakes.base import SERVE_POLL
from tests.fakes.okx import FakeOKX


def run(*argv):
    """Run a sub-command; usage errors (argparse's SystemExit) become their exit status."""
    try:
        return fmz_plugin.run([str(arg) for arg in argv])
    except SystemExit as exit:
        return exit.code


def keys_of(fake):
    return ["--access-key", fake.ACCESS_KEY, "--secret-key", fake.SECRET_KEY]


def rows(out):
    """check's output as {check name: (outcome, detail)}."""
    found = {}
    for line in out.splitlines():
        match = re.match(r"^(\S.*?)\s+(pass|FAIL|skip)\s+(?:\d+ ms)?\s*(.*)$", line)
        if match:
            found[match.group(1)] = (match.group(2), match.group(3))
    return found


class TinyPlugin:
    """A throwaway General Protocol "plugin" on 127.0.0.1:0 whose answers a test decides.

    `respond(envelope, body)` gets the decoded envelope (None when the body is not JSON) and
    returns ("json", answer), ("html", status) or ("drop",). Every request is kept in `seen`.
    """

    def __init__(self, respond):
        self.respond, self.seen = respond, []
        plugin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    envelope = json.loads(body)
                except ValueError:
                    envelope = None
                plugin.seen.append((self.path, dict(self.headers), envelope))
                kind, *rest = plugin.respond(envelope, body)
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if kind == "html":
                    payload, status, content_type = b"<html><h1>Internal Server Error</h1></html>", rest[0], "text/html"
                else:
                    payload, status, content_type = json.dumps(rest[0]).encode(), 200, "application/json"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(SERVE_POLL,), daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------- call

def test_call_in_process_serves_through_dispatch_with_base_url(okx_fake, capsys):
    assert run("call", "OKX", "ticker", "symbol=BTC_USDT", "--base-url", f"okx={okx_fake.url}") == 0
    out, err = capsys.readouterr()
    assert re.search(r"^buy\s+50000$", out, re.M) and re.search(r"^sell\s+50000\.1$", out, re.M)
    assert "UTC" in out and re.search(r"OKX ticker: \d+ ms \(in-process\)", err)
    assert okx_fake.requests[0][1] == "/api/v5/market/ticker?instId=BTC-USDT"


def test_call_in_process_applies_timeout(okx_fake, capsys):
    okx_fake.inject("delay", seconds=0.6, times=2)
    assert run("call", "OKX", "ticker", "symbol=BTC_USDT", "--base-url", f"okx={okx_fake.url}",
               "--timeout", "0.1") == 1
    assert "no answer within 0.1s" in capsys.readouterr().out


def test_call_with_url_prints_depth_as_a_book(okx, capsys):
    assert run("call", "OKX", "depth", "symbol=BTC_USDT", "limit=2", "--url", okx.url) == 0
    out, err = capsys.readouterr()
    book = [line.split() for line in out.splitlines()[2:]]
    assert book == [["ask", "50000.2", "1"], ["ask", "50000.1", "0.5"], ["bid", "50000", "0.5"], ["bid", "49999.9", "1"]]
    assert f"POST {okx.url}/OKX" in err


def test_call_prints_records_as_a_table(okx, capsys):
    assert run("call", "OKX", "records", "symbol=BTC_USDT", "period=60", "limit=3", "--url", okx.url + "/OKX") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "utc", "open", "high", "low", "close", "volume"]
    assert len(lines) == 4 and all(line.split()[2].endswith(":00:00.000") for line in lines[1:])


def test_call_prints_orders_as_a_table_and_raw_on_request(okx, capsys):
    order_id = okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    assert run("call", "OKX", "orders", "symbol=ETH_USDT", "--url", okx.url, "--raw", *keys_of(okx.fake)) == 0
    out = capsys.readouterr().out
    table, raw = out.split("raw:\n")
    assert table.splitlines()[0].split() == ["id", "symbol", "amount", "price", "deal_amount", "avg_price", "type",
                                             "offset", "contract_type", "time", "utc", "status"]
    assert order_id in table and "pending" in table
    assert json.loads(raw)[0]["data"][0]["state"] == "live"


def test_call_prints_markets_by_symbol_with_plain_decimals(okx, capsys):
    assert run("call", "OKX", "markets", "--url", okx.url) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:2] == ["symbol", "base_asset"] and "key" not in header
    btc = dict(zip(header, next(line for line in lines if line.startswith("BTC_USDT ")).split()))
    assert btc["amount_size"] == "0.00000001" and btc["min_qty"] == "0.00001"


def test_call_error_exits_1_without_colour_when_not_a_terminal(okx, capsys):
    assert run("call", "OKX", "ticker", "symbol=NOPE_USDT", "--url", okx.url) == 1
    out = capsys.readouterr().out
    assert out.startswith("error: OKX 51001:") and "\033[" not in out


def test_paint_colours_a_terminal_only(monkeypatch):
    class Terminal:
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert fmz_plugin.paint("error: x", fmz_plugin.RED, Terminal()) == "\033[31merror: x\033[0m"
    monkeypatch.setenv("NO_COLOR", "1")
    assert fmz_plugin.paint("error: x", fmz_plugin.RED, Terminal()) == "error: x"


def test_call_io_with_http_method_and_keys_from_environment(okx_fake, monkeypatch, capsys):
    monkeypatch.setenv("FMZ_ACCESS_KEY", okx_fake.ACCESS_KEY)
    monkeypatch.setenv("FMZ_SECRET_KEY", okx_fake.SECRET_KEY)
    assert run("call", "OKX", "__api_/api/v5/account/balance", "--http-method", "GET",
               "--base-url", f"okx={okx_fake.url}") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["code"] == "0"
    assert okx_fake.requests[-1][:2] == ("GET", "/api/v5/account/balance")
    for secret in (okx_fake.ACCESS_KEY, *okx_fake.SECRET_KEY.split(",")):
        assert secret not in out + err


def test_call_sends_exactly_the_docker_envelope(monkeypatch, capsys):
    monkeypatch.setenv("FMZ_ACCESS_KEY", "env-access")
    monkeypatch.setenv("FMZ_SECRET_KEY", "env-secret,env-pass")
    with TinyPlugin(lambda envelope, body: ("json", {"data": True})) as plugin:
        before = time.time_ns()
        assert run("call", "Acme", "depth", "symbol=ETH_USDT", "limit=5", "--url", plugin.url,
                   "--http-method", "GET") == 0
        path, headers, envelope = plugin.seen[0]
    assert path == "/Acme" and headers["Http-Method"] == "GET"
    assert {k: v for k, v in envelope.items() if k != "nonce"} == {
        "access_key": "env-access", "secret_key": "env-secret,env-pass", "method": "depth",
        "params": {"symbol": "ETH_USDT", "limit": "5"}}
    assert isinstance(envelope["nonce"], int) and before <= envelope["nonce"] <= time.time_ns()
    assert capsys.readouterr().out.strip() == "true"


def test_call_never_prints_the_keys_even_when_a_plugin_echoes_them(capsys):
    def echo(envelope, body):
        if envelope["method"] == "ticker":
            return "json", {"error": f"bad keys {envelope['access_key']} / {envelope['secret_key']}"}
        return "json", {"data": {"key": envelope["access_key"]}, "raw": {"sent": envelope["secret_key"]}}

    keys = ["--access-key", "my-access-123", "--secret-key", "my-secret-456,my-pass-789"]
    with TinyPlugin(echo) as plugin:
        assert run("call", "X", "ticker", "symbol=BTC_USDT", "--url", plugin.url, *keys) == 1
        assert run("call", "X", "accounts", "--url", plugin.url, "--raw", *keys) == 0
    out, err = capsys.readouterr()
    assert "***" in out
    for secret in ("my-access-123", "my-secret-456", "my-pass-789"):
        assert secret not in out + err


@pytest.mark.parametrize("kind", ["refused", "drop", "html", "no data nor error"])
def test_call_connection_or_protocol_problem_exits_2(kind, capsys):
    answers = {"drop": ("drop",), "html": ("html", 502), "no data nor error": ("json", {"result": 1})}
    if kind == "refused":
        assert run("call", "OKX", "ticker", "symbol=BTC_USDT", "--url", "http://127.0.0.1:9") == 2
        assert "cannot connect" in capsys.readouterr().err
        return
    with TinyPlugin(lambda envelope, body: answers[kind]) as plugin:
        assert run("call", "OKX", "ticker", "symbol=BTC_USDT", "--url", plugin.url) == 2
    assert capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["OKX", "ticker", "symbol"],                                          # a param without =
    ["Nowhere", "ticker", "symbol=BTC_USDT"],                             # in-process: unknown exchange
    ["OKX", "ticker", "--url", "127.0.0.1:6666"],                         # not an http URL
    ["OKX", "ticker", "--url", "http://127.0.0.1:1", "--base-url", "okx=http://127.0.0.1:2"],
    ["OKX"],                                                              # no method
])
def test_call_usage_problems_exit_2(argv, capsys):
    assert run("call", *argv) == 2


# ---------------------------------------------------------------------------- check: good plugins

def test_check_passes_against_our_plugin_with_each_fake(exchange, capsys):
    url = f"{exchange.url}/{exchange.exchange}"
    assert run("check", url, "--symbol", exchange.fake.SYMBOL, "--trade", "--yes", *keys_of(exchange.fake)) == 0
    out = capsys.readouterr().out
    found = rows(out)
    assert not [name for name, (outcome, _) in found.items() if outcome == "FAIL"], out
    for name in ("ticker", "depth", "trades", "records", "accounts", "assets", "orders", "historyorders",
                 "error: malformed body", "error: missing method", "error: missing symbol",
                 "error: unknown method", "error: bad symbol",
                 "trade", "trade: order", "trade: orders", "trade: cancel", "trade: gone"):
        assert found[name][0] == "pass", (name, out)
    for name in ("markets", "tickers"):              # optional: pass when served, skip when declined
        assert found[name][0] == "pass" or "not support" in found[name][1], out
    assert not [o for o in exchange.fake.engine.orders.values() if o["status"] in ("open", "partial")]
    assert len(exchange.fake.engine.orders) == 1


def test_check_grades_a_swap_order_round_trip_with_each_fake(exchange, capsys):
    if "positions" not in fmz_plugin.EXCHANGES[exchange.exchange.lower()].METHODS:
        pytest.skip(f"{exchange.exchange} does not serve perpetual swaps")
    url = f"{exchange.url}/{exchange.exchange}"
    assert run("check", url, "--symbol", "BTC_USDT.swap", "--trade", "--yes", *keys_of(exchange.fake)) == 0
    out = capsys.readouterr().out
    found = rows(out)
    assert found["trade: order"][0] == "pass" and found["trade: gone"][0] == "pass", out
    (order,) = exchange.fake.engine.orders.values()
    assert order["status"] == "canceled"


def test_check_without_keys_skips_private_methods(okx, capsys):
    assert run("check", okx.url + "/OKX") == 0
    found = rows(capsys.readouterr().out)
    for name in ("accounts", "assets", "orders", "historyorders"):
        assert found[name][0] == "skip" and "no keys" in found[name][1]
    assert "trade" not in found


def test_check_trade_needs_confirmation(okx, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("no\n"))
    assert run("check", okx.url + "/OKX", "--trade", *keys_of(okx.fake)) == 0
    out = capsys.readouterr().out
    assert re.search(r"buy [\d.]+ BTC_USDT at 40000 \(limit\)", out) and rows(out)["trade"][0] == "skip"
    assert okx.fake.engine.orders == {}


def test_check_trade_after_typed_yes(okx, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("yes\n"))
    assert run("check", okx.url + "/OKX", "--trade", *keys_of(okx.fake)) == 0
    (order,) = okx.fake.engine.orders.values()
    assert order["status"] == "canceled" and order["price"] == 40000


def test_check_trade_cancels_even_when_cancel_first_fails(okx, capsys):
    okx.fake.inject("html", path="/api/v5/trade/cancel-order")
    assert run("check", okx.url + "/OKX", "--trade", "--yes", *keys_of(okx.fake)) == 1
    found = rows(capsys.readouterr().out)
    assert found["trade: cancel"][0] == "FAIL" and found["trade: cleanup"][0] == "pass"
    (order,) = okx.fake.engine.orders.values()
    assert order["status"] == "canceled"


def test_check_trade_finds_and_cancels_an_order_whose_answer_was_lost(okx, capsys):
    """A plugin that places the order, then drops the connection instead of answering."""
    def forward_but_drop_trade(envelope, body):
        conn = http.client.HTTPConnection(okx.url.split("//")[1], timeout=10)
        conn.request("POST", "/OKX", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        conn.close()
        return ("drop",) if envelope and envelope.get("method") == "trade" else ("json", answer)

    with TinyPlugin(forward_but_drop_trade) as plugin:
        assert run("check", plugin.url + "/OKX", "--trade", "--yes", *keys_of(okx.fake)) == 1
    found = rows(capsys.readouterr().out)
    assert found["trade"] == ("FAIL", "the connection was dropped without a complete answer")
    assert found["trade: cleanup"][0] == "pass"
    (order,) = okx.fake.engine.orders.values()
    assert order["status"] == "canceled"


def test_check_trade_treats_an_outcome_unknown_error_as_an_order_that_may_exist(okx, capsys):
    """A plugin that places the order, then answers an error (as an exchange's "outcome unknown"
    code reads): check looks for the order, reports it, and cancels it."""
    def forward_but_fail_trade(envelope, body):
        conn = http.client.HTTPConnection(okx.url.split("//")[1], timeout=10)
        conn.request("POST", "/OKX", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        conn.close()
        if envelope and envelope.get("method") == "trade":
            return ("json", {"error": "OKX 50004: API endpoint request timeout (outcome unknown)"})
        return ("json", answer)

    with TinyPlugin(forward_but_fail_trade) as plugin:
        assert run("check", plugin.url + "/OKX", "--trade", "--yes", *keys_of(okx.fake)) == 1
    found = rows(capsys.readouterr().out)
    assert found["trade"][0] == "FAIL" and found["trade: error, yet placed"][0] == "FAIL"
    assert found["trade: cleanup"][0] == "pass"
    (order,) = okx.fake.engine.orders.values()
    assert order["status"] == "canceled"


# ---------------------------------------------------------------------------- check: a broken plugin

def broken_answers(now_ms):
    """One defect per method, as plugins in the wild get them wrong."""
    order = {"id": 123, "symbol": "BTC_USDT", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
             "type": "buy", "status": "open"}
    return {
        "ticker": ("json", {"data": {"symbol": "BTC_USDT", "buy": "50001", "sell": "50000", "high": "abc",
                                     "low": 1, "open": 1, "last": 1, "vol": 1, "time": now_ms // 1000}, "raw": {}}),
        "depth": ("json", {"data": {"time": now_ms, "asks": [[50002, 1], [50001, 1]],
                                    "bids": [[49999, 1], [49998, 1]]}, "raw": {}}),
        "trades": ("json", {"data": {"id": "1", "price": 1}, "raw": {}}),
        "records": ("json", {"data": [[now_ms - i * 3_600_000, 1, 2, 0.5, 1.5, 10] for i in range(5)], "raw": {}}),
        "markets": ("json", {"error": "markets is not supported"}),
        "tickers": ("drop",),
        "accounts": ("json", {"data": [{"currency": "USDT", "free": "lots", "frozen": 0}]}),
        "assets": ("html", 500),
        "orders": ("json", {"data": [order], "raw": {}}),
        "historyorders": ("json", {"data": [], "raw": {}}),
        "nosuchmethod": ("drop",),
    }


def test_check_names_each_defect_of_a_broken_plugin(capsys):
    def respond(envelope, body):
        if envelope is None:
            return "html", 500                          # a malformed body gets an HTML error page
        if "method" not in envelope:
            return "json", {"data": "ok"}               # a missing method gets data, not an error
        return broken_answers(int(time.time() * 1000))[envelope["method"]]

    with TinyPlugin(respond) as plugin:
        assert run("check", plugin.url + "/Broken", "--access-key", "k", "--secret-key", "s") == 1
    out = capsys.readouterr().out
    found = rows(out)
    expected = {
        "ticker": ["buy 50001 > sell 50000", 'ticker.high "abc" is not a number', "looks like seconds"],
        "depth": ["depth.asks not ascending: 50001 after 50002"],
        "trades": ["trades is an object, expected a list"],
        "records": ["records time (oldest first) not ascending"],
        "tickers": ["connection was dropped"],
        "accounts": ['[0].free "lots" is not a number', "no raw"],
        "assets": ["answered HTTP 500 (text/html)"],
        "orders": ["[0].id 123 is not a non-empty string", '[0].status "open" is not one of pending, ',
                   "[0] has no time"],
        "error: malformed body": ["answered HTTP 500 (text/html)"],
        "error: missing method": ['answered data "ok"'],
        "error: missing symbol": ["answered data"],
        "error: unknown method": ["connection was dropped"],
        "error: bad symbol": ["answered data"],
    }
    for name, defects in expected.items():
        outcome, detail = found[name]
        assert outcome == "FAIL", (name, out)
        for defect in defects:
            assert defect in detail, (name, defect, detail)
    assert found["markets"] == ("skip", "error: markets is not supported")
    assert found["historyorders"][0] == "pass"
    assert "1 passed, 13 failed, 1 skipped" in out


def test_check_reports_a_plugin_that_stops_answering_after_a_bad_request(okx, capsys):
    state = {"dead": False}

    def respond(envelope, body):
        if envelope is None:
            state["dead"] = True
        if state["dead"]:
            return ("drop",)
        conn = http.client.HTTPConnection(okx.url.split("//")[1], timeout=10)
        conn.request("POST", "/OKX", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        conn.close()
        return "json", answer

    with TinyPlugin(respond) as plugin:
        assert run("check", plugin.url + "/OKX") == 1
    detail = rows(capsys.readouterr().out)["error: malformed body"][1]
    assert "a valid ticker right after got: the connection was dropped" in detail


def test_check_unreachable_plugin_exits_2(capsys):
    assert run("check", "http://127.0.0.1:9/OKX") == 2
    assert "nothing answers" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["http://127.0.0.1:6666"],                          # no exchange path
    ["127.0.0.1:6666/OKX"],                             # not a URL
    ["http://127.0.0.1:6666/OKX", "--trade"],           # --trade without keys
])
def test_check_usage_problems_exit_2(argv, monkeypatch):
    monkeypatch.delenv("FMZ_ACCESS_KEY", raising=False)
    monkeypatch.delenv("FMZ_SECRET_KEY", raising=False)
    assert run("check", *argv) == 2


# ---------------------------------------------------------------------------- check: each validator

NOW = 1_767_225_600_000            # 2026-01-01 UTC: the validators run with their clock stopped here
HOUR = 3_600_000


ORDER = {"id": "BTC-USDT,1", "symbol": "BTC_USDT", "amount": 1, "price": 1, "deal_amount": 0, "avg_price": 0,
         "type": "buy", "offset": "", "contract_type": "", "time": NOW, "status": "pending"}
SWAP_ORDER = dict(ORDER, symbol="BTC_USDT.swap", type="sell", offset="close", contract_type="swap")


def market(symbol, **fields):
    """A market with every field of the contract's MARKET, as another plugin might spell them."""
    return {"Symbol": symbol, "BaseAsset": symbol.split("_")[0], "QuoteAsset": "USDT", "TickSize": "0.1",
            "AmountSize": "0.001", "PricePrecision": 1, "AmountPrecision": 3, "MinQty": "0.001", "MaxQty": 0,
            "MinNotional": 0, "MaxNotional": 0, "CtVal": 0, "CtValCcy": "", **fields}


@pytest.mark.parametrize("validator, data, defect", [
    (fmz_plugin.ticker_problems, {"symbol": "ETH_USDT", "buy": 1, "sell": 2, "high": 2, "low": 1, "open": 1,
                                  "last": 1, "vol": 1, "time": NOW}, "is not the requested BTC_USDT"),
    (fmz_plugin.ticker_problems, {"symbol": "BTC_USDT", "buy": 1, "sell": 2, "time": NOW}, "ticker has no high"),
    (fmz_plugin.ticker_problems, {"symbol": "BTC_USDT", "buy": 1, "sell": 2, "high": 2, "low": 1, "open": 1,
                                  "last": 1, "vol": 1, "time": NOW + HOUR}, "in the future"),
    (fmz_plugin.ticker_problems, {"symbol": "BTC_USDT", "buy": 1, "sell": 2, "high": 2, "low": 1, "open": 1,
                                  "last": 1, "vol": 1, "time": NOW * 1000}, "not milliseconds"),
    (fmz_plugin.ticker_problems, {"symbol": "BTC_USDT", "buy": 1, "sell": 2, "high": 2, "low": 1, "open": 1,
                                  "last": 1, "vol": 1, "time": NOW - 2 * HOUR}, "120 minutes old"),
    (fmz_plugin.ticker_problems, [1, 2], "ticker is a list, expected an object"),
    (fmz_plugin.depth_problems, {"time": NOW, "asks": [[2, 1]], "bids": [[3, 1]]}, "best bid 3 > best ask 2"),
    (fmz_plugin.depth_problems, {"time": NOW, "asks": [[2, 1]], "bids": [[1, 1], [1.5, 1]]},
     "depth.bids not descending: 1.5 after 1"),
    (fmz_plugin.depth_problems, {"time": NOW, "asks": [{"price": 2, "amount": 1}], "bids": [[1, 1]]},
     "is not [price, amount] numbers"),
    (fmz_plugin.depth_problems, {"time": NOW, "asks": [], "bids": [[1, 1]]}, "depth.asks is an empty list"),
    (fmz_plugin.trades_problems, [{"id": "2", "time": NOW, "price": 1, "amount": 1, "type": "buy"},
                                  {"id": "1", "time": NOW - 1000, "price": 1, "amount": 1, "type": "sell"}],
     "trades time (oldest first) not ascending"),
    (fmz_plugin.trades_problems, [{"id": "1", "time": NOW, "price": 1, "amount": 1, "type": "bid"}],
     'type "bid" is not buy or sell'),
    (fmz_plugin.records_problems, [[NOW - 3 * HOUR, 1, 2, 1, 1, 1], [NOW - 2 * HOUR, 1, 2, 1, 1, 1],
                                   [NOW - HOUR + 60_000, 1, 2, 1, 1, 1]], "records spacing 3660000 ms between rows 1 and 2"),
    (fmz_plugin.records_problems, [[NOW - HOUR, 1, 0.5, 1, 1, 1]], "do not contain open and close"),
    (fmz_plugin.records_problems, [[NOW - 5 * HOUR, 1, 2, 1, 1, 1]], "more than two periods old"),
    (fmz_plugin.records_problems, [{"time": NOW}], "is not [time, open, high, low, close, volume] numbers"),
    (fmz_plugin.markets_problems, [market("ETH_USDT")], "markets has no BTC_USDT"),
    (fmz_plugin.markets_problems, {"BTC_USDT": market("BTC_USDT", TickSize=0)}, "tick size 0 is not positive"),
    (fmz_plugin.markets_problems, [{"symbol": "BTC_USDT", "tick_size": 0.1, "amount_size": 0.001, "min_qty": 0.001}],
     "markets[0] has no baseasset"),
    (fmz_plugin.tickers_problems, [{"symbol": "BTC_USDT", "buy": 2, "sell": 1}], "tickers[0]: buy 2 > sell 1"),
    (fmz_plugin.orders_problems, [{"id": "1", "symbol": "BTC_USDT", "amount": 1, "price": 1, "deal_amount": 0,
                                   "avg_price": 0, "type": "long", "status": "pending"}], '[0].type "long"'),
    (fmz_plugin.accounts_problems, {"USDT": 1}, "accounts is an object, expected a list"),
    (fmz_plugin.orders_problems, [dict(ORDER, type="closebuy")], 'orders[0].type "closebuy" is not buy or sell'),
    (fmz_plugin.orders_problems, [dict(ORDER, type="closesell")], 'orders[0].type "closesell" is not buy or sell'),
    (fmz_plugin.orders_problems, [{k: v for k, v in SWAP_ORDER.items() if k != "offset"}], "orders[0] has no offset"),
    (fmz_plugin.orders_problems, [dict(SWAP_ORDER, offset="closebuy")], 'orders[0].offset "closebuy" is not open or close'),
    (fmz_plugin.orders_problems, [dict(SWAP_ORDER, contract_type="")], "orders[0].contract_type \"\" is not swap"),
    (fmz_plugin.orders_problems, [{k: v for k, v in ORDER.items() if k != "time"}], "orders[0] has no time"),
    (fmz_plugin.orders_problems, [dict(ORDER, time=NOW // 1000)], "orders[0].time"),
    (fmz_plugin.orders_problems, [dict(ORDER, time="yesterday")], 'orders[0].time "yesterday" is not a number'),
])
def test_validators_name_the_defect(validator, data, defect, monkeypatch):
    monkeypatch.setattr(fmz_plugin, "now_ms", lambda: NOW)   # NOW was taken at collection: the clock stops there
    problems = validator(data, "BTC_USDT")
    assert any(defect in problem for problem in problems), problems


def test_validators_accept_numeric_strings_and_objects_keyed_by_symbol(monkeypatch):
    monkeypatch.setattr(fmz_plugin, "now_ms", lambda: NOW)
    ticker = {"symbol": "BTC_USDT", "buy": "1.5", "sell": "1.6", "high": "2", "low": "1", "open": "1",
              "last": "1.5", "vol": "10", "time": str(NOW)}
    assert fmz_plugin.ticker_problems(ticker, "BTC_USDT") == []
    markets = {"BTC_USDT": market("BTC_USDT")}
    assert fmz_plugin.markets_problems(markets, "BTC_USDT") == []
    assert fmz_plugin.orders_problems([ORDER, SWAP_ORDER, dict(ORDER, time=str(NOW), amount="1.5")], "BTC_USDT") == []
    spot = {k: v for k, v in ORDER.items() if k not in ("offset", "contract_type")}
    assert fmz_plugin.orders_problems([spot], "BTC_USDT") == []        # spot orders may leave them out


# ---------------------------------------------------------------------------- check: the exchange cannot be reached

class SilentExchange:
    """An exchange that accepts connections and never answers; counts the connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.sock.accept()[0])

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def assert_one_cause(out, cause):
    found = rows(out)
    assert found["exchange"][0] == "FAIL", out
    assert found["exchange"][1].startswith(f"the plugin answers, but OKX cannot be reached: {cause}"), out
    assert out.count("cannot be reached") == 1 and out.count("FAIL") == 1, out
    assert "a valid ticker right after" not in out and "ticker  " not in out
    assert found["exchange checks"][0] == "skip" and "11 skipped, they need OKX: ticker, depth, " in out
    for name in ("malformed body", "missing method", "missing symbol", "unknown method"):
        assert found["error: " + name][0] == "pass", out        # the plugin's own checks still run
    assert out.rstrip().endswith("4 passed, 1 failed, 1 skipped")


def test_check_says_once_that_the_exchange_cannot_be_reached(capsys):
    from tests.conftest import serving
    with serving({"okx": "http://127.0.0.1:9"}) as (url, _):
        assert run("check", f"{url}/OKX") == 1
    assert_one_cause(capsys.readouterr().out, "OKX: cannot reach http://127.0.0.1:9 (ConnectionRefusedError")


def test_check_against_a_silent_exchange_waits_once(capsys):
    from tests.conftest import serving
    silent = SilentExchange()
    try:
        with serving({"okx": silent.url}, timeout=5.0) as (url, _):
            assert run("check", f"{url}/OKX", "--timeout", "0.5") == 1
            assert len(silent.accepted) <= 2          # the one ticker (and its retry): nothing else waited
    finally:
        silent.close()
    assert_one_cause(capsys.readouterr().out, "no answer to ticker within 0.5s")


def test_check_default_wait_is_a_few_seconds():
    assert fmz_plugin.parse_check_args(["http://127.0.0.1:6666/OKX"]).timeout == fmz_plugin.CHECK_TIMEOUT <= 10


def test_one_failed_read_is_not_an_unreachable_exchange(okx, capsys):
    okx.fake.inject("drop_before", path="/api/v5/market/ticker", times=2)    # the ticker and its retry
    run("check", f"{okx.url}/OKX")
    out = capsys.readouterr().out
    assert "cannot be reached" not in out and rows(out)["depth"][0] == "pass", out
