"""One report, three renderings (#26): the status page, `status` in a terminal and FMZ's status
table carry the same sections in the same order; the summary line of every exchange, the
charts' data and the rate-limit use per exchange and key are in the JSON; `status | head` ends
without a traceback."""
import hashlib
import html
import json
import os
import re
import subprocess
import sys

import pytest

import fmz_plugin
from exchanges._risk import RiskGuard
from exchanges._throttle import Limit, Refused, Throttle
from tests.conftest import ROOT, PluginClient, serving
from tests.test_status import BROWSER, get, tables_of
from tests.test_throttle import FakeClock

NAMES = {module.NAME.lower(): module.NAME for module in fmz_plugin.EXCHANGES.values()}


def html_sections(page):
    keys = re.findall(r'<section data-section="(\w+)">', page)
    for key in keys:
        assert f"<h2>{fmz_plugin.SECTIONS[key]}</h2>" in page
    return [fmz_plugin.SECTIONS[key] for key in keys]


def text_sections(text):
    return [line for line in text.splitlines() if line in fmz_plugin.SECTIONS.values()]


def table_sections(status):
    return [table["title"] for table in json.loads(status.partition("\n`")[2][:-1])
            if table["title"] in fmz_plugin.SECTIONS.values()]


@pytest.fixture
def served(okx_fake, tmp_path):
    """A plugin in this process serving the OKX fake, with risk rules and a kill switch."""
    guard = RiskGuard(NAMES, text='{"OKX": {"max_order_value": 100}}', halt_file=str(tmp_path / "halt"))
    with serving({"okx": okx_fake.url}, risk=guard) as (url, server):
        server.settings.paper = fmz_plugin._paper.Ledger(str(tmp_path / "paper.db"))
        client = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
        client.server, client.guard = server, guard
        yield client


def drive(client):
    client.data("ticker", symbol="BTC_USDT")
    client.error("tiker", symbol="BTC_USDT")
    client.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.1")     # over the rules
    PluginClient(client.url, "OKX", "paper", "USDT=1000").data("accounts")


def test_the_three_renderings_carry_the_same_sections_in_the_same_order(served):
    drive(served)
    report = fmz_plugin.status_report(served.server)
    expected = [fmz_plugin.SECTIONS[key] for key in fmz_plugin.section_order(report)]
    assert expected == ["Exchanges", "Streams", "Risk guard", "PAPER accounts", "Service addresses",
                        "What the docker sent"]
    assert html_sections(fmz_plugin.status_html(report)) == expected
    assert text_sections(fmz_plugin.status_text(report)) == expected
    assert table_sections(fmz_plugin.status_table(report)) == expected


def test_the_risk_guard_comes_first_in_the_three_when_it_alarms(served):
    drive(served)
    open(served.guard.halt_file, "w").close()
    report = fmz_plugin.status_report(served.server)
    expected = ["Risk guard", "Exchanges", "Streams", "PAPER accounts", "Service addresses", "What the docker sent"]
    page = fmz_plugin.status_html(report)
    assert html_sections(page) == expected and "<title>HALTED - fmz-plugin</title>" in page
    assert text_sections(fmz_plugin.status_text(report)) == expected
    assert table_sections(fmz_plugin.status_table(report)) == expected


def test_refused_connections_are_said_in_the_three(served):
    served.server.refused_counts["max connections"] = 1200
    report = fmz_plugin.status_report(served.server)
    said = f"Refused 1,200 connections: 1,200 over --max-connections {report['connections']['max']} (open now: "
    for rendering in (fmz_plugin.status_html(report), fmz_plugin.status_text(report), fmz_plugin.status_table(report)):
        assert said in rendering


def test_each_section_says_the_same_in_the_three(served):
    drive(served)
    report = fmz_plugin.status_report(served.server)
    page, text, table = (fmz_plugin.status_html(report), fmz_plugin.status_text(report),
                         fmz_plugin.status_table(report))
    refusal = "risk guard: order value 4,000 USDT over max_order_value 100 (OKX, Risk parameter)"
    paper_account = fmz_plugin._paper.shown_name("USDT=1000")      # a digest of its Secret Key, never the text
    for said in ["Rules of Risk parameter for OKX.", "1 bad request in 5 min", fmz_plugin.NO_STREAM, paper_account]:
        assert said in html.unescape(page) and said in text and (said in table or said.startswith("Rules")), said
    for rendering in (html.unescape(page), text, table):
        assert refusal in rendering and "1 refused by the risk guard in 5 min" in rendering
        assert served.access_key not in rendering and "USDT=1000" not in rendering


def test_no_risk_rules_says_so_in_plain_words(okx_fake, tmp_path):
    guard = RiskGuard(NAMES, halt_file=str(tmp_path / "halt"))
    with serving({"okx": okx_fake.url}, risk=guard) as (url, server):
        report = fmz_plugin.status_report(server)
    assert fmz_plugin.risk_rules_text(report["risk"]) == "No risk rules (--risk FILE or --risk-json): the kill switch alone."
    assert "Rules of" not in fmz_plugin.status_html(report) and "for none" not in fmz_plugin.status_text(report)


