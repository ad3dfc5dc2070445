#!/usr/bin/env python3
"""fmz-plugin: an FMZ Quant "General Protocol" (通用协议) plugin. Standard library only.

An FMZ robot's docker POSTs every exchange call to this server, which signs and sends it to the
exchange's REST API and answers in the shape FMZ expects:

    POST /OKX  {"access_key": "...", "secret_key": "...", "method": "ticker",
                "params": {"symbol": "ETH_USDT"}, "nonce": 1730275031047002000}
    -> 200     {"data": {"symbol": "ETH_USDT", "buy": 2922.18, ...}, "raw": <the exchange's reply>}
           or  {"error": "OKX 51001: Instrument ID does not exist"}

Run it:   python fmz_plugin.py --port 6666
then add an exchange on FMZ with protocol "General Protocol" and service address
http://127.0.0.1:6666/OKX (see README.md). Protocol: https://www.fmz.com/digest-topic/10518
"""
import argparse
import ast
import html
import http.server
import json
import logging
import os
import queue
import re
import socketserver
import statistics
import sys
import threading
import time
import traceback
from collections import deque
from decimal import Decimal

from exchanges import EXCHANGES
from exchanges._kit import DEFAULT_TIMEOUT, Api, PluginError, parse_symbol, to_decimal

__version__ = "0.1.0"

MAX_BODY = 1 << 20          # bytes; a docker envelope is a few hundred
CLIENT_TIMEOUT = 30.0       # seconds a docker connection may stay silent mid-request or idle
IO_PREFIX = "__api_"        # exchange.IO("api", ...) arrives as method "__api_<path>"
IO_VERBS = ("GET", "POST", "DELETE", "PUT")
IO_LABEL = "IO"             # exchange.IO calls are counted under this method name
BAD_REQUEST = "(bad request)"   # ... and requests that named no served method under this one
LATENCIES_KEPT = 500        # recent call durations kept per method, for the p50 in the status
STATUS_EVERY = 3.0          # seconds between two status tables in FMZ live-strategy mode

log = logging.getLogger("fmz_plugin")


# ---------------------------------------------------------------------------- parameters
# The docker sends most values as strings ("limit": "30"), some as numbers ("since": 0).
# Each parser below turns one method's params into the typed keyword arguments every
# exchange handler receives, or raises PluginError naming the bad field.

def _symbol(params, required=True, allow_range=False):
    value = params.get("symbol")
    if value in (None, "") and not required:
        return None
    return parse_symbol(value, allow_range=allow_range)


def _int(params, name, default=None, minimum=0):
    value = params.get(name)
    if value in (None, ""):
        return default
    number = to_decimal(value, name)
    if number != number.to_integral_value() or number < minimum or number > 2 ** 63:
        raise PluginError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(number) or default


def _order_id(params):
    value = params.get("id")
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
        raise PluginError("id is missing: expected the order id that trade returned")
    return str(value).strip()


def no_params(params):
    return {}


def symbol_params(params):
    return {"symbol": _symbol(params)}


def depth_params(params):
    return {"symbol": _symbol(params), "limit": _int(params, "limit")}


def records_params(params):
    return {"symbol": _symbol(params), "period": _int(params, "period", 60, minimum=1),
            "limit": _int(params, "limit")}


def trade_params(params):
    """price -1 is FMZ's market order; amount must be positive."""
    side = params.get("type")
    if not isinstance(side, str) or side.lower() not in ("buy", "sell", "closebuy", "closesell"):
        raise PluginError(f"type must be buy, sell, closebuy or closesell, got {side!r}")
    price = to_decimal(params.get("price"), "price")
    amount = to_decimal(params.get("amount"), "amount")
    if price != -1 and price <= 0:
        raise PluginError(f"price must be positive, or -1 for a market order, got {params['price']!r}")
    if amount <= 0:
        raise PluginError(f"amount must be positive, got {params['amount']!r}")
    return {"symbol": _symbol(params), "side": side.lower(),
            "price": None if price == -1 else price, "amount": amount}


def orders_params(params):
    return {"symbol": _symbol(params, required=False)}


def order_params(params):
    return {"order_id": _order_id(params), "symbol": _symbol(params, required=False)}


def history_params(params):
    return {"symbol": _symbol(params), "since": _int(params, "since"), "limit": _int(params, "limit")}


