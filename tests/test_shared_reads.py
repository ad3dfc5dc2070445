"""_kit.SingleFlight on its own (as SHARED_READS uses it, and keeping values as the caches do): callers asking the same thing while it is under way share one
call, its answer or its error; a caller who asks after the answer came gets a call of its own.
Threads are lined up with events, never with sleeps."""
import threading
import time

import pytest

from exchanges._kit import SHARED_READS, PluginError, SingleFlight


class Leader:
    """A call that stays under way until released, counting how often it was made."""

    def __init__(self, answer=None, error=None):
        self.answer, self.error = answer, error
        self.calls, self.started, self.release = 0, threading.Event(), threading.Event()

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        if self.error:
            raise self.error
        return self.answer


def join_while_under_way(shared, key, call, followers):
    """The leader starts `call`; `followers` threads join it; then it is released. Returns what
    each follower got (an answer or the PluginError raised) and what the leader got."""
    outcomes, lock = [], threading.Lock()

    def ask():
        try:
            outcome = shared.get(key, lambda: pytest.fail("a follower must not call"))
        except Exception as error:
            outcome = error
        with lock:
            outcomes.append(outcome)

    leader_outcome = []
    leader = threading.Thread(target=lambda: leader_outcome.append(_catch(shared.get, key, call)))
    leader.start()
    assert call.started.wait(10)
    threads = [threading.Thread(target=ask) for _ in range(followers)]
    for thread in threads:
        thread.start()
    flight, deadline = shared.flights[key], time.monotonic() + 10
    while flight.joined < followers:          # until every follower is inside get, waiting
        assert time.monotonic() < deadline, "the followers never joined"
        time.sleep(0.001)
    call.release.set()
    for thread in threads + [leader]:
        thread.join()
    return outcomes, leader_outcome[0]


def _catch(function, *args):
    try:
        return function(*args)
    except Exception as error:
        return error


def test_callers_asking_the_same_while_it_is_under_way_share_one_call():
    shared, call = SingleFlight(), Leader(answer=(200, b'{"last": "1"}', {}))
    outcomes, leader = join_while_under_way(shared, ("OKX", "url", "/ticker?instId=BTC-USDT"), call, 31)
    assert call.calls == 1
    assert outcomes == [(200, b'{"last": "1"}', {})] * 31 and leader == outcomes[0]


def test_the_error_of_a_shared_call_reaches_every_caller_who_joined_it():
    shared = SingleFlight()
    call = Leader(error=PluginError("OKX 51001: Instrument ID does not exist", code="51001"))
    outcomes, leader = join_while_under_way(shared, "key", call, 7)
    assert call.calls == 1 and len(outcomes) == 7
    for error in outcomes + [leader]:
        assert isinstance(error, PluginError)
        assert (str(error), error.code) == ("OKX 51001: Instrument ID does not exist", "51001")
    assert len({id(error) for error in outcomes}) == 7      # each caller its own exception object


def test_a_caller_after_the_answer_asks_again():
    """Never an answer older than the call that was joined: once in, the call leaves the table."""
    shared, answers = SingleFlight(), iter([1, 2])
    assert shared.get("key", lambda: next(answers)) == 1
    assert shared.get("key", lambda: next(answers)) == 2
    assert shared.flights == {}


def test_different_keys_never_share():
    shared = SingleFlight()
    call = Leader(answer="depth 5")
    thread = threading.Thread(target=shared.get, args=("depth?limit=5", call))
    thread.start()
    assert call.started.wait(10)
    assert shared.get("depth?limit=10", lambda: "depth 10") == "depth 10"
    call.release.set()
    thread.join()


def test_any_other_failure_of_the_leader_is_raised_again_to_every_caller_who_joined_it():
    """The one rule: who joined meets what the leader met; only a PluginError is copied."""
    bug = KeyError("last")
    outcomes, leader = join_while_under_way(SingleFlight(keep=True), "key", Leader(error=bug), 5)
    assert outcomes == [bug] * 5 and leader is bug


def test_kept_values_serve_later_callers_until_forgotten():
    cache, answers = SingleFlight(keep=True), iter([1, 2])
    assert cache.get("key", lambda: next(answers)) == 1
    assert cache.get("key", lambda: pytest.fail("kept: not called again")) == 1
    cache.forget("key")
    assert cache.get("key", lambda: next(answers)) == 2


def test_a_call_that_asks_for_its_own_key_runs_it_rather_than_wait_for_itself():
    cache = SingleFlight(keep=True)
    assert cache.get("key", lambda: cache.get("key", lambda: "inner") + " outer") == "inner outer"
    assert cache.get("key", lambda: pytest.fail("kept")) == "inner outer"


def test_robots_of_the_same_keys_asking_one_ticker_at_once_share_one_answer(okx_fake):
    """Through the plugin: eight robots of one key asking one ticker while the exchange is slow
    get one answer, decoded and mapped once (SHARED_ANSWERS); a robot of another key gets its
    own answer, from the same single exchange call (SHARED_READS)."""
    import fmz_plugin
    from tests.conftest import PluginClient, serving
    okx_fake.inject("hold", path="/api/v5/market/ticker", times=100)
    answers, lock = [], threading.Lock()
    with serving({"okx": okx_fake.url}) as (url, server):
        def robot(access_key):
            data = PluginClient(url, "OKX", access_key, okx_fake.SECRET_KEY).data("ticker", symbol="BTC_USDT")
            with lock:
                answers.append((access_key, data))
        robots = [threading.Thread(target=robot, args=(okx_fake.ACCESS_KEY,)) for _ in range(8)]
        robots.append(threading.Thread(target=robot, args=("another-key",)))
        robots[0].start()
        okx_fake.wait_held(1)
        for thread in robots[1:]:
            thread.start()
        deadline = time.monotonic() + 10
        joined = lambda shared: sum(flight.joined for flight in list(shared.flights.values()))
        while joined(fmz_plugin.SHARED_ANSWERS) < 7 or joined(SHARED_READS) < 1:
            assert time.monotonic() < deadline, "the robots never joined"
            time.sleep(0.001)
        assert len(fmz_plugin.SHARED_ANSWERS.flights) == 2           # one per key
        okx_fake.release()
        for thread in robots:
            thread.join()
    assert len(answers) == 9 and all(data == answers[0][1] for _, data in answers)
    assert sum(1 for request in okx_fake.requests if request[1].startswith("/api/v5/market/ticker")) == 1
