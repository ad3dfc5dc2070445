"""Market data from the exchanges' WebSockets: a live local copy, answered with no REST call.

The dispatch asks `Streams.serve(exchange, method, kwargs, rest)` before an exchange's ticker,
depth or trades handler runs. The first request for a symbol subscribes its channel and is
answered by `rest()`; once the stream has delivered data, requests are answered from the local
copy, in the shapes the REST handler gives. The rules, the same for every exchange:

- One connection per exchange endpoint (OKX /ws/v5/public, ...) carries all its channels, up to
  the exchange's STREAM_TOPICS; more channels open another connection. Each connection has a
  thread of its own that connects, subscribes, reads, keeps alive and reconnects.
- A channel is answered only while its connection is up and the channel subscribed and
  delivering. When the connection drops, every local copy on it is dropped at once: requests
  go to REST (the robot sees no error) while the thread reconnects with backoff, paced to the
  exchange's connection limit per IP (STREAM_CONNECTS), and subscribes everything again.
- Keepalive: after STREAM_KEEPALIVE seconds without a message the exchange's ping is sent; a
  connection silent for STREAM_SILENCE seconds is closed and replaced.
- A channel nobody asked for in IDLE_AFTER seconds is unsubscribed; a connection left with
  none closes and its thread ends.
- depth deeper than the stream keeps (STREAM_DEPTH) is served by REST; trades and records are
  answered once the stream was seeded by a REST answer fetched after the subscription was
  confirmed (a stream has no history), and while it holds as many rows as asked.
- Public channels never carry a key: a connection gets the robot's keys only for an endpoint
  the exchange lists in STREAM_LOGIN (an authenticated data stream; private streams later),
  and then it is one connection per key.

The exchange's side is its dialect (exchanges/__init__.py documents it): URLs, limits, and the
functions that build subscribe / unsubscribe / ping messages and read one received message into
a Feed. This module never names an exchange.
"""
import itertools
import logging
import socket
import threading
import time
import urllib.parse
from collections import OrderedDict, deque

from exchanges import _websocket
from exchanges._kit import POOL, PluginError, book_levels, now_ms, number_or_zero

IDLE_AFTER = 300.0          # seconds a channel stays subscribed after the last request for it
TICK = 1.0                  # seconds between two looks at keepalive, idle channels and pending subscriptions
CONNECT_TIMEOUT = 10.0      # seconds for TCP, TLS and the upgrade handshake
BACKOFF_FIRST = 0.5         # seconds before the first reconnect; doubled after each failed one ...
BACKOFF_MAX = 30.0          # ... up to this
ROWS_KEPT = 5000            # trades or candles kept per channel: as many as a request may ask (MAX_RECORDS)
RATE_WINDOW = 10.0          # seconds over which messages per second are counted
STREAMED = ("ticker", "depth", "trades", "records")     # the protocol methods a stream can answer
SEEDED = ("trades", "records")          # ... whose history comes from a REST answer, then the stream
# How rows of a seeded method are told apart (a candle still open comes again with the same open
# time and replaces the row) and ordered.
ROW_KEY = {"trades": lambda row: row["id"], "records": lambda row: row[0]}
ROW_TIME = {"trades": lambda row: row["time"], "records": lambda row: row[0]}

log = logging.getLogger("fmz_plugin")


# -- The local copy of one channel -----------------------------------------------------------------

class Book:
    """An order book kept from a snapshot and updates. Levels stay as the exchange wrote them
    (text): a checksum (OKX's CRC32) is computed over that text."""

    def __init__(self):
        self.asks, self.bids = {}, {}        # price text -> size text
        self.time = 0                        # the exchange's time of the last change, ms
        self.sequence = None                 # the exchange's sequence number of the last update
        self._sorted = None

    def reset(self, asks, bids):
        self.asks, self.bids = {}, {}
        self.apply(asks, bids)

    def apply(self, asks, bids):
        """Rows [price, size, ...]; a size of zero removes the level."""
        for side, rows in ((self.asks, asks), (self.bids, bids)):
            for row in rows or ():
                if number_or_zero(row[1]):
                    side[row[0]] = row[1]
                else:
                    side.pop(row[0], None)
        self._sorted = None

    def sides(self):
        """(asks lowest first, bids highest first) as [(price text, size text)]."""
        if self._sorted is None:
            by_price = lambda level: float(level[0])
            self._sorted = (sorted(self.asks.items(), key=by_price),
                            sorted(self.bids.items(), key=by_price, reverse=True))
        return self._sorted

    def depth(self, levels):
        """FMZ's depth: {time, asks, bids} with `levels` levels a side, as _kit.book_levels makes
        a REST depth's: the exchange's own number text, written into the answer as it is."""
        asks, bids = self.sides()
        return {"time": self.time, "asks": book_levels(asks[:levels]), "bids": book_levels(bids[:levels])}