def range_params(params):
    """An optional symbol or range: `BTC_USDT.swap`, `USDT.swap` (every USDT swap), or none."""
    return {"symbol": _symbol(params, required=False, allow_range=True)}


def margin_level_params(params):
    for name in ("level", "marginLevel", "margin_level"):
        if params.get(name) not in (None, ""):
            return {"symbol": _symbol(params), "level": _int(params, name, minimum=1)}
    raise PluginError("level is missing: expected the leverage, e.g. 10")


# The protocol in one table: FMZ method name -> parser of its params. The exchange module's
# own METHODS dict maps the same names to the functions that serve them.
PROTOCOL = {
    "ticker": symbol_params,
    "depth": depth_params,
    "trades": symbol_params,
    "records": records_params,
    "accounts": no_params,
    "assets": no_params,
    "trade": trade_params,
    "orders": orders_params,
    "order": order_params,
    "historyorders": history_params,
    "cancel": order_params,
    "markets": no_params,
    "tickers": range_params,
    "positions": range_params,
    "margin_level": margin_level_params,
    "marginlevel": margin_level_params,
    "fundings": range_params,
}


ALIASES = {"marginlevel": "margin_level"}      # names the docker may use for the same call


def io_params(method, params, http_method):
    """exchange.IO: the path is in the method name, the verb in the Http-Method header.

    Only a plain path on the exchange's own host is allowed: signed headers must never be
    sent to another host, so absolute URLs, `//host`, `..` and odd characters are refused.
    """
    path = method[len(IO_PREFIX):]
    if not re.fullmatch(r"/[A-Za-z0-9_\-./]*", path) or path.startswith("//") or "/../" in path + "/" \
            or "/./" in path + "/":
        raise PluginError(f"exchange.IO path {path[:80]!r} is refused: give a path such as /api/v5/account/balance")
    verb = (http_method or "GET").upper()
    if verb not in IO_VERBS:
        raise PluginError(f"exchange.IO verb {verb[:10]!r} is not one of {', '.join(IO_VERBS)}")
    return {"http_method": verb, "path": path, "params": params}


# ---------------------------------------------------------------------------- dispatch

class Settings:
    """What the command line decides for every exchange call."""

    def __init__(self, base_urls=None, timeout=DEFAULT_TIMEOUT):
        self.base_urls = {name.lower(): url for name, url in (base_urls or {}).items()}
        self.timeout = timeout

    def base_urls_of(self, exchange_key):
        """{"": URL, "futures": URL} from --base-url okx=URL / --base-url binance.futures=URL."""
        found = {}
        for name, url in self.base_urls.items():
            key, _, host = name.partition(".")
            if key == exchange_key:
                found[host] = url
        return found


class Stats:
    """Calls, errors, the last error and recent durations per exchange and method, since start.

    dispatch() records every call that named a served exchange; GET /status and the FMZ status
    table read it. The last error is the text already answered to the docker, so it never
    holds a key (dispatch redacts them).
    """

    def __init__(self):
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.methods = {}                  # (exchange NAME, method) -> MethodStats

    def record(self, exchange, method, seconds, error=None):
        with self.lock:
            entry = self.methods.get((exchange, method))
            if entry is None:
                entry = self.methods[exchange, method] = MethodStats()
            entry.calls += 1
            entry.durations.append(seconds)
            if error is not None:
                entry.errors += 1
                entry.last_error = error

    def uptime(self):
        return time.monotonic() - self.started

    def rows(self):
        """One dict per exchange and method, sorted: what /status and the FMZ table show."""
        with self.lock:
            return [{"exchange": exchange, "method": method, "calls": entry.calls,
                     "errors": entry.errors, "last_error": entry.last_error,
                     "p50_ms": round(statistics.median(entry.durations) * 1000, 1)}
                    for (exchange, method), entry in sorted(self.methods.items())]


class MethodStats:
    __slots__ = ("calls", "errors", "last_error", "durations")

    def __init__(self):
        self.calls, self.errors, self.last_error = 0, 0, ""
        self.durations = deque(maxlen=LATENCIES_KEPT)


