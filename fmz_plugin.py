#!/usr/bin/env python3
"""fmz-plugin: an FMZ Quant "General Protocol" (通用协议) plugin. One file, standard library only.

What it is: an FMZ robot's docker POSTs every exchange call to this server, which signs and
sends it to the exchange's REST API and answers in the shape FMZ expects.

Run it:   python fmz_plugin.py --port 6666
then add an exchange on FMZ with protocol "General Protocol" and service address
http://127.0.0.1:6666/OKX (see README.md). Protocol: https://www.fmz.com/digest-topic/10518

Wire format (always HTTP 200, JSON):

    POST /OKX  {"access_key": "...", "secret_key": "...", "method": "ticker",
                "params": {"symbol": "ETH_USDT"}, "nonce": 1730275031047002000}
    -> 200     {"data": {"symbol": "ETH_USDT", "buy": 2922.18, ...}, "raw": <the exchange's reply>}
           or  {"error": "OKX 51001: Instrument ID does not exist"}

Reading guide, one request top to bottom:

    Handler.do_POST          reads the body, decodes the JSON envelope            (HTTP server)
    -> dispatch              names the exchange and method, the one place errors become {"error"}
    -> PROTOCOL parser       the method's params as typed arguments              (Protocol)
    -> risk guard            trade and margin_level only: limits, kill switch    (exchanges/_risk.py)
    -> exchange METHODS handler  exchanges/<name>.py, e.g. exchanges/okx.py ticker()
    -> Api                   signs, throttles, sends and checks the call         (exchanges/_kit.py)
       -> Throttle           the call's turn under the exchange's limits      (exchanges/_throttle.py)

Sections: Protocol (the methods, their parsers and aliases), the answer contract (what each
method's data holds, written once), Dispatch (dispatch, then the Handler whose do_POST calls it,
then dispatch's steps), HTTP server, Status (GET /), Serve (flags, banner), FMZ strategy mode
(FMZ calls main()), then the tools, none of which runs while serving: call (one request from a
terminal), check (grade any plugin), bundle (this program as one file), halt and resume (the
risk guard's kill switch), paper (list or reset paper accounts); the sub-command table and
run() last.

Paper trading (Access Key "paper"): _api_for gives the handlers an exchange whose private
methods a simulated account serves (exchanges/_paper.py).

Try it without FMZ:  python fmz_plugin.py call OKX ticker symbol=BTC_USDT
Grade any plugin:    python fmz_plugin.py check http://127.0.0.1:6666/OKX
One file to copy:    python fmz_plugin.py bundle -o dist/fmz_plugin.py
                     (that file is also an FMZ Python strategy: FMZ calls main())
Status:              GET http://127.0.0.1:6666/ (JSON, or an HTML page for a browser)
"""
__version__ = "0.1.0"

import argparse
import ast
import contextlib
import difflib
import errno
import gc
import hashlib
import html
import http.client
import http.server
import io
import ipaddress
import json
import logging
import logging.handlers
import math
import os
import queue
import random
import re
import socket
import socketserver
import ssl
import statistics
import sys
import threading
import time
import traceback
import urllib.parse
from collections import deque
from decimal import Decimal, InvalidOperation, ROUND_UP

try:
    import resource                 # POSIX: the process's open-file limit, for --max-connections
except ImportError:
    resource = None

from exchanges import EXCHANGES, _paper
from exchanges._kit import (DEFAULT_TIMEOUT, IO_PREFIX, SHARED_READS, Api, BookSide, Headers, PluginError, Reply,
                            ReplyList, SingleFlight, blank_secrets, header_lines, iso_ms, key_parts, now_ms,
                            parse_number, parse_symbol, plain, round_down, written_forms)
from exchanges._stream import STREAMED, Streams, stream_urls
from exchanges._throttle import THROTTLE, THROTTLE_MAX_WAIT, Refused
from exchanges._risk import INLINE_SOURCE, RiskGuard, default_halt_file, figure, halt, resume

MAX_BODY = 1 << 20          # bytes; a docker envelope is a few hundred
DRAIN_MAX = 8 << 20         # bytes of a refused body read and dropped before closing (else a reset destroys the answer)
DRAIN_SECONDS = 2.0         # ... for at most this long
MAX_ERROR = 500             # characters of an error message
CLIENT_TIMEOUT = 30.0       # seconds a docker's keep-alive connection may wait idle for its next request
REQUEST_TIMEOUT = 10.0      # seconds a request may take to arrive whole, from its first byte
MAX_CONNECTIONS = 10_000    # docker connections served at once, at most by default (a thread each); see
                            # default_max_connections: below this the open-file limit decides
LISTEN_BACKLOG = 1024       # connections the system queues before accept, at least (more with --max-connections)
SOMAXCONN = "/proc/sys/net/core/somaxconn"    # Linux caps every listen backlog at this
FILES_KEPT = 32             # open files the process keeps for itself (listening socket, logs, a spare)
ACCESS_LOG_EVERY = 60.0     # seconds between two lines counting the answers given (see AccessLog)
REFUSALS_LOGGED_EVERY = 60.0    # seconds: a refused client (--allow, too many connections) is logged once per
REFUSED_LINGER = 2.0        # seconds a refused connection stays half-open for its request to arrive and be dropped
REFUSED_KEPT = 64           # refused connections left half-open at once; more are closed at once
OUT_OF_FILES_PAUSE = 0.05   # seconds the accept loop pauses when it has no descriptor even to refuse with
OUT_OF_FILES_LINGER = 0.2   # seconds, at most, a connection refused with the spare descriptor waits for its client
                            # to hang up (it does at once on reading the 503) before the spare is taken back
GC_YOUNG_LIMIT = 20_000     # containers made (less those freed) between collections of the youngest; at Python's
                            # 700, a 400-level depth's thousand lists, gone once answered, were scanned several times
APIS_KEPT = 1024            # Apis kept for reuse (one per exchange, keys and settings); the oldest goes first
IO_VERBS = ("GET", "POST", "DELETE", "PUT")
IO_LABEL = "IO"             # how the status shows exchange.IO calls
BAD_REQUEST = "(bad request)"   # ... and requests that named no served method
LATENCIES_KEPT = 500        # recent call durations kept per method, for the p50 and p99 in the status
HEALTH_WINDOW = 300.0       # seconds: the status page's "last 5 minutes" (calls, error rate)
STATUS_REFRESH = 5          # seconds between two refreshes of the status page in a browser
STATUS_EVERY = 3.0          # seconds between two status tables in FMZ live-strategy mode
LOG_FILE_MB = 10            # a --log-file is rotated at this size (MB) ...
LOG_FILES_KEPT = 5          # ... keeping this many older ones: PATH.1 (the latest) to PATH.5
# How much one request may ask of an exchange: each page costs a signed or weighted request
# and memory (records limit=1e9 grew the process to 1.6 GB; a Bybit history since 2001 cost
# 1,317 requests). Beyond these the request is refused, naming the limit (README "Limits").
MAX_RECORDS = 5000          # candles per records call
MAX_HISTORY_ORDERS = 1000   # orders per historyorders call
MAX_HISTORY_DAYS = 90       # how far back historyorders' since may reach
# Large reads run at most LARGE_READS at once, the others wait their turn: 400 robots asking for
# 5,000 candles each took the process to 1.1 GB; bounded, it stays far under 300 MB. A read is
# large beyond these limits (LARGE_LIMITS: method -> its `limit` above which it is), or always
# (tickers: every market of the exchange).
LARGE_READS = 8
LARGE_LIMITS = {"records": 500, "depth": 100, "historyorders": 100}
ALWAYS_LARGE = ("tickers",)
DAY_MS = 86_400_000

log = logging.getLogger("fmz_plugin")     # every field of its lines made printable: see SafeFields below


# -- Protocol: the methods, their parsers and the alias table --------------------------------------
# The docker sends most values as strings ("limit": "30"), some as numbers ("since": 0).
# Each parser below turns one method's params into the typed keyword arguments every
# exchange handler receives, or raises PluginError naming the bad field.

TRADE_TYPES = ("buy", "sell", "closebuy", "closesell")    # FMZ's `type` of a trade: the order_type
CLOSE_TYPES = ("closebuy", "closesell")                   # close a long / a short: swaps only

# What each word of an order's `type`, `direction` or `offset` says: (the side that goes to the
# book, whether it opens or closes); None where the word does not say.
ORDER_WORDS = {
    "buy": ("buy", None),
    "sell": ("sell", None),
    "closebuy": ("sell", "close"),       # a close-long is a sell
    "closesell": ("buy", "close"),       # a close-short is a buy
    "open": (None, "open"),
    "close": (None, "close"),
}
ORDER_MEANING = {
    "buy": "a buy", "sell": "a sell", "closebuy": "a sell that closes a long",
    "closesell": "a buy that closes a short", "open": "an order that opens", "close": "an order that closes",
}
CLOSE_TYPE_OF_SIDE = {"sell": "closebuy", "buy": "closesell"}

# Candle periods, in minutes, that the served exchanges have (the guide's `period` is minutes):
# the union of their PERIODS tables.
MINUTE_PERIODS = frozenset(period for exchange in EXCHANGES.values() for period in exchange.PERIODS)


def _symbol(params, required=True, allow_range=False):
    value = params.get("symbol")
    if value in (None, "") and not required:
        return None
    return parse_symbol(value, allow_range=allow_range)


def _int(params, name, default=None, minimum=0):
    value = params.get(name)
    if value in (None, ""):
        return default
    number = parse_number(value, name)
    if number != number.to_integral_value() or number < minimum or number > 2 ** 63:
        raise PluginError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(number) or default


def _limit(params, method, maximum):
    """The optional `limit`, at most `maximum` (every page of it is a request to the exchange)."""
    limit = _int(params, "limit")
    if limit is not None and limit > maximum:
        raise PluginError(f"limit {limit} is over the {maximum} that {method} answers at most: "
                          f"ask for fewer")
    return limit


def _since(params):
    """The optional `since` (ms), at most MAX_HISTORY_DAYS ago."""
    since = _int(params, "since")
    oldest = time.time() * 1000 - MAX_HISTORY_DAYS * DAY_MS
    if since is not None and since < oldest:
        unit = " (that looks like seconds: since is in milliseconds)" if since < 10 ** 11 else ""
        raise PluginError(f"since {since} is more than {MAX_HISTORY_DAYS} days ago{unit}: historyorders "
                          f"looks back at most {MAX_HISTORY_DAYS} days")
    return since


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
    """`period` counts minutes (the guide: "60" = 1 h). FMZ's strategy API counts periods in
    seconds (PERIOD_H1 = 3600), so a docker may forward those: a value that is no minute period
    but 60 times one (300, 900, 3600, 14400, 86400, 604800) is read as seconds."""
    period = _int(params, "period", 60, minimum=1)
    if period not in MINUTE_PERIODS and period % 60 == 0 and period // 60 in MINUTE_PERIODS:
        period //= 60
    return {"symbol": _symbol(params), "period": period, "limit": _limit(params, "records", MAX_RECORDS)}


def trade_params(params, named_side=None):
    """FMZ's order type (buy, sell, closebuy, closesell) from `type` and a `direction` or
    `offset` param (`named_side`: the side a method named Buy or Sell carries); price -1 is FMZ's
    market order; amount must be positive."""
    order_type = _order_type(params, named_side)
    price = parse_number(params.get("price"), "price")
    amount = parse_number(params.get("amount"), "amount")
    if price != -1 and price <= 0:
        raise PluginError(f"price must be positive, or -1 for a market order, got {params['price']!r}")
    if amount <= 0:
        raise PluginError(f"amount must be positive, got {params['amount']!r}")
    return {"symbol": _symbol(params), "order_type": order_type,
            "price": None if price == -1 else price, "amount": amount}


def _order_type(params, named_side=None):
    """One of TRADE_TYPES from every word the request says about the order.

    The guide does not say how exchange.SetDirection reaches a plugin, so besides `type` a
    `direction` or `offset` param is read too (`type: "sell", direction: "closebuy"`; `type:
    "buy", offset: "close"`). Each word names a side, an offset or both (ORDER_WORDS); words
    that disagree (`type: "buy", direction: "closebuy"`) are refused, never guessed.
    """
    words = [(f"the method {named_side.title()}", named_side)] if named_side else []
    for name in ("type", "direction", "offset"):
        value = params.get(name)
        if value in (None, ""):
            continue
        allowed = TRADE_TYPES if name == "type" else tuple(ORDER_WORDS)
        if not isinstance(value, str) or value.lower() not in allowed:
            raise PluginError(f"{name} must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {value!r}")
        words.append((f'{name} "{value.lower()}"', value.lower()))
    side, offset = _agreed(words, 0), _agreed(words, 1) or "open"
    if side is None:
        raise PluginError("type is missing: expected buy, sell, closebuy or closesell")
    return side if offset == "open" else CLOSE_TYPE_OF_SIDE[side]


def _agreed(words, part):
    """What the words say about the side (part 0) or the offset (part 1); None if none says it."""
    said = [(source, word) for source, word in words if ORDER_WORDS[word][part]]
    for source, word in said[1:]:
        if ORDER_WORDS[word][part] != ORDER_WORDS[said[0][1]][part]:
            first_source, first = said[0]
            raise PluginError(f"{first_source} and {source} contradict each other ({ORDER_MEANING[first]}, "
                              f"{ORDER_MEANING[word]}): refused rather than guessed")
    return ORDER_WORDS[said[0][1]][part] if said else None


def orders_params(params):
    return {"symbol": _symbol(params, required=False)}


def order_params(params):
    return {"order_id": _order_id(params), "symbol": _symbol(params, required=False)}


def history_params(params):
    return {"symbol": _symbol(params), "since": _since(params),
            "limit": _limit(params, "historyorders", MAX_HISTORY_ORDERS)}


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
    "fundings": range_params,
}

# Other names the docker may send for a PROTOCOL method: FMZ's function names and the singular
# or plural forms. The guide names the spot methods only; what a newer docker sends for the
# others is not written anywhere (the status page's `seen` shows it), so each is accepted.
# Method names match ignoring case and underscores (GetTicker, get_ticker, TICKER, marginlevel);
# an alias answers exactly what its PROTOCOL method answers.
ALIASES = {
    "getticker": "ticker",
    "getdepth": "depth",
    "gettrades": "trades",
    "getrecords": "records", "record": "records",
    "getaccount": "accounts", "getaccounts": "accounts", "account": "accounts",
    "getassets": "assets", "asset": "assets",
    "createorder": "trade", "buy": "trade", "sell": "trade",
    "getorders": "orders",
    "getorder": "order",
    "gethistoryorders": "historyorders", "historyorder": "historyorders",
    "cancelorder": "cancel",
    "getmarkets": "markets", "market": "markets",
    "gettickers": "tickers",
    "getpositions": "positions", "getposition": "positions", "position": "positions",
    "setmarginlevel": "margin_level",
    "getfundings": "fundings", "getfunding": "fundings", "funding": "fundings",
}
NAMED_SIDES = {"buy": "buy", "sell": "sell"}    # FMZ's Buy and Sell: the order's side is the name
METHOD_NAMES = {**{name.replace("_", ""): name for name in PROTOCOL}, **ALIASES}   # every name -> its method


def method_of(called):
    """The PROTOCOL method a request's `method` names, IO_PREFIX for an exchange.IO call (the key
    of the exchange module's handler), or None."""
    if not isinstance(called, str):
        return None
    if called.startswith(IO_PREFIX):
        return IO_PREFIX
    return METHOD_NAMES.get(_name_key(called))


def _name_key(called):
    return called.lower().replace("_", "")


SWAP_ONLY = ("positions", "margin_level", "fundings")    # methods of perpetual swaps alone


def refuse_on_spot(exchange, method, kwargs):
    """Refuse, once here for every exchange, what none serves on a spot symbol: a swap-only
    method, and an order that closes a position (closebuy/closesell)."""
    symbol = kwargs.get("symbol")
    if symbol is None or symbol.is_swap:
        return
    if method in SWAP_ONLY:
        raise PluginError(f"{exchange.NAME} {method} is for perpetual swaps such as BTC_USDT.swap or "
                          f"USDT.swap, not {symbol}")
    if kwargs.get("order_type") in CLOSE_TYPES:
        raise PluginError(f"{exchange.NAME} spot orders are buy or sell, not {kwargs['order_type']!r}: "
                          f"closebuy/closesell are for swaps such as BTC_USDT.swap")


def io_params(method, params, http_method):
    """exchange.IO: the path is in the method name, the verb in the Http-Method header.

    Only a plain path on the exchange's own host is allowed: signed headers must never be
    sent to another host, so absolute URLs, `//host`, `..` and odd characters are refused.
    """
    path = method[len(IO_PREFIX):]
    if (not re.fullmatch(r"/[A-Za-z0-9_\-./]*", path) or path.startswith("//") or "/../" in path + "/"
            or "/./" in path + "/"):
        raise PluginError(f"exchange.IO path {path[:80]!r} is refused: give a path such as /api/v5/account/balance")
    verb = (http_method or "GET").upper()
    if verb not in IO_VERBS:
        raise PluginError(f"exchange.IO verb {verb[:10]!r} is not one of {', '.join(IO_VERBS)}")
    return {"http_method": verb, "path": path, "params": params}


# -- The answer contract: what every method's `data` is -------------------------------------------
# Written once, as yt-dlp's InfoExtractor docstring states its result fields: every exchange
# module answers this (exchanges/__init__.py points here), `check` grades any plugin by it and
# the contract tests hold each exchange to it. FMZ turns these into its structures (Ticker,
# Record, Order, Market, Position, Funding), field names in lower case with underscores.
#
# A structure is {field: (kind, presence, meaning)}, fields in the order answered.
#   kind      "number"    a number (this plugin answers JSON numbers; check also takes numeric strings)
#             "int"       a whole number
#             "time"      a moment in milliseconds since 1970 UTC, not in the future
#             "next time" a moment in milliseconds that may lie ahead
#             "interval"  a duration in milliseconds
#             "text", "symbol" (FMZ form: BTC_USDT, BTC_USDT.swap), "id" (a non-empty string the
#             docker hands back verbatim), "levels" ([[price, amount], ...]),
#             or a tuple: the only values allowed
#   presence  REQUIRED: always there. SWAP: there on a perpetual swap's answer; a spot one gives
#             "" or leaves it out. OPTIONAL: there when the exchange has it.
# Amounts are in the market's amount unit: the base currency on spot, the exchange's own unit
# on a swap (OKX: contracts of ct_val ct_val_ccy each; Binance, Bybit: coins).

REQUIRED, SWAP, OPTIONAL = "required", "swap", "optional"
OPEN_STATUSES = ("pending", "pre-submitted", "submitting", "submitted", "partial-filled")
CLOSED_STATUSES = ("filled", "closed", "finished", "partial-canceled", "canceled")

TICKER = {
    "symbol": ("symbol", REQUIRED, "the market"),
    "buy": ("number", REQUIRED, "best bid price"),
    "sell": ("number", REQUIRED, "best ask price"),
    "high": ("number", REQUIRED, "highest price of the last 24 h"),
    "low": ("number", REQUIRED, "lowest price of the last 24 h"),
    "open": ("number", REQUIRED, "price 24 h ago"),
    "last": ("number", REQUIRED, "last traded price"),
    "vol": ("number", REQUIRED, "volume of the last 24 h, in the amount unit"),
    "time": ("time", REQUIRED, "when the exchange stamped it"),
}
DEPTH = {
    "time": ("time", REQUIRED, "when the exchange stamped the book"),
    "asks": ("levels", REQUIRED, "[[price, amount], ...], lowest price first"),
    "bids": ("levels", REQUIRED, "[[price, amount], ...], highest price first"),
}
TRADE = {                           # one row of `trades`, oldest first
    "id": ("id", REQUIRED, "the exchange's trade id"),
    "time": ("time", REQUIRED, "when it traded"),
    "price": ("number", REQUIRED, "price"),
    "amount": ("number", REQUIRED, "amount, in the amount unit"),
    "type": (("buy", "sell"), REQUIRED, "the taker's side"),
}
RECORD = {                          # one row of `records`: a list in this column order, oldest first
    "time": ("time", REQUIRED, "when the candle opened"),
    "open": ("number", REQUIRED, "first price"),
    "high": ("number", REQUIRED, "highest price"),
    "low": ("number", REQUIRED, "lowest price"),
    "close": ("number", REQUIRED, "last price"),
    "volume": ("number", REQUIRED, "volume, in the amount unit"),
}
BALANCE = {                         # one row of `accounts` / `assets`, one per currency
    "currency": ("text", REQUIRED, "the currency, e.g. USDT"),
    "free": ("number", REQUIRED, "available to trade"),
    "frozen": ("number", REQUIRED, "held by open orders (and by swap positions' margin)"),
    "equity": ("number", OPTIONAL, "the margin currency's equity, unrealised profit included"),
    "upnl": ("number", OPTIONAL, "unrealised profit of the positions it margins"),
}
ORDER_ID = {                        # what `trade` answers
    "id": ("id", REQUIRED, "the order's id: what order and cancel take back"),
}
ORDER = {                           # what `order` answers; `orders` and `historyorders` list them
    "id": ("id", REQUIRED, "the id trade answered"),
    "symbol": ("symbol", REQUIRED, "the market"),
    "amount": ("number", REQUIRED, "the amount ordered, in the amount unit"),
    "price": ("number", REQUIRED, "the limit price; 0 for a market order"),
    "deal_amount": ("number", REQUIRED, "the amount filled so far"),
    "avg_price": ("number", REQUIRED, "the average fill price; 0 before the first fill"),
    "type": (("buy", "sell"), REQUIRED, "the side that went to the book: closing a long is a sell"),
    "offset": (("open", "close"), SWAP, "whether the swap order opens or closes a position"),
    "contract_type": (("swap",), SWAP, "swap: the order is a perpetual swap's"),
    "time": ("time", REQUIRED, "when the order was created"),
    "status": (OPEN_STATUSES + CLOSED_STATUSES, REQUIRED, "FMZ's order status"),
}
MARKET = {                          # one value of `markets`, keyed by symbol (FMZ's Market)
    "symbol": ("symbol", REQUIRED, "the market"),
    "base_asset": ("text", REQUIRED, "what is bought, e.g. BTC"),
    "quote_asset": ("text", REQUIRED, "what it is paid in, e.g. USDT"),
    "tick_size": ("number", REQUIRED, "price step"),
    "amount_size": ("number", REQUIRED, "amount step, in the amount unit"),
    "price_precision": ("int", REQUIRED, "digits after the point of a price"),
    "amount_precision": ("int", REQUIRED, "digits after the point of an amount"),
    "min_qty": ("number", REQUIRED, "smallest amount of an order"),
    "max_qty": ("number", REQUIRED, "largest amount of an order; 0 when the exchange names none"),
    "min_notional": ("number", REQUIRED, "smallest price x amount; 0 when none"),
    "max_notional": ("number", REQUIRED, "largest price x amount; 0 when none"),
    "ct_val": ("number", REQUIRED, "a swap contract's value in ct_val_ccy; 0 on spot"),
    "ct_val_ccy": ("text", REQUIRED, "the currency of ct_val; empty on spot"),
}
POSITION = {                        # one row of `positions` (FMZ's Position), open positions only
    "symbol": ("symbol", REQUIRED, "the swap"),
    "margin_level": ("number", REQUIRED, "leverage"),
    "amount": ("number", REQUIRED, "size, positive, in the amount unit"),
    "frozen_amount": ("number", REQUIRED, "the part held by resting closing orders"),
    "price": ("number", REQUIRED, "average entry price"),
    "profit": ("number", REQUIRED, "unrealised profit, in the margin currency"),
    "type": ((0, 1), REQUIRED, "0 long, 1 short"),
    "contract_type": (("swap",), REQUIRED, "swap"),
    "margin": ("number", REQUIRED, "the margin held, in the margin currency"),
}
FUNDING = {                         # one row of `fundings` (FMZ's Funding)
    "symbol": ("symbol", REQUIRED, "the swap"),
    "rate": ("number", REQUIRED, "the rate of the coming settlement"),
    "time": ("next time", REQUIRED, "when it settles"),
    "interval": ("interval", REQUIRED, "time between two settlements"),
}

# Each method's `data`: (shape, structure). Shapes: "object" one structure; "list" a list of
# them; "rows" a list of lists in the structure's column order; "by symbol" an object whose
# keys are symbols and whose values are structures; "true" the JSON literal true.
ANSWERS = {
    "ticker": ("object", TICKER),
    "depth": ("object", DEPTH),
    "trades": ("list", TRADE),
    "records": ("rows", RECORD),
    "accounts": ("list", BALANCE),
    "assets": ("list", BALANCE),
    "trade": ("object", ORDER_ID),
    "orders": ("list", ORDER),
    "order": ("object", ORDER),
    "historyorders": ("list", ORDER),
    "cancel": ("true", None),
    "markets": ("by symbol", MARKET),
    "tickers": ("list", TICKER),
    "positions": ("list", POSITION),
    "margin_level": ("true", None),
    "fundings": ("list", FUNDING),
}


# -- Dispatch: one request to its answer -----------------------------------------------------------

