"""Binance spot (REST /api/v3) and USDT-M perpetual futures (/fapi on its own host).
Spot: https://developers.binance.com/docs/binance-spot-api-docs/rest-api
Futures: https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info

Keys: access_key = the API key; secret_key = its secret (an HMAC key: Binance's RSA and Ed25519
keys are not supported).

Signing (TRADE and USER_DATA endpoints, spot and futures alike): `signature` = hex
HMAC-SHA256(secret, totalParams), where totalParams is the query string followed directly by the
request body. Binance accepts a POST's parameters in either; this module sends every parameter in
the query string and an empty body (POST_PARAMS = "query"), so totalParams is the query string:
`...&timestamp=MS&recvWindow=5000` then `&signature=HEX` last, with the key in the X-MBX-APIKEY
header. Binance refuses a timestamp more than recvWindow behind its clock or 1 s ahead (-1021),
hence the clock offset. Orders and cancels carry recvWindow = --timeout instead (at most 60000):
Binance does not take them later than that (futures: -5028 from the matching engine), which is
what lets _orders.place_once prove that an unanswered order was not placed.

Symbols: BTC_USDT is spot BTCUSDT; BTC_USDT.swap is the USDT-M perpetual BTCUSDT on /fapi. A
futures amount is in the base coin, as Binance's quantity is: a swap's `ct_val` is 1.

Order ids given to FMZ are `SYMBOL,ORDERID` for spot (`BTCUSDT,12345`) and `SYMBOL.swap,ORDERID`
for futures (`BTCUSDT.swap,12345`): order and cancel need no lookup and never ask the spot API
about a futures order.
"""
import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections import namedtuple
from decimal import Decimal

from exchanges._kit import (ACCOUNT_SETTINGS, PluginError, Symbol, book_levels, candle_rows, market, markets_answer,
                            float_or_zero, number_or_zero, one_or_all, specs_by_exchange_id, whole_or_zero)
from exchanges._orders import cancel_once, new_client_id, order_size, paid_in, place_once
from exchanges._throttle import Limit, by_param
from exchanges._stream import Requests

NAME = "Binance"
BASE_URL = "https://api.binance.com"
HOSTS = {"futures": "https://fapi.binance.com"}     # USDT-M futures live on their own host
POST_PARAMS = "query"                # a POST's params travel in the (signed) query string, the body is empty
STREAM_URLS = {}                     # no stream yet: market data from REST (exchanges/_stream.py)
CLOCK_ERRORS = ("-1021",)            # Timestamp for this request is outside of the recvWindow.
RATE_LIMIT_ERRORS = ("-1003", "-1015")   # Too much request weight used (HTTP 429) / too many new orders
# "Outcome unknown" (errors.md): -1000 unknown error while processing, -1006 "Execution status
# unknown", -1007 "Send status unknown; execution status unknown" (seen with HTTP 408). _kit looks
# the order up after any of them, whatever the HTTP status.
AMBIGUOUS_ERRORS = ("-1000", "-1006", "-1007")


# ---------------------------------------------------------------------------- rate limits
# Binance counts request *weight* per IP, not per key: every endpoint of the spot API draws on one
# budget of 6000 a minute, every endpoint of the futures API on another of 2400 (spot rest-api
# "LIMITS", futures "General Info"; GET /api/v3/exchangeInfo rateLimits REQUEST_WEIGHT). Each
# endpoint's weight is documented beside it, and some grow with the params (depth levels, no
# symbol = every symbol). Every reply carries X-MBX-USED-WEIGHT-1M, the IP's weight used this
# minute as Binance counts it, which the throttle follows (another program on the same IP).
# New orders are counted per account: spot 100 per 10 s ("unfilled order count", exchangeInfo
# ORDERS; 200,000 a day, not kept here), futures 300 per 10 s and 1200 a minute, reported in
# X-MBX-ORDER-COUNT-10S / -1M on each placed order. A futures order weighs 0 on the IP budget
# ("1 on 10s order rate limit; 1 on 1min order rate limit; 0 on IP rate limit").

def _header(name):
    """The exchange's own count of a budget, read from one reply header."""
    def used(headers):
        value = headers.get(name)
        return int(value) if value and value.isdigit() else None
    return used


SPOT_WEIGHT = Limit(6000, 60.0, per="ip", pool="spot request weight", used=_header("X-MBX-USED-WEIGHT-1M"))
FUTURES_WEIGHT = Limit(2400, 60.0, per="ip", pool="futures request weight", used=_header("X-MBX-USED-WEIGHT-1M"))
SPOT_ORDERS = Limit(100, 10.0, per="key", pool="spot orders", used=_header("X-MBX-ORDER-COUNT-10S"))
FUTURES_ORDERS_10S = Limit(300, 10.0, per="key", pool="futures orders", used=_header("X-MBX-ORDER-COUNT-10S"))
FUTURES_ORDERS_1M = Limit(1200, 60.0, per="key", pool="futures orders a minute",
                          used=_header("X-MBX-ORDER-COUNT-1M"))


