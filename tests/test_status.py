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
    """Two good tickers, one refused by the exchange (an exchange error), one trade refused for
    its type (a bad request): what the counters below expect."""
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
    assert {"name": "OKX", "service_address": okx.url + "/OKX", "service_addresses": [okx.url + "/OKX"]} \
        in report["exchanges"]
    assert report["status_page"] == okx.url + "/" and report["hosts"] == [okx.url]
    rows = {(row["exchange"], row["method"]): row for row in report["methods"]}
    ticker = rows["OKX", "ticker"]
    assert (ticker["calls"], ticker["errors"]) == (3, 1)
    assert ticker["last_error"].startswith("OKX 51001") and ticker["p50_ms"] >= 0
    assert (rows["OKX", "trade"]["calls"], rows["OKX", "trade"]["errors"]) == (1, 1)     # refused, counted as trade
    for secret in [okx.access_key] + okx.secret_key.split(","):
        assert secret not in body


def test_status_json_has_a_health_line_per_exchange_and_failing_methods_first(okx):
    drive(okx)
    okx.data("depth", symbol="BTC_USDT")
    report = json.loads(get(okx.url)[2])
    [health] = report["health"]
    assert health["exchange"] == "OKX" and health["state"] == "errors"      # 1 of 4 exchange calls failed
    assert (health["calls"], health["errors"], health["calls_5m"], health["errors_5m"]) == (5, 2, 5, 1)
    assert health["bad_requests_5m"] == 1 and "type" in health["last_errors"]["bad request"]["error"]
    assert health["error_rate_5m"] == 0.25 and health["failing_methods"] == ["ticker"]
    assert 0 <= health["p50_ms"] <= health["p99_ms"] and health["calls_per_minute"] == 5.0
    assert health["last_error"].startswith("OKX 51001")             # the latest exchange error
    assert abs(health["last_error_at"] - report["now"]) < 60_000 and health["last_error_age_seconds"] >= 0
    assert [row["method"] for row in report["methods"]] == ["ticker", "depth", "trade"]   # failing first
    assert [row["failing"] for row in report["methods"]] == [True, False, False]
    assert report["methods"][0]["last_error"].startswith("OKX 51001") and report["methods"][0]["p99_ms"] >= 0
    assert report["methods"][2]["last_error_kind"] == "bad request"


def test_status_page_for_a_browser(okx):
    drive(okx)
    okx.error("ticker", symbol="NOPE_USDT")
    okx.error("depth", symbol="NOPE_USDT")
    status, content_type, body = get(okx.url, "/status", accept=BROWSER)
    assert status == 200 and content_type.startswith("text/html")
    assert body.startswith("<!DOCTYPE html>") and f"<code>{okx.url}/OKX</code>" in body
    assert "<title>FAILING OKX - fmz-plugin</title>" in body                # 3 of 5 failed, the latest too
    assert f'<meta http-equiv="refresh" content="{fmz_plugin.STATUS_REFRESH}">' in body    # without script
    assert "setInterval(refresh, 5000)" in body                                           # with script
    assert "<script src" not in body and '<link rel="stylesheet"' not in body and "@import" not in body
    script = body.split("<script>")[1]
    assert "http" not in script.replace("http://www.w3.org/2000/svg", "") and '<link rel="icon" href="data:,">' in body
    card = body[body.index('<section class="card failing" id="x-OKX"><h3>OKX'):]
    card = card[:card.index("</section>")]
    assert "6 calls/min · 60.0% exchange errors · p50 " in card
    assert '<p class="line exchange">Last exchange error <time data-ms=' in card
    assert '<p class="line bad-request">1 bad request in 5 min; last <time data-ms=' in card
    ticker, depth, trade = (card.index(f"<td>{name}</td>") for name in ("ticker", "depth", "trade"))
    assert ticker < depth < trade                                         # failing methods first, the busiest first
    assert '<tr class="failing"><td>ticker</td><td class="num">4</td><td class="num">2</td>' in card
    assert '<tr class="failing"><td>depth</td>' in card and '<tr class="bad"><td>trade</td>' in card
    assert "ago): OKX 51001: Instrument ID does not exist" in card
    assert '<svg data-chart="calls" data-exchange="OKX">' in card and '<svg data-chart="p99" data-exchange="OKX">' in card
    for secret in [okx.access_key] + okx.secret_key.split(","):
        assert secret not in body