class Settings:
    """What the command line decides for every exchange call."""

    def __init__(self, base_urls=None, timeout=DEFAULT_TIMEOUT, throttle=True, allow=None,
                 max_wait=THROTTLE_MAX_WAIT, max_connections=None, risk=None, paper=None, stream=False):
        self.base_urls = {name.lower(): without_userinfo(url) for name, url in (base_urls or {}).items()}
        # market data from the exchanges' WebSockets (the server's default; --no-stream): _stream.py
        self.streams = Streams(lambda exchange: stream_urls(exchange, self.base_urls_of(exchange.NAME.lower()))) \
            if stream else None
        self.timeout = timeout
        self.throttle = THROTTLE if throttle else None    # keep under the exchanges' documented limits
        self.rate_use = RateUse()                         # how near the limits the calls came (status)
        self.max_wait = max_wait                          # seconds a call may wait for its turn there
        self.shared_reads = SHARED_READS                  # identical public reads at once: one call
        self.allow = [ipaddress.ip_network(a, strict=False) for a in allow] if allow else None
        self.max_connections = max_connections or default_max_connections()   # docker connections at once
        # paper accounts (access_key "paper"): their SQLite file, opened on the first paper call
        self.paper = paper or _paper.Ledger(_paper.default_path(globals().get("__file__")))
        self.risk = risk                                  # the RiskGuard orders pass (--risk), or None
        if risk is not None:
            risk.streams = self.streams                   # its best bid and ask from the stream when it runs
        self.apis = {}            # one Api per exchange, keys and settings, reused: see _api_for
        self.lock = threading.Lock()

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


PAPER_LABEL = " paper"       # how the status shows the calls of paper accounts: "OKX paper"
GUARDED = ("trade", "margin_level", IO_PREFIX)   # what the risk guard sees: never a read or a cancel
                                                # (exchange.IO: its calls other than GET)
_KEY_TEXT = re.compile(r"[\x20-\x7e]*")      # what an API key may hold: printable ASCII (it travels in headers)


def without_userinfo(url):
    """The URL without a user:password@ part: never sent (the transport connects to the host and
    port alone) and so never kept, where an error, the banner or the log could show it."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def dispatch(exchange_name, envelope, http_method=None, settings=None, stats=None, header_names=()):
    """One docker request -> its answer, {"data", "raw"} or {"error"}: the only place errors
    become {"error"}.

    When `stats` is given, the call is counted there under the exchange and the method it
    named (an alias under its PROTOCOL method), refused or not, with what its error was
    (error_kind); a request that names no served method counts as BAD_REQUEST. Its shape
    (method, param and header names) is noted there too.
    """
    started = time.monotonic()
    exchange = EXCHANGES.get(exchange_name.lower())
    method = method_of(envelope.get("method") if isinstance(envelope, dict) else None) or BAD_REQUEST
    api, asked, kind = None, False, None
    try:
        params = _unpack(exchange, exchange_name, envelope)
        _require_served(exchange, envelope["method"], method)
        kwargs = _parse_params(method, envelope["method"], params, http_method)
        settings = settings or Settings()
        api = _api_for(exchange, exchange_name.lower(), envelope, settings)
        handler = _handler_of(api, method, kwargs)
        asked = True                  # from here on, an error is the exchange's (or a refusal)
        answer = _serve_call(api, handler, method, kwargs, settings.risk, settings.streams, exchange)
    except PluginError as error:
        answer = {"error": _capped(redact(str(error), envelope, api))}
        kind = error_kind(error, asked, header_names)
    except Exception as error:
        log.error("internal error in %s:\n    %s", method, Traceback(redact(traceback.format_exc(), envelope, api)))
        answer = {"error": f"internal error in {method}: {type(error).__name__}"}
        kind = EXCHANGE_ERROR
    if stats is not None and exchange is not None:
        shown = exchange.NAME + PAPER_LABEL if _paper_envelope(envelope) else exchange.NAME
        stats.record(shown, method, time.monotonic() - started, answer.get("error"), kind)
        stats.vocabulary.note(exchange.NAME, envelope, header_names)
    return answer


# -- HTTP: the handler, which hands each request to dispatch ---------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    """POST /<Exchange> with the docker's JSON envelope; every answer is HTTP 200 JSON."""

    protocol_version = "HTTP/1.1"          # keep-alive toward the docker
    server_version = "fmz-plugin/" + __version__
    timeout = CLIENT_TIMEOUT               # idle, waiting for the next request; and each write
    request_timeout = REQUEST_TIMEOUT      # a whole request, from its first byte (see RequestReader)
    disable_nagle_algorithm = True         # headers and body leave at once, no 40 ms delayed-ACK stall
    wbufsize = -1                          # ... in one write (see _send)

    def setup(self):
        super().setup()
        self.rfile = io.BufferedReader(RequestReader(self.connection, self.timeout, self.request_timeout))

    def handle_one_request(self):
        self.rfile.raw.next_request()
        super().handle_one_request()

    def do_POST(self):
        if isinstance(self.server, StatusServer):
            return self._answer({"error": "this port serves the status page only; the General Protocol is "
                                          f"served at {service_hosts(self.server)[0]}/<Exchange>"}, close=True)
        started = time.monotonic()
        exchange_name = exchange_of_path(self.path)
        try:
            body = self._read_body()
            if body is None:
                return                         # refused and answered already (413)
            envelope = json.loads(body)
        except PluginError as error:
            return self._answer({"error": str(error)}, close=True)
        except ValueError:
            return self._answer({"error": "the request body is not valid JSON"}, close=True)
        except RecursionError:
            return self._answer({"error": "the request body is nested too deeply"})
        answer = dispatch(exchange_name, envelope, self.headers.get("Http-Method"),
                          self.server.settings, self.server.stats, self.headers.names)
        self._answer(answer)
        self.server.access_log.note(exchange_name, envelope, started, answer)

    def do_GET(self):
        """GET / or /status: the status page for humans; any other GET is a protocol mistake."""
        if self.path.split("?")[0].rstrip("/") not in ("", "/status"):
            return self._answer({"error": "the General Protocol uses POST /<Exchange> with a JSON body; "
                                          "the status page is GET /"})
        report = status_report(self.server.status_of)
        if "format=json" not in self.path and prefers_html(self.headers.get("Accept", "")):
            return self._send(status_html(report).encode(), "text/html; charset=utf-8")
        self._answer(report)

    def parse_request(self):
        """After the request line and headers: refuse a client --allow does not list, before
        its body is read."""
        if not self._parse_head():
            return False
        if "Transfer-Encoding" in self.headers:       # never read: framed by Content-Length, a request
            self._answer({"error": "Transfer-Encoding is not accepted: send the body with a Content-Length"},
                         close=True, status=400)      # smuggled inside it would be served
            return False
        if self.server.settings.allows(self.client_address[0]):
            return True
        self.server.refused_counts["not allowed"] += 1
        if self.server.refusals.first_in_a_while(self.client_address[0]):
            log.warning("refused a request from %s (not in --allow; logged once a minute per address)",
                        self.client_address[0])
        self._answer({"error": f"client address {self.client_address[0]} is not allowed (see --allow)"},
                     close=True, status=403)
        return False

    def _parse_head(self):
        """BaseHTTPRequestHandler.parse_request's rules (request line, version, header limits,
        Connection, Expect), with the headers read into a plain dict (_kit.Headers) instead of
        through the email package, which took a tenth of the CPU of an answer."""
        self.command, self.request_version, self.close_connection = None, self.default_request_version, True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            number = version[5:].split(".") if version.startswith("HTTP/") else []
            if len(number) != 2 or not all(part.isdigit() and len(part) <= 10 for part in number):
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            if (int(number[0]), int(number[1])) >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
                return False
            self.close_connection = (int(number[0]), int(number[1])) < (1, 1)
            self.request_version = version
        if not 2 <= len(words) <= 3 or (len(words) == 2 and words[0] != "GET"):
            self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        self.command, self.path = words[:2]
        if len(words) == 2:
            self.close_connection = True
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = Headers(header_lines(self.rfile))
        except http.client.LineTooLong as error:
            self.send_error(431, "Line too long", str(error))
            return False
        except http.client.HTTPException as error:
            self.send_error(431, "Too many headers", str(error))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise PluginError("the request needs a Content-Length header")
        length = int(length)
        if length > MAX_BODY:
            self._answer({"error": f"the request body is over {MAX_BODY} bytes"}, close=True, status=413)
            self._drain(length)
            return None
        try:
            body = self.rfile.read(length)
        except (socket.timeout, TimeoutError) as error:      # distinct classes before Python 3.10
            raise PluginError(f"the request did not arrive whole within {self.request_timeout:g}s") from error
        if len(body) < length:
            raise PluginError("the request body is shorter than its Content-Length")
        return body

    def _drain(self, length):
        """Read and drop what the client still sends of a refused body (at most DRAIN_MAX bytes,
        for at most DRAIN_SECONDS): closed with unread bytes, the system resets the connection,
        and a reset can destroy the answer before the client reads it."""
        reader = self.rfile.raw
        reader.deadline = min(reader.deadline or math.inf, time.monotonic() + DRAIN_SECONDS)
        left = min(length, DRAIN_MAX)
        try:
            while left > 0:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def _answer(self, answer, close=False, status=200):
        self._send(to_json(answer), "application/json; charset=utf-8", close, status)

    def _send(self, body, content_type, close=False, status=200):
        """The status line, headers and body in one write (send_response and send_header, as
        they are, build and encode one line at a time)."""
        self.rfile.raw.set_timeout(self.timeout)      # reads may have left a shorter one
        self.log_request(status)
        if close:                          # the stream may hold leftovers of a broken request
            self.close_connection = True
        head = (f"{self.protocol_version} {status} {self.responses[status][0]}\r\n"
                f"Server: {self.version_string()}\r\nDate: {self.date_time_string()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n\r\n" if close else "\r\n"))
        self.wfile.write(head.encode("latin-1") + body)
        self.wfile.flush()                 # the answer leaves now, before the log line is written

    def send_error(self, code, message=None, explain=None):
        """Malformed HTTP (bad request line, odd verb) still gets JSON, never an HTML page."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"   # even a garbled request line gets a status line
        try:
            self._answer({"error": f"HTTP {code}: {message or self.responses.get(code, ('',))[0]}"}, close=True)
        except OSError:
            pass

    def log_message(self, format, *args):
        if log.isEnabledFor(logging.DEBUG):         # called for every response: format only if shown
            log.debug("%s %s", self.address_string(), format % args)

    def date_time_string(self, timestamp=None):
        """The Date header, made once a second rather than once an answer."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        if _DATE[0] != second:
            _DATE[:] = [second, super().date_time_string(second)]
        return _DATE[1]


_DATE = [None, ""]            # (the second, its Date header text): Handler.date_time_string


class AccessLog:
    """The line per request, costing nothing when nobody reads it: every request at --log-level
    debug; at info (the default) each error answer on its own line and, at most once every
    `every` seconds, one line counting the answers given since (their times, methods and errors
    per exchange are on the status page). Formatting a line per request took a tenth of the
    CPU of an answer."""

    def __init__(self, every=ACCESS_LOG_EVERY):
        self.every = every
        self.answered, self.errors = 0, 0
        self.since = time.monotonic()
        self.lock = threading.Lock()

    def note(self, exchange_name, envelope, started, answer):
        error = answer.get("error")
        if log.isEnabledFor(logging.DEBUG) or (error is not None and log.isEnabledFor(logging.INFO)):
            log.log(logging.DEBUG if error is None else logging.INFO, "%s %s %s %.0fms %s", exchange_name,
                    *_logged(envelope), (time.monotonic() - started) * 1000, "ok" if error is None else "error: " + error)
        now = time.monotonic()
        with self.lock:
            self.answered += 1
            self.errors += error is not None
            if now - self.since < self.every:
                return
            answered, errors, seconds = self.answered, self.errors, now - self.since
            self.answered, self.errors, self.since = 0, 0, now
        log.info("%d requests answered in the last %.0f s, %d of them errors (each error is logged; every "
                 "request at --log-level debug)", answered, seconds, errors)


# -- Dispatch, step by step: envelope, params, the call, secrets kept out of answers ---------------

def _paper_envelope(envelope):
    return isinstance(envelope, dict) and _paper.is_paper(envelope.get("access_key"))


def _require_served(exchange, called, method):
    """An unknown method's error lists the methods this exchange serves, so a trader can tell
    what a newer docker sent from what the plugin expects, and names the one a typo was meant
    for (`tiker`: did you mean ticker?)."""
    if method == BAD_REQUEST:
        served = [name for name in PROTOCOL if name in exchange.METHODS]
        guess = difflib.get_close_matches(_name_key(called[:60]), METHOD_NAMES, n=1, cutoff=0.75)
        meant = f" (did you mean {METHOD_NAMES[guess[0]]}?)" if guess and METHOD_NAMES[guess[0]] in served else ""
        if IO_PREFIX in exchange.METHODS:
            served.append(IO_PREFIX + "<path>")
        raise PluginError(f"unknown method: {called[:60]}{meant}; served: {', '.join(served)}")


def _parse_params(method, called, params, http_method):
    """The handler's keyword arguments (exchange.IO: its path is in the method as called; Buy
    and Sell: the order's side is)."""
    if method == IO_PREFIX:
        return io_params(called, params, http_method)
    if method == "trade":
        return trade_params(params, NAMED_SIDES.get(_name_key(called)))
    return PROTOCOL[method](params)


def _api_for(exchange, key, envelope, settings):
    """The Api a handler calls the exchange through, for the envelope's keys. A paper account's
    (Access Key paper) sends public calls only, and its exchange's private methods are served by
    the account (exchanges/_paper.py): the risk guard and everything else see it as any Api.
    Its throttle is Watched, for the rate-limit use the status shows."""
    throttle = settings.throttle and Watched(settings.throttle, settings.rate_use)
    options = dict(base_urls=settings.base_urls_of(key), timeout=settings.timeout, throttle=throttle,
                   max_wait=settings.max_wait, shared=settings.shared_reads)
    access_key, secret_key = envelope["access_key"].strip(), envelope["secret_key"].strip()   # as typed, less
    if _paper.is_paper(access_key):                                # the spaces around, which no key has
        return settings.paper.api(exchange, secret_key, **options)
    wanted = (exchange.NAME, access_key, secret_key, *sorted(options["base_urls"].items()),
              settings.timeout, settings.throttle, settings.max_wait, settings.shared_reads)
    api = settings.apis.get(wanted)
    if api is None:
        api = Api(exchange, access_key, secret_key, **options)
        with settings.lock:
            if len(settings.apis) >= APIS_KEPT:
                settings.apis.pop(next(iter(settings.apis)))      # the oldest: dicts keep their order
            settings.apis[wanted] = api
    api.new_request()
    return api


def _handler_of(api, method, kwargs):
    """The exchange module's handler of `method`, once the call suits the exchange."""
    handler = api.exchange.METHODS.get(method)
    if handler is None:
        raise PluginError(f"{api.exchange.NAME} does not support {method}")
    refuse_on_spot(api.exchange, method, kwargs)
    return handler


def _serve_call(api, handler, method, kwargs, risk=None, streams=None, exchange=None):
    """`handler` called with `api`; an order (and a leverage) first passes the risk guard,
    which may refuse it (exchanges/_risk.py); market data is answered from the exchange's
    stream when it holds it (exchanges/_stream.py)."""
    if streams is not None and method in STREAMED:
        data, raw = streams.serve(exchange, method, kwargs, lambda: _read_in_turn(handler, api, method, kwargs),
                                  lambda: api.keys, api)
    elif risk is None or method not in GUARDED:
        data, raw = _read_in_turn(handler, api, method, kwargs)
    else:
        with risk.admit(api, method, kwargs):
            data, raw = handler(api, **kwargs)
    return {"data": data, "raw": raw}


def _read_in_turn(handler, api, method, kwargs):
    """The handler's answer. Robots of the same keys asking the same market data at the same
    time share one answer (SHARED_ANSWERS), as their exchange calls are shared (SHARED_READS):
    eight robots on one ticker decode and map one reply, not eight. A large read first waits
    its turn (LARGE_READ_TURNS), as long as a call may wait for the throttle (--max-wait)."""
    shared_as = _shared_answer_key(api, method, kwargs)
    if shared_as is not None:
        return SHARED_ANSWERS.get(shared_as, lambda: _read_alone(handler, api, method, kwargs))
    return _read_alone(handler, api, method, kwargs)


def _read_alone(handler, api, method, kwargs):
    if not is_large_read(method, kwargs):
        return handler(api, **kwargs)
    with LARGE_READ_TURNS.turn(api.max_wait or THROTTLE_MAX_WAIT):
        return handler(api, **kwargs)


def _shared_answer_key(api, method, kwargs):
    """The SHARED_ANSWERS key of a market-data read (exchange, base URL, keys, method and its
    params), or None when shared reads are off or a param cannot be a key. The keys count: an
    exchange may answer market data by its account's subscription (Alpaca's feeds)."""
    if method not in SHARED_METHODS or api.shared is None:
        return None
    params = tuple(sorted(kwargs.items()))
    try:
        hash(params)
    except TypeError:
        return None
    return api.name, api.base_url, api.key_digest, method, params


SHARED_METHODS = ("ticker", "depth", "trades", "records")
SHARED_ANSWERS = SingleFlight()


def is_large_read(method, kwargs):
    """True for a read that may hold megabytes while it runs (LARGE_LIMITS, ALWAYS_LARGE)."""
    if method in ALWAYS_LARGE:
        return True
    return method in LARGE_LIMITS and (kwargs.get("limit") or 0) > LARGE_LIMITS[method]


class Turns:
    """At most `size` calls at once; the others wait, first come first served, each for at most
    the seconds it is given (then it is refused, as a call the throttle cannot fit in time)."""

    def __init__(self, size):
        self.size, self.running, self.waiting = size, 0, 0
        self.changed = threading.Condition()
        self.line = deque()

    @contextlib.contextmanager
    def turn(self, most_wait):
        self._take(most_wait)
        try:
            yield self
        finally:
            with self.changed:
                self.running -= 1
                self.changed.notify_all()

    def _take(self, most_wait):
        with self.changed:
            ticket = object()
            self.line.append(ticket)
            self.waiting += 1
            self.changed.notify_all()
            try:
                granted = self.changed.wait_for(lambda: self.line[0] is ticket and self.running < self.size, most_wait)
            finally:
                self.line.remove(ticket)
                self.waiting -= 1
                self.changed.notify_all()
            if not granted:
                raise PluginError(f"{self.size} large reads (thousands of candles or orders, a deep book, every "
                                  f"ticker) are under way and others wait: no turn within {most_wait:g}s (--max-wait); "
                                  "ask again, or ask for less", rate_limited=True)
            self.running += 1

    def wait_waiting(self, count, timeout=10.0):
        """Tests: wait until `count` calls wait their turn."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.waiting >= count, timeout), f"{self.waiting} waiting"


LARGE_READ_TURNS = Turns(LARGE_READS)


def error_kind(error, asked, header_names=()):
    """Which of ERROR_KINDS a PluginError is, for the status: a refusal of the risk guard or of
    the throttle; the exchange's when the exchange said so (its error code) or its answer was
    lost (a timeout, a dropped connection, HTTP 5xx: ambiguous); else a bad request, which the
    plugin or the exchange module refused before asking (unknown method, bad params, a spot
    symbol on a swap-only exchange, an amount under the minimum, keys in the wrong form), or
    which `check` sent wrong on purpose (CHECK_HEADER)."""
    if not asked or any(name.lower() == CHECK_HEADER for name in header_names):
        return BAD_REQUEST_ERROR
    if str(error).startswith(RISK_REFUSAL_TEXT):
        return RISK_REFUSAL
    if error.rate_limited and error.code is None:          # the exchange's own "too fast" has its code
        return THROTTLED
    if error.code is None and not error.ambiguous:
        return BAD_REQUEST_ERROR
    return EXCHANGE_ERROR


def _unpack(exchange, exchange_name, envelope):
    """The envelope's params, once the exchange is served and the envelope well formed."""
    if exchange is None:
        served = ", ".join("/" + module.NAME for module in EXCHANGES.values())
        raise PluginError(f"unknown exchange path /{exchange_name[:40]}: this plugin serves {served} "
                          "(the last segment of the service address names the exchange)")
    if not isinstance(envelope, dict):
        raise PluginError("the request body must be a JSON object {access_key, secret_key, method, params}")
    for field in ("access_key", "secret_key", "method"):
        if not isinstance(envelope.get(field), str):
            raise PluginError(f"the request has no {field} string")
    for field in ("access_key", "secret_key"):     # they travel in HTTP headers: no CR/LF injection
        if not _KEY_TEXT.fullmatch(envelope[field]):
            raise PluginError(f"{field} has characters an API key never has (only printable ASCII is allowed)")
    params = envelope.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise PluginError(f"params must be a JSON object, got {type(params).__name__}")
    return params


CUT_RUN = 4                 # characters: a run this long of a secret, left where a text was cut, is blanked too
CUT_MARK = r"(?=$|\.\.\.|\u2026|['\"])"    # where a cut text ends: its end, an ellipsis, a closing quote


def redact(text, envelope, api=None):
    """Blank every secret of a request wherever it appears in `text`: the keys the docker sent,
    each part of a SECRET,PASSPHRASE string, and the signatures `api` sent, in every written
    form (_kit.blank_secrets). Replies are blanked before anything reads them (Api._blanked), so
    a message cut short holds no secret; should a cut have come first anyway, what it left of
    one (CUT_RUN characters or more, at the cut) is blanked too. Cut a message only after this."""
    secrets = _secrets_of(envelope) + (api.signatures if api is not None else [])
    return _blank_cut_runs(blank_secrets(text, secrets), secrets)


def _blank_cut_runs(text, secrets):
    """What a cut left of a secret: its beginning at the end of the text (or of a quoted or
    elided snippet), its end at the text's start."""
    for form in {form for secret in secrets for form in written_forms(secret) if len(form) > CUT_RUN}:
        for size in range(len(form) - 1, CUT_RUN - 1, -1):
            head, tail = form[:size], form[-size:]
            if head in text:
                text = re.sub(re.escape(head) + CUT_MARK, "***", text)
            if text.startswith(tail):
                text = "***" + text[size:]
    return text


def _secrets_of(envelope):
    if not isinstance(envelope, dict) or _paper_envelope(envelope):
        return []                  # a paper account's keys are the word paper and its balances
    return key_parts(envelope.get("access_key"), envelope.get("secret_key"))


def _capped(message, limit=MAX_ERROR):
    """An error never carries a whole hostile input back: the start of it is enough."""
    return message if len(message) <= limit else message[:limit] + "..."


def _logged(envelope):
    """The method and symbol a request names, cut short for its log line ("?" when it names none)."""
    envelope = envelope if isinstance(envelope, dict) else {}
    params = envelope.get("params") if isinstance(envelope.get("params"), dict) else {}
    method, symbol = envelope.get("method"), params.get("symbol")
    return (method[:60] if isinstance(method, str) else "?", symbol[:30] if isinstance(symbol, str) else "")