def dispatch(exchange_name, envelope, http_method=None, settings=None, stats=None):
    """One docker request -> (method, symbol, answer). The only place errors become {"error"}.

    When `stats` is given, the call is counted there under the exchange and method it named
    (a request too malformed to name a served method counts as BAD_REQUEST).
    """
    settings = settings or Settings()
    started = time.monotonic()
    served = EXCHANGES.get(exchange_name.lower())         # whom to count the call under
    label, method, symbol = BAD_REQUEST, "?", ""
    try:
        exchange, method, params = _unpack(exchange_name, envelope)
        symbol = params.get("symbol", "") if isinstance(params.get("symbol"), str) else ""
        if method.startswith(IO_PREFIX):
            label = IO_LABEL
            name, kwargs = IO_PREFIX, io_params(method, params, http_method)
        else:
            name = method.lower()
            if name not in PROTOCOL:
                raise PluginError(f"unknown method: {method[:60]}")
            parse, name = PROTOCOL[name], ALIASES.get(name, name)
            label, kwargs = name, parse(params)
        handler = exchange.METHODS.get(name)
        if handler is None:
            raise PluginError(f"{exchange.NAME} does not support {name}")
        api = Api(exchange, envelope["access_key"], envelope["secret_key"],
                  settings.base_urls_of(exchange_name.lower()), settings.timeout)
        data, raw = handler(api, **kwargs)
        answer = {"data": data, "raw": raw}
    except PluginError as error:
        answer = {"error": redact(str(error), envelope)}
    except Exception as error:
        log.error("internal error in %s: %s", method, redact(traceback.format_exc(), envelope))
        answer = {"error": f"internal error in {method}: {type(error).__name__}"}
    if stats is not None and served is not None:
        stats.record(served.NAME, label, time.monotonic() - started, answer.get("error"))
    return method, symbol, answer


def _unpack(exchange_name, envelope):
    exchange = EXCHANGES.get(exchange_name.lower())
    if exchange is None:
        served = ", ".join("/" + module.NAME for module in EXCHANGES.values())
        raise PluginError(f"unknown exchange path /{exchange_name[:40]}: this plugin serves {served}")
    if not isinstance(envelope, dict):
        raise PluginError("the request body must be a JSON object {access_key, secret_key, method, params}")
    for field in ("access_key", "secret_key", "method"):
        if not isinstance(envelope.get(field), str):
            raise PluginError(f"the request has no {field} string")
    params = envelope.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise PluginError(f"params must be a JSON object, got {type(params).__name__}")
    return exchange, envelope["method"], params


def redact(text, envelope):
    """Blank out the keys the docker sent (and each part of a SECRET,PASSPHRASE string)."""
    if not isinstance(envelope, dict):
        return text
    for field in ("access_key", "secret_key"):
        value = envelope.get(field)
        if isinstance(value, str):
            for secret in [value] + value.split(","):
                if len(secret.strip()) >= 4:
                    text = text.replace(secret.strip(), "***")
    return text


def to_json(answer):
    """Decimals leave as JSON numbers; everything else as json would."""
    return json.dumps(answer, default=_json_default, separators=(",", ":")).encode()


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2 ** 53 else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ---------------------------------------------------------------------------- HTTP server

class Handler(http.server.BaseHTTPRequestHandler):
    """POST /<Exchange> with the docker's JSON envelope; every answer is HTTP 200 JSON."""

    protocol_version = "HTTP/1.1"          # keep-alive toward the docker
    server_version = "fmz-plugin/" + __version__
    timeout = CLIENT_TIMEOUT
    disable_nagle_algorithm = True         # headers and body leave at once, no 40 ms delayed-ACK stall

    def do_POST(self):
        started = time.monotonic()
        exchange_name = self.path.split("?")[0].strip("/")
        try:
            envelope = json.loads(self._read_body())
        except PluginError as error:
            return self._answer({"error": str(error)}, close=True)
        except ValueError:
            return self._answer({"error": "the request body is not valid JSON"}, close=True)
        method, symbol, answer = dispatch(exchange_name, envelope, self.headers.get("Http-Method"),
                                          self.server.settings, self.server.stats)
        self._answer(answer)
        outcome = "ok" if "data" in answer else "error: " + answer["error"]
        log.info("%s %s %s %.0fms %s", exchange_name, str(method)[:60], symbol[:30],
                 (time.monotonic() - started) * 1000, outcome)

    def do_GET(self):
        """GET / or /status: the status page for humans; any other GET is a protocol mistake."""
        if self.path.split("?")[0].rstrip("/") not in ("", "/status"):
            return self._answer({"error": "the General Protocol uses POST /<Exchange> with a JSON body"})
        report = status_report(self.server)
        if prefers_html(self.headers.get("Accept", "")):
            return self._send(status_html(report).encode(), "text/html; charset=utf-8")
        self._answer(report)

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise PluginError("the request needs a Content-Length header")
        length = int(length)
        if length > MAX_BODY:
            raise PluginError(f"the request body is over {MAX_BODY} bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise PluginError("the request body did not arrive in time") from None
        if len(body) < length:
            raise PluginError("the request body is shorter than its Content-Length")
        return body

    def _answer(self, answer, close=False):
        self._send(to_json(answer), "application/json; charset=utf-8", close)

    def _send(self, body, content_type, close=False):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:                          # the stream may hold leftovers of a broken request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """Malformed HTTP (bad request line, odd verb) still gets JSON, never an HTML page."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"   # even a garbled request line gets a status line
        try:
            self._answer({"error": f"HTTP {code}: {message or self.responses.get(code, ('',))[0]}"}, close=True)
        except OSError:
            pass

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, settings=None):
        super().__init__(address, Handler)
        self.settings = settings or Settings()
        self.stats = Stats()


