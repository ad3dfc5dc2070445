"""What a person sees: GET / and GET /status (JSON, or HTML for a browser), the per-method
counters dispatch keeps, and FMZ live-strategy mode (main() with FMZ's Log, LogStatus and
Sleep injected as globals, as FMZ does), simulated in a thread."""
import http.client
import json
import queue
import re
import socket
import threading

import pytest

import fmz_plugin
from tests.conftest import PluginClient

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def get(url, path="/", accept="*/*"):
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers={"Accept": accept})
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, response.getheader("Content-Type"), body


def drive(okx):
    """Two good tickers, one refused by the exchange, one trade refused for its type: what the
    counters below expect."""
    okx.data("ticker", symbol="BTC_USDT")
    okx.data("ticker", symbol="ETH_USDT")
    okx.error("ticker", symbol="NOPE_USDT")
    okx.error("trade", symbol="BTC_USDT", type="hold", price="1", amount="1")


@pytest.mark.parametrize("path", ["/", "/status", "/status/", "/?x=1"])
def test_status_json_counts_calls_and_never_shows_a_key(okx, path):
    drive(okx)
    status, content_type, body = get(okx.url, path)
    assert status == 200 and content_type.startswith("application/json")
    report = json.loads(body)
    assert report["name"] == "fmz-plugin" and report["version"] == fmz_plugin.__version__
    assert isinstance(report["uptime_seconds"], int)
    assert {"name": "OKX", "service_address": okx.url + "/OKX"} in report["exchanges"]
    rows = {(row["exchange"], row["method"]): row for row in report["methods"]}
    ticker = rows["OKX", "ticker"]
    assert (ticker["calls"], ticker["errors"]) == (3, 1)
    assert ticker["last_error"].startswith("OKX 51001") and ticker["p50_ms"] >= 0
    assert (rows["OKX", "trade"]["calls"], rows["OKX", "trade"]["errors"]) == (1, 1)     # refused, counted as trade
    for secret in [okx.access_key] + okx.secret_key.split(","):
        assert secret not in body


def test_status_page_for_a_browser(okx):
    drive(okx)
    status, content_type, body = get(okx.url, "/status", accept=BROWSER)
    assert status == 200 and content_type.startswith("text/html")
    assert body.startswith("<!DOCTYPE html>") and f"{okx.url}/OKX" in body
    assert "<td>ticker</td><td>3</td><td>1</td><td>OKX 51001" in body
    for secret in [okx.access_key] + okx.secret_key.split(","):
        assert secret not in body


def test_other_get_paths_still_answer_the_protocol_error(okx):
    status, content_type, body = get(okx.url, "/OKX", accept=BROWSER)
    assert content_type.startswith("application/json") and "POST" in json.loads(body)["error"]


@pytest.mark.parametrize("accept, html", [
    (BROWSER, True), ("text/html", True), ("*/*", False), ("", False), ("application/json", False),
    ("text/html;q=0.5, application/json", False), ("application/json;q=0.1, text/*", True),
    ("text/html;q=bad", False),
])
def test_prefers_html_only_when_html_ranks_above_json(accept, html):
    assert fmz_plugin.prefers_html(accept) is html


def test_dispatch_counts_io_and_ignores_unknown_exchanges():
    stats = fmz_plugin.Stats()
    envelope = {"access_key": "k", "secret_key": "s,p", "method": "__api_/../x", "params": {}}
    fmz_plugin.dispatch("OKX", envelope, "GET", stats=stats)
    fmz_plugin.dispatch("Nowhere", envelope, "GET", stats=stats)
    fmz_plugin.dispatch("okx", dict(envelope, method="teleport"), stats=stats)
    assert [(r["exchange"], r["method"], r["calls"], r["errors"]) for r in stats.rows()] == [
        ("OKX", "(bad request)", 1, 1), ("OKX", "IO", 1, 1)]


def test_p50_is_the_median_of_recent_calls():
    stats = fmz_plugin.Stats()
    for seconds in (0.001, 0.002, 0.100):
        stats.record("OKX", "ticker", seconds)
    assert stats.rows()[0]["p50_ms"] == 2.0


# ---------------------------------------------------------------------------- FMZ live-strategy mode

class StrategyStopped(Exception):
    """What FMZ's Sleep raises when the robot is stopped."""