class Channel:
    """One subscription (a topic of the dialect) and its local copy."""

    def __init__(self, topic, method):
        self.topic, self.method = topic, method
        self.requested = time.monotonic()    # the last request for it
        self.sent = False                    # subscribe sent on the current connection
        self.confirmed_at = None             # when the exchange confirmed it (monotonic)
        self.live = False                    # the local copy may answer
        self.raw = None                      # the exchange's last message for it
        self.ticker = None
        self.book = None
        self.rows = None                     # trades or candles oldest first, once seeded from REST
        self.streamed = []                   # rows streamed before the seed
        self.complete = False                # the seed held all the history REST had
        self.state = {}                      # the dialect's own (Feed.state)

    def drop(self):
        """Forget the local copy (the connection dropped, or the book needs a resync)."""
        self.live, self.sent, self.confirmed_at = False, False, None
        self.raw = self.ticker = self.book = self.rows = None
        self.streamed, self.complete, self.state = [], False, {}


class Feed:
    """What a dialect's stream_read(message, feed) calls to update the local copy; it runs under
    the connection's lock. `topic` is the dialect's own topic, as stream_topic gave it; a topic
    not subscribed is ignored. Data for a topic also confirms its subscription (an exchange whose
    acknowledgement does not name the topic needs no subscribed() call)."""

    def __init__(self, connection):
        self._connection = connection
        self._named = {}                     # the exchange's stream name -> topic, for topic_named

    def _channel(self, topic):
        channel = self._connection.channels.get(topic)
        if channel is not None and channel.confirmed_at is None:
            channel.confirmed_at = time.monotonic()
        return channel

    def subscribed(self, topic):
        """The exchange confirmed the subscription."""
        self._channel(topic)

    def ticker(self, topic, ticker, raw):
        """A whole ticker in FMZ's shape (the REST handler's mapping)."""
        channel = self._channel(topic)
        if channel is not None:
            channel.ticker, channel.raw = ticker, raw
            self._connection.went_live(channel)

    def topic_named(self, name, names_of):
        """The topic this connection carries whose exchange names (`names_of(topic)`, a list)
        include `name`, or None: for a dialect whose pushes name the exchange's stream
        ("btcusdt@trade"), which alone may not say whose (spot or futures) it is. The index is
        rebuilt only when a name is new or its topic gone."""
        topic = self._named.get(name)
        if topic is None or topic not in self._connection.channels:
            self._named = {each: t for t in list(self._connection.channels) for each in names_of(t)}
            topic = self._named.get(name)
        return topic

    def book(self, topic):
        """The channel's Book to reset or update (a new one after a resync), or None."""
        channel = self._channel(topic)
        if channel is not None and channel.book is None:
            channel.book = Book()
        return channel and channel.book

    def depth(self, topic, raw):
        """The book was updated and checked: it may answer."""
        channel = self._channel(topic)
        if channel is not None and channel.book is not None:
            channel.raw = raw
            self._connection.went_live(channel)

    def trades(self, topic, rows, raw):
        """New trades in FMZ's shape, oldest first."""
        self._rows(topic, rows, raw)

    def logged_in(self):
        """The exchange took the login (STREAM_LOGIN endpoints): the subscriptions go out now, not
        before (an exchange may read a subscribe that overtakes the login's answer as unauthorized)."""
        self._connection.logged_in = True
        self._connection.subscribe_pending()

    def refused(self, why):
        """The exchange refused the connection (a login it does not accept, a connection limit):
        `why` (no secret in it) shows in the status until the stream delivers again; the
        exchange closes the connection and it is retried with backoff, REST answering meanwhile."""
        if self._connection.problem != why:
            log.warning("%s stream %s: %s", self._connection.exchange.NAME, self._connection.endpoint, why)
        self._connection.problem = why

    def candles(self, topic, rows, raw):
        """Candles in FMZ's shape [time, open, high, low, close, volume], oldest first; the one
        still open comes again with the same time and replaces the row."""
        self._rows(topic, rows, raw)

    def _rows(self, topic, rows, raw):
        channel = self._channel(topic)
        if channel is not None:
            channel.raw = raw
            if channel.rows is None:
                channel.streamed = merged(channel.method, channel.streamed, rows)
            else:
                channel.rows = merged(channel.method, channel.rows, rows)

    def state(self, topic):
        """A dict the dialect keeps what it needs between messages in (a ticker that updates come
        as deltas to, the halves of a ticker two of the exchange's channels make), emptied with
        the local copy; a topic not subscribed gets a throwaway dict."""
        channel = self._connection.channels.get(topic)
        return {} if channel is None else channel.state

    def connection_state(self):
        """A dict for what the dialect keeps about the current connection as a whole (Coinbase's
        sequence_num counts every message of a connection), emptied when it connects again."""
        return self._connection.connection_state

    def send(self, text):
        """A message the exchange expects in answer (BingX's "Pong" to its "Ping", a book
        snapshot request), not counted as a request."""
        ws = self._connection.ws
        if ws is not None:
            self._connection._send_all(ws, [text])

    def resync(self, topic, why):
        """The local copy is broken (a sequence gap, a failed checksum): drop it and subscribe
        again for a fresh snapshot."""
        self._connection.resync(topic, why)

    def reconnect(self, why):
        """The exchange announced it will close this connection (a service upgrade): end it now,
        so answers go to REST at once, and connect again."""
        log.info("%s stream %s: %s; connecting again", self._connection.exchange.NAME, self._connection.endpoint,
                 str(why)[:200])
        self._connection.ws.abort()


