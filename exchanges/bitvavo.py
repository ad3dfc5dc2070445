"""Bitvavo, REST API v2 (spot only): https://docs.bitvavo.com/

Keys: access_key = the API key (64 characters); secret_key = the API secret, optionally followed by
`,OPERATORID` (an integer naming this trader or bot inside the account, sent as `operatorId` with
every order and cancel; 1 when absent), e.g. `SECRET` or `SECRET,42`.

Signing (https://docs.bitvavo.com/docs/rest-api/introduction/): Bitvavo-Access-Signature = hex
HMAC-SHA256(secret, timestamp + METHOD + path + body), where path is the request path from /v2 on
with its query string (`/v2/order?market=BTC-EUR&orderId=...`; the python SDK signs exactly that)
and body is the JSON body ("" for GET and DELETE). The timestamp (ms) travels as
Bitvavo-Access-Timestamp, the key as Bitvavo-Access-Key, and Bitvavo-Access-Window (ms, default
10000, at most 60000) bounds how late the request may arrive: later is refused with 304, hence the
clock offset. Orders and cancels carry a window of --timeout (see _kit.Api.window_ms), which
is what lets _orders.place_once prove that an unanswered order was not placed.

Replies carry no envelope: a success is the bare object or list, a refusal
{"errorCode": 216, "error": "..."} with an HTTP 4xx/5xx status (https://docs.bitvavo.com/docs/errors).

Symbols: BTC_EUR is market BTC-EUR. Bitvavo has no derivatives: a `.swap` symbol is refused, and
positions, margin_level and fundings are not served. Order ids given to FMZ are `MARKET,ORDERID`
(`BTC-EUR,1be6d0df-d5dc-4b53-a250-3376f3b393e6`): order and cancel need no lookup.

Facts this module relies on, and where they come from:
- Markets (GET /v2/markets): `tickSize` is the price step, validated since API v2.12.0, which made
  `pricePrecision` null (https://docs.bitvavo.com/releases/v2.12.0); `quantityDecimals` the
  amount's decimals and `notionalDecimals` the quote amount's; `minOrderInBaseAsset` /
  `minOrderInQuoteAsset` the minimums (217 for a quote amount below the latter); status
  trading / halted / auction.
- Orders (POST /v2/order, https://docs.bitvavo.com/docs/rest-api/create-order): `clientOrderId`
  must be unique among OPEN orders (220 "clientOrderId conflict within the market"); the FIX API
  says it must be a UUID and the REST example is one, so a UUID4 is sent. `operatorId` (an
  integer, API v2.7.0: https://docs.bitvavo.com/releases/v2.7.0, on create, update and cancel) is
  sent with orders and cancels: CCXT refuses createOrder and cancelOrder without one (its options
  note "required soon for order-related endpoints"); whether Bitvavo already refuses its absence
  is UNVERIFIED. A market buy by quote spends `amountQuote`. At most 100 open orders per market
  (235). GET /v2/order takes orderId or clientOrderId (the latter wins when both are set).
- Order states: new, awaitingTrigger, partiallyFilled, filled, canceled and its variants
  (canceledAuction, canceledSelfTradePrevention, canceledIOC, canceledFOK,
  canceledMarketProtection, canceledPostOnly), expired, rejected (CCXT's parse_order_status).
- Errors: 240 "No order found" for an unknown order; 233 when cancelling one that is no longer
  new or partiallyFilled (CCXT issue 24154); 216 insufficient balance (without the currency: this
  module names it); 205 an invalid parameter value (an unknown market answers "market parameter
  is invalid." - that wording is UNVERIFIED); 304 outside the access window; 103 / 104 / 105 rate
  limited or banned (105 names the ban's end); 101 and 109 "may or may not have succeeded".
- Lists: candles (max 1440 a request, intervals 1m..1d and 1W, 1M; none for an interval without
  trades) and trades (max 1000) come newest first; GET /v2/orders (max 1000) newest first with
  start/end on the creation time. A candle `end` "must align with the end of an interval": the
  one opening at `end` is taken to be excluded (UNVERIFIED; rows are de-duplicated either way).
- The market-buy order object's fields (amountQuote and amountQuoteRemaining in place of amount
  and amountRemaining) are read as CCXT's parse_order reads them (UNVERIFIED against a live reply).
- Book `timestamp`: the WebSocket docs say nanoseconds while examples show milliseconds; both are
  read (a value past year 5000 in ms is taken as ns).

Rate limits: 1000 weight points a minute per API key (per IP for public calls), followed through
the bitvavo-ratelimit-* headers; see RATE_LIMITS below.
"""
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import namedtuple
from decimal import Decimal