def _limit_param(params, default):
    """The `limit` a weight depends on (a number, or Binance's default when absent or odd)."""
    text = str(params.get("limit") or "")
    return int(text) if text.isdigit() else default


def _spot_depth_weight(params):
    """GET /api/v3/depth: 5 up to 100 levels, 25 up to 500, 50 up to 1000, 250 beyond."""
    levels = _limit_param(params, 100)
    return 5 if levels <= 100 else 25 if levels <= 500 else 50 if levels <= 1000 else 250


def _futures_depth_weight(params):
    """GET /fapi/v1/depth: 2 up to 50 levels, 5 for 100, 10 for 500, 20 for 1000."""
    levels = _limit_param(params, 500)
    return 2 if levels <= 50 else 5 if levels <= 100 else 10 if levels <= 500 else 20


def _futures_klines_weight(params):
    """GET /fapi/v1/klines: 1 under 100 klines, 2 under 500, 5 up to 1000, 10 beyond."""
    count = _limit_param(params, 500)
    return 1 if count < 100 else 2 if count < 500 else 5 if count <= 1000 else 10


RATE_LIMITS = {
    "GET /api/v3/time": SPOT_WEIGHT.costing(1),
    "GET /api/v3/exchangeInfo": SPOT_WEIGHT.costing(20),
    "GET /api/v3/ticker/24hr": SPOT_WEIGHT.costing(by_param("symbol", 2, 80)),
    "GET /api/v3/depth": SPOT_WEIGHT.costing(_spot_depth_weight),
    "GET /api/v3/trades": SPOT_WEIGHT.costing(25),
    "GET /api/v3/klines": SPOT_WEIGHT.costing(2),
    "GET /api/v3/account": SPOT_WEIGHT.costing(20),
    "POST /api/v3/order": [SPOT_WEIGHT.costing(1), SPOT_ORDERS],
    "GET /api/v3/order": SPOT_WEIGHT.costing(4),
    "DELETE /api/v3/order": SPOT_WEIGHT.costing(1),
    "GET /api/v3/openOrders": SPOT_WEIGHT.costing(by_param("symbol", 6, 80)),
    "GET /api/v3/allOrders": SPOT_WEIGHT.costing(20),
    "GET /fapi/v1/exchangeInfo": FUTURES_WEIGHT.costing(1),
    "GET /fapi/v1/ticker/24hr": FUTURES_WEIGHT.costing(by_param("symbol", 1, 40)),
    "GET /fapi/v1/ticker/bookTicker": FUTURES_WEIGHT.costing(by_param("symbol", 2, 5)),
    "GET /fapi/v1/depth": FUTURES_WEIGHT.costing(_futures_depth_weight),
    "GET /fapi/v1/trades": FUTURES_WEIGHT.costing(5),
    "GET /fapi/v1/klines": FUTURES_WEIGHT.costing(_futures_klines_weight),
    "GET /fapi/v1/premiumIndex": FUTURES_WEIGHT.costing(by_param("symbol", 1, 10)),
    "GET /fapi/v1/fundingInfo": Limit(500, 300.0, per="ip", pool="funding info"),   # 500 per 5 min per IP
    "GET /fapi/v2/account": FUTURES_WEIGHT.costing(5),
    "GET /fapi/v2/positionRisk": FUTURES_WEIGHT.costing(5),
    "GET /fapi/v1/positionSide/dual": FUTURES_WEIGHT.costing(30),
    "POST /fapi/v1/leverage": FUTURES_WEIGHT.costing(1),
    "POST /fapi/v1/order": [FUTURES_ORDERS_10S, FUTURES_ORDERS_1M],
    "GET /fapi/v1/order": FUTURES_WEIGHT.costing(1),
    "DELETE /fapi/v1/order": FUTURES_WEIGHT.costing(1),
    "GET /fapi/v1/openOrders": FUTURES_WEIGHT.costing(by_param("symbol", 1, 40)),
    "GET /fapi/v1/allOrders": FUTURES_WEIGHT.costing(5),
}

RECV_WINDOW = 5000                   # ms; Binance's default, max 60000
# FMZ market kind -> (REST prefix, host in HOSTS; None = BASE_URL)
APIS = {"spot": ("/api/v3", None), "swap": ("/fapi/v1", "futures")}
KLINES_PAGE = {"spot": 1000, "swap": 1500}          # max klines per request
# Depth limits Binance accepts (futures: these only, else -4021; spot: these have always been
# accepted): the smallest one >= the wanted depth is asked for, and the answer trimmed.
DEPTH_LIMITS = {"spot": (5, 10, 20, 50, 100, 500, 1000, 5000), "swap": (5, 10, 20, 50, 100, 500, 1000)}
DEPTH_DEFAULT = 20                   # levels a side when the docker sends no limit
TRADES_LIMIT = 100                   # recent trades answered by `trades`
TRADES_DEFAULT = TRADES_LIMIT        # ... which the stream answers alike
HISTORY_PAGE = 1000                  # max orders per GET .../allOrders
HISTORY_DEFAULT = 100                # history orders answered when the docker sends no limit
FUNDING_HOURS = 8                    # a perpetual not listed by /fapi/v1/fundingInfo settles every 8 h
HOUR_MS = 3_600_000
NO_FUTURES = ("-2015", "-2014")      # a key without futures permission (or a spot-testnet key)