# -- One connection --------------------------------------------------------------------------------

class Connection:
    """One WebSocket to one exchange endpoint and the channels it carries, run by its own thread."""

    def __init__(self, streams, exchange, endpoint, url, keys=None):
        self.streams, self.exchange, self.endpoint, self.url, self.keys = streams, exchange, endpoint, url, keys
        self.lock = threading.RLock()
        self.channels = {}                   # topic -> Channel
        self.ws = None                       # the open WebSocket, while connected
        self.connected_since = None          # ms, wall clock
        self.last_message = None             # monotonic time of the last message received
        self.counts = deque(maxlen=int(RATE_WINDOW) + 1)   # [second, messages received in it]
        self.pinged = False                  # when a keepalive ping went out unanswered (monotonic), or False
        self.requests = deque()              # when each subscribe / unsubscribe / login was sent here
        self.reconnects = self.resyncs = 0
        self.problem = None                  # why the exchange refused this connection, until it delivers
        self.logged_in = keys is None        # a login endpoint subscribes once the exchange took the login
        self.connection_state = {}           # the dialect's own, for this connection (Feed.connection_state)
        self.stopping = threading.Event()
        self.feed = Feed(self)
        self.thread = threading.Thread(target=self.run, daemon=True,
                                       name=f"stream {exchange.NAME} {endpoint}")

    # -- the request threads' side
    def read(self, topic, kwargs):
        """(data, raw) from the channel's local copy, or None while it cannot answer."""
        with self.lock:
            channel = self.channels.get(topic)
            if channel is None:
                return None
            channel.requested = time.monotonic()
            if self.ws is not None and channel.live:
                return _answer(self.exchange, channel, kwargs)
        return None

    def seed(self, topic, rows, started, asked):
        """A REST answer (trades, records) fetched after the subscription was confirmed seeds the
        stream; the rows streamed meanwhile follow it (or replace its rows of the same key)."""
        with self.lock:
            channel = self.channels.get(topic)
            if channel is None or self.ws is None or channel.confirmed_at is None or started < channel.confirmed_at:
                return
            channel.rows, channel.streamed = merged(channel.method, list(rows), channel.streamed), []
            channel.complete = channel.complete or len(rows) < asked
            self.went_live(channel)

    def went_live(self, channel):
        """The channel's local copy may answer from now on (called under the lock)."""
        if not channel.live:
            channel.live, self.problem = True, None
            self.streams.notify()

    def subscribe_pending(self):
        """Send the subscriptions not yet sent on the current connection (any thread); those the
        exchange's request limit has no room for wait for a later turn (REST answers meanwhile)."""
        with self.lock:
            ws = self.ws
            pending = [c for c in self.channels.values() if not c.sent] if ws is not None and self.logged_in else []
            if not pending:
                return
            messages = self.exchange.stream_subscribe([c.topic for c in pending])
            if not self._spend(messages):
                return
            for channel in pending:
                channel.sent = True
        self._send_all(ws, messages)

    def _spend(self, messages):
        """Whether the exchange's limit of requests per connection (STREAM_REQUESTS) has room for
        `messages` now, and if so they are counted; call under the lock."""
        count, seconds = self.exchange.STREAM_REQUESTS
        now = time.monotonic()
        while self.requests and now - self.requests[0] >= seconds:
            self.requests.popleft()
        if len(self.requests) + len(messages) > count:
            return False
        self.requests.extend([now] * len(messages))
        return True

    @staticmethod
    def _send_all(ws, messages):
        try:
            for message in messages:
                ws.send_text(message)
        except OSError:
            pass                             # the reading thread notices the broken connection

    def resync(self, topic, why):
        with self.lock:
            channel, ws = self.channels.get(topic), self.ws
            if channel is None or ws is None:
                return
            channel.drop()
            self.resyncs += 1
            messages = self.exchange.stream_unsubscribe([topic])
            messages = messages if self._spend(messages) else []
        self.streams.notify()
        log.warning("%s stream: %s; subscribing again for a fresh snapshot", self.exchange.NAME, why)
        self._send_all(ws, messages)
        self.subscribe_pending()

    # -- the connection's thread
    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        ws = self.ws
        if ws is not None:
            ws.abort()

    def run(self):
        backoff, attempts = BACKOFF_FIRST, 0
        while not self.stopping.is_set() and not self.streams.retire_if_unused(self):
            self.streams.pace(self.exchange)
            if attempts:
                self.reconnects += 1
            attempts += 1
            delivered = False
            try:
                delivered = self._session()
            except OSError as error:
                log.info("%s stream %s: %s", self.exchange.NAME, self.endpoint, str(error)[:200])
            except Exception as error:       # a bug: logged, and the connection replaced like a dead one
                log.warning("%s stream %s failed: %s: %s", self.exchange.NAME, self.endpoint,
                            type(error).__name__, str(error)[:200])
            self._lost()
            backoff = BACKOFF_FIRST if delivered else min(backoff * 2, BACKOFF_MAX)
            if self.stopping.wait(backoff):
                break

    def _session(self):
        """Connect, subscribe, read until the connection fails or carries nothing more. True when
        it delivered data (the next reconnect then starts from the first backoff)."""
        ws = _websocket.connect(self.url, CONNECT_TIMEOUT, context=POOL.tls)    # REST's verified TLS
        with self.lock:
            self.ws, self.last_message, self.pinged = ws, time.monotonic(), False
            self.connected_since, self.logged_in = now_ms(), self.keys is None
            self.connection_state = {}
            self.requests.clear()            # the exchange counts them per connection
        self.streams.notify()
        if self.stopping.is_set():
            return False
        if self.keys is not None:
            with self.lock:
                login = self.exchange.stream_login(self.keys)
                self._spend(login)
            self._send_all(ws, login)
        self.subscribe_pending()
        delivered, chores_due = False, 0.0
        while True:
            message = self._receive(ws)
            now = time.monotonic()
            if message is not None:
                delivered = True
                self.last_message, self.pinged = now, False
                self._read(message, now)
            if now >= chores_due:
                if not self._chores(ws, now):
                    ws.close()
                    return delivered
                chores_due = now + TICK

    def _read(self, message, now):
        """One message into the local copy. A message the dialect cannot read is skipped (a book
        then fails its next sequence or checksum check and resyncs); its text is not logged."""
        try:
            with self.lock:                  # requests read the local copy between two messages
                self._count(now)
                self.exchange.stream_read(message, self.feed)
        except Exception as error:
            log.warning("%s stream %s: a message it could not read (%s: %s)", self.exchange.NAME, self.endpoint,
                        type(error).__name__, str(error)[:80])

    def _count(self, now):
        second = int(now)
        if self.counts and self.counts[-1][0] == second:
            self.counts[-1][1] += 1
        else:
            self.counts.append([second, 1])

    @staticmethod
    def _receive(ws):
        try:
            return ws.receive(timeout=TICK)
        except socket.timeout:
            return None

    def _chores(self, ws, now):
        """Keepalive, idle channels, pending subscriptions; False when nothing is left to carry."""
        heard = max(self.last_message, ws.last_frame)     # a pong to a ping frame counts
        silent = now - heard
        if silent > self.exchange.STREAM_SILENCE:
            raise _websocket.WebSocketError(f"silent for {silent:.0f} s")
        if self.pinged and ws.last_frame > self.pinged:
            self.pinged = False              # the ping frame was answered
        if silent > self.exchange.STREAM_KEEPALIVE and not self.pinged:
            self.pinged = now
            ping = self.exchange.stream_ping()
            if ping is None:
                ws.ping()
            else:
                ws.send_text(ping)
        with self.lock:
            idle = [t for t, c in self.channels.items() if now - c.requested > IDLE_AFTER]
            sent = [t for t in idle if self.channels[t].sent]
            for topic in idle:
                del self.channels[topic]
            messages = self.exchange.stream_unsubscribe(sent) if sent else []
            messages = messages if self._spend(messages) else []     # else the exchange keeps pushing: ignored
        self._send_all(ws, messages)
        self.subscribe_pending()
        return bool(self.channels) and not self.stopping.is_set()

    def _lost(self):
        """The connection is gone: no local copy may answer any more."""
        with self.lock:
            ws, self.ws, self.connected_since = self.ws, None, None
            for channel in self.channels.values():
                channel.drop()
        if ws is not None:
            ws.abort()
        self.streams.notify()

    def status(self, now):
        with self.lock:
            recent = sum(count for second, count in self.counts if now - second <= RATE_WINDOW)
        return {"connected_since": self.connected_since, "subscriptions": len(self.channels),
                "messages_per_second": round(recent / RATE_WINDOW, 1),
                "last_message_age": round(now - self.last_message, 3) if self.last_message else None,
                "reconnects": self.reconnects, "resyncs": self.resyncs, "problem": self.problem}


