"""BloFin, REST API v1 (USDT-margined perpetual swaps): https://docs.blofin.com/index.html

Keys: access_key = the API key; secret_key = `SECRET,PASSPHRASE`, optionally followed by
`isolated` or `cross` (the margin mode of orders and leverage; cross when absent), e.g.
`S,P,isolated`.

Signing (docs "REST Authentication"): ACCESS-SIGN = base64 of the lowercase HEX text of
HMAC-SHA256(secret, path[?query] + METHOD + timestamp + nonce + body), the hex string itself
being encoded (not its bytes), with ACCESS-KEY, ACCESS-TIMESTAMP (ms), ACCESS-NONCE and
ACCESS-PASSPHRASE. The nonce is a fresh uuid4 per request: BloFin refuses a nonce used within
60 s (152407), so a timestamp (which CCXT reuses as the nonce) will not do for two requests in
the same millisecond. BloFin refuses a timestamp more than 60 s from its clock (152405).

Validity deadline: BloFin takes no expTime or recvWindow; a request is valid for 60 s after its
timestamp. An order or cancel (deadline=True) is therefore signed with a timestamp set back by
60 s less --timeout, so BloFin stops taking it --timeout after it was signed, which is what lets
_orders.place_once prove an unanswered order absent. BloFin has no server-time endpoint: its clock
is read from the `ts` of the BTC-USDT ticker (the moment BloFin generated it, a little behind its
clock, so waiting for it to pass a deadline waits a little longer, never shorter).

BloFin's documented API serves perpetual swaps only: `BTC_USDT.swap` is instId BTC-USDT and a
spot symbol is refused before anything is sent. Amounts are contracts (contractValue of the base
currency each, ct_val in `markets`). Orders follow the account's position mode, read once per key
from /api/v1/account/position-mode: in net_mode closebuy/closesell are reduceOnly orders on
positionSide net; in long_short_mode every order names positionSide long or short.

Replies are {"code": "0", "msg": "...", "data": ...}; a refusal has another code (HTTP 200), and
an order or cancel refused inside a batch envelope carries its own code and msg in data[0] (or
data). Order ids given to FMZ are `INSTID,ORDERID` (`BTC-USDT,28150801`): order and cancel need
no lookup.

Market data streams from BloFin's public WebSocket (/ws/public, OKX-like: tickers, books, trades,
candles); the dialect is at the end of this module, its limits beside STREAM_URLS.

Unverified (best readings, kept in one place each): that the 60 s window is checked when BloFin
takes a request (as the other exchanges' windows are), that order-detail answers finished orders
too, and the 8 h funding interval (BloFin publishes none).
"""
import base64
import hashlib
import hmac
import json
import uuid
from collections import namedtuple
from decimal import Decimal

from exchanges import okx
from exchanges._kit import (ACCOUNT_SETTINGS, PluginError, Symbol, book_levels, candle_rows, market, markets_answer,
                            float_or_zero, number_or_zero, one_or_all, signed_io, whole_or_zero)
from exchanges._orders import cancel_once, new_client_id, order_size, place_once
from exchanges._throttle import Limit

NAME = "BloFin"
BASE_URL = "https://openapi.blofin.com"
HOSTS = {}
POST_PARAMS = "json"                   # a POST's params travel as a JSON body, signed as sent
CLOCK_ERRORS = ("152405",)             # timestamp in header or signature has expired (60 s)
RATE_LIMIT_ERRORS = ("429",)           # Too Many Requests (also HTTP 429)
# "Internal Server Error" (500, HTTP 200) and 103013 "Internal error; unable to process your
# request": the order may or may not exist, so it is looked up.
AMBIGUOUS_ERRORS = ("500", "103013")
# Documented limits (docs "Rate Limits"): every REST endpoint 500 requests per minute and 1500 per
# 5 minutes per IP (past either, BloFin suspends the IP for 5 minutes or an hour); trading-related
# endpoints 30 requests per 10 s per user. The trading limit is counted per API key here.
PER_IP = [Limit(500, 60.0, per="ip", pool="REST requests"),
          Limit(1500, 300.0, per="ip", pool="REST requests over 5 min")]
