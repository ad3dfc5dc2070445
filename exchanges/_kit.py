"""What every exchange module shares, apart from the rate limit (exchanges/_throttle.py) and
orders (exchanges/_orders.py): the error type, symbols, numbers, the transport (connection pool,
requests, the Api a handler calls through), one single-flight for shared reads and the caches
(markets, account settings), and reading replies.

Nothing here names an exchange. An exchange module imports from this file; of the project, this
file imports only exchanges/_throttle.py. See exchanges/__init__.py for the contract a module fulfils.

Sections, in order: errors; symbols; numbers; HTTP: connection pool; single-flight (one call for
callers asking the same at once, and optionally its value kept: shared reads and the caches);
HTTP: requests and the Api a handler calls through; caches: markets; account settings; the shared
state (POOL, SHARED_READS, MARKETS, ACCOUNT_SETTINGS, CLOCK_OFFSETS); reading replies (market,
market_spec, specs_by_exchange_id, markets_answer, book_levels, candle_rows, signed_io: exchange.IO
passed through, one_or_all).
"""
import collections.abc
import functools
import hashlib
import http.client
import json
import math
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation, ROUND_DOWN, ROUND_HALF_UP

from exchanges._throttle import Refused, endpoint_limits

DEFAULT_TIMEOUT = 10.0        # seconds, connect and each read, for every outbound call
POOL_MOST = 256               # idle keep-alive connections kept per exchange host, at most (see Pool)
RETRY_BACKOFF = 0.2           # seconds before the single retry of an idempotent read
RATE_LIMIT_WAIT = 0.5         # seconds a read waits once after the exchange said "slow down"
MARKETS_TTL = 300.0           # seconds instrument specs are trusted before reloading
DEADLINE_MAX_MS = 60_000      # an order's validity deadline is --timeout after signing, at most this
DEADLINE_MIN_MS = 100         # and at least this (Binance's recvWindow and Bitvavo's access window
                              # take 100..60000 ms)
DEADLINE_MARGIN_MS = 100      # how far past a deadline the exchange's clock must read before a late
                              # request counts as surely refused (its servers' clocks differ a little)
DEADLINE_CHECKS = 3           # reads of the exchange's clock while waiting a deadline out
NUMBER_RANGE = 20             # the docker's numbers lie within 1e-20 .. 1e20 (beyond: a typo or an attack)
USER_AGENT = "fmz-plugin"
DEFAULT_PORTS = {"http": 80, "https": 443}
IO_PREFIX = "__api_"          # exchange.IO("api", ...) arrives as method "__api_<path>", served by METHODS["__api_"]
SIGNATURE_MIN = 16            # characters: shorter values a signer adds (a key version, a window) are not secret
SHORT_SECRET = 8              # characters: a shorter secret is blanked only where it stands alone
# The fields of FMZ's Market, what `markets` answers; a spec may keep more (quote_step, ...).
MARKET_FIELDS = ("symbol", "base_asset", "quote_asset", "tick_size", "amount_size", "price_precision",
                 "amount_precision", "min_qty", "max_qty", "min_notional", "max_notional", "ct_val", "ct_val_ccy")


# -- Errors ----------------------------------------------------------------------------------------

class PluginError(Exception):
    """The one error type: its message is what the trader reads in the robot log.

    `code` is the exchange's own error code when the exchange refused; `ambiguous` is set
    when a request may have taken effect but no answer says so (timeout, dropped connection,
    5xx, an exchange's "outcome unknown" code), which is what decides whether an order is looked
    up; `rate_limited` when the exchange (or our own throttle) refused it for going too fast.
    `deadline` is the validity deadline (ms, exchange clock) of the request that failed, when it
    carried one: past it, the exchange refuses that request however late it arrives.
    """

    def __init__(self, message, code=None, ambiguous=False, rate_limited=False, deadline=None):
        super().__init__(message)
        self.code = code
        self.ambiguous = ambiguous
        self.rate_limited = rate_limited
        self.deadline = deadline


# -- Symbols ---------------------------------------------------------------------------------------

class Symbol:
    """An FMZ symbol: `ETH_USDT` (spot), `BTC_USDT.swap` (perpetual), `USDT.swap` (a range).

    `base` is empty for a range, which names every instrument of one quote and market type.
    """

    __slots__ = ("base", "quote", "kind")

    def __init__(self, base, quote, kind="spot"):
        self.base, self.quote, self.kind = base, quote, kind

    def __str__(self):
        pair = f"{self.base}_{self.quote}" if self.base else self.quote
        return pair if self.kind == "spot" else f"{pair}.{self.kind}"

    def __repr__(self):
        return f"Symbol({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, Symbol) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    @property
    def is_swap(self):
        return self.kind == "swap"

    def covers(self, other):
        """A range (`USDT.swap`) covers every symbol of its quote and kind; a symbol itself only."""
        if self.base:
            return self == other
        return other.quote == self.quote and other.kind == self.kind


_CURRENCY = re.compile(r"[A-Za-z0-9]{1,20}")     # ASCII only, checked before upper-casing
KINDS = ("spot", "swap")


def parse_symbol(text, allow_range=False):
    """`eth_usdt` -> Symbol('ETH_USDT'); `BTC_USDT.swap` -> a swap; `USDT.swap` only as a range.

    Letters are checked to be ASCII before they are upper-cased: Unicode rules would turn the
    Turkish dotless `ı` into `I` (`ıNJ_USDT` -> INJ_USDT), a symbol the trader never wrote."""
    if not isinstance(text, str) or not text.strip():
        raise PluginError("symbol is missing (expected e.g. ETH_USDT)")
    pair, _, kind = text.strip().partition(".")
    kind = (kind or "spot").lower() if kind.isascii() else kind
    if kind not in KINDS:
        raise PluginError(f"invalid symbol {_short(text, 60)}: market type {_short(kind, 20)} "
                          f"is not one of {', '.join(KINDS)}")
    parts = pair.split("_")
    if len(parts) not in ((1, 2) if allow_range else (2,)) or not all(_CURRENCY.fullmatch(p) for p in parts):
        raise PluginError(f"invalid symbol {_short(text, 60)}: expected BASE_QUOTE such as ETH_USDT or BTC_USDT.swap")
    parts = [part.upper() for part in parts]
    return Symbol(parts[0], parts[1], kind) if len(parts) == 2 else Symbol("", parts[0], kind)


# -- Numbers: the docker's and the exchanges', rounding, exact text --------------------------------

