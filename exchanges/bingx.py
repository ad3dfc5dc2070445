"""BingX, REST API: spot (/openApi/spot/v1) and USDT-M perpetual swaps (/openApi/swap/v2, v3 where
BingX moved an endpoint). Docs: https://bingx-api.github.io/docs/ (spot "Signature
Authentication", swap "Basic Information"); CCXT's bingx.py quotes the response examples used here.

Keys: access_key = the API key; secret_key = its secret (HMAC keys).

Signing (docs, spot "Signature Authentication"): every parameter of a private call, `timestamp`
(ms) and `recvWindow` included, travels in the query string, also for POST and DELETE (the
docs' own example sends POST /openApi/spot/v1/trade/order with its parameters in the query);
`signature` = lowercase hex HMAC-SHA256(secret, that parameter string) is appended last, and the
key goes in the X-BX-APIKEY header. The docs' example (quoteOrderQty=20&side=BUY&symbol=ETHUSDT&
timestamp=1649404670162&type=MARKET -> 428a3c38...) is a test. BingX refuses a request older than
recvWindow (5000 ms here; orders and cancels carry --timeout instead, at most 60000): a late order
is refused, not placed, which is what lets place_once prove an unanswered order absent.

Replies are {"code": 0, "msg": "", "data": ...}; a refusal has a non-zero code (HTTP 200), read
in check() and answered as `BingX <code>: <msg>`. Codes relied on: 100421 timestamp out of
window (resync; from BingX.Net's map, unverified against BingX's own table), 100410 rate limited
(CCXT, BingX.Net), 100404 spot order not found (" order not exist", as OctoBot quotes BingX's
reply) and 80016 swap order not found (CCXT, BingX.Net). `code` arrives as a number or a string,
`msg` sometimes with a leading space.

Symbols: BTC_USDT is spot BTC-USDT; BTC_USDT.swap is the USDT-M perpetual BTC-USDT. Order ids
given to FMZ say which API they belong to: `BTC-USDT,1514090846268424192` (spot) and
`BTC-USDT.swap,1709036527545438208` (perpetual), so order and cancel need no lookup.

Perpetuals: BingX counts USDT-M quantities in coins (CCXT: contractSize 1), so one FMZ contract
is one coin (ct_val 1 of the base). Orders follow the account's position mode, read once per key
from /openApi/swap/v1/positionSide/dual: in one-way mode every order is positionSide BOTH and
closebuy/closesell are reduceOnly; in hedge mode an order names LONG or SHORT (BUY+LONG opens a
long, SELL+LONG closes it).

Client order ids (1 to 40 characters in BingX's docs; ours are 32 letters and digits): placed as
newClientOrderId (spot) and clientOrderID (swap, as CCXT sends it), looked up as clientOrderID on
GET /openApi/spot/v1/trade/query and clientOrderId on GET /openApi/swap/v2/trade/order (the names
BingX.Net sends: BingX spells them differently per endpoint, LOOKUP_ID).

Spot markets: BingX's docs mark common/symbols' minQty and maxQty deprecated (minNotional is what
it enforces); minQty is still read as the minimum, so an order below it is refused before sending.

Unverified (best readings, kept in one place each): the message texts of most error codes, the 8 h
fallback when premiumIndex omits fundingIntervalHours, and allOrders answering every status from
`startTime` on.
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
                            float_or_zero, number_or_zero, one_or_all, signed_io, specs_by_exchange_id, whole_or_zero)
from exchanges._orders import cancel_once, new_client_id, order_size, paid_in, place_once
from exchanges._throttle import Limit
from exchanges import _websocket
from exchanges._stream import Requests

NAME = "BingX"
BASE_URL = "https://open-api.bingx.com"
HOSTS = {}
CLOCK_ERRORS = ("100421",)           # timestamp missing or outside recvWindow
RATE_LIMIT_ERRORS = ("100410",)      # request frequency too high
AMBIGUOUS_ERRORS = ("100500",)       # internal server error: the order may exist (unverified)
POST_PARAMS = "query"                # a POST's parameters travel in the query string, signed with it
SPOT, SWAP = "/openApi/spot/v1", "/openApi/swap/v2"
# BingX's limits (support article "API rate limit upgrade", bingx.com/en/support/articles/
# 31103871611289, 2025): every market-data endpoint of both APIs shares 500 requests per 10 s per
# IP; account endpoints share 2000 per 10 s per IP; per account, spot orders and cancels 5/s, spot
# order queries 10/s, swap orders 10/s. The other private endpoints take the figures BingX.Net
# holds them to (10/s spot queries, 5/s swap ones), which the article does not list.
MARKET_DATA = Limit(500, 10.0, per="ip", pool="market data")
ACCOUNT = Limit(2000, 10.0, per="ip", pool="account")


def _per_account(requests):
    return [ACCOUNT, Limit(requests, 1.0, per="key")]


RATE_LIMITS = {
    "GET /openApi/spot/v1/server/time": MARKET_DATA,
    "GET /openApi/spot/v1/common/symbols": MARKET_DATA,
    "GET /openApi/spot/v1/ticker/24hr": MARKET_DATA,
    "GET /openApi/spot/v1/market/depth": MARKET_DATA,
    "GET /openApi/spot/v1/market/trades": MARKET_DATA,
    "GET /openApi/spot/v1/market/kline": MARKET_DATA,
    "GET /openApi/swap/v2/quote/contracts": MARKET_DATA,
    "GET /openApi/swap/v2/quote/ticker": MARKET_DATA,
    "GET /openApi/swap/v2/quote/depth": MARKET_DATA,
    "GET /openApi/swap/v2/quote/trades": MARKET_DATA,
    "GET /openApi/swap/v3/quote/klines": MARKET_DATA,
    "GET /openApi/swap/v2/quote/premiumIndex": MARKET_DATA,
    "POST /openApi/spot/v1/trade/order": _per_account(5),
    "POST /openApi/spot/v1/trade/cancel": _per_account(5),
    "GET /openApi/spot/v1/trade/query": _per_account(10),
    "GET /openApi/spot/v1/trade/openOrders": _per_account(10),
    "GET /openApi/spot/v1/trade/historyOrders": _per_account(10),
    "GET /openApi/spot/v1/account/balance": _per_account(10),
    "POST /openApi/swap/v2/trade/order": _per_account(10),
    "DELETE /openApi/swap/v2/trade/order": _per_account(5),
    "GET /openApi/swap/v2/trade/order": _per_account(5),
    "GET /openApi/swap/v2/trade/openOrders": _per_account(5),
    "GET /openApi/swap/v2/trade/allOrders": _per_account(5),
    "GET /openApi/swap/v2/user/positions": _per_account(5),
    "GET /openApi/swap/v3/user/balance": _per_account(5),
    "POST /openApi/swap/v2/trade/leverage": _per_account(5),
    "GET /openApi/swap/v1/positionSide/dual": _per_account(5),
}
RECV_WINDOW = "5000"                 # ms a signed request stays valid (BingX's default)

# The endpoint of each purpose on each API (FMZ market kind -> path).
PATHS = {
    "ticker": {"spot": SPOT + "/ticker/24hr", "swap": SWAP + "/quote/ticker"},
    "depth": {"spot": SPOT + "/market/depth", "swap": SWAP + "/quote/depth"},
    "trades": {"spot": SPOT + "/market/trades", "swap": SWAP + "/quote/trades"},
    "klines": {"spot": SPOT + "/market/kline", "swap": "/openApi/swap/v3/quote/klines"},
    "place": {"spot": SPOT + "/trade/order", "swap": SWAP + "/trade/order"},
    "query": {"spot": SPOT + "/trade/query", "swap": SWAP + "/trade/order"},
    "open": {"spot": SPOT + "/trade/openOrders", "swap": SWAP + "/trade/openOrders"},
}
SWAP_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)       # the only `limit` values quote/depth takes
TRADES_LIMIT = 100
DEPTH_DEFAULT = 20                   # levels a side when the docker sends no limit
TRADES_DEFAULT = TRADES_LIMIT        # trades REST answers (and so the stream)

# The stream (spot and perpetual "Websocket Market Data"): wss://open-api-ws.bingx.com/market and
# wss://open-api-swap.bingx.com/swap-market. Every message from BingX is a gzip-compressed binary
# frame. {"id", "reqType": "sub" | "unsub", "dataType": "BTC-USDT@depth20"} subscribes one data
# type, answered {"id", "code": 0, ...} with no dataType; pushes carry {"dataType", "data"}.
# Data types: BTC-USDT@ticker (the 24 h ticker with the best bid and ask), BTC-USDT@depth20 (the
# top 20 levels whole in every push: a partial book, no sequence to keep) and BTC-USDT@trade.
# BingX keeps the connection alive itself: the swap host sends "Ping" and wants "Pong", the spot
# host sends {"ping": ID, "time"} and wants {"pong": ID, "time"}, every 5 s. BingX documents no
# limits on connections or subscriptions that we found: modest ones are kept.
STREAM_URLS = {"spot": "wss://open-api-ws.bingx.com/market", "swap": "wss://open-api-swap.bingx.com/swap-market"}
STREAM_LOGIN = ()                    # market data needs no key
STREAM_KEEPALIVE = 15.0              # seconds without a frame before our ping frame (BingX pings every 5 s)
STREAM_SILENCE = 30.0                # seconds without any frame: dead
STREAM_CONNECTS = (5, 1.0)           # connection requests per seconds (ours: none documented)
STREAM_REQUESTS = (10, 1.0)          # sub / unsub requests a second (ours: none documented)
STREAM_TOPICS = 100                  # data types a connection carries (ours: none documented)
STREAM_DEPTH = 20                    # levels a side of @depth20
STREAM_CHANNELS = {"ticker": "@ticker", "depth": "@depth20", "trades": "@trade"}
SUBSCRIBING = Requests()             # sub ids awaiting BingX's answer
KLINE_PAGE = 1440                    # max candles per kline call
HISTORY_PAGE = 100                   # spot historyOrders pageSize, at most
ALL_ORDERS_LIMIT = 1000              # swap allOrders limit, at most
DEFAULT_FUNDING_INTERVAL = 8 * 3_600_000
NO_ORDER = {"spot": "100404", "swap": "80016"}      # "order not exist" on each API
LOOKUP_ID = {"spot": "clientOrderID", "swap": "clientOrderId"}    # the query endpoints' client id field
NO_SWAP_PERMISSION = ("100004",)     # Permission denied: a key without perpetual rights
INSUFFICIENT = ("100202", "101204")

# Paper trading's maker and taker rates, {kind: (maker, taker)}: the standard (lowest tier)
# rates the exchange publishes (fee pages, 2025).
FEES = {"spot": ("0.001", "0.001"), "swap": ("0.0002", "0.0005")}

# FMZ period in minutes -> BingX kline interval.
PERIODS = {
    1: "1m", 3: "3m", 5: "5m", 15: "15m", 30: "30m",
    60: "1h", 120: "2h", 240: "4h", 360: "6h", 720: "12h",
    1440: "1d", 10080: "1w",
}

# BingX order status (spot: NEW, PENDING, PARTIALLY_FILLED, FILLED, CANCELED, FAILED; swap writes
# CANCELLED) -> the FMZ status vocabulary.
STATUS = {
    "NEW": "pending",
    "PENDING": "pending",
    "PARTIALLY_FILLED": "partial-filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "CANCELLED": "canceled",
    "FAILED": "canceled",
}
FINISHED = ("FILLED", "CANCELED", "CANCELLED", "FAILED")

# FMZ swap order type -> (BingX side, positionSide in hedge mode, whether it closes)
SWAP_SIDES = {
    "buy": ("BUY", "LONG", False),
    "sell": ("SELL", "SHORT", False),
    "closebuy": ("SELL", "LONG", True),
    "closesell": ("BUY", "SHORT", True),
}

Keys = namedtuple("Keys", "api_key secret")
ORDER_ID = re.compile(r"^([A-Z0-9]{1,20}-[A-Z0-9]{1,20})(\.swap)?,([0-9]{1,30})$")   # see split_order_id


def parse_keys(access_key, secret_key):
    api_key, secret = (access_key or "").strip(), (secret_key or "").strip()
    if not api_key or not secret or "," in secret:
        raise PluginError("BingX keys: access_key must be the API key and secret_key its secret")
    return Keys(api_key, secret)


def sign(request, keys, now_ms):
    """timestamp and recvWindow join the query (every param is there: POST_PARAMS), whose exact
    text is signed; signature goes last."""
    fields = urllib.parse.parse_qsl(request.query, keep_blank_values=True)
    fields = [(name, value) for name, value in fields if name not in ("timestamp", "signature")]
    fields.append(("timestamp", str(now_ms)))
    if not any(name == "recvWindow" for name, _ in fields):
        fields.append(("recvWindow", str(request.window_ms or RECV_WINDOW)))
    query = urllib.parse.urlencode(fields)
    signature = hmac.new(keys.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    request.query = f"{query}&signature={signature}"
    request.headers["X-BX-APIKEY"] = keys.api_key


def check(status, reply):
    """Success and refusal alike are {"code", "msg", "data"}; code 0 is success (a number, or a
    string in some replies)."""
    if not isinstance(reply, dict) or "code" not in reply:
        raise PluginError(f"BingX answered HTTP {status} without a code: {str(reply)[:80]}",
                          ambiguous=status >= 500)
    code = str(reply["code"])
    if code != "0":
        message = str(reply.get("msg") or "").strip() or f"HTTP {status}"
        raise PluginError(f"BingX {code}: {message}", code=code, ambiguous=status >= 500)


def _data(reply):
    """The one place the envelope is unwrapped: `data`, or None when BingX sent none."""
    return reply.get("data")


def server_time(api):
    """GET /openApi/spot/v1/server/time"""
    return whole_or_zero((_data(api.get(SPOT + "/server/time", signed=False)) or {}).get("serverTime"))


# -- Symbols and ids -------------------------------------------------------------------------------

def bingx_symbol(symbol):
    """Symbol('BTC_USDT') and Symbol('BTC_USDT.swap') -> BTC-USDT (the API tells them apart)."""
    return f"{symbol.base}-{symbol.quote}"


def to_symbol(name, kind):
    """BTC-USDT of the `kind` API ("spot" or "swap") -> Symbol('BTC_USDT') or Symbol('BTC_USDT.swap')."""
    base, _, quote = name.partition("-")
    return Symbol(base, quote, kind)


def split_order_id(order_id):
    """`BTC-USDT,123` -> ("spot", "BTC-USDT", "123"); `BTC-USDT.swap,123` -> ("swap", ...)."""
    found = ORDER_ID.match(order_id)
    if not found:
        raise PluginError(f"invalid BingX order id {order_id[:60]!r}: expected SYMBOL,ORDERID such as "
                          f"BTC-USDT,1514090846268424192 or BTC-USDT.swap,1709036527545438208")
    name, swap, bingx_id = found.groups()
    return ("swap" if swap else "spot"), name, bingx_id


def _order_id(kind, name, bingx_id):
    return f"{name}{'.swap' if kind == 'swap' else ''},{bingx_id}"


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /openApi/spot/v1/ticker/24hr, /openApi/swap/v2/quote/ticker"""
    reply = api.get(PATHS["ticker"][symbol.kind], {"symbol": bingx_symbol(symbol)}, signed=False)
    data = _data(reply)
    row = data[0] if isinstance(data, list) and data else data
    if not isinstance(row, dict) or not row:
        raise PluginError(f"BingX returned no ticker for {symbol}")
    return _ticker(row, str(symbol), reply), reply