TRADING = PER_IP + [Limit(30, 10.0, per="key", pool="trading requests")]
RATE_LIMITS = {
    "GET /api/v1/market/instruments": PER_IP,
    "GET /api/v1/market/tickers": PER_IP,
    "GET /api/v1/market/books": PER_IP,
    "GET /api/v1/market/trades": PER_IP,
    "GET /api/v1/market/candles": PER_IP,
    "GET /api/v1/market/funding-rate": PER_IP,
    "GET /api/v1/account/balance": PER_IP,
    "GET /api/v1/account/positions": PER_IP,
    "GET /api/v1/account/position-mode": PER_IP,
    "POST /api/v1/account/set-leverage": PER_IP,
    "POST /api/v1/trade/order": TRADING,
    "POST /api/v1/trade/cancel-order": TRADING,
    "GET /api/v1/trade/order-detail": TRADING,
    "GET /api/v1/trade/orders-pending": TRADING,
    "GET /api/v1/trade/orders-history": TRADING,
}
SIGNATURE_WINDOW_MS = 60_000           # how long after its timestamp BloFin takes a request
PAGE = 100                             # rows per page of trades, order lists (their maximum)
CANDLE_PAGE = 1440                     # candles per request, at most
BOOK_DEPTH = 100                       # order book levels per side, at most
FUNDING_INTERVAL = 8 * 3_600_000       # BloFin publishes no interval; its perpetuals settle every 8 h
CLOCK_INSTRUMENT = "BTC-USDT"          # whose ticker `ts` stands in for BloFin's clock
KEY_OPTIONS = ("isolated", "cross")
POSITION_MODE_MISMATCH = "102089"      # Position mode mismatch: the trader switched modes
DEPTH_DEFAULT = 20                     # levels a side when the docker asks no limit
TRADES_DEFAULT = PAGE                  # trades a `trades` answer holds
RECORDS_DEFAULT = 100                  # candles when the docker asks no limit

# The stream (docs "WebSocket" / "Public Channels"), one public endpoint for every channel:
# tickers, books (a 200-level snapshot, then updates every 100 ms chained by prevSeqId / seqId;
# BloFin documents no checksum for it, so a gap in the chain, or a book that comes out crossed,
# is what resyncs it), trades, and candles (candle1m, candle1H, ...: the candle still open,
# pushed as it changes). Subscribe {"op": "subscribe", "args": [{"channel", "instId"}]}, each
# acknowledged {"event": "subscribe", "arg": ...}. BloFin closes a connection when nothing was
# pushed or subscribed for 30 s and asks for a text "ping" (answered "pong") when nothing came for
# N < 30 s; it allows 1 connection request per second per IP. It documents no limit of
# subscribe requests or channels per connection: OKX's (480 an hour; here at most 100 channels)
# are kept, which BloFin's OKX-like API is our best reading of (unverified).
STREAM_URLS = {"public": "wss://openapi.blofin.com/ws/public"}
STREAM_LOGIN = ()                      # public channels only: no key travels on the stream
STREAM_KEEPALIVE = 20.0                # seconds without a message before our "ping"
STREAM_SILENCE = 29.0                  # seconds without any message: the connection is dead
STREAM_CONNECTS = (1, 1.0)             # connection requests per second, per IP
STREAM_REQUESTS = (480, 3600.0)        # subscribe / unsubscribe requests per connection (unverified)
STREAM_TOPICS = 100                    # channels one connection carries (unverified)
STREAM_DEPTH = 200                     # levels a side the books snapshot holds
STREAM_CHANNELS = {"ticker": "tickers", "depth": "books", "trades": "trades"}

