"""Coinbase Advanced Trade API v3 (spot only): https://docs.cdp.coinbase.com/advanced-trade/docs/welcome

Keys, as Coinbase's developer platform (CDP) issues them:
    access_key  the API key name, `organizations/{org_id}/apiKeys/{key_id}` (an Ed25519 key's id
                alone is also taken: it is what CDP names those keys by);
    secret_key  the private key: an EC P-256 key in PEM (SEC1 "BEGIN EC PRIVATE KEY" or PKCS#8
                "BEGIN PRIVATE KEY"), with real newlines or with literal \\n as in the downloaded
                JSON, so that it fits FMZ's one-line field; or an Ed25519 key as CDP gives it,
                base64 of 64 bytes (the seed, then the public key).

Signing (https://docs.cdp.coinbase.com/advanced-trade/docs/rest-api-auth): each private request
carries `Authorization: Bearer <JWT>`, a JWT signed with the private key (ES256 for an EC key, the
raw 64-byte r||s form of JWS, not DER; EdDSA for an Ed25519 key), made fresh for every request:
header {alg, kid: the key name, nonce: random hex, typ: "JWT"}, claims {sub: the key name,
iss: "cdp", nbf: now (s), exp: nbf + 120, uri: "METHOD api.coinbase.com/api/v3/brokerage/..."},
the uri without the query string. The uri always names api.coinbase.com, even when
`--base-url Coinbase=URL` moves the host: a proxy in front relays to Coinbase, which checks the
uri against its own host (CCXT writes the request's host; through a proxy that JWT is refused).
The signature itself is exchanges/_ecc.py, in pure Python (a few ms; README "Coinbase").

A refused JWT (bad key, bad signature, or a clock off by more than the token allows) is HTTP 401
with the text body "Unauthorized": it is this module's one clock error, so the clock is resynced
from GET /time and the request sent once more (it was refused, so this is safe for orders too); a
wrong key thus costs one clock read and a second refusal before its answer.

Replies: a success is the endpoint's object ({"products": [...]}, {"order": {...}}); a refusal
{"error": "NOT_FOUND", "message": "...", "error_details": "..."} with an HTTP 4xx/5xx status (CCXT
recorded {"error": "unknown", ...} for an unknown order id), or the older
{"errors": [{"id": "rate_limit_exceeded", "message": ...}]} that Coinbase documents for HTTP 429. Orders
and cancels answer HTTP 200 whether or not they were taken: POST /orders says
{"success": false, "error_response": {"error": "INSUFFICIENT_FUND", "message": ...,
"preview_failure_reason": ...}, "failure_reason": ...} and
batch_cancel {"results": [{"success": false, "failure_reason": "UNKNOWN_CANCEL_ORDER", ...}]}:
check() reads those as refusals too, naming the most specific code.

Symbols: BTC_USD is product BTC-USD, ETH_USDC is ETH-USDC. Coinbase Advanced Trade serves spot
here: a `.swap` symbol is refused, and positions, margin_level and fundings are not served. Order
ids given to FMZ are Coinbase's own order ids (UUIDs): order and cancel need nothing else.

Facts this module relies on, and where they come from:
- Market data comes from the public endpoints under /api/v3/brokerage/market/ (no key needed):
  products (product_type SPOT; status "online"; trading_disabled / is_disabled / cancel_only),
  product_book ({"pricebook": {bids, asks: [{price, size}], time}}), products/{id}/ticker
  ({"trades": newest first, "best_bid", "best_ask"}), products/{id}/candles (granularity enum,
  start/end in UNIX seconds, at most 350 candles a request (asked 300 at a time, as CCXT does against
  the live API), newest first, `start` as a string; whether a candle opening exactly at `end` is
  included is UNVERIFIED: rows are de-duplicated either way).
- Product fields: quote_increment, base_increment, price_increment (the price step where given;
  quote_increment otherwise, as CCXT reads it), base_min_size, base_max_size, quote_min_size,
  quote_max_size, volume_24h, price, price_percentage_change_24h.
- Orders (POST /orders): `client_order_id` is required; Coinbase documents that an id already
  used does not make a second order: the order that has it is answered instead. That is this
  module's exactly-once proof (as Alpaca's never-reused ids are): an unanswered order is looked
  up by its client id and, if absent, sent again at once with the same id (_orders.place_once
  ids_never_reused). That a finished order's id is refused as an open one's is the documented
  rule, UNVERIFIED against a live account. limit_limit_gtc {base_size, limit_price, post_only}; market_market_ioc
  {quote_size} for a market buy (quote currency, a multiple of quote_increment) or {base_size}
  for a market sell.
- Order status: PENDING, OPEN, FILLED, CANCELLED, EXPIRED, FAILED, UNKNOWN_ORDER_STATUS, QUEUED,
  CANCEL_QUEUED, EDIT_QUEUED (CCXT's parse_order_status and the SDK's enums). An OPEN order with
  a fill is partial-filled.
- Lists (GET /orders/historical/batch, GET /accounts) page with `cursor` and `has_next`; accounts
  default to 49 a page (at most 250); orders come newest first.
- Rate limits (docs "Advanced Trade API rate limits"): 30 requests a second per user on private
  endpoints, 10 a second per IP on public ones; HTTP 429 beyond.
"""
import calendar
import functools
import json
import re
import secrets
import time
import uuid
from collections import namedtuple
from decimal import Decimal