def _topic(exchange, symbol, method, period, api):
    """The dialect's (endpoint, topic), or None: stream_route(api, symbol, method, period) when the
    dialect needs the exchange's listing to tell (Alpaca: a stock or a coin, and the key's feed),
    which may refuse the symbol (REST then says why), else stream_topic(symbol, method, period)."""
    if not hasattr(exchange, "stream_route"):
        return exchange.stream_topic(symbol, method, period)
    try:
        return exchange.stream_route(api, symbol, method, period) if api is not None else None
    except PluginError:
        return None


def _keys_or_none(keys):
    """The robot's parsed keys, or None (no keys, or keys the exchange refuses: REST says why)."""
    try:
        return keys() if keys is not None else None
    except PluginError:
        return None


class Requests:
    """A dialect's subscribe requests awaiting the exchange's answer, by the request id it put in
    them: new(topics) gives the next id, answered(id) the topics it carried (once). Ids never
    answered (a dropped connection) are forgotten after `kept` newer ones."""

    def __init__(self, kept=1000):
        self.ids, self.waiting, self.kept = itertools.count(1), OrderedDict(), kept

    def new(self, topics):
        request_id = next(self.ids)
        self.waiting[request_id] = list(topics)
        while len(self.waiting) > self.kept:
            self.waiting.popitem(last=False)
        return request_id

    def answered(self, request_id):
        return self.waiting.pop(request_id, ())