# ---------------------------------------------------------------------------- status
# What GET / (and GET /status) and the FMZ status table show: never a key, never a base URL
# (a proxy URL may carry a password), only counts, timings and the answers' error texts.

def status_report(server):
    host, port = server.server_address[:2]
    return {"name": "fmz-plugin", "version": __version__,
            "uptime_seconds": int(server.stats.uptime()),
            "exchanges": [{"name": module.NAME, "service_address": f"http://{host}:{port}/{module.NAME}"}
                          for module in EXCHANGES.values()],
            "methods": server.stats.rows()}


def prefers_html(accept):
    """True when the Accept header ranks text/html above JSON (a browser), else JSON (curl, scripts)."""
    ranks = {}
    for item in accept.split(","):
        kind, *options = [part.strip() for part in item.split(";")]
        quality = 1.0
        for option in options:
            if option.startswith("q="):
                try:
                    quality = float(option[2:])
                except ValueError:
                    quality = 0.0
        ranks[kind.lower()] = max(quality, ranks.get(kind.lower(), 0.0))
    anything = ranks.get("*/*", 0.0)
    html_rank = max(ranks.get("text/html", 0.0), ranks.get("text/*", 0.0))
    json_rank = max(ranks.get("application/json", 0.0), ranks.get("application/*", 0.0), anything)
    return html_rank > json_rank


def uptime_text(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"


METHOD_COLUMNS = ["Exchange", "Method", "Calls", "Errors", "Last error", "p50 ms"]


def method_cells(row):
    return [row["exchange"], row["method"], row["calls"], row["errors"], row["last_error"], row["p50_ms"]]


def status_html(report):
    cell = lambda value: f"<td>{html.escape(str(value))}</td>"
    exchanges = "".join(f"<tr>{cell(e['name'])}{cell(e['service_address'])}</tr>" for e in report["exchanges"])
    methods = "".join("<tr>" + "".join(cell(v) for v in method_cells(row)) + "</tr>" for row in report["methods"])
    head = "".join(f"<th>{name}</th>" for name in METHOD_COLUMNS)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fmz-plugin</title></head><body>\n"
            f"<h1>fmz-plugin {html.escape(report['version'])}</h1>\n"
            f"<p>Up {uptime_text(report['uptime_seconds'])}. Service addresses to paste into FMZ "
            f"(General Protocol):</p>\n<table border=\"1\"><tr><th>Exchange</th><th>Service address</th></tr>"
            f"{exchanges}</table>\n<h2>Calls since start</h2>\n<table border=\"1\"><tr>{head}</tr>{methods}</table>\n"
            f"</body></html>\n")


def status_table(report):
    """The FMZ LogStatus text: a line, then tables as JSON between backticks (FMZ renders them)."""
    tables = [
        {"type": "table", "title": "Calls", "cols": METHOD_COLUMNS,
         "rows": [method_cells(row) for row in report["methods"]]},
        {"type": "table", "title": "Service addresses", "cols": ["Exchange", "Service address"],
         "rows": [[e["name"], e["service_address"]] for e in report["exchanges"]]},
    ]
    line = f"fmz-plugin {report['version']}, up {uptime_text(report['uptime_seconds'])}"
    return line + "\n`" + json.dumps(tables, ensure_ascii=False) + "`"