from exchanges import _ecc
from exchanges._kit import (PluginError, SingleFlight, Symbol, book_levels, candle_rows, market, markets_answer,
                            float_or_zero, number_or_zero, one_or_all, signed_io)
from exchanges._orders import cancel_once, order_size, paid_in, place_once
from exchanges._throttle import Limit

NAME = "Coinbase"
BASE_URL = "https://api.coinbase.com"       # paths below start with /api/v3/brokerage
HOSTS = {}
JWT_HOST = "api.coinbase.com"               # the host a JWT's uri names (see the docstring)
CLOCK_ERRORS = ("401",)                     # a JWT refused: maybe its nbf/exp against Coinbase's clock
RATE_LIMIT_ERRORS = ("429", "rate_limit_exceeded", "RESOURCE_EXHAUSTED", "resource_exhausted")
AMBIGUOUS_ERRORS = ()                       # a 5xx is ambiguous anyway; Coinbase names no other
POST_PARAMS = "json"
API = "/api/v3/brokerage"
JWT_LIFETIME = 120                          # seconds from nbf to exp, as Coinbase's examples sign

# -- Rate limits -----------------------------------------------------------------------------------
# 30 requests a second per user (API key) on private endpoints, 10 a second per IP on public ones.
PRIVATE = Limit(30, 1.0, per="key", pool="private requests")
PUBLIC = Limit(10, 1.0, per="ip", pool="public requests")
RATE_LIMITS = {
    f"GET {API}/time": PUBLIC,
    f"GET {API}/market/products": PUBLIC,
    f"GET {API}/market/products/{{product}}": PUBLIC,
    f"GET {API}/market/products/{{product}}/ticker": PUBLIC,
    f"GET {API}/market/products/{{product}}/candles": PUBLIC,
    f"GET {API}/market/product_book": PUBLIC,
    f"GET {API}/accounts": PRIVATE,
    f"POST {API}/orders": PRIVATE,
    f"POST {API}/orders/batch_cancel": PRIVATE,
    f"GET {API}/orders/historical/batch": PRIVATE,
    f"GET {API}/orders/historical/{{order_id}}": PRIVATE,
}

DEPTH_DEFAULT, DEPTH_MAX = 20, 500
TRADES_LIMIT = 100
CANDLES_PAGE = 300                          # Coinbase documents 350 a request; CCXT, used live, asks 300
ACCOUNTS_PAGE = 250
ORDERS_PAGE = 1000
HISTORY_DEFAULT = 100
HISTORY_PAGES = 5                           # pages of 1000 historyorders reads at most
LOOKUP_PAGE = 100                           # the newest orders a lost order is looked for among
DAY_STATS_TTL = 30.0                        # seconds a product's 24 h volume, open, high and low are kept
# (base URL, product) -> the replies giving a ticker's 24 h figures, which Coinbase's ticker lacks:
# a robot polling a ticker then costs one call, not three
DAY_STATS = SingleFlight(keep=True, ttl=DAY_STATS_TTL)

# Paper trading's maker and taker rates, {kind: (maker, taker)}: Coinbase's Advanced 1 tier (under
# 1,000 USD a month), as CCXT lists it
FEES = {"spot": ("0.006", "0.012")}

# FMZ period in minutes -> Coinbase candle granularity (GET .../candles, "granularity")
PERIODS = {
    1: "ONE_MINUTE", 5: "FIVE_MINUTE", 15: "FIFTEEN_MINUTE", 30: "THIRTY_MINUTE",
    60: "ONE_HOUR", 120: "TWO_HOUR", 360: "SIX_HOUR", 1440: "ONE_DAY",
}