# The stream (spot "WebSocket Streams", USDT-M "Websocket Market Streams"): one combined-stream
# connection per host (/stream: every push comes as {"stream": NAME, "data": PAYLOAD}, so even a
# partial book, which names no symbol, says whose it is), streams added and removed with
# {"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [NAME], "id": N} answered {"result": null,
# "id": N}. Channels: ticker = <symbol>@ticker (the 24 h ticker; on spot it carries the best bid
# and ask, on futures <symbol>@bookTicker adds them, as the REST ticker adds bookTicker); depth =
# <symbol>@depth20@100ms, the top 20 levels whole in every push (the partial book stream: no
# snapshot-plus-diff bookkeeping, and no REST snapshot, needed for the levels FMZ asks; deeper
# requests go to REST); trades = <symbol>@trade (each trade, the ids REST /trades gives).
# Binance pings every 20 s (spot) or 3 min (futures) and drops a connection that does not pong
# within a minute (the client pongs by itself); a connection carries 1024 streams (futures: 200)
# and takes 5 incoming messages a second, pings and pongs included; 300 connection attempts per
# 5 minutes per IP.
STREAM_URLS = {"spot": "wss://stream.binance.com:9443/stream", "futures": "wss://fstream.binance.com/stream"}
STREAM_LOGIN = ()                    # market streams need no key
STREAM_KEEPALIVE = 30.0              # seconds without a frame before our ping frame
STREAM_SILENCE = 90.0                # seconds without any frame (Binance's pings count): dead
STREAM_CONNECTS = (300, 300.0)       # connection attempts per seconds, per IP
STREAM_REQUESTS = (4, 1.0)           # SUBSCRIBE / UNSUBSCRIBE a second (5 messages, a pong spared)
STREAM_TOPICS = 100                  # channels a connection carries (a futures ticker is 2 of the 200 streams)
STREAM_DEPTH = 20                    # levels a side of <symbol>@depth20
STREAM_NAMES = {"ticker": ("@ticker",), "depth": ("@depth20@100ms",), "trades": ("@trade",)}
SUBSCRIBING = Requests()             # SUBSCRIBE ids awaiting Binance's answer

# Paper trading's maker and taker rates, {kind: (maker, taker)}: the standard (lowest tier)
# rates the exchange publishes (fee pages, 2025).
FEES = {"spot": ("0.001", "0.001"), "swap": ("0.0002", "0.0005")}

# FMZ period in minutes -> Binance kline interval (rest-api.md, "Kline/Candlestick chart intervals")
PERIODS = {
    1: "1m", 3: "3m", 5: "5m", 15: "15m", 30: "30m",
    60: "1h", 120: "2h", 240: "4h", 360: "6h", 480: "8h", 720: "12h",
    1440: "1d", 4320: "3d", 10080: "1w",
}

# Binance order status (enums.md, "Order status") -> the FMZ status vocabulary. A market order
# that could not fill completely ends EXPIRED, which FMZ calls canceled as OKX's does.
STATUS = {
    "NEW": "pending",
    "PENDING_NEW": "pending",
    "PARTIALLY_FILLED": "partial-filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "PENDING_CANCEL": "canceled",
    "REJECTED": "canceled",
    "EXPIRED": "canceled",
    "EXPIRED_IN_MATCH": "canceled",
}
CLOSED = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH")

# FMZ swap order type -> (Binance side, positionSide in hedge mode, closes a position)
SWAP_SIDES = {
    "buy": ("BUY", "LONG", False),
    "sell": ("SELL", "SHORT", False),
    "closebuy": ("SELL", "LONG", True),
    "closesell": ("BUY", "SHORT", True),
}

Keys = namedtuple("Keys", "api_key secret")
_HEADER_SAFE = re.compile(r"[!-~]+")           # printable ASCII: the key travels in a header
_ORDER_ID = re.compile(r"([A-Z0-9]{2,30})(\.swap)?,([0-9]{1,20})")


def parse_keys(access_key, secret_key):
    api_key, secret = (access_key or "").strip(), (secret_key or "").strip()
    if not api_key or not secret:
        raise PluginError("Binance keys: access_key must be the API key and secret_key its secret")
    if not _HEADER_SAFE.fullmatch(api_key):
        raise PluginError("Binance keys: the API key has spaces or characters a Binance key never has")
    return Keys(api_key, secret)


