"""The client-side rate limit: each exchange's documented limits (Limit, RATE_LIMITS tables read
by limits_of and endpoint_limits), the buckets that count calls as the exchange counts them
(_Bucket), and the line a call waits in for its turn (Throttle, Turn; THROTTLE, the one per process).

Nothing here names an exchange or imports the project: a call that cannot have its turn within
its wait is refused with Refused, which exchanges/_kit.py's Api turns into a PluginError.
"""
import functools
import re
import threading
import time
from collections import deque

THROTTLE_MAX_WAIT = 10.0      # seconds a call may wait for its turn under a rate limit (--max-wait)
THROTTLE_MARGIN = 0.05        # seconds added to every documented window, for the exchange's clock
THROTTLE_SWEEP = 5.0          # seconds between two sweeps of idle throttle buckets
URGENT, READ = 0, 1           # a call's place in a line: orders (and what they need) before market data
READS_SHARE = 0.9             # of a budget several endpoints share (a Limit's pool), what reads may fill: the
                              # rest is kept for orders and the markets load they need (robots polling a
                              # Binance depth of 1000, 50 weight each, once spent a minute's weight and
                              # every order was refused until it cleared)


class Refused(Exception):
    """A call the throttle holds back (not sent): its turn cannot come within the wait allowed.
    The message names the call and the limit; Api raises it as a rate-limited PluginError."""


class Limit:
    """One rate limit as the exchange counts it: `requests` units per `seconds`, for RATE_LIMITS.

    `per` says whose calls the exchange counts together:
        "ip"        every call of this process (the exchange counts per IP address)
        "key"       every call made with one API key (per account / UID)
        "key+NAME"  per API key and value of the request parameter NAME ("key+instId": OKX
                    counts its order endpoints per account and instrument)
        "ip+NAME"   per IP address and value of NAME
        None        "key" for a signed call, "ip" for a public one
    `cost` is what one call spends: 1 (a request), a documented weight, or a function of the
    call's params giving it (a Binance depth of 500 levels weighs more than one of 5).
    Limits with the same `pool` name are one budget shared by every endpoint naming it
    (Binance's request weight per IP); a limit without a pool counts its endpoint alone.
    by_param(name, one, every) is a cost that depends on whether a call names one instrument.
    `used(headers)` reads the exchange's own count of this budget from a reply's headers
    (Binance X-MBX-USED-WEIGHT-1M), or None; the throttle then counts what the exchange
    counted beyond our own calls (another program on the same IP or key). used_from(limit
    header, remaining header) reads a budget sent as a limit and what remains of it.
    """

    __slots__ = ("requests", "seconds", "per", "cost", "pool", "used")

    def __init__(self, requests, seconds, per=None, cost=1, pool=None, used=None):
        self.requests, self.seconds, self.per = requests, float(seconds), per
        self.cost, self.pool, self.used = cost, pool, used

    def costing(self, cost):
        """The same budget (same pool), spent `cost` units a call: one endpoint's weight."""
        return Limit(self.requests, self.seconds, self.per, cost, self.pool, self.used)

    def units(self, params):
        return self.cost(params) if callable(self.cost) else self.cost

    def describe(self):
        """`60 requests per 2 s per API key and instId`, `6000 spot request weight per 60 s per IP`."""
        counted = {None: "", "ip": " per IP", "key": " per API key"}.get(self.per)
        if counted is None:
            who, _, param = self.per.partition("+")
            counted = f" per {'API key' if who == 'key' else 'IP'} and {param}"
        return f"{self.requests} {self.pool or 'requests'} per {self.seconds:g} s{counted}"


def by_param(name, one, every):
    """A `cost`: `one` for a call naming `name` (a symbol, a market), `every` without it (the
    endpoint then answers every one)."""
    return lambda params: one if params.get(name) else every


def used_from(limit_header, remaining_header):
    """A `used` reader for an exchange that sends a budget and what remains of it in two headers:
    the budget less the remainder, None when either is absent or not a whole number."""
    def used(headers):
        limit, remaining = headers.get(limit_header), headers.get(remaining_header)
        if not (limit and remaining and limit.isdigit() and remaining.isdigit()):
            return None
        return max(int(limit) - int(remaining), 0)
    return used


def limits_of(entry):
    """A RATE_LIMITS value as a list of Limits: `(requests, seconds)`, a Limit, or a list of them."""
    if entry is None:
        return []
    if isinstance(entry, Limit):
        return [entry]
    if len(entry) == 2 and all(isinstance(n, (int, float)) for n in entry):
        return [Limit(*entry)]
    return list(entry)