# Coinbase order status -> the FMZ status vocabulary (OPEN with a fill: partial-filled)
STATUS = {
    "PENDING": "pending",
    "QUEUED": "pending",
    "OPEN": "pending",
    "CANCEL_QUEUED": "pending",
    "EDIT_QUEUED": "pending",
    "FILLED": "filled",
    "CANCELLED": "canceled",
    "EXPIRED": "canceled",
    "FAILED": "canceled",
}
CLOSED_STATES = ("FILLED", "CANCELLED", "EXPIRED", "FAILED")
# Codes that say less than the reason beside them: check() names the reason instead
VAGUE_CODES = ("", "UNKNOWN_FAILURE_REASON", "UNKNOWN_CANCEL_FAILURE_REASON", "PREVIEW_FAILURE_REASON_UNKNOWN")

Keys = namedtuple("Keys", "name key")
_KEY_NAME = re.compile(r"[!-~]{1,200}")
_ORDER_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")
KEY_FORMATS = ("access_key must be the API key name (organizations/{org_id}/apiKeys/{key_id}) and "
               "secret_key its private key: an EC key in PEM (-----BEGIN EC PRIVATE KEY----- ..., real "
               "newlines or \\n) or a base64 Ed25519 key (64 bytes)")


def parse_keys(access_key, secret_key):
    """The key name and the loaded private key; a bad key is named by its format, never shown."""
    name = (access_key or "").strip()
    if not name or not (secret_key or "").strip():
        raise PluginError(f"Coinbase keys: {KEY_FORMATS}")
    if not _KEY_NAME.fullmatch(name):
        raise PluginError("Coinbase keys: the API key name has spaces or characters a key name never has; "
                          + KEY_FORMATS)
    try:
        key = _loaded_key(secret_key)
    except ValueError:
        raise PluginError(f"Coinbase keys: the private key could not be read; {KEY_FORMATS}") from None
    return Keys(name, key)


@functools.lru_cache(maxsize=64)
def _loaded_key(text):
    """_ecc.load_key, once per key text: reading an EC key works out its public point (about 8 ms),
    and every docker request parses its keys anew."""
    return _ecc.load_key(text)


def sign(request, keys, now_ms):
    """A fresh JWT per request (Coinbase refuses a token it has seen; the nonce makes each unique)."""
    issued = now_ms // 1000
    header = {"alg": keys.key.alg, "kid": keys.name, "nonce": secrets.token_hex(16), "typ": "JWT"}
    claims = {"sub": keys.name, "iss": "cdp", "nbf": issued, "exp": issued + JWT_LIFETIME,
              "uri": f"{request.method} {JWT_HOST}{request.path}"}
    request.headers["Authorization"] = "Bearer " + _ecc.jws(keys.key, header, claims)


def check(status, reply):
    """Coinbase's refusals: an error body with a 4xx/5xx status, the text "Unauthorized" with 401,
    and, with HTTP 200, an order or a cancel answered `success: false`."""
    if status == 401:
        detail = reply.get("message") or reply.get("error") if isinstance(reply, dict) else str(reply).strip()
        raise PluginError(f"Coinbase 401: {detail or 'Unauthorized'} (the key name, the private key, its "
                          f"permissions or the clock)", code="401")
    if isinstance(reply, dict) and status >= 400 and (reply.get("error") or reply.get("errors")):
        first = (reply.get("errors") or [{}])[0] if not reply.get("error") else {}
        first = first if isinstance(first, dict) else {}
        code = str(reply.get("error") or first.get("id") or status)
        message = reply.get("message") or reply.get("error_details") or first.get("message") or f"HTTP {status}"
        raise PluginError(f"Coinbase {code}: {message}", code=code, ambiguous=status >= 500)
    if status >= 400:
        raise PluginError(f"Coinbase answered HTTP {status}: {str(reply)[:80]}", code=str(status),
                          ambiguous=status >= 500)
    if isinstance(reply, dict) and reply.get("success") is False:
        _refused(reply, reply.get("error_response") or {})
    results = reply.get("results") if isinstance(reply, dict) else None
    if isinstance(results, list) and len(results) == 1 and isinstance(results[0], dict) \
            and results[0].get("success") is False:
        _refused(results[0], {})


def _refused(reply, details):
    """An order or cancel refused with HTTP 200: the most specific of its codes, and its message."""
    codes = [details.get("error"), details.get("preview_failure_reason"),
             details.get("new_order_failure_reason"), reply.get("failure_reason")]
    named = [str(c) for c in codes if c and str(c) not in VAGUE_CODES]
    code = named[0] if named else "UNKNOWN_FAILURE_REASON"
    message = details.get("message") or details.get("error_details") or "refused"
    raise PluginError(f"Coinbase {code}: {message}", code=code)


def _data(reply, field, shape):
    """The one place a reply is opened: the endpoint's `field` ({"products": [...]}), of `shape`."""
    value = reply.get(field) if isinstance(reply, dict) else None
    if not isinstance(value, shape):
        raise PluginError(f"Coinbase answered {str(reply)[:60]!r} without the {field!r} expected")
    return value