def printable(text):
    """`text` with every character that is not printable written as an escape (\\x0a, \\x1b,
    \\u2028): a newline cannot start a forged log line, an ANSI escape cannot reach a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
                   for c in text)


def _printable(value, limit):
    """`value` as text cut to `limit` characters, each one that is not printable shown as ?."""
    return "".join(c if c.isprintable() else "?" for c in str(value)[:limit])


class Traceback(str):
    """A log argument that spans lines on purpose: SafeFields keeps its lines, each indented."""


class SafeFields(logging.Filter):
    """The one place log lines are made safe: every text field of every record of the plugin's
    logger is made printable (whoever logs it and whatever it holds: a path, a method name,
    an exchange's error text). A Traceback keeps its lines, indented under the line that
    announced it, so none of them can pass for a log line of its own."""

    def filter(self, record):
        if isinstance(record.args, tuple):
            record.args = tuple(_safe_field(arg) for arg in record.args)
        return True


def _safe_field(value):
    if isinstance(value, Traceback):
        return "\n    ".join(printable(line) for line in value.rstrip("\n").split("\n"))
    return printable(value) if isinstance(value, str) else value


log.addFilter(SafeFields())


def to_json(answer):
    """The answer's JSON bytes, by json's C encoder (one encoder for every answer: json.dumps
    with options builds a new one per call), except for parts that carry their JSON text
    already (exchanges/_kit.py): the exchange's reply as it sent it, in `raw`, and a depth's
    book sides in the exchange's own number text. A number that is not finite (NaN, Infinity)
    is no JSON: in `raw` (an exchange's reply as Python's json read it) it becomes null; in
    `data` the answer becomes an error saying where."""
    try:
        return _encoded(answer).encode()
    except ValueError:
        pass
    where = _not_finite_at(answer.get("data"), "data") if isinstance(answer, dict) else None
    if where is not None:
        answer = {"error": f"the answer holds a number that is not finite ({where[1]}) at {where[0]}: not passed "
                           f"on, as it is no JSON"}
    return _ENCODER.encode(_finite(answer)).encode()


def _encoded(answer):
    """{"data", "raw"} as JSON text, its parts that have their text (`json`) written as that."""
    if type(answer) is not dict or answer.keys() != {"data", "raw"}:
        return _ENCODER.encode(answer)
    data, raw = answer["data"], answer["raw"]
    raw_text = _text_carried(raw)
    sides = type(data) is dict and not HAS_JSON_TEXT.isdisjoint(map(type, data.values()))
    if raw_text is None and not sides:
        return _ENCODER.encode(answer)
    if sides and all(type(name) is str for name in data):
        data_text = "{" + ",".join(_ENCODER.encode(name) + ":" + (_text_carried(item) or _ENCODER.encode(item))
                                   for name, item in data.items()) + "}"
    else:
        data_text = _ENCODER.encode(data)
    return '{"data":' + data_text + ',"raw":' + (raw_text or _ENCODER.encode(raw)) + "}"


def _text_carried(value):
    """The JSON text a part of an answer carries (a Reply, ReplyList or BookSide), or None."""
    return value.json if type(value) in HAS_JSON_TEXT else None


HAS_JSON_TEXT = frozenset((Reply, ReplyList, BookSide))


def _not_finite_at(value, path):
    """(where, the number) of the first number in `value` that is not finite, or None."""
    if isinstance(value, (float, Decimal)):
        if value.is_finite() if isinstance(value, Decimal) else math.isfinite(value):
            return None
        return path, {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(str(value), str(value))
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _not_finite_at(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


def _finite(value):
    """`value` with every number that is not finite as None."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value) or isinstance(value, Decimal) and not value.is_finite():
        return None
    return value


def _json_default(value):
    if type(value) is Decimal:
        return int(value) if value == value.to_integral_value() and abs(value) < 2 ** 53 else float(value)
    if type(value) is BookSide:
        return value.levels()
    if isinstance(value, Decimal):
        return _json_default(Decimal(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"), allow_nan=False)   # NaN: see to_json


# -- HTTP server: paths, request bodies, the server and its connections ----------------------------

def exchange_of_path(path):
    """The exchange a request's path names: its last segment, as README says (`/OKX`,
    `/api/OKX/`, `/okx?x=1` all name OKX), so a docker or proxy that adds a prefix still works."""
    return path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


class RequestReader(io.RawIOBase):
    """A docker's socket as its Handler reads it. Waiting for a request may take `idle` seconds;
    once its first bytes arrived, the whole request (line, headers, body) must follow within
    `total` seconds. A socket timeout alone bounds each read, and a client sending a byte every
    20 s would hold its connection (and its thread) forever."""

    def __init__(self, sock, idle, total):
        self.sock, self.idle, self.total = sock, idle, total
        self.deadline = None          # None while idle, between requests
        self.timeout = None           # the socket's timeout as last set here (each setting is a system call)

    def next_request(self):
        self.deadline = None

    def readable(self):
        return True

    def set_timeout(self, seconds):
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def readinto(self, buffer):
        if self.deadline is None:
            self.set_timeout(self.idle)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")       # TimeoutError since Python 3.10
            self.set_timeout(left)
        count = self.sock.recv_into(buffer)
        if self.deadline is None and count:
            self.deadline = time.monotonic() + self.total
        return count


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """The threaded HTTP server, one thread per docker connection, at most
    `settings.max_connections` of them: beyond that a new connection is answered HTTP 503 and
    closed at once (and the event logged once a minute), instead of the process running out of
    file descriptors, where accept() fails and the server would spin with nothing logged.
    An IPv6 address (`::1`, `::`) gets an IPv6 socket; `::` also accepts IPv4 clients."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG   # the listen backlog, per server: see listen_backlog

    def __init__(self, address, settings=None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.settings = settings or Settings()
        self.request_queue_size = listen_backlog(self.settings.max_connections)
        self.refused_counts = {"max connections": 0, "out of files": 0, "not allowed": 0}   # the status page's
        self.stats = Stats()
        self.refusals = Refusals(REFUSALS_LOGGED_EVERY)
        self.access_log = AccessLog()
        self.open_connections = 0
        self.lock = threading.Lock()
        self.spare_file = _spare_file()
        self.refused = []             # (until, socket): refused connections, half-open (see _refuse)
        super().__init__(address, Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            with contextlib.suppress(AttributeError, OSError):     # dual stack where the system has it
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def server_close(self):
        super().server_close()
        if self.status_of is self and self.settings.streams is not None:
            self.settings.streams.close()
        for _, sock in self.refused:
            sock.close()
        if self.spare_file is not None:
            os.close(self.spare_file)
            self.spare_file = None

    status_page = None        # the StatusServer showing this server's status on a port browsers open, if any
    hosts = None              # the http://HOST:PORT dockers reach it at, once service_hosts() worked them out

    @property
    def status_of(self):
        """The protocol server whose status this one shows: itself."""
        return self

    @property
    def status_page_server(self):
        return self.status_page or self

    def get_request(self):
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                self._out_of_files()
            raise

    def _out_of_files(self):
        """accept() failed for want of a file descriptor: the waiting connection is refused with
        the spare one kept for this (else the loop would find it waiting again at once). While
        the spare is taken by a refused connection, the loop pauses a moment instead of spinning.
        The refused connection is closed here once its client hangs up (at once, on reading the
        503; OUT_OF_FILES_LINGER at most), not left half-open: robots arriving after it get their
        503 at once too (they waited 17 s in line for the spare)."""
        if self.refusals.first_in_a_while("out of files"):
            log.error("cannot accept a connection: the process has no file descriptor left (limit %s); "
                      "lower --max-connections (now %d) or raise the limit (ulimit -n)",
                      _open_file_limit(), self.settings.max_connections)
        if self.spare_file is None:
            time.sleep(OUT_OF_FILES_PAUSE)
            return
        os.close(self.spare_file)
        self.spare_file = None
        try:
            request, _ = self.socket.accept()
        except OSError:
            return
        self.refused_counts["out of files"] += 1
        self._refuse(request, "the plugin has no file descriptor left for another connection", linger=False)
        self.spare_file = _spare_file()

    def process_request(self, request, client_address):
        with self.lock:
            admitted = self.open_connections < self.settings.max_connections
            if admitted:
                self.open_connections += 1
        if not admitted:
            self.refused_counts["max connections"] += 1
            if self.refusals.first_in_a_while("max connections"):
                log.warning("refusing connections: %d are open, the --max-connections limit "
                            "(logged once a minute while it lasts)", self.settings.max_connections)
            return self._refuse(request, f"the plugin serves at most {self.settings.max_connections} "
                                         "connections at once (--max-connections): try again shortly")
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connection_closed()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_closed()

    def _connection_closed(self):
        with self.lock:
            self.open_connections -= 1

    def _refuse(self, request, reason, linger=True):
        """HTTP 503 with a JSON error, sent at once from the accepting thread, then the sending
        side closed. The socket itself stays open a moment (`linger`; service_actions closes it)
        so the request the client is still sending arrives and is dropped: closed at once, the
        system would answer that request with a reset, which can destroy the 503 unread."""
        body = to_json({"error": reason})
        head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
        try:
            request.setblocking(False)
            _drained(request)
            request.send(head.encode() + body)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            return request.close()
        if linger and len(self.refused) < REFUSED_KEPT:
            self.refused.append((time.monotonic() + REFUSED_LINGER, request))
        else:
            _hung_up_within(request, OUT_OF_FILES_LINGER if not linger else 0)
            request.close()

    def service_actions(self):
        """Between two accepts (serve_forever's loop): close the refused connections whose client
        has hung up or whose moment is over, and take the spare descriptor back if it was used."""
        now = time.monotonic()
        kept = []
        for until, sock in self.refused:
            if now < until and not _drained(sock):
                kept.append((until, sock))
            else:
                sock.close()
        self.refused = kept
        if self.spare_file is None:
            self.spare_file = _spare_file()

    def handle_error(self, request, client_address):
        """A docker that hung up mid-answer is routine; anything else is logged, not printed raw."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, socket.timeout)):
            log.debug("%s hung up before the answer was sent", client_address[0])
        else:
            log.error("error serving %s:\n    %s", client_address[0], Traceback(traceback.format_exc()))


class StatusServer(Server):
    """The status page alone, on a port browsers open, beside a protocol server on one they
    refuse (6666, the guide's port, is on their list): the same counters, settings and --allow;
    a POST is told where the protocol is served."""

    def __init__(self, address, protocol):
        self.protocol = protocol
        super().__init__(address, protocol.settings)
        self.stats = protocol.stats

    @property
    def status_of(self):
        return self.protocol

    @property
    def status_page_server(self):
        return self


class Refusals:
    """When a refusal of one kind (a client address, "max connections") was last logged, so a
    flood of them is logged once every `seconds`, not once a request. Entries older than that
    are dropped as new ones come, so a scan from many addresses cannot grow it without end."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.logged = {}
        self.lock = threading.Lock()

    def first_in_a_while(self, kind):
        now = time.monotonic()
        with self.lock:
            if now - self.logged.get(kind, -self.seconds) < self.seconds:
                return False
            if len(self.logged) >= 1024:
                self.logged = {k: at for k, at in self.logged.items() if now - at < self.seconds}
            self.logged[kind] = now
            return True


def _open_file_limit():
    """The process's open-file limit (soft), or None where there is none to read."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def default_max_connections():
    """As many docker connections as the open-file limit allows: each may hold one to the
    exchange as well (the pool keeps as many as were in use at once), and FILES_KEPT are kept
    for the process itself; MAX_CONNECTIONS at most (a thread each). 20,000 files (ulimit -n)
    serve 9,984 robots, 1,024 serve 496: 1,000 robots behind a fixed 512 got 503s by the
    thousand a second."""
    limit = _open_file_limit()
    return MAX_CONNECTIONS if limit is None else max(1, min(MAX_CONNECTIONS, (limit - FILES_KEPT) // 2))


def listen_backlog(max_connections):
    """The listen backlog: room for every connection the plugin may serve arriving at once, and
    LISTEN_BACKLOG at least (1,000 robots connecting together overflowed a backlog of 128: resets,
    and 1 s SYN retries)."""
    return max(LISTEN_BACKLOG, max_connections)


def backlog_cap():
    """The system's cap on every listen backlog (Linux net.core.somaxconn), or None unknown."""
    try:
        with open(SOMAXCONN) as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _hung_up_within(sock, seconds):
    """Wait up to `seconds` for the peer to close `sock`, dropping what it sends meanwhile."""
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
    except OSError:
        pass
    return False


def _drained(sock):
    """Read and drop what a non-blocking socket holds: True once the peer has closed (or reset) it."""
    try:
        while sock.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _spare_file():
    """One descriptor held in reserve, freed to refuse a connection when there is none left."""
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


# -- Status: GET / and the FMZ status table --------------------------------------------------------
# What GET / (and GET /status) and the FMZ status table show: one report (status_report: the
# version, the uptime, the Stats counters and each exchange's health and last hour, the
# rate-limit use, the streams, the risk guard, the paper accounts, the service addresses), and
# three renderings of the same SECTIONS in the same order: the page (status_html), the terminal
# (status_text, with the tools) and FMZ's status table (status_table). Its error texts are the
# (redacted) answers already sent. Never a key, and no base URL (a proxy URL may carry a password).

# Health. Every error answer is one of ERROR_KINDS (error_kind), and only EXCHANGE_ERROR makes
# an exchange's state: a bad request (an unknown method, bad params, `check`'s deliberate ones),
# a refusal of the risk guard and a call the throttle held back are counted in rows of their own,
# never as the exchange failing. Over the last 5 minutes (HEALTH_WINDOW) an exchange is
#     idle      when it had no call at all,
#     failing   when at least FAILING_SHARE of the calls that asked it failed, the latest one too,
#     errors    when some of them failed,
#     ok        when none did;
# so it recovers as calls succeed: the first success ends "failing", five minutes without an
# exchange error end "errors".

EXCHANGE_ERROR = "exchange"         # the exchange refused or failed, could not be reached, or the plugin erred
BAD_REQUEST_ERROR = "bad request"   # wrong before any exchange was asked: unknown method, bad params, ...
RISK_REFUSAL = "risk"               # the risk guard refused an order (exchanges/_risk.py)
THROTTLED = "throttle"              # the plugin's throttle held the call back: it was not sent
ERROR_KINDS = (EXCHANGE_ERROR, BAD_REQUEST_ERROR, RISK_REFUSAL, THROTTLED)
RISK_REFUSAL_TEXT = "risk guard: "  # how every refusal of the risk guard begins
CHECK_HEADER = "fmz-check"          # `check` sends its deliberate bad requests with this header
FAILING_SHARE = 0.5                 # of the last 5 minutes' exchange calls: failed ones that make "failing"
STATES = ("failing", "errors", "ok", "idle", "unused")   # worst first; unused: not called since start
TIMELINE_MINUTES = 60               # minutes of per-minute counts kept per exchange, for the page's charts
TIMES_KEPT = 1000                   # durations kept of one minute's calls for its p99 (a fair sample beyond)


class Stats:
    """Calls, errors, the last error and recent durations per exchange and method, since start;
    the counts of the last HEALTH_WINDOW seconds; per exchange, its last error of each kind and
    the last hour minute by minute (Timeline).

    dispatch() records every call that named a served exchange; GET /status and the FMZ status
    table read it. The errors are the texts already answered to the docker, so they never hold
    a key (dispatch redacts them).
    """

    def __init__(self, clock=time.monotonic, wall=time.time):
        self.clock, self.wall = clock, wall    # seconds: for the windows; of the wall clock, for the times shown
        self.started = clock()
        self.started_at = wall()
        self.lock = threading.Lock()
        self.methods = {}                  # (exchange NAME, method) -> MethodStats
        self.exchanges = {}                # exchange NAME -> ExchangeStats
        self.vocabulary = Vocabulary()     # what the docker sends, shown as `seen`

    def record(self, exchange, method, seconds, error=None, kind=EXCHANGE_ERROR):
        """Count one call: `error` is the error it answered (None: it answered data) and `kind`
        which of ERROR_KINDS that error is. exchange.IO calls (method IO_PREFIX) are counted
        together as IO_LABEL."""
        key = (exchange, IO_LABEL if method == IO_PREFIX else method)
        kind = None if error is None else kind
        now, at = self.clock(), self.wall()
        with self.lock:
            entry = self.methods.get(key)
            if entry is None:
                entry = self.methods[key] = MethodStats()
            whole = self.exchanges.get(exchange)
            if whole is None:
                whole = self.exchanges[exchange] = ExchangeStats()
            entry.count(now, at, seconds, error, kind)
            whole.count(at, seconds, error, kind)

    def uptime(self):
        return self.clock() - self.started

    def rows(self):
        """One dict per exchange and method, each exchange's methods together, failing ones
        first (their latest exchange call failed), then those with exchange errors in the last
        5 minutes, then the busiest: what /status and the FMZ table show."""
        now = self.clock()
        with self.lock:
            rows = [_method_row(exchange, method, entry, now) for (exchange, method), entry in self.methods.items()]
        return sorted(rows, key=lambda row: (row["exchange"], not row["failing"], not row["errors_5m"],
                                             -row["calls"], row["method"]))

    def exchange_view(self, exchange, at):
        """(its last error of each kind {kind: (text, time)}, whether its latest exchange call
        failed, the recent durations (seconds) of all its methods, its Timeline.series(at))."""
        with self.lock:
            whole = self.exchanges[exchange]
            durations = [d for (name, _), entry in self.methods.items() if name == exchange for d in entry.durations]
            return dict(whole.last), whole.failing, durations, whole.timeline.series(at)


def _method_row(exchange, method, entry, now):
    recent = entry.recent.totals(now)
    durations = sorted(entry.durations)
    return {"exchange": exchange, "method": method, "calls": entry.calls, "errors": entry.errors,
            "last_error": entry.last_error, "last_error_at": _ms_or_none(entry.last_error_at),
            "last_error_kind": entry.last_error_kind,
            "p50_ms": percentile_ms(durations, 0.5), "p99_ms": percentile_ms(durations, 0.99),
            "calls_5m": recent["calls"], "errors_5m": recent[EXCHANGE_ERROR],
            "bad_requests_5m": recent[BAD_REQUEST_ERROR], "refusals_5m": recent[RISK_REFUSAL],
            "throttled_5m": recent[THROTTLED], "failing": entry.failing}


def percentile_ms(sorted_seconds, fraction):
    """The `fraction` percentile of sorted durations, in ms (the median for 0.5; 0 for none)."""
    if not sorted_seconds:
        return 0.0
    if fraction == 0.5:
        return round(statistics.median(sorted_seconds) * 1000, 1)
    return round(sorted_seconds[max(0, math.ceil(fraction * len(sorted_seconds)) - 1)] * 1000, 1)


def _ms_or_none(seconds):
    return None if seconds is None else int(seconds * 1000)


class MethodStats:
    """One exchange method's counters. Durations and `failing` are of the calls that asked the
    exchange (answered, or failed there): a bad request or a refusal says nothing of it."""

    __slots__ = ("calls", "errors", "last_error", "last_error_at", "last_error_kind", "durations", "recent",
                 "failing")

    def __init__(self):
        self.calls, self.errors = 0, 0
        self.last_error, self.last_error_at, self.last_error_kind = "", None, None
        self.durations = deque(maxlen=LATENCIES_KEPT)
        self.recent = RecentCounts(("calls",) + ERROR_KINDS)
        self.failing = False               # the latest call that asked the exchange failed

    def count(self, now, at, seconds, error, kind):
        self.calls += 1
        self.recent.add(now, "calls", *([kind] if kind else []))
        if kind in (None, EXCHANGE_ERROR):
            self.durations.append(seconds)
            self.failing = kind is not None
        if error is not None:
            self.errors += 1
            self.last_error, self.last_error_at, self.last_error_kind = error, at, kind


class ExchangeStats:
    """One exchange's last error of each kind, whether its latest exchange call failed, and its
    last hour minute by minute."""

    __slots__ = ("last", "failing", "timeline")

    def __init__(self):
        self.last = {}                     # kind -> (error text, time.time() of it)
        self.failing = False
        self.timeline = Timeline()

    def count(self, at, seconds, error, kind):
        self.timeline.add(at, seconds, kind)
        if kind in (None, EXCHANGE_ERROR):
            self.failing = kind is not None
        if error is not None:
            self.last[kind] = (error, at)


class RecentCounts:
    """Counts of the last `window` seconds (HEALTH_WINDOW), one per name, kept per second: at
    most one small entry per second, however many events."""

    def __init__(self, names, window=None):
        self.names = names
        self.window = HEALTH_WINDOW if window is None else window
        self.seconds = deque()             # [second, a count per name], oldest first

    def add(self, now, *names):
        """One event, counted under each of `names`."""
        second = int(now)
        if not self.seconds or self.seconds[-1][0] != second:
            self.seconds.append([second] + [0] * len(self.names))
            self._forget(now)
        counts = self.seconds[-1]
        for name in names:
            counts[1 + self.names.index(name)] += 1

    def totals(self, now):
        """{name: count} of the window ending `now`."""
        self._forget(now)
        return {name: sum(entry[column] for entry in self.seconds) for column, name in enumerate(self.names, 1)}

    def _forget(self, now):
        while self.seconds and self.seconds[0][0] <= now - self.window:
            self.seconds.popleft()


class Timeline:
    """One exchange's last TIMELINE_MINUTES minutes, minute by minute of the wall clock: its
    calls, its errors of each kind and the p99 of the calls that asked the exchange. The status
    page draws its charts from series()."""

    def __init__(self, minutes=TIMELINE_MINUTES):
        self.kept = minutes
        self.minutes = deque()             # Minute, oldest first; a minute without a call is absent

    def add(self, at, seconds, kind):
        minute = int(at // 60)
        if not self.minutes or minute > self.minutes[-1].minute:     # a clock set back: the last minute
            if self.minutes:
                self.minutes[-1].close()
            self.minutes.append(Minute(minute))
            while self.minutes[0].minute <= minute - self.kept:
                self.minutes.popleft()
        self.minutes[-1].add(seconds, kind)

    def series(self, at):
        """One value per minute, oldest first, the last for the minute of `at`: "calls",
        "exchange_errors", "bad_requests", "refusals" (risk guard), "throttled", "p99_ms" (None
        without a call to the exchange); "start" is the first minute's time (ms)."""
        last = int(at // 60)
        first = last - self.kept + 1
        found = {minute.minute: minute for minute in self.minutes}
        rows = [found.get(number) for number in range(first, last + 1)]
        counts = lambda kind: [minute.errors[kind] if minute else 0 for minute in rows]
        return {"start": first * 60_000, "calls": [minute.calls if minute else 0 for minute in rows],
                "exchange_errors": counts(EXCHANGE_ERROR), "bad_requests": counts(BAD_REQUEST_ERROR),
                "refusals": counts(RISK_REFUSAL), "throttled": counts(THROTTLED),
                "p99_ms": [minute.p99_ms() if minute else None for minute in rows]}


class Minute:
    """One minute of a Timeline. While it lasts it keeps its calls' durations (all of them, or
    a fair sample of TIMES_KEPT: reservoir sampling); once over, only their p99."""

    __slots__ = ("minute", "calls", "errors", "timed", "times", "p99")

    def __init__(self, minute):
        self.minute, self.calls, self.timed = minute, 0, 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.times, self.p99 = [], None

    def add(self, seconds, kind):
        self.calls += 1
        if kind is not None:
            self.errors[kind] += 1
        if kind in (None, EXCHANGE_ERROR) and self.times is not None:
            self.timed += 1
            if len(self.times) < TIMES_KEPT:
                self.times.append(seconds)
            else:
                slot = int(random.random() * self.timed)     # every call equally likely to be in the sample
                if slot < TIMES_KEPT:
                    self.times[slot] = seconds

    def close(self):
        self.p99, self.times = self.p99_ms(), None

    def p99_ms(self):
        if self.times is None:
            return self.p99
        return percentile_ms(sorted(self.times), 0.99) if self.times else None


SHAPES_KEPT = 100           # distinct request shapes Vocabulary keeps
NAMES_KEPT = 30             # names kept per list of a shape (a docker sends a handful)


class Vocabulary:
    """What the docker really sends, once per distinct shape: the method as sent, the names of
    the envelope's fields, of the params and of the HTTP headers, never a value.

    Nobody could run a real FMZ docker while this plugin was written, and the guide leaves the
    futures methods' names open: a trader's first live run shows here (and in the log, at info
    level) whether GetPositions arrives as `positions` or as something else. At most
    SHAPES_KEPT shapes are kept, so a stream of odd requests cannot grow it without end.

    Every request is noted, so the usual one costs a dict lookup: the names as they arrived
    (`_names_as_sent`) map to the cleaned-up shape once one request has made it.
    """

    def __init__(self, kept=None):
        self.kept = SHAPES_KEPT if kept is None else kept
        self.lock = threading.Lock()
        self.shapes = {}                   # (exchange, method, fields, params, headers) -> calls
        self.as_sent = {}                  # _names_as_sent(...) -> its shape, for the usual requests
        self.full = False

    def note(self, exchange, envelope, header_names=()):
        sent = _names_as_sent(exchange, envelope, header_names)
        with self.lock:
            shape = self.as_sent.get(sent)
            if shape is not None:
                self.shapes[shape] += 1
                return
        shape = request_shape(exchange, envelope, header_names)
        kept = sent is not None and _rememberable(sent)
        with self.lock:
            if shape in self.shapes:
                self.shapes[shape] += 1
                if kept and len(self.as_sent) < 4 * self.kept:
                    self.as_sent[sent] = shape
                return
            if len(self.shapes) >= self.kept:
                if not self.full:
                    self.full = True
                    log.info("request shapes: %d kept, later new ones are not recorded", self.kept)
                return
            self.shapes[shape] = 1
            if kept:
                self.as_sent[sent] = shape
        log.info("the docker sent a new request shape: %s method %s, fields [%s], params [%s], headers [%s]",
                 exchange, shape[1], *(", ".join(names) for names in shape[2:]))

    def rows(self):
        """One dict per shape, in the order they were first seen: the status page's `seen`."""
        with self.lock:
            return [{"exchange": exchange, "method": method, "fields": list(fields), "params": list(params),
                     "headers": list(headers), "calls": calls}
                    for (exchange, method, fields, params, headers), calls in self.shapes.items()]


def request_shape(exchange, envelope, header_names=()):
    """The names a request is made of, never its values: (exchange, method as sent, envelope
    field names, param names, header names)."""
    envelope = envelope if isinstance(envelope, dict) else {}
    method, params = envelope.get("method"), envelope.get("params")
    return (exchange, _printable(method, 60) if isinstance(method, str) else None,
            _names(envelope), _names(params if isinstance(params, dict) else ()), _names(header_names))


def _names_as_sent(exchange, envelope, header_names):
    """The names of a request as they arrived, as a key to remember its shape by (None for a
    request that is not an object naming a method); only a _rememberable one is kept."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("method"), str):
        return None
    params = envelope.get("params") if isinstance(envelope.get("params"), dict) else {}
    return exchange, envelope["method"], tuple(envelope), tuple(params), tuple(header_names)


def _rememberable(sent):
    """False for names too odd to keep as a key: a long method, many or long names."""
    names = sent[2:]
    return (len(sent[1]) <= 60 and max(map(len, names)) <= NAMES_KEPT
            and sum(sum(map(len, group)) for group in names) <= 1000)


def _names(names):
    """At most NAMES_KEPT names, each cut short and printable, sorted ignoring case."""
    return tuple(sorted({_printable(name, 40) for name in list(names)[:NAMES_KEPT]}, key=str.lower))


def status_report(server):
    """What GET / answers (JSON for scripts; the page, the terminal `status` and the FMZ table
    show the same sections, see SECTIONS): version, uptime, where to paste and where the page
    is, a summary row per exchange, per exchange called its health and last hour, rate-limit use
    per exchange and key, per method its counters (failing first), the streams, the risk guard,
    the paper accounts and the shapes the docker sent."""
    stats, hosts, settings = server.stats, service_hosts(server), server.settings
    methods = stats.rows()
    health = exchange_health(stats, methods)
    rate_limits = settings.rate_use.report(settings.throttle)
    streams = settings.streams.status() if settings.streams is not None else {}     # exchange NAME -> figures
    exchanges = [{"name": module.NAME, "service_address": f"{hosts[0]}/{module.NAME}",
                  "service_addresses": [f"{host}/{module.NAME}" for host in hosts]} for module in EXCHANGES.values()]
    report = {"name": "fmz-plugin", "version": __version__,
              "uptime_seconds": int(stats.uptime()), "started_at": int(stats.started_at * 1000),
              "now": int(stats.wall() * 1000), "status_page": status_page_url(server),
              "hosts": hosts,
              "exchanges": exchanges,
              "summary": summary_rows(health, exchanges, rate_limits, streams),
              "health": health,
              "rate_limits": rate_limits,
              "methods": methods,
              "streams": streams,
              "seen": stats.vocabulary.rows(),
              "paper": {"db": settings.paper.path, "accounts": settings.paper.used_accounts()},
              "connections": {"open": server.open_connections, "max": settings.max_connections,
                              "refused": dict(server.refused_counts)}}
    if settings.risk is not None:
        report["risk"] = settings.risk.report()      # halted, the rules, refusals per rule
    return report


def exchange_health(stats, methods):
    """Per exchange that was called: its state (the rules above Stats), its calls, the last 5
    minutes' calls per minute, exchange error rate, bad requests and refusals, p50 and p99, the
    last error of each kind with its time, the methods whose latest exchange call failed, and
    its last hour (`timeline`, Timeline.series). Worst state first, then by name."""
    now = stats.wall()
    span = min(HEALTH_WINDOW, max(60.0, stats.uptime()))      # seconds the 5-minute counts cover so far
    health = []
    for exchange in dict.fromkeys(row["exchange"] for row in methods):
        rows = [row for row in methods if row["exchange"] == exchange]
        total = lambda field: sum(row[field] for row in rows)
        last, latest_failed, durations, timeline = stats.exchange_view(exchange, now)
        calls_5m, errors_5m = total("calls_5m"), total("errors_5m")
        asked_5m = calls_5m - total("bad_requests_5m") - total("refusals_5m") - total("throttled_5m")
        durations.sort()
        error, error_at = last.get(EXCHANGE_ERROR, ("", None))
        health.append({
            "exchange": exchange, "state": health_state(calls_5m, asked_5m, errors_5m, latest_failed),
            "calls": total("calls"), "errors": total("errors"),
            "calls_5m": calls_5m, "calls_per_minute": round(calls_5m * 60 / span, 1),
            "errors_5m": errors_5m, "error_rate_5m": round(errors_5m / asked_5m, 4) if asked_5m else 0.0,
            "bad_requests_5m": total("bad_requests_5m"), "refusals_5m": total("refusals_5m"),
            "throttled_5m": total("throttled_5m"),
            "p50_ms": percentile_ms(durations, 0.5), "p99_ms": percentile_ms(durations, 0.99),
            "last_error": error, "last_error_at": _ms_or_none(error_at),
            "last_error_age_seconds": None if error_at is None else int(now - error_at),
            "last_errors": {kind: {"error": text, "at": _ms_or_none(at)} for kind, (text, at) in last.items()},
            "failing_methods": [row["method"] for row in rows if row["failing"]],
            "timeline": timeline})
    return sorted(health, key=lambda h: (STATES.index(h["state"]), h["exchange"]))     # stable between refreshes


def health_state(calls, asked, failed, latest_failed):
    """An exchange's state from its last 5 minutes: `calls` of every kind, `asked` of them
    asked the exchange, `failed` of those failed, `latest_failed` the latest one did."""
    if not calls:
        return "idle"
    if failed and latest_failed and failed >= FAILING_SHARE * asked:
        return "failing"
    return "errors" if failed else "ok"


def stream_line(figures):
    """One exchange's stream figures (exchanges/_stream.py Streams.status) as a line."""
    if figures is None:
        return ""
    counts = f"{figures['reconnects']} reconnects, {figures['resyncs']} resyncs"
    if figures.get("problem"):
        counts += f"; refused: {figures['problem']}"
    if not figures["connected"]:
        return f"stream: down, reconnecting; {figures['subscriptions']} subscriptions, {counts}"
    age = figures["last_message_age"]
    return (f"stream: connected since {clock_text(figures['connected_since'])}, {figures['subscriptions']} "
            f"subscriptions, {figures['messages_per_second']:g} messages/s, last "
            f"{'-' if age is None else f'{age:.1f} s'} ago, {counts}")


def summary_rows(health, exchanges, rate_limits, streams):
    """The first table of every rendering, one line per exchange: each one called (its paper
    accounts on a line of their own), worst first, then those not called since start (unused).
    The rate limit is the fullest budget of the last minute among the exchange's keys."""
    rows, called = [], set()
    for entry in health:
        name = entry["exchange"]
        served = name[:-len(PAPER_LABEL)] if name.endswith(PAPER_LABEL) else name
        called.add(served)
        fullest = max(rate_limits_of({"rate_limits": rate_limits}, name), key=lambda r: r["used_pct"], default=None)
        rows.append({"exchange": name, "state": entry["state"], "calls_per_minute": entry["calls_per_minute"],
                     "error_rate_5m": entry["error_rate_5m"], "p50_ms": entry["p50_ms"], "p99_ms": entry["p99_ms"],
                     "bad_requests_5m": entry["bad_requests_5m"],
                     "refusals_5m": entry["refusals_5m"] + entry["throttled_5m"],
                     "stream": stream_state(streams, served),
                     "rate_limit_pct": fullest["used_pct"] if fullest else None,
                     "rate_limit": fullest["budget"] if fullest else ""})
    for exchange in exchanges:
        if exchange["name"] not in called:
            rows.append({"exchange": exchange["name"], "state": "unused", "calls_per_minute": 0.0,
                         "error_rate_5m": 0.0, "p50_ms": None, "p99_ms": None, "bad_requests_5m": 0,
                         "refusals_5m": 0, "stream": stream_state(streams, exchange["name"]),
                         "rate_limit_pct": None, "rate_limit": ""})
    return rows


def rate_limits_of(report, exchange):
    """The rate-limit rows of one exchange as the status names it: a paper account ("OKX paper")
    spends the public budgets (IP) of its exchange, never a key's."""
    if exchange.endswith(PAPER_LABEL):
        served = exchange[:-len(PAPER_LABEL)]
        return [row for row in report.get("rate_limits", []) if row["exchange"] == served and row["key"] == "IP"]
    return [row for row in report.get("rate_limits", []) if row["exchange"] == exchange]


def stream_state(streams, exchange):
    """An exchange's stream in a word for the summary: `connected`, `down` (reconnecting: REST
    answers meanwhile) or `none` (no stream open: every call goes over REST)."""
    figures = streams.get(exchange)
    if not figures:
        return "none"
    return "connected" if figures["connected"] == figures["connections"] else "down"


# Rate-limit use. The throttle (exchanges/_throttle.py) counts every exchange's budgets per IP or
# per key; RateUse reads them (Throttle.usage) at most every RATE_SAMPLE_EVERY seconds while
# calls go and when the status is asked, and keeps, per exchange and key, the fullest budget of
# the last minute. Each Api's throttle is Watched: the calls that had to wait for their turn, and
# those refused, are counted as they pass. A key is shown by a digest, never by its text.

RATE_SAMPLE_EVERY = 0.5     # seconds between two readings of the throttle's buckets
RATE_USE_WINDOW = 60.0      # seconds over which the fullest budget is shown ("the last minute")
WAITED = 0.001              # seconds: a turn that took longer had to wait


class RateUse:
    """How near each exchange and key came to its limits, for the status."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.sampled = float("-inf")
        self.fullest = {}          # (exchange NAME, whose) -> deque of (at, share of the budget, its name)
        self.turns = {}            # (exchange NAME, whose) -> RecentCounts of "waited" and "refused"

    def turn(self, throttle, charges, label, max_wait=None, urgent=False):
        """throttle.turn(...), counting the call as waited (its turn took WAITED or more by the
        throttle's clock) or refused (Refused: not sent)."""
        asked = throttle.clock()
        try:
            turn = throttle.turn(charges, label, max_wait, urgent)
        except Refused:
            self._count(charges, "refused")
            raise
        if throttle.clock() - asked >= WAITED:
            self._count(charges, "waited")
        self.sample(throttle)
        return turn

    def _count(self, charges, outcome):
        now = self.clock()
        with self.lock:
            for whose in {_whose(key) for key, _, _ in charges}:
                counts = self.turns.get(whose)
                if counts is None:
                    counts = self.turns[whose] = RecentCounts(("waited", "refused"))
                counts.add(now, outcome)

    def sample(self, throttle, force=False):
        """Note each exchange and key's fullest budget now (at most every RATE_SAMPLE_EVERY s)."""
        now = self.clock()
        if not force and now - self.sampled < RATE_SAMPLE_EVERY:      # the usual call: no lock taken
            return
        with self.lock:
            if not force and now - self.sampled < RATE_SAMPLE_EVERY:
                return
            self.sampled = now
        fullest = {}
        for key, limit, used in throttle.usage():
            share = used / limit.requests if limit.requests else 0.0
            whose = _whose(key)
            if share > 0 and share > fullest.get(whose, (0,))[0]:
                fullest[whose] = (share, _budget_name(key, limit))
        with self.lock:
            for whose, (share, name) in fullest.items():
                self.fullest.setdefault(whose, deque()).append((now, share, name))
            for whose, samples in list(self.fullest.items()):
                while samples and samples[0][0] <= now - RATE_USE_WINDOW:
                    samples.popleft()
                if not samples:
                    del self.fullest[whose]

    def report(self, throttle=None):
        """One row per exchange and key used lately: the fullest budget of the last minute (its
        share in %, and its name), and the calls that waited or were refused in 5 minutes."""
        if throttle is not None:
            self.sample(throttle, force=True)
        now = self.clock()
        rows = []
        with self.lock:
            for whose in sorted(set(self.fullest) | set(self.turns)):
                share, name = max(((s, n) for _, s, n in self.fullest.get(whose, ())), default=(0.0, ""))
                counts = self.turns[whose].totals(now) if whose in self.turns else {"waited": 0, "refused": 0}
                if not share and not counts["waited"] and not counts["refused"]:
                    self.turns.pop(whose, None)
                    continue
                rows.append({"exchange": whose[0], "key": whose[1], "used_pct": round(share * 100, 1),
                             "budget": name, "waited_5m": counts["waited"], "refused_5m": counts["refused"]})
        return rows


class Watched:
    """The throttle as an Api sees it (see _api_for): its turns counted by a RateUse."""

    __slots__ = ("throttle", "use")

    def __init__(self, throttle, use):
        self.throttle, self.use = throttle, use

    def turn(self, charges, label, max_wait=None, urgent=False):
        return self.use.turn(self.throttle, charges, label, max_wait, urgent)

    def __getattr__(self, name):
        return getattr(self.throttle, name)


def _whose(bucket_key):
    """(exchange NAME, "IP" or "key #digest") of a throttle bucket key, which Api._bucket_key
    makes (exchange NAME, base URL, (access key or "", a param's value), pool or endpoint)."""
    exchange, _, (access_key, _), _ = bucket_key
    return exchange, "key #" + hashlib.sha256(access_key.encode()).hexdigest()[:8] if access_key else "IP"


def _budget_name(bucket_key, limit):
    """`20 requests per 2 s per IP (GET /api/v5/market/ticker)`, `6000 request weight per 60 s per IP`."""
    _, _, (_, value), pool_or_endpoint = bucket_key
    named = [] if limit.pool else [pool_or_endpoint]
    named += [value] if value else []
    return limit.describe() + (f" ({', '.join(named)})" if named else "")


def clock_text(ms):
    return time.strftime("%H:%M:%S UTC", time.gmtime(ms / 1000))


def age_text(ms):
    """How long ago, for a person: 12 s ago, 3 min ago, 2 h ago, 4 days ago."""
    seconds = max(0, int(ms / 1000))
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def service_hosts(server):
    """The http://HOST:PORT a docker reaches the protocol server at: the address it listens on,
    or, listening on every address (0.0.0.0, ::), this machine's own addresses and 127.0.0.1
    (for a docker on this machine), never 0.0.0.0, which no docker can reach.

    Worked out once per server: finding this machine's addresses may ask DNS, and the status
    page and the FMZ status table ask every few seconds."""
    server = server.status_of
    if server.hosts is None:
        host, port = server.server_address[:2]
        if host not in ("0.0.0.0", "::"):
            server.hosts = [server_url(server)]
        else:
            server.hosts = ([url_of(address, port) for address in machine_addresses(ipv6=host == "::")]
                            + [url_of("127.0.0.1", port)])
    return list(server.hosts)


def url_of(host, port):
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def machine_addresses(ipv6=False):
    """This machine's own addresses that a docker elsewhere could reach, found without sending
    anything: what its name resolves to, and the source address a route out would use (connect()
    on a UDP socket only picks the route). Loopback and link-local addresses are left out."""
    found = []
    for family, outside in [(socket.AF_INET, "192.0.2.1")] + ([(socket.AF_INET6, "2001:db8::1")] if ipv6 else []):
        with contextlib.suppress(OSError):
            found += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)]
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((outside, 9))                # documentation addresses: nothing is sent
            found.append(probe.getsockname()[0])
    kept = []
    for address in dict.fromkeys(found):
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            kept.append(str(ip))
    return kept


def status_page_url(server):
    """Where a browser on this machine opens the status page (a port browsers open)."""
    server = server.status_page_server
    host, port = server.server_address[:2]
    return url_of("127.0.0.1" if host in ("0.0.0.0", "::") else host, port) + "/"


def server_url(server):
    """http://HOST:PORT of a listening server; an IPv6 host in brackets (http://[::1]:6666)."""
    return url_of(*server.server_address[:2])


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


def health_line(entry):
    """One exchange's health as one line of text (the page, the terminal, FMZ's table)."""
    parts = [f"{entry['calls_per_minute']:g} calls/min", f"{entry['error_rate_5m'] * 100:.1f}% exchange errors",
             f"p50 {entry['p50_ms']:g} ms", f"p99 {entry['p99_ms']:g} ms",
             f"{_plural(entry['calls'], 'call')} since start"]
    return " · ".join(parts)


def _plural(count, word):
    """`1 call`, `2 calls`, `1 request shape`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


STATE_WORDS = {"failing": "FAILING", "errors": "exchange errors", "ok": "ok", "idle": "idle",
               "unused": "not called yet"}


def last_error_line(entry, now_ms):
    """`last error 12:03:04 UTC (3 min ago): OKX 51001: ...`, or '' when there was none."""
    if not entry["last_error_at"]:
        return ""
    return (f"last error {clock_text(entry['last_error_at'])} ({age_text(now_ms - entry['last_error_at'])}): "
            f"{entry['last_error']}")


# What a card says of the errors that are not the exchange's (5 min): (kind, count field, words).
OTHER_ERRORS = [(BAD_REQUEST_ERROR, "bad_requests_5m", "bad request"),
                (RISK_REFUSAL, "refusals_5m", "refused by the risk guard"),
                (THROTTLED, "throttled_5m", "held back by the throttle")]


def other_errors(entry):
    """[(kind, `2 bad requests in 5 min`, {"error", "at"} of the last)] for each kind of error
    that is not the exchange's and happened in the last 5 minutes."""
    found = []
    for kind, field, words in OTHER_ERRORS:
        count, last = entry.get(field, 0), entry.get("last_errors", {}).get(kind)
        if count and last:
            counted = _plural(count, words) if kind == BAD_REQUEST_ERROR else f"{count} {words}"
            found.append((kind, f"{counted} in 5 min", last))
    return found


def other_error_lines(entry, now_ms):
    """[`2 bad requests in 5 min; last 12:03:04 UTC (3 min ago): unknown method ...`]"""
    return [f"{counted}; last {clock_text(last['at'])} ({age_text(now_ms - last['at'])}): {last['error']}"
            for _, counted, last in other_errors(entry)]


def rate_limit_line(row):
    """`key #1f0c9a2b: 12% of 20 requests per 2 s per API key in the last minute; 3 waited, 0
    refused by the throttle (5 min)`."""
    used = f"{row['used_pct']:g}% of {row['budget']} in the last minute" if row["budget"] else "no budget in use"
    return f"{row['key']}: {used}; {row['waited_5m']} waited, {row['refused_5m']} refused by the throttle (5 min)"


RATE_LIMIT_HOT = 80          # % of a budget from which the page and the terminal warn


SUMMARY_COLUMNS = ["Exchange", "State", "Calls/min", "Errors", "p50 ms", "p99 ms", "Bad req.", "Refused", "Stream",
                   "Rate limit"]


def summary_cells(row):
    """One exchange's summary line as text cells (the same in the three renderings)."""
    used = "" if row["rate_limit_pct"] is None else f"{row['rate_limit_pct']:g}%"
    if row["state"] == "unused":
        return [row["exchange"], STATE_WORDS["unused"], "", "", "", "", "", "", row["stream"], used]
    return [row["exchange"], STATE_WORDS[row["state"]], f"{row['calls_per_minute']:g}",
            f"{row['error_rate_5m'] * 100:.1f}%", f"{row['p50_ms']:g}", f"{row['p99_ms']:g}",
            str(row["bad_requests_5m"]), str(row["refusals_5m"]), row["stream"], used]


METHOD_COLUMNS = ["Exchange", "Method", "Calls", "Errors", "Last error", "p50 ms", "p99 ms", "Errors, 5 min"]


def method_cells(row, now_ms=None):
    last = row["last_error"]
    if last and row["last_error_at"] and now_ms:
        last += f" ({clock_text(row['last_error_at'])}, {age_text(now_ms - row['last_error_at'])})"
    return [row["exchange"], row["method"], row["calls"], row["errors"], last, row["p50_ms"], row["p99_ms"],
            row["errors_5m"]]


# The sections of the status, in the order every rendering shows them (section_order): the page
# (status_html), the terminal (status_text) and FMZ's status table (status_table).
SECTIONS = {
    "exchanges": "Exchanges",
    "streams": "Streams",
    "risk": "Risk guard",
    "paper": "PAPER accounts",
    "addresses": "Service addresses",
    "seen": "What the docker sent",
}


def section_order(report):
    """The keys of SECTIONS in order: the exchanges first, unless the risk guard alarms (halted,
    or its file not valid): then the risk guard comes first."""
    order = list(SECTIONS)
    risk = report.get("risk")
    if risk and (risk["halted"] or risk["problem"]):
        order.remove("risk")
        order.insert(0, "risk")
    return order


def risk_state_text(risk):
    if risk["halted"]:
        return f"HALTED: {risk['halt_reason']}; every new order is refused (cancels go through)"
    return f"Trading (kill switch: {risk['halt_file']} is absent)."


def risk_rules_text(risk):
    if not risk["entries"]:
        return "No risk rules (--risk FILE or --risk-json): the kill switch alone."
    return f"Rules of {risk['rules']} for {', '.join(risk['entries'])}."


RISK_COLUMNS = ["Exchange", "Rule", "Refused", "Last refusal"]


def risk_cells(row):
    return [row["exchange"], row["rule"], row["count"], row["last"]]


PAPER_COLUMNS = ["Exchange", "Paper account (digest of its Secret Key)", "Calls"]
PAPER_NOTE = "simulated: no order reaches an exchange"
NO_STREAM = "No stream open: ticker, depth and trades are answered over REST."
STREAM_COLUMNS = ["Exchange", "Stream"]


def stream_rows(report):
    """[exchange, its stream's line] per exchange with a stream (exchanges/_stream.py)."""
    return [[name, stream_line(figures)] for name, figures in sorted((report.get("streams") or {}).items())]
SEEN_COLUMNS = ["Exchange", "Method as sent", "Params", "Fields", "Calls"]


def seen_cells(row):
    return [row["exchange"], row["method"], ", ".join(row["params"]), ", ".join(row["fields"]), row["calls"]]


STATUS_CSS = """
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#1f2937}
main{max-width:1180px;margin:0 auto;padding:12px 16px}
h1{font-size:20px;margin:0;display:inline}h1 small{font-weight:normal;color:#6b7280;font-size:14px}
h2{font-size:16px;margin:18px 0 6px}h3{font-size:16px;margin:0;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.meta{color:#4b5563;margin:2px 0 0}
table{border-collapse:collapse;width:100%;font-size:13px;background:#fff}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{color:#6b7280;font-weight:600;font-size:11px;text-transform:uppercase;letter-spacing:.03em;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.summary td:first-child a{color:inherit;font-weight:600;text-decoration:none}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px;background:#16a34a}
.failing .dot{background:#dc2626}.errors .dot{background:#d97706}.idle .dot,.unused .dot{background:#9ca3af}
tr.failing td{background:#fee2e2}tr.errors td{background:#fffbeb}tr.unused td{color:#6b7280}
tr.bad td{background:#f5f3ff}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:10px;margin-top:10px}
.card{background:#fff;border:1px solid #e5e7eb;border-left:6px solid #16a34a;border-radius:8px;padding:10px 12px;
min-width:0}
.card.errors{border-left-color:#d97706}.card.failing{border-left-color:#dc2626}.card.idle{border-left-color:#9ca3af}
.badge{font-size:11px;font-weight:600;padding:1px 8px;border-radius:10px;background:#dcfce7;color:#166534}
.errors .badge{background:#fef3c7;color:#92400e}.failing .badge{background:#fee2e2;color:#991b1b}
.idle .badge{background:#f3f4f6;color:#4b5563}
.health{margin:2px 0 4px;color:#374151}
.charts{display:flex;gap:14px;flex-wrap:wrap;margin:4px 0}
.charts figure{margin:0;width:250px}.charts svg{display:block;width:250px;height:60px}
.charts figcaption{font-size:11px;color:#6b7280}
.line{margin:3px 0;overflow-wrap:anywhere;font-size:13px}
.line.exchange{color:#991b1b}.line.old{color:#6b7280}
.line.bad-request{color:#6d28d9}.line.risk{color:#9a3412}.line.throttle{color:#1e40af}.line.rate{color:#374151}
.line.rate.hot,td.hot{color:#b45309;font-weight:600}td.state{white-space:nowrap}
.scroll{overflow-x:auto}
td.err{color:#991b1b;min-width:12em}tr.bad td.err{color:#6d28d9}
.clip{max-width:24em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
table.rates{margin:6px 0;font-size:12px}table.rates td,table.rates th{padding:2px 6px}
table.rates td:first-child{white-space:nowrap}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#eef2ff;padding:2px 6px;border-radius:4px;
user-select:all;overflow-wrap:anywhere}
.banner{border-radius:8px;padding:8px 12px;margin:10px 0;font-weight:600}
.banner.alert{background:#fee2e2;color:#991b1b;border:1px solid #fca5a5}
.note{color:#6b7280;font-size:13px;margin:4px 0}
details summary{cursor:pointer}details.methods{margin-top:6px}details.methods summary{font-size:13px;color:#374151}
details.seen{margin-top:16px}details.seen h2{display:inline;font-size:16px}
footer{color:#6b7280;font-size:12px;margin:18px 0 8px}
@media (max-width:700px){main{padding:8px}.wide{display:none}th,td{padding:3px 3px}table{font-size:12px}
th{font-size:10px;letter-spacing:0}.cards{grid-template-columns:1fr}.charts figure,.charts svg{width:155px}
.charts svg{height:50px}h1{font-size:18px}}
"""

# Refreshes the page in place every STATUS_REFRESH seconds (keeping the scroll position and the
# open <details>), writes times in the browser's own time zone, draws each exchange's charts of
# the last hour from the timelines in the page (inline SVG), and says so when the plugin stops
# answering. Without script, the <noscript> meta refresh reloads the page instead (no charts).
STATUS_SCRIPT = """
(function(){
  var since = null, SVG = 'http://www.w3.org/2000/svg';
  function localTimes(){
    document.querySelectorAll('time[data-ms]').forEach(function(t){
      var d = new Date(+t.getAttribute('data-ms'));
      t.title = t.textContent; t.textContent = t.hasAttribute('data-date') ? d.toLocaleString() : d.toLocaleTimeString();
    });
  }
  function add(parent, name, attrs, text){
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    parent.appendChild(e);
    return e;
  }
  function minuteText(t, i){
    return new Date(t.start + i * 60000).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
  }
  function frame(svg, t, top){
    var n = t.calls.length;
    svg.setAttribute('viewBox', '0 0 ' + (n * 4) + ' 60');
    svg.setAttribute('preserveAspectRatio', 'none');
    add(svg, 'line', {x1: 0, y1: 48.5, x2: n * 4, y2: 48.5, stroke: '#d1d5db', 'stroke-width': 1});
    add(svg, 'text', {x: 1, y: 8, 'font-size': 8, fill: '#6b7280'}, top);
    add(svg, 'text', {x: 1, y: 58, 'font-size': 7, fill: '#9ca3af'}, minuteText(t, 0));
    add(svg, 'text', {x: n * 4 - 1, y: 58, 'font-size': 7, fill: '#9ca3af', 'text-anchor': 'end'}, 'now');
  }
  function calls(svg, t){
    var most = Math.max.apply(null, t.calls.concat([1]));
    frame(svg, t, 'max ' + most + '/min');
    t.calls.forEach(function(c, i){
      if (!c) return;
      var other = t.bad_requests[i] + t.refusals[i] + t.throttled[i], bad = t.exchange_errors[i], y = 48;
      [[c - other - bad, '#60a5fa'], [other, '#a78bfa'], [bad, '#dc2626']].forEach(function(part){
        if (!part[0]) return;
        var h = Math.max(1, part[0] / most * 38);
        y -= h;
        add(svg, 'rect', {x: i * 4 + 0.5, y: y, width: 3, height: h, fill: part[1]});
      });
      add(add(svg, 'rect', {x: i * 4, y: 0, width: 4, height: 48, fill: 'transparent'}), 'title', {},
          minuteText(t, i) + ': ' + c + ' calls, ' + bad + ' exchange errors, ' + other + ' bad or refused');
    });
  }
  function p99(svg, t){
    var values = t.p99_ms.filter(function(v){ return v !== null; }), most = Math.max.apply(null, values.concat([1]));
    frame(svg, t, 'max ' + Math.round(most) + ' ms');
    var points = [];
    t.p99_ms.forEach(function(v, i){
      if (v === null) return;
      var y = 48 - v / most * 38;
      points.push((i * 4 + 2) + ',' + y.toFixed(1));
      add(add(svg, 'circle', {cx: i * 4 + 2, cy: y, r: 1.6, fill: '#0f766e'}), 'title', {},
          minuteText(t, i) + ': p99 ' + v + ' ms');
    });
    if (points.length > 1)
      add(svg, 'polyline', {points: points.join(' '), fill: 'none', stroke: '#0f766e', 'stroke-width': 1});
  }
  function charts(){
    var data = document.getElementById('timelines');
    if (!data) return;
    var timelines = JSON.parse(data.textContent);
    document.querySelectorAll('svg[data-chart]').forEach(function(svg){
      var t = timelines[svg.getAttribute('data-exchange')];
      if (t) (svg.getAttribute('data-chart') === 'calls' ? calls : p99)(svg, t);
    });
  }
  function refresh(){
    fetch(location.pathname, {headers: {Accept: 'text/html'}, cache: 'no-store'}).then(function(r){
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.text();
    }).then(function(text){
      var page = new DOMParser().parseFromString(text, 'text/html'), next = page.getElementById('status');
      var open = {};
      document.querySelectorAll('details[id]').forEach(function(d){ open[d.id] = d.open; });
      document.getElementById('status').replaceWith(next);
      next.querySelectorAll('details[id]').forEach(function(d){ if (d.id in open) d.open = open[d.id]; });
      document.title = page.title; since = null; localTimes(); charts();
    }).catch(function(){
      since = since || new Date();
      var b = document.getElementById('offline');
      b.hidden = false;
      b.textContent = 'The plugin has not answered since ' + since.toLocaleTimeString() + ': is it still running?';
      document.title = 'not answering - fmz-plugin';
    });
  }
  localTimes(); charts();
  setInterval(refresh, REFRESH_MS);
})();
"""


def status_html(report):
    """The report as a page a trader keeps open: it refreshes itself; the sections of SECTIONS
    in section_order: first a line per exchange (the summary), then a card per exchange called
    (its health, charts of its last hour, rate-limit use, the errors that are not the
    exchange's, its methods), the streams, the risk guard, the paper accounts, the service
    addresses to paste and what the docker sent. Inline CSS and script, no external asset:
    it works offline."""
    failing = [h["exchange"] for h in report["health"] if h["state"] == "failing"]
    risk = report.get("risk") or {}
    title = ("HALTED - " if risk.get("halted") else "") + (f"FAILING {', '.join(failing)} - " if failing else "")
    started = f'<time data-ms="{report["started_at"]}" data-date>{_utc_text(report["started_at"])}</time>'
    sections = "".join(HTML_SECTIONS[key](report) for key in section_order(report))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}fmz-plugin</title><link rel="icon" href="data:,">\n'
            f'<noscript><meta http-equiv="refresh" content="{STATUS_REFRESH}"></noscript>\n'
            f'<style>{STATUS_CSS}</style></head>\n<body><main id="status">\n'
            f'<h1>fmz-plugin <small>{html.escape(report["version"])}</small></h1>\n'
            f'<p class="meta">Up {uptime_text(report["uptime_seconds"])} (since {started}) · '
            f'page refreshed every {STATUS_REFRESH} s · as of <time data-ms="{report["now"]}">'
            f'{clock_text(report["now"])}</time></p>\n'
            '<div id="offline" class="banner alert" hidden></div>\n'
            f'{_refusals_html(report)}{sections}'
            f'<footer>For scripts: <a href="/status?format=json">/status?format=json</a> (or any request '
            f'without Accept: text/html). In a terminal: <code>python3 fmz_plugin.py status '
            f'{html.escape(report["hosts"][-1])}/</code></footer>\n'
            f'</main><script>{STATUS_SCRIPT.replace("REFRESH_MS", str(STATUS_REFRESH * 1000))}</script>'
            '</body></html>\n')


def _refusals_html(report):
    """A line when connections were refused: how many, why (none: nothing shown)."""
    line = refusals_line(report.get("connections"))
    return f'<p class="banner">{html.escape(line)}</p>\n' if line else ""


def refusals_line(connections):
    """`Refused 1,204 connections: 1,200 over --max-connections 512, 4 out of files (open now: 512)`."""
    refused = (connections or {}).get("refused", {})
    if not any(refused.values()):
        return ""
    why = {"max connections": f"over --max-connections {connections['max']}", "out of files":
           "with no file descriptor left", "not allowed": "not in --allow"}
    parts = [f"{count:,} {why[kind]}" for kind, count in refused.items() if count]
    return (f"Refused {sum(refused.values()):,} connections: {', '.join(parts)} "
            f"(open now: {connections['open']:,})")


def _utc_text(ms):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _section_html(key, body):
    return f'<section data-section="{key}"><h2>{SECTIONS[key]}</h2>\n{body}</section>\n'


def _anchor(exchange):
    return "x-" + re.sub(r"[^A-Za-z0-9]", "-", exchange)


HTML_SUMMARY_WIDE = (5, 6, 7, 8)      # columns of SUMMARY_COLUMNS a phone leaves out (p99 .. Stream)


def _exchanges_html(report):
    head = "".join(f'<th class="{_summary_class(i)}">{name}</th>' for i, name in enumerate(SUMMARY_COLUMNS))
    rows = "".join(_summary_html(row) for row in report["summary"])
    summary = f'<div class="scroll"><table class="summary"><tr>{head}</tr>{rows}</table></div>\n'
    if not report["health"]:
        return _section_html("exchanges", summary + '<p class="note">No call yet. Add an exchange on FMZ with a '
                             'service address below, and start a robot that uses it: its calls show here.</p>\n')
    timelines = json.dumps({h["exchange"]: h["timeline"] for h in report["health"]}, separators=(",", ":"))
    timelines = timelines.replace("</", "<\\/")          # JSON inside <script>: no "</script>" can end it
    cards = "".join(_exchange_card(entry, report) for entry in report["health"])
    return _section_html("exchanges", f'{summary}<div class="cards">{cards}</div>\n'
                         f'<script type="application/json" id="timelines">{timelines}</script>\n')


def _summary_class(column):
    numeric = 2 <= column <= 7 or column == 9
    return " ".join(name for name, wanted in (("num", numeric), ("wide", column in HTML_SUMMARY_WIDE)) if wanted)


def _summary_html(row):
    cells = summary_cells(row)
    name = html.escape(cells[0])
    if row["state"] != "unused":
        name = f'<a href="#{_anchor(row["exchange"])}">{name}</a>'
    state = f'<span class="dot"></span>{html.escape(cells[1])}'
    rest = "".join(f'<td class="{_summary_class(i)}">{html.escape(cell)}</td>' for i, cell in enumerate(cells[2:-1], 2))
    hot = " hot" if (row["rate_limit_pct"] or 0) >= RATE_LIMIT_HOT else ""
    rate = (f'<td class="num{hot}" title="{html.escape(row["rate_limit"])} (the fullest budget, last minute)">'
            f'{html.escape(cells[-1])}</td>')
    return f'<tr class="{row["state"]}"><td>{name}</td><td class="state">{state}</td>{rest}{rate}</tr>'


def _exchange_card(entry, report):
    exchange, now = entry["exchange"], report["now"]
    lines = ""
    if entry["last_error_at"]:
        recent = "exchange" if entry["state"] in ("failing", "errors") else "exchange old"
        lines += (f'<p class="line {recent}">Last exchange error {_time_html(entry["last_error_at"], now)}: '
                  f'{html.escape(entry["last_error"])}</p>\n')
    for kind, counted, last in other_errors(entry):
        lines += (f'<p class="line {kind.replace(" ", "-")}">{html.escape(counted.capitalize())}; last '
                  f'{_time_html(last["at"], now)}: {_clipped_html(last["error"])}</p>\n')
    lines += _rate_limits_html(rate_limits_of(report, exchange))
    rows = [row for row in report["methods"] if row["exchange"] == exchange]
    opened = " open" if entry["state"] in ("failing", "errors") else ""
    head = "".join(f'<th class="{css}">{name}</th>' if css else f"<th>{name}</th>" for name, css in HTML_METHOD_COLUMNS)
    methods = (f'<details class="methods" id="m-{_anchor(exchange)}"{opened}><summary>Methods '
               f'({len(rows)})</summary><div class="scroll"><table><tr>{head}</tr>'
               f'{"".join(_method_html(row, now) for row in rows)}</table></div></details>\n')
    charts = "".join(f'<figure><svg data-chart="{chart}" data-exchange="{html.escape(exchange)}"></svg>'
                     f'<figcaption>{caption}</figcaption></figure>' for chart, caption in CHARTS)
    return (f'<section class="card {entry["state"]}" id="{_anchor(exchange)}"><h3>{html.escape(exchange)} '
            f'<span class="badge">{STATE_WORDS[entry["state"]]}</span></h3>\n'
            f'<p class="health">{html.escape(health_line(entry))}</p>\n'
            f'{_stream_html((report.get("streams") or {}).get(exchange))}'
            f'<div class="charts">{charts}</div>\n{lines}{methods}</section>\n')


CLIPPED = 160              # characters of an error a card shows on its line (all of it on hover)


def _clipped_html(text, limit=CLIPPED):
    if len(text) <= limit:
        return html.escape(text)
    return f'<span title="{html.escape(text)}">{html.escape(text[:limit])}…</span>'


RATE_COLUMNS = [("Rate limit", ""), ("Last minute", "num"), ("Fullest budget", ""), ("Waited", "num"),
                ("Refused", "num")]


def _rate_limits_html(rows):
    """The rate-limit use of one exchange, a line per key: the last minute's fullest budget, and
    the calls the throttle made wait or refused in 5 minutes."""
    if not rows:
        return ""
    head = "".join(f'<th class="{css}">{name}</th>' for name, css in RATE_COLUMNS)
    body = ""
    for row in rows:
        hot = " hot" if row["used_pct"] >= RATE_LIMIT_HOT or row["refused_5m"] else ""
        body += (f'<tr><td>{html.escape(row["key"])}</td><td class="num{hot}">{row["used_pct"]:g}%</td>'
                 f'<td>{html.escape(row["budget"])}</td><td class="num">{row["waited_5m"]}</td>'
                 f'<td class="num{hot}">{row["refused_5m"]}</td></tr>')
    return f'<div class="scroll"><table class="rates"><tr>{head}</tr>{body}</table></div>\n'


CHARTS = [("calls", "calls/min, last hour · errors red · bad or refused violet"),
          ("p99", "p99 latency per minute, last hour")]
HTML_METHOD_COLUMNS = [("Method", ""), ("Calls", "num"), ("Errors", "num"), ("5 min", "num wide"),
                       ("p50 ms", "num"), ("p99 ms", "num wide"), ("Last error", "err")]


def _time_html(ms, now_ms):
    """`12:03:04 UTC (3 min ago)`, the time in the browser's own zone once the script ran."""
    return f'<time data-ms="{ms}">{clock_text(ms)}</time> ({age_text(now_ms - ms)})'


def _stream_html(figures):
    return f'<p class="health">{html.escape(stream_line(figures))}</p>\n' if figures else ""


def _method_html(row, now_ms):
    other = row["last_error_kind"] not in (None, EXCHANGE_ERROR)
    state = "failing" if row["failing"] else "errors" if row["errors_5m"] else "bad" if other else ""
    error = html.escape(row["last_error"])
    if row["last_error_at"]:
        kind = "" if row["last_error_kind"] in (None, EXCHANGE_ERROR) else f'{row["last_error_kind"]}, '
        error = f'{kind}{age_text(now_ms - row["last_error_at"])}: {error}'

    cells = [html.escape(row["method"]), row["calls"], row["errors"], row["errors_5m"], f'{row["p50_ms"]:g}',
             f'{row["p99_ms"]:g}']
    tds = "".join(f'<td class="{css}">{cell}</td>' if css else f"<td>{cell}</td>"
                  for cell, (_, css) in zip(cells, HTML_METHOD_COLUMNS))
    row_html = f'<tr class="{state}">' if state else "<tr>"
    clip = ""
    if row["last_error_at"]:
        clip = f' title="{clock_text(row["last_error_at"])}: {html.escape(row["last_error"])}"'
    return f'{row_html}{tds}<td class="err"><div class="clip"{clip}>{error}</div></td></tr>'


def _streams_html(report):
    rows = stream_rows(report)
    if not rows:
        return _section_html("streams", f'<p class="note">{NO_STREAM}</p>\n')
    body = "".join(_html_row(row) for row in rows)
    return _section_html("streams", f'<div class="scroll"><table>{_html_row(STREAM_COLUMNS, "th")}{body}'
                                    '</table></div>\n')


def _addresses_html(report):
    rows = "".join(f'<tr><td>{html.escape(e["name"])}</td><td><code>{html.escape(e["service_address"])}'
                   '</code></td></tr>' for e in report["exchanges"])
    others = ""
    if len(report["hosts"]) > 1:
        others = ('<p class="note">The same paths are served at ' +
                  ", ".join(f"<code>{html.escape(host)}/</code>" for host in report["hosts"][1:]) +
                  " (127.0.0.1: for a docker on this machine).</p>\n")
    return _section_html("addresses", '<p class="note">To paste into FMZ: Exchange -> Add exchange, protocol '
                         '<b>General Protocol</b>, this service address, and your keys.</p>\n'
                         f'<div class="scroll"><table><tr><th>Exchange</th><th>Service address</th></tr>'
                         f'{rows}</table></div>\n{others}')


def _seen_html(report):
    seen = report.get("seen") or []
    rows = "".join(_html_row(seen_cells(row)) for row in seen)
    table = (f'<div class="scroll"><table>{_html_row(SEEN_COLUMNS, "th")}{rows}</table></div>' if seen else
             '<p class="note">Nothing yet.</p>')
    return (f'<section data-section="seen"><details class="seen" id="seen"><summary><h2>{SECTIONS["seen"]}</h2> '
            f'({_plural(len(seen), "request shape")}: names only, never a value)</summary>\n{table}'
            '</details></section>\n')


def risk_html(report):
    """The risk guard's section of the page: HALTED in red, the rules' state, refusals per rule."""
    risk = report.get("risk")
    if risk is None:
        return _section_html("risk", '<p class="note">No risk guard.</p>\n')
    state = (f'<p class="banner alert" style="color:#c00">{html.escape(risk_state_text(risk))}</p>\n' if risk["halted"]
             else f"<p>{html.escape(risk_state_text(risk))}</p>\n")
    rules = f"<p>{html.escape(risk_rules_text(risk))} {html.escape(io_line(risk))}</p>\n"
    problem = f'<p class="banner alert">{html.escape(risk["problem"])}</p>\n' if risk["problem"] else ""
    refusals = '<p class="note">No order refused since start.</p>\n'
    if risk["refusals"]:
        rows = "".join(_html_row(risk_cells(row)) for row in risk["refusals"])
        refusals = f"<table>{_html_row(RISK_COLUMNS, 'th')}{rows}</table>\n"
    return _section_html("risk", f"<!-- risk guard -->\n{state}{rules}{problem}{refusals}<!-- /risk guard -->\n")


def _paper_html(report):
    """The paper accounts used since start, said to be simulated: never confusable with live ones."""
    paper = report.get("paper") or {}
    if not paper.get("accounts"):
        return _section_html("paper", f'<p class="note">None used since start ({PAPER_NOTE}; Access Key paper).</p>\n')
    rows = "".join(_html_row([a["exchange"], a["account"], a["calls"]]) for a in paper["accounts"])
    return _section_html("paper", f"<p>{PAPER_NOTE.capitalize()}. Kept in {html.escape(paper['db'])}</p>\n"
                         f"<table>{_html_row(PAPER_COLUMNS, 'th')}{rows}</table>\n")


def _html_row(cells, tag="td"):
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(cell))}</{tag}>" for cell in cells) + "</tr>"


HTML_SECTIONS = {"exchanges": _exchanges_html, "streams": _streams_html, "risk": risk_html, "paper": _paper_html,
                 "addresses": _addresses_html, "seen": _seen_html}


def status_table(report):
    """The FMZ LogStatus text: a line, then tables as JSON between backticks (FMZ renders them):
    the sections of SECTIONS in section_order, each a table titled with its name (the exchanges
    have two more, their health and their methods)."""
    tables = [table for key in section_order(report) for table in TABLE_SECTIONS[key](report)]
    line = f"fmz-plugin {report['version']}, up {uptime_text(report['uptime_seconds'])}"
    failing = [h["exchange"] for h in report.get("health", []) if h["state"] == "failing"]
    if failing:
        line += ", FAILING: " + ", ".join(failing)
    if refusals_line(report.get("connections")):
        line += ", " + refusals_line(report["connections"])
    risk = report.get("risk")
    if risk is not None:
        if risk["halted"]:
            line += f", HALTED: {risk['halt_reason']}"
        if risk["problem"]:
            line += f", risk guard: {risk['problem']}"
    return line + "\n`" + json.dumps(tables, ensure_ascii=False) + "`"


def _fmz_table(title, columns, rows):
    return {"type": "table", "title": title, "cols": columns, "rows": rows}


def _exchanges_tables(report):
    now, health = report.get("now"), report.get("health", [])
    return [
        _fmz_table(SECTIONS["exchanges"], SUMMARY_COLUMNS, [summary_cells(row) for row in report.get("summary", [])]),
        _fmz_table("Exchanges: health", ["Exchange", "Health", "Last exchange error", "Other errors", "Rate limit"],
                   [[h["exchange"], health_line(h), last_error_line(h, now),
                     "; ".join(other_error_lines(h, now)),
                     "; ".join(rate_limit_line(row) for row in rate_limits_of(report, h["exchange"]))]
                    for h in health]),
        _fmz_table("Exchanges: methods", METHOD_COLUMNS, [method_cells(row, now) for row in report.get("methods", [])]),
    ]


def _streams_tables(report):
    return [_fmz_table(SECTIONS["streams"], STREAM_COLUMNS, stream_rows(report) or [["", NO_STREAM]])]


def _risk_tables(report):
    risk = report.get("risk")
    return [_fmz_table(SECTIONS["risk"], RISK_COLUMNS, [risk_cells(row) for row in risk["refusals"]] if risk else [])]


def _paper_tables(report):
    accounts = report.get("paper", {}).get("accounts", [])
    return [_fmz_table(SECTIONS["paper"], PAPER_COLUMNS, [[a["exchange"], a["account"], a["calls"]] for a in accounts])]


def _addresses_tables(report):
    return [_fmz_table(SECTIONS["addresses"], ["Exchange", "Service address"],
                       [[e["name"], e["service_address"]] for e in report.get("exchanges", [])])]


def _seen_tables(report):
    return [_fmz_table(SECTIONS["seen"], SEEN_COLUMNS, [seen_cells(row) for row in report.get("seen", [])])]


TABLE_SECTIONS = {"exchanges": _exchanges_tables, "streams": _streams_tables, "risk": _risk_tables,
                  "paper": _paper_tables, "addresses": _addresses_tables, "seen": _seen_tables}


# -- Serve: flags and banner -----------------------------------------------------------------------
# A mistake in the flags (or strategy parameters) or in the machine (a port taken, an address it
# does not have) stops the plugin before it serves, with one line naming the flag and the fix:
# exit status 2 in a terminal, a line in the robot's log in FMZ. No traceback for a user mistake.

class StartupError(Exception):
    """Why the plugin cannot start, as the one line the user reads (the flag and the fix)."""


class FlagParser(argparse.ArgumentParser):
    """argparse whose mistakes are one line (no usage block): `fmz_plugin.py: argument --port:
    wants a port from 1 to 65535 ..., got '99999' (--help lists every flag)`, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (--help lists every flag)\n")


def port_number(text):
    """A --port value: 1 to 65535, or 0 for any free port."""
    port = int(text) if re.fullmatch(r"\s*\d{1,6}\s*", text) else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"wants a port from 1 to 65535 (or 0: any free port), got {text!r}")
    return port


def _float_or_nan(text):
    """A flag's number, or NaN (which fails every range check) when it is not one."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def seconds_above_zero(text):
    """A --timeout value: seconds, more than 0 and at most an hour."""
    seconds = _float_or_nan(text)
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"wants seconds above 0 and up to 3600, such as 10; got {text!r}")
    return seconds


def wait_seconds(text):
    """A --max-wait value: seconds from 0 (never wait) to an hour."""
    seconds = _float_or_nan(text)
    if not 0 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"wants seconds from 0 to 3600, such as 10; got {text!r}")
    return seconds


def connection_count(text):
    """A --max-connections value: a whole number of 1 or more."""
    count = int(text) if re.fullmatch(r"\s*\d{1,9}\s*", text) else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number of connections of 1 or more, such as 512; "
                                         f"got {text!r}")
    return count