def _answer(exchange, channel, kwargs):
    """The local copy in the REST handler's shape, or None when REST must answer."""
    if channel.method == "ticker":
        return dict(channel.ticker), channel.raw
    if channel.method == "depth":
        levels = kwargs.get("limit") or exchange.DEPTH_DEFAULT
        return (channel.book.depth(levels), channel.raw) if levels <= exchange.STREAM_DEPTH else None
    wanted = _rows_wanted(exchange, channel.method, kwargs)
    if channel.rows is None or (len(channel.rows) < wanted and not channel.complete):
        return None
    return channel.rows[-wanted:], channel.raw


def _rows_wanted(exchange, method, kwargs):
    """The rows a request wants: its limit, or what REST answers without one (TRADES_DEFAULT or
    RECORDS_DEFAULT, either of which may be {market kind: count} where the exchange's REST
    answers differently per kind)."""
    default = exchange.TRADES_DEFAULT if method == "trades" else exchange.RECORDS_DEFAULT
    return kwargs.get("limit") or (default[kwargs["symbol"].kind] if isinstance(default, dict) else default)


def merged(method, rows, new):
    """`rows` (oldest first) with `new` rows: one of the same key is replaced (a candle still
    open, a trade seen twice), a later one appended, an earlier one merged in by time; at most
    ROWS_KEPT kept."""
    key, when = ROW_KEY[method], ROW_TIME[method]
    for index, row in enumerate(new):
        if rows and when(row) < when(rows[-1]):
            fresh = {key(r) for r in new[index:]}
            rows = sorted([r for r in rows if key(r) not in fresh] + new[index:], key=when)
            break
        same = _same_key_at_the_end(rows, row, key, when)
        if same is None:
            rows.append(row)
        else:
            rows[same] = row
    del rows[:-ROWS_KEPT]
    return rows