def _objects(rows):
    return [row for row in rows if isinstance(row, dict)]


def server_time(api):
    """GET /api/v3/brokerage/time ({"iso", "epochSeconds", "epochMillis"})"""
    reply = api.get(f"{API}/time", signed=False)
    if not isinstance(reply, dict):
        raise PluginError(f"Coinbase answered {str(reply)[:60]!r} for its time")
    ms = int(number_or_zero(reply.get("epochMillis"))) or int(number_or_zero(reply.get("epochSeconds")) * 1000) \
        or _ms(reply.get("iso"))
    if not ms:
        raise PluginError(f"Coinbase answered {str(reply)[:60]!r} for its time")
    return ms


# -- Symbols, ids and times ------------------------------------------------------------------------

def product_id(symbol):
    """Symbol('BTC_USD') -> BTC-USD; a swap is refused: this module trades Coinbase spot only."""
    if symbol.kind != "spot":
        raise PluginError(f"Coinbase serves spot markets here, not {symbol}")
    return f"{symbol.base}-{symbol.quote}"


def to_symbol(product):
    """BTC-USD -> Symbol('BTC_USD')."""
    base, _, quote = str(product).partition("-")
    return Symbol(base, quote)


def _order_id(order_id):
    if not _ORDER_ID.fullmatch(order_id or ""):
        raise PluginError(f"invalid Coinbase order id {str(order_id)[:60]!r}: expected Coinbase's order id, "
                          "such as 0000-000000-000000 or a UUID")
    return order_id


def _ms(text):
    """An RFC 3339 time (2023-11-26T10:19:47.423220Z, up to ns) in ms; 0 when absent or unreadable."""
    found = _ISO.fullmatch(str(text or "").strip())
    if not found:
        return 0
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    if zone and zone != "Z":
        sign_, digits = (1 if zone[0] == "+" else -1), zone[1:].replace(":", "")
        seconds -= sign_ * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * 1000 + int((fraction or "0")[:3].ljust(3, "0"))


def _rfc3339(ms):
    seconds = int(ms) // 1000
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % time.gmtime(seconds)[:6]


# The stream (https://docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/websocket/websocket-overview
# and "WebSocket Channels"): market data on wss://advanced-trade-ws.coinbase.com needs no key
# (heartbeats, ticker, level2 and market_trades are documented "Requires Authentication: No"; only
# user and futures_balance_summary need a JWT), so no key ever travels on it. One channel per
# message: {"type": "subscribe" | "unsubscribe", "product_ids": [...], "channel": "ticker"}, answered
# {"channel": "subscriptions", "events": [{"subscriptions": {channel: [product ids]}}]}. A connection
# with no subscription is closed after 5 s (the manager subscribes as it connects), and a channel
# with no update for 60-90 s is closed unless the connection also subscribes "heartbeats" (a message
# every second): the first "subscriptions" answer without it takes it along. Every message carries
# sequence_num, counted per connection over all its channels: a gap means a message was lost, so
# every level2 book of the connection is subscribed again for a fresh snapshot. level2 arrives as
# channel "l2_data": a snapshot, then updates, each {"side": "bid" | "offer", "price_level",
# "new_quantity"} (the new size, not a delta; "0" removes). market_trades lists trades newest first
# (answered oldest first, as REST). ticker carries price, best bid and ask, volume_24_h, high_24_h,
# low_24_h and price_percent_chg_24_h. Limits ("WebSocket Rate Limits"): 8 connections a second
# and 8 unauthenticated messages a second per IP.
STREAM_URLS = {"public": "wss://advanced-trade-ws.coinbase.com"}
STREAM_LOGIN = ()                            # market data needs no key
STREAM_KEEPALIVE = 10.0                      # seconds without a message (heartbeats come every second): a ping frame
STREAM_SILENCE = 30.0                        # seconds without any message: the connection is dead
STREAM_CONNECTS = (8, 1.0)                   # connections per second, per IP
STREAM_REQUESTS = (8, 1.0)                   # unauthenticated messages per second, per IP (kept per connection)
STREAM_TOPICS = 100                          # channels one connection carries (ours: Coinbase names none)
STREAM_DEPTH = 100                           # levels a side answered from the stream (the snapshot has the whole book)
STREAM_CHANNELS = {"ticker": "ticker", "depth": "level2", "trades": "market_trades"}
TRADES_DEFAULT = TRADES_LIMIT


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /market/products/{id}/ticker?limit=1 (best bid and ask, the last trade), with the
    product's 24 h figures, which that ticker lacks, kept DAY_STATS_TTL seconds (see _day)"""
    product = product_id(symbol)
    quote = api.get(f"{API}/market/products/{product}/ticker", {"limit": 1}, signed=False)
    info, candles = DAY_STATS.get((api.base_url, product), lambda: _day(api, product))
    last = (_objects(_data(quote, "trades", list)) or [{}])[0]
    hours = sorted(_candles(candles))
    data = {
        "symbol": str(symbol),
        "buy": float_or_zero(quote.get("best_bid")), "sell": float_or_zero(quote.get("best_ask")),
        "high": max((row[2] for row in hours), default=0.0),
        "low": min((row[3] for row in hours), default=0.0),
        "open": hours[0][1] if hours else 0.0,
        "last": float_or_zero(last.get("price")) or float_or_zero(info.get("price")),
        "vol": float_or_zero(info.get("volume_24h")),
        "time": _ms(last.get("time")) or api.now(),
    }
    return data, [quote, info, candles]