def parse_args(argv):
    parser = FlagParser(
        prog="fmz_plugin.py", description="FMZ General Protocol plugin: serves "
        + ", ".join("/" + m.NAME for m in EXCHANGES.values()) + " to FMZ robots.",
        epilog="other commands: call (send one docker request from a terminal), check (grade a "
        "plugin), status (the status page in a terminal), bundle (write this plugin as one file), halt and resume (the risk guard's kill "
        "switch), paper (list or reset paper accounts); e.g. python fmz_plugin.py call --help")
    parser.add_argument("--port", type=port_number, default=6666, help="port to listen on (default 6666; 0: any free port)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; the docker sends keys in clear, keep it local)")
    parser.add_argument("--status-port", type=port_number, default=None, metavar="N",
                        help="also serve the status page on port N; 0: never. Default: when browsers refuse "
                             "--port (6666 is on their list), the first free port above it that they open (6670)")
    parser.add_argument("--timeout", type=seconds_above_zero, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"seconds to wait for an exchange (connect and each read; default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--base-url", action="append", default=[], metavar="NAME=URL",
                        help="send exchange NAME's calls to URL (testnet, other domain, proxy, fake); repeatable. "
                             "NAME.ws=ws://HOST:PORT (or wss://) moves its stream's host; a moved REST host "
                             "without NAME.ws does not stream")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log detail (default info: one line per request; keys are never logged)")
    parser.add_argument("--log-file", metavar="PATH", default=None,
                        help=f"write the log to PATH instead of stderr, rotated at {LOG_FILE_MB} MB "
                             f"({LOG_FILES_KEPT} older files kept: PATH.1 ...)")
    parser.add_argument("--version", action="version", version=f"fmz-plugin {__version__}",
                        help="print the version and exit")
    parser.add_argument("--allow", metavar="IP[,IP]", default=None,
                        help="only these client addresses (or networks, 10.0.0.0/8) may call the plugin; "
                             "others get HTTP 403 (default: any)")
    parser.add_argument("--max-wait", type=wait_seconds, default=THROTTLE_MAX_WAIT, metavar="SECONDS",
                        help="how long a call may wait for its turn under an exchange's rate limit before "
                             f"it fails naming the limit (default {THROTTLE_MAX_WAIT:g})")
    parser.add_argument("--max-connections", type=connection_count, default=None, metavar="N",
                        help=f"docker connections served at once; more are answered HTTP 503 (default "
                             f"{MAX_CONNECTIONS}, fewer when the open-file limit is low: half of it, less "
                             f"{FILES_KEPT}; now {default_max_connections()})")
    parser.add_argument("--no-stream", action="store_true",
                        help="answer ticker, depth, trades and records from REST calls only, never from the "
                             "exchanges' WebSocket streams")
    parser.add_argument("--no-throttle", action="store_true",
                        help="do not hold calls under the exchanges' documented rate limits "
                             "(only for a fake exchange or a raised limit)")
    add_risk_args(parser)
    parser.add_argument("--risk-json", metavar="JSON", default=None,
                        help="the risk rules as JSON text instead of a file (what FMZ's Risk parameter passes)")
    add_paper_flags(parser)
    parser.set_defaults(risk_json_name="--risk-json")      # how messages name --risk-json's rules (see strategy_args)
    args = parser.parse_args(argv)
    if args.risk and args.risk_json:
        parser.error("give the risk rules once: --risk FILE or --risk-json JSON")
    args.base_urls = parse_base_urls(parser, args.base_url)
    args.paper = paper_ledger(parser, args)
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
    return args