# ---------------------------------------------------------------------------- command line

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="fmz_plugin.py", description="FMZ General Protocol plugin: serves "
        + ", ".join("/" + m.NAME for m in EXCHANGES.values()) + " to FMZ robots.")
    parser.add_argument("--port", type=int, default=6666, help="port to listen on (default 6666)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; the docker sends keys in clear, keep it local)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait for an exchange (connect and each read; default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--base-url", action="append", default=[], metavar="NAME=URL",
                        help="send exchange NAME's calls to URL (testnet, other domain, proxy, fake); repeatable")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log detail (default info: one line per request; keys are never logged)")
    args = parser.parse_args(argv)
    args.base_urls = {}
    for item in args.base_url:
        name, sep, url = item.partition("=")
        if not sep or not re.match(r"^https?://[^/]", url):
            parser.error(f"--base-url wants NAME=URL such as OKX=https://www.okx.com, got {item!r}")
        key, _, host = name.lower().partition(".")
        if key not in EXCHANGES or (host and host not in getattr(EXCHANGES[key], "HOSTS", {})):
            parser.error(f"--base-url: unknown exchange or host {name!r}")
        args.base_urls[name.lower()] = url
    return args


def banner(server, settings):
    host, port = server.server_address[:2]
    lines = [f"fmz-plugin {__version__} listening on http://{host}:{port}",
             "Service addresses to paste into FMZ (General Protocol):"]
    for key, module in EXCHANGES.items():
        base = settings.base_urls_of(key).get("", module.BASE_URL)
        lines.append(f"  {module.NAME:<10} http://{host}:{port}/{module.NAME}   (exchange API: {base})")
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append("Warning: the docker sends API keys in clear; listen beyond loopback only on a trusted network.")
    return "\n".join(lines)


def serve(argv):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings(args.base_urls, args.timeout)
    server = Server((args.address, args.port), settings)
    print(banner(server, settings), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------------------- one file
# `python fmz_plugin.py bundle -o dist/fmz_plugin.py` writes this program and every project
# module it imports as ONE plain source file: each module's text, in dependency order, is run
# as that module and registered in sys.modules under its own name, so every import statement
# works unchanged and two modules may both define `ticker`; this file's own text comes last,
# verbatim. The modules are found by reading the import statements (exchanges/__init__.py
# decides which exchanges exist), never from a list kept here. Same sources, same bytes.

REGISTRY = "exchanges"                 # the package whose EXCHANGES dict names the exchanges

BUNDLE_HEAD = '''#!/usr/bin/env python3
# fmz-plugin {version} in one file, serving {names}.
# Written by `python fmz_plugin.py bundle` from the fmz-plugin repository: edit the repository's
# files, not this one. Python 3.9+ standard library only.
#
#   python3 fmz_plugin.py --port 6666      serve; prints the URL to paste into FMZ per exchange
#   or paste this whole file into FMZ as a Python strategy (README: "Run it inside FMZ")
#
# Below, each module is its repository file's text, run as that module and registered in
# sys.modules under its own name, so its import statements work as in the repository. The main
# program, the repository's fmz_plugin.py, comes last, verbatim.
import linecache as _bundle_linecache
import sys as _bundle_sys
import types as _bundle_types


def _bundle_package(name):
    """An empty package, so its modules can register under it; its own file runs after them."""
    package = _bundle_types.ModuleType(name)
    package.__path__ = []
    package.__package__ = name
    _bundle_sys.modules[name] = package


def _bundle_module(name, path, text):
    """Run one repository file's text (after the newline opening the literal) as module `name`."""
    module = _bundle_sys.modules.get(name) or _bundle_types.ModuleType(name)
    module.__file__ = path
    _bundle_sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        module.__package__ = parent
        setattr(_bundle_sys.modules[parent], child, module)
    source = text[1:]
    _bundle_linecache.cache[path] = (len(source), None, source.splitlines(True), path)  # tracebacks
    exec(compile(source, path, "exec"), module.__dict__)


'''


def bundle(argv):
    """The `bundle` sub-command: write the one-file plugin."""
    parser = argparse.ArgumentParser(prog="fmz_plugin.py bundle",
                                     description="Write fmz-plugin as one self-contained Python file.")
    parser.add_argument("-o", "--output", default=os.path.join("dist", "fmz_plugin.py"),
                        help="file to write (default dist/fmz_plugin.py)")
    parser.add_argument("--exchanges", default="", metavar="NAME,NAME",
                        help="only these exchanges (default: every one in exchanges/__init__.py)")
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.abspath(globals().get("__file__", "")))
    if not os.path.isfile(os.path.join(root, REGISTRY, "__init__.py")):
        parser.error(f"run bundle from the repository: {root} has no {REGISTRY}/ folder")
    chosen = [name.strip().lower() for name in args.exchanges.split(",") if name.strip()]
    try:
        text, names = bundle_text(root, chosen)
    except PluginError as error:
        parser.error(str(error))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as file:
        file.write(text)
    print(f"wrote {args.output} ({text.count(chr(10))} lines) serving {', '.join(names)}")