def _ticker(t, symbol, reply):
    """closeTime is the ticker's own time (sent as a number or a string); the reply's timestamp
    stands in where it is absent."""
    return {
        "symbol": symbol,
        "buy": float_or_zero(t.get("bidPrice")), "sell": float_or_zero(t.get("askPrice")),
        "high": float_or_zero(t.get("highPrice")), "low": float_or_zero(t.get("lowPrice")),
        "open": float_or_zero(t.get("openPrice")), "last": float_or_zero(t.get("lastPrice")),
        "vol": float_or_zero(t.get("volume")),
        "time": whole_or_zero(t.get("closeTime") or reply.get("timestamp")),
    }


def tickers(api, symbol=None):
    """GET /openApi/spot/v1/ticker/24hr and /openApi/swap/v2/quote/ticker without a symbol (one
    call each); a range such as USDT.swap narrows the answer"""
    rows, replies = [], []
    for kind in [symbol.kind] if symbol else ["spot", "swap"]:
        reply = api.get(PATHS["ticker"][kind], signed=False)
        replies.append(reply)
        specs = specs_by_exchange_id(api, kind, "-")
        for t in _data(reply) or []:
            spec = specs.get(t.get("symbol"))
            if spec and (symbol is None or symbol.covers(to_symbol(t["symbol"], kind))):
                rows.append(_ticker(t, spec["symbol"], reply))
    return rows, one_or_all(replies)