def parse_base_urls(parser, items):
    """--base-url NAME=URL items -> {name: url}, or a usage error naming the bad one and the forms."""
    base_urls = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not name:
            parser.error(f"--base-url wants NAME=URL such as okx=https://www.okx.com, got {item!r}")
        key, _, host = name.lower().partition(".")
        stream = host == "ws" or host.startswith("ws.")
        if stream and not re.match(r"^wss?://[^/]", url):
            parser.error(f"--base-url {item}: a stream's URL needs ws:// or wss://, e.g. {name}=wss://HOST:PORT")
        if not stream and not re.match(r"^https?://[^/]", url):
            parser.error(f"--base-url {item}: the URL needs http:// or https://, e.g. {name}=https://{url or 'HOST'}")
        if key not in EXCHANGES or (host and not stream and host not in EXCHANGES[key].HOSTS) \
                or (stream and host[3:] and host[3:] not in EXCHANGES[key].STREAM_URLS):
            parser.error(f"--base-url: unknown exchange or host {name!r}; NAME is one of {', '.join(base_url_names())}"
                         f" (and EXCHANGE.ws for the host of a stream: {', '.join(stream_names())})")
        base_urls[name.lower()] = url
    return base_urls


def base_url_names():
    """What --base-url NAME may be: each exchange, and each of its other hosts (binance.futures)."""
    return [f"{key}{'.' + host if host else ''}" for key, module in EXCHANGES.items() for host in ["", *module.HOSTS]]


