"""_kit.SharedReads on its own: callers asking the same thing while it is under way share one
call, its answer or its error; a caller who asks after the answer came gets a call of its own.
Threads are lined up with events, never with sleeps."""
import threading
import time

import pytest

from exchanges._kit import PluginError, SharedReads


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
            outcome = shared.fetch(key, lambda: pytest.fail("a follower must not call"))
        except PluginError as error:
            outcome = error
        with lock:
            outcomes.append(outcome)

    leader_outcome = []
    leader = threading.Thread(target=lambda: leader_outcome.append(_catch(shared.fetch, key, call)))
    leader.start()
    assert call.started.wait(10)
    threads = [threading.Thread(target=ask) for _ in range(followers)]
    for thread in threads:
        thread.start()
    flight, deadline = shared.flights[key], time.monotonic() + 10
    while flight.joined < followers:          # until every follower is inside fetch, waiting
        assert time.monotonic() < deadline, "the followers never joined"
        time.sleep(0.001)
    call.release.set()
    for thread in threads + [leader]:
        thread.join()
    return outcomes, leader_outcome[0]


def _catch(function, *args):
    try:
        return function(*args)
    except PluginError as error:
        return error


def test_callers_asking_the_same_while_it_is_under_way_share_one_call():
    shared, call = SharedReads(), Leader(answer=(200, b'{"last": "1"}', {}))
    outcomes, leader = join_while_under_way(shared, ("OKX", "url", "/ticker?instId=BTC-USDT"), call, 31)
    assert call.calls == 1
    assert outcomes == [(200, b'{"last": "1"}', {})] * 31 and leader == outcomes[0]


def test_the_error_of_a_shared_call_reaches_every_caller_who_joined_it():
    shared = SharedReads()
    call = Leader(error=PluginError("OKX 51001: Instrument ID does not exist", code="51001"))
    outcomes, leader = join_while_under_way(shared, "key", call, 7)
    assert call.calls == 1 and len(outcomes) == 7
    for error in outcomes + [leader]:
        assert isinstance(error, PluginError)
        assert (str(error), error.code) == ("OKX 51001: Instrument ID does not exist", "51001")
    assert len({id(error) for error in outcomes}) == 7      # each caller its own exception object


def test_a_caller_after_the_answer_asks_again():
    """Never an answer older than the call that was joined: once in, the call leaves the table."""
    shared, answers = SharedReads(), iter([1, 2])
    assert shared.fetch("key", lambda: next(answers)) == 1
    assert shared.fetch("key", lambda: next(answers)) == 2
    assert shared.flights == {}


def test_different_keys_never_share():
    shared = SharedReads()
    call = Leader(answer="depth 5")
    thread = threading.Thread(target=shared.fetch, args=("depth?limit=5", call))
    thread.start()
    assert call.started.wait(10)
    assert shared.fetch("depth?limit=10", lambda: "depth 10") == "depth 10"
    call.release.set()
    thread.join()