def depth(api, symbol, limit=None):
    """GET /openApi/spot/v1/market/depth (limit up to 1000), /openApi/swap/v2/quote/depth (limit one
    of 5, 10, 20, 50, 100, 500, 1000). BingX's examples list asks best-last: both sides are sorted
    here, asks ascending and bids descending."""
    wanted = min(limit or DEPTH_DEFAULT, 1000)
    asked = wanted if not symbol.is_swap else next(n for n in SWAP_DEPTHS if n >= wanted)
    reply = api.get(PATHS["depth"][symbol.kind], {"symbol": bingx_symbol(symbol), "limit": asked}, signed=False)
    book = _data(reply) or {}
    asks = sorted(book_levels(book.get("asks")), key=lambda level: level[0])[:wanted]
    bids = sorted(book_levels(book.get("bids")), key=lambda level: level[0], reverse=True)[:wanted]
    time = book.get("ts") or book.get("T") or reply.get("timestamp")
    return {"time": whole_or_zero(time), "asks": asks, "bids": bids}, reply


def trades(api, symbol):
    """GET /openApi/spot/v1/market/trades, /openApi/swap/v2/quote/trades (the last 100; answered
    oldest first). A buyer-maker trade was a taker's sell; swap trades carry no id, their time
    stands in."""
    reply = api.get(PATHS["trades"][symbol.kind], {"symbol": bingx_symbol(symbol), "limit": TRADES_LIMIT},
                    signed=False)
    rows = sorted((_trade(t) for t in _data(reply) or []), key=lambda row: row["time"])
    return rows, reply