def stream_names():
    """The exchanges whose WebSocket host --base-url NAME.ws=ws://HOST:PORT moves."""
    return [f"{key}.ws" for key, module in EXCHANGES.items() if module.STREAM_URLS]


RISK_HALT_NAME = os.path.basename(default_halt_file())


def add_risk_args(parser):
    """--risk and --halt-file: the server's, and those of halt and resume, which find the same file."""
    parser.add_argument("--risk", metavar="FILE", default=None,
                        help="risk rules (JSON) every order must pass, re-read when the file changes "
                             "(README: Risk guard)")
    parser.add_argument("--halt-file", metavar="PATH", default=None,
                        help=f"kill switch: while this file exists every new order is refused (default "
                             f"{RISK_HALT_NAME} beside the --risk file, else in the current directory)")


def settings_of(args):
    """The Settings the flags ask for; raises StartupError when the risk rules are not valid."""
    return Settings(args.base_urls, args.timeout, throttle=not args.no_throttle, allow=args.allow_list,
                    max_wait=args.max_wait, max_connections=args.max_connections, risk=risk_guard_of(args),
                    paper=args.paper, stream=not args.no_stream)


def risk_guard_of(args):
    """The RiskGuard every order passes: the rules of --risk or --risk-json (none: only the kill
    switch), and the halt file. Rules given as text are named as the user gave them: --risk-json
    in a terminal, the Risk parameter in FMZ (args.risk_json_name); no rules have no name."""
    names = {**{key: module.NAME for key, module in EXCHANGES.items()},
             **{module.NAME.lower(): module.NAME for module in EXCHANGES.values()}}
    try:
        guard = RiskGuard(names, path=args.risk, text=args.risk_json, halt_file=args.halt_file, log=log)
    except PluginError as error:
        why = str(error)
        if args.risk is None and why.startswith(INLINE_SOURCE):
            why = args.risk_json_name + why[len(INLINE_SOURCE):]
        raise StartupError(f"the risk rules are not valid: {why}") from None
    if args.risk is None:
        guard.source = args.risk_json_name if args.risk_json is not None else None
    return guard


def add_paper_flags(parser, fees=True):
    parser.add_argument("--paper-db", metavar="PATH", default=_paper.default_path(globals().get("__file__")),
                        help="the SQLite file of paper accounts (Access Key paper; default "
                             f"{_paper.DB_NAME} beside this program)")
    if fees:
        parser.add_argument("--paper-fees", metavar="MAKER,TAKER", default=None,
                            help="fee rates of paper accounts as fractions, e.g. 0.0002,0.0005 (0 for none; "
                                 "default: each exchange's standard rates, README: Paper trading)")


def paper_ledger(parser, args):
    """The paper accounts' Ledger the flags name, or a usage error naming the bad flag."""
    try:
        fees = _paper.parse_fees(args.paper_fees) if getattr(args, "paper_fees", None) is not None else None
    except ValueError as error:
        parser.error(f"--paper-fees: {error}")
    return _paper.Ledger(args.paper_db, fees=fees)


def banner(server, settings):
    """What the terminal (or the robot's log) shows at start: where to paste, where the page is."""
    host, port = server.server_address[:2]
    hosts = service_hosts(server)
    if host in ("0.0.0.0", "::"):
        lines = [f"fmz-plugin {__version__} listening on port {port} of every address of this machine "
                 f"(--address {host})"]
    else:
        lines = [f"fmz-plugin {__version__} listening on {server_url(server)}"]
    lines.append("Service addresses to paste into FMZ (General Protocol):")
    for key, module in EXCHANGES.items():
        base = settings.base_urls_of(key).get("", module.BASE_URL)
        lines.append(f"  {module.NAME:<10} {hosts[0]}/{module.NAME}   (exchange API: {base})")
    if len(hosts) > 1:
        lines.append("  The same paths at " + ", ".join(f"{h}/" for h in hosts[1:]) + " (127.0.0.1: a docker on this machine)")
    lines.append(f"Paper trading: Access Key paper, Secret Key the starting balances (USDT=10000,BTC=0.1); "
                 f"accounts kept in {settings.paper.path}")
    if settings.risk is not None:
        lines.append(risk_banner(settings.risk))
    if settings.allow:
        lines.append("Clients allowed: " + ", ".join(map(str, settings.allow)))
    elif host not in ("127.0.0.1", "localhost", "::1"):
        lines.append("Warning: --allow is missing: any machine that reaches this one may trade with the keys its "
                     "docker sends in clear. Name your docker's address, e.g. --allow 192.168.1.20.")
    cap = backlog_cap()
    if cap is not None and cap < server.request_queue_size:
        lines.append(f"Note: the system caps the listen backlog at {cap} (net.core.somaxconn), below the "
                     f"{server.request_queue_size} asked for --max-connections {settings.max_connections}: more "
                     f"robots than that connecting at once may wait for a TCP retry (sysctl -w "
                     f"net.core.somaxconn={server.request_queue_size} raises it)")
    lines.append(f"Status page: {status_page_url(server)}")
    return "\n".join(lines)


def risk_banner(guard):
    return risk_line(guard.report())


def risk_line(report):
    """The risk guard in one line: its rules and the kill switch's state."""
    rules = f"rules of {report['rules']} for {', '.join(report['entries'])}" if report["entries"] else "no rules"
    state = f"HALTED: {report['halt_reason']}" if report["halted"] else "absent, trading"
    return f"Risk guard: {rules}; kill switch {report['halt_file']} ({state})"


def io_line(report):
    """Which exchanges' exchange.IO calls other than GET the rules let through."""
    allowed = ", ".join(report["io_allowed"])
    return (f"exchange.IO other than GET: allowed for {allowed}" if allowed else "exchange.IO other than GET: "
            "refused on exchanges with rules") + ", passed where there are none (refused while halted)."


def serve(argv):
    args = parse_args(argv)
    try:
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s",
                            handlers=log_handlers(args))
        settings = settings_of(args)
        server = listening(args.address, args.port, settings, args.status_port)
    except StartupError as error:
        print(f"fmz_plugin.py: {error}", file=sys.stderr)
        return 2
    logged = f"\nLog: {os.path.abspath(args.log_file)}" if args.log_file else ""
    print(banner(server, settings) + logged, flush=True)
    gc.freeze()           # what start made lives as long as the process: no collection scans it again
    gc.set_threshold(GC_YOUNG_LIMIT)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        close(server)


def log_handlers(args):
    """Where the log goes: stderr, or --log-file, rotated by the standard library."""
    if not args.log_file:
        return [logging.StreamHandler()]
    try:
        return [logging.handlers.RotatingFileHandler(args.log_file, maxBytes=LOG_FILE_MB * 1024 * 1024,
                                                     backupCount=LOG_FILES_KEPT, encoding="utf-8")]
    except OSError as error:
        raise StartupError(f"--log-file {args.log_file} cannot be written: {error.strerror or error}") from None


def listening(address, port, settings, status_port=None):
    """A Server bound to (address, port), with its StatusServer when the status page needs a
    port of its own (see status_port_for); or StartupError saying why it cannot be."""
    try:
        server = Server((address, port), settings)
    except (OSError, OverflowError) as error:
        raise StartupError(bind_problem(error, address, port)) from None
    try:
        page_port = status_port_for(server, status_port)
        if page_port is not None:
            server.status_page = StatusServer((address, page_port), server)
    except (OSError, StartupError) as error:
        server.server_close()
        if isinstance(error, StartupError):
            raise
        raise StartupError(bind_problem(error, address, page_port, "--status-port")) from None
    if server.status_page is not None:
        threading.Thread(target=server.status_page.serve_forever, args=(0.1,), daemon=True).start()
    return server


# Ports browsers refuse to open (net::ERR_UNSAFE_PORT): the Fetch Standard's "bad port" list,
# which Chrome and Firefox follow (https://fetch.spec.whatwg.org/#bad-port). 6666, the guide's
# port and our default, is one of them: the status page is then also served on a port they open.
BROWSER_REFUSED_PORTS = frozenset((
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103,
    104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513,
    514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720,
    1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080))


def status_port_for(server, asked):
    """The port of the status page's own server, or None when the protocol port serves it.

    asked None (the default): a port of its own only when browsers refuse the protocol port,
    the first free one above it that they open. 0: none. N: that port."""
    port = server.server_address[1]
    if asked == 0 or (asked is None and port not in BROWSER_REFUSED_PORTS):
        return None
    if asked is None:
        return free_port_near(server.server_address[0], port) or 0
    if asked == port:
        raise StartupError(f"--status-port {asked} is --port itself: give another port, or 0 for none")
    if asked in BROWSER_REFUSED_PORTS:
        raise StartupError(f"--status-port {asked}: browsers refuse that port too; choose another, e.g. "
                           f"--status-port {free_port_near(server.server_address[0], asked)}")
    return asked


def close(server):
    """Stop serving and free the ports: the protocol server's and its status page's."""
    if server.status_page is not None:
        server.status_page.shutdown()
        server.status_page.server_close()
    server.server_close()


def bind_problem(error, address, port, flag="--port"):
    """What a failed bind means for the user, and what to do about it, in one line."""
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        return (f"port {port} is already in use on {address} (is another fmz-plugin running?): stop that "
                f"program, or choose a free port, e.g. {flag} {free_port_near(address, port)}")
    if code == errno.EACCES:
        return (f"port {port} needs administrator rights here (ports below 1024 usually do): "
                f"choose {flag} 6666 or another port above 1023")
    if code == errno.EAFNOSUPPORT:
        return f"--address {address}: this machine has no IPv6; use --address 127.0.0.1 (or 0.0.0.0: every IPv4 address)"
    if code == errno.EADDRNOTAVAIL:
        return (f"--address {address} is not an address of this machine: use 127.0.0.1 (this machine only), "
                "0.0.0.0 (every address) or one of this machine's own addresses")
    if isinstance(error, socket.gaierror):
        return (f"--address {address} is neither an IP address nor a name this machine can resolve: use "
                "127.0.0.1, 0.0.0.0 or one of this machine's own addresses")
    return f"cannot listen on {address} port {port}: {getattr(error, 'strerror', None) or error}"


def free_port_near(address, port):
    """A port above `port` that is free on `address` and that browsers open (else 0: any free port)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for candidate in range(port + 1, min(port + 50, 65536)):
        if candidate in BROWSER_REFUSED_PORTS:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, candidate))
                return candidate
            except OSError:
                continue
    return 0


# -- FMZ strategy mode -----------------------------------------------------------------------------
# Pasted into FMZ as a Python strategy, this file runs inside the robot: FMZ calls main() with
# its API (Log, LogStatus, Sleep) and the strategy parameters set as globals of this file.

STRATEGY_PARAMETERS = {          # FMZ strategy parameter (each optional) -> command-line flag
    "Address": "--address",
    "Port": "--port",
    "StatusPort": "--status-port",
    "Allow": "--allow",
    "Timeout": "--timeout",
    "MaxWait": "--max-wait",
    "MaxConnections": "--max-connections",
    "LogLevel": "--log-level",
    "PaperDb": "--paper-db",
    "PaperFees": "--paper-fees",
    "Risk": "--risk-json",
    "HaltFile": "--halt-file",
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
    """`with LogLines(level) as lines:` holds the plugin's log lines here instead of stderr, so
    that main() hands them to FMZ's Log from its own thread, never from a server thread."""

    def __init__(self, level):
        super().__init__()
        self.wanted = level.upper()
        self.lines = queue.SimpleQueue()
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def __enter__(self):
        self.before = (log.level, log.propagate)
        log.addHandler(self)
        log.setLevel(self.wanted)
        log.propagate = False
        return self

    def __exit__(self, *exc):
        log.removeHandler(self)
        log.setLevel(self.before[0])
        log.propagate = self.before[1]

    def emit(self, record):
        self.lines.put(self.format(record))

    def take(self):
        while not self.lines.empty():
            yield self.lines.get()


def strategy_args(params, say):
    """parse_args() of the strategy parameters; a wrong one is said in FMZ's log, not on stderr."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parse_args(strategy_argv(params))
        args.risk_json_name = INLINE_SOURCE           # FMZ's words: the Risk parameter
        return args
    except SystemExit:
        line = errors.getvalue().strip().splitlines()[-1].replace(" (--help lists every flag)", "")
        say("fmz-plugin cannot start: strategy parameter " + in_fmz_words(line.replace("fmz_plugin.py: ", "", 1)))
        raise


def in_fmz_words(text):
    """A message about flags, told with the strategy parameters' names: `--port` is `Port`."""
    names = {**{flag: name for name, flag in STRATEGY_PARAMETERS.items()}, "--base-url": "BaseUrls"}
    return re.sub(r"(argument )?(--[a-z-]+)", lambda hit: names.get(hit.group(2), hit.group(0)), text)


def main(stop=None):
    """FMZ's entry point: serve with the strategy parameters and show the status table.

    Runs until FMZ stops the strategy (FMZ's Sleep then raises) or, when called from Python,
    until the threading.Event `stop` is set; either way the server is shut down and its port
    freed before main() returns or the exception goes on. A wrong parameter or a port that is
    taken is one line in the robot's log, then SystemExit(2) stops the robot.
    """
    fmz = globals()
    say = fmz.get("Log") or print
    show = fmz.get("LogStatus") or (lambda text: None)
    sleep = fmz.get("Sleep") or (lambda ms: time.sleep(ms / 1000))
    args = strategy_args(fmz, say)
    try:
        settings = settings_of(args)
        server = listening(args.address, args.port, settings, args.status_port)
    except StartupError as error:
        say(f"fmz-plugin cannot start: {in_fmz_words(str(error))}")
        raise SystemExit(2) from None
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    say(banner(server, settings))
    try:
        with LogLines(args.log_level) as lines:
            while stop is None or not stop.is_set():
                for line in lines.take():
                    say(line)
                show(status_table(status_report(server)))
                sleep(STATUS_EVERY * 1000)
    finally:
        server.shutdown()
        close(server)


# ==================================================================================================
# == Tools: nothing below runs while serving =======================================================
# ==================================================================================================
# -- Tools: call, one request from a terminal ------------------------------------------------------
# `call OKX ticker symbol=BTC_USDT` sends the envelope a docker would send, either to a running
# plugin (--url, ours or anyone's) or in-process through dispatch(), and prints the answer for
# a person: data as a table or aligned fields, the error in red, the round-trip time on stderr.

RED, GREEN, YELLOW = "31", "32", "33"
RECORD_COLUMNS = ["time", "open", "high", "low", "close", "volume"]
PLUGIN_TIMEOUT = 30.0        # seconds call and check wait for a plugin at a URL (it may retry inside)


def envelope_for(method, params, access_key="", secret_key=""):
    """The docker's request body: every param value a string, the nonce in nanoseconds."""
    return {"access_key": access_key, "secret_key": secret_key, "method": method,
            "params": {name: str(value) for name, value in params.items()}, "nonce": time.time_ns()}


class Reply:
    """What a plugin at a URL answered to one POST: `answer` (a dict with data or error), or
    `problem`, a sentence saying why nothing usable came back. `unreachable`: nothing listens."""

    def __init__(self, ms, status=None, content_type="", body=b"", problem=None, unreachable=False,
                 timed_out=False):
        self.ms, self.status, self.content_type, self.body = ms, status, content_type, body
        self.unreachable, self.timed_out = unreachable, timed_out
        self.answer, self.problem = (None, problem) if problem else _decode_answer(status, content_type, body)


def _decode_answer(status, content_type, body):
    snippet = body[:100].decode("utf-8", "replace").replace("\n", " ")
    described = content_type or "no Content-Type"
    if status != 200:
        return None, f"answered HTTP {status} ({described}): {snippet!r}"
    try:
        answer = json.loads(body)
    except ValueError:
        return None, f"answered a body that is not JSON ({described}): {snippet!r}"
    if not isinstance(answer, dict) or ("data" in answer) == ("error" in answer):
        return None, f"answered JSON with neither data nor error, or both: {snippet!r}"
    return answer, None


def post_to_plugin(url, body, http_method=None, timeout=PLUGIN_TIMEOUT, headers=None):
    """POST body to a plugin on a fresh connection. Never raises for anything the plugin does."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    headers = {"Content-Type": "application/json", **(headers or {})}
    if http_method:
        headers["Http-Method"] = http_method
    started = time.monotonic()
    conn = connection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except (ConnectionRefusedError, socket.gaierror) as error:
        return Reply(_ms_since(started), problem=f"cannot connect to {parts.netloc}: {error}", unreachable=True)
    except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.IncompleteRead):
        return Reply(_ms_since(started), problem="the connection was dropped without a complete answer")
    except (socket.timeout, TimeoutError):
        return Reply(_ms_since(started), problem=f"no answer within {timeout:g}s", timed_out=True)
    except ssl.SSLError as error:
        plain_http = "WRONG_VERSION_NUMBER" in str(error)       # a plain HTTP answer to our TLS hello
        hint = f": it serves plain HTTP, use {urllib.parse.urlunsplit(('http',) + parts[1:])}" if plain_http else ""
        return Reply(_ms_since(started), problem=f"the TLS handshake with {parts.netloc} failed "
                                                 f"({error.reason or error}){hint}", unreachable=True)
    except (OSError, http.client.HTTPException) as error:
        return Reply(_ms_since(started), problem=f"{type(error).__name__}: {error}")
    finally:
        conn.close()
    return Reply(_ms_since(started), response.status, response.getheader("Content-Type", ""), data)


def _ms_since(started):
    return (time.monotonic() - started) * 1000


def plugin_url(url, exchange):
    """http://HOST:PORT + OKX -> http://HOST:PORT/OKX; a URL already ending in /OKX is kept."""
    url = url.rstrip("/")
    return url if url.lower().endswith("/" + exchange.lower()) else f"{url}/{exchange}"


def paint(text, colour, stream):
    """ANSI colour on a terminal only (and never when NO_COLOR is set)."""
    if getattr(stream, "isatty", lambda: False)() and not os.environ.get("NO_COLOR"):
        return f"\033[{colour}m{text}\033[0m"
    return text


def render(data):
    """data as a person reads it: a book, a table for lists, aligned fields for an object, else JSON."""
    if isinstance(data, dict) and isinstance(data.get("asks"), list) and isinstance(data.get("bids"), list):
        return _render_book(data)
    if isinstance(data, dict) and data and all(isinstance(value, dict) for value in data.values()):
        data = [value if "symbol" in value else {"key": key, **value} for key, value in data.items()]
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        columns = list(dict.fromkeys(key for row in data for key in row))
        return table(columns, [[row.get(column) for column in columns] for row in data])
    if isinstance(data, list) and data and all(isinstance(row, list) for row in data):
        width = max(len(row) for row in data)
        columns = RECORD_COLUMNS[:width] if width <= len(RECORD_COLUMNS) else list(map(str, range(width)))
        return table(columns, data)
    if isinstance(data, dict) and data and not any(isinstance(v, (dict, list)) for v in data.values()):
        width = max(len(key) for key in data)
        return "\n".join(f"{key:<{width}}  {_cell(value)}{_utc_note(key, value)}" for key, value in data.items())
    if data == []:
        return "(an empty list)"
    return json.dumps(data, indent=2, ensure_ascii=False)


def _render_book(book):
    level = lambda side, row: [side] + (row[:2] if isinstance(row, list) else [row, None])
    rows = [level("ask", row) for row in reversed(book["asks"])] + [level("bid", row) for row in book["bids"]]
    head = f"time  {_cell(book['time'])}{_utc_note('time', book['time'])}\n" if "time" in book else ""
    return head + table(["side", "price", "amount"], rows)


def table(columns, rows):
    """Plain-text columns; numbers right-aligned; a `time` column gets a readable `utc` beside it."""
    if "time" in columns:
        at = columns.index("time") + 1
        columns = columns[:at] + ["utc"] + columns[at:]
        rows = [row[:at] + [_utc(row[at - 1]) if len(row) >= at else ""] + row[at:] for row in rows]
    cells = [[_cell(value) for value in row] + [""] * (len(columns) - len(row)) for row in rows]
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]
    numeric = [all(_is_number(row[i]) for row in rows if i < len(row)) for i in range(len(columns))]
    line = lambda values: "  ".join(value.rjust(width) if right else value.ljust(width)
                                    for value, width, right in zip(values, widths, numeric)).rstrip()
    return "\n".join([line(columns)] + [line(row) for row in cells])


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value):
    """One value as text: numbers in plain decimals (0.00000001, not 1e-08), as exchanges write them."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return plain(Decimal(repr(value)))
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _utc(value):
    """A millisecond time as 2024-05-01 12:00:00.000 UTC text; '' for anything else."""
    if not _is_number(value) or not 1e12 <= value < 1e13:
        return ""
    return iso_ms(value).replace("T", " ").rstrip("Z")


def _utc_note(key, value):
    text = _utc(value) if key == "time" else ""
    return f"  ({text} UTC)" if text else ""


def parse_call_args(argv):
    parser = FlagParser(
        prog="fmz_plugin.py call", description="Send one request exactly as an FMZ docker does and print "
        "the answer. Exit status: 0 data, 1 error, 2 usage or connection problem.")
    parser.add_argument("exchange", help="exchange path, e.g. OKX")
    parser.add_argument("method", help="protocol method (ticker, depth, records, trade, ...) or __api_/PATH")
    parser.add_argument("params", nargs="*", metavar="name=value", help="params, sent as strings: symbol=BTC_USDT")
    parser.add_argument("--url", help="a running plugin, http://HOST:PORT (default: serve the call in-process)")
    parser.add_argument("--raw", action="store_true", help="also print raw, the exchange's own reply")
    parser.add_argument("--access-key", default=os.environ.get("FMZ_ACCESS_KEY", ""),
                        help="access key (default: environment FMZ_ACCESS_KEY); never printed")
    parser.add_argument("--secret-key", default=os.environ.get("FMZ_SECRET_KEY", ""),
                        help="secret key as typed into FMZ (default: environment FMZ_SECRET_KEY); never printed")
    parser.add_argument("--http-method", help="verb of an __api_ call, sent as the Http-Method header "
                        "(GET, POST, ...)")
    parser.add_argument("--base-url", action="append", default=[], metavar="NAME=URL",
                        help="in-process: send exchange NAME's calls to URL, as for the server")
    parser.add_argument("--timeout", type=seconds_above_zero, help="seconds to wait for the exchange (in-process, default "
                        f"{DEFAULT_TIMEOUT:g}) or for the plugin (--url, default {PLUGIN_TIMEOUT:g})")
    add_paper_flags(parser)
    args = parser.parse_intermixed_args(argv)
    args.base_urls = parse_base_urls(parser, args.base_url)
    args.paper = paper_ledger(parser, args)
    if args.url and args.base_urls:
        parser.error("--base-url shapes in-process calls; the plugin at --url has its own")
    if args.url and not re.match(r"^https?://[^/]", args.url):
        parser.error(f"--url wants http://HOST:PORT, got {args.url!r}")
    if not args.url and args.exchange.lower() not in EXCHANGES:
        parser.error(f"in-process calls serve {', '.join(m.NAME for m in EXCHANGES.values())}; "
                     f"for another plugin give --url")
    if method_of(args.method) in KEYED_METHODS and not has_keys(args.access_key, args.secret_key):
        missing = ("no secret key given (FMZ_SECRET_KEY / --secret-key)" if args.access_key else
                   "no keys given (FMZ_ACCESS_KEY / --access-key and FMZ_SECRET_KEY / --secret-key; "
                   "or --access-key paper for a paper account)")
        parser.error(f"{args.method} needs keys: {missing}")
    args.param_dict = {}
    for item in args.params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"params are name=value, such as symbol=BTC_USDT; got {item!r}")
        args.param_dict[name] = value
    return args


KEYED_METHODS = ("accounts", "assets", "orders", "historyorders", "trade", "order", "cancel", "positions",
                 "margin_level")                 # what no exchange answers without keys


def call_command(argv):
    args = parse_call_args(argv)
    envelope = envelope_for(args.method, args.param_dict, args.access_key, args.secret_key)
    if args.url:
        where = "POST " + plugin_url(args.url, args.exchange)
        reply = post_to_plugin(where[5:], json.dumps(envelope).encode(), args.http_method,
                               args.timeout or PLUGIN_TIMEOUT)
        if reply.problem:
            print(redact(f"{where}: {reply.problem}", envelope), file=sys.stderr)
            return 2
        answer, ms = reply.answer, reply.ms
    else:
        where, started = "in-process", time.monotonic()
        settings = Settings(args.base_urls, args.timeout or DEFAULT_TIMEOUT, paper=args.paper)
        answer = json.loads(to_json(dispatch(args.exchange, envelope, args.http_method, settings)))
        ms = _ms_since(started)
    show_answer(answer, args.raw, envelope)
    paper = _paper.is_paper(args.access_key)
    account = f", PAPER account {_paper.shown_name(args.secret_key.strip())}" if paper else ""
    print(f"{args.exchange} {args.method}: {ms:.0f} ms ({where}{account})", file=sys.stderr)
    return 0 if "data" in answer else 1


def show_answer(answer, with_raw, envelope):
    """Print data (or the error, red on a terminal); keys are blanked from everything printed."""
    if "error" in answer:
        print(paint(redact(f"error: {answer['error']}", envelope), RED, sys.stdout))
        return
    print(redact(render(answer["data"]), envelope))
    if with_raw:
        raw = json.dumps(answer["raw"], indent=2, ensure_ascii=False) if "raw" in answer else "(none)"
        print("raw:\n" + redact(raw, envelope))


# -- Tools: status, the status page in a terminal -------------------------------------------------
# `status http://127.0.0.1:6666/` reads GET /status as JSON and prints what the page shows, for a
# server without a browser.

DEFAULT_STATUS_URL = "http://127.0.0.1:6666/"


def status_command(argv):
    parser = FlagParser(prog="fmz_plugin.py status", description="Print a running plugin's status page "
                        "in the terminal. Exit status 0, or 2 when nothing answers there.")
    parser.add_argument("url", nargs="?", default=DEFAULT_STATUS_URL,
                        help=f"the plugin, http://HOST:PORT/ (default {DEFAULT_STATUS_URL}); a service address works too")
    parser.add_argument("--timeout", type=seconds_above_zero, default=10.0, help="seconds to wait (default 10)")
    args = parser.parse_args(argv)
    parts = urllib.parse.urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"URL wants http://HOST:PORT/, such as {DEFAULT_STATUS_URL}; got {args.url!r}")
    report, problem = fetch_status(f"{parts.scheme}://{parts.netloc}/status", args.timeout)
    if problem:
        print(f"{parts.scheme}://{parts.netloc}/status: {problem}", file=sys.stderr)
        return 2
    print(status_text(report))
    return 0


def fetch_status(url, timeout):
    """(the status report, None), or (None, why there is none)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = connection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        return None, f"nothing answers ({type(error).__name__}: {error}): is the plugin running?"
    finally:
        conn.close()
    try:
        report = json.loads(body)
    except ValueError:
        report = None
    if response.status != 200 or not isinstance(report, dict) or "health" not in report:
        return None, f"answered HTTP {response.status}, not an fmz-plugin status report: {body[:100]!r}"
    return report, None