from exchanges._kit import (PluginError, Symbol, book_levels, candle_rows, market, markets_answer, float_or_zero, number_or_zero,
                            one_or_all, signed_io, whole_or_zero)
from exchanges._orders import cancel_once, order_size, paid_in, place_once
from exchanges._throttle import Limit, by_param, used_from

NAME = "Bitvavo"
BASE_URL = "https://api.bitvavo.com"        # paths below start with /v2
HOSTS = {}
CLOCK_ERRORS = ("304",)                     # Request was not received within acceptable window
RATE_LIMIT_ERRORS = ("103", "104", "105")   # rate limited (weight) / too many new orders / banned
AMBIGUOUS_ERRORS = ("101", "109")           # "Operation may or may not have succeeded"
POST_PARAMS = "json"                        # a POST's params travel as its JSON body


# -- Rate limits -----------------------------------------------------------------------------------
# Bitvavo counts request *weight*: 1000 points a minute per API key for authenticated calls and
# per IP for public ones (docs "Rate limits"; each endpoint's "Rate limit weight points"), and
# answers every call with bitvavo-ratelimit-limit / -remaining / -resetat, the budget as Bitvavo
# counts it, which the throttle follows. New orders are also limited per account: 100 a second
# (104). The market paths are templates: every /v2/{market}/book is one endpoint.

_WEIGHT_USED = used_from("bitvavo-ratelimit-limit", "bitvavo-ratelimit-remaining")   # points spent this minute
WEIGHT = Limit(1000, 60.0, pool="request weight", used=_WEIGHT_USED)   # per key signed, per IP public
NEW_ORDERS = Limit(100, 1.0, per="key", pool="new orders")
RATE_LIMITS = {
    "GET /v2/time": WEIGHT.costing(1),
    "GET /v2/markets": WEIGHT.costing(1),
    "GET /v2/ticker/24h": WEIGHT.costing(by_param("market", 1, 25)),
    "GET /v2/{market}/book": WEIGHT.costing(1),
    "GET /v2/{market}/trades": WEIGHT.costing(5),
    "GET /v2/{market}/candles": WEIGHT.costing(1),
    "GET /v2/balance": WEIGHT.costing(5),
    "POST /v2/order": [WEIGHT.costing(1), NEW_ORDERS],
    "GET /v2/order": WEIGHT.costing(1),
    "DELETE /v2/order": WEIGHT.costing(1),
    "GET /v2/ordersOpen": WEIGHT.costing(by_param("market", 1, 25)),
    "GET /v2/orders": WEIGHT.costing(5),
}

ACCESS_WINDOW = 10_000               # ms: Bitvavo's default, sent explicitly
DEFAULT_OPERATOR_ID = 1
DEPTH_DEFAULT, DEPTH_MAX = 20, 1000
TRADES_DEFAULT = 100                 # recent trades answered by `trades` (Bitvavo allows 1000)
CANDLES_PAGE = 1440
HISTORY_PAGE, HISTORY_DEFAULT = 1000, 100
LIVE = ("trading", "auction")        # market states that take orders (halted does not)
NANOSECONDS_FROM = 10 ** 14          # a timestamp this large is in ns, not ms