def _trade(t):
    maker = t.get("buyerMaker", t.get("isBuyerMaker"))
    return {"id": str(t.get("id") or t.get("time")), "time": whole_or_zero(t.get("time")),
            "price": float_or_zero(t.get("price")), "amount": float_or_zero(t.get("qty")),
            "type": "sell" if maker else "buy"}


def records(api, symbol, period=60, limit=None):
    """GET /openApi/spot/v1/market/kline (timeZone=0: days start at UTC midnight, BingX's spot
    default being UTC+8; CCXT reads spot candles there and found timeZone live), /openApi/swap/v3/
    quote/klines; 1440 a page, paged back with endTime"""
    interval = PERIODS.get(period)
    if interval is None:
        raise PluginError(f"BingX has no {period}-minute candles; periods: {', '.join(map(str, PERIODS))}")
    wanted, found, pages, end = limit or 100, {}, [], None
    while len(found) < wanted:
        asked = min(wanted - len(found), KLINE_PAGE)
        query = {"symbol": bingx_symbol(symbol), "interval": interval, "limit": asked, "endTime": end}
        if not symbol.is_swap:
            query["timeZone"] = 0
        reply = api.get(PATHS["klines"][symbol.kind], query, signed=False)
        pages.append(reply)
        page = candle_rows(_candle_fields(row) for row in _data(reply) or [])
        found.update((row[0], row) for row in page)
        if len(page) < asked:
            break
        end = min(row[0] for row in page) - 1
    rows = sorted(found.values())[-wanted:]
    return rows, one_or_all(pages)