def endpoint_limits(table, method, path):
    """(key, Limits, placeholder values) of RATE_LIMITS `table` for one request. A key names a
    fixed path ("GET /api/v3/depth") or a template whose {name} parts match one path segment
    each ("DELETE /v2/orders/{id}", "GET /v2/{market}/book"): every path it matches is counted
    as that one endpoint, and each {name} is a param for `per` and `cost`."""
    exact = f"{method} {path}"
    if exact in table:
        return exact, limits_of(table[exact]), {}
    for key, entry in table.items():
        if "{" in key:
            found = _template(key).fullmatch(exact)
            if found:
                return key, limits_of(entry), found.groupdict()
    return exact, [], {}


@functools.lru_cache(maxsize=1024)
def _template(key):
    parts = re.split(r"\{(\w+)\}", key)
    return re.compile("".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)))


class _Bucket:
    """The calls one exchange counts together under one Limit, as the throttle sees them.

    Two rules decide when a call may go, and it goes when both agree:
    - the window (`earliest`): no more than the limit counted in any window, a call counting
      from the moment it is let go until a window after its answer (the exchange's own rule,
      however late each call arrived);
    - the pace (`paced`): reads go one every `interval` (the window divided by the limit, per
      unit), a leaky bucket. Without it, the window rule alone lets a whole limit go back to
      back, then holds every robot until the window clears, again and again: a one-second
      hiccup every two seconds (and the burst that starts a busy spell is that hiccup once).
      With it, the wait is even.
    A rested bucket (new, or nothing counted and its pace a window behind) lets `burst` units go
    at once (`burst_left`): only what the pace could not deliver within the call's wait, so that
    pacing never refuses a call the window alone would have let go (5 calls per 1000 s with 10 s
    to wait: all 5 at once; OKX's 20 tickers per 2 s: one, then one every 0.1 s). Urgent calls
    (orders) are not paced: the window alone holds them, and reads pace behind them.
    """

    __slots__ = ("limit", "window", "done", "done_units", "in_flight", "queue", "queued_units",
                 "queued_urgent", "reported", "last_used", "interval", "burst", "burst_left", "paced")

    def __init__(self, limit, margin, now, max_wait=THROTTLE_MAX_WAIT):
        self.limit = limit
        self.window = limit.seconds + margin
        self.done = deque()           # (answered at, units) of calls that came back, oldest first
        self.done_units = 0
        self.in_flight = 0            # units of calls sent and not answered yet: they count in every window
        self.queue = deque()          # _Tickets of the calls waiting for their turn, first come first
        self.queued_units = 0
        self.queued_urgent = 0        # ... of them, units of URGENT calls (which go before reads)
        self.reported = (now, 0)      # (when, units) the exchange counted beyond ours (its headers)
        self.last_used = now
        self.interval = self.window / limit.requests     # seconds per unit under a steady load
        self.paced = now - self.window    # when the pace lets the next read go (new: rested)
        self.burst = max(1, limit.requests - int(max_wait / self.interval))   # units a rested bucket lets go at once
        self.burst_left = 0           # units that may still go unpaced, in the burst a rest allows

    def next_in_line(self):
        """The ticket whose turn is next: the first urgent one, else the first."""
        return min(self.queue, key=lambda ticket: ticket.rank)

    def rested(self, now):
        """True when nothing is counted in the window and the pace has been idle for a window."""
        return not (self.in_flight or self.done_units or self.reported[1]) and now >= self.paced + self.window

    def pace_from(self, now, units, rank=READ):
        """When the pace lets a call of `units` go: an urgent one, or a read within a burst, at
        once; else one `interval` per unit after the call before it."""
        if rank == URGENT or self.rested(now) or self.burst_left >= units:
            return now
        return max(now, self.paced)

    def went(self, now, units, rank=READ):
        """A call of `units` is let go (before it is counted in flight): the pace moves on."""
        if self.rested(now):
            self.burst_left = self.burst
        if rank == READ:
            self.burst_left = max(0, self.burst_left - units)
        self.paced = max(self.paced, now) + units * self.interval

    def forget_before(self, now):
        while self.done and self.done[0][0] <= now - self.window:
            self.done_units -= self.done.popleft()[1]
        if self.reported[1] and self.reported[0] <= now - self.window:
            self.reported = (now, 0)

    def room(self, rank):
        """What a window holds for a call of this rank: the whole limit, less what a shared budget
        keeps for urgent calls when it is a read (READS_SHARE)."""
        if rank == URGENT or self.limit.pool is None:
            return self.limit.requests
        return max(1, int(self.limit.requests * READS_SHARE))

    def earliest(self, now, units, rank=URGENT):
        """When `units` more fit in the window (its room for `rank`), counting answered calls
        until a window after their answer; inf while only calls in flight could free room."""
        self.forget_before(now)
        over = self.in_flight + self.done_units + self.reported[1] + units - self.room(rank)
        if over <= 0:
            return now
        report_at, report_units = self.reported
        for at, done_units in self.done:
            if report_units and report_at <= at:
                over, report_units = over - report_units, 0
                if over <= 0:
                    return report_at + self.window
            over -= done_units
            if over <= 0:
                return at + self.window
        if report_units and over - report_units <= 0:
            return report_at + self.window
        return float("inf")

    def lower_bound(self, now, units, rank=READ):
        """No earlier than this can a call of `units` go, behind the calls queued ahead (only
        the urgent ones for an urgent call): the pace of those ahead, and the line played out
        as if every call were answered the moment it went (and those in flight now), which
        only ever makes turns come sooner than they will."""
        self.forget_before(now)
        ahead = self.queued_urgent if rank == URGENT else self.queued_units
        unpaced = self.burst if self.rested(now) else self.burst_left
        paced = max(now, self.paced) + max(0, ahead - unpaced) * self.interval
        if rank == URGENT or ahead + units <= unpaced:
            paced = now
        return max(paced, self._window_bound(now, units, ahead, self.room(rank)))

    def _window_bound(self, now, units, ahead, room_for_all):
        used = self.in_flight + self.done_units + self.reported[1]
        if used + ahead + units <= room_for_all:
            return now
        counted = deque(sorted([*self.done, self.reported, (now, self.in_flight)]))
        played = deque()              # (went at, units) of the calls ahead, as played out
        at = now
        while True:
            room = room_for_all - used
            if ahead and room > 0:
                going = min(room, ahead)
                ahead, used, room = ahead - going, used + going, room - going
                played.append((at, going))
            if not ahead and room >= units:
                return at
            queue = counted if not played or (counted and counted[0] <= played[0]) else played
            went, freed = queue.popleft()
            at, used = max(at, went + self.window), used - freed

    def idle(self, now):
        return (not (self.in_flight or self.queue) and self.last_used <= now - self.window
                and now >= self.paced + self.window)