def _day(api, product):
    """GET /market/products/{id} (volume_24h) and GET .../candles ONE_HOUR over the last 24 h
    (open, high and low): the replies, (product, candles)."""
    info = api.get(f"{API}/market/products/{product}", signed=False)
    if not isinstance(info, dict):
        raise PluginError(f"Coinbase answered {str(info)[:60]!r} for product {product}")
    now_s = api.now() // 1000
    candles = api.get(f"{API}/market/products/{product}/candles",
                      {"start": now_s - 24 * 3600, "end": now_s, "granularity": "ONE_HOUR", "limit": 24},
                      signed=False)
    for figure in ("volume_24h", "price"):
        number_or_zero(info.get(figure))       # a reply with a number that is not finite is not kept
    return info, candles


def tickers(api, symbol=None):
    """GET /market/products?product_type=SPOT (every product's price and 24 h volume; the list has
    no best bid and ask nor high and low: those read 0, and open is worked out from
    price_percentage_change_24h)"""
    if symbol is not None and symbol.kind != "spot":
        raise PluginError(f"Coinbase serves spot markets here, not {symbol}")
    reply = api.get(f"{API}/market/products", {"product_type": "SPOT"}, signed=False)
    now, rows = api.now(), []
    for p in _objects(_data(reply, "products", list)):
        if not _tradable(p) or (symbol and not symbol.covers(to_symbol(p["product_id"]))):
            continue
        price, change = number_or_zero(p.get("price")), number_or_zero(p.get("price_percentage_change_24h"))
        rows.append({"symbol": str(to_symbol(p["product_id"])), "buy": 0.0, "sell": 0.0, "high": 0.0, "low": 0.0,
                     "open": float(_open(price, change)), "last": float(price),
                     "vol": float_or_zero(p.get("volume_24h")), "time": now})
    return rows, reply


def _open(price, change):
    """The price 24 h ago, from today's price and its change in percent."""
    return price / (1 + change / 100) if price and change > -100 else Decimal(0)


def depth(api, symbol, limit=None):
    """GET /market/product_book?product_id=&limit="""
    reply = api.get(f"{API}/market/product_book",
                    {"product_id": product_id(symbol), "limit": min(limit or DEPTH_DEFAULT, DEPTH_MAX)}, signed=False)
    book = _data(reply, "pricebook", dict)
    levels = lambda side: book_levels(_objects(book.get(side) or []), "price", "size")
    return {"time": _ms(book.get("time")) or api.now(), "asks": levels("asks"), "bids": levels("bids")}, reply


def trades(api, symbol):
    """GET /market/products/{id}/ticker?limit= (the latest trades, newest first; answered oldest first)"""
    reply = api.get(f"{API}/market/products/{product_id(symbol)}/ticker", {"limit": TRADES_LIMIT}, signed=False)
    return _oldest_first(_data(reply, "trades", list)), reply


def _oldest_first(trades):
    """Coinbase's trades (newest first) as FMZ rows, oldest first (the same time keeps their order)."""
    rows = [{"id": str(t.get("trade_id", "")), "time": _ms(t.get("time")), "price": float_or_zero(t.get("price")),
             "amount": float_or_zero(t.get("size")), "type": str(t.get("side", "")).lower()}
            for t in reversed(_objects(trades))]
    return sorted(rows, key=lambda row: row["time"])


def records(api, symbol, period=60, limit=None):
    """GET /market/products/{id}/candles?start=&end=&granularity= (300 a request, newest first;
    older pages asked for by moving the window [start, end) back to the oldest candle's open)"""
    granularity = PERIODS.get(period)
    if granularity is None:
        raise PluginError(f"Coinbase has no {period}-minute candles; periods: {', '.join(map(str, PERIODS))}")
    path, step, wanted = f"{API}/market/products/{product_id(symbol)}/candles", period * 60, limit or 100
    end, candles, pages = api.now() // 1000, {}, []
    while len(candles) < wanted:
        count = min(wanted - len(candles), CANDLES_PAGE)
        reply = api.get(path, {"start": end - count * step, "end": end, "granularity": granularity,
                               "limit": count}, signed=False)
        pages.append(reply)
        fresh = {row[0]: row for row in _candles(reply) if row[0] not in candles}
        if not fresh:
            break
        candles.update(fresh)
        end = min(fresh) // 1000
    return sorted(candles.values())[-wanted:], one_or_all(pages)