def _candle_fields(row):
    """Spot rows are [openTime, open, high, low, close, volume, closeTime, quoteVolume]; swap rows
    are {open, close, high, low, volume, time}: both as a list in the spot order."""
    if isinstance(row, list):
        return row
    return [row.get(field) for field in ("time", "open", "high", "low", "close", "volume")]


def markets(api):
    """GET /openApi/spot/v1/common/symbols and /openApi/swap/v2/quote/contracts (through the
    markets cache; no raw)"""
    return markets_answer(api, ("spot", "swap"))


def load_markets(api, kind):
    """GET /openApi/spot/v1/common/symbols (status 1 = online), /openApi/swap/v2/quote/contracts
    (precisions given as digits, quantities in coins)"""
    if kind == "spot":
        rows = (_data(api.get(SPOT + "/common/symbols", signed=False)) or {}).get("symbols") or []
        specs = [_spot_market(row) for row in rows if row.get("status") == 1
                 and row.get("apiStateBuy") is not False and row.get("apiStateSell") is not False]
    else:
        rows = _data(api.get(SWAP + "/quote/contracts", signed=False)) or []
        specs = [_swap_market(row) for row in rows if str(row.get("status")) == "1"
                 and str(row.get("apiStateOpen", "true")) == "true"]
    return {spec["symbol"]: spec for spec in specs if spec}


def _spot_market(row):
    symbol = _fmz_symbol(row.get("symbol"), "spot")
    if symbol is None:
        return None
    tick, step = number_or_zero(row.get("tickSize")), number_or_zero(row.get("stepSize"))
    return market(symbol, tick, step,
                  min_qty=number_or_zero(row.get("minQty")), max_qty=number_or_zero(row.get("maxQty")),
                  min_notional=number_or_zero(row.get("minNotional")),
                  max_notional=number_or_zero(row.get("maxNotional")))


def _swap_market(row):
    symbol = _fmz_symbol(row.get("symbol"), "swap")
    if symbol is None:
        return None
    tick = Decimal(1).scaleb(-whole_or_zero(row.get("pricePrecision")))
    step = Decimal(1).scaleb(-whole_or_zero(row.get("quantityPrecision")))
    return market(symbol, tick, step, min_qty=number_or_zero(row.get("tradeMinQuantity")) or step,
                  min_notional=number_or_zero(row.get("tradeMinUSDT")), ct_val=Decimal(1), ct_val_ccy=symbol.base)