def sign(request, keys, now_ms):
    """Every parameter is in the query string (POST_PARAMS), so totalParams is exactly the query
    string: timestamp and recvWindow are appended, then the signature of it all."""
    fields = urllib.parse.parse_qsl(request.query, keep_blank_values=True)
    fields = [(name, value) for name, value in fields if name not in ("timestamp", "signature")]
    fields.append(("timestamp", str(now_ms)))
    if not any(name == "recvWindow" for name, _ in fields):
        fields.append(("recvWindow", str(request.window_ms or RECV_WINDOW)))
    query = urllib.parse.urlencode(fields)
    signature = hmac.new(keys.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    request.query = f"{query}&signature={signature}"
    request.headers["X-MBX-APIKEY"] = keys.api_key


def check(status, reply):
    """Binance answers an error as {"code": -2010, "msg": "..."} with HTTP 4xx (429 or 418 when
    rate limited, 5xx when the outcome is unknown); a success is the bare object or list (a few
    futures endpoints answer {"code": 200, "msg": "success"})."""
    code = reply.get("code") if isinstance(reply, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code < 0:
        message = reply.get("msg") or f"HTTP {status}"
        raise PluginError(f"Binance {code}: {message}", code=str(code), ambiguous=status >= 500)
    if status >= 400:
        raise PluginError(f"Binance answered HTTP {status}: {str(reply)[:80]}", ambiguous=status >= 500)


def server_time(api):
    """GET /api/v3/time"""
    return int(_data(api.get("/api/v3/time", signed=False))["serverTime"])


def _data(reply):
    """A Binance reply is the bare object or list, no envelope (check() has read any error):
    the one place a reply becomes data, as in every module."""
    return reply


# -- Calls, symbols, ids ---------------------------------------------------------------------------

def _get(api, kind, endpoint, params=None, *, signed):
    """GET a spot (/api/v3) or futures (/fapi/v1) endpoint on its host."""
    prefix, host = APIS[kind]
    return api.get(prefix + endpoint, params, signed=signed, host=host)


def _send(api, kind, verb, endpoint, params, idempotent=False, deadline=False):
    """A signed POST or DELETE to a spot or futures endpoint on its host (deadline: see _kit.Request)."""
    prefix, host = APIS[kind]
    return api.call(verb, prefix + endpoint, params, signed=True, idempotent=idempotent, host=host,
                    deadline=deadline)


def market_id(symbol):
    """Symbol('BTC_USDT') and Symbol('BTC_USDT.swap') -> BTCUSDT (the API tells them apart)."""
    return symbol.base + symbol.quote


def _names(api, kind):
    """BTCUSDT -> Symbol for every live market of a kind: Binance's symbols do not mark the split."""
    return {name: Symbol(spec["base_asset"], spec["quote_asset"], kind)
            for name, spec in specs_by_exchange_id(api, kind).items()}


def _kinds(symbol):
    """The market kinds a symbol, a range or no symbol at all covers."""
    return (symbol.kind,) if symbol is not None else ("spot", "swap")


def split_order_id(order_id):
    """`BTCUSDT,12345` -> ("spot", "BTCUSDT", "12345"); `BTCUSDT.swap,12345` -> ("swap", ...)."""
    found = _ORDER_ID.fullmatch(order_id)
    if not found:
        raise PluginError(f"invalid Binance order id {order_id[:40]!r}: expected SYMBOL,ORDERID such as "
                          "BTCUSDT,12345 (spot) or BTCUSDT.swap,12345 (futures)")
    return "swap" if found.group(2) else "spot", found.group(1), found.group(3)


def _order_id(kind, reply):
    suffix = ".swap" if kind == "swap" else ""
    return f"{reply['symbol']}{suffix},{reply['orderId']}"


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /api/v3/ticker/24hr; swaps: /fapi/v1/ticker/24hr and /fapi/v1/ticker/bookTicker
    (the futures 24 h ticker has no bid and ask)"""
    query = {"symbol": market_id(symbol)}
    reply = _get(api, symbol.kind, "/ticker/24hr", query, signed=False)
    if not symbol.is_swap:
        return _ticker(_data(reply), symbol), reply
    book = _get(api, "swap", "/ticker/bookTicker", query, signed=False)
    day = _data(reply)
    return _ticker({**day, **_data(book), "closeTime": day.get("closeTime")}, symbol), [reply, book]


def _ticker(t, symbol):
    return {
        "symbol": str(symbol),
        "buy": float_or_zero(t.get("bidPrice")), "sell": float_or_zero(t.get("askPrice")),
        "high": float_or_zero(t.get("highPrice")), "low": float_or_zero(t.get("lowPrice")),
        "open": float_or_zero(t.get("openPrice")), "last": float_or_zero(t.get("lastPrice")),
        "vol": float_or_zero(t.get("volume")), "time": whole_or_zero(t.get("closeTime")),
    }


def tickers(api, symbol=None):
    """GET /api/v3/ticker/24hr and /fapi/v1/ticker/24hr + bookTicker without a symbol: every live
    market, or those of a range (`USDT`, `USDT.swap`) or one symbol"""
    rows, raw = [], []
    for kind in _kinds(symbol):
        names = _names(api, kind)
        reply = _get(api, kind, "/ticker/24hr", signed=False)
        raw.append(reply)
        books = {}
        if kind == "swap":
            raw.append(_get(api, "swap", "/ticker/bookTicker", signed=False))
            books = {b.get("symbol"): b for b in _data(raw[-1])}
        rows += [_ticker({**t, **books.get(t["symbol"], {}), "closeTime": t.get("closeTime")}, names[t["symbol"]])
                 for t in _data(reply) if t.get("symbol") in names
                 and (symbol is None or symbol.covers(names[t["symbol"]]))]
    return rows, one_or_all(raw)


def depth(api, symbol, limit=None):
    """GET /api/v3/depth, /fapi/v1/depth (the smallest Binance limit >= the wanted levels, trimmed)"""
    wanted, allowed = limit or DEPTH_DEFAULT, DEPTH_LIMITS[symbol.kind]
    asked = next((n for n in allowed if n >= wanted), allowed[-1])
    reply = _get(api, symbol.kind, "/depth", {"symbol": market_id(symbol), "limit": asked}, signed=False)
    book = _data(reply)
    return {"time": int(book.get("T") or api.now()), "asks": book_levels(book.get("asks", [])[:wanted]),
            "bids": book_levels(book.get("bids", [])[:wanted])}, reply


def trades(api, symbol):
    """GET /api/v3/trades, /fapi/v1/trades (recent trades, oldest first)"""
    reply = _get(api, symbol.kind, "/trades", {"symbol": market_id(symbol), "limit": TRADES_LIMIT}, signed=False)
    return [_trade(t) for t in _data(reply)], reply


def _trade(t):
    return {"id": str(t["id"]), "time": int(t["time"]), "price": float_or_zero(t.get("price")),
            "amount": float_or_zero(t.get("qty")), "type": "sell" if t.get("isBuyerMaker") else "buy"}


def records(api, symbol, period=60, limit=None):
    """GET /api/v3/klines, /fapi/v1/klines (oldest first, 1000 or 1500 a page; older pages asked
    for with endTime)"""
    interval = PERIODS.get(period)
    if interval is None:
        raise PluginError(f"Binance has no {period}-minute klines; periods: {', '.join(map(str, PERIODS))}")
    wanted, rows, pages, end = limit or 100, [], [], None
    while len(rows) < wanted:
        reply = _get(api, symbol.kind, "/klines", {"symbol": market_id(symbol), "interval": interval, "endTime": end,
                                                   "limit": min(wanted - len(rows), KLINES_PAGE[symbol.kind])},
                     signed=False)
        pages.append(reply)
        page = _data(reply)
        if not page:
            break
        rows = candle_rows(page) + rows
        end = int(page[0][0]) - 1
    return rows, one_or_all(pages)


def markets(api):
    """GET /api/v3/exchangeInfo and /fapi/v1/exchangeInfo, through the markets cache (no raw)"""
    return markets_answer(api, ("spot", "swap"))


def load_markets(api, kind):
    """GET /api/v3/exchangeInfo (TRADING spot symbols) or /fapi/v1/exchangeInfo (TRADING
    perpetuals); filters PRICE_FILTER, LOT_SIZE, NOTIONAL or MIN_NOTIONAL"""
    reply = _get(api, kind, "/exchangeInfo", signed=False)
    markets = {}
    for info in _data(reply).get("symbols", []):
        if (info.get("status") != "TRADING" or info.get("isSpotTradingAllowed") is False
                or (kind == "swap" and info.get("contractType") != "PERPETUAL")):
            continue
        symbol = Symbol(info["baseAsset"], info["quoteAsset"], kind)
        filters = {f.get("filterType"): f for f in info.get("filters", [])}
        tick = number_or_zero(filters.get("PRICE_FILTER", {}).get("tickSize"))
        lot = filters.get("LOT_SIZE", {})
        step = number_or_zero(lot.get("stepSize"))
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        markets[str(symbol)] = market(
            symbol, tick, step, min_qty=number_or_zero(lot.get("minQty")), max_qty=number_or_zero(lot.get("maxQty")),
            min_notional=number_or_zero(notional.get("minNotional") or notional.get("notional")),
            max_notional=number_or_zero(notional.get("maxNotional")),
            ct_val=Decimal(1 if kind == "swap" else 0), ct_val_ccy=symbol.base if kind == "swap" else "")
    return markets


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /api/v3/account (spot wallet) and /fapi/v2/account (USDT-M futures wallet), added up
    per currency: Binance keeps the two wallets apart, FMZ asks for one list. A futures margin
    currency also gets `equity` (marginBalance) and `upnl` (unrealizedProfit)."""
    spot = api.get("/api/v3/account", {"omitZeroBalances": "true"}, signed=True)
    rows = {}
    for b in _data(spot).get("balances", []):
        free, frozen = number_or_zero(b.get("free")), number_or_zero(b.get("locked"))
        if free or frozen:
            rows[b["asset"]] = {"currency": b["asset"], "free": free, "frozen": frozen}
    futures = _if_futures(api, lambda: api.get("/fapi/v2/account", signed=True, host="futures"))
    for a in _data(futures or {}).get("assets", []):
        if not (number_or_zero(a.get("walletBalance")) or number_or_zero(a.get("unrealizedProfit"))):
            continue
        row = rows.setdefault(a["asset"], {"currency": a["asset"], "free": Decimal(0), "frozen": Decimal(0)})
        row["free"] += number_or_zero(a.get("availableBalance"))
        row["frozen"] += number_or_zero(a.get("initialMargin"))
        row.update(equity=number_or_zero(a.get("marginBalance")), upnl=number_or_zero(a.get("unrealizedProfit")))
    return list(rows.values()), spot if futures is None else {"spot": spot, "futures": futures}


def _if_futures(api, call):
    """call() on the futures API, or None for a key without futures permission (-2015, or -2014
    for a spot-testnet key): remembered per key, so a spot-only key asks once."""
    if not ACCOUNT_SETTINGS.get(api, "futures", lambda: True):
        return None
    try:
        return call()
    except PluginError as error:
        if error.code not in NO_FUTURES:
            raise
    ACCOUNT_SETTINGS.forget(api, "futures")
    ACCOUNT_SETTINGS.get(api, "futures", lambda: False)
    return None


assets = accounts


# -- Trading ---------------------------------------------------------------------------------------

def hedge_mode(api):
    """GET /fapi/v1/positionSide/dual (dualSidePosition, read once per key: true = hedge mode)"""
    load = lambda: _data(api.get("/fapi/v1/positionSide/dual", signed=True, host="futures"))["dualSidePosition"]
    return ACCOUNT_SETTINGS.get(api, "dualSidePosition", load) in (True, "true")


def trade(api, symbol, order_type, price, amount):
    """POST /api/v3/order, /fapi/v1/order (LIMIT GTC; price None = MARKET, and a spot market buy
    spends `amount` quote through quoteOrderQty)"""
    client_id = new_client_id()
    params = _order_params(api, symbol, order_type, price, amount, client_id)

    def send():
        reply = _send(api, symbol.kind, "POST", "/order", params, deadline=True)
        return {"id": _order_id(symbol.kind, reply)}, reply

    def find():
        reply = _order_by_client_id(api, symbol.kind, params["symbol"], client_id)
        return None if reply is None else ({"id": _order_id(symbol.kind, reply)}, reply)

    try:
        return place_once(send, find, api, client_id)
    except PluginError as error:
        if error.code == "-4061":           # position side does not match: the trader switched modes
            ACCOUNT_SETTINGS.forget(api, "dualSidePosition")
        if error.code == "-2010" and "insufficient balance" in str(error):
            raise _name_the_currency(error, symbol, order_type) from error
        raise


def _order_params(api, symbol, order_type, price, amount, client_id):
    market_buy = price is None and order_type == "buy" and not symbol.is_swap
    px, qty = order_size(api, symbol, price, amount, quote_amount=market_buy)
    side, position_fields = _swap_side(api, order_type) if symbol.is_swap else (order_type.upper(), {})
    params = {"symbol": market_id(symbol), "side": side, "type": "MARKET" if price is None else "LIMIT",
              "newClientOrderId": client_id, "newOrderRespType": "RESULT"}
    if price is not None:
        params.update(timeInForce="GTC", price=px)
    params["quoteOrderQty" if market_buy else "quantity"] = qty
    params.update(position_fields)
    return params


def _order_by_client_id(api, kind, market, client_id):
    """GET /api/v3/order, /fapi/v1/order by origClientOrderId: the order, or None if Binance has none."""
    try:
        return _get(api, kind, "/order", {"symbol": market, "origClientOrderId": client_id}, signed=True)
    except PluginError as error:
        if error.code == "-2013":           # Order does not exist.
            return None
        raise


def _swap_side(api, order_type):
    """(side, position fields) of a futures order of FMZ's order type: positionSide in hedge
    mode, reduceOnly for closes in one-way mode (never both)."""
    side, position_side, closes = SWAP_SIDES[order_type]
    if hedge_mode(api):
        return side, {"positionSide": position_side}
    return side, {"reduceOnly": "true" if closes else None}


def _name_the_currency(error, symbol, order_type):
    """Binance's spot -2010 "insufficient balance" does not say which balance: add it."""
    return PluginError(f"{error} (a {order_type} of {symbol} spends {paid_in(symbol, order_type)})", code=error.code)


def positions(api, symbol=None):
    """GET /fapi/v2/positionRisk (one swap, a range such as USDT.swap, or every one)"""
    one = symbol is not None and symbol.base
    reply = api.get("/fapi/v2/positionRisk", {"symbol": market_id(symbol) if one else None},
                    signed=True, host="futures")
    names = _names(api, "swap")
    rows = [_position(p, names[p["symbol"]]) for p in _data(reply)
            if number_or_zero(p.get("positionAmt")) and p.get("symbol") in names
            and (symbol is None or symbol.covers(names[p["symbol"]]))]
    return rows, reply


def _position(p, symbol):
    """One-way mode signs positionAmt (+ long, - short) with positionSide BOTH; hedge mode names
    LONG or SHORT. An isolated position's margin is its isolatedWallet; a cross position's is
    its entry notional / leverage (positionRisk gives no cross margin)."""
    amount, side = number_or_zero(p.get("positionAmt")), p.get("positionSide")
    is_long = side == "LONG" or (side != "SHORT" and amount > 0)
    leverage, entry = number_or_zero(p.get("leverage")), number_or_zero(p.get("entryPrice"))
    if p.get("marginType") == "isolated":
        margin = number_or_zero(p.get("isolatedWallet"))
    else:
        margin = abs(amount) * entry / leverage if leverage else Decimal(0)
    return {
        "symbol": str(symbol), "margin_level": leverage, "amount": abs(amount), "frozen_amount": Decimal(0),
        "price": entry, "profit": number_or_zero(p.get("unRealizedProfit")), "type": 0 if is_long else 1,
        "contract_type": "swap", "margin": margin,
    }


def margin_level(api, symbol, level):
    """POST /fapi/v1/leverage"""
    reply = _send(api, "swap", "POST", "/leverage", {"symbol": market_id(symbol), "leverage": str(level)},
                  idempotent=True)
    return True, reply


def fundings(api, symbol=None):
    """GET /fapi/v1/premiumIndex (rate, next funding time) and /fapi/v1/fundingInfo (the
    perpetuals whose interval is not the default 8 h)"""
    one = symbol is not None and symbol.base
    index = api.get("/fapi/v1/premiumIndex", {"symbol": market_id(symbol) if one else None}, signed=False,
                    host="futures")
    info = api.get("/fapi/v1/fundingInfo", signed=False, host="futures")
    hours = {i.get("symbol"): whole_or_zero(i.get("fundingIntervalHours")) or FUNDING_HOURS
             for i in _data(info)}
    names = {market_id(symbol): symbol} if one else _names(api, "swap")
    rows = [{"symbol": str(names[f["symbol"]]), "rate": number_or_zero(f.get("lastFundingRate")),
             "time": whole_or_zero(f.get("nextFundingTime")),
             "interval": hours.get(f["symbol"], FUNDING_HOURS) * HOUR_MS}
            for f in ([_data(index)] if one else _data(index))
            if f.get("symbol") in names and (symbol is None or symbol.covers(names[f["symbol"]]))]
    return rows, [index, info]


def orders(api, symbol=None):
    """GET /api/v3/openOrders, /fapi/v1/openOrders (one symbol's; no symbol: every spot symbol's
    and, when the key has futures, every futures symbol's)"""
    rows, raw = [], []
    for kind in _kinds(symbol):
        call = lambda: _get(api, kind, "/openOrders", {"symbol": market_id(symbol) if symbol else None}, signed=True)
        reply = _if_futures(api, call) if kind == "swap" and symbol is None else call()
        if reply is not None:
            names = _names(api, kind)
            rows += [_order(o, kind, names) for o in _data(reply)]
            raw.append(reply)
    return rows, one_or_all(raw)


def order(api, order_id, symbol=None):
    """GET /api/v3/order, /fapi/v1/order"""
    kind, market, oid = split_order_id(order_id)
    reply = _get(api, kind, "/order", {"symbol": market, "orderId": oid}, signed=True)
    return _order(_data(reply), kind, _names(api, kind)), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /api/v3/allOrders, /fapi/v1/allOrders (the latest 1000, or 1000 from `since`; the
    closed ones, oldest first)"""
    reply = _get(api, symbol.kind, "/allOrders", {"symbol": market_id(symbol), "startTime": since,
                                                  "limit": HISTORY_PAGE}, signed=True)
    closed = sorted((o for o in _data(reply) if o.get("status") in CLOSED), key=lambda o: int(o["orderId"]))
    names = _names(api, symbol.kind)
    return [_order(o, symbol.kind, names) for o in closed[-(limit or HISTORY_DEFAULT):]], reply


def cancel(api, order_id, symbol=None):
    """DELETE /api/v3/order, /fapi/v1/order (sent once, with its recvWindow deadline; an unanswered
    or refused cancel is explained by looking the order up: -2011 "Unknown order sent." is also
    what a filled or canceled order answers)"""
    kind, market, oid = split_order_id(order_id)

    def send():
        return True, _send(api, kind, "DELETE", "/order", {"symbol": market, "orderId": oid}, deadline=True)

    return cancel_once(send, lambda: order(api, order_id), api)


def io(api, http_method, path, params):
    """exchange.IO("api", VERB, path, query): any Binance endpoint, signed; /fapi paths go to the
    futures host. The reply unchanged."""
    host = "futures" if path.startswith("/fapi/") else None
    reply = api.call(http_method, path, params, signed=True, host=host)
    return reply, reply


def _order(o, kind, names):
    """A spot or futures order object as FMZ's Order. A spot market buy by quote (quoteOrderQty)
    has that quote amount as its amount, as it was placed; futures give avgPrice, spot
    cummulativeQuoteQty. `type` is the side that went to the book; a futures order's `offset`
    is close when it is reduceOnly (one-way mode) or a SELL on LONG / BUY on SHORT (hedge mode);
    `time` is its creation (`time`; `updateTime` when absent)."""
    executed = number_or_zero(o.get("executedQty"))
    cost = number_or_zero(o.get("cummulativeQuoteQty") or o.get("cumQuote"))
    avg = number_or_zero(o.get("avgPrice")) or (cost / executed if executed and cost > 0 else Decimal(0))
    amount = number_or_zero(o.get("origQuoteOrderQty")) if o.get("type") == "MARKET" else 0
    symbol = names.get(o["symbol"], o["symbol"])
    side, position_side = str(o.get("side", "")).lower(), o.get("positionSide")
    closes = o.get("reduceOnly") in (True, "true") or (side, position_side) in (("sell", "LONG"), ("buy", "SHORT"))
    return {
        "id": _order_id(kind, o), "symbol": str(symbol),
        "amount": amount or number_or_zero(o.get("origQty")), "price": number_or_zero(o.get("price")),
        "deal_amount": executed, "avg_price": avg,
        "type": side,
        "offset": ("close" if closes else "open") if kind == "swap" else "",
        "contract_type": "swap" if kind == "swap" else "",
        "time": whole_or_zero(o.get("time") or o.get("updateTime")),
        "status": STATUS.get(o.get("status"), o.get("status", "")),
    }


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic): ("spot", ("ticker", Symbol('BTC_USDT'))); futures on their own host."""
    if method == "records":
        return None                       # candles stay REST
    return ("futures" if symbol.is_swap else "spot"), (method, symbol)


def stream_names(topic):
    """The Binance streams of one topic: ["btcusdt@ticker"], futures tickers ["...@ticker", "...@bookTicker"]."""
    method, symbol = topic
    suffixes = STREAM_NAMES[method] + (("@bookTicker",) if method == "ticker" and symbol.is_swap else ())
    return [market_id(symbol).lower() + suffix for suffix in suffixes]


def stream_subscribe(topics):
    """{"method": "SUBSCRIBE", "params": ["btcusdt@ticker", ...], "id": 7}"""
    return [_request("SUBSCRIBE", topics, SUBSCRIBING.new(topics))]


def stream_unsubscribe(topics):
    return [_request("UNSUBSCRIBE", topics, SUBSCRIBING.new(()))]


def _request(method, topics, request_id):
    return json.dumps({"method": method, "params": [name for topic in topics for name in stream_names(topic)],
                       "id": request_id})


def stream_ping():
    """Binance pings and the client pongs; our own keepalive is a ping frame (Binance pongs)."""
    return None


def stream_read(message, feed):
    """One message: an answer {"result": null, "id": N} (or {"error": ..., "id": N}), or a push
    {"stream": "btcusdt@trade", "data": {...}}."""
    reply = json.loads(message)
    if "stream" not in reply:
        topics = SUBSCRIBING.answered(reply.get("id"))
        if reply.get("result") is None and "error" not in reply:
            for topic in topics:
                feed.subscribed(topic)
        return
    name, data = reply["stream"], reply.get("data") or {}
    topic = feed.topic_named(name, stream_names)
    if topic is not None:
        STREAM_READERS[topic[0]](topic, name, data, reply, feed)


def _read_ticker(topic, name, data, reply, feed):
    """The 24 h ticker (c last, o open, h high, l low, v volume; spot also b bid, a ask) and, on
    futures, bookTicker (b bid, a ask): answered once the halves the REST ticker has are in."""
    parts = feed.state(topic)
    if name.endswith("@bookTicker"):
        parts["book"] = {"bidPrice": data.get("b"), "askPrice": data.get("a"), "E": data.get("E") or 0}
    else:
        parts["day"] = {"lastPrice": data.get("c"), "openPrice": data.get("o"), "highPrice": data.get("h"),
                        "lowPrice": data.get("l"), "volume": data.get("v"), "bidPrice": data.get("b"),
                        "askPrice": data.get("a"), "E": data.get("E") or 0}
    symbol = topic[1]
    if "day" in parts and ("book" in parts or not symbol.is_swap):
        halves = [parts["day"]] + ([parts["book"]] if symbol.is_swap else [])
        merged = {key: value for half in halves for key, value in half.items()}
        merged["closeTime"] = max(half["E"] for half in halves)
        feed.ticker(topic, _ticker(merged, symbol), reply)


def _read_depth(topic, name, data, reply, feed):
    """The top 20 levels, whole: spot {"lastUpdateId", "bids", "asks"} (no time: ours), futures
    {"e": "depthUpdate", "E", "T", "b", "a", ...}."""
    book = feed.book(topic)
    book.reset(data.get("asks", data.get("a")), data.get("bids", data.get("b")))
    book.time = whole_or_zero(data.get("E")) or int(time.time() * 1000)
    feed.depth(topic, reply)


def _read_trades(topic, name, data, reply, feed):
    """One trade {"t" id, "p" price, "q" quantity, "T" time, "m" the buyer is the maker}."""
    trade = _trade({"id": data.get("t"), "time": data.get("T"), "price": data.get("p"), "qty": data.get("q"),
                    "isBuyerMaker": data.get("m")})
    feed.trades(topic, [trade], reply)


STREAM_READERS = {"ticker": _read_ticker, "depth": _read_depth, "trades": _read_trades}


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
    "positions": positions,
    "margin_level": margin_level,
    "fundings": fundings,
    "__api_": io,
}
