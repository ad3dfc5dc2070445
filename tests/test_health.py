"""An exchange's health on the status (#26): only exchange errors of the last 5 minutes make its
state, it recovers as calls succeed, it is idle without calls; bad requests, refusals of the
risk guard and of the throttle are counted apart. Driven by a fake clock: no sleeping."""
import json

import pytest

import fmz_plugin
from fmz_plugin import BAD_REQUEST_ERROR, EXCHANGE_ERROR, RISK_REFUSAL, THROTTLED, PluginError
from tests.test_status import get


class Clock:
    """Stats' two clocks: monotonic seconds and the wall clock, moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def wall(self):
        return 1_700_000_000 + self.now


@pytest.fixture
def stats():
    clock = Clock()
    stats = fmz_plugin.Stats(clock=clock.monotonic, wall=clock.wall)
    stats.time = clock
    return stats


def health(stats, exchange="OKX"):
    return {entry["exchange"]: entry for entry in fmz_plugin.exchange_health(stats, stats.rows())}[exchange]


def calls(stats, count, error=None, kind=EXCHANGE_ERROR, method="ticker", exchange="OKX"):
    for _ in range(count):
        stats.record(exchange, method, 0.01, error, kind)


def test_calls_that_succeed_are_ok(stats):
    calls(stats, 3)
    assert health(stats)["state"] == "ok"


def test_exchange_errors_make_it_failing_and_successes_recover_it(stats):
    calls(stats, 2)
    calls(stats, 3, "OKX: cannot reach https://www.okx.com")
    assert health(stats)["state"] == "failing"                     # 3 of 5 failed, the latest too
    calls(stats, 1)
    entry = health(stats)
    assert entry["state"] == "errors" and entry["errors_5m"] == 3    # recovering: the latest succeeded
    stats.time.now += fmz_plugin.HEALTH_WINDOW + 1
    calls(stats, 1)
    assert health(stats)["state"] == "ok"                           # 5 minutes later, no exchange error


def test_a_few_exchange_errors_among_many_successes_are_errors_not_failing(stats):
    calls(stats, 10)
    calls(stats, 1, "OKX 50011: Too Many Requests")
    entry = health(stats)
    assert entry["state"] == "errors" and entry["error_rate_5m"] == pytest.approx(1 / 11, abs=1e-4)


def test_no_call_in_five_minutes_is_idle_not_failing(stats):
    calls(stats, 3, "OKX: no answer within 10s for GET /api/v5/market/ticker")
    assert health(stats)["state"] == "failing"
    stats.time.now += fmz_plugin.HEALTH_WINDOW + 1
    entry = health(stats)
    assert entry["state"] == "idle" and entry["calls_5m"] == 0
    assert entry["last_error"].startswith("OKX: no answer")         # still shown, with its age


@pytest.mark.parametrize("kind, field", [(BAD_REQUEST_ERROR, "bad_requests_5m"), (RISK_REFUSAL, "refusals_5m"),
                                         (THROTTLED, "throttled_5m")])
def test_bad_requests_and_refusals_never_make_an_exchange_fail(stats, kind, field):
    calls(stats, 1)
    calls(stats, 5, "refused", kind, method="trade")
    entry = health(stats)
    assert entry["state"] == "ok" and entry["errors_5m"] == 0 and entry["error_rate_5m"] == 0
    assert entry[field] == 5 and entry["last_errors"][kind]["error"] == "refused"
    assert entry["failing_methods"] == [] and entry["last_error"] == ""
    calls(stats, 2, "refused", kind, method="trade")                  # only those in 5 minutes
    assert health(stats)["state"] == "ok"


def test_only_bad_requests_in_five_minutes_is_ok(stats):
    calls(stats, 2, "unknown method: tiker", BAD_REQUEST_ERROR, method=fmz_plugin.BAD_REQUEST)
    assert health(stats)["state"] == "ok"


def test_the_worst_state_comes_first(stats):
    calls(stats, 5, exchange="Bybit")
    calls(stats, 1, "Binance -1003: Too many requests", exchange="Binance")
    calls(stats, 20, exchange="OKX")
    calls(stats, 1, "OKX 51001: Instrument ID does not exist", exchange="OKX")
    calls(stats, 1, exchange="OKX")
    states = [(h["exchange"], h["state"]) for h in fmz_plugin.exchange_health(stats, stats.rows())]
    assert states == [("Binance", "failing"), ("OKX", "errors"), ("Bybit", "ok")]


@pytest.mark.parametrize("error, asked, headers, kind", [
    (PluginError("unknown method: tiker"), False, (), BAD_REQUEST_ERROR),
    (PluginError("OKX 51001: Instrument ID does not exist", code="51001"), True, (), EXCHANGE_ERROR),
    (PluginError("OKX 51001: Instrument ID does not exist", code="51001"), True, ("Fmz-Check",), BAD_REQUEST_ERROR),
    (PluginError("risk guard: order value 12,000 USDT over max_order_value 5,000 (OKX, risk.json)"), True, (),
     RISK_REFUSAL),
    (PluginError("OKX GET /x: not sent, ... held back by this plugin", rate_limited=True), True, (), THROTTLED),
    (PluginError("OKX rate limit reached for GET /x", code="50011", rate_limited=True), True, (), EXCHANGE_ERROR),
    (PluginError("OKX: no answer within 10s", ambiguous=True), True, (), EXCHANGE_ERROR),
    (PluginError("BloFin serves perpetual swaps only: BTC_USDT is a spot symbol, use BTC_USDT.swap"), True, (),
     BAD_REQUEST_ERROR),                                    # the module refused it before asking
    (PluginError("OKX keys: access_key must be the API key and ..."), True, (), BAD_REQUEST_ERROR),
])
def test_what_kind_an_error_is(error, asked, headers, kind):
    assert fmz_plugin.error_kind(error, asked, headers) == kind


def test_dispatch_counts_unknown_methods_and_bad_params_as_bad_requests():
    stats = fmz_plugin.Stats()
    envelope = {"access_key": "k", "secret_key": "s,p", "params": {"symbol": "BTC_USDT"}}
    fmz_plugin.dispatch("OKX", dict(envelope, method="tiker"), stats=stats)
    fmz_plugin.dispatch("OKX", dict(envelope, method="trade", params={"symbol": "BTC_USDT", "type": "hold"}),
                        stats=stats)
    fmz_plugin.dispatch("OKX", dict(envelope, method="positions"), stats=stats)     # a swap method on spot
    kinds = {(row["method"], row["last_error_kind"], row["bad_requests_5m"], row["failing"]) for row in stats.rows()}
    assert kinds == {("(bad request)", BAD_REQUEST_ERROR, 1, False), ("trade", BAD_REQUEST_ERROR, 1, False),
                     ("positions", BAD_REQUEST_ERROR, 1, False)}
    assert health(stats)["state"] == "ok"


def test_one_check_run_leaves_the_exchange_ok(okx, capsys):
    """`check` sends bad requests on purpose (one the exchange answers, a bad symbol): they are
    counted as bad requests, and the exchange it checked stays ok."""
    okx.data("ticker", symbol="BTC_USDT")
    fmz_plugin.run(["check", okx.url + "/OKX", "--access-key", okx.access_key, "--secret-key", okx.secret_key])
    capsys.readouterr()
    [entry] = json.loads(get(okx.url)[2])["health"]
    assert entry["state"] == "ok" and entry["errors_5m"] == 0 and entry["bad_requests_5m"] >= 3, entry


def test_the_timeline_counts_each_minute_of_the_last_hour(stats):
    stats.time.now = 60 * 1000.0 - 1_700_000_000 % 60     # a minute starts on the wall clock
    calls(stats, 3)
    calls(stats, 1, "OKX 50001: Service temporarily unavailable")
    stats.time.now += 60
    calls(stats, 2, "unknown method: tiker", BAD_REQUEST_ERROR)
    series = health(stats)["timeline"]
    assert len(series["calls"]) == fmz_plugin.TIMELINE_MINUTES
    assert series["calls"][-2:] == [4, 2] and series["exchange_errors"][-2:] == [1, 0]
    assert series["bad_requests"][-2:] == [0, 2] and series["calls"][:-2] == [0] * 58
    assert series["p99_ms"][-2:] == [10.0, None]                    # bad requests never asked the exchange
    assert series["start"] == (int(stats.time.wall() // 60) - 59) * 60_000
    stats.time.now += 60 * 60
    assert health(stats)["timeline"]["calls"] == [0] * 60           # an hour later: forgotten


def test_the_p99_of_a_minute_is_that_of_its_calls():
    minute = fmz_plugin.Minute(0)
    for ms in range(1, 201):
        minute.add(ms / 1000, None)
    assert minute.p99_ms() == 198.0
    minute.close()
    assert minute.p99_ms() == 198.0 and minute.times is None       # once over, its p99 alone is kept