def _fmz_symbol(name, kind):
    parts = (name or "").split("-")
    if len(parts) != 2 or not all(re.fullmatch(r"[A-Z0-9]{1,20}", part) for part in parts):
        return None
    return Symbol(parts[0], parts[1], kind)


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /openApi/spot/v1/account/balance (spot wallet) and /openApi/swap/v3/user/balance
    (perpetual wallet), added up per currency: BingX keeps the two apart, FMZ asks for one list.
    The perpetual wallet's free part is availableMargin, its frozen part the margin of positions
    (usedMargin) and of resting orders (freezedMargin); its currency also gets equity and upnl."""
    spot = api.get(SPOT + "/account/balance", signed=True)
    rows = {}
    for b in (_data(spot) or {}).get("balances") or []:
        free, frozen = number_or_zero(b.get("free")), number_or_zero(b.get("locked"))
        if free or frozen:
            rows[b["asset"]] = {"currency": b["asset"], "free": free, "frozen": frozen}
    swap = _swap_wallet(api)
    for a in (_data(swap) or []) if swap else []:
        if not a.get("asset") or not (number_or_zero(a.get("balance")) or number_or_zero(a.get("unrealizedProfit"))):
            continue
        row = rows.setdefault(a["asset"], {"currency": a["asset"], "free": Decimal(0), "frozen": Decimal(0)})
        row["free"] += number_or_zero(a.get("availableMargin"))
        row["frozen"] += number_or_zero(a.get("usedMargin")) + number_or_zero(a.get("freezedMargin"))
        row.update(equity=number_or_zero(a.get("equity")), upnl=number_or_zero(a.get("unrealizedProfit")))
    return list(rows.values()), spot if swap is None else {"spot": spot, "swap": swap}


def _swap_wallet(api):
    """The perpetual wallet, or None for a key without perpetual permission."""
    try:
        return api.get("/openApi/swap/v3/user/balance", signed=True)
    except PluginError as error:
        if error.code in NO_SWAP_PERMISSION:
            return None
        raise


assets = accounts


# -- Trading ---------------------------------------------------------------------------------------

def position_mode(api):
    """GET /openApi/swap/v1/positionSide/dual (dualSidePosition, read once per key: "true" = hedge)"""
    def load():
        data = _data(api.get("/openApi/swap/v1/positionSide/dual", signed=True)) or {}
        return "hedge" if str(data.get("dualSidePosition")).lower() == "true" else "one-way"
    return ACCOUNT_SETTINGS.get(api, "dualSidePosition", load)


def trade(api, symbol, order_type, price, amount):
    """POST /openApi/spot/v1/trade/order, /openApi/swap/v2/trade/order (LIMIT; price None = MARKET,
    and a spot market buy spends `amount` quote through quoteOrderQty; swap amounts are coins)"""
    market_buy = price is None and order_type == "buy" and not symbol.is_swap
    px, size = order_size(api, symbol, price, amount, quote_amount=market_buy)
    client_id = new_client_id()
    params = {"symbol": bingx_symbol(symbol), "type": "MARKET" if price is None else "LIMIT", "price": px}
    if symbol.is_swap:
        params.update(_swap_order_fields(api, order_type), quantity=size, clientOrderID=client_id)
    else:
        params.update(side=order_type.upper(), newClientOrderId=client_id,
                      **{"quoteOrderQty" if market_buy else "quantity": size})
    kind = symbol.kind

    def send():
        try:
            reply = api.post(PATHS["place"][kind], params, signed=True, deadline=True)
        except PluginError as error:
            if symbol.is_swap and "positionSide" in str(error):
                ACCOUNT_SETTINGS.forget(api, "dualSidePosition")    # the trader switched modes: read it again
            raise
        return {"id": _order_id(kind, params["symbol"], _placed_id(reply))}, reply

    def find():
        try:
            reply = api.get(PATHS["query"][kind], {"symbol": params["symbol"], LOOKUP_ID[kind]: client_id},
                            signed=True)
        except PluginError as error:
            if error.code == NO_ORDER[kind]:
                return None
            raise
        return {"id": _order_id(kind, params["symbol"], _order_object(reply)["orderId"])}, reply

    try:
        return place_once(send, find, api, client_id)
    except PluginError as error:
        if error.code in INSUFFICIENT:
            raise PluginError(f"{error} (this order pays in {paid_in(symbol, order_type)})", code=error.code) from error
        raise


def _swap_order_fields(api, order_type):
    """side and positionSide: BOTH in one-way mode (reduceOnly for closes), LONG/SHORT in hedge mode."""
    side, position_side, closes = SWAP_SIDES[order_type]
    if position_mode(api) == "hedge":
        return {"side": side, "positionSide": position_side}
    fields = {"side": side, "positionSide": "BOTH"}
    if closes:
        fields["reduceOnly"] = "true"
    return fields


def _placed_id(reply):
    """The orderId of a new order: spot answers it in `data`, swap in `data.order`."""
    return _order_object(reply)["orderId"]


def _order_object(reply):
    data = _data(reply) or {}
    return data.get("order") if isinstance(data.get("order"), dict) else data


def orders(api, symbol=None):
    """GET /openApi/spot/v1/trade/openOrders, /openApi/swap/v2/trade/openOrders (no symbol = every
    spot pair)"""
    kind = symbol.kind if symbol else "spot"
    query = {"symbol": bingx_symbol(symbol)} if symbol else {}
    reply = api.get(PATHS["open"][kind], query, signed=True)
    specs = specs_by_exchange_id(api, kind, "-")
    return [_order(o, kind, specs) for o in (_data(reply) or {}).get("orders") or []], reply


def order(api, order_id, symbol=None):
    """GET /openApi/spot/v1/trade/query, /openApi/swap/v2/trade/order"""
    kind, name, bingx_id = split_order_id(order_id)
    reply = api.get(PATHS["query"][kind], {"symbol": name, "orderId": bingx_id}, signed=True)
    return _order(_order_object(reply), kind, specs_by_exchange_id(api, kind, "-")), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /openApi/spot/v1/trade/historyOrders (finished orders, pageIndex/pageSize 100) or
    /openApi/swap/v2/trade/allOrders (up to 1000 from `since`, finished ones kept); the newest
    `limit` (default 100), answered oldest first"""
    wanted = limit or 100
    query = {"symbol": bingx_symbol(symbol), "startTime": since or None}
    if symbol.is_swap:
        reply = api.get(SWAP + "/trade/allOrders", {**query, "limit": ALL_ORDERS_LIMIT}, signed=True)
        rows, raw = (_data(reply) or {}).get("orders") or [], reply
    else:
        rows, raw = _history_pages(api, query, wanted)
    finished = [o for o in rows if o.get("status") in FINISHED]
    finished.sort(key=lambda o: whole_or_zero(o.get("time")))
    specs = specs_by_exchange_id(api, symbol.kind, "-")
    return [_order(o, symbol.kind, specs) for o in finished[-wanted:]], raw