def test_the_summary_has_a_line_for_every_exchange(served):
    drive(served)
    report = json.loads(get(served.url)[2])
    summary = {row["exchange"]: row for row in report["summary"]}
    assert list(summary)[:2] == ["OKX", "OKX paper"] and set(summary) == {"OKX", "OKX paper"} | set(NAMES.values())
    okx = summary["OKX"]
    assert okx["state"] == "ok" and okx["calls_per_minute"] == 3.0 and okx["error_rate_5m"] == 0.0
    assert okx["bad_requests_5m"] == 1 and okx["refusals_5m"] == 1 and okx["stream"] == "none"
    assert okx["p50_ms"] > 0 and okx["rate_limit_pct"] is None          # the test plugin runs unthrottled
    assert summary["Bybit"] == {"exchange": "Bybit", "state": "unused", "calls_per_minute": 0.0, "error_rate_5m": 0.0,
                                "p50_ms": None, "p99_ms": None, "bad_requests_5m": 0, "refusals_5m": 0,
                                "stream": "none", "rate_limit_pct": None, "rate_limit": ""}
    page = get(served.url, accept=BROWSER)[2]
    assert '<tr class="unused"><td>Bybit</td><td class="state"><span class="dot"></span>not called yet</td>' in page


def test_the_page_draws_its_charts_from_the_timelines_in_the_json(served):
    drive(served)
    report = fmz_plugin.status_report(served.server)
    page = fmz_plugin.status_html(report)
    timelines = json.loads(re.search(r'<script type="application/json" id="timelines">(.*?)</script>', page).group(1))
    assert timelines == {h["exchange"]: h["timeline"] for h in report["health"]}
    okx = timelines["OKX"]
    assert sum(okx["calls"]) == 3 and sum(okx["bad_requests"]) == 1 and sum(okx["refusals"]) == 1
    assert okx["p99_ms"][-1] > 0 and len(okx["p99_ms"]) == fmz_plugin.TIMELINE_MINUTES
    assert 'data-chart="calls" data-exchange="OKX paper"' in page and "function calls(svg, t)" in page


def test_timelines_in_the_page_cannot_end_its_script():
    report_like = {"health": [{"exchange": "</script><b>", "timeline": {}}]}
    assert "</script><b>" not in json.dumps(report_like).replace("</", "<\\/")


# ---------------------------------------------------------------------------- rate-limit use

def test_rate_limit_use_names_the_fullest_budget_and_counts_waits_and_refusals():
    clock = FakeClock()
    throttle = Throttle(max_wait=20.0, margin=0.0, clock=clock, wait=clock.wait)
    use = fmz_plugin.RateUse(clock=clock)
    watched = fmz_plugin.Watched(throttle, use)
    orders, weight = Limit(4, 10.0), Limit(100, 60.0, per="ip", pool="request weight")
    key = lambda limit, who: ("OKX", "https://x", (who, ""), limit.pool or "POST /api/v5/trade/order")
    for _ in range(8):                                  # the fifth waits 10 s for its turn, then 4 in 10 s
        watched.turn([(key(orders, "KEY-1"), orders, 1), (key(weight, ""), weight, 5)], "OKX POST /o",
                     urgent=True).done()            # orders: the window alone holds them, no pacing
    with pytest.raises(Refused):
        watched.turn([(key(orders, "KEY-1"), orders, 1)], "OKX POST /o", max_wait=0, urgent=True)
    rows = use.report(throttle)
    digest = "key #" + hashlib.sha256(b"KEY-1").hexdigest()[:8]
    assert rows == [
        {"exchange": "OKX", "key": "IP", "used_pct": 40.0, "budget": "100 request weight per 60 s per IP",
         "waited_5m": 1, "refused_5m": 0},
        {"exchange": "OKX", "key": digest, "used_pct": 100.0, "budget": "4 requests per 10 s (POST /api/v5/trade/order)",
         "waited_5m": 1, "refused_5m": 1}]
    assert fmz_plugin.rate_limit_line(rows[1]) == (f"{digest}: 100% of 4 requests per 10 s (POST /api/v5/trade/order) "
                                                   "in the last minute; 1 waited, 1 refused by the throttle (5 min)")
    clock.now += 61 + fmz_plugin.HEALTH_WINDOW
    assert use.report(throttle) == []                   # a quiet key leaves the status


def test_the_status_shows_rate_limit_use_per_exchange_and_key(served):
    served.server.settings.throttle = Throttle()
    for _ in range(3):
        served.data("ticker", symbol="BTC_USDT")
    served.data("accounts")
    report = json.loads(get(served.url)[2])
    rows = {row["key"]: row for row in report["rate_limits"] if row["exchange"] == "OKX"}
    digest = "key #" + hashlib.sha256(served.access_key.encode()).hexdigest()[:8]
    assert set(rows) == {"IP", digest}
    assert rows["IP"]["used_pct"] == 15.0 and rows["IP"]["budget"] == "20 requests per 2 s (GET /api/v5/market/ticker)"
    assert rows[digest]["used_pct"] == 10.0 and "GET /api/v5/account/balance" in rows[digest]["budget"]
    assert report["summary"][0]["rate_limit_pct"] == 15.0
    assert "20 requests per 2 s (GET /api/v5/market/ticker)" in report["summary"][0]["rate_limit"]
    page = get(served.url, accept=BROWSER)[2]
    assert (f'<tr><td>{digest}</td><td class="num">10%</td><td>10 requests per 2 s (GET /api/v5/account/balance)</td>'
            '<td class="num">0</td><td class="num">0</td></tr>') in page and served.access_key not in page


# ---------------------------------------------------------------------------- status in a pipe

def test_status_piped_into_head_ends_without_a_traceback(served):
    """`status | head -1`: the reader goes away; the command ends quietly."""
    drive(served)
    reader, writer = os.pipe()
    os.close(reader)                                    # the reader has gone before a line is written
    try:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), "status", served.url],
                              stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writer)
    assert done.stderr == "" and done.returncode == 1