def test_status_page_before_any_call_says_so(okx):
    body = get(okx.url, "/", accept=BROWSER)[2]
    assert "No call yet" in body and "<title>fmz-plugin</title>" in body and "not called yet" in body


def test_status_json_on_request_from_a_browser(okx):
    status, content_type, body = get(okx.url, "/status?format=json", accept=BROWSER)
    assert content_type.startswith("application/json") and json.loads(body)["name"] == "fmz-plugin"


def test_an_error_shows_its_time_and_age():
    assert fmz_plugin.age_text(5_000) == "5 s ago" and fmz_plugin.age_text(185_000) == "3 min ago"
    assert fmz_plugin.age_text(7_300_000) == "2 h ago" and fmz_plugin.age_text(3 * 86_400_000) == "3 days ago"
    entry = {"last_error_at": 1_700_000_000_000, "last_error": "OKX 50011: slow down"}
    assert fmz_plugin.last_error_line(entry, 1_700_000_120_000) == \
        "last error 22:13:20 UTC (2 min ago): OKX 50011: slow down"


def test_recent_counts_forget_what_is_older_than_the_window():
    recent = fmz_plugin.RecentCounts(("calls", "errors"), window=300)
    recent.add(1000.0, "calls")
    recent.add(1000.5, "calls", "errors")
    recent.add(1200.0, "calls", "errors")
    assert recent.totals(1200.0) == {"calls": 3, "errors": 2}
    assert recent.totals(1301.0) == {"calls": 1, "errors": 1}
    assert recent.totals(1501.0) == {"calls": 0, "errors": 0} and not recent.seconds


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
    assert stats.rows()[0]["p50_ms"] == 2.0 and stats.rows()[0]["p99_ms"] == 100.0


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
    assert tables_of(first)[1]["Exchanges: methods"]["rows"] == []
    okx = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
    drive(okx)
    okx.error("ticker", symbol="NOPE_USDT")
    text, tables = tables_of(fmz.tick())
    assert re.fullmatch(r"fmz-plugin \S+, up \d+h\d\dm\d\ds, FAILING: OKX", text)     # 2 of 3 failed, the latest too
    calls = tables["Exchanges: methods"]
    assert calls["type"] == "table" and calls["cols"] == ["Exchange", "Method", "Calls", "Errors", "Last error", "p50 ms",
                                                          "p99 ms", "Errors, 5 min"]
    assert tables["Exchanges"]["rows"][0][:2] == ["OKX", "FAILING"]
    [health] = tables["Exchanges: health"]["rows"]
    assert health[0] == "OKX" and " calls/min · 50.0% exchange errors · p50 " in health[1]
    assert health[2].startswith("last error ") and health[3].startswith("1 bad request in 5 min; last ")
    rows = {(row[0], row[1]): row for row in calls["rows"]}
    assert rows["OKX", "ticker"][2:4] == [4, 2] and rows["OKX", "ticker"][4].startswith("OKX 51001")
    assert ["OKX", url + "/OKX"] in tables["Service addresses"]["rows"]
    assert fmz.slept and all(ms == fmz_plugin.STATUS_EVERY * 1000 for ms in fmz.slept)
    logged = []
    while not fmz.logs.empty():
        logged.append(fmz.logs.get())
    assert any("OKX ticker NOPE_USDT" in line and "error: OKX 51001" in line for line in logged)   # error lines
    assert not any("OKX ticker BTC_USDT" in line for line in logged)    # go through FMZ's Log; others at debug
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


# ---------------------------------------------------------------------------- the page on a port browsers open