def bundle_text(root, chosen=()):
    """The one-file program: head, each project module in dependency order, then this file.

    `chosen` names the exchanges to keep (EXCHANGES keys); empty keeps every one. Returns the
    text and the names of the exchanges served.
    """
    texts = {}
    registry_text, names = _registry_text(_read(root, REGISTRY + "/__init__.py"), chosen)
    texts[REGISTRY] = registry_text
    core_path = os.path.basename(os.path.abspath(globals().get("__file__", "")))
    core = _read(root, core_path)
    order = []
    _visit(root, core, "", texts, order, set())
    packages = sorted({name for name in order if _path_of(root, name).endswith("__init__.py")})
    served = [EXCHANGES[key].NAME if key in EXCHANGES else key for key in names]
    parts = [BUNDLE_HEAD.format(version=__version__, names=", ".join(served))]
    parts += [f"_bundle_package({name!r})\n" for name in packages]
    for name in order:
        path = _path_of(root, name)
        parts.append(f"\n\n# {'-' * 76} {path}\n"
                     f"_bundle_module({name!r}, {path!r}, {_raw_literal(texts[name], path)})\n")
    parts.append(f"\n\n# {'-' * 76} {core_path}, verbatim\n")
    return "".join(parts) + core, names


def _visit(root, text, name, texts, order, seen):
    """Depth first: a module's project imports go before it (`name` "" is the main program)."""
    seen.add(name)
    for imported in _project_imports(root, text, name):
        if imported not in seen:
            if imported not in texts:
                texts[imported] = _read(root, _path_of(root, imported))
            _visit(root, texts[imported], imported, texts, order, seen)
    if name:
        order.append(name)


def _project_imports(root, text, name):
    """The project modules a module's import statements name, in the order they appear."""
    found = []
    nodes = [node for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.Import, ast.ImportFrom))]
    for node in sorted(nodes, key=lambda node: (node.lineno, node.col_offset)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise PluginError(f"{name}: use absolute imports, the bundle cannot place relative ones")
            candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            candidates = [alias.name for alias in node.names]
        found += [c for c in candidates if c != name and c not in found and _path_of(root, c)]
    return found


def _path_of(root, name):
    """`exchanges.okx` -> `exchanges/okx.py` when that file is in the repository, else ""."""
    base = name.replace(".", "/")
    for path in (base + ".py", base + "/__init__.py"):
        if os.path.isfile(os.path.join(root, path)):
            return path
    return ""


def _read(root, path):
    with open(os.path.join(root, path), encoding="utf-8") as file:
        return file.read()


def _registry_text(text, chosen):
    """exchanges/__init__.py keeping only the `chosen` exchanges, and the names it then serves.

    Only its `from exchanges import ...` statements and its EXCHANGES dict are rewritten, and
    only when some exchanges are left out; every other line stays as written.
    """
    tree = ast.parse(text)
    registry = next((node for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                     and [getattr(t, "id", "") for t in node.targets] == ["EXCHANGES"]), None)
    if registry is None:
        raise PluginError(f"{REGISTRY}/__init__.py has no EXCHANGES = {{...}} dict")
    entries = [(ast.literal_eval(key), value.id) for key, value in zip(registry.value.keys, registry.value.values)]
    unknown = [name for name in chosen if name not in dict(entries)]
    if unknown:
        raise PluginError(f"--exchanges: unknown {', '.join(unknown)}; there are {', '.join(k for k, _ in entries)}")
    kept = [(key, module) for key, module in entries if not chosen or key in chosen]
    if len(kept) == len(entries):
        return text, [key for key, _ in kept]
    dropped = {module for key, module in entries} - {module for key, module in kept}
    lines = text.splitlines(keepends=True)
    edits = [(registry, "EXCHANGES = {\n" + "".join(f'    "{key}": {module},\n' for key, module in kept) + "}\n")]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == REGISTRY:
            names = [a for a in node.names if (a.asname or a.name) not in dropped]
            listed = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in names)
            edits.append((node, f"from {REGISTRY} import {listed}\n" if names else ""))
    for node, replacement in sorted(edits, key=lambda edit: -edit[0].lineno):
        lines[node.lineno - 1:node.end_lineno] = [replacement]
    return "".join(lines), [key for key, _ in kept]