# The stream (WebSocket API, https://docs.bitvavo.com/docs/websocket-overview): one public
# connection to wss://ws.bitvavo.com/v2/ carries every channel. {"action": "subscribe", "channels":
# [{"name": "ticker24h" | "book" | "trades", "markets": ["BTC-EUR"]}]} is answered {"event":
# "subscribed", "subscriptions": {name: [markets]}}. ticker24h pushes the object GET /v2/ticker/24h
# answers (bid and ask included, about once a second), and the ticker channel the best bid, ask and
# last price the moment they change: a ticker takes both, so its buy, sell and last are fresh; trades pushes each trade as {"event": "trade", ...} with REST's
# fields; book pushes changed levels {"event": "book", "market", "nonce", "bids", "asks"} (size 0
# removes) and no snapshot: as "Manage local order book" documents, the snapshot is getBook (REST
# or the WebSocket action {"action": "getBook", "market"}, answered {"action": "getBook",
# "response": {"market", "nonce", "bids", "asks"}}), then each update's nonce must be the last one
# plus one; a gap takes a fresh getBook. WebSocket actions spend the same weight as REST (1000 a
# minute per IP for public ones, 15 minutes' ban beyond), so subscriptions, snapshots and keepalive
# are kept far below it. Bitvavo documents no keepalive or connection limit (UNVERIFIED: the pace
# and the silence limit below are ours); the keepalive is the getTime action, answered by any server.
STREAM_URLS = {"public": "wss://ws.bitvavo.com/v2/"}
STREAM_LOGIN = ()                    # market data needs no key
STREAM_KEEPALIVE = 30.0              # seconds without a message before our getTime
STREAM_SILENCE = 60.0                # seconds without any message: the connection is dead
STREAM_CONNECTS = (5, 1.0)           # connection requests per seconds, per IP (ours: none documented)
STREAM_REQUESTS = (100, 60.0)        # subscribe / unsubscribe / getBook per minute: a tenth of the weight
STREAM_TOPICS = 300                  # channels one connection carries
STREAM_DEPTH = 100                   # levels a side answered from the stream (the snapshot has DEPTH_MAX)
STREAM_CHANNELS = {"ticker": "ticker24h", "depth": "book", "trades": "trades"}
BEST_PRICES = {"bestBid": "buy", "bestAsk": "sell", "lastPrice": "last"}   # the ticker channel's fields

# Paper trading's maker and taker rates, {kind: (maker, taker)}: the standard (lowest tier)
# rates the exchange publishes (fee pages, 2025).
FEES = {"spot": ("0.0015", "0.0025")}

# FMZ period in minutes -> Bitvavo candle interval (GET /v2/{market}/candles, "interval")
PERIODS = {
    1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 120: "2h", 240: "4h",
    360: "6h", 480: "8h", 720: "12h", 1440: "1d", 10080: "1W",
}

# Bitvavo order status -> the FMZ status vocabulary
STATUS = {
    "new": "pending",
    "awaitingTrigger": "pending",
    "partiallyFilled": "partial-filled",
    "filled": "filled",
    "canceled": "canceled",
    "canceledAuction": "canceled",
    "canceledSelfTradePrevention": "canceled",
    "canceledIOC": "canceled",
    "canceledFOK": "canceled",
    "canceledMarketProtection": "canceled",
    "canceledPostOnly": "canceled",
    "expired": "canceled",
    "rejected": "canceled",
}
OPEN_STATES = ("new", "awaitingTrigger", "partiallyFilled")

Keys = namedtuple("Keys", "api_key secret operator_id")
_HEADER_SAFE = re.compile(r"[!-~]+")
KEY_LENGTH = 64                      # characters of a Bitvavo API key (others: error 301)
KEY_SHORTEST = 32                    # a shorter API key was cut when pasted: refused before any call
_ORDER_ID = re.compile(r"([A-Z0-9]{1,20}-[A-Z0-9]{1,20}),([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})")


def parse_keys(access_key, secret_key):
    api_key = (access_key or "").strip()
    secret, _, operator = (secret_key or "").strip().partition(",")
    if not api_key or not secret.strip():
        raise PluginError("Bitvavo keys: access_key must be the API key and secret_key the API secret "
                          "(optionally followed by ,OPERATORID)")
    if not _HEADER_SAFE.fullmatch(api_key):
        raise PluginError("Bitvavo keys: the API key has spaces or characters a Bitvavo key never has")
    if len(api_key) < KEY_SHORTEST:
        raise PluginError(f"Bitvavo keys: the API key is {len(api_key)} characters, Bitvavo's are {KEY_LENGTH}: "
                          "paste the whole key as the Access Key")
    operator = operator.strip()
    if operator and not (operator.isdigit() and len(operator) <= 18):
        raise PluginError("Bitvavo keys: after SECRET, the secret_key takes only an operator id, a whole "
                          "number such as 42")
    return Keys(api_key, secret.strip(), int(operator) if operator else DEFAULT_OPERATOR_ID)