class _Ticket:
    """A call's place in a bucket's line (compared by identity): its rank, URGENT or READ."""

    __slots__ = ("rank",)

    def __init__(self, rank):
        self.rank = rank


class Throttle:
    """Holds the calls of every robot under the exchanges' documented limits, counted as each
    exchange counts them.

    Each exchange module declares RATE_LIMITS = {"VERB /path": limit}: a plain
    `(requests, seconds)` (counted per API key for a signed call, per IP for a public one) or
    richer Limit objects naming what the exchange counts a limit per (IP, key, key and
    instrument) and a call's weight. A call waits for its turn, first come first served
    (orders before market-data reads), and goes as soon as every limit it falls under has room
    and its pace allows (calls are spread evenly through the window, see _Bucket); only a
    call that could not go within `max_wait` seconds fails, naming the limit, and is not sent.

    The exchange counts arrivals, and a call arrives some time after it leaves (signing, a new
    connection, the network). So a call counts from the moment it is let go until a window
    after its answer came back (not after it was let go): in any window the exchange measures,
    no more calls than the limit can have arrived, however late each one travelled. Each window
    is also `margin` seconds longer than documented, for the exchange's own clock.

    A bucket (one limit of one exchange, base URL and key) that has been idle for a whole
    window holds nothing worth keeping and is dropped, so memory stays bounded however many
    keys and instruments pass through.
    """

    def __init__(self, max_wait=THROTTLE_MAX_WAIT, margin=THROTTLE_MARGIN, clock=time.monotonic, wait=None):
        self.max_wait, self.margin = max_wait, margin
        self.clock = clock
        self.buckets = {}             # (exchange, base URL, scope, pool or endpoint) -> _Bucket
        self.changed = threading.Condition()
        self.wait_for_change = wait or (lambda seconds: self.changed.wait(seconds))
        self.swept = clock()

    def turn(self, charges, label, max_wait=None, urgent=False):
        """Wait until a call charged `charges` ([(bucket key, Limit, units)]) may go: a Turn.

        Raises Refused naming the limit when that cannot happen within max_wait seconds.
        The call takes its limits one at a time, always in the order of their keys: a call
        waiting for one limit (Binance's order count) holds no place in the line of another
        (the weight every market-data read shares), and two calls never wait for each other.
        An `urgent` call (an order, a cancel, the markets load an order needs) goes before
        every read waiting in the same line: reads wait, or are refused, first."""
        max_wait = self.max_wait if max_wait is None else max_wait
        rank = URGENT if urgent else READ
        with self.changed:
            now = self.clock()
            self._sweep(now)
            charges = sorted(charges, key=lambda charge: charge[0])
            held = [(self._bucket(key, limit, now, max_wait), units) for key, limit, units in charges]
            for bucket, units in held:
                if units > bucket.room(rank) or bucket.lower_bound(now, units, rank) - now > max_wait:
                    raise self._refusal(label, bucket.limit, max_wait)
            taken = []
            try:
                for bucket, units in held:
                    self._take(bucket, units, rank, label, now + max_wait, max_wait)
                    taken.append((bucket, units))
            except BaseException:
                for bucket, units in taken:      # not sent after all: counted nowhere
                    bucket.in_flight -= units
                self.changed.notify_all()
                raise
            return Turn(self, held)

    def _take(self, bucket, units, rank, label, deadline, max_wait):
        """Queue for `bucket` (urgent calls first, then first come first served) until both its
        window and its pace let `units` go."""
        ticket = _Ticket(rank)
        bucket.queue.append(ticket)
        bucket.queued_units += units
        bucket.queued_urgent += units if rank == URGENT else 0
        self.changed.notify_all()
        try:
            while True:
                now = self.clock()
                at = float("inf")
                if bucket.next_in_line() is ticket:
                    at = max(bucket.earliest(now, units, rank), bucket.pace_from(now, units, rank))
                if at <= now:
                    bucket.went(now, units, rank)
                    bucket.in_flight += units
                    bucket.last_used = now
                    return
                if now >= deadline:
                    raise self._refusal(label, bucket.limit, max_wait)
                self.wait_for_change(min(at, deadline) - now)
        finally:
            bucket.queue.remove(ticket)
            bucket.queued_units -= units
            bucket.queued_urgent -= units if rank == URGENT else 0
            self.changed.notify_all()            # the next in line may be able to go too

    def _answered(self, held):
        with self.changed:
            now = self.clock()
            for bucket, units in held:
                bucket.in_flight -= units
                bucket.done.append((now, units))
                bucket.done_units += units
                bucket.last_used = now
            self.changed.notify_all()

    def _reported(self, bucket, units, exchange_count):
        """The exchange says it counted `exchange_count` in this bucket's budget, this call's
        `units` included: what exceeds our own count is another program's, counted too."""
        with self.changed:
            now = self.clock()
            bucket.forget_before(now)
            bucket.reported = (now, max(0, exchange_count - bucket.done_units - units))

    def _bucket(self, key, limit, now, max_wait=None):
        bucket = self.buckets.get(key)
        if bucket is None:
            max_wait = self.max_wait if max_wait is None else max_wait
            bucket = self.buckets[key] = _Bucket(limit, self.margin, now, max_wait)
        return bucket

    def _sweep(self, now):
        """Drop buckets idle for a whole window (at most every THROTTLE_SWEEP seconds)."""
        if now - self.swept < THROTTLE_SWEEP:
            return
        self.swept = now
        for key in [key for key, bucket in self.buckets.items() if bucket.idle(now)]:
            del self.buckets[key]

    @staticmethod
    def _refusal(label, limit, max_wait):
        return Refused(f"{label}: not sent, its turn under the exchange's limit of {limit.describe()} "
                       f"cannot come within {max_wait:g} s (--max-wait); held back by this plugin")

    def clear(self):
        with self.changed:
            self.buckets.clear()

    def usage(self):
        """What each bucket counts now, for the status page (read only): [(bucket key, Limit,
        units in its window: calls in flight, answered within it, and another program's)]."""
        with self.changed:
            now = self.clock()
            rows = []
            for key, bucket in self.buckets.items():
                since = now - bucket.window
                used = bucket.in_flight + sum(units for at, units in bucket.done if at > since)
                used += bucket.reported[1] if bucket.reported[0] > since else 0
                rows.append((key, bucket.limit, used))
            return rows


class Turn:
    """A call let go by the throttle: `observe(headers)` the reply, then `done()` once answered."""

    def __init__(self, throttle, held):
        self.throttle, self.held = throttle, held

    def observe(self, headers):
        for bucket, units in self.held:
            if bucket.limit.used is not None:
                count = bucket.limit.used(headers)
                if count is not None:
                    self.throttle._reported(bucket, units, count)

    def done(self):
        self.throttle._answered(self.held)


THROTTLE = Throttle()                  # the client-side rate limit (fmz_plugin: unless --no-throttle)