def _same_key_at_the_end(rows, row, key, when):
    """The index of a row with row's key among the last rows of row's time, or None."""
    for index in range(len(rows) - 1, -1, -1):
        if when(rows[index]) < when(row):
            return None
        if key(rows[index]) == key(row):
            return index
    return None


# -- Every exchange's connections ------------------------------------------------------------------

class Pacer:
    """At most `count` connection requests per `seconds` (an exchange's limit per IP)."""

    def __init__(self, count, seconds):
        self.count, self.seconds = count, seconds
        self.times = deque()
        self.lock = threading.Lock()

    def wait(self):
        while True:
            with self.lock:
                now = time.monotonic()
                while self.times and now - self.times[0] >= self.seconds:
                    self.times.popleft()
                if len(self.times) < self.count:
                    self.times.append(now)
                    return
                pause = self.seconds - (now - self.times[0])
            time.sleep(pause)


PACERS = {}                 # exchange NAME -> its Pacer: the limit is per IP, whatever server asks
_PACERS_LOCK = threading.Lock()


def stream_urls(exchange, base_urls):
    """{endpoint: URL} the exchange streams from, or None when it does not stream: it has no
    dialect, or --base-url moved its REST host and not its WebSocket host (a fake's REST must
    never be mixed with the real market). `--base-url NAME.ws=ws://HOST:PORT` moves every
    endpoint's scheme, host and port (its path stays); `NAME.ws.ENDPOINT=` moves one."""
    if not exchange.STREAM_URLS:
        return None
    moved = {name: url for name, url in base_urls.items() if name == "ws" or name.startswith("ws.")}
    if not moved and base_urls:
        return None
    urls = {}
    for endpoint, url in exchange.STREAM_URLS.items():
        host = moved.get("ws." + endpoint) or moved.get("ws")
        urls[endpoint] = _on_host(url, host) if host else url
    return urls


def _on_host(url, host):
    """`url`'s path and query on `host` (ws://127.0.0.1:8080), after the host's own path if it
    has one (ws://127.0.0.1:8080/futures: a proxy, or a fake serving two hosts' same paths)."""
    path = urllib.parse.urlsplit(url)
    moved = urllib.parse.urlsplit(host)
    return urllib.parse.urlunsplit((moved.scheme, moved.netloc, moved.path.rstrip("/") + path.path, path.query, ""))