def parse_number(value, name):
    """The docker's value (a string or a number) as a finite Decimal; raises PluginError naming
    `name` for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not _ascii_number(value):
        raise PluginError(f"{name} must be a number, got {_short(value)}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation as error:
        raise PluginError(f"{name} must be a number, got {_short(value)}") from error
    if not number.is_finite():
        raise PluginError(f"{name} must be a finite number, got {_short(value)}")
    if number and not -NUMBER_RANGE <= number.adjusted() < NUMBER_RANGE:
        raise PluginError(f"{name} is out of range (1e-{NUMBER_RANGE} to 1e{NUMBER_RANGE}), got {_short(value)}")
    return number


def float_or_zero(value):
    """An exchange's numeric field of market data (a ticker, a trade) as the float a robot reads:
    FMZ reads every number of an answer as a float64, and the JSON encoder writes a float itself,
    where a Decimal costs a call back into Python per number (a hundred trades: two hundred).
    Empty, absent or garbled fields are 0.0; a number that is not finite is an error, as in
    number_or_zero. Amounts and prices toward the exchange stay exact decimal strings."""
    if value is None or value == "":
        return 0.0
    try:
        number = float(value if type(value) is str else str(value))
    except ValueError:
        return 0.0
    if not math.isfinite(number):
        raise _not_finite(value)
    return number


def _not_finite(value):
    """The error for an exchange's number that is not finite: no JSON, and no robot may compute with it."""
    return PluginError(f"the exchange answered {_short(value, 20)} where a number belongs: not a finite number")


def _ascii_number(value):
    """Decimal() also reads `1_000` and digits of other scripts (Arabic-Indic `١٢٣`); a docker
    sends neither, so a number in the docker's text is ASCII without underscores."""
    return not isinstance(value, str) or (value.isascii() and "_" not in value)


def number_or_zero(value):
    """An exchange's numeric field as Decimal; empty, absent or garbled fields (common in real
    replies) are 0, never an error. A number that is not finite ("NaN", "Infinity", a bare NaN
    token) is an error: it is no JSON, and no robot may compute with it."""
    if value is None or value == "":
        return Decimal(0)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    if not number.is_finite():
        raise _not_finite(value)
    return number


def whole_or_zero(value):
    """An exchange's whole-number field (a time in ms, a count of decimals) as int, cut toward
    zero; empty, absent or garbled fields (NaN and infinity included) are 0, never an error."""
    try:
        return int(number_or_zero(value))
    except PluginError:
        return 0


def plain(number):
    """Exact decimal text for an exchange: `0.00001`, never `1e-05`, no trailing zeros."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def round_down(number, step):
    """Round down to a multiple of step (amounts: an order never exceeds what was asked)."""
    if not step:
        return number
    return (number / step).to_integral_value(ROUND_DOWN) * step


def round_nearest(number, step):
    """Round to the nearest multiple of step (prices: the tick closest to what was asked)."""
    if not step:
        return number
    return (number / step).to_integral_value(ROUND_HALF_UP) * step


def precision(step):
    """Digits after the point of a step size: 0.001 -> 3, 1 -> 0."""
    return max(0, -step.normalize().as_tuple().exponent) if step else 0


def _short(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def iso_ms(ms):
    """ISO-8601 UTC with milliseconds, e.g. 2020-12-08T09:08:57.715Z."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def now_ms():
    return int(time.time() * 1000)


# -- HTTP: connection pool -------------------------------------------------------------------------

class Pool:
    """Idle keep-alive connections per host (scheme, host, port), shared by all threads.

    A connection is taken out while in use, so no two threads share one. A host keeps as many
    idle connections as it ever had in use at once (at most `most`): 32 robots signing at once
    find their 32 connections again, where a fixed pool of 8 closed the rest and opened new ones
    (a TLS handshake each on a real exchange). An idle connection the server has closed is
    noticed before reuse and dropped. The TLS context (certificates and host names verified) is
    made for the first https connection, so a start that never needs it does not pay for it.
    """

    def __init__(self, most=POOL_MOST):
        self.most = most
        self.idle = {}                # key -> idle connections, the most recently used last
        self.busy = {}                # key -> connections in use now
        self.peak = {}                # key -> the most ever in use at once: how many idle ones to keep
        self.opened = 0               # connections ever opened: the benchmark and the tests count them
        self.lock = threading.Lock()
        self._tls = None

    @property
    def tls(self):
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def take(self, scheme, host, port, timeout):
        key = (scheme, host, port)
        with self.lock:
            busy = self.busy[key] = self.busy.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), busy)
            idle = self.idle.get(key, [])
            while idle:
                conn = idle.pop()
                if not _closed_by_peer(conn):
                    if conn.timeout != timeout:
                        conn.timeout = timeout
                        conn.sock.settimeout(timeout)
                    return conn, True
                conn.close()
            self.opened += 1
        return Connection(scheme, host, port, timeout, self.tls if scheme == "https" else None), False

    def give_back(self, scheme, host, port, conn):
        """A connection whose answer was read whole: kept for the next call to this host."""
        key = (scheme, host, port)
        with self.lock:
            self.busy[key] -= 1
            idle = self.idle.setdefault(key, [])
            if len(idle) < min(self.peak[key], self.most):
                idle.append(conn)
                return
        conn.close()

    def discard(self, scheme, host, port, conn):
        """A connection that failed or that the server will close: closed, not kept."""
        with self.lock:
            self.busy[(scheme, host, port)] -= 1
        conn.close()

    def clear(self):
        """Close every idle connection (tests: a dead fake's sockets must not pile up)."""
        with self.lock:
            idle, self.idle = self.idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _closed_by_peer(conn):
    """True when an idle connection's socket is gone or reads as closed (the server hung up, or
    sent bytes nobody asked for): one look without waiting, through the connection's own poll
    object (one system call, and no select(), which cannot watch a descriptor numbered 1024 or
    more). Where the system has no poll (Windows): one recv(MSG_PEEK) with the socket made
    non-blocking for it."""
    if conn.sock is None:
        return True
    if conn.poller is not None:
        return bool(conn.poller.poll(0))          # readable, hung up or failed: not reusable
    try:
        conn.sock.setblocking(False)
        socket.socket.recv(conn.sock, 1, socket.MSG_PEEK)      # the TCP stream's bytes, under TLS too (an
    except BlockingIOError:                                    # SSLSocket's own recv refuses MSG_PEEK)
        return False                  # nothing to read: open, and quiet as an idle one should be
    except (OSError, ValueError):
        return True
    finally:
        conn.sock.settimeout(conn.timeout)
    return True                       # EOF, or unasked-for bytes: either way not reusable