# Paper trading's maker and taker rates, {kind: (maker, taker)}: BloFin's standard perpetual rates
# (as CCXT describes them); BloFin serves no spot here.
FEES = {"swap": ("0.0002", "0.0006")}

# FMZ period in minutes -> BloFin candle bar (docs "GET Candlesticks").
PERIODS = {
    1: "1m", 3: "3m", 5: "5m", 15: "15m", 30: "30m",
    60: "1H", 120: "2H", 240: "4H", 360: "6H", 480: "8H", 720: "12H",
    1440: "1D", 4320: "3D", 10080: "1W",
}

# BloFin order state -> the FMZ status vocabulary (CCXT reads order_failed as canceled).
STATUS = {
    "live": "pending",
    "partially_filled": "partial-filled",
    "filled": "filled",
    "canceled": "canceled",
    "partially_canceled": "partial-canceled",
    "order_failed": "canceled",
}

# FMZ swap order type -> (BloFin side, positionSide in long_short_mode, whether it closes)
SWAP_SIDES = {
    "buy": ("buy", "long", False),
    "sell": ("sell", "short", False),
    "closebuy": ("sell", "long", True),
    "closesell": ("buy", "short", True),
}

Keys = namedtuple("Keys", "api_key secret passphrase margin_mode")


def parse_keys(access_key, secret_key):
    parts = [part.strip() for part in (secret_key or "").split(",")]
    if not (access_key or "").strip() or len(parts) < 2 or not parts[0] or not parts[1]:
        raise PluginError("BloFin keys: access_key must be the API key and secret_key must be "
                          "SECRET,PASSPHRASE (optionally followed by ,isolated)")
    options = parts[2:]
    if len(options) > 1 or any(o not in KEY_OPTIONS for o in options):
        raise PluginError("BloFin keys: after SECRET,PASSPHRASE the secret_key takes only one of the "
                          "options isolated / cross")
    return Keys(access_key.strip(), parts[0], parts[1], options[0] if options else "cross")


def sign(request, keys, now_ms):
    """Orders and cancels carry a timestamp set back so that BloFin's 60 s window ends at their
    deadline (request.deadline, --timeout after signing); other calls carry now."""
    timestamp = now_ms if request.deadline is None else request.deadline - SIGNATURE_WINDOW_MS
    nonce = str(uuid.uuid4())
    prehash = request.target + request.method + str(timestamp) + nonce + request.body
    hex_digest = hmac.new(keys.secret.encode(), prehash.encode(), hashlib.sha256).hexdigest()
    request.headers.update({
        "ACCESS-KEY": keys.api_key,
        "ACCESS-SIGN": base64.b64encode(hex_digest.encode()).decode(),
        "ACCESS-TIMESTAMP": str(timestamp),
        "ACCESS-NONCE": nonce,
        "ACCESS-PASSPHRASE": keys.passphrase,
    })


def check(status, reply):
    """{"code": "0", ...} is success, unless an order or cancel result inside it carries a code of
    its own (data[0].code, or data.code for a cancel): then that code and msg are the refusal."""
    if not isinstance(reply, dict) or "code" not in reply:
        raise PluginError(f"BloFin answered HTTP {status} without a code: {str(reply)[:80]}",
                          ambiguous=status >= 500)
    code, message = str(reply["code"]), reply.get("msg")
    inner = _result_of(reply.get("data"))
    if inner is not None and str(inner.get("code")) not in ("0", "None", ""):
        code, message = str(inner["code"]), inner.get("msg") or message
    if code != "0":
        raise PluginError(f"BloFin {code}: {message or f'HTTP {status}'}", code=code, ambiguous=status >= 500)


def _result_of(data):
    """The result row of an order or cancel reply (a list of one, or an object), else None."""
    row = data[0] if isinstance(data, list) and data else data
    return row if isinstance(row, dict) and "code" in row else None