def status_text(report, stream=None):
    """The report for a terminal (`python3 fmz_plugin.py status`): the sections of SECTIONS in
    section_order, each under its name, as the page shows them; the summary and a failing method
    in red on a terminal (marked `!`), exchange errors in yellow."""
    stream = stream or sys.stdout
    lines = [f"fmz-plugin {report['version']}, up {uptime_text(report['uptime_seconds'])}; "
             f"status page {report['status_page']}"]
    if refusals_line(report.get("connections")):
        lines.append(paint(refusals_line(report["connections"]), YELLOW, stream))
    for key in section_order(report):
        lines += ["", SECTIONS[key]] + TEXT_SECTIONS[key](report, stream)
    return "\n".join(lines)


STATE_COLOURS = {"failing": RED, "errors": YELLOW, "ok": GREEN}
TEXT_METHOD_COLUMNS = ["", "method", "calls", "errors", "5 min", "p50 ms", "p99 ms", "last error"]


def _indented(text):
    return ["  " + line for line in text.splitlines()]


def _exchanges_text(report, stream):
    summary = report.get("summary", [])
    head, *body = table(SUMMARY_COLUMNS, [summary_cells(row) for row in summary]).splitlines()
    lines = ["  " + head] + ["  " + (paint(line, STATE_COLOURS[row["state"]], stream)
                                      if row["state"] in STATE_COLOURS else line) for line, row in zip(body, summary)]
    if not report["health"]:
        lines.append("  No call yet.")
    now = report["now"]
    for entry in report["health"]:
        colour = STATE_COLOURS.get(entry["state"], "0")
        lines += ["", paint(f"{entry['exchange']}  {STATE_WORDS[entry['state']]}", colour, stream) + "  "
                  + health_line(entry)]
        if entry["last_error_at"]:
            lines.append("  " + last_error_line(entry, now))
        if report.get("streams", {}).get(entry["exchange"]):
            lines.append("  " + stream_line(report["streams"][entry["exchange"]]))
        lines += ["  " + line for line in other_error_lines(entry, now)]
        lines += ["  rate limit, " + rate_limit_line(row) for row in rate_limits_of(report, entry["exchange"])]
        rows = [row for row in report["methods"] if row["exchange"] == entry["exchange"]]
        cells = [["!" if row["failing"] else "", row["method"], row["calls"], row["errors"], row["errors_5m"],
                  row["p50_ms"], row["p99_ms"], method_cells(row, now)[4]] for row in rows]
        head, *body = table(TEXT_METHOD_COLUMNS, cells).splitlines()
        lines.append("  " + head)
        lines += ["  " + (paint(line, RED, stream) if row["failing"] else line) for line, row in zip(body, rows)]
    return lines


def _streams_text(report, stream):
    rows = stream_rows(report)
    return _indented(table(STREAM_COLUMNS, rows)) if rows else ["  " + NO_STREAM]


def _risk_text(report, stream):
    risk = report.get("risk")
    if risk is None:
        return ["  No risk guard."]
    alarm = lambda text: paint(text, RED, stream)
    lines = ["  " + (alarm(risk_state_text(risk)) if risk["halted"] else risk_state_text(risk)),
             "  " + risk_rules_text(risk)]
    if risk["problem"]:
        lines.append("  " + alarm(risk["problem"]))
    if not risk["refusals"]:
        return lines + ["  No order refused since start."]
    return lines + _indented(table(RISK_COLUMNS, [risk_cells(row) for row in risk["refusals"]]))


def _paper_text(report, stream):
    paper = report.get("paper", {})
    if not paper.get("accounts"):
        return [f"  None used since start ({PAPER_NOTE}; Access Key paper)."]
    return ([f"  {PAPER_NOTE.capitalize()}; kept in {paper['db']}"]
            + _indented(table(PAPER_COLUMNS, [[a["exchange"], a["account"], a["calls"]] for a in paper["accounts"]])))


def _addresses_text(report, stream):
    lines = ["  To paste into FMZ (General Protocol):"]
    lines += [f"  {e['name']:<10} {e['service_address']}" for e in report["exchanges"]]
    if len(report["hosts"]) > 1:
        lines.append("  also at " + ", ".join(report["hosts"][1:]))
    return lines


def _seen_text(report, stream):
    seen = report.get("seen", [])
    if not seen:
        return ["  Nothing yet."]
    return ([f"  {_plural(len(seen), 'request shape')}: names only, never a value"]
            + _indented(table(SEEN_COLUMNS, [seen_cells(row) for row in seen])))


TEXT_SECTIONS = {"exchanges": _exchanges_text, "streams": _streams_text, "risk": _risk_text, "paper": _paper_text,
                 "addresses": _addresses_text, "seen": _seen_text}



# -- Tools: check, grade any plugin ----------------------------------------------------------------
# `check http://127.0.0.1:6666/OKX` runs the protocol contract against a plugin in any language
# and prints one row per check. Read checks validate each method's answer; error checks send
# bad requests that must each get HTTP 200 JSON {"error"} and leave the plugin serving; --trade
# places one far-from-market limit buy and always cancels it.
#
# The validators read the answer contract (ANSWERS and its structures, beside PROTOCOL) and add
# what a table cannot say: rows oldest first, buy <= sell, asks ascending, fresh times.
#
# Decisions: `markets` and `tickers` are optional (FMZ marks them "to be implemented"), so an
# error saying the plugin does not support them is a skip, not a failure. Private methods are
# skipped when no keys are given. Values may be JSON numbers or numeric strings (the guide
# shows strings). `raw` is required on every data answer: a strategy reads it as Info.

PASS, FAIL, SKIP = "pass", "FAIL", "skip"
OPTIONAL_METHODS = ("markets", "tickers")
PRIVATE_METHODS = ("accounts", "assets", "orders", "historyorders", "trade", "order", "cancel")
DECLINED = re.compile(r"not support|unsupported|not implemented|unknown method", re.IGNORECASE)
RECORDS_PERIOD = 60              # minutes asked for by the records check
FRESH_MS = 10 * 60_000           # a ticker's or book's time must be this close to now
TRADE_DISCOUNT = Decimal("0.8")  # the --trade buy is placed 20% under the best bid: far enough not to
                                 # fill, near enough for exchanges' price bands (Binance spot: 20% of avg)
FALLBACK_NOTIONAL = Decimal(10)  # quote currency the --trade buy is worth when markets gives no minimum
MAX_SHOWN = 4                    # problems listed per row; the rest are counted
CHECK_TIMEOUT = 8.0              # seconds each check waits for its answer (--timeout): a silent exchange costs
                                 # one such wait, as the checks that need it are then skipped
EXCHANGE_ERROR_CASES = ("bad symbol",)   # error checks whose answer needs the exchange
# An error answer that says the exchange was not reached (ours, and the usual words of others).
NETWORK_ERROR = re.compile(r"cannot reach|can't reach|could not reach|unreachable|no answer within|timed? ?out|"
                           r"connection (?:refused|reset|lost|aborted|closed)|ECONN|getaddrinfo|name or service|"
                           r"name resolution|nodename|dial tcp|TLS error|SSL|certificate verify|network is",
                           re.IGNORECASE)


# Read checks, in the order they run: method, params (built from the --symbol), validator.
def read_checks(symbol):
    return [
        ("ticker", {"symbol": symbol}, ticker_problems),
        ("depth", {"symbol": symbol, "limit": 10}, depth_problems),
        ("trades", {"symbol": symbol}, trades_problems),
        ("records", {"symbol": symbol, "period": RECORDS_PERIOD, "limit": 10}, records_problems),
        ("markets", {}, markets_problems),
        ("tickers", {}, tickers_problems),
        ("accounts", {}, accounts_problems),
        ("assets", {}, accounts_problems),
        ("orders", {"symbol": symbol}, orders_problems),
        ("historyorders", {"symbol": symbol, "since": 0, "limit": 10}, orders_problems),
    ]


def _number_or_none(value):
    """A JSON number or a numeric string as a finite Decimal, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _kind(value):
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number") + ("" if isinstance(value, (dict, list)) else f" {_json_text(value)}")


def _json_text(value, limit=40):
    """A value as the JSON a plugin sent, cut after `limit` characters, for a problem's text."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def answer_problems(method, data):
    """What in one method's `data` breaks the answer contract (ANSWERS): its shape, then each
    structure's fields. The validators below add what the contract's tables cannot say
    (order of rows, buy <= sell, freshness)."""
    shape, structure = ANSWERS[method]
    if shape == "true":
        return [] if data is True else [f"{method} answered {_json_text(data)}, expected true"]
    if shape == "object":
        return structure_problems(data, structure, method)
    if shape == "by symbol":
        if not isinstance(data, dict):
            return [f"{method} is {_kind(data)}, expected an object keyed by symbol"]
        problems = [f"{method}[{key}].symbol {_json_text(item.get('symbol'))} is not its key {key}"
                    for key, item in data.items() if isinstance(item, dict) and item.get("symbol") != key]
        return problems + [problem for key, item in data.items()
                           for problem in structure_problems(item, structure, f"{method}[{key}]")]
    problems = _list_problems(data, method)
    for i, item in enumerate(data if isinstance(data, list) else []):
        if shape == "rows":
            problems += _row_problems(item, structure, f"{method}[{i}]")
        else:
            problems += structure_problems(item, structure, f"{method}[{i}]")
    return problems


def structure_problems(obj, structure, where, swap=None):
    """Missing fields and wrong values of one structure of the contract (TICKER, ORDER, ...).

    SWAP fields are required when `swap` is true; None reads it from the object's own symbol
    (BTC_USDT.swap). On spot such a field may be absent or "".
    """
    required = [name for name, (_, presence, _) in structure.items() if presence == REQUIRED]
    if not isinstance(obj, dict):
        return [f"{where} is {_kind(obj)}, expected an object with {', '.join(required)}"]
    if swap is None:
        swap = str(obj.get("symbol", "")).endswith(".swap")
    problems, wrong = [], []
    for name, (kind, presence, _) in structure.items():
        needed = presence == REQUIRED or (presence == SWAP and swap)
        if name not in obj or (not needed and obj[name] in ("", None)):
            if needed:
                problems.append(f"{where} has no {name}")
            continue
        wrong += _value_problems(obj[name], kind, f"{where}.{name}")
    return problems + wrong


def _row_problems(row, structure, where):
    """One row of a "rows" answer ([time, open, high, low, close, volume]) by its columns."""
    if (not isinstance(row, list) or len(row) < len(structure)
            or any(_number_or_none(value) is None for value in row[:len(structure)])):
        return [f"{where} {_json_text(row)} is not [{', '.join(structure)}] numbers"]
    return structure_problems(dict(zip(structure, row)), structure, where)


def _value_problems(value, kind, where):
    """One field's value against its kind in the contract."""
    if isinstance(kind, tuple):
        allowed = value in kind and not isinstance(value, bool)
        return [] if allowed else [f"{where} {_json_text(value)} is not {_either(kind)}"]
    if kind in ("number", "int", "time", "next time", "interval"):
        number = _number_or_none(value)
        if number is None:
            return [f"{where} {_json_text(value)} is not a number"]
        if kind != "number" and number != number.to_integral_value():
            return [f"{where} {_json_text(value)} is not a whole number"]
        if kind == "interval" and number < 0:
            return [f"{where} {_json_text(value)} is negative"]
        return _time_problems(value, where, ahead=kind == "next time") if "time" in kind else []
    if kind == "levels":
        return _levels_problems(value, where)
    if not isinstance(value, str) or (kind in ("id", "symbol") and not value):
        return [f"{where} {_json_text(value)} is not a {'non-empty ' if kind in ('id', 'symbol') else ''}string"]
    return []


def _levels_problems(levels, where):
    if not isinstance(levels, list):
        return [f"{where} is {_kind(levels)}, expected a list"]
    for i, level in enumerate(levels):
        if not isinstance(level, list) or len(level) < 2 or None in (_number_or_none(level[0]), _number_or_none(level[1])):
            return [f"{where}[{i}] {_json_text(level)} is not [price, amount] numbers"]
    return []


def _either(values):
    """("buy", "sell") -> "buy or sell"; longer tuples -> "one of a, b, c"."""
    words = [str(value) for value in values]
    if len(words) <= 2:
        return " or ".join(words)
    return "one of " + ", ".join(words)


def _list_problems(data, where, allow_empty=True):
    if not isinstance(data, list):
        return [f"{where} is {_kind(data)}, expected a list"]
    return [] if data or allow_empty else [f"{where} is an empty list"]


def _entries(data):
    """The items of a list answer, or the values of one keyed by symbol ({"BTC_USDT": {...}})."""
    return list(data.values()) if isinstance(data, dict) else data


def _time_problems(value, where, ahead=False):
    """A time must be milliseconds (not seconds) and, unless `ahead` is allowed, not in the
    future. A value that is not a number at all is reported by the field check, not here."""
    ms = _number_or_none(value)
    if ms is None:
        return []
    if ms < 10 ** 11:
        return [f"{where} {value} looks like seconds, not milliseconds"]
    if ms >= 10 ** 14:
        return [f"{where} {value} looks like micro- or nanoseconds, not milliseconds"]
    if not ahead and ms - now_ms() > 60_000:
        return [f"{where} {value} is {(ms - now_ms()) / 1000:.0f}s in the future"]
    return []


def _stale_problems(value, where, fresh_ms):
    """A ticker's or a book's time must be recent (within fresh_ms of now)."""
    ms = _number_or_none(value)
    if ms is None or fresh_ms is None or not 10 ** 11 <= ms < 10 ** 14 or now_ms() - ms <= fresh_ms:
        return []
    return [f"{where} {value} is {(now_ms() - ms) / 60_000:.0f} minutes old"]


def _sequence_problems(values, where, ascending, strict=True):
    """The first place a sequence breaks its order, e.g. asks that are not ascending."""
    direction = 1 if ascending else -1
    for i in range(1, len(values)):
        step = (values[i] - values[i - 1]) * direction
        if step < 0 or (strict and step == 0):
            return [f"{where} not {'ascending' if ascending else 'descending'}: "
                    f"{values[i]} after {values[i - 1]} at {i}"]
    return []


def ticker_problems(data, symbol, where="ticker", fresh_ms=FRESH_MS):
    problems = structure_problems(data, TICKER, where)
    if not isinstance(data, dict):
        return problems
    buy, sell = _number_or_none(data.get("buy")), _number_or_none(data.get("sell"))
    if buy and sell and buy > sell:
        problems.append(f"{where}: buy {data['buy']} > sell {data['sell']}")
    if symbol and isinstance(data.get("symbol"), str) and data["symbol"].upper() != symbol.upper():
        problems.append(f"{where}.symbol {data['symbol']!r} is not the requested {symbol}")
    return problems + _stale_problems(data.get("time"), where + ".time", fresh_ms)


def depth_problems(data, symbol):
    problems = answer_problems("depth", data)
    if not isinstance(data, dict):
        return problems
    best = {}
    for side, ascending in (("asks", True), ("bids", False)):
        levels = data.get(side)
        if levels == []:
            problems.append(f"depth.{side} is an empty list")
        if _levels_problems(levels, side):
            best[side] = None
            continue
        prices = [_number_or_none(level[0]) for level in levels]
        problems += _sequence_problems(prices, f"depth.{side}", ascending)
        best[side] = prices[0] if prices else None
    if best["asks"] and best["bids"] and best["bids"] > best["asks"]:
        problems.append(f"depth: best bid {best['bids']} > best ask {best['asks']}")
    return problems + _stale_problems(data.get("time"), "depth.time", FRESH_MS)


def trades_problems(data, symbol):
    if data == []:
        return ["trades is an empty list"]
    problems = answer_problems("trades", data)
    times = [_number_or_none(t.get("time")) for t in data if isinstance(t, dict)] if isinstance(data, list) else []
    if times and None not in times:
        problems += _sequence_problems(times, "trades time (oldest first)", ascending=True, strict=False)
    return problems


def records_problems(data, symbol, period=RECORDS_PERIOD):
    """Rows [time, open, high, low, close, volume], oldest first, one period apart, up to now."""
    problems = _list_problems(data, "records", allow_empty=False)
    if problems:
        return problems
    times = []
    for i, row in enumerate(data):
        row_problems = _row_problems(row, RECORD, f"records[{i}]")
        if row_problems:
            return row_problems
        time_, open_, high, low, close, _ = [_number_or_none(value) for value in row[:len(RECORD)]]
        if high < max(open_, close, low) or low > min(open_, close):
            problems.append(f"records[{i}]: high {row[2]} and low {row[3]} do not contain open and close")
        times.append(time_)
    unordered = _sequence_problems(times, "records time (oldest first)", ascending=True)
    if unordered:
        return problems + unordered
    step = period * 60_000
    gaps = [(i, times[i] - times[i - 1]) for i in range(1, len(times)) if times[i] - times[i - 1] != step]
    if gaps:
        i, gap = gaps[0]
        problems.append(f"records spacing {gap} ms between rows {i - 1} and {i}, expected {step} for period {period}")
    if now_ms() - times[-1] > 2 * step:
        problems.append(f"the newest record ({data[-1][0]}) is more than two periods old")
    return problems


LOOSE_MARKET = {name.replace("_", ""): field for name, field in MARKET.items()}   # TickSize, tick_size -> ticksize


def markets_problems(data, symbol):
    """FMZ has not fixed this shape: a list of markets or an object keyed by symbol are both
    accepted, and field names are matched ignoring case and underscores (tick_size, TickSize)."""
    entries = _entries(data)
    problems = _list_problems(entries, "markets", allow_empty=False)
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        entry = _loose(entry)
        problems += structure_problems(entry, LOOSE_MARKET, f"markets[{i}]", swap=False)
        if isinstance(entry, dict) and not (_number_or_none(entry.get("ticksize")) or 0) > 0:
            problems.append(f"markets[{i}] {entry.get('symbol')}: tick size {entry.get('ticksize')} is not positive")
        if len(problems) > MAX_SHOWN:
            return problems
    if entries and symbol.upper() not in _symbols(entries):
        problems.append(f"markets has no {symbol}")
    return problems


def _loose(entry):
    """A market's field names without case and underscores: TickSize, tick_size -> ticksize."""
    return ({str(key).replace("_", "").lower(): value for key, value in entry.items()}
            if isinstance(entry, dict) else entry)


def _symbols(entries):
    return {str(_loose(entry).get("symbol", "")).upper() for entry in entries if isinstance(entry, dict)}


def tickers_problems(data, symbol):
    entries = _entries(data)
    problems = _list_problems(entries, "tickers", allow_empty=False)
    for i, ticker in enumerate(entries if isinstance(entries, list) else []):
        problems += ticker_problems(ticker, None, f"tickers[{i}]", fresh_ms=None)
        if len(problems) > MAX_SHOWN:
            return problems
    if entries and "." not in symbol and symbol.upper() not in _symbols(entries):
        problems.append(f"tickers has no {symbol}")      # all tickers, unasked, are spot ones
    return problems


def accounts_problems(data, symbol):
    return answer_problems("accounts", data)


def orders_problems(data, symbol):
    """Every order as FMZ's Order: `type` buy or sell only, `offset` on swap orders, `time`."""
    return answer_problems("orders", data)


def order_problems(order, where="order"):
    return structure_problems(order, ORDER, where)


def error_answer_problems(reply):
    """An error check's answer must be HTTP 200, JSON, {"error": "a message"}."""
    if reply.problem:
        return [reply.problem]
    problems = [] if "json" in reply.content_type.lower() else [f"Content-Type is {reply.content_type!r}, not JSON"]
    if "data" in reply.answer:
        return problems + [f"answered data {_json_text(reply.answer['data'])}, expected {{\"error\": ...}}"]
    if not isinstance(reply.answer["error"], str) or not reply.answer["error"].strip():
        problems.append(f"error {_json_text(reply.answer['error'])} is not a message")
    return problems


NO_DATA = object()               # what Checker.data_of returns when a reply carries no data


def has_keys(access_key, secret_key):
    """Both keys, or the Access Key paper (a paper account's Secret Key may be empty)."""
    return bool(access_key and (secret_key or _paper.is_paper(access_key)))