def _history_pages(api, query, wanted):
    rows, pages = [], []
    while len(rows) < wanted:
        reply = api.get(SPOT + "/trade/historyOrders", {**query, "pageIndex": len(pages) + 1,
                                                        "pageSize": HISTORY_PAGE}, signed=True)
        pages.append(reply)
        page = (_data(reply) or {}).get("orders") or []
        rows += page
        if len(page) < HISTORY_PAGE:
            break
    return rows, one_or_all(pages)


def cancel(api, order_id, symbol=None):
    """POST /openApi/spot/v1/trade/cancel, DELETE /openApi/swap/v2/trade/order (sent once, with its
    recvWindow deadline; an unanswered or refused cancel is explained by looking the order up)"""
    kind, name, bingx_id = split_order_id(order_id)
    query = {"symbol": name, "orderId": bingx_id}

    def send():
        if kind == "swap":
            return True, api.call("DELETE", SWAP + "/trade/order", query, signed=True, idempotent=False,
                                  deadline=True)
        return True, api.post(SPOT + "/trade/cancel", query, signed=True, deadline=True)

    return cancel_once(send, lambda: order(api, order_id), api)


def positions(api, symbol=None):
    """GET /openApi/swap/v2/user/positions (one swap, or every one; a range such as USDT.swap narrows it)"""
    one = symbol is not None and symbol.base
    reply = api.get(SWAP + "/user/positions", {"symbol": bingx_symbol(symbol) if one else None}, signed=True)
    specs = specs_by_exchange_id(api, "swap", "-")
    rows = [_position(p, specs[p["symbol"]]["symbol"]) for p in _data(reply) or []
            if number_or_zero(p.get("positionAmt")) and p.get("symbol") in specs
            and (symbol is None or symbol.covers(to_symbol(p["symbol"], "swap")))]
    return rows, reply


def _position(p, symbol):
    """Amounts are coins; positionSide says the side (positionAmt is also negative for a short in
    one-way mode on some answers); what resting closes reserve is the amount less availableAmt."""
    signed_amount = number_or_zero(p.get("positionAmt"))
    amount = abs(signed_amount)
    is_long = p.get("positionSide") == "LONG" or (p.get("positionSide") != "SHORT" and signed_amount > 0)
    available = p.get("availableAmt")
    frozen = amount - abs(number_or_zero(available)) if available not in (None, "") else Decimal(0)
    return {
        "symbol": symbol, "margin_level": number_or_zero(p.get("leverage")), "amount": amount,
        "frozen_amount": max(frozen, Decimal(0)), "price": number_or_zero(p.get("avgPrice")),
        "profit": number_or_zero(p.get("unrealizedProfit")), "type": 0 if is_long else 1, "contract_type": "swap",
        "margin": number_or_zero(p.get("initialMargin") or p.get("margin")),
    }


def margin_level(api, symbol, level):
    """POST /openApi/swap/v2/trade/leverage (side BOTH in one-way mode; LONG and SHORT in hedge mode)"""
    sides = ("LONG", "SHORT") if position_mode(api) == "hedge" else ("BOTH",)
    replies = [api.post(SWAP + "/trade/leverage", {"symbol": bingx_symbol(symbol), "side": side,
                                                   "leverage": str(level)}, signed=True, idempotent=True)
               for side in sides]
    return True, one_or_all(replies)


def fundings(api, symbol=None):
    """GET /openApi/swap/v2/quote/premiumIndex (lastFundingRate, nextFundingTime; one swap answers an
    object, none every swap in a list)"""
    one = symbol is not None and symbol.base
    reply = api.get(SWAP + "/quote/premiumIndex", {"symbol": bingx_symbol(symbol) if one else None}, signed=False)
    data = _data(reply)
    specs = specs_by_exchange_id(api, "swap", "-")
    rows = []
    for f in [data] if isinstance(data, dict) else data or []:
        spec = specs.get(f.get("symbol"))
        if spec and (symbol is None or symbol.covers(to_symbol(f["symbol"], "swap"))):
            hours = number_or_zero(f.get("fundingIntervalHours"))
            rows.append({"symbol": spec["symbol"], "rate": number_or_zero(f.get("lastFundingRate")),
                         "time": whole_or_zero(f.get("nextFundingTime")),
                         "interval": int(hours * 3_600_000) if hours else DEFAULT_FUNDING_INTERVAL})
    return rows, reply