def _candles(reply):
    """{"candles": [{"start": "1639508050", "low", "high", "open", "close", "volume"}]} as FMZ rows."""
    rows = candle_rows([c.get(f) for f in ("start", "open", "high", "low", "close", "volume")]
                       for c in _objects(_data(reply, "candles", list)))
    return [[start * 1000, *values] for start, *values in rows if start > 0]


def markets(api):
    """GET /market/products?product_type=SPOT, through the markets cache (no raw)"""
    return markets_answer(api, ("spot",))


def load_markets(api, kind):
    """GET /market/products?product_type=SPOT (online products that take orders)"""
    if kind != "spot":
        return {}
    found = {}
    reply = api.get(f"{API}/market/products", {"product_type": "SPOT"}, signed=False)
    for p in _objects(_data(reply, "products", list)):
        if not _tradable(p):
            continue
        symbol = to_symbol(p["product_id"])
        found[str(symbol)] = market(
            symbol, number_or_zero(p.get("price_increment")) or number_or_zero(p.get("quote_increment")),
            number_or_zero(p.get("base_increment")),
            min_qty=number_or_zero(p.get("base_min_size")), max_qty=number_or_zero(p.get("base_max_size")),
            min_notional=number_or_zero(p.get("quote_min_size")), max_notional=number_or_zero(p.get("quote_max_size")),
            quote_step=number_or_zero(p.get("quote_increment")))
    return found


def _tradable(p):
    """A spot product that is online and takes new orders (not disabled, not cancel-only)."""
    return (str(p.get("product_type", "SPOT")) == "SPOT" and "-" in str(p.get("product_id", ""))
            and str(p.get("status", "online")).lower() == "online"
            and not any(p.get(flag) is True for flag in ("trading_disabled", "is_disabled", "cancel_only")))


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /accounts?limit=250&cursor= (every page: has_next and cursor)"""
    rows, pages = [], _pages(api, f"{API}/accounts", {"limit": ACCOUNTS_PAGE}, "accounts")
    for page in pages:
        for a in _objects(page["accounts"]):
            rows.append({"currency": str(a.get("currency", "")),
                         "free": _value(a.get("available_balance")), "frozen": _value(a.get("hold"))})
    return rows, one_or_all(pages)


assets = accounts


def _value(amount):
    """{"value": "1.5", "currency": "BTC"} -> Decimal 1.5 (a bare number is read too)."""
    return number_or_zero(amount.get("value") if isinstance(amount, dict) else amount)


def _pages(api, path, params, field, most=None):
    """Every page of a cursor list (has_next, cursor), at most `most` pages: the replies."""
    pages, cursor = [], None
    while most is None or len(pages) < most:
        reply = api.get(path, {**params, "cursor": cursor}, signed=True)
        _data(reply, field, list)
        pages.append(reply)
        cursor = reply.get("cursor")
        if not reply.get("has_next") or not cursor:
            break
    return pages


# -- Trading ---------------------------------------------------------------------------------------

def trade(api, symbol, order_type, price, amount):
    """POST /orders: limit_limit_gtc, or (price None) market_market_ioc with quote_size for a buy
    (amount in quote currency) and base_size for a sell. Exactly once: the client_order_id,
    looked up among the newest orders when the answer is lost, then sent again with the same id
    (Coinbase answers the existing order rather than make a second)."""
    product = product_id(symbol)
    market_buy = price is None and order_type == "buy"
    px, size = order_size(api, symbol, price, amount, quote_amount=market_buy)
    if price is None:
        configuration = {"market_market_ioc": {"quote_size" if market_buy else "base_size": size}}
    else:
        configuration = {"limit_limit_gtc": {"base_size": size, "limit_price": px, "post_only": False}}
    client_id = _new_client_id()
    body = {"client_order_id": client_id, "product_id": product, "side": order_type.upper(),
            "order_configuration": configuration}

    def send():
        reply = api.post(f"{API}/orders", body, signed=True)
        return {"id": _placed_id(reply)}, reply

    def find():
        reply = api.get(f"{API}/orders/historical/batch", {"product_ids": product, "limit": LOOKUP_PAGE},
                        signed=True)
        mine = [o for o in _objects(_data(reply, "orders", list)) if o.get("client_order_id") == client_id]
        return ({"id": str(mine[0].get("order_id", ""))}, reply) if mine else None

    try:
        return place_once(send, find, api, client_id, ids_never_reused=True)
    except PluginError as error:
        if error.code not in ("INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"):
            raise
        raise PluginError(f"{error} (a {order_type} of {symbol} spends {paid_in(symbol, order_type)})",
                          code=error.code) from error


def _new_client_id():
    """A UUID4, as Coinbase's own SDK makes them."""
    return str(uuid.uuid4())