def server_time(api):
    """GET /api/v1/market/tickers?instId=BTC-USDT (BloFin has no time endpoint: the ticker's `ts`)"""
    reply = api.get("/api/v1/market/tickers", {"instId": CLOCK_INSTRUMENT}, signed=False)
    time = whole_or_zero((_rows(reply) or [{}])[0].get("ts"))
    if not time:
        raise PluginError("BloFin answered a ticker without a time")
    return time


def _data(reply):
    """The one place the envelope is opened: `data` (a list, an object, or None)."""
    return reply.get("data")


def _rows(reply):
    data = _data(reply)
    return data if isinstance(data, list) else [data] if isinstance(data, dict) else []


# -- Symbols and ids -------------------------------------------------------------------------------

def inst_id(symbol):
    """Symbol('BTC_USDT.swap') -> BTC-USDT; a spot symbol is refused: BloFin has no spot API."""
    if not symbol.is_swap:
        raise PluginError(f"BloFin serves perpetual swaps only: {symbol} is a spot symbol, "
                          f"use {symbol.base or 'BTC'}_{symbol.quote}.swap")
    return f"{symbol.base}-{symbol.quote}"


def to_symbol(instrument):
    """BTC-USDT -> Symbol('BTC_USDT.swap')."""
    base, _, quote = (instrument or "").partition("-")
    return Symbol(base, quote, "swap")


def split_order_id(order_id):
    """`BTC-USDT,28150801` -> ("BTC-USDT", "28150801")."""
    inst, _, blofin_id = order_id.partition(",")
    if not inst or not blofin_id or "," in blofin_id:
        raise PluginError(f"invalid BloFin order id {order_id[:60]!r}: expected INSTID,ORDERID such as "
                          f"BTC-USDT,28150801")
    return inst, blofin_id