def sign(request, keys, now_ms):
    timestamp = str(now_ms)
    prehash = timestamp + request.method + request.target + request.body
    request.headers.update({
        "Bitvavo-Access-Key": keys.api_key,
        "Bitvavo-Access-Signature": hmac.new(keys.secret.encode(), prehash.encode(), hashlib.sha256).hexdigest(),
        "Bitvavo-Access-Timestamp": timestamp,
        "Bitvavo-Access-Window": str(request.window_ms or ACCESS_WINDOW),
    })


def check(status, reply):
    """A refusal is {"errorCode": N, "error": "..."}; a success the bare payload with HTTP 200."""
    if isinstance(reply, dict) and "errorCode" in reply:
        code = str(reply["errorCode"])
        message = reply.get("error") or f"HTTP {status}"
        raise PluginError(f"Bitvavo {code}: {message}", code=code,
                          ambiguous=status >= 500 or code in AMBIGUOUS_ERRORS)
    if status >= 400:
        raise PluginError(f"Bitvavo answered HTTP {status}: {str(reply)[:80]}", ambiguous=status >= 500)


def _data(reply, shape):
    """Bitvavo answers the payload itself, with no envelope to unwrap: this is the one place a
    reply's shape is checked against what the endpoint answers (`shape`: dict or list)."""
    if not isinstance(reply, shape):
        raise PluginError(f"Bitvavo answered {str(reply)[:60]!r} where "
                          f"{'a list' if shape is list else 'an object'} was expected")
    return reply


def _objects(reply):
    """The objects of a list reply; an entry that is not one is skipped."""
    return [row for row in _data(reply, list) if isinstance(row, dict)]


def server_time(api):
    """GET /v2/time"""
    return whole_or_zero(_data(api.get("/v2/time", signed=False), dict).get("time"))


# -- Symbols and ids -------------------------------------------------------------------------------

def market_id(symbol):
    """Symbol('BTC_EUR') -> BTC-EUR; a swap is refused: Bitvavo trades spot only."""
    if symbol.kind != "spot":
        raise PluginError(f"Bitvavo has spot markets only, not {symbol}")
    return f"{symbol.base}-{symbol.quote}"


def to_symbol(market):
    """BTC-EUR -> Symbol('BTC_EUR')."""
    base, _, quote = str(market).partition("-")
    return Symbol(base, quote)


def split_order_id(order_id):
    """`BTC-EUR,1be6d0df-...` -> ("BTC-EUR", "1be6d0df-...")."""
    found = _ORDER_ID.fullmatch(order_id)
    if not found:
        raise PluginError(f"invalid Bitvavo order id {order_id[:60]!r}: expected MARKET,ORDERID such as "
                          "BTC-EUR,1be6d0df-d5dc-4b53-a250-3376f3b393e6")
    return found.group(1), found.group(2)


def _client_order_id():
    """Bitvavo's clientOrderId is a UUID (the FIX API requires one; the REST docs show one),
    which _orders.new_client_id's 32 letters and digits are not."""
    return str(uuid.uuid4())


