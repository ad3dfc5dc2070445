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
import http.server
import ipaddress
import json
import logging
import re
import socket
import socketserver
import sys
import time
import traceback
from decimal import Decimal

from exchanges import EXCHANGES
from exchanges._kit import DEFAULT_TIMEOUT, THROTTLE, Api, PluginError, parse_symbol, to_decimal

__version__ = "0.1.0"

MAX_BODY = 1 << 20          # bytes; a docker envelope is a few hundred
CLIENT_TIMEOUT = 30.0       # seconds a docker connection may stay silent mid-request or idle
IO_PREFIX = "__api_"        # exchange.IO("api", ...) arrives as method "__api_<path>"
IO_VERBS = ("GET", "POST", "DELETE", "PUT")

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

    def __init__(self, base_urls=None, timeout=DEFAULT_TIMEOUT, throttle=True, allow=None):
        self.base_urls = {name.lower(): url for name, url in (base_urls or {}).items()}
        self.timeout = timeout
        self.throttle = THROTTLE if throttle else None    # keep under the exchanges' documented limits
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow] if allow else None

    def allows(self, client_address):
        """True when --allow was not given or the client's address is in one of its networks."""
        if self.allow is None:
            return True
        try:
            address = ipaddress.ip_address(client_address.split("%")[0])
        except ValueError:
            return False
        address = getattr(address, "ipv4_mapped", None) or address    # ::ffff:10.0.0.5 is 10.0.0.5
        return any(address in network for network in self.allow)

    def base_urls_of(self, exchange_key):
        """{"": URL, "futures": URL} from --base-url okx=URL / --base-url binance.futures=URL."""
        found = {}
        for name, url in self.base_urls.items():
            key, _, host = name.partition(".")
            if key == exchange_key:
                found[host] = url
        return found


def dispatch(exchange_name, envelope, http_method=None, settings=None):
    """One docker request -> (method, symbol, answer). The only place errors become {"error"}."""
    settings = settings or Settings()
    method, symbol = "?", ""
    try:
        exchange, method, params = _unpack(exchange_name, envelope)
        symbol = params.get("symbol", "") if isinstance(params.get("symbol"), str) else ""
        if method.startswith(IO_PREFIX):
            name, kwargs = IO_PREFIX, io_params(method, params, http_method)
        else:
            name = method.lower()
            if name not in PROTOCOL:
                raise PluginError(f"unknown method: {method[:60]}")
            kwargs = PROTOCOL[name](params)
            name = ALIASES.get(name, name)
        handler = exchange.METHODS.get(name)
        if handler is None:
            raise PluginError(f"{exchange.NAME} does not support {name}")
        api = Api(exchange, envelope["access_key"], envelope["secret_key"],
                  settings.base_urls_of(exchange_name.lower()), settings.timeout, throttle=settings.throttle)
        data, raw = handler(api, **kwargs)
        return method, symbol, {"data": data, "raw": raw}
    except PluginError as error:
        return method, symbol, {"error": redact(str(error), envelope)}
    except Exception as error:
        log.error("internal error in %s: %s", method, redact(traceback.format_exc(), envelope))
        return method, symbol, {"error": f"internal error in {method}: {type(error).__name__}"}


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
        except RecursionError:
            return self._answer({"error": "the request body is nested too deeply"})
        method, symbol, answer = dispatch(exchange_name, envelope, self.headers.get("Http-Method"),
                                          self.server.settings)
        self._answer(answer)
        outcome = "ok" if "data" in answer else "error: " + answer["error"]
        log.info("%s %s %s %.0fms %s", exchange_name, str(method)[:60], symbol[:30],
                 (time.monotonic() - started) * 1000, outcome)

    def do_GET(self):
        self._answer({"error": "the General Protocol uses POST /<Exchange> with a JSON body"})

    def parse_request(self):
        """After the request line and headers: refuse a client --allow does not list, before
        its body is read."""
        if not super().parse_request():
            return False
        if self.server.settings.allows(self.client_address[0]):
            return True
        log.warning("refused a request from %s (not in --allow)", self.client_address[0])
        self._answer({"error": f"client address {self.client_address[0]} is not allowed (see --allow)"},
                     close=True, status=403)
        return False

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise PluginError("the request needs a Content-Length header")
        length = int(length)
        if length > MAX_BODY:
            raise PluginError(f"the request body is over {MAX_BODY} bytes")
        try:
            body = self.rfile.read(length)
        except (socket.timeout, TimeoutError):      # distinct classes before Python 3.10
            raise PluginError(f"the request body did not arrive within {self.timeout:g}s") from None
        if len(body) < length:
            raise PluginError("the request body is shorter than its Content-Length")
        return body

    def _answer(self, answer, close=False, status=200):
        body = to_json(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
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
    parser.add_argument("--allow", metavar="IP[,IP]", default=None,
                        help="only these client addresses (or networks, 10.0.0.0/8) may call the plugin; "
                             "others get HTTP 403 (default: any)")
    parser.add_argument("--no-throttle", action="store_true",
                        help="do not hold calls under the exchanges' documented rate limits "
                             "(only for a fake exchange or a raised limit)")
    args = parser.parse_args(argv)
    args.allow_list = None
    if args.allow is not None:
        args.allow_list = [item.strip() for item in args.allow.split(",") if item.strip()]
        for item in args.allow_list:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                parser.error(f"--allow wants IP addresses or networks separated by commas, got {item!r}")
        if not args.allow_list:
            parser.error("--allow needs at least one address")
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
    if settings.allow:
        lines.append("Clients allowed: " + ", ".join(map(str, settings.allow)))
    elif host not in ("127.0.0.1", "localhost", "::1"):
        lines.append("Warning: the docker sends API keys in clear; listen beyond loopback only on a trusted "
                     "network, and name the docker's address with --allow.")
    return "\n".join(lines)


def serve(argv):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings(args.base_urls, args.timeout, throttle=not args.no_throttle, allow=args.allow_list)
    server = Server((args.address, args.port), settings)
    print(banner(server, settings), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# `python fmz_plugin.py [serve] --port 6666`, or one of these sub-commands.
COMMANDS = {
    "serve": serve,
}


def run(argv):
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
