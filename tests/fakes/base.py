"""The common base of every fake exchange: a threaded HTTP server on 127.0.0.1, port 0.

A fake exchange subclasses FakeExchange, fills `routes` with {(VERB, path): function} (each
answers (status, JSON value), or (status, bytes) for an HTML page) and implements the exchange's own signature check and state. Every fake shares the fault
switches below, which tests arm for the next matching request(s):

    fake.inject("html")                 answer an HTML error page (a proxy in front of the API)
    fake.inject("5xx")                  answer HTTP 503
    fake.inject("429")                  answer the exchange's own rate-limit reply
    fake.inject("truncated")            answer the real reply cut in half
    fake.inject("delay", seconds=2)     the request reaches the exchange 2 s late (the network held it)
    fake.inject("queue", seconds=2)     the request arrives on time, but the engine takes it 2 s later
                                        (a busy matching engine): its validity deadline is then
                                        checked when the engine takes it, see deadline_of
    fake.inject("unknown")              do the work, then answer the exchange's own "outcome unknown"
                                        error (OKX 50004, Binance -1007, Bybit 10000)
    fake.inject("drop_after")           do the work (store the order), then close without answering
    fake.inject("drop_before")          close without doing anything
    fake.inject("echo", pad=N, skip=K)  answer an HTML error page echoing the request: every header
                                        (keys, passphrase, signature; the last sent first) but the
                                        first K, its line and body, after N dots (a proxy's debug
                                        page; N and K slide the secrets across a cut)
    fake.inject("echo_json")            answer the real (successful) reply with the request echoed in it
                                        as "echo": {"headers", "target", "body"} (an API that echoes)
    fake.inject("no_id")                do the work, then answer the success without its id rows:
                                        every key named like an id (ordId, orderId, orderLinkId, id,
                                        client_order_id) dropped, and every list row that had one
    fake.inject("nan")                  answer the real reply with every decimal number as "NaN"
                                        (a string "1.5" -> "NaN", a JSON number 1.5 -> a bare NaN);
                                        fake.inject("infinity") the same with "Infinity"
    fake.inject("hold")                 the request waits until fake.release() (fake.wait_held(n):
                                        until n requests are waiting there)
    fake.inject(kind, path=P, method="POST")   only requests to path P with that verb
    fake.clock_skew_ms = 60_000         the fake's clock runs ahead by a minute
    fake.jitter = 0.1                   each request arrives up to 0.1 s late (network jitter)
    fake.close_idle()                   close every idle keep-alive connection (as servers do)
    fake.wait_idle()                    wait until no request is being served (a delayed one ended)

Deadlines: an order request may carry the exchange's own validity deadline (OKX `expTime`,
Binance and Bybit the signed timestamp plus `recvWindow`). `request.arrived_ms` is when the
request reached the exchange (its gateway checks timestamps against it); a fake's order handlers
refuse a request the engine takes after its deadline (`fake.taken_late(request)`), as the
exchanges document, with the exchange's own code.

A fake also records, in `fake.signatures`, every signature a client sent (from its
`signature_of(request)`), so the secrets test can check that none of them leaks, and in
`fake.arrivals` an Arrival(at=time.monotonic(), method, path, query, body) of every request as it
arrived, which is what an exchange's rate limiter counts: `fake.most_in_window(seconds, VERB,
path)`. A fake may add headers to its replies (rate-limit usage) in `reply_headers`.
"""
import http.server
import json
import random
import re
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from collections import deque, namedtuple
from decimal import Decimal

from tests.fakes import ws

SERVE_POLL = 0.005   # seconds: stop() waits up to one poll of serve_forever, and every test stops servers


Arrival = namedtuple("Arrival", "at method path query body")


class FakeRequest:
    def __init__(self, handler, body):
        split = urllib.parse.urlsplit(handler.path)
        self.method = handler.command
        self.path = split.path
        self.raw_query = split.query
        self.query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        self.target = handler.path            # path?query exactly as sent, for signatures
        self.headers = handler.headers
        self.body = body.decode("utf-8", "replace")
        self.arrived_ms = None                # when it reached the exchange (set by FakeExchange)

    def json(self):
        return json.loads(self.body) if self.body else {}