class Connection:
    """One HTTP/1.1 keep-alive connection to an exchange's host, connected on its first request.
    A request leaves in one write; its reply is read through one buffered reader kept for the
    connection's life, framed as RFC 9112 says (status line, headers, then the body by
    Content-Length, chunked, or up to the close). http.client makes a reader, a response object
    and a header parser per reply and checks every header with regular expressions: this does
    the same work for half the CPU, and raises http.client's own errors, so callers tell a
    dropped keep-alive (RemoteDisconnected) from a broken reply (HTTPException) as before."""

    def __init__(self, scheme, host, port, timeout, tls=None):
        self.scheme, self.host, self.port, self.timeout, self.tls = scheme, host, port, timeout, tls
        name = f"[{host}]" if ":" in host else host                     # an IPv6 address in brackets
        self.host_header = name if port == DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
        self.sock = self.reader = self.poller = None

    def request(self, method, target, body, headers):
        """Send one request and read its reply: (status, body bytes, Headers, will_close)."""
        head = _request_head(method, target, self.host_header, headers, len(body) if body or method in
                             ("POST", "PUT", "PATCH") else None)
        if self.sock is None:
            self.connect()
        self.sock.sendall(head + body)
        return self._reply(method)

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # a small request leaves at once
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)   # certificate and name verified
        except BaseException:
            sock.close()
            raise
        self.sock, self.reader = sock, sock.makefile("rb")
        if hasattr(select, "poll"):
            self.poller = select.poll()              # kept: Pool looks at an idle connection through it
            self.poller.register(sock, select.POLLIN)

    def _reply(self, method):
        while True:
            version, status, headers = self._head()
            if not 100 <= status < 200:           # 100 Continue, 103 Early Hints: the reply follows
                break
        tokens = headers.get("connection", "").lower()
        will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        if method == "HEAD" or status in (204, 304):
            return status, b"", headers, will_close
        if headers.get("transfer-encoding", "").lower().rstrip().endswith("chunked"):
            return status, _chunked_body(self.reader), headers, will_close
        length = headers.get("content-length")
        if length is None:
            return status, self.reader.read(), headers, True          # the body ends where the connection does
        if not length.isdigit():
            raise http.client.HTTPException(f"Content-Length {length[:20]!r} is not a number")
        return status, _exactly(self.reader, int(length)), headers, will_close

    def _head(self):
        """(version, status, Headers) of a reply: its status line and headers, taken at once when
        they are in the reader's buffer (see whole_head), else a line at a time."""
        lines = whole_head(self.reader)
        if lines is None:
            line = self.reader.readline(http.client._MAXLINE + 1)
            if len(line) > http.client._MAXLINE:
                raise http.client.LineTooLong("status line")
            version, status = _status_line(line.decode("iso-8859-1").rstrip("\r\n") if line else None)
            return version, status, Headers(header_lines(self.reader))
        headers = _counted(lines[1:])
        version, status = _status_line(lines[0])
        return version, status, Headers(headers)

    def close(self):
        for part in (self.reader, self.sock):
            if part is not None:
                part.close()
        self.sock = self.reader = self.poller = None


def _request_head(method, target, host, headers, length):
    """A request's line and headers as bytes. A target or header holding a control character
    (a line break would end the header early and start a request of someone else's making) is
    refused before anything is sent."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity",
             *(f"{name}: {value}" for name, value in headers.items())]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if _CONTROL.search("".join(lines)) or " " in target:
        raise PluginError(f"refused to send {method} {_short(target)}: a control character or space in its "
                          "target or headers")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")        # a tab may stand in a header value


def _status_line(line):
    """(version, status) of a reply's status line, e.g. "HTTP/1.1 200 OK" (None: nothing came)."""
    if line is None:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    version, _, rest = line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit() or rest[3:4] not in ("", " "):
        raise http.client.BadStatusLine(repr(line[:80]))
    return version, int(rest[:3])


def _chunked_body(reader):
    """A chunked body, joined: chunks of a hex size line (extensions after `;` ignored), the
    data and CRLF, up to the 0 chunk and its trailer lines."""
    parts = []
    while True:
        size = reader.readline(http.client._MAXLINE + 1).split(b";", 1)[0].strip()
        if not _HEX_SIZE.fullmatch(size):
            raise http.client.IncompleteRead(b"".join(parts))
        if int(size, 16) == 0:
            header_lines(reader)                  # trailers, if any, then the blank line
            return b"".join(parts)
        parts.append(_exactly(reader, int(size, 16)))
        if reader.readline(3) not in (b"\r\n", b"\n"):
            raise http.client.IncompleteRead(b"".join(parts))


_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


def _exactly(reader, length):
    data = reader.read(length)
    if len(data) < length:
        raise http.client.IncompleteRead(data, length - len(data))
    return data


def header_lines(fp):
    """A message's header lines up to the blank line (a reply's here, a docker's request's in
    fmz_plugin's Handler), as text, within http.client's own limits."""
    lines = whole_head(fp)
    return _counted(_lines_one_by_one(fp) if lines is None else lines)


def _counted(lines):
    """Header lines, once they are no more than http.client takes."""
    if len(lines) > http.client._MAXHEADERS:
        raise http.client.HTTPException(f"got more than {http.client._MAXHEADERS} headers")
    return lines


def whole_head(fp):
    """The lines of a message's head up to the blank line, as text, when the reader's buffer
    holds all of it with every line ended by CRLF (usually: a head arrives with the first bytes),
    taken from it at once; else None, and nothing is read. No line is then over http.client's
    limit: a buffer holds fewer bytes."""
    waiting = fp.peek() if hasattr(fp, "peek") else b""
    blank = -1 if waiting.startswith(b"\r\n") else waiting.find(b"\r\n\r\n")
    head = waiting[:blank + 2]
    if blank <= 0 or not head.count(b"\n") == head.count(b"\r") == head.count(b"\r\n") or \
            len(head) > http.client._MAXLINE:
        return None
    return fp.read(blank + 4)[:blank].decode("iso-8859-1").split("\r\n")


def _lines_one_by_one(fp):
    lines = []
    while True:
        line = fp.readline(http.client._MAXLINE + 1)
        if len(line) > http.client._MAXLINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line.decode("iso-8859-1").rstrip("\r\n"))
        if len(lines) > http.client._MAXHEADERS:
            return lines