def _placed_id(reply):
    """{"success": true, "success_response": {"order_id": ...}} (older replies: "order_id" beside it)."""
    placed = reply.get("success_response") if isinstance(reply, dict) else None
    order_id = (placed or {}).get("order_id") or (reply.get("order_id") if isinstance(reply, dict) else None)
    if not order_id:
        raise PluginError(f"Coinbase answered the order without an order_id: {str(reply)[:80]}")
    return str(order_id)


def orders(api, symbol=None):
    """GET /orders/historical/batch?order_status=OPEN[&product_ids=] (every page)"""
    params = {"order_status": "OPEN", "limit": ORDERS_PAGE, "product_ids": product_id(symbol) if symbol else None}
    pages = _pages(api, f"{API}/orders/historical/batch", params, "orders")
    return [_order(o) for page in pages for o in _objects(page["orders"])], one_or_all(pages)


def order(api, order_id, symbol=None):
    """GET /orders/historical/{order_id}"""
    reply = api.get(f"{API}/orders/historical/{_order_id(order_id)}", signed=True)
    return _order(_data(reply, "order", dict)), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /orders/historical/batch?product_ids=&start_date= (newest first; the filled and
    cancelled ones, of at most 5 pages of 1000, answered oldest first)"""
    wanted = limit or HISTORY_DEFAULT
    params = {"product_ids": product_id(symbol), "limit": ORDERS_PAGE,
              "start_date": _rfc3339(since) if since else None}
    closed, pages, cursor = [], [], None
    while len(pages) < HISTORY_PAGES and len(closed) < wanted:
        reply = api.get(f"{API}/orders/historical/batch", {**params, "cursor": cursor}, signed=True)
        pages.append(reply)
        closed += [o for o in _objects(_data(reply, "orders", list)) if o.get("status") in CLOSED_STATES]
        cursor = reply.get("cursor")
        if not reply.get("has_next") or not cursor:
            break
    newest = sorted(closed, key=lambda o: _ms(o.get("created_time")), reverse=True)[:wanted]
    return [_order(o) for o in reversed(newest)], one_or_all(pages)


def cancel(api, order_id, symbol=None):
    """POST /orders/batch_cancel {"order_ids": [id]} (a refusal, such as UNKNOWN_CANCEL_ORDER for an
    order no longer open, or a lost answer is explained by looking the order up)"""
    oid = _order_id(order_id)

    def send():
        return True, api.post(f"{API}/orders/batch_cancel", {"order_ids": [oid]}, signed=True)

    return cancel_once(send, lambda: order(api, oid), api)


def _order(o):
    """A Coinbase order object as FMZ's Order. A market buy by quote_size has that quote amount as
    its amount; a market order has no price (0)."""
    config = next(iter((o.get("order_configuration") or {}).values()), None)
    config = config if isinstance(config, dict) else {}
    filled = number_or_zero(o.get("filled_size"))
    status = str(o.get("status", ""))
    fmz_status = STATUS.get(status, status.lower())
    if status == "OPEN" and filled > 0:
        fmz_status = "partial-filled"
    return {
        "id": str(o.get("order_id", "")),
        "symbol": str(to_symbol(o.get("product_id", ""))),
        "amount": number_or_zero(config.get("base_size")) or number_or_zero(config.get("quote_size")),
        "price": number_or_zero(config.get("limit_price")),
        "deal_amount": filled, "avg_price": number_or_zero(o.get("average_filled_price")) if filled else Decimal(0),
        "type": str(o.get("side", "")).lower(), "offset": "", "contract_type": "",
        "time": _ms(o.get("created_time")),
        "status": fmz_status,
    }


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic) of a method's channel for one symbol: ("public", ("level2", "BTC-USD"));
    candles stay REST (the candles channel has only five-minute candles)."""
    if method not in STREAM_CHANNELS:
        return None
    return "public", (STREAM_CHANNELS[method], product_id(symbol))


def stream_subscribe(topics):
    """One {"type": "subscribe", "product_ids", "channel"} a channel, as Coinbase takes them."""
    return _by_channel("subscribe", topics)


def stream_unsubscribe(topics):
    return _by_channel("unsubscribe", topics)