def _ms(value):
    """A timestamp in ms, from ms or ns (Bitvavo's book gives one or the other); 0 when absent."""
    number = whole_or_zero(value)
    return number // 1_000_000 if number >= NANOSECONDS_FROM else number


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /v2/ticker/24h?market= (one object; the docs' schema shows a one-row list, also read)"""
    market = market_id(symbol)
    reply = api.get("/v2/ticker/24h", {"market": market}, signed=False)
    row = reply if isinstance(reply, dict) else next((r for r in _objects(reply) if r.get("market") == market), None)
    if not row:
        raise PluginError(f"Bitvavo returned no ticker for {symbol}")
    return _ticker(row), reply


def _ticker(t):
    """A market without trades in 24 h has nulls for its prices: they read as 0."""
    return {
        "symbol": str(to_symbol(t.get("market", ""))),
        "buy": float_or_zero(t.get("bid")), "sell": float_or_zero(t.get("ask")),
        "high": float_or_zero(t.get("high")), "low": float_or_zero(t.get("low")),
        "open": float_or_zero(t.get("open")), "last": float_or_zero(t.get("last")),
        "vol": float_or_zero(t.get("volume")), "time": _ms(t.get("timestamp")),
    }


def tickers(api, symbol=None):
    """GET /v2/ticker/24h without a market (every market, weight 25; a range such as EUR narrows it)"""
    if symbol is not None and symbol.kind != "spot":
        raise PluginError(f"Bitvavo has spot markets only, not {symbol}")
    reply = api.get("/v2/ticker/24h", signed=False)
    rows = [t for t in _objects(reply) if "-" in str(t.get("market", ""))]
    return [_ticker(t) for t in rows if symbol is None or symbol.covers(to_symbol(t["market"]))], reply


def depth(api, symbol, limit=None):
    """GET /v2/{market}/book?depth= (up to 1000 levels a side)"""
    reply = api.get(f"/v2/{market_id(symbol)}/book", {"depth": min(limit or DEPTH_DEFAULT, DEPTH_MAX)},
                    signed=False)
    book = _data(reply, dict)
    return {"time": _ms(book.get("timestamp")) or api.now(), "asks": book_levels(book.get("asks")),
            "bids": book_levels(book.get("bids"))}, reply


def trades(api, symbol):
    """GET /v2/{market}/trades (newest first; answered oldest first)"""
    reply = api.get(f"/v2/{market_id(symbol)}/trades", {"limit": TRADES_DEFAULT}, signed=False)
    rows = [_trade(t) for t in _objects(reply)]
    return sorted(rows, key=lambda row: row["time"]), reply


def _trade(t):
    return {"id": str(t.get("id", "")), "time": _ms(t.get("timestamp")), "price": float_or_zero(t.get("price")),
            "amount": float_or_zero(t.get("amount")), "type": t.get("side", "")}


def records(api, symbol, period=60, limit=None):
    """GET /v2/{market}/candles (newest first, 1440 a page; older pages asked for with `end`, the
    open time of the oldest candle so far, which ends the interval before it)"""
    interval = PERIODS.get(period)
    if interval is None:
        raise PluginError(f"Bitvavo has no {period}-minute candles; periods: {', '.join(map(str, PERIODS))}")
    path, wanted, candles, pages, end = f"/v2/{market_id(symbol)}/candles", limit or 100, {}, [], None
    while len(candles) < wanted:
        reply = api.get(path, {"interval": interval, "limit": min(wanted - len(candles), CANDLES_PAGE),
                               "end": end}, signed=False)
        pages.append(reply)
        rows = candle_rows(_data(reply, list))
        fresh = {row[0]: row for row in rows if row[0] not in candles}
        if not fresh:
            break
        candles.update(fresh)
        end = min(fresh)
    rows = sorted(candles.values())[-wanted:]
    return rows, one_or_all(pages)


def markets(api):
    """GET /v2/markets, through the markets cache (no raw)"""
    return markets_answer(api, ("spot",))


def load_markets(api, kind):
    """GET /v2/markets (markets that take orders: trading or auction); Bitvavo lists no swaps"""
    if kind != "spot":
        return {}
    found = {}
    for m in _objects(api.get("/v2/markets", signed=False)):
        if m.get("status") not in LIVE or "-" not in str(m.get("market", "")):
            continue
        symbol = to_symbol(m["market"])
        tick = number_or_zero(m.get("tickSize"))
        lot = _step(m.get("quantityDecimals"))
        found[str(symbol)] = market(
            symbol, tick, lot,
            min_qty=number_or_zero(m.get("minOrderInBaseAsset")), max_qty=number_or_zero(m.get("maxOrderInBaseAsset")),
            min_notional=number_or_zero(m.get("minOrderInQuoteAsset")),
            max_notional=number_or_zero(m.get("maxOrderInQuoteAsset")),
            quote_step=_step(m.get("notionalDecimals")))
    return found


def _step(decimals):
    """quantityDecimals 8 -> 0.00000001 (a string or a number, as Bitvavo sends either); garbled
    (2.5, NaN): 0, no step known."""
    try:
        digits = number_or_zero(decimals)
    except PluginError:
        return Decimal(0)
    return Decimal(1).scaleb(-whole_or_zero(digits)) if digits == whole_or_zero(digits) and 0 <= digits <= 18 else Decimal(0)


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /v2/balance (every currency Bitvavo lists for the account)"""
    reply = api.get("/v2/balance", signed=True)
    rows = [{"currency": b.get("symbol", ""), "free": number_or_zero(b.get("available")),
             "frozen": number_or_zero(b.get("inOrder"))} for b in _objects(reply)]
    return rows, reply


assets = accounts


# -- Trading ---------------------------------------------------------------------------------------

def trade(api, symbol, order_type, price, amount):
    """POST /v2/order (limit; price None = market, and a market buy spends `amount` quote through
    amountQuote). Exactly once: a UUID clientOrderId, looked up with GET /v2/order when the answer
    is lost."""
    market = market_id(symbol)
    market_buy = price is None and order_type == "buy"
    px, size = order_size(api, symbol, price, amount, quote_amount=market_buy)
    client_id = _client_order_id()
    body = {"market": market, "side": order_type, "orderType": "market" if price is None else "limit",
            "clientOrderId": client_id, "operatorId": api.keys.operator_id, "price": px,
            "amountQuote" if market_buy else "amount": size}

    def send():
        reply = api.post("/v2/order", body, signed=True, deadline=True)
        return {"id": _placed_id(market, reply)}, reply

    def find():
        try:
            reply = api.get("/v2/order", {"market": market, "clientOrderId": client_id}, signed=True)
        except PluginError as error:
            if error.code == "240":         # No order found
                return None
            raise
        return {"id": _placed_id(market, reply)}, reply

    try:
        return place_once(send, find, api, client_id)
    except PluginError as error:
        if error.code != "216":
            raise
        raise PluginError(f"{error} (a {order_type} of {symbol} spends {paid_in(symbol, order_type)})",
                          code=error.code) from error


def _placed_id(market, reply):
    order_id = _data(reply, dict).get("orderId")
    if not order_id:
        raise PluginError(f"Bitvavo answered the order without an orderId: {str(reply)[:80]}")
    return f"{market},{order_id}"


def orders(api, symbol=None):
    """GET /v2/ordersOpen (one market's, or every market's without a symbol; at most 100 a market,
    so no pages)"""
    reply = api.get("/v2/ordersOpen", {"market": market_id(symbol) if symbol else None}, signed=True)
    return [_order(o) for o in _objects(reply)], reply


def order(api, order_id, symbol=None):
    """GET /v2/order?market=&orderId="""
    market, oid = split_order_id(order_id)
    reply = api.get("/v2/order", {"market": market, "orderId": oid}, signed=True)
    return _order(_data(reply, dict)), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /v2/orders (the latest 1000, or 1000 from `since`; the closed ones, oldest first)"""
    reply = api.get("/v2/orders", {"market": market_id(symbol), "limit": HISTORY_PAGE, "start": since},
                    signed=True)
    closed = sorted((o for o in _objects(reply) if o.get("status") not in OPEN_STATES),
                    key=lambda o: whole_or_zero(o.get("created")))
    return [_order(o) for o in closed[-(limit or HISTORY_DEFAULT):]], reply


def cancel(api, order_id, symbol=None):
    """DELETE /v2/order?market=&orderId=&operatorId= (sent once, with its access-window deadline; an
    unanswered or refused cancel is explained by looking the order up: 233 is what a filled or
    canceled order answers)"""
    market, oid = split_order_id(order_id)

    def send():
        return True, api.call("DELETE", "/v2/order", {"market": market, "orderId": oid,
                                                      "operatorId": api.keys.operator_id}, signed=True,
                              deadline=True)

    return cancel_once(send, lambda: order(api, order_id), api)


def _order(o):
    """A Bitvavo order object as FMZ's Order. A market buy by amountQuote has no amount: its
    amount is the quote it spends, as placed; a market order has no price (0)."""
    filled, cost = number_or_zero(o.get("filledAmount")), number_or_zero(o.get("filledAmountQuote"))
    return {
        "id": f"{o.get('market', '')},{o.get('orderId', '')}",
        "symbol": str(to_symbol(o.get("market", ""))),
        "amount": number_or_zero(o.get("amount")) or number_or_zero(o.get("amountQuote")),
        "price": number_or_zero(o.get("price")),
        "deal_amount": filled, "avg_price": cost / filled if filled and cost > 0 else Decimal(0),
        "type": o.get("side", ""), "offset": "", "contract_type": "",
        "time": whole_or_zero(o.get("created")),
        "status": STATUS.get(o.get("status"), o.get("status", "")),
    }


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic) of a method's channel for one symbol: ("public", ("ticker24h", "BTC-EUR"));
    candles stay REST."""
    if method not in STREAM_CHANNELS:
        return None
    return "public", (STREAM_CHANNELS[method], market_id(symbol))


def stream_subscribe(topics):
    """{"action": "subscribe", "channels": [{"name": "book", "markets": ["BTC-EUR"]}, ...]}, then a
    getBook for each book: its snapshot (updates before it are ignored, a gap after it resyncs)."""
    books = [{"action": "getBook", "market": market, "depth": DEPTH_MAX} for name, market in topics if name == "book"]
    return [_channels("subscribe", topics)] + [json.dumps(book) for book in books]


def stream_unsubscribe(topics):
    return [_channels("unsubscribe", topics)]


def _channels(action, topics):
    """One message for every channel of the topics; a ticker24h topic takes the ticker channel along."""
    names = {}
    for name, market in topics:
        for channel in (name, "ticker") if name == "ticker24h" else (name,):
            names.setdefault(channel, []).append(market)
    return json.dumps({"action": action, "channels": [{"name": name, "markets": markets}
                                                      for name, markets in names.items()]})


def stream_ping():
    """Bitvavo's getTime action: answered {"action": "getTime", "response": {"time"}}."""
    return json.dumps({"action": "getTime"})