def _raw_literal(text, path):
    """`text` as r'''...''' literals that read as the file itself (a ''' inside splits them)."""
    pieces = text.split("'''")
    for piece in pieces:
        if piece.endswith("\\") or (piece is not pieces[-1] and piece.endswith("'")):
            raise PluginError(f"{path}: a backslash or quote right before ''' cannot be carried raw")
    return " \"'''\" ".join("r'''\n" + piece + "'''" if index == 0 else "r'''" + piece + "'''"
                            for index, piece in enumerate(pieces))


# ---------------------------------------------------------------------------- FMZ live-strategy mode
# Pasted into FMZ as a Python strategy, this file runs inside the robot: FMZ calls main() with
# its API (Log, LogStatus, Sleep) and the strategy parameters set as globals of this file.

STRATEGY_PARAMETERS = {          # FMZ strategy parameter (each optional) -> command-line flag
    "Address": "--address",
    "Port": "--port",
    "Timeout": "--timeout",
    "LogLevel": "--log-level",
}
STRATEGY_LOG_LEVEL = "warning"   # FMZ keeps every Log line: no line per request unless asked


def strategy_argv(params):
    """The command line that the strategy parameters stand for (absent or empty: the default).

    BaseUrls holds --base-url values separated by spaces or commas: `okx=https://my.okx.com`.
    """
    argv = ["--log-level", STRATEGY_LOG_LEVEL]
    for name, flag in STRATEGY_PARAMETERS.items():
        value = params.get(name)
        if value not in (None, ""):
            argv += [flag, str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)]
    for item in re.split(r"[\s,]+", str(params.get("BaseUrls") or "")):
        if item:
            argv += ["--base-url", item]
    return argv


class LogLines(logging.Handler):
    """Holds log lines from the server's threads; main() hands them to FMZ's Log on its own."""

    def __init__(self):
        super().__init__()
        self.lines = queue.SimpleQueue()
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record):
        self.lines.put(self.format(record))

    def take(self):
        while not self.lines.empty():
            yield self.lines.get()


def main(stop=None):
    """FMZ's entry point: serve with the strategy parameters and show the status table.

    Runs until FMZ stops the strategy (FMZ's Sleep then raises) or, when called from Python,
    until the threading.Event `stop` is set; either way the server is shut down and its port
    freed before main() returns or the exception goes on.
    """
    fmz = globals()
    say = fmz.get("Log") or print
    show = fmz.get("LogStatus") or (lambda text: None)
    sleep = fmz.get("Sleep") or (lambda ms: time.sleep(ms / 1000))
    args = parse_args(strategy_argv(fmz))
    settings = Settings(args.base_urls, args.timeout)
    server = Server((args.address, args.port), settings)
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    lines, before = LogLines(), (log.level, log.propagate)
    log.addHandler(lines)
    log.setLevel(args.log_level.upper())
    log.propagate = False
    say(banner(server, settings))
    try:
        while stop is None or not stop.is_set():
            for line in lines.take():
                say(line)
            show(status_table(status_report(server)))
            sleep(STATUS_EVERY * 1000)
    finally:
        server.shutdown()
        server.server_close()
        log.removeHandler(lines)
        log.setLevel(before[0])
        log.propagate = before[1]


# `python fmz_plugin.py [serve] --port 6666`, or one of these sub-commands.
COMMANDS = {
    "serve": serve,
    "bundle": bundle,
}


def run(argv):
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return serve(argv)


if __name__ == "__main__" and "LogStatus" not in globals():     # in FMZ, FMZ calls main()
    sys.exit(run(sys.argv[1:]))