class Streams:
    """Every stream connection of one plugin server. `urls_of(exchange)` gives an exchange's
    {endpoint: URL}, or None when it does not stream."""

    def __init__(self, urls_of):
        self.urls_of = urls_of
        self.connections = {}                # (NAME, endpoint, url, keys) -> [Connection]
        self.lock = threading.Lock()
        self.changed = threading.Condition()  # notified when a connection or a channel changes state
        self.changes = 0                      # ... and counted, so a waiter misses none
        self.closed = False

    def notify(self):
        with self.changed:
            self.changes += 1
            self.changed.notify_all()

    def wait_for(self, predicate, timeout):
        """Wait until predicate() holds, re-checked after every change of state (outside the
        condition's lock, so the predicate may take any lock); its last value."""
        deadline = time.monotonic() + timeout
        while True:
            with self.changed:
                seen = self.changes
            if predicate():
                return True
            with self.changed:
                if not self.changed.wait_for(lambda: self.changes != seen, deadline - time.monotonic()):
                    return predicate()

    def serve(self, exchange, method, kwargs, rest, keys=None, api=None):
        """(data, raw) from the stream when it holds them, else rest(); a channel is subscribed
        once REST has answered for it (a symbol the exchange refuses is never subscribed).
        `keys()` gives the robot's parsed keys, asked only for an endpoint in STREAM_LOGIN; `api`
        is the request's _kit.Api, for a dialect whose channel depends on the exchange's listing
        (stream_route)."""
        route = self._route(exchange, method, kwargs, keys, api)
        connection = self._carrier(exchange, route) if route else None
        if connection is not None:
            found = connection.read(route[-1], kwargs)
            if found is not None:
                return found
        started = time.monotonic()
        data, raw = rest()
        if route and not self.closed:
            connection = connection or self._connection(exchange, route, method)
            if method in SEEDED:
                connection.seed(route[-1], data, started, _rows_wanted(exchange, method, kwargs))
        return data, raw

    def _route(self, exchange, method, kwargs, keys, api=None):
        """(endpoint, url, keys, topic) of this request's channel, or None when no stream serves it."""
        if method not in STREAMED or self.closed:
            return None
        urls = self.urls_of(exchange)
        symbol = kwargs.get("symbol")
        where = _topic(exchange, symbol, method, kwargs.get("period"), api) if urls and symbol is not None else None
        if where is None:
            return None
        endpoint, topic = where
        if endpoint not in exchange.STREAM_LOGIN:
            keys = None                      # public channels never carry a key
        else:
            keys = _keys_or_none(keys)
            if keys is None:
                return None
        return endpoint, urls[endpoint], keys, topic

    def _carrier(self, exchange, route):
        """The connection that carries the route's topic already, or None."""
        endpoint, url, keys, topic = route
        with self.lock:
            for connection in self.connections.get((exchange.NAME, endpoint, url, keys), ()):
                if topic in connection.channels:
                    return connection
        return None

    def _connection(self, exchange, route, method):
        """The connection that now carries the route's topic: one with room for it (the channel is
        added under this lock, so a connection that just emptied cannot retire with it), or a new
        one. The subscription goes out at once when the connection is up, else when it connects."""
        endpoint, url, keys, topic = route
        with self.lock:
            group = self.connections.setdefault((exchange.NAME, endpoint, url, keys), [])
            carrying = [c for c in group if topic in c.channels]
            roomy = carrying or [c for c in group if len(c.channels) < exchange.STREAM_TOPICS]
            connection = roomy[0] if roomy else Connection(self, exchange, endpoint, url, keys)
            with connection.lock:
                connection.channels.setdefault(topic, Channel(topic, method))
            if not roomy:
                group.append(connection)
                connection.start()
        connection.subscribe_pending()
        return connection

    def retire_if_unused(self, connection):
        """True (and the connection forgotten) when it carries no channel: its thread ends."""
        with self.lock:
            with connection.lock:
                if connection.channels and not self.closed:
                    return False
            group = self.connections.get((connection.exchange.NAME, connection.endpoint, connection.url,
                                          connection.keys), [])
            if connection in group:
                group.remove(connection)
        self.notify()
        return True

    def pace(self, exchange):
        with _PACERS_LOCK:
            pacer = PACERS.setdefault(exchange.NAME, Pacer(*exchange.STREAM_CONNECTS))
        pacer.wait()

    def status(self):
        """{exchange NAME: its streams' figures} (ages in seconds, times in ms)."""
        now = time.monotonic()
        with self.lock:
            groups = [(key[0], list(group)) for key, group in self.connections.items()]
        found = {}
        for name, group in groups:
            for connection in group:
                row = found.setdefault(name, {"connections": 0, "connected": 0, "connected_since": None,
                                              "subscriptions": 0, "messages_per_second": 0.0,
                                              "last_message_age": None, "reconnects": 0, "resyncs": 0,
                                              "problem": None})
                _add(row, connection.status(now))
        return found

    def close(self):
        """Stop every connection (the server is shutting down)."""
        with self.lock:
            self.closed = True
            connections = [c for group in self.connections.values() for c in group]
        for connection in connections:
            connection.stop()


def _add(row, figures):
    row["connections"] += 1
    row["connected"] += figures["connected_since"] is not None
    for field in ("subscriptions", "reconnects", "resyncs"):
        row[field] += figures[field]
    row["problem"] = row["problem"] or figures["problem"]
    row["messages_per_second"] = round(row["messages_per_second"] + figures["messages_per_second"], 1)
    for field, pick in (("connected_since", min), ("last_message_age", min)):
        values = [v for v in (row[field], figures[field]) if v is not None]
        row[field] = pick(values) if values else None