def _swap_range(symbol):
    """None (every swap) or a swap symbol or range; a spot range is refused like a spot symbol."""
    if symbol is not None and not symbol.is_swap:
        inst_id(symbol)
    return symbol


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /api/v1/market/tickers?instId="""
    reply = api.get("/api/v1/market/tickers", {"instId": inst_id(symbol)}, signed=False)
    rows = _rows(reply)
    if not rows:
        raise PluginError(f"BloFin returned no ticker for {symbol}")
    return _ticker(rows[0]), reply


def _ticker(t):
    """vol is vol24h, in contracts (volCurrency24h is the base currency)."""
    return {
        "symbol": str(to_symbol(t.get("instId"))),
        "buy": float_or_zero(t.get("bidPrice")), "sell": float_or_zero(t.get("askPrice")),
        "high": float_or_zero(t.get("high24h")), "low": float_or_zero(t.get("low24h")),
        "open": float_or_zero(t.get("open24h")), "last": float_or_zero(t.get("last")),
        "vol": float_or_zero(t.get("vol24h")), "time": whole_or_zero(t.get("ts")),
    }


def tickers(api, symbol=None):
    """GET /api/v1/market/tickers (every perpetual; a range such as USDT.swap narrows it)"""
    symbol = _swap_range(symbol)
    reply = api.get("/api/v1/market/tickers", signed=False)
    rows = [_ticker(t) for t in _rows(reply) if t.get("instId")
            and (symbol is None or symbol.covers(to_symbol(t["instId"])))]
    return rows, reply


def depth(api, symbol, limit=None):
    """GET /api/v1/market/books (size up to 100 levels a side; rows [price, contracts, ...])"""
    reply = api.get("/api/v1/market/books", {"instId": inst_id(symbol), "size": min(limit or DEPTH_DEFAULT, BOOK_DEPTH)},
                    signed=False)
    book = (_rows(reply) or [{}])[0]
    return {"time": whole_or_zero(book.get("ts")), "asks": book_levels(book.get("asks")),
            "bids": book_levels(book.get("bids"))}, reply


def trades(api, symbol):
    """GET /api/v1/market/trades (the last 100, newest first; answered oldest first)"""
    reply = api.get("/api/v1/market/trades", {"instId": inst_id(symbol), "limit": TRADES_DEFAULT}, signed=False)
    return _trade_rows(_rows(reply)), reply


def _trade_rows(rows):
    """BloFin's trades (REST and stream alike) as FMZ's, oldest first."""
    found = [{"id": str(t.get("tradeId", "")), "time": whole_or_zero(t.get("ts")),
              "price": float_or_zero(t.get("price")), "amount": float_or_zero(t.get("size")),
              "type": t.get("side", "")} for t in rows if isinstance(t, dict)]
    return sorted(found, key=lambda row: row["time"])


def records(api, symbol, period=60, limit=None):
    """GET /api/v1/market/candles (newest first, up to 1440 a page; paged back with `after`).
    Rows are [ts, open, high, low, close, vol (contracts), volCurrency, volCurrencyQuote, confirm]."""
    bar = PERIODS.get(period)
    if bar is None:
        raise PluginError(f"BloFin has no {period}-minute candles; periods: {', '.join(map(str, PERIODS))}")
    wanted, found, pages, after = limit or RECORDS_DEFAULT, {}, [], None
    while len(found) < wanted:
        asked = min(wanted - len(found), CANDLE_PAGE)
        reply = api.get("/api/v1/market/candles", {"instId": inst_id(symbol), "bar": bar, "limit": asked,
                                                   "after": after}, signed=False)
        pages.append(reply)
        page = candle_rows(_rows(reply))
        found.update((row[0], row) for row in page)
        if len(page) < asked:
            break
        after = min(row[0] for row in page)
    return sorted(found.values())[-wanted:], one_or_all(pages)


def markets(api):
    """GET /api/v1/market/instruments (perpetuals only, through the markets cache; no raw)"""
    return markets_answer(api, ("swap",))


def load_markets(api, kind):
    """GET /api/v1/market/instruments (live SWAP instruments; sizes in contracts, contractValue of
    the base currency each)"""
    if kind != "swap":
        raise PluginError("BloFin serves perpetual swaps only: it lists no spot markets")
    found = {}
    for inst in _rows(api.get("/api/v1/market/instruments", signed=False)):
        if inst.get("state", "live") != "live" or str(inst.get("instType", "SWAP")).upper() != "SWAP":
            continue
        symbol = to_symbol(inst.get("instId"))
        if not symbol.base or not symbol.quote:
            continue
        lot = number_or_zero(inst.get("lotSize"))
        found[str(symbol)] = market(symbol, number_or_zero(inst.get("tickSize")), lot,
                                    min_qty=number_or_zero(inst.get("minSize")) or lot,
                                    max_qty=number_or_zero(inst.get("maxLimitSize")),
                                    ct_val=number_or_zero(inst.get("contractValue")),
                                    ct_val_ccy=inst.get("baseCurrency") or symbol.base)
    return found


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /api/v1/account/balance (the futures account: free = available, frozen = margin held by
    positions and orders; equity, and upnl = equity less the cash balance)"""
    reply = api.get("/api/v1/account/balance", signed=True)
    rows = []
    for d in (_data(reply) or {}).get("details") or []:
        if not d.get("currency"):
            continue
        equity, cash = number_or_zero(d.get("equity")), number_or_zero(d.get("balance"))
        rows.append({"currency": d["currency"],
                     "free": number_or_zero(d.get("available") or d.get("availableEquity")),
                     "frozen": number_or_zero(d.get("frozen")),
                     "equity": equity, "upnl": equity - cash if equity and cash else Decimal(0)})
    return rows, reply


assets = accounts


# -- Trading ---------------------------------------------------------------------------------------