def stream_read(message, feed):
    """One message from Bitvavo: {"event": "subscribed" | "ticker24h" | "trade" | "book", ...}, an
    action's answer {"action", "response"} (getBook's snapshot; getTime), or an error {"action",
    "errorCode", "error"} (a market Bitvavo does not list: never confirmed, so REST answers)."""
    reply = json.loads(message)
    event = reply.get("event")
    if event == "subscribed":
        for name, markets in (reply.get("subscriptions") or {}).items():
            for market in markets or ():
                feed.subscribed((name, market))
    elif event == "ticker24h":
        for row in reply.get("data") or ():
            _read_ticker24h(row, reply, feed)
    elif event == "ticker":
        _read_best_prices(reply, feed)
    elif event == "trade" and reply.get("id") and reply.get("price"):     # (a trade without them is no trade)
        feed.trades(("trades", reply.get("market")), [_trade(reply)], reply)
    elif event == "book":
        _read_book(reply, feed)
    elif reply.get("action") == "getBook" and isinstance(reply.get("response"), dict):
        _read_snapshot(reply, feed)


def _read_ticker24h(row, reply, feed):
    """The whole ticker, its best prices as of its own time (the ticker channel moves them after)."""
    topic = ("ticker24h", row.get("market"))
    parts = feed.state(topic)
    ticker = _ticker(row)
    parts["ticker"] = ticker
    feed.ticker(topic, ticker, reply)