class Headers(dict):
    """Header values by name, any case (`get("X-MBX-USED-WEIGHT-1M")`); of a repeated header,
    the first, as email's Message.get answers. `names`: every name as sent, in order. Made from
    header lines as text; a line that starts blank continues the one before (obsolete folding)."""

    def __init__(self, lines=()):
        super().__init__()
        self.names = []
        for line in lines:
            if line[:1] in (" ", "\t") and self.names:
                name = self.names[-1].lower()
                dict.__setitem__(self, name, dict.__getitem__(self, name) + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            self.names.append(name.strip())
            self.setdefault(name.strip().lower(), value.strip())

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())

    def get_all(self, name, failobj=None):
        """What HTTPResponse.getheader asks for."""
        return [self[name]] if name in self else failobj


# -- Single-flight: one call for callers asking the same at once ------------------------------------

class SingleFlight:
    """One call per key for the callers asking the same thing at the same time (single-flight),
    and with `keep`, its value kept for later callers (for `ttl` seconds, or until forgotten).

    The first caller of a key leads: it makes the call. Whoever asks for that key while the
    call is under way joins it and gets its outcome instead of a call of their own. A leader's
    call that asks for its own key again runs that call itself (it cannot wait for itself).

    The one rule for a failure: every caller who joined meets the leader's failure, as the
    leader does. A PluginError reaches each as a copy of its own (one exception object is not
    raised in many threads); any other exception is raised again as it is, so each caller's
    path answers it as it answers the leader's (the core: "internal error in <method>"). A
    failure is never kept: the next caller asks again.

    Two uses. SHARED_READS (keep=False): identical reads under way at once are one exchange
    call (see Api._shared_as): 30 robots watching one ticker cost one call per round trip,
    within the exchange's public limit. Never across different params (a depth of 5 levels is
    not a depth of 10), and never an answer older than the call that was joined: the call
    leaves the table the moment its reply is in. What is shared is the raw reply; each caller
    decodes its own copy. The caches (keep=True: MarketsCache, AccountSettings): 40 robots
    trading on a cold cache make one instrument-list request, not 40 that the rate limit
    then refuses.
    """

    def __init__(self, keep=False, ttl=None):
        self.keep, self.ttl = keep, ttl
        self.values = {}              # key -> (monotonic time kept, value), when keep
        self.flights = {}             # key -> _Flight under way
        self.lock = threading.Lock()

    def get(self, key, call):
        """The kept value of `key`, else call()'s result, or that of the same call under way."""
        with self.lock:
            kept = self.values.get(key)
            if kept and (self.ttl is None or time.monotonic() - kept[0] < self.ttl):
                return kept[1]
            flight = self.flights.get(key)
            if flight is None:
                flight = self.flights[key] = _Flight()
                role = "lead"
            elif flight.owner == threading.get_ident():
                role = "again"        # the leader's own call asks for its key
            else:
                flight.joined += 1
                flight.landed = flight.landed or threading.Event()    # made by the first to wait
                role = "join"
        if role == "join":
            return flight.outcome()
        if role == "again":
            return call()
        return self._lead(key, flight, call)

    def _lead(self, key, flight, call):
        try:
            flight.result = call()
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self.lock:
                if self.keep and flight.error is None:
                    self.values[key] = (time.monotonic(), flight.result)
                del self.flights[key]
            if flight.landed is not None:          # someone joined: nobody can any more
                flight.landed.set()
        return flight.result

    def forget(self, key):
        with self.lock:
            self.values.pop(key, None)

    def clear(self):
        with self.lock:
            self.values.clear()


class _Flight:
    """One call under way: the thread leading it, then its result or failure for those who joined."""

    __slots__ = ("owner", "landed", "result", "error", "joined")

    def __init__(self):
        self.owner = threading.get_ident()
        self.landed = None            # an Event, once a caller joins (most calls are never joined)
        self.result, self.error, self.joined = None, None, 0

    def outcome(self):
        self.landed.wait()            # the leader's calls have their own timeouts
        if isinstance(self.error, PluginError):
            error = self.error        # each caller raises its own copy of the same error
            raise PluginError(str(error), code=error.code, ambiguous=error.ambiguous,
                              rate_limited=error.rate_limited)
        if self.error is not None:
            raise self.error
        return self.result


# -- Secrets: blanked wherever they could be shown ------------------------------------------------

def key_parts(access_key, secret_key):
    """The secrets of a pair of keys, as the exchange reads them: each key, and each part of a
    SECRET,PASSPHRASE Secret Key."""
    return [part.strip() for value in (access_key, secret_key) if isinstance(value, str)
            for part in [value] + value.split(",") if part.strip()]


def written_forms(secret):
    """How a reply may spell `secret`: as is, JSON-escaped (once or twice, with `/` as `\\/`
    too) and URL-encoded (%2F or %2f, `+` or %20 for a space)."""
    escaped = json.dumps(secret)[1:-1]
    quoted = [urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret), urllib.parse.quote(secret)]
    lower = [re.sub(r"%[0-9A-F]{2}", lambda hit: hit.group().lower(), form) for form in quoted]
    return {secret, escaped, json.dumps(escaped)[1:-1], escaped.replace("/", "\\/"), *quoted, *lower}


def blank_secrets(text, secrets):
    """`text` (str, or a reply's bytes) with every written form of every secret blanked as ***.
    The longest go first, so a key that begins another leaves no tail. A secret under
    SHORT_SECRET characters is blanked where it stands alone (not inside a longer word, which
    would blank every `a`). Text holding none of them is returned as it is, unscanned twice."""
    as_bytes = isinstance(text, bytes)
    blank = b"***" if as_bytes else "***"
    forms = {form for secret in secrets for form in written_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        needle = form.encode() if as_bytes else form
        if needle not in text:
            continue
        if len(form) >= SHORT_SECRET:
            text = text.replace(needle, blank)
        else:
            alone = rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])"
            text = re.sub(alone.encode() if as_bytes else alone, blank, text)
    return text


# -- HTTP: requests and the Api a handler calls through --------------------------------------------

class Request:
    """One outbound call as the signer sees it: the signer may add headers and query fields.

    `window_ms` is set on orders and cancels (`deadline=True`): how long after its signature the
    exchange may still take the request, and `deadline` (exchange clock, ms) = the signing time +
    window_ms. The signer writes them the exchange's way (OKX `expTime`, a `recvWindow`, ...)."""

    __slots__ = ("method", "path", "query", "body", "headers", "window_ms", "deadline")

    def __init__(self, method, path, query="", body="", headers=None):
        self.method, self.path, self.query, self.body = method, path, query, body
        self.headers = headers or {}
        self.window_ms = None
        self.deadline = None

    @property
    def target(self):
        return f"{self.path}?{self.query}" if self.query else self.path