def position_mode(api):
    """GET /api/v1/account/position-mode (positionMode, read once per key: net_mode or long_short_mode)"""
    load = lambda: (_data(api.get("/api/v1/account/position-mode", signed=True)) or {}).get("positionMode")
    return ACCOUNT_SETTINGS.get(api, "positionMode", load)


def trade(api, symbol, order_type, price, amount):
    """POST /api/v1/trade/order (limit; price None = market; amounts in contracts)"""
    instrument = inst_id(symbol)
    px, size = order_size(api, symbol, price, amount)
    client_id = new_client_id()
    body = {"instId": instrument, "marginMode": api.keys.margin_mode, **_swap_order_fields(api, order_type),
            "orderType": "market" if price is None else "limit", "price": px, "size": size,
            "clientOrderId": client_id}

    def send():
        try:
            reply = api.post("/api/v1/trade/order", body, signed=True, deadline=True)
        except PluginError as error:
            if error.code == POSITION_MODE_MISMATCH:
                ACCOUNT_SETTINGS.forget(api, "positionMode")     # the trader switched modes: read it again
            raise
        return {"id": f"{instrument},{_rows(reply)[0]['orderId']}"}, reply

    def find():
        found = _find_client_id(api, instrument, client_id)
        return None if found is None else ({"id": f"{instrument},{found[0]['orderId']}"}, found[1])

    return place_once(send, find, api, client_id)


def _swap_order_fields(api, order_type):
    """side and positionSide: net in net_mode (reduceOnly for closes), long/short in long_short_mode."""
    side, position_side, closes = SWAP_SIDES[order_type]
    if position_mode(api) == "long_short_mode":
        return {"side": side, "positionSide": position_side}
    return {"side": side, "positionSide": "net", "reduceOnly": "true" if closes else None}


def _find_client_id(api, instrument, client_id):
    """(order row, raw) of the order with this client id among the open orders, then the newest
    finished ones, or None: BloFin documents no "not found" code for order-detail, and both lists
    answer the documented shapes."""
    for path in ("/api/v1/trade/orders-pending", "/api/v1/trade/orders-history"):
        reply = api.get(path, {"instId": instrument, "limit": PAGE}, signed=True)
        for row in _rows(reply):
            if row.get("clientOrderId") == client_id:
                return row, reply
    return None


def positions(api, symbol=None):
    """GET /api/v1/account/positions (one swap, a range such as USDT.swap, or every one)"""
    symbol = _swap_range(symbol)
    query = {"instId": inst_id(symbol) if symbol is not None and symbol.base else None}
    reply = api.get("/api/v1/account/positions", query, signed=True)
    rows = [_position(p) for p in _rows(reply) if number_or_zero(p.get("positions")) and p.get("instId")
            and (symbol is None or symbol.covers(to_symbol(p["instId"])))]
    return rows, reply


def _position(p):
    """net positionSide signs `positions` (+ long, - short); long/short mode names the side.
    What resting closes reserve is the position less availablePositions."""
    held, side = number_or_zero(p.get("positions")), p.get("positionSide")
    is_long = side == "long" or (side not in ("long", "short") and held > 0)
    closable = p.get("availablePositions")
    frozen = abs(held) - abs(number_or_zero(closable)) if closable not in (None, "") else Decimal(0)
    return {
        "symbol": str(to_symbol(p["instId"])), "margin_level": number_or_zero(p.get("leverage")),
        "amount": abs(held), "frozen_amount": max(frozen, Decimal(0)),
        "price": number_or_zero(p.get("averagePrice")), "profit": number_or_zero(p.get("unrealizedPnl")),
        "type": 0 if is_long else 1, "contract_type": "swap",
        "margin": number_or_zero(p.get("initialMargin") or p.get("margin")),
    }