class FakeFMZ:
    """FMZ's runtime as a strategy sees it: Log, LogStatus, Sleep and the strategy parameters
    set as globals of the strategy's file. Sleep waits for the test: `tick()` lets main()
    loop once, `stop()` makes Sleep raise as FMZ does when the robot is stopped."""

    def __init__(self, monkeypatch, **parameters):
        self.logs, self.statuses, self.ticks, self.slept = queue.Queue(), queue.Queue(), queue.Queue(), []
        self.error = None
        for name, value in dict(parameters, Log=self.Log, LogStatus=self.LogStatus, Sleep=self.Sleep).items():
            monkeypatch.setattr(fmz_plugin, name, value, raising=False)

    def Log(self, *parts):
        self.logs.put(" ".join(str(part) for part in parts))

    def LogStatus(self, text):
        self.statuses.put(text)

    def Sleep(self, milliseconds):
        self.slept.append(milliseconds)
        if self.ticks.get(timeout=30) == "stop":
            raise StrategyStopped()

    def run_main(self, **kwargs):
        def target():
            try:
                fmz_plugin.main(**kwargs)
            except Exception as error:
                self.error = error
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        banner = self.logs.get(timeout=30)
        return re.search(r"listening on (http://\S+)", banner).group(1)

    def tick(self):
        self.ticks.put("tick")
        return self.statuses.get(timeout=30)

    def stop(self):
        self.ticks.put("stop")
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def tables_of(status):
    """FMZ's LogStatus table format: a line of text, then "`" + JSON table(s) + "`"."""
    text, _, rest = status.partition("\n`")
    assert rest.endswith("`")
    return text, {table["title"]: table for table in json.loads(rest[:-1])}


def refused(url):
    host, port = url.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError:
        return True
    return False


def test_main_serves_shows_the_status_table_and_stops_with_fmz(okx_fake, monkeypatch):
    fmz = FakeFMZ(monkeypatch, Address="127.0.0.1", Port=0, BaseUrls=f"okx={okx_fake.url}", LogLevel="info")
    url = fmz.run_main()
    first = fmz.statuses.get(timeout=30)
    assert tables_of(first)[1]["Calls"]["rows"] == []
    okx = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
    drive(okx)
    text, tables = tables_of(fmz.tick())
    assert re.fullmatch(r"fmz-plugin \S+, up \d+h\d\dm\d\ds", text)
    calls = tables["Calls"]
    assert calls["type"] == "table" and calls["cols"] == ["Exchange", "Method", "Calls", "Errors", "Last error", "p50 ms"]
    rows = {(row[0], row[1]): row for row in calls["rows"]}
    assert rows["OKX", "ticker"][2:4] == [3, 1] and rows["OKX", "ticker"][4].startswith("OKX 51001")
    assert ["OKX", url + "/OKX"] in tables["Service addresses"]["rows"]
    assert fmz.slept and all(ms == fmz_plugin.STATUS_EVERY * 1000 for ms in fmz.slept)
    logged = []
    while not fmz.logs.empty():
        logged.append(fmz.logs.get())
    assert any("OKX ticker BTC_USDT" in line for line in logged)        # request lines go through FMZ's Log
    for secret in okx_fake.SECRET_KEY.split(",") + [okx_fake.ACCESS_KEY]:
        assert all(secret not in line for line in logged)
    fmz.stop()
    assert isinstance(fmz.error, StrategyStopped)
    assert refused(url)
    assert not fmz_plugin.log.handlers and fmz_plugin.log.propagate     # logging as it was


def test_main_returns_when_its_stop_event_is_set(monkeypatch):
    fmz = FakeFMZ(monkeypatch, Port=0)
    stop = threading.Event()
    url = fmz.run_main(stop=stop)
    fmz.statuses.get(timeout=30)
    stop.set()
    fmz.ticks.put("tick")
    fmz.thread.join(timeout=30)
    assert not fmz.thread.is_alive() and fmz.error is None and refused(url)


def test_a_wrong_strategy_parameter_is_said_in_fmz_log(monkeypatch):
    fmz = FakeFMZ(monkeypatch, Port="six")
    with pytest.raises(SystemExit):
        fmz_plugin.main()
    assert fmz.logs.get_nowait() == ("fmz-plugin cannot start: strategy parameter Port: wants a port from 1 to 65535 "
                                     "(or 0: any free port), got 'six'")


@pytest.mark.parametrize("parameters, argv", [
    ({}, ["--log-level", "warning"]),
    ({"Address": "0.0.0.0", "Port": 7000.0, "Timeout": 2.5, "LogLevel": "", "Other": 1},
     ["--log-level", "warning", "--address", "0.0.0.0", "--port", "7000", "--timeout", "2.5"]),
    ({"BaseUrls": "okx=https://my.okx.com, binance=https://api1.binance.com"},
     ["--log-level", "warning", "--base-url", "okx=https://my.okx.com", "--base-url", "binance=https://api1.binance.com"]),
])
def test_strategy_parameters_become_the_command_line(parameters, argv):
    assert fmz_plugin.strategy_argv(parameters) == argv