class Checker:
    """Runs the checks against one plugin URL and prints a row as each one finishes."""

    def __init__(self, url, symbol, access_key="", secret_key="", timeout=PLUGIN_TIMEOUT, out=None):
        self.url, self.symbol, self.timeout = url, symbol, timeout
        self.keys = {"access_key": access_key, "secret_key": secret_key}
        self.out = out or sys.stdout
        self.rows = []
        self.exchange = exchange_of_path(urllib.parse.urlsplit(url).path) or "the exchange"
        self.exchange_down = False      # every read answers the same network error: skip what needs it

    @property
    def has_keys(self):
        return has_keys(self.keys["access_key"], self.keys["secret_key"])

    @property
    def failed(self):
        return any(outcome == FAIL for _, outcome, _ in self.rows)

    def send(self, body, deliberate=False):
        """POST `body`; `deliberate`: a bad request sent on purpose, marked so (CHECK_HEADER) that
        our plugin's status counts it as a bad request, never as its exchange failing."""
        headers = {CHECK_HEADER: "deliberate bad request"} if deliberate else None
        return post_to_plugin(self.url, body, timeout=self.timeout, headers=headers)

    def request(self, method, params=None):
        return self.send(json.dumps(envelope_for(method, params or {}, **self.keys)).encode())

    def row(self, name, outcome, detail="", ms=None):
        """Print one result row; the keys are blanked from anything the plugin said."""
        detail = redact(detail, self.keys)
        self.rows.append((name, outcome, detail))
        colour = {PASS: GREEN, FAIL: RED, SKIP: YELLOW}[outcome]
        latency = f"{ms:6.0f} ms" if ms is not None else " " * 9
        print(f"{name:<22} {paint(f'{outcome:<4}', colour, self.out)} {latency}  {detail}".rstrip(),
              file=self.out, flush=True)

    def verdict(self, name, problems, ms, passed=""):
        """A FAIL row listing the first problems, or a pass row with a short summary."""
        if not problems:
            return self.row(name, PASS, passed, ms)
        more = f" (+{len(problems) - MAX_SHOWN} more)" if len(problems) > MAX_SHOWN else ""
        self.row(name, FAIL, "; ".join(problems[:MAX_SHOWN]) + more, ms)

    def data_of(self, name, reply):
        """The data a reply carries, or NO_DATA after a FAIL row saying why there is none."""
        if reply.problem or "error" in reply.answer:
            self.row(name, FAIL, reply.problem or f"error: {reply.answer['error']}", reply.ms)
            return NO_DATA
        return reply.answer["data"]

    # ------------------------------------------------------------------ read checks
    def read(self, method, params, validate, reply=None):
        if method in PRIVATE_METHODS and not self.has_keys:
            return self.row(method, SKIP, "no keys: give --access-key/--secret-key or FMZ_ACCESS_KEY/FMZ_SECRET_KEY")
        reply = reply or self.request(method, params)
        if method in OPTIONAL_METHODS and reply.answer and DECLINED.search(str(reply.answer.get("error", ""))):
            return self.row(method, SKIP, f"error: {reply.answer['error']}", reply.ms)
        data = self.data_of(method, reply)
        if data is NO_DATA:
            return reply
        problems = validate(data, self.symbol)
        if "raw" not in reply.answer:
            problems.append("no raw (the exchange's reply, which a strategy reads as Info)")
        self.verdict(method, problems, reply.ms, _summary(data))
        return reply

    # ------------------------------------------------------------------ error checks
    def error_cases(self):
        """Bad requests, each of which must be answered {"error"}: name -> body."""
        envelope = lambda method, params: envelope_for(method, params, **self.keys)
        no_method = envelope("ticker", {"symbol": self.symbol})
        del no_method["method"]
        return {
            "malformed body": b'{"access_key": "", "method": "ticker", "params": {"symbol": ',
            "missing method": json.dumps(no_method).encode(),
            "missing symbol": json.dumps(envelope("ticker", {})).encode(),
            "unknown method": json.dumps(envelope("nosuchmethod", {"symbol": self.symbol})).encode(),
            "bad symbol": json.dumps(envelope("ticker", {"symbol": "NOSUCHCOIN_USDT"})).encode(),
        }

    def error_check(self, name, body):
        if self.exchange_down and name in EXCHANGE_ERROR_CASES:
            return None
        reply = self.send(body, deliberate=True)
        problems = error_answer_problems(reply)
        if self.exchange_down:          # still serving? asked with a request that needs no exchange
            after = self.request("ticker", {})
            if after.problem or "error" not in after.answer:
                problems.append(f"a request right after got: {after.problem or _json_text(after.answer, 100)}")
        else:
            after = self.request("ticker", {"symbol": self.symbol})
            if after.problem or "data" not in after.answer:
                problems.append(f"a valid ticker right after got: {after.problem or after.answer.get('error')}")
        passed = "" if problems else f"error: {reply.answer['error']}"[:100]
        self.verdict("error: " + name, problems, reply.ms, passed)

    # ------------------------------------------------------------------ is the plugin there?
    def contact_problem(self):
        """Why nothing can be checked at the URL, in one line, or None: nothing answers there, it
        speaks plain HTTP to an https:// URL, or it is fmz-plugin's status page (which names the
        port the protocol is served at). Asked with a body that is not JSON: no exchange call."""
        reply = self.send(b"{")
        if reply.unreachable and reply.problem.startswith("the TLS"):
            return f"{self.url}: {reply.problem}"
        if reply.unreachable:
            return f"nothing answers at {self.url}: is the plugin running?"
        served = re.search(r"status page only; the General Protocol is served at (\S+)/<Exchange>",
                           str((reply.answer or {}).get("error", "")))
        if served:
            return (f"{self.url} is fmz-plugin's status page, not the plugin: check "
                    f"{served.group(1)}/{self.exchange}")
        return None

    # ------------------------------------------------------------------ is the exchange there?
    def probe_exchange(self):
        """The first ticker's reply, after deciding whether the exchange behind the plugin can be
        reached. It cannot when the ticker and a depth both answer a network error, or when the
        ticker gets no answer in time while the plugin answers a bad request at once: then one
        FAIL row says so, and the checks that need the exchange are skipped."""
        reply = self.request("ticker", {"symbol": self.symbol})
        cause = self._network_cause(reply, "ticker")
        if cause is None:
            return reply
        if reply.timed_out:
            alive = self.send(b"{")
            if alive.problem or "error" not in alive.answer:
                return reply             # the plugin itself is silent: the read checks say so
        else:
            second = self.request("depth", {"symbol": self.symbol, "limit": 10})
            if self._network_cause(second, "depth") is None:
                return reply
        self.exchange_down = True
        self.row("exchange", FAIL, f"the plugin answers, but {self.exchange} cannot be reached: {cause}", reply.ms)
        return None

    def _network_cause(self, reply, method):
        if reply.timed_out:
            return f"no answer to {method} within {self.timeout:g}s"
        error = reply.answer.get("error") if reply.answer else None
        return error if isinstance(error, str) and NETWORK_ERROR.search(error) else None

    # ------------------------------------------------------------------ --trade
    def plan_order(self):
        """(price, amount) of a minimum-size limit buy 20% under the best bid, rounded to the
        market's tick and lot when the plugin answers markets, else to the bid's own digits.
        The minimum is the larger of min_qty and min_notional (over the contract value, if any)."""
        reply = self.request("ticker", {"symbol": self.symbol})
        data = reply.answer.get("data") if reply.answer else None
        bid = _number_or_none(data.get("buy")) if isinstance(data, dict) else None
        if not bid or bid <= 0:
            raise PluginError(f"no best bid from ticker: {reply.problem or _json_text(reply.answer, 100)}")
        spec = self.market_spec()
        tick = spec.get("ticksize") or Decimal(1).scaleb(bid.as_tuple().exponent)
        price = round_down(bid * TRADE_DISCOUNT, tick)
        if price <= 0:
            raise PluginError(f"80% of the best bid {plain(bid)} rounds to 0 at tick {plain(tick)}")
        minimum, notional = spec.get("minqty", 0), spec.get("minnotional", 0)
        if not minimum and not notional:
            notional = FALLBACK_NOTIONAL
        lot = spec.get("amountsize") or Decimal("0.00000001")
        amount = max(minimum, notional / (price * spec.get("ctval", 1)))
        return price, (amount / lot).to_integral_value(ROUND_UP) * lot

    def market_spec(self):
        """This symbol's market as {field name without underscores: positive Decimal}, or {}."""
        reply = self.request("markets")
        data = reply.answer.get("data") if reply.answer else None
        for entry in _entries(data) if isinstance(data, (dict, list)) else []:
            if isinstance(entry, dict) and str(entry.get("symbol", "")).upper() == self.symbol.upper():
                numbers = {key: _number_or_none(value) for key, value in _loose(entry).items()}
                return {key: number for key, number in numbers.items() if number is not None and number > 0}
        return {}

    def trade(self, price, amount):
        """Place, find with order and orders, cancel, check it is gone. Whatever fails, an order
        that was placed is canceled before this returns (try/finally)."""
        order_id = None
        try:
            reply = self.request("trade", {"symbol": self.symbol, "type": "buy", "price": plain(price),
                                           "amount": plain(amount)})
            if reply.problem or "error" in reply.answer:
                # no answer, or an error, which may mean "outcome unknown" (an exchange's timeout
                # code, a lost answer the plugin could not resolve): the order may have been placed
                # anyway, so it is looked for, and canceled below if it is there
                order_id = self.find_open_order(price)
            data = self.data_of("trade", reply)
            if data is NO_DATA:
                if order_id is not None and not reply.problem:
                    self.row("trade: error, yet placed", FAIL, f"trade answered an error, but order {order_id} "
                             f"is open: a robot reading that error may place it again")
                return
            order_id = data.get("id") if isinstance(data, dict) else None
            problems = answer_problems("trade", data)
            self.verdict("trade", problems, reply.ms, f"buy {plain(amount)} at {plain(price)}: id {order_id}")
            if order_id is None:
                order_id = self.find_open_order(price)
                return
            self.trade_lookups(order_id, price)
            if self.trade_cancel(order_id) and self.trade_gone(order_id):
                order_id = None
        finally:
            if order_id is not None:
                self.cancel_leftover(order_id)

    def trade_lookups(self, order_id, price):
        reply = self.request("order", {"id": order_id, "symbol": self.symbol})
        order = self.data_of("trade: order", reply)
        if order is not NO_DATA:
            problems = order_problems(order) or _same_order_problems(order, order_id, price)
            self.verdict("trade: order", problems, reply.ms, f"status {order.get('status')}" if not problems else "")
        reply = self.request("orders", {"symbol": self.symbol})
        if self.data_of("trade: orders", reply) is not NO_DATA:
            problems = [] if _lists(reply, order_id) else [f"orders does not list {order_id}"]
            self.verdict("trade: orders", problems, reply.ms, "lists the order")

    def trade_cancel(self, order_id):
        reply = self.request("cancel", {"id": order_id, "symbol": self.symbol})
        data = self.data_of("trade: cancel", reply)
        if data is NO_DATA:
            return False
        detail = "true" if data is True else f"answered {_json_text(data)} (protocol: true)"
        self.row("trade: cancel", PASS, detail, reply.ms)
        return True

    def trade_gone(self, order_id):
        """After cancel, order answers a closed status and orders no longer lists it."""
        started = time.monotonic()
        for attempt in range(3):           # some exchanges take a moment to move a canceled order
            if attempt:
                time.sleep(1)
            reply = self.request("order", {"id": order_id, "symbol": self.symbol})
            data = reply.answer.get("data") if reply.answer else None
            status = data.get("status") if isinstance(data, dict) else None
            listed = _lists(self.request("orders", {"symbol": self.symbol}), order_id)
            if status in CLOSED_STATUSES and not listed:
                self.row("trade: gone", PASS, f"status {status}, no longer in orders", _ms_since(started))
                return True
        where = "still listed by orders" if listed else f"order answers status {status!r}"
        self.row("trade: gone", FAIL, f"after cancel the order is {where}", _ms_since(started))
        return False

    def find_open_order(self, price):
        """After a trade whose answer was lost or an error: our open buy at exactly this price, if any."""
        reply = self.request("orders", {"symbol": self.symbol})
        data = reply.answer.get("data") if reply.answer else None
        for order in data if isinstance(data, list) else []:
            if isinstance(order, dict) and _number_or_none(order.get("price")) == price and order.get("type") == "buy":
                return order.get("id")
        return None

    def cancel_leftover(self, order_id):
        """The finally of --trade: cancel the order, or prove orders no longer lists it, or say loudly."""
        reply = self.request("cancel", {"id": order_id, "symbol": self.symbol})
        if reply.answer and "data" in reply.answer:
            return self.row("trade: cleanup", PASS, f"canceled {order_id}", reply.ms)
        listing = self.request("orders", {"symbol": self.symbol})
        if listing.answer and "data" in listing.answer and not _lists(listing, order_id):
            return self.row("trade: cleanup", PASS, f"{order_id} is no longer open", reply.ms)
        self.row("trade: cleanup", FAIL, f"ORDER {order_id} MAY STILL BE OPEN, cancel it by hand: "
                 f"{reply.problem or reply.answer.get('error')}", reply.ms)


def _same_order_problems(order, order_id, price):
    problems = [] if order["id"] == order_id else [f"order.id {order['id']!r} is not the id trade gave"]
    if order["status"] not in OPEN_STATUSES:
        problems.append(f"order.status {order['status']!r}: the order should still be open")
    if _number_or_none(order["price"]) != price:
        problems.append(f"order.price {order['price']} is not the price sent, {plain(price)}")
    return problems


def _lists(reply, order_id):
    data = reply.answer.get("data") if reply.answer else None
    return isinstance(data, list) and any(isinstance(o, dict) and o.get("id") == order_id for o in data)


def _summary(data):
    if isinstance(data, list):
        return f"{len(data)} rows"
    if isinstance(data, dict) and "asks" in data and "bids" in data:
        return f"{len(data['asks'])} asks, {len(data['bids'])} bids"
    if isinstance(data, dict) and "buy" in data:
        return f"buy {data['buy']}, sell {data.get('sell')}"
    return f"{len(data)} entries" if isinstance(data, dict) else ""


def parse_check_args(argv):
    parser = FlagParser(
        prog="fmz_plugin.py check", description="Grade a General Protocol plugin (any language) against "
        "the protocol: one row per check. Exit status 0 only when every check passes.")
    parser.add_argument("url", help="the service address as pasted into FMZ, e.g. http://127.0.0.1:6666/OKX")
    parser.add_argument("--symbol", default="BTC_USDT", help="symbol to check with (default BTC_USDT)")
    parser.add_argument("--trade", action="store_true",
                        help="also place one limit buy 20%% under the best bid, minimum size, and cancel it")
    parser.add_argument("--yes", action="store_true", help="with --trade: do not ask for confirmation")
    parser.add_argument("--access-key", default=os.environ.get("FMZ_ACCESS_KEY", ""),
                        help="access key for private checks (default: environment FMZ_ACCESS_KEY)")
    parser.add_argument("--secret-key", default=os.environ.get("FMZ_SECRET_KEY", ""),
                        help="secret key for private checks (default: environment FMZ_SECRET_KEY)")
    parser.add_argument("--timeout", type=seconds_above_zero, default=CHECK_TIMEOUT,
                        help=f"seconds to wait for each answer (default {CHECK_TIMEOUT:g})")
    parser.add_argument("--paper", action="store_true",
                        help="check a paper account (Access Key paper, Secret Key --secret-key or the default "
                             "balances): the private checks and --trade need no keys")
    args = parser.parse_args(argv)
    if args.paper:
        args.access_key = _paper.ACCESS_KEY
    parts = urllib.parse.urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") == "":
        parser.error(f"URL must include the exchange path, e.g. http://127.0.0.1:6666/OKX; got {args.url!r}")
    if args.trade and not has_keys(args.access_key, args.secret_key):
        parser.error("--trade needs keys: --access-key/--secret-key or FMZ_ACCESS_KEY/FMZ_SECRET_KEY, "
                     "or --paper for a paper account")
    return args


def check_command(argv):
    args = parse_check_args(argv)
    checker = Checker(args.url, args.symbol, args.access_key, args.secret_key, args.timeout)
    problem = checker.contact_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    print(f"Checking {args.url} with {args.symbol}", flush=True)
    first = checker.probe_exchange()
    if checker.exchange_down:
        needing = [method for method, _, _ in read_checks(args.symbol)] + ["error: " + name for name in EXCHANGE_ERROR_CASES]
        checker.row("exchange checks", SKIP, f"{len(needing)} skipped, they need {checker.exchange}: {', '.join(needing)}")
    for method, params, validate in [] if checker.exchange_down else read_checks(args.symbol):
        reply = checker.read(method, params, validate, first if method == "ticker" else None)
        if reply and reply.unreachable:
            print(f"nothing answers at {args.url}: is the plugin running?", file=sys.stderr)
            return 2
    for name, body in checker.error_cases().items():
        checker.error_check(name, body)
    if args.trade and not checker.exchange_down:
        trade_check(checker, args.yes)
    counts = {outcome: sum(row[1] == outcome for row in checker.rows) for outcome in (PASS, FAIL, SKIP)}
    print(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return 1 if checker.failed else 0


def trade_check(checker, confirmed):
    try:
        price, amount = checker.plan_order()
    except PluginError as error:
        return checker.row("trade", FAIL, f"cannot plan the test order: {error}")
    if not confirmed:
        kind = "a PAPER order" if _paper.is_paper(checker.keys["access_key"]) else "a real order"
        print(f"--trade places {kind} on {checker.url}: buy {plain(amount)} {checker.symbol} "
              f"at {plain(price)} (limit), then cancels it.")
        try:
            confirmed = input("Type yes to place it: ").strip().lower() == "yes"
        except EOFError:
            confirmed = False
        if not sys.stdin.isatty():         # no typed newline was echoed after the prompt
            print()
    if not confirmed:
        return checker.row("trade", SKIP, "not confirmed")
    checker.trade(price, amount)


# -- Tools: bundle, this program as one file -------------------------------------------------------
# `python fmz_plugin.py bundle -o dist/fmz_plugin.py` writes this program and every project
# module it imports as ONE plain source file: each module's text, in dependency order, is run
# as that module and registered in sys.modules under its own name, so every import statement
# works unchanged and two modules may both define `ticker`; this file's own text comes last,
# verbatim. The modules are found by reading the import statements (exchanges/__init__.py
# decides which exchanges exist), never from a list kept here. Same sources, same bytes.

REGISTRY = "exchanges"                 # the package whose EXCHANGES dict names the exchanges

BUNDLE_HEAD = '''#!python3
# fmz-plugin {version} in one file, serving {names}.
# (The line above is how FMZ picks the interpreter of a pasted Python strategy; run the file
# yourself with `python3 fmz_plugin.py`.)
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
    exec(_bundle_code(path, source), module.__dict__)


def _bundle_code(path, source):
    """The module compiled: read from __pycache__ beside this file when this very text was
    compiled there before (the name carries its SHA-256 and the interpreter's tag), else compiled
    now and kept there, as Python keeps the repository's modules (and not when it writes no
    bytecode: PYTHONDONTWRITEBYTECODE). Compiling every module on every start cost ~45 ms."""
    import hashlib
    import importlib.util
    import marshal
    import os
    here = globals().get("__file__")
    if not here:                      # pasted into FMZ as a strategy: no file to keep a cache beside
        return compile(source, path, "exec")
    folder = os.path.join(os.path.dirname(os.path.abspath(here)), "__pycache__")
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    cached = os.path.join(folder, f"{{os.path.basename(here)}}.{{path.replace('/', '.')}}.{{digest}}."
                                  f"{{_bundle_sys.implementation.cache_tag}}.pyc")
    magic = importlib.util.MAGIC_NUMBER
    try:
        with open(cached, "rb") as file:
            kept = file.read()        # then loads: marshal.load reads a file piece by piece, slowly
        if kept.startswith(magic):
            return marshal.loads(kept[len(magic):])
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = compile(source, path, "exec")
    if not _bundle_sys.dont_write_bytecode:
        try:
            os.makedirs(folder, exist_ok=True)
            with open(f"{{cached}}.{{os.getpid()}}", "wb") as file:
                file.write(magic + marshal.dumps(code))
            os.replace(f"{{cached}}.{{os.getpid()}}", cached)
        except OSError:
            pass
    return code


'''


def bundle(argv):
    """The `bundle` sub-command: write the one-file plugin."""
    parser = FlagParser(prog="fmz_plugin.py bundle",
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
    lines = text.count("\n")
    print(f"wrote {args.output} ({lines} lines) serving {', '.join(names)}")


def bundle_text(root, chosen=()):
    """The one-file program: head, each project module in dependency order, then this file.

    `chosen` names the exchanges to keep (EXCHANGES keys); empty keeps every one. Returns the
    text and the NAMEs of the exchanges it serves.
    """
    texts = {}
    registry_text, names = _registry_text(_read(root, REGISTRY + "/__init__.py"), chosen)
    texts[REGISTRY] = registry_text
    core_path = os.path.basename(os.path.abspath(globals().get("__file__", "")))
    core = _read(root, core_path)
    order = []
    _visit(root, core, "", texts, order, set())
    packages = sorted({name.rsplit(".", 1)[0] for name in order if "." in name}
                      | {name for name in order if _path_of(root, name).endswith("__init__.py")})
    served = [EXCHANGES[key].NAME if key in EXCHANGES else key for key in names]
    parts = [BUNDLE_HEAD.format(version=__version__, names=", ".join(served))]
    parts += [f"_bundle_package({name!r})\n" for name in packages]
    for name in order:
        path = _path_of(root, name)
        parts.append(f"\n\n# {'-' * 76} {path}\n"
                     f"_bundle_module({name!r}, {path!r}, {_raw_literal(texts[name])})\n")
    parts.append(f"\n\n# {'-' * 76} {core_path}, verbatim\n")
    return "".join(parts) + core, served


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
    """The project modules a module's import statements name, in the order they appear.

    `from exchanges import okx` needs exchanges/okx.py only: the bundle registers a package
    before its modules and runs the package's own file when it is imported for a name of its own
    (`from exchanges import EXCHANGES`).
    """
    found = []
    nodes = [node for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.Import, ast.ImportFrom))]
    for node in sorted(nodes, key=lambda node: (node.lineno, node.col_offset)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise PluginError(f"{name}: use absolute imports, the bundle cannot place relative ones")
            modules = [f"{node.module}.{alias.name}" for alias in node.names]
            candidates = [module for module in modules if _path_of(root, module)]
            if len(candidates) < len(modules):        # a name from the package itself, not a module
                candidates.append(node.module)
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


def _raw_literal(text):
    """A literal that evaluates to newline + `text` and reads as the file itself: r'''...'''.

    A raw literal cannot hold ''' nor end in a quote or backslash, so the text is cut at each
    ''' (written as "'''" between the pieces), and a piece ending in a quote or backslash is
    written as an ordinary escaped literal instead.
    """
    quotes = "'''"
    pieces = ("\n" + text).split(quotes)
    return f' "{quotes}" '.join(repr(piece) if piece.endswith(("\'", "\\")) else f"r{quotes}{piece}{quotes}"
                                for piece in pieces)


# -- Tools: paper, the paper accounts' file -------------------------------------------------------
# `paper list` shows every paper account in the --paper-db file; `paper reset NAME` forgets one
# (NAME is its Secret Key as typed into FMZ), so its next call starts it afresh from its
# starting balances. A running plugin may keep serving: the file is shared safely.

def paper_command(argv):
    parser = FlagParser(prog="fmz_plugin.py paper",
                        description="Paper accounts (Access Key paper): list them or start one afresh.")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every paper account in the file")
    reset = actions.add_parser("reset", help="start an account afresh from its starting balances")
    reset.add_argument("name", help="the account's Secret Key as typed into FMZ, e.g. USDT=10000,BTC=0.1 "
                                    "('' for the default account)")
    reset.add_argument("--exchange", help="only on this exchange, e.g. OKX (default: on every exchange)")
    for action in (listing, reset):
        add_paper_flags(action, fees=False)
    args = parser.parse_args(argv)
    if getattr(args, "exchange", None) and args.exchange.lower() not in EXCHANGES:
        parser.error(f"--exchange {args.exchange}: no such exchange here; the plugin serves "
                     f"{', '.join(module.NAME for module in EXCHANGES.values())}")
    if not os.path.exists(args.paper_db):          # never created by looking
        print(f"no paper account: {args.paper_db} does not exist (--paper-db; the plugin creates it on the first "
              "call of a paper account)")
        return 0
    ledger = _paper.Ledger(args.paper_db)
    try:
        if args.action == "list":
            rows = ledger.accounts()
            print(table(["exchange", "account", "open_orders", "positions", "created", "balances (free, frozen)"],
                        [[r["exchange"], r["account"] or "(default)", r["open_orders"], r["positions"],
                          _utc(r["created"])[:16] + " UTC", _balances_text(r["balances"])]
                         for r in rows]) if rows else f"no paper account in {args.paper_db}")
            return 0
        removed = ledger.reset(args.name.strip(), args.exchange)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    where = f" on {args.exchange}" if args.exchange else ""
    print(f"paper account {_paper.shown_name(args.name.strip())}{where}: "
          + (f"reset ({removed} removed); its next call starts it afresh" if removed else "none found, nothing to reset"))
    return 0


def _balances_text(balances):
    """`USDT 99,000 (1,000 frozen), BTC 1`: every currency held, frozen only where some is."""
    shown = []
    for currency, (free, frozen) in balances.items():
        if free or frozen:
            shown.append(f"{currency} {figure(free)}" + (f" ({figure(frozen)} frozen)" if frozen else ""))
    return ", ".join(shown) or "nothing"


# -- Tools: halt and resume, the kill switch from a terminal ----------------------------------------
# `halt` creates the file the risk guard watches (exchanges/_risk.py), `resume` removes it: while
# it exists, a running plugin refuses every new order on every exchange. Both find the file as
# the server does: --halt-file, else beside --risk, else in the current directory.

PLUGIN_URL = "http://127.0.0.1:6666"     # the running plugin halt and resume ask which file it watches
SWITCH_TIMEOUT = 3.0                     # seconds they wait for its answer


def parse_switch_args(command, argv):
    parser = argparse.ArgumentParser(
        prog=f"fmz_plugin.py {command}", description="Halt trading: every new order on every exchange is "
        "refused, cancels go through." if command == "halt" else "Resume trading after halt.")
    add_risk_args(parser)
    parser.add_argument("--plugin", metavar="URL", default=PLUGIN_URL,
                        help=f"the running plugin on this machine, asked which halt file it watches (default "
                             f"{PLUGIN_URL}); without an answer: --halt-file, else beside --risk, else the current "
                             "directory")
    if command == "halt":
        parser.add_argument("reason", nargs="*", help="why, written into the halt file")
    return parser.parse_args(argv)


def halt_command(argv):
    args = parse_switch_args("halt", argv)
    halt_file, where = switch_file(args)
    print(halt(halt_file, " ".join(args.reason), where))
    return 0


def resume_command(argv):
    args = parse_switch_args("resume", argv)
    halt_file, where = switch_file(args)
    print(resume(halt_file, where))
    return 0


def switch_file(args):
    """(the halt file to act on, how it was found): --halt-file as given; else the one the running
    plugin at --plugin watches, asked on its status address; else, when none answers, beside
    --risk or in the current directory, which a plugin started elsewhere does not watch."""
    if args.halt_file:
        return args.halt_file, ""
    watched, why = watched_halt_file(args.plugin)
    if watched:
        return watched, f" (the file the plugin at {args.plugin} watches)"
    fallback = default_halt_file(args.risk)
    print(f"no plugin answered at {args.plugin} ({why}): acting on {fallback}, beside --risk or in the current "
          "directory; a plugin started elsewhere watches its own file (give --plugin URL or --halt-file)")
    return fallback, ""


def watched_halt_file(url):
    """(the halt file the plugin at `url`, on this machine, watches, ""), or (None, why not)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None, f"{url} is not on this machine (127.0.0.1, localhost or ::1)"
    report, problem = fetch_status(f"{parts.scheme}://{parts.netloc}/status", SWITCH_TIMEOUT)
    if problem:
        return None, problem
    risk = report.get("risk") or {}
    if not isinstance(risk.get("halt_file"), str):
        return None, "it has no kill switch"
    return risk["halt_file"], ""


# -- Sub-commands ----------------------------------------------------------------------------------

# `python fmz_plugin.py [serve] --port 6666`, or one of these sub-commands.
COMMANDS = {
    "serve": serve,
    "call": call_command,
    "check": check_command,
    "status": status_command,
    "bundle": bundle,
    "paper": paper_command,
    "halt": halt_command,
    "resume": resume_command,
}


def run(argv):
    if not argv or argv[0] not in COMMANDS:
        return serve(argv)
    try:
        status = COMMANDS[argv[0]](argv[1:])
        sys.stdout.flush()                 # a reader gone shows here, not in Python's shutdown
        return status
    except BrokenPipeError:
        # `status | head`: the reader has all it wanted. Nothing more is written, and no traceback
        # (Python's "Note on SIGPIPE": stdout now goes nowhere, so its last flush cannot fail).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__" and "LogStatus" not in globals():     # in FMZ, FMZ calls main()
    sys.exit(run(sys.argv[1:]))