def margin_level(api, symbol, level):
    """POST /api/v1/account/set-leverage (marginMode from the key; isolated in long_short_mode sets
    each side)"""
    body = {"instId": inst_id(symbol), "leverage": str(level), "marginMode": api.keys.margin_mode}
    sides = [None]
    if api.keys.margin_mode == "isolated" and position_mode(api) == "long_short_mode":
        sides = ["long", "short"]
    replies = [api.post("/api/v1/account/set-leverage", {**body, "positionSide": side}, signed=True,
                        idempotent=True) for side in sides]
    return True, one_or_all(replies)


def fundings(api, symbol=None):
    """GET /api/v1/market/funding-rate (fundingTime is the next settlement; the interval is 8 h)"""
    symbol = _swap_range(symbol)
    query = {"instId": inst_id(symbol) if symbol is not None and symbol.base else None}
    reply = api.get("/api/v1/market/funding-rate", query, signed=False)
    rows = [{"symbol": str(to_symbol(f["instId"])), "rate": number_or_zero(f.get("fundingRate")),
             "time": whole_or_zero(f.get("fundingTime")), "interval": FUNDING_INTERVAL}
            for f in _rows(reply) if f.get("instId") and (symbol is None or symbol.covers(to_symbol(f["instId"])))]
    return rows, reply


def orders(api, symbol=None):
    """GET /api/v1/trade/orders-pending (every page, newest first, paged with `after`)"""
    symbol = _swap_range(symbol)
    query = {"instId": inst_id(symbol) if symbol is not None and symbol.base else None, "limit": PAGE}
    rows, pages = _pages(api, "/api/v1/trade/orders-pending", query)
    return [_order(o) for o in rows if symbol is None or symbol.covers(to_symbol(o.get("instId")))], pages