class Fault:
    def __init__(self, kind, path, times, seconds, method, pad=0, skip=0):
        self.kind, self.path, self.times, self.seconds, self.method = kind, path, times, seconds, method
        self.pad, self.skip = pad, skip

    def matches(self, request):
        return self.path in (None, request.path) and self.method in (None, request.method)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _serve(self):
        if self.headers.get("Upgrade", "").lower() == "websocket" and self.command == "GET":
            return self.server.fake.serve_ws(self)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.fake.handle(self, FakeRequest(self, body))

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 128         # the plugin opens many connections at once (socketserver's default: 5)

    def handle_error(self, request, client_address):
        """A client that gave up (timeout, dropped fault) is normal here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def get_request(self):
        conn, addr = super().get_request()
        with self.fake.lock:
            self.fake.connections += 1
            self.fake.sockets = [s for s in self.fake.sockets if s.fileno() != -1] + [conn]
        return conn, addr


class FakeExchange:
    """Start with `with FakeOKX() as fake:` (or start()/stop()); `fake.url` is its base URL.

    A fake declares what the exchange-neutral suites (tests/test_contract.py,
    test_contract_swap.py, test_faults.py, test_secrets.py, ...) read from it:

        NAME              the exchange module's NAME, as the plugin serves it ("OKX")
        ACCESS_KEY        the access key a trader would type into FMZ for this fake ...
        SECRET_KEY        ... and the secret key, as typed (OKX: SECRET,PASSPHRASE)
        ORDER_PATH        the path orders are placed on (every order, or spot orders when
                          SWAP_ORDER_PATH is set)
        SWAP_ORDER_PATH   the path perpetual orders are placed on, when it is another; else None
        TIME_PATH         the path of the exchange's clock (a clock resync is counted on it)
        SIGNS_TIME        False for an exchange whose signature carries no timestamp (Alpaca):
                          no clock resync is then expected
        DEADLINES         False for an exchange whose orders carry no validity deadline (Alpaca,
                          Coinbase): a client order id never makes a second order there, which is
                          the plugin's proof instead (deadline_of answers None)
        CANCEL_ROUTE      (VERB, path) of a cancel
        CODES             engine refusal reason (tests/fakes/engine.py) -> the exchange's own
                          error code, as text ("unknown_symbol": "51001")
        FOREIGN_ORDER_ID  an order id in the plugin's form for which the fake has no order
        SWAPS             the perpetual swaps the exchange serves, of the engine's SWAP_MARKETS
        CONTRACT_UNITS    {swap: how many of the exchange's amount units one engine contract is}
                          for an exchange that counts swaps in coins; 1 for those not listed
        SYMBOL, AMOUNT    what the exchange-neutral suites (faults, hostile, exactly-once, risk)
                          trade and read: BTC_USDT and 0.01, or a swap and its contracts on an
                          exchange without spot markets
        SPOT              False for an exchange that serves perpetual swaps only (BloFin): the
                          spot suites skip it, and it must refuse spot symbols
        FUNDING_INTERVAL  the funding interval (ms) the plugin assumes for an exchange that
                          publishes none (BloFin: 8 h), its fake settling every swap so; else None
        engine            the shared Engine keeping the fake's state (set by each fake)
    and implements not_found, rate_limited and signature_of below.
    """

    NAME = ""
    ACCESS_KEY = SECRET_KEY = ""
    ORDER_PATH = TIME_PATH = ""
    SIGNS_TIME = True
    DEADLINES = True
    SWAP_ORDER_PATH = None
    CANCEL_ROUTE = ("", "")
    CODES = {}
    FOREIGN_ORDER_ID = ""
    SWAPS = ("BTC_USDT.swap", "ETH_USDT.swap", "BTC_USD.swap")
    CONTRACT_UNITS = {}
    SPOT = True
    SYMBOL, AMOUNT = "BTC_USDT", "0.01"
    FUNDING_INTERVAL = None

    CLIENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{0,31}")   # the client order ids the plugin sends here
    MAX_OPEN_ORDERS = None            # open orders the exchange allows per market (None: no such rule)

    def __init__(self):
        self.routes = {}
        self.faults = []
        self.clock_skew_ms = 0
        self.latency = 0.0               # seconds added to every answer (benchmarks)
        self.jitter = 0.0                # up to this many seconds (at random) before a request arrives
        self.lock = threading.RLock()    # one request changes state at a time, like a matching engine
        self.requests = []               # (verb, target, body) of every request, for assertions
        self.recent = deque(maxlen=100)  # the latest FakeRequests themselves (headers included)
        self.arrivals = []               # an Arrival per request, in the order they arrived
        self.signatures = []             # every signature clients sent (see signature_of)
        self.connections = 0             # TCP connections ever accepted
        self.sockets = []                # accepted connections, for close_idle()
        self.in_flight = 0
        self.idle = threading.Condition(self.lock)
        self.held = 0                    # requests waiting at a "hold" fault
        self.gate = threading.Event()    # set by release(): held requests go on
        self._server = None
        self.ws_routes = {}              # WebSocket path (or "/ws/*": any last segment) -> function(session)
        self.ws_sessions = []            # open sessions (tests/fakes/ws.py Session)
        self.ws_received = []            # (path, message) of every message clients sent, oldest first
        self.ws_connections = 0          # WebSocket sessions ever accepted
        self.ws_answers_ping = True      # False: pings (frames, or the exchange's text ping) go unanswered
        self.ws_idle_limit = None        # seconds a ws_serve session may stay silent (None: no limit)
        self.ws_changed = threading.Condition(self.lock)   # notified on every session and message

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, args=(SERVE_POLL,), daemon=True).start()
        return self

    def stop(self):
        self.release()                   # a held request must not outlive its fake
        self.ws_drop()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def now_ms(self):
        return int(time.time() * 1000) + self.clock_skew_ms

    def sent(self, path, verb=None):
        """(target, body) of every request to `path` (any query; by `verb` only, when given), oldest first."""
        return [(target, body) for v, target, body in self.requests
                if target.split("?")[0] == path and verb in (None, v)]

    # ------------------------------------------------------------------ WebSocket
    @property
    def ws_url(self):
        """The fake's WebSocket host, as `--base-url NAME.ws=` takes it (the path is the exchange's)."""
        return self.url.replace("http://", "ws://")

    def serve_ws(self, handler):
        """An upgrade request on the fake's HTTP port: the session runs in this handler's thread."""
        path = handler.path.split("?")[0]
        serve = self.ws_routes.get(path) or self.ws_routes.get(path.rsplit("/", 1)[0] + "/*")    # "/ws/*": /ws/0 ...
        session = ws.upgrade(handler) if serve else handler.send_error(404)
        if session is None:
            return
        session.changed = self._ws_notify
        session.answers_pings = lambda: self.ws_answers_ping
        with self.lock:
            self.ws_sessions.append(session)
            self.ws_connections += 1
            self.ws_changed.notify_all()
        try:
            serve(session)
        except (ws.Closed, OSError):
            pass
        finally:
            session.drop()
            with self.lock:
                self.ws_sessions.remove(session)
                self.ws_changed.notify_all()

    def _ws_notify(self):
        with self.lock:
            self.ws_changed.notify_all()

    def ws_note(self, session, message):
        """Record a message a client sent (what the stream tests read)."""
        with self.lock:
            self.ws_received.append((session.path.split("?")[0], message))
            self.ws_changed.notify_all()

    def ws_serve(self, session, answer, idle_close_code=1000):
        """Serve a session whose topics the fake keeps in `ws_subscriptions` (session -> set) while it
        lasts: each message the client sends is noted, then given to answer(session, message). A
        session silent for `ws_idle_limit` seconds (None: never closed) is closed with idle_close_code."""
        with self.lock:
            self.ws_subscriptions[session] = set()
        try:
            while True:
                try:
                    message = session.receive(timeout=self.ws_idle_limit)
                except socket.timeout:
                    return session.close(idle_close_code)
                self.ws_note(session, message)
                answer(session, message)
        finally:
            with self.lock:
                self.ws_subscriptions.pop(session, None)

    def text_pings_then(self, answer):
        """An answer for ws_serve: a text "ping" gets "pong" (unless ws_answers_ping is False), any
        other message goes to answer(session, message)."""
        def answering(session, message):
            if message != "ping":
                answer(session, message)
            elif self.ws_answers_ping:
                session.send_text("pong")
        return answering

    def ws_follow(self, session, action, topics):
        """Subscribe the session to topics (action "subscribe") or unsubscribe it (any other action);
        answer its subscriptions after, as {channel: [market, ...]}. Call under the lock."""
        subscribed = self.ws_subscriptions[session]
        for topic in topics:
            subscribed.add(topic) if action == "subscribe" else subscribed.discard(topic)
        now = {}
        for channel, market in sorted(subscribed):
            now.setdefault(channel, []).append(market)
        return now

    def ws_watched(self, *topics):
        """Whether some session is subscribed to one of topics; call under the lock."""
        return any(topic in subscribed for subscribed in self.ws_subscriptions.values() for topic in topics)

    def ws_channels_on(self, market):
        """The channels of the topics (channel, market) some session is subscribed to; call under the lock."""
        return {channel for subscribed in self.ws_subscriptions.values() for channel, key in subscribed if key == market}

    def ws_push(self, topic, message):
        """Send message to every session subscribed to topic (in `ws_subscriptions`); call under the lock."""
        text = json.dumps(message)
        for session, subscribed in self.ws_subscriptions.items():
            if topic in subscribed:
                session.send_text(text)

    def ws_wait(self, predicate, timeout=10.0):
        """Wait (bounded) until predicate() holds, re-checked on every WebSocket event."""
        with self.ws_changed:
            assert self.ws_changed.wait_for(predicate, timeout), "the WebSocket event never came"

    def ws_drop(self):
        """End every WebSocket session without a close frame (a network failure)."""
        with self.lock:
            sessions = list(self.ws_sessions)
        for session in sessions:
            session.drop()

    # ------------------------------------------------------------------ faults
    def inject(self, kind, path=None, times=1, seconds=0.0, method=None, pad=0, skip=0):
        """Arm a fault for the next `times` requests (to `path` / with `method` only, when given)."""
        with self.lock:
            self.faults.append(Fault(kind, path, times, seconds, method, pad, skip))

    def wait_held(self, count, timeout=10.0):
        """Wait until `count` requests wait at a "hold" fault."""
        with self.idle:
            assert self.idle.wait_for(lambda: self.held >= count, timeout), f"{self.held} held, not {count}"

    def release(self):
        """Let every held request (and every later one at a "hold" fault) go on."""
        self.gate.set()

    def forget(self):
        """Forget the arrivals so far, and what a fake that counts a budget (request weight) has
        counted: a benchmark row starts as if nothing had been sent before it."""
        with self.lock:
            self.arrivals.clear()

    def close_idle(self):
        """Close every open connection, as a server does with keep-alive connections left idle.
        Call it only while no request is in flight."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass                     # already closed

    def wait_idle(self, timeout=10.0):
        """Wait until no request is being served, e.g. until a delayed one has ended."""
        with self.idle:
            assert self.idle.wait_for(lambda: self.in_flight == 0, timeout), "a request never ended"

    def most_in_window(self, seconds, method=None, path=None, where=None, weight=None):
        """The most requests (to that verb and path, those `where(arrival)` accepts; or the most
        `weight(arrival)` summed) that arrived within any `seconds`: what the exchange's limiter
        would have counted at worst."""
        with self.lock:
            chosen = [a for a in self.arrivals if method in (None, a.method) and path in (None, a.path)
                      and (where is None or where(a))]
        most, first, total = 0, 0, 0
        for arrival in chosen:
            total += weight(arrival) if weight else 1
            while chosen[first].at <= arrival.at - seconds:
                total -= weight(chosen[first]) if weight else 1
                first += 1
            most = max(most, total)
        return most

    def _take_fault(self, request):
        with self.lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ serving
    def handle(self, handler, request):
        if self.jitter:
            time.sleep(random.uniform(0, self.jitter))     # the network was slow this time
        request.arrived_ms = self.now_ms()
        arrived = time.monotonic()
        with self.lock:
            self.arrivals.append(Arrival(arrived, request.method, request.path, request.query, request.body))
            self.requests.append((request.method, request.target, request.body))
            self.recent.append(request)
            signature = self.signature_of(request)
            if signature:
                self.signatures.append(signature)
            self.in_flight += 1
        try:
            self._handle(handler, request)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.idle.notify_all()

    def _handle(self, handler, request):
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(request)
        kind = fault.kind if fault else None
        if kind in ("delay", "queue"):
            time.sleep(fault.seconds)
        if kind != "queue":                 # a queued request arrived before it waited
            request.arrived_ms = self.now_ms()
        if kind == "drop_before":
            return self._drop(handler)
        if kind == "html":
            return self._send(handler, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        if kind == "5xx":
            return self._send(handler, 503, b"Service Unavailable", "text/plain")
        if kind == "echo":
            return self._send(handler, 502, _echo_page(request, fault.pad, fault.skip), "text/html")
        if kind == "hold":
            with self.idle:
                self.held += 1
                self.idle.notify_all()
            self.gate.wait()
        if kind == "429":
            status, reply = self.rate_limited()
        else:
            status, reply = self.route(request)
        if kind == "unknown":
            status, reply = self.outcome_unknown()
        if kind == "drop_after":
            return self._drop(handler)
        if kind == "no_id" and status < 300:
            reply = _without_ids(reply)
        if kind == "echo_json" and isinstance(reply, dict):
            reply = {**reply, "echo": {"headers": dict(request.headers.items()), "target": request.target,
                                       "body": request.body}}
        if kind in ("nan", "infinity"):
            reply = _not_finite(reply, "NaN" if kind == "nan" else "Infinity")
        body, content_type = (reply, "text/html") if isinstance(reply, bytes) else \
            (json.dumps(reply).encode(), "application/json")
        if kind == "truncated":
            body = body[: len(body) // 2]
        with self.lock:
            headers = self.reply_headers(request, status)
        self._send(handler, status, body, content_type, headers)

    def route(self, request):
        function = self.routes.get((request.method, request.path))
        if function is None:
            return self.not_found(request)
        with self.lock:
            return function(request)

    def _send(self, handler, status, body, content_type, headers=None):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _drop(handler):
        handler.close_connection = True
        handler.connection.shutdown(2)

    # ------------------------------------------------------------------ per exchange
    def reply_headers(self, request, status):
        """Headers the exchange adds to a reply (its rate-limit counters); called under the lock."""
        return {}

    def not_found(self, request):
        raise NotImplementedError

    def rate_limited(self):
        raise NotImplementedError

    def outcome_unknown(self):
        """(status, reply) of the exchange's documented "the outcome is unknown" error."""
        raise NotImplementedError

    def deadline_of(self, request):
        """The validity deadline (ms, exchange clock) an order request carries, or None."""
        raise NotImplementedError

    def taken_late(self, request):
        """Whether the engine, now, takes a request after the deadline it carries: the exchange
        then refuses it, however it got delayed."""
        deadline = self.deadline_of(request)
        return deadline is not None and self.now_ms() > deadline

    def signature_of(self, request):
        """The signature a private request carries (header or query field), or None."""
        raise NotImplementedError


# -- Fault bodies, the same for every exchange --------------------------------------------------------

def _echo_page(request, pad, skip):
    """A proxy's error page that echoes the request it got, secrets and all."""
    lines = [f"{name}: {value}" for name, value in reversed(request.headers.items())]
    echo = "\n".join(lines[skip:] + [f"{request.method} {request.target}", "", request.body])
    text = "<html><pre>" + "." * pad + echo
    return (text + "</pre></body></html>").encode()


def _is_id(name):
    return name.lower() == "id" or name.lower().endswith(("_id", "id"))


def _without_ids(value):
    """The reply with every id-named key dropped, and every list row that had one."""
    if isinstance(value, dict):
        return {name: _without_ids(item) for name, item in value.items() if not _is_id(name)}
    if isinstance(value, list):
        return [_without_ids(item) for item in value if not (isinstance(item, dict) and any(map(_is_id, item)))]
    return value


def _not_finite(value, word):
    """The reply with every decimal number (a string or JSON number with a point) as `word`: a
    string stays a string ("NaN"), a JSON number becomes the bare token (NaN, Infinity), which
    is not JSON but what some servers write."""
    if isinstance(value, dict):
        return {name: _not_finite(item, word) for name, item in value.items()}
    if isinstance(value, list):
        return [_not_finite(item, word) for item in value]
    if isinstance(value, float):
        return float(word.lower().replace("infinity", "inf"))
    if isinstance(value, str) and re.fullmatch(r"-?\d+\.\d+", value):
        return word
    return value


def book_rows(side, descending):
    """A WebSocket book side {price text: size text} as [[price, size], ...], best first."""
    return [[p, s] for p, s in sorted(side.items(), key=lambda level: Decimal(level[0]), reverse=descending)]