def _by_channel(action, topics):
    products = {}
    for channel, product in topics:
        products.setdefault(channel, []).append(product)
    return [json.dumps({"type": action, "product_ids": ids, "channel": channel}) for channel, ids in products.items()]


def stream_ping():
    """A WebSocket ping frame: Coinbase has no text ping; its heartbeats channel keeps the connection."""
    return None


def stream_read(message, feed):
    """One message from Coinbase: {"channel": "subscriptions" | "heartbeats" | "ticker" | "l2_data"
    | "market_trades", "timestamp", "sequence_num", "events": [...]}, or {"type": "error",
    "message"} (a product it does not have: never confirmed, so REST answers)."""
    reply = json.loads(message)
    if not isinstance(reply, dict) or "channel" not in reply:
        return
    _count_sequence(reply, feed)
    channel, ms = reply["channel"], _ms(reply.get("timestamp"))
    for event in reply.get("events") or ():
        if not isinstance(event, dict):
            continue
        if channel == "subscriptions":
            _read_subscriptions(event, feed)
        elif channel == "ticker":
            for row in _objects(event.get("tickers") or []):
                feed.ticker(("ticker", row.get("product_id")), _stream_ticker(row, ms), reply)
        elif channel == "market_trades":
            _read_trades(event, reply, feed)
        elif channel == "l2_data":
            _read_book(event, ms, reply, feed)


def _count_sequence(reply, feed):
    """sequence_num counts the connection's messages: one skipped was lost, and with it maybe a book
    update, so every book on the connection takes a fresh snapshot."""
    state, number = feed.connection_state(), reply.get("sequence_num")
    if not isinstance(number, int):
        return
    last = state.get("sequence")
    state["sequence"] = number if last is None else max(last, number)
    if last is not None and number != last + 1:
        for topic in state.pop("books", set()):
            feed.resync(topic, f"Coinbase stream: message {number} after {last}")


def _read_subscriptions(event, feed):
    subscribed = event.get("subscriptions") or {}
    for channel, products in subscribed.items():
        for product in products or ():
            feed.subscribed((channel, product))
    state = feed.connection_state()
    if "heartbeats" not in subscribed and not state.get("heartbeats"):
        state["heartbeats"] = True           # asked once a connection
        feed.send(json.dumps({"type": "subscribe", "channel": "heartbeats"}))


def _stream_ticker(row, ms):
    """The ticker channel's row in FMZ's shape (high, low and open of the last 24 h)."""
    price = number_or_zero(row.get("price"))
    return {"symbol": str(to_symbol(row.get("product_id"))),
            "buy": float_or_zero(row.get("best_bid")), "sell": float_or_zero(row.get("best_ask")),
            "high": float_or_zero(row.get("high_24_h")), "low": float_or_zero(row.get("low_24_h")),
            "open": float(_open(price, number_or_zero(row.get("price_percent_chg_24_h")))),
            "last": float(price), "vol": float_or_zero(row.get("volume_24_h")), "time": ms or _now_ms()}


def _read_trades(event, reply, feed):
    """A snapshot (the latest trades) or an update, newest first; a trade without id or price is none."""
    by_product = {}
    for trade in _objects(event.get("trades") or []):
        if trade.get("trade_id") and trade.get("price"):
            by_product.setdefault(trade.get("product_id"), []).append(trade)
    for product, trades in by_product.items():
        feed.trades(("market_trades", product), _oldest_first(trades), reply)


def _read_book(event, ms, reply, feed):
    """A snapshot resets the book, an update changes the levels it names."""
    topic = ("level2", event.get("product_id"))
    book = feed.book(topic)
    if book is None:
        return
    sides = {"offer": [], "bid": []}
    for row in _objects(event.get("updates") or []):
        if row.get("side") in sides:
            sides[row["side"]].append([str(row.get("price_level")), str(row.get("new_quantity"))])
    if event.get("type") == "snapshot":
        book.reset(sides["offer"], sides["bid"])
        book.sequence = "snapshot"
        feed.connection_state().setdefault("books", set()).add(topic)
    elif book.sequence is None:
        return                               # an update before any snapshot: the snapshot holds it
    else:
        book.apply(sides["offer"], sides["bid"])
    book.time = ms or _now_ms()
    feed.depth(topic, reply)


def _now_ms():
    return int(time.time() * 1000)


METHODS = {
    "markets": markets,
    "ticker": ticker,
    "tickers": tickers,
    "depth": depth,
    "trades": trades,
    "records": records,
    "accounts": accounts,
    "assets": assets,
    "trade": trade,
    "orders": orders,
    "order": order,
    "historyorders": historyorders,
    "cancel": cancel,
    "__api_": signed_io,
}