def order(api, order_id, symbol=None):
    """GET /api/v1/trade/order-detail"""
    instrument, blofin_id = split_order_id(order_id)
    reply = api.get("/api/v1/trade/order-detail", {"instId": instrument, "orderId": blofin_id}, signed=True)
    rows = _rows(reply)
    if not rows:
        raise PluginError(f"BloFin returned no order {order_id}")
    return _order(rows[0]), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /api/v1/trade/orders-history (filled and canceled orders, newest first; `since` -> begin)"""
    query = {"instId": inst_id(symbol), "limit": PAGE, "begin": since or None}
    rows, pages = _pages(api, "/api/v1/trade/orders-history", query, max_rows=limit or PAGE)
    rows.sort(key=lambda o: whole_or_zero(o.get("createTime")))
    return [_order(o) for o in rows], one_or_all(pages)


def cancel(api, order_id, symbol=None):
    """POST /api/v1/trade/cancel-order (sent once, with its deadline; a refused or unanswered cancel
    is explained by looking the order up: 102068 covers filled, canceled and unknown orders alike)"""
    instrument, blofin_id = split_order_id(order_id)

    def send():
        return True, api.post("/api/v1/trade/cancel-order", {"instId": instrument, "orderId": blofin_id},
                              signed=True, deadline=True)

    return cancel_once(send, lambda: order(api, order_id), api)


def _order(o):
    """A BloFin order as FMZ's Order: `type` the side that went to the book, `offset` close when it
    is reduceOnly (net_mode) or sell+long / buy+short (long_short_mode), `time` its createTime.
    averagePrice is "" (or 0) until something filled."""
    side, position_side = o.get("side", ""), o.get("positionSide", "")
    closes = str(o.get("reduceOnly")).lower() == "true" or (side, position_side) in (("sell", "long"), ("buy", "short"))
    return {
        "id": f"{o.get('instId', '')},{o.get('orderId', '')}",
        "symbol": str(to_symbol(o.get("instId"))),
        "amount": number_or_zero(o.get("size")), "price": number_or_zero(o.get("price")),
        "deal_amount": number_or_zero(o.get("filledSize")), "avg_price": number_or_zero(o.get("averagePrice")),
        "type": side, "offset": "close" if closes else "open", "contract_type": "swap",
        "time": whole_or_zero(o.get("createTime")),
        "status": STATUS.get(o.get("state"), o.get("state") or ""),
    }


def _pages(api, path, query, max_rows=None):
    """Follow BloFin's `after` cursor (the last orderId of a page) until a short page or max_rows."""
    rows, pages = [], []
    while max_rows is None or len(rows) < max_rows:
        reply = api.get(path, {**query, "after": rows[-1].get("orderId") if rows else None}, signed=True)
        pages.append(reply)
        page = _rows(reply)
        rows += page
        if len(page) < query["limit"]:
            break
    return rows[:max_rows], pages


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic) of a method's channel for one swap: ("public", ("tickers", "BTC-USDT")),
    ("public", ("candle1H", "BTC-USDT")) for records of `period` minutes. None for a spot symbol
    (REST refuses it) and a period BloFin has no candle of."""
    if not symbol.is_swap or (method == "records" and period not in PERIODS):
        return None
    channel = "candle" + PERIODS[period] if method == "records" else STREAM_CHANNELS[method]
    return "public", (channel, inst_id(symbol))


# BloFin's public stream speaks OKX's envelope: {"op": "subscribe", "args": [{"channel": "tickers",
# "instId": "BTC-USDT"}, ...]}, "unsubscribe" alike, and the text "ping" as keepalive (answered
# "pong"), so OKX's functions build the messages.
stream_subscribe, stream_unsubscribe, stream_ping = okx.stream_subscribe, okx.stream_unsubscribe, okx.stream_ping


def stream_read(message, feed):
    """One message from BloFin: an event (subscribe, unsubscribe, error), a "pong", or a push
    {"arg": {"channel", "instId"}, ["action",] "data": ...}. Numbers are read as exact text."""
    if message == "pong":
        return
    reply = json.loads(message, parse_float=Decimal)
    arg = reply.get("arg") or {}
    topic = (arg.get("channel"), arg.get("instId"))
    if reply.get("event") == "subscribe":
        feed.subscribed(topic)
    elif reply.get("event") or "data" not in reply:
        return
    elif str(topic[0]).startswith("candle"):
        rows = candle_rows(_rows(reply))
        feed.candles(topic, sorted(rows), reply)
    elif topic[0] == "tickers":
        for t in _rows(reply):
            feed.ticker(topic, _ticker(t), reply)
    elif topic[0] == "trades":
        feed.trades(topic, _trade_rows(_rows(reply)), reply)
    elif topic[0] == "books":
        _read_books(topic, reply, feed)


def _read_books(topic, reply, feed):
    """A snapshot resets the book; an update applies when its prevSeqId is the last seqId (else a
    message was lost) and must leave the best bid under the best ask. Updates before the first
    snapshot (just after a resync) are ignored."""
    book = feed.book(topic)
    for data in _rows(reply):
        if reply.get("action") == "snapshot":
            book.reset(_levels(data.get("asks")), _levels(data.get("bids")))
        elif book.sequence is None:
            return
        elif str(data.get("prevSeqId")) != book.sequence:
            return feed.resync(topic, f"BloFin {topic[1]} book: update {data.get('prevSeqId')} after {book.sequence}")
        else:
            book.apply(_levels(data.get("asks")), _levels(data.get("bids")))
        book.sequence, book.time = str(data.get("seqId")), whole_or_zero(data.get("ts"))
        asks, bids = book.sides()
        if asks and bids and number_or_zero(bids[0][0]) >= number_or_zero(asks[0][0]):
            return feed.resync(topic, f"BloFin {topic[1]} book: crossed at {bids[0][0]} / {asks[0][0]}")
    feed.depth(topic, reply)


def _levels(rows):
    """Book rows [price, size, ...] (text, or numbers read as Decimal) as text the Book keys on."""
    return [[str(row[0]), str(row[1])] for row in rows or () if isinstance(row, list) and len(row) >= 2]


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
    "__api_": signed_io,
}