def _read_best_prices(reply, feed):
    """The ticker channel: only the fields that changed (bestBid, bestAsk, lastPrice, with sizes),
    applied to the last ticker24h (until one came, REST answers)."""
    topic = ("ticker24h", reply.get("market"))
    parts = feed.state(topic)
    if "ticker" not in parts:
        return
    ticker = dict(parts["ticker"])
    for field, name in BEST_PRICES.items():
        if reply.get(field) not in (None, ""):
            ticker[name] = number_or_zero(reply[field])
    ticker["time"] = max(ticker["time"], _now_ms())
    parts["ticker"] = ticker
    feed.ticker(topic, ticker, reply)


def _read_snapshot(reply, feed):
    snapshot = reply["response"]
    topic = ("book", snapshot.get("market"))
    book = feed.book(topic)
    if book is None:
        return
    book.reset(snapshot.get("asks"), snapshot.get("bids"))
    book.sequence, book.time = whole_or_zero(snapshot.get("nonce")), _ms(snapshot.get("timestamp")) or _now_ms()
    feed.depth(topic, reply)


def _read_book(reply, feed):
    """An update applies when its nonce follows the book's by one; an older one is already in the
    snapshot; one further on means an update was lost: a fresh snapshot. Updates before the
    snapshot are ignored (the snapshot, asked after subscribing, holds them)."""
    topic = ("book", reply.get("market"))
    book = feed.book(topic)
    if book is None or book.sequence is None:
        return
    nonce = whole_or_zero(reply.get("nonce"))
    if nonce <= book.sequence:
        return
    if nonce != book.sequence + 1:
        return feed.resync(topic, f"Bitvavo {topic[1]} book: update {nonce} after {book.sequence}")
    book.apply(reply.get("asks"), reply.get("bids"))
    book.sequence, book.time = nonce, _ms(reply.get("timestamp")) or _now_ms()
    feed.depth(topic, reply)


def _now_ms():
    """A book event carries no time: the time it was read."""
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