def refused_port_free_here():
    """A port browsers refuse that nothing listens on here (6666 may be taken on a shared machine)."""
    for port in (6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("every browser-refused port is taken here")


def test_on_a_port_browsers_refuse_the_page_is_also_served_on_one_they_open():
    port = refused_port_free_here()
    server = fmz_plugin.listening("127.0.0.1", port, fmz_plugin.Settings())
    try:
        page_port = server.status_page.server_address[1]
        assert page_port > port and page_port not in fmz_plugin.BROWSER_REFUSED_PORTS
        text = fmz_plugin.banner(server, server.settings)
        assert f"\nStatus page: http://127.0.0.1:{page_port}/" in text
        page_url = f"http://127.0.0.1:{page_port}"
        report = json.loads(get(page_url)[2])
        assert report["status_page"] == page_url + "/" and report["exchanges"][0]["service_address"] == \
            f"http://127.0.0.1:{port}/OKX"                          # the protocol's port, not the page's
        client = PluginClient(page_url, "OKX", "k", "s,p")
        assert f"served at http://127.0.0.1:{port}/<Exchange>" in client.error("ticker", symbol="BTC_USDT")
    finally:
        fmz_plugin.close(server)
    assert refused(page_url)


def test_status_port_flag():
    assert fmz_plugin.parse_args([]).status_port is None
    assert fmz_plugin.parse_args(["--status-port", "0"]).status_port == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = fmz_plugin.listening("127.0.0.1", 0, fmz_plugin.Settings(), status_port=free)
    try:
        assert server.status_page.server_address[1] == free
        assert f"Status page: http://127.0.0.1:{free}/" in fmz_plugin.banner(server, server.settings)
    finally:
        fmz_plugin.close(server)
    server = fmz_plugin.listening("127.0.0.1", 0, fmz_plugin.Settings())       # a port browsers open: no second one
    try:
        assert server.status_page is None
        assert fmz_plugin.banner(server, server.settings).endswith(f"Status page: {fmz_plugin.server_url(server)}/")
    finally:
        fmz_plugin.close(server)
    for asked, words in [(6667, "browsers refuse that port too"), ]:
        with pytest.raises(fmz_plugin.StartupError, match=words):
            fmz_plugin.listening("127.0.0.1", 0, fmz_plugin.Settings(), status_port=asked)


def test_a_status_port_taken_names_the_flag():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        with pytest.raises(fmz_plugin.StartupError, match=f"port {taken} is already in use.*--status-port "):
            fmz_plugin.listening("127.0.0.1", 0, fmz_plugin.Settings(), status_port=taken)


# ---------------------------------------------------------------------------- every address: 0.0.0.0

def test_banner_for_every_address_lists_real_ones_and_warns_without_allow(monkeypatch):
    monkeypatch.setattr(fmz_plugin, "machine_addresses", lambda ipv6=False: ["192.168.1.20", "10.8.0.2"])
    server = fmz_plugin.Server(("0.0.0.0", 0))
    port = server.server_address[1]
    try:
        text = fmz_plugin.banner(server, fmz_plugin.Settings())
        allowed = fmz_plugin.banner(server, fmz_plugin.Settings(allow=["192.168.1.0/24"]))
        report = fmz_plugin.status_report(server)
    finally:
        server.server_close()
    assert "0.0.0.0:" not in text and "0.0.0.0/" not in text
    assert f"  OKX        http://192.168.1.20:{port}/OKX" in text
    assert f"The same paths at http://10.8.0.2:{port}/, http://127.0.0.1:{port}/" in text
    assert "Warning: --allow is missing" in text and "Warning" not in allowed
    assert report["hosts"] == [f"http://192.168.1.20:{port}", f"http://10.8.0.2:{port}", f"http://127.0.0.1:{port}"]
    assert report["status_page"] == f"http://127.0.0.1:{port}/"


def test_machine_addresses_are_never_loopback_or_unspecified():
    for address in fmz_plugin.machine_addresses(ipv6=True):
        assert not address.startswith("127.") and address not in ("0.0.0.0", "::", "::1")


# ---------------------------------------------------------------------------- status in a terminal

def test_status_command_prints_the_report(okx, capsys):
    drive(okx)
    assert fmz_plugin.run(["status", okx.url + "/OKX"]) == 0           # a service address works too
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"fmz-plugin {fmz_plugin.__version__}, up ") and f"status page {okx.url}/" in lines[0]
    assert any(line.startswith("OKX  exchange errors  ") and "33.3% exchange errors" in line for line in lines)
    assert any(line.startswith("  last error ") for line in lines)
    assert any(line.startswith("  1 bad request in 5 min; last ") for line in lines)
    assert [line.split()[1] for line in lines if line.startswith("  !")] == ["ticker"]
    assert lines[lines.index("Exchanges") + 1].split() == " ".join(fmz_plugin.SUMMARY_COLUMNS).split()
    assert lines[lines.index("Exchanges") + 2].split()[:4] == ["OKX", "exchange", "errors", "4"]
    assert f"  OKX        {okx.url}/OKX" in lines
    for secret in [okx.access_key] + okx.secret_key.split(","):
        assert secret not in out


def test_status_command_when_nothing_answers(capsys):
    assert fmz_plugin.run(["status", "http://127.0.0.1:9/"]) == 2
    assert "nothing answers" in capsys.readouterr().err