def _signed_values(before, request):
    """The header and query values a signer added to a request that could be secret: the
    signature, above all, which an exchange may echo back in an error and which must then be
    blanked like the keys (timestamps, windows and other numbers are left out)."""
    headers, query = before
    added = [value for name, value in request.headers.items() if headers.get(name) != value]
    known = set(urllib.parse.parse_qsl(query, keep_blank_values=True))
    added += [value for pair in urllib.parse.parse_qsl(request.query, keep_blank_values=True)
              if pair not in known for value in pair[1:]]
    added += [part for value in added for part in re.split(r"[\s.]+", str(value))[1:]]   # a JWT's parts
    return [value for value in map(str, added) if len(value) >= SIGNATURE_MIN and not value.isdigit()]


class Api:
    """One exchange, one set of keys, one base URL: what a handler calls the exchange through.

    The exchange module supplies `sign(request, keys, now_ms)` and `check(status, reply)`;
    this class supplies the transport, timeouts, the retry policy and the clock offset
    (CLOCK_OFFSETS). Every call says whether it is signed: `signed=` is a required keyword.
    """

    def __init__(self, exchange, access_key="", secret_key="", base_urls=None,
                 timeout=DEFAULT_TIMEOUT, pool=None, throttle=None, max_wait=None, shared=None):
        self.exchange = exchange
        self.access_key, self.secret_key = access_key, secret_key
        self.base_urls = {name: url.rstrip("/") for name, url in (base_urls or {}).items()}
        self.timeout = timeout
        self.pool = pool or POOL
        self.throttle = throttle      # a Throttle, or None to send as fast as asked
        self.max_wait = max_wait      # seconds a call may wait for its turn (None: the throttle's own)
        self.shared = shared          # a SingleFlight joining identical public GETs, or None
        self._mine = threading.local()   # .signatures, .sent_write, .accepted_write: this thread's
        self._keys = None
        self._digest = None

    @property
    def signatures(self):
        """What the signer added to this thread's requests since new_request() (see
        _signed_values), for redact(): per thread, since one Api serves every robot that has
        these keys and settings (fmz_plugin keeps it), each request in a thread of its own."""
        mine = getattr(self._mine, "signatures", None)
        if mine is None:
            mine = self._mine.signatures = []
        return mine

    @property
    def sent_write(self):
        """The last request that may change state (an order) this thread sent, for place_once."""
        return getattr(self._mine, "sent_write", None)

    @property
    def accepted_write(self):
        """... and the last one the exchange accepted (see _orders._sent)."""
        return getattr(self._mine, "accepted_write", None)

    def new_request(self):
        """A new request starts in this thread: the signatures of the last one are forgotten."""
        self.signatures.clear()

    @property
    def base_url(self):
        return self.url_for(None)

    def url_for(self, host):
        """The base URL of one of the exchange's hosts (None = its main one, BASE_URL).

        `--base-url NAME=URL` replaces every host; `--base-url NAME.HOST=URL` one of the
        module's other HOSTS (e.g. a separate futures API host) alone."""
        if host is None:
            return self.base_urls.get("") or self.exchange.BASE_URL
        return self.base_urls.get(host) or self.base_urls.get("") or self.exchange.HOSTS[host]

    @property
    def keys(self):
        """The exchange's parsed keys, parsed on first private call so public data needs none."""
        if self._keys is None:
            self._keys = self.exchange.parse_keys(self.access_key, self.secret_key)
        return self._keys

    @property
    def name(self):
        return self.exchange.NAME

    def now(self):
        return now_ms() + CLOCK_OFFSETS.get((self.name, self.base_url), 0)

    def get(self, path, params=None, *, signed, host=None, per_key=False):
        """A GET. `per_key=True` marks a signed read whose answer is the same for every caller
        with these keys (market data an exchange serves only signed): SHARED_READS may then join
        identical ones of the same keys, never of other keys."""
        return self.call("GET", path, params, signed=signed, idempotent=True, host=host, per_key=per_key)

    def post(self, path, body=None, *, signed, idempotent=False, host=None, deadline=False):
        return self.call("POST", path, body, signed=signed, idempotent=idempotent, host=host, deadline=deadline)

    @property
    def window_ms(self):
        """The validity window of an order or cancel: --timeout, so the exchange never takes a
        request later than the plugin would have waited for its answer."""
        return max(DEADLINE_MIN_MS, min(int(self.timeout * 1000), DEADLINE_MAX_MS))

    def call(self, method, path, params=None, *, signed, idempotent=None, host=None, deadline=False, per_key=False):
        """Send, decode and check one call.

        Reads retry once on a reset, timeout or 5xx, and wait once (RATE_LIMIT_WAIT) when the
        exchange says "too many requests"; writes never retry here (see place_once). A signed
        call refused for clock skew resyncs the offset and is sent once more: it was refused,
        so this is safe even for orders. `deadline=True` (orders, cancels) has the request carry
        the exchange's validity deadline (Request.window_ms); an ambiguous failure then names it
        in PluginError.deadline, for wait_past."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        attempts = 2 if idempotent else 1
        once = lambda: self._call_once(method, path, params, signed, idempotent, host, deadline, per_key)
        for attempt in range(attempts):
            try:
                return once()
            except PluginError as error:
                if signed and error.code in self.exchange.CLOCK_ERRORS:
                    self.sync_clock()
                    return once()
                retry_read = idempotent and attempt + 1 < attempts
                if retry_read and error.rate_limited and error.code is not None:
                    time.sleep(RATE_LIMIT_WAIT)       # the exchange's limit, not our throttle's
                elif retry_read and error.ambiguous:
                    time.sleep(RETRY_BACKOFF)
                else:
                    raise

    def sync_clock(self):
        """Learn how far the exchange's clock is from ours; every later signature uses it."""
        sent = now_ms()
        self.sync_clock_from(self.exchange.server_time(self), sent)

    def sync_clock_from(self, server_ms, sent_ms):
        """The offset from one reading of the exchange's clock, asked for at `sent_ms`."""
        CLOCK_OFFSETS[(self.name, self.base_url)] = server_ms - (sent_ms + now_ms()) // 2

    def wait_past(self, deadline):
        """Block until the exchange's own clock is past `deadline` (ms) by DEADLINE_MARGIN_MS:
        from then on the exchange refuses a request that carried that deadline, however late it
        arrives. Returns True once the exchange's clock said so, False when it could not be read
        (then nothing is proven). Reading the clock, not trusting ours, covers an offset we have
        not learnt (OKX accepts timestamps 30 s off)."""
        target = deadline + DEADLINE_MARGIN_MS
        for _ in range(DEADLINE_CHECKS):
            wait_ms = target - self.now()
            if wait_ms > 0:
                time.sleep(wait_ms / 1000)
            try:
                sent = now_ms()
                server = int(self.exchange.server_time(self))
            except Exception:                 # unreachable, or an answer we cannot read: no proof
                return False
            if server >= target:
                return True
            self.sync_clock_from(server, sent)          # our offset was off: learn it, wait again
        return False

    def _call_once(self, method, path, params, signed, idempotent, host, deadline=False, per_key=False):
        request = self._build(method, path, params)
        keys = self.keys if signed else None          # bad keys fail before waiting for a turn
        send = lambda: self._send_in_turn(request, params, keys, idempotent, host, deadline)
        shared_as = self._shared_as(request, host, signed, per_key)
        try:
            if shared_as is None:
                status, body, headers = send()
            else:
                status, body, headers = self.shared.get(shared_as, send)
        except PluginError as error:
            error.deadline = request.deadline       # no answer: wait_past may wait it out
            raise
        if signed:
            body = self._blanked(body)               # before anything reads, cuts or passes it on
        try:
            reply = self._decode(status, body)
            self.exchange.check(status, reply)
        except PluginError as error:
            # HTTP 429 is "too fast" whatever the body says (often a CDN page): refused, not ambiguous
            if status == 429 or error.code in self.exchange.RATE_LIMIT_ERRORS:
                raise self._rate_limit_error(request, str(error), error.code or "429") from error
            if error.code in self.exchange.AMBIGUOUS_ERRORS:
                error.ambiguous = True           # "outcome unknown", whatever the HTTP status
            error.deadline = request.deadline
            raise
        if status == 429:
            raise self._rate_limit_error(request, f"HTTP 429 {str(reply)[:80]}", "429")
        if not idempotent:
            self._mine.accepted_write = request
        return reply

    def _blanked(self, body):
        """The reply with every secret this Api sent blanked (***) before anything reads it: an
        exchange, or a proxy in front of it, may echo the request (keys, passphrase, signature)
        in an error or in a success, and an error's text is cut short later, after which a cut
        secret could no longer be found whole. Only a reply holding one is rewritten."""
        return blank_secrets(body, key_parts(self.access_key, self.secret_key) + self.signatures)

    def _shared_as(self, request, host, signed, per_key):
        """The SHARED_READS key of a GET that identical ones may join, or None: a public GET by
        exchange, base URL and target; a signed one only when marked per_key, and then with the
        digest of its keys, so it is shared among callers with the same keys alone."""
        if self.shared is None or request.method != "GET" or (signed and not per_key):
            return None
        key = (self.name, self.url_for(host), request.target)
        return key + (self.key_digest,) if signed else key

    @property
    def key_digest(self):
        """SHA-256 of the access key and secret as sent: equal only for equal keys, and no secret
        in the clear in a table key."""
        if self._digest is None:
            self._digest = hashlib.sha256(f"{self.access_key}\n{self.secret_key}".encode()).hexdigest()
        return self._digest

    def _send_in_turn(self, request, params, keys, idempotent, host, deadline=False):
        """Wait for the throttle's turn, sign (with the validity deadline of an order or cancel:
        it starts when the request leaves, not while it waits), send: (status, body, headers)."""
        turn = self._wait_for_turn(request, params, keys is not None, host)
        try:
            if keys is not None:
                now = self.now()
                if deadline:
                    request.window_ms = self.window_ms
                    request.deadline = now + request.window_ms
                before = dict(request.headers), request.query
                self.exchange.sign(request, keys, now)
                self.signatures.extend(_signed_values(before, request))
            if not idempotent:
                self._mine.sent_write = request
            status, body, headers = self._send(request, idempotent, self.url_for(host))
            if turn is not None:
                turn.observe(headers)
            return status, body, headers
        finally:
            if turn is not None:
                turn.done()

    def _limits_of(self, request):
        """(RATE_LIMITS key, its Limits, the values of its {placeholders}) for this request: the
        key is "VERB /path", or a template such as "GET /v2/{market}/book" matching it."""
        return endpoint_limits(self.exchange.RATE_LIMITS, request.method, request.path)

    def _wait_for_turn(self, request, params, signed, host):
        """A throttle Turn once every limit of this call has room (None when unthrottled)."""
        if self.throttle is None:
            return None
        endpoint, limits, in_path = self._limits_of(request)
        if not limits:
            return None
        params = {**{k: v for k, v in (params or {}).items() if v is not None}, **in_path}
        charges = [(self._bucket_key(limit, endpoint, params, signed, host), limit, limit.units(params))
                   for limit in limits]
        try:
            return self.throttle.turn(charges, f"{self.name} {request.method} {request.path}", self.max_wait,
                                      urgent=request.method != "GET" or getattr(_URGENT, "on", False))
        except Refused as refused:
            raise PluginError(str(refused), rate_limited=True) from None

    def _bucket_key(self, limit, endpoint, params, signed, host):
        """Whose calls this limit counts together: this process (IP) or this key, maybe per
        value of one parameter; one endpoint, or every endpoint of the limit's pool."""
        per = limit.per or ("key" if signed else "ip")
        who, _, param = per.partition("+")
        scope = (self.access_key if who == "key" else "", str(params.get(param, "")) if param else "")
        return (self.name, self.url_for(host), scope, limit.pool or endpoint)

    def _rate_limit_error(self, request, detail, code):
        limits = self._limits_of(request)[1]
        documented = f" ({self.name} allows {limits[0].describe()})" if limits else ""
        return PluginError(f"{self.name} rate limit reached for {request.method} {request.path}"
                           f"{documented}: {detail.strip()}", code=code, rate_limited=True)

    def _build(self, method, path, params):
        """The unsigned request: GET and DELETE params in the query string; a POST's (or PUT's)
        in a JSON body or the query string, as the module's POST_PARAMS says."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if method in ("GET", "DELETE") or self.exchange.POST_PARAMS == "query":
            return Request(method, path, query=query_string(params))
        body = json.dumps(params, separators=(",", ":")) if params else ""
        return Request(method, path, body=body, headers={"Content-Type": "application/json"})

    def _send(self, request, idempotent, base_url):
        """One HTTP exchange over a pooled connection. Returns (status, body bytes, headers).

        A reused keep-alive socket that turns out dead is replaced and the call sent again,
        but only for idempotent calls: an order may have arrived before the socket died."""
        scheme, host, port, path = _parts_of(base_url)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **request.headers}
        target = path + request.target
        for fresh_try in (False, True):
            conn, reused = self.pool.take(scheme, host, port, self.timeout)
            try:
                status, body, reply_headers, will_close = conn.request(request.method, target, request.body.encode(),
                                                                       headers)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.pool.discard(scheme, host, port, conn)
                if reused and idempotent and not fresh_try:
                    continue          # a keep-alive socket the server had dropped: once more, fresh
                raise PluginError(f"{self.name}: connection lost during {request.method} {request.path}"
                                  f" ({type(error).__name__})", ambiguous=True) from error
            except (TimeoutError, OSError, http.client.HTTPException) as error:
                self.pool.discard(scheme, host, port, conn)
                raise PluginError(self._network_message(request, error, base_url, idempotent),
                                  ambiguous=True) from error
            except BaseException:
                self.pool.discard(scheme, host, port, conn)
                raise
            if will_close:
                self.pool.discard(scheme, host, port, conn)
            else:
                self.pool.give_back(scheme, host, port, conn)
            return status, body, reply_headers

    def _network_message(self, request, error, base_url, idempotent=False):
        """A read is asked twice (see call): its timeout says how long that took in all."""
        if isinstance(error, TimeoutError) or "timed out" in str(error):
            waited = f" (asked twice, up to {2 * self.timeout + RETRY_BACKOFF:g}s in all)" if idempotent else ""
            return f"{self.name}: no answer within {self.timeout:g}s for {request.method} {request.path}{waited}"
        if isinstance(error, ssl.SSLError):
            return f"{self.name}: TLS error for {request.method} {request.path}: {error.reason or error}"
        return f"{self.name}: cannot reach {base_url} ({type(error).__name__}: {error})"

    def _decode(self, status, body):
        if status == 204:
            return None                   # No Content: a success that has nothing to say
        try:
            return reply_of(body)
        except ValueError as error:
            if status in (401, 403):      # "Unauthorized" as text (Coinbase): a refusal for check()
                return body[:200].decode("utf-8", "replace")
            snippet = body[:80].decode("utf-8", "replace").replace("\n", " ")
            raise PluginError(f"{self.name} answered HTTP {status} with a body that is not JSON: "
                              f"{snippet!r}", ambiguous=True) from error


@functools.lru_cache(maxsize=256)
def _parts_of(base_url):
    """(scheme, host, port, path without its trailing /) of a base URL, split once."""
    url = urllib.parse.urlsplit(base_url)
    return url.scheme, url.hostname, url.port or DEFAULT_PORTS.get(url.scheme, 80), url.path.rstrip("/")


def query_string(params):
    """{name: value} as urlencode writes it; names and values of unreserved characters alone
    (the usual: instId=BTC-USDT) are written as they are, without its quoting machinery."""
    pairs = [(name, _query_text(value)) for name, value in params.items()]
    if all(_UNRESERVED.fullmatch(name) and _UNRESERVED.fullmatch(value) for name, value in pairs):
        return "&".join([name + "=" + value for name, value in pairs])
    return urllib.parse.urlencode(pairs)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")             # what urlencode never quotes


def _query_text(value):
    """A param value as query-string text: strings as they are, true/false, numbers and lists as
    JSON writes them (what exchanges that take a POST's params in the query expect)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return plain(value)
    return json.dumps(value, separators=(",", ":"))


# -- Caches: markets -------------------------------------------------------------------------------

_URGENT = threading.local()            # .on while this thread makes calls an order waits for


def urgently(load, *args):
    """load(*args), every call it makes going before the market-data reads waiting in the
    throttle's lines (as orders do): the markets load an order needs must not queue behind
    robots polling depth (Binance: a depth of 1000 weighs 50 of the 6000 a minute)."""
    before = getattr(_URGENT, "on", False)
    _URGENT.on = True
    try:
        return load(*args)
    finally:
        _URGENT.on = before


class MarketsCache:
    """Instrument specs per (exchange, base URL, market kind), reloaded after MARKETS_TTL.

    Feeds the `markets` method and the tick/lot rounding of every order, so an order never
    waits for an instrument list except on the first call and after the TTL (and then waits
    for the one load in progress, see SingleFlight).
    """

    def __init__(self, ttl=MARKETS_TTL):
        self.cache = SingleFlight(keep=True, ttl=ttl)

    def get(self, api, kind):
        return self.cache.get((api.name, api.base_url, kind), lambda: urgently(api.exchange.load_markets, api, kind))

    def clear(self):
        self.cache.clear()


# -- Account settings ------------------------------------------------------------------------------

class AccountSettings:
    """Account settings an exchange makes us read before trading (a position mode, ...), read
    once per exchange, base URL and API key and kept until forgotten: they change only when the
    trader changes them on the exchange, and a handler forgets one when the exchange says it
    no longer holds (the next call reads it again). Robots sharing a key that ask at once wait
    for one read. An order waits for it as for the markets, so it goes before market-data reads
    (urgently): BloFin's position mode counts in the budget its books share."""

    def __init__(self):
        self.cache = SingleFlight(keep=True)

    def get(self, api, name, load):
        return self.cache.get((api.name, api.base_url, api.access_key, name), lambda: urgently(load))

    def forget(self, api, name):
        self.cache.forget((api.name, api.base_url, api.access_key, name))

    def clear(self):
        self.cache.clear()


# -- Shared state: one of each per process, kept across calls --------------------------------------

POOL = Pool()                          # idle keep-alive connections per host
SHARED_READS = SingleFlight()          # identical public reads under way at once: one call
MARKETS = MarketsCache()               # instrument specs per exchange, base URL and kind
ACCOUNT_SETTINGS = AccountSettings()   # per exchange, base URL and key: a position mode, ...
CLOCK_OFFSETS = {}                     # (exchange NAME, base URL) -> ms to add to our clock


# -- Reading replies: specs, the markets answer, book levels, candles, IO, raw ----------------------

def market(symbol, tick, step, *, min_qty=Decimal(0), max_qty=Decimal(0), min_notional=Decimal(0),
           max_notional=Decimal(0), ct_val=Decimal(0), ct_val_ccy="", **more):
    """One instrument's spec as load_markets gives it: the MARKET_FIELDS of `symbol` (a Symbol)
    with its price `tick` and amount `step` (Decimals; the precisions follow from them), a limit
    the exchange does not give 0, a spot market's contract value 0 and ""; `more` adds fields of
    the module's own (quote_step, ...)."""
    return {
        "symbol": str(symbol), "base_asset": symbol.base, "quote_asset": symbol.quote,
        "tick_size": tick, "amount_size": step,
        "price_precision": precision(tick), "amount_precision": precision(step),
        "min_qty": min_qty, "max_qty": max_qty, "min_notional": min_notional, "max_notional": max_notional,
        "ct_val": ct_val, "ct_val_ccy": ct_val_ccy, **more,
    }


def market_spec(api, symbol):
    """The cached spec of one instrument: a dict of FMZ Market fields with Decimal values (and
    optionally `quote_step`). Raises PluginError when the exchange lists no such live market."""
    spec = MARKETS.get(api, symbol.kind).get(str(symbol))
    if spec is None:
        raise PluginError(f"{api.name} has no live market {symbol}")
    return spec


def specs_by_exchange_id(api, kind, separator=""):
    """{the exchange's name of an instrument: its cached spec} for the live markets of a kind, the
    name written base, separator, quote (BTCUSDT, BTC-USDT): the listed markets say where a name
    that does not mark the split divides into base and quote."""
    return {spec["base_asset"] + separator + spec["quote_asset"]: spec for spec in MARKETS.get(api, kind).values()}


def markets_answer(api, kinds=("spot", "swap")):
    """The `markets` handler's answer, (data, None): every live instrument of those kinds from the
    cache, {symbol: its MARKET_FIELDS}."""
    found = {}
    for kind in kinds:
        for name, spec in MARKETS.get(api, kind).items():
            found[name] = {field: spec[field] for field in MARKET_FIELDS}
    return found, None


class Reply(dict):
    """An exchange's JSON object as json.loads reads it, with `json`: its text as the exchange
    sent it, which an answer's `raw` passes on as it is (fmz_plugin.to_json) rather than encoding
    what was decoded from it again."""


class ReplyList(list):
    """An exchange's JSON array, with `json` (see Reply)."""


def reply_of(body):
    """A reply's bytes as json.loads reads them; an object or array as a Reply or ReplyList
    that keeps its text when that text can stand in an answer as it is: UTF-8 without a byte
    order mark, and no NaN or Infinity (which json.loads reads, but which are no JSON)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.loads(body)           # another encoding json.loads recognizes, or an error
    if text.startswith("\ufeff"):
        return json.loads(body)
    value = json.loads(text)
    if type(value) not in (dict, list):
        return value
    kept = Reply(value) if type(value) is dict else ReplyList(value)
    kept.json = None if "NaN" in text or "Infinity" in text else text
    return kept


def book_levels(rows, price=0, amount=1):
    """An exchange's book side, [[price, amount], ...] of floats: rows are lists ([price,
    amount, ...], the default) or objects ({"price": .., "qty": ..}: give the key names). Rows
    whose every number is a JSON number in a string (the usual case) come as a BookSide, which
    an answer writes with the exchange's own text; any other as a list of floats, without the
    levels whose price or amount does not read as a finite number (empty, garbled, NaN): a level
    at price 0 would be the best ask a robot acts on."""
    rows = rows or []
    text = _levels_text(rows, price, amount)
    if text is not None:
        return BookSide(rows, price, amount, text)
    levels = ([_finite_float(row[price]), _finite_float(row[amount])] for row in rows)
    return [level for level in levels if None not in level]


def _levels_text(rows, price, amount):
    """`rows` as the JSON text [[price, amount], ...] of their own strings, or None when a value
    is not a string holding a plain JSON number (digits, at most one `.` between digits, a
    leading `-`, no leading zero, under 300 digits before the point: finite as a float)."""
    if not rows:
        return "[]"
    try:
        text = "[[" + "],[".join([row[price] + "," + row[amount] for row in rows]) + "]]"
    except TypeError:                     # numbers rather than strings
        return None
    return text if _PLAIN_LEVELS.fullmatch(text) else None


_PLAIN_NUMBER = r"-?(?:[1-9][0-9]{0,299}|0)(?:\.[0-9]+)?"
_PLAIN_LEVELS = re.compile(rf"\[\[{_PLAIN_NUMBER},{_PLAIN_NUMBER}\](?:,\[{_PLAIN_NUMBER},{_PLAIN_NUMBER}\])*\]")


class BookSide(collections.abc.Sequence):
    """A book side whose numbers are all plain JSON numbers in the exchange's strings: to a
    reader, the [[price, amount], ...] of floats a robot reads (made on first use); to an
    answer, `json`, those levels in the exchange's own text (fmz_plugin.to_json). Reading a
    float per number and writing its repr were most of the CPU of a deep book's answer, and
    the robot reads the same float64 from either text."""

    def __init__(self, rows, price, amount, text):
        self._rows, self._price, self._amount, self.json = rows, price, amount, text
        self._levels = None

    def levels(self):
        if self._levels is None:
            self._levels = [[float(row[self._price]), float(row[self._amount])] for row in self._rows]
        return self._levels

    def __getitem__(self, index):
        return self.levels()[index]

    def __len__(self):
        return len(self._rows)

    def __iter__(self):
        return iter(self.levels())

    def __eq__(self, other):
        return self.levels() == (other.levels() if isinstance(other, BookSide) else other)

    def __repr__(self):
        return repr(self.levels())


def candle_rows(rows):
    """An exchange's candles [open time ms, open, high, low, close, volume, ...] as FMZ's
    records, without a candle whose time or price does not read as a finite number (empty,
    garbled, NaN: a low of 0 would look like a crash to a robot's indicators, and a candle
    without a time has no place); an unreadable volume is 0."""
    records = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 5:
            continue
        time, *prices = (_finite_float(value) for value in row[:5])
        if time is not None and None not in prices:
            records.append([int(time), *prices, answer_number(row[5] if len(row) > 5 else None)])
    return records


def _finite_float(value):
    """float(value) when that is a finite number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def answer_number(value):
    """An exchange's numeric field as the float a robot reads, for answers only (a candle's
    volume): FMZ reads every number of an answer as a float64, and float(text) is that float
    exactly. Empty, absent, garbled or non-finite fields are 0.0, never an error. Amounts and
    prices toward the exchange stay exact decimal strings (parse_number, plain)."""
    number = _finite_float(value)
    return 0.0 if number is None else number


def signed_io(api, http_method, path, params):
    """exchange.IO("api", VERB, path, query) where a METHODS table points at it: any endpoint of
    the exchange's REST host, signed; the reply unchanged, as both data and raw."""
    reply = api.call(http_method, path, params, signed=True)
    return reply, reply


def one_or_all(replies):
    """The `raw` of a handler that made several calls: the reply itself when there was one."""
    return replies[0] if len(replies) == 1 else replies