def _order(o, kind, specs):
    """A BingX order object as FMZ's Order. Spot orders carry no avgPrice: it is the quote filled
    over the quantity filled. A spot market buy by quote amount has origQty 0: its amount is the
    quote (origQuoteOrderQty), as FMZ gives it. `type` is the side that went to the book; a swap
    order's `offset` is close when it is reduceOnly (one-way mode) or SELL+LONG / BUY+SHORT
    (hedge mode); `time` is its creation (`time`; `updateTime` when absent)."""
    filled = number_or_zero(o.get("executedQty"))
    avg = number_or_zero(o.get("avgPrice"))
    if not avg and filled:
        avg = number_or_zero(o.get("cummulativeQuoteQty") or o.get("cumQuote")) / filled
    amount = number_or_zero(o.get("origQty")) or number_or_zero(o.get("origQuoteOrderQty"))
    name = str(o.get("symbol", ""))
    side, position_side = str(o.get("side", "")).lower(), o.get("positionSide")
    closes = o.get("reduceOnly") in (True, "true") or (side, position_side) in (("sell", "LONG"), ("buy", "SHORT"))
    return {
        "id": _order_id(kind, name, o.get("orderId")),
        "symbol": specs[name]["symbol"] if name in specs else name,
        "amount": amount, "price": number_or_zero(o.get("price")),
        "deal_amount": filled, "avg_price": avg,
        "type": side,
        "offset": ("close" if closes else "open") if kind == "swap" else "",
        "contract_type": "swap" if kind == "swap" else "",
        "time": whole_or_zero(o.get("time") or o.get("updateTime")),
        "status": STATUS.get(o.get("status"), str(o.get("status", ""))),
    }


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic): ("swap", ("depth", Symbol('BTC_USDT.swap')))."""
    if method == "records":
        return None                       # candles stay REST
    return symbol.kind, (method, symbol)


def data_type(topic):
    """BingX's name of a topic's data: "BTC-USDT@depth20"."""
    method, symbol = topic
    return bingx_symbol(symbol) + STREAM_CHANNELS[method]


def stream_subscribe(topics):
    """{"id": "7", "reqType": "sub", "dataType": "BTC-USDT@ticker"}, one data type a request."""
    return [json.dumps({"id": str(SUBSCRIBING.new([topic])), "reqType": "sub", "dataType": data_type(topic)})
            for topic in topics]


def stream_unsubscribe(topics):
    return [json.dumps({"id": "unsub", "reqType": "unsub", "dataType": data_type(topic)}) for topic in topics]


def stream_ping():
    """BingX pings us; our own keepalive is a ping frame."""
    return None


def stream_read(message, feed):
    """One message, gzip in a binary frame: "Ping" (swap) or {"ping", "time"} (spot) to answer,
    an answer to a request {"id", "code", ...} (no dataType), or a push {"dataType", "data"}."""
    text = _websocket.inflated(message).decode() if isinstance(message, bytes) else message
    if text == "Ping":
        return feed.send("Pong")
    reply = json.loads(text)
    if "ping" in reply:
        return feed.send(json.dumps({"pong": reply["ping"], "time": reply.get("time")}))
    name = reply.get("dataType") or ""
    if not name:
        request_id = str(reply.get("id", ""))
        topics = SUBSCRIBING.answered(int(request_id)) if request_id.isdigit() else ()
        if reply.get("code") in (0, "0"):
            for topic in topics:
                feed.subscribed(topic)
        return
    market, _, rest = name.partition("@")
    wanted = market + "@" + rest.split("@")[0]            # "BTC-USDT@depth20@500ms" is BTC-USDT@depth20's
    topic = feed.topic_named(wanted, lambda t: [data_type(t)])
    if topic is not None:
        STREAM_READERS[topic[0]](topic, reply, feed)


def _read_ticker(topic, reply, feed):
    """24hTicker: c last, o open, h high, l low, v volume, B bid, A ask, E event time."""
    t = reply.get("data") or {}
    fields = {"bidPrice": t.get("B"), "askPrice": t.get("A"), "highPrice": t.get("h"), "lowPrice": t.get("l"),
              "openPrice": t.get("o"), "lastPrice": t.get("c"), "volume": t.get("v"),
              "closeTime": t.get("E") or t.get("C")}
    feed.ticker(topic, _ticker(fields, str(topic[1]), reply), reply)


def _read_depth(topic, reply, feed):
    """The top 20 levels, whole ({"bids", "asks"}; asks may come best last: the Book sorts)."""
    data = reply.get("data") or {}
    book = feed.book(topic)
    book.reset(data.get("asks"), data.get("bids"))
    stamp = data.get("T") or data.get("ts") or reply.get("ts") or reply.get("timestamp")
    book.time = whole_or_zero(stamp) or int(time.time() * 1000)
    feed.depth(topic, reply)


def _read_trades(topic, reply, feed):
    """Spot: one trade {"t" id, "p", "q", "T" time, "m" buyer is maker}; swap: a list of them
    without an id (the time stands in, as in REST)."""
    data = reply.get("data") or []
    rows = [_trade({"id": t.get("t"), "time": t.get("T"), "price": t.get("p"), "qty": t.get("q"),
                    "buyerMaker": t.get("m")}) for t in (data if isinstance(data, list) else [data])]
    feed.trades(topic, sorted(rows, key=lambda row: row["time"]), reply)


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
    "__api_": signed_io,
}
