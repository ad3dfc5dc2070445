"""Large reads (records of thousands of candles, a deep book, every ticker at once) run at most
fmz_plugin.LARGE_READS at a time; the others wait their turn. 400 robots asking for 5,000
candles each took the process to 1.1 GB (issue #23); bounded, memory stays far under 300 MB
whatever robots ask (benchmarks/bench.py prints the figure).

These read the plugin's own counters, in this process: not run against the bundle.
"""
import threading

import pytest

import fmz_plugin
from tests.conftest import PluginClient, serving

pytestmark = pytest.mark.repo_only

CANDLES = "/api/v5/market/candles"


def test_large_reads_beyond_the_bound_wait_their_turn(okx_fake):
    bound, more = fmz_plugin.LARGE_READS, 3
    okx_fake.inject("hold", path=CANDLES, times=10_000)
    answers = []
    with serving({"okx": okx_fake.url}) as (url, server):
        server.settings.shared_reads = None              # each robot's read its own call, none joined
        def robot():
            client = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
            answers.append(client.call("records", symbol="BTC_USDT", period=1, limit=1000))
        robots = [threading.Thread(target=robot) for _ in range(bound + more)]
        for thread in robots:
            thread.start()
        okx_fake.wait_held(bound)
        fmz_plugin.LARGE_READ_TURNS.wait_waiting(more)
        assert okx_fake.held == bound                    # the others wait in the plugin, not at the exchange
        small = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
        assert small.data("ticker", symbol="BTC_USDT")   # a small read does not wait behind them
        okx_fake.release()
        for thread in robots:
            thread.join()
    assert len(answers) == bound + more and all(len(answer["data"]) == 1000 for answer in answers), answers[0]
    assert fmz_plugin.LARGE_READ_TURNS.running == 0


@pytest.mark.parametrize("method, params, large", [
    ("records", {"limit": 1000}, True), ("records", {"limit": 500}, False), ("records", {}, False),
    ("depth", {"limit": 1000}, True), ("depth", {"limit": 20}, False), ("tickers", {}, True),
    ("historyorders", {"limit": 1000}, True), ("ticker", {}, False),
])
def test_which_reads_are_large(method, params, large):
    assert fmz_plugin.is_large_read(method, params) is large


def test_a_large_read_waits_its_turn_no_longer_than_max_wait():
    """A turn that does not come within the wait a call is allowed (--max-wait) is refused as a
    throttled call is, and the line moves on without it."""
    turns = fmz_plugin.Turns(1)
    with turns.turn(1.0):
        with pytest.raises(fmz_plugin.PluginError, match=r"no turn within 0.01s \(--max-wait\)") as refused:
            with turns.turn(0.01):
                pass
        assert refused.value.rate_limited and turns.waiting == 0 and not turns.line
    with turns.turn(0.01):
        assert turns.running == 1
