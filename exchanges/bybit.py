"""Bybit, unified REST API v5 (categories spot and linear): https://bybit-exchange.github.io/docs/v5/intro

Keys: access_key = the API key; secret_key = its secret (HMAC keys; RSA keys are not supported).

Signing: lowercase hex HMAC-SHA256(secret, timestamp + api_key + recv_window + payload), where the
payload is the query string of a GET and the exact JSON body of a POST; sent as X-BAPI-SIGN with
X-BAPI-API-KEY, X-BAPI-TIMESTAMP (ms) and X-BAPI-RECV-WINDOW. Bybit refuses a timestamp outside
[server - recv_window, server + 1000 ms) with retCode 10002, hence the clock offset. Orders and
cancels carry recv_window = --timeout (at most 60 s): Bybit does not take them later than that,
which is what lets _orders.place_once prove that an unanswered order was not placed.

Order ids given to FMZ are `CATEGORY,SYMBOL,ORDERID` (`spot,BTCUSDT,1321003749386327552`,
`linear,BTCUSDT,c6f055d9-7f21-...`): order and cancel need no lookup, and a spot order is never
mistaken for a perpetual order of the same pair (both are named BTCUSDT on Bybit).

Perpetuals: `BTC_USDT.swap` is the linear (USDT-margined) perpetual BTCUSDT. Bybit counts linear
quantities in coins, so one FMZ contract is one coin (ct_val 1). Orders follow the symbol's
position mode, read once per key and symbol from /v5/position/list (rows with positionIdx 1 and
2 mean hedge mode) and read again when Bybit refuses an order with 10001: in one-way mode
closebuy/closesell are reduceOnly orders with positionIdx 0; in hedge mode every order names its
side's positionIdx (1 long, 2 short).
"""
import hashlib
import hmac
import json
import re
from collections import namedtuple
from decimal import Decimal

from exchanges._kit import (ACCOUNT_SETTINGS, MARKETS, PluginError, Symbol, book_levels, candle_rows, market,
                            markets_answer, float_or_zero, number_or_zero, one_or_all, signed_io, specs_by_exchange_id, whole_or_zero)
from exchanges._orders import cancel_once, new_client_id, order_size, paid_in, place_once
from exchanges._throttle import Limit, used_from
from exchanges._stream import Book, Requests

NAME = "Bybit"
BASE_URL = "https://api.bybit.com"
HOSTS = {}                           # one REST host for every category
POST_PARAMS = "json"                 # a POST's params travel as a JSON body (the signed payload)
CLOCK_ERRORS = ("10002",)            # The request time exceeds the time window range.
RATE_LIMIT_ERRORS = ("10006",)       # Too many visits!
# "Outcome unknown" (docs v5 "Error Codes"): 10000 Server Timeout and 10016 Server error, both with
# HTTP 200. _kit looks the order up after either, whatever the HTTP status.
AMBIGUOUS_ERRORS = ("10000", "10016")
# Bybit counts two ways (docs v5 "Rate Limit Rules"): every IP may send 600 requests in any 5 s
# (all endpoints together, public and private: one pool), and each account (UID) has a limit per
# endpoint per second: order create and cancel 10/s for linear (20/s spot: 10 kept for both, the
# stricter), queries taken as 20/s. Every private reply carries X-Bapi-Limit (the account's limit
# of that endpoint) and X-Bapi-Limit-Status (what is left of it in this second), so the throttle
# follows Bybit's own count of the endpoint (another program on the same key).
# X-Bapi-Limit minus X-Bapi-Limit-Status: the calls Bybit counted to this endpoint and UID.
_BAPI_USED = used_from("X-Bapi-Limit", "X-Bapi-Limit-Status")
PER_IP = Limit(600, 5.0, per="ip", pool="requests")       # one budget for every endpoint


def _per_uid(requests):
    return [PER_IP, Limit(requests, 1.0, per="key", used=_BAPI_USED)]


RATE_LIMITS = {
    "GET /v5/market/time": PER_IP,
    "GET /v5/market/tickers": PER_IP,
    "GET /v5/market/orderbook": PER_IP,
    "GET /v5/market/recent-trade": PER_IP,
    "GET /v5/market/kline": PER_IP,
    "GET /v5/market/instruments-info": PER_IP,
    "GET /v5/market/funding/history": PER_IP,
    "GET /v5/account/wallet-balance": _per_uid(20),
    "GET /v5/position/list": _per_uid(20),
    "GET /v5/order/realtime": _per_uid(20),
    "GET /v5/order/history": _per_uid(20),
    "POST /v5/order/create": _per_uid(10),
    "POST /v5/order/cancel": _per_uid(10),
    "POST /v5/position/set-leverage": _per_uid(10),
}
RECV_WINDOW = "5000"                 # ms a signed request stays valid (Bybit's default)
CATEGORIES = {"spot": "spot", "swap": "linear"}      # FMZ market kind -> Bybit category
MARKET_KINDS = ("spot", "swap")      # what `markets` and `tickers` list
KINDS = {category: kind for kind, category in CATEGORIES.items()}
PAGE = 50                            # max rows per page of the order lists
KLINE_PAGE = 1000                    # max candles per /v5/market/kline call
WEEK_MS = 7 * 24 * 3600 * 1000       # /v5/order/history answers at most a 7-day window per call
DEPTH_MAX = {"spot": 200, "linear": 500}
TRADES_LIMIT = {"spot": 60, "linear": 100}
DEPTH_DEFAULT = 20                   # levels a side when the docker sends no limit
TRADES_DEFAULT = {"spot": 60, "swap": 100}       # trades REST answers (and so the stream) per market kind

# The stream (v5 "WebSocket Stream", public): /v5/public/spot and /v5/public/linear, topics
# tickers.BTCUSDT (linear: a snapshot, then deltas of the fields that changed; spot: snapshots
# without the best bid and ask, which orderbook.1 adds), orderbook.50.BTCUSDT (a snapshot, then
# deltas whose update id `u` follows the last one by one; u = 1 is a fresh snapshot after a
# restart of Bybit's service) and publicTrade.BTCUSDT. {"req_id", "op": "subscribe" |
# "unsubscribe", "args": [topic, ...]} (spot: at most 10 args a request) is answered {"success",
# "ret_msg", "req_id", "op"}. Bybit asks for {"op": "ping"} every 20 s and drops a connection
# that sends nothing for longer; at most 500 connections per 5 minutes per IP.
STREAM_URLS = {"spot": "wss://stream.bybit.com/v5/public/spot", "linear": "wss://stream.bybit.com/v5/public/linear"}
STREAM_LOGIN = ()                    # public topics need no key
STREAM_KEEPALIVE = 20.0              # seconds without a message before {"op": "ping"}
STREAM_SILENCE = 30.0                # seconds without any message (the pong included): dead
STREAM_CONNECTS = (500, 300.0)       # connections per seconds, per IP
STREAM_REQUESTS = (20, 1.0)          # subscribe / unsubscribe requests a second (a modest pace: none is documented)
STREAM_TOPICS = 100                  # channels a connection carries (a spot ticker is two topics)
STREAM_DEPTH = 50                    # levels a side of orderbook.50
STREAM_ARGS = 10                     # topics one spot request may carry
STREAM_NAMES = {"ticker": ("tickers.",), "depth": ("orderbook.50.",), "trades": ("publicTrade.",)}
SUBSCRIBING = Requests()             # subscribe req_ids awaiting Bybit's answer
# "Order does not exist" per category (docs v5 "Error Codes"): order() reports a lookup that
# finds nothing with it, as cancel() gets it from Bybit.
NO_ORDER = {"spot": ("170213", "Order does not exist."), "linear": ("110001", "Order does not exist")}
INSUFFICIENT = ("170131", "110004", "110007", "110012", "110044", "110045")
LEVERAGE_UNCHANGED = "110043"        # Set leverage has not been modified: already at that level

# FMZ swap order type -> (Bybit side, positionIdx in hedge mode, whether it only reduces)
SWAP_SIDES = {
    "buy": ("Buy", 1, False),
    "sell": ("Sell", 2, False),
    "closebuy": ("Sell", 1, True),
    "closesell": ("Buy", 2, True),
}

# Paper trading's maker and taker rates, {kind: (maker, taker)}: the standard (lowest tier)
# rates the exchange publishes (fee pages, 2025).
FEES = {"spot": ("0.001", "0.001"), "swap": ("0.0002", "0.00055")}

# FMZ period in minutes -> Bybit kline interval (docs v5 enum "interval").
PERIODS = {
    1: "1", 3: "3", 5: "5", 15: "15", 30: "30",
    60: "60", 120: "120", 240: "240", 360: "360", 720: "720",
    1440: "D", 10080: "W",
}

# Bybit orderStatus (docs v5 enum "orderStatus") -> the FMZ status vocabulary.
STATUS = {
    "New": "pending",
    "Untriggered": "pending",
    "Triggered": "pending",
    "PartiallyFilled": "partial-filled",
    "Filled": "filled",
    "Cancelled": "canceled",
    "PartiallyFilledCanceled": "canceled",
    "Deactivated": "canceled",
    "Rejected": "canceled",
}

Keys = namedtuple("Keys", "api_key secret")


def parse_keys(access_key, secret_key):
    api_key, secret = (access_key or "").strip(), (secret_key or "").strip()
    if not api_key or not secret or "," in secret:
        raise PluginError("Bybit keys: access_key must be the API key and secret_key its secret")
    return Keys(api_key, secret)


def sign(request, keys, now_ms):
    timestamp = str(now_ms)
    window = str(request.window_ms) if request.window_ms else RECV_WINDOW
    payload = request.body if request.method == "POST" else request.query
    prehash = timestamp + keys.api_key + window + payload
    request.headers.update({
        "X-BAPI-API-KEY": keys.api_key,
        "X-BAPI-SIGN": hmac.new(keys.secret.encode(), prehash.encode(), hashlib.sha256).hexdigest(),
        "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": window,
    })


def check(status, reply):
    """Every Bybit reply, success or refusal, is {retCode, retMsg, result, retExtInfo, time}."""
    if not isinstance(reply, dict) or "retCode" not in reply:
        raise PluginError(f"Bybit answered HTTP {status} without a retCode: {str(reply)[:80]}",
                          ambiguous=status >= 500)
    code = str(reply["retCode"])
    if code != "0":
        message = reply.get("retMsg") or f"HTTP {status}"
        raise PluginError(f"Bybit {code}: {message}", code=code, ambiguous=status >= 500)


def server_time(api):
    """GET /v5/market/time"""
    return int(api.get("/v5/market/time", signed=False)["time"])


def _data(reply):
    """The `result` of a Bybit reply, {retCode, retMsg, result, retExtInfo, time}: the one place
    the envelope is opened."""
    return reply.get("result") or {}


def _rows(reply):
    """The rows of a reply whose result is a list ({"list": [...], "nextPageCursor": ...})."""
    return _data(reply).get("list") or []


# -- Symbols and ids -------------------------------------------------------------------------------

def category(symbol):
    return CATEGORIES[symbol.kind]


def bybit_symbol(symbol):
    """Symbol('BTC_USDT') and Symbol('BTC_USDT.swap') -> BTCUSDT (the category tells them apart)."""
    return symbol.base + symbol.quote


def split_order_id(order_id):
    """`spot,BTCUSDT,123` -> ("spot", "BTCUSDT", "123")."""
    parts = order_id.split(",")
    if (len(parts) != 3 or parts[0] not in KINDS or not re.fullmatch(r"[A-Z0-9]{2,40}", parts[1])
            or not re.fullmatch(r"[A-Za-z0-9\-]{1,64}", parts[2])):
        raise PluginError(f"invalid Bybit order id {order_id[:60]!r}: expected CATEGORY,SYMBOL,ORDERID "
                          f"such as spot,BTCUSDT,1321003749386327552")
    return parts[0], parts[1], parts[2]


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /v5/market/tickers"""
    reply = api.get("/v5/market/tickers", {"category": category(symbol), "symbol": bybit_symbol(symbol)},
                    signed=False)
    rows = _rows(reply)
    if not rows:
        raise PluginError(f"Bybit returned no ticker for {symbol}")
    return _ticker(rows[0], str(symbol), reply["time"]), reply


def _ticker(t, symbol, time_ms):
    """Bybit tickers carry no timestamp of their own: the reply's `time` is used."""
    return {
        "symbol": symbol,
        "buy": float_or_zero(t.get("bid1Price")), "sell": float_or_zero(t.get("ask1Price")),
        "high": float_or_zero(t.get("highPrice24h")), "low": float_or_zero(t.get("lowPrice24h")),
        "open": float_or_zero(t.get("prevPrice24h")), "last": float_or_zero(t.get("lastPrice")),
        "vol": float_or_zero(t.get("volume24h")), "time": whole_or_zero(time_ms),
    }


def depth(api, symbol, limit=None):
    """GET /v5/market/orderbook (up to 200 levels a side for spot, 500 for linear)"""
    reply = api.get("/v5/market/orderbook", {"category": category(symbol), "symbol": bybit_symbol(symbol),
                                             "limit": min(limit or DEPTH_DEFAULT, DEPTH_MAX[category(symbol)])},
                    signed=False)
    book = _data(reply)
    return {"time": whole_or_zero(book.get("ts")), "asks": book_levels(book.get("a")),
            "bids": book_levels(book.get("b"))}, reply


def trades(api, symbol):
    """GET /v5/market/recent-trade (newest first: 60 for spot, 100 for linear; answered oldest first)"""
    reply = api.get("/v5/market/recent-trade", {"category": category(symbol), "symbol": bybit_symbol(symbol),
                                                "limit": TRADES_LIMIT[category(symbol)]}, signed=False)
    return [_trade(t) for t in _rows(reply)][::-1], reply


def _trade(t):
    return {"id": t["execId"], "time": whole_or_zero(t["time"]), "price": float_or_zero(t["price"]),
            "amount": float_or_zero(t["size"]), "type": t["side"].lower()}


def records(api, symbol, period=60, limit=None):
    """GET /v5/market/kline (newest first, 1000 a page; paged back with `end`)"""
    interval = PERIODS.get(period)
    if interval is None:
        raise PluginError(f"Bybit has no {period}-minute candles; periods: {', '.join(map(str, PERIODS))}")
    wanted, rows, pages, end = limit or 100, [], [], None
    while len(rows) < wanted:
        asked = min(wanted - len(rows), KLINE_PAGE)
        reply = api.get("/v5/market/kline", {"category": category(symbol), "symbol": bybit_symbol(symbol),
                                             "interval": interval, "limit": asked, "end": end}, signed=False)
        pages.append(reply)
        page = _rows(reply)
        rows += candle_rows(page)
        if len(page) < asked:
            break
        end = int(page[-1][0]) - 1
    rows.sort(key=lambda row: row[0])
    return rows, one_or_all(pages)


def load_markets(api, kind):
    """GET /v5/market/instruments-info (spot in one reply; linear paged with `cursor`)"""
    markets, cursor = {}, None
    while True:
        reply = api.get("/v5/market/instruments-info", {"category": CATEGORIES[kind], "limit": 1000,
                                                        "cursor": cursor}, signed=False)
        for inst in _rows(reply):
            spec = _market(inst, kind)
            if spec:
                markets[spec["symbol"]] = spec
        cursor = _data(reply).get("nextPageCursor")
        if not cursor:
            return markets


def _market(inst, kind):
    """One instrument as FMZ Market fields; perpetuals only among linear contracts, and only those
    named BASE+QUOTE, so that BTC_USDT.swap <-> BTCUSDT holds both ways."""
    base, quote = inst.get("baseCoin", ""), inst.get("quoteCoin", "")
    if (inst.get("status") != "Trading" or inst.get("symbol") != base + quote
            or (kind == "swap" and inst.get("contractType") != "LinearPerpetual")):
        return None
    lot, tick = inst.get("lotSizeFilter") or {}, number_or_zero((inst.get("priceFilter") or {}).get("tickSize"))
    step = number_or_zero(lot.get("basePrecision") if kind == "spot" else lot.get("qtyStep"))
    symbol = Symbol(base, quote, kind)
    interval = whole_or_zero(inst.get("fundingInterval")) * 60_000       # minutes -> ms
    return market(
        symbol, tick, step, min_qty=number_or_zero(lot.get("minOrderQty")),
        max_qty=number_or_zero(lot.get("maxLimitOrderQty") or lot.get("maxOrderQty")),
        min_notional=number_or_zero(lot.get("minOrderAmt") or lot.get("minNotionalValue")),
        max_notional=number_or_zero(lot.get("maxOrderAmt")),
        ct_val=Decimal(1 if kind == "swap" else 0), ct_val_ccy=base if kind == "swap" else "",
        quote_step=number_or_zero(lot.get("quotePrecision")), funding_interval=interval)


def markets(api):
    """GET /v5/market/instruments-info (cached): every trading spot pair and linear perpetual,
    keyed by FMZ symbol"""
    return markets_answer(api, MARKET_KINDS)


def tickers(api, symbol=None):
    """GET /v5/market/tickers (spot and linear without a symbol; one call per category)"""
    rows, replies = [], []
    for kind in [symbol.kind] if symbol else MARKET_KINDS:
        reply = api.get("/v5/market/tickers", {"category": CATEGORIES[kind]}, signed=False)
        replies.append(reply)
        for t, spec in _listed_rows(api, CATEGORIES[kind], reply, symbol):
            rows.append(_ticker(t, spec["symbol"], reply["time"]))
    return rows, one_or_all(replies)


def _listed_rows(api, category_name, reply, symbol):
    """(row, market spec) of a reply's rows whose instrument is listed and within `symbol`."""
    specs = specs_by_exchange_id(api, KINDS[category_name])
    for row in _rows(reply):
        spec = specs.get(row.get("symbol"))
        if spec and (symbol is None or symbol.covers(Symbol(spec["base_asset"], spec["quote_asset"],
                                                            KINDS[category_name]))):
            yield row, spec


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /v5/account/wallet-balance (unified trading account: every coin with a balance)"""
    reply = api.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, signed=True)
    rows = []
    for account in _rows(reply):
        for c in account.get("coin") or []:
            rows.append(_balance(c))
    return rows, reply


def _balance(c):
    """frozen = spot orders (`locked`) + perpetual orders' and positions' initial margin; free =
    the rest of walletBalance, less any bonus (Bybit's own formula for what an order may use).
    A coin that margins positions also gets its equity and unrealised profit."""
    frozen = sum(number_or_zero(c.get(field)) for field in ("locked", "totalOrderIM", "totalPositionIM"))
    free = number_or_zero(c.get("walletBalance")) - frozen - number_or_zero(c.get("bonus"))
    row = {"currency": c["coin"], "free": free, "frozen": frozen}
    if number_or_zero(c.get("totalPositionIM")) or number_or_zero(c.get("unrealisedPnl")):
        row.update(equity=number_or_zero(c.get("equity")), upnl=number_or_zero(c.get("unrealisedPnl")))
    return row


assets = accounts


# -- Trading ---------------------------------------------------------------------------------------

def trade(api, symbol, order_type, price, amount):
    """POST /v5/order/create (price None = market; a spot market buy spends `amount` quote;
    perpetual amounts are coins)"""
    market_buy = price is None and order_type == "buy" and not symbol.is_swap
    px, qty = order_size(api, symbol, price, amount, quote_amount=market_buy)   # quote_step = quotePrecision
    body = {"category": category(symbol), "symbol": bybit_symbol(symbol),
            "orderType": "Market" if price is None else "Limit", "qty": qty, "price": px,
            "timeInForce": "IOC" if price is None else "GTC", "orderLinkId": new_client_id()}
    if symbol.is_swap:
        body.update(_swap_order_fields(api, symbol, order_type))
    else:
        body["side"] = order_type.capitalize()
        if price is None:
            body["marketUnit"] = "quoteCoin" if market_buy else "baseCoin"
    try:
        return _place(api, symbol, order_type, body)
    except PluginError as error:
        if error.code in INSUFFICIENT:
            raise PluginError(f"{error} (this order pays in {paid_in(symbol, order_type)})", code=error.code) from error
        raise


def _place(api, symbol, order_type, body):
    """Place exactly once. A perpetual order refused with 10001 because the trader has switched
    the symbol's position mode since we read it is sent once more with the new mode's positionIdx
    (it was refused, so sending it again cannot make two orders)."""
    send, find = lambda: _send_order(api, body), lambda: _find_order(api, body)
    try:
        return place_once(send, find, api, body["orderLinkId"])
    except PluginError as error:
        if not (symbol.is_swap and error.code == "10001"):
            raise
        sent_idx = body["positionIdx"]
        ACCOUNT_SETTINGS.forget(api, _mode_setting(symbol))
        body.update(_swap_order_fields(api, symbol, order_type))
        if body["positionIdx"] == sent_idx:
            raise
        return place_once(send, find, api, body["orderLinkId"])


def _swap_order_fields(api, symbol, order_type):
    """side from FMZ's order type, positionIdx (0 in one-way mode, 1/2 in hedge mode) and
    reduceOnly for closes."""
    side, hedge_idx, closes = SWAP_SIDES[order_type]
    fields = {"side": side, "positionIdx": hedge_idx if position_mode(api, symbol) == "hedge" else 0}
    if closes:
        fields["reduceOnly"] = True
    return fields


def position_mode(api, symbol):
    """GET /v5/position/list (read once per key and symbol: "hedge" when the rows have positionIdx
    1 and 2, "one-way" for positionIdx 0; Bybit has no endpoint that states the mode)"""
    def load():
        reply = api.get("/v5/position/list", {"category": "linear", "symbol": bybit_symbol(symbol)}, signed=True)
        hedged = any(row.get("positionIdx") in (1, 2) for row in _rows(reply))
        return "hedge" if hedged else "one-way"
    return ACCOUNT_SETTINGS.get(api, _mode_setting(symbol), load)


def _mode_setting(symbol):
    return "position mode " + bybit_symbol(symbol)


def _send_order(api, body):
    reply = api.post("/v5/order/create", body, signed=True, deadline=True)
    return {"id": f"{body['category']},{body['symbol']},{_data(reply)['orderId']}"}, reply


def _find_order(api, body):
    """The order placed with this orderLinkId, or None when Bybit has none."""
    reply = api.get("/v5/order/realtime", {"category": body["category"], "symbol": body["symbol"],
                                           "orderLinkId": body["orderLinkId"]}, signed=True)
    rows = _rows(reply)
    if not rows:
        return None
    return {"id": f"{body['category']},{body['symbol']},{rows[0]['orderId']}"}, reply


def orders(api, symbol=None):
    """GET /v5/order/realtime (open orders of a symbol, or of every spot pair; every page)"""
    query = {"category": category(symbol) if symbol else "spot",
             "symbol": bybit_symbol(symbol) if symbol else None, "limit": PAGE}
    rows, pages = _pages(api, "/v5/order/realtime", query)
    specs = specs_by_exchange_id(api, KINDS[query["category"]])
    return [_order(o, query["category"], specs) for o in rows], pages


def order(api, order_id, symbol=None):
    """GET /v5/order/realtime (open and recent orders), then GET /v5/order/history"""
    category_name, name, bybit_id = split_order_id(order_id)
    query = {"category": category_name, "symbol": name, "orderId": bybit_id}
    for path in ("/v5/order/realtime", "/v5/order/history"):
        reply = api.get(path, query, signed=True)
        rows = _rows(reply)
        if rows:
            return _order(rows[0], category_name, specs_by_exchange_id(api, KINDS[category_name])), reply
    code, message = NO_ORDER[category_name]
    raise PluginError(f"Bybit {code}: {message} (no {category_name} order {bybit_id} on {name})", code=code)


def historyorders(api, symbol, since=None, limit=None):
    """GET /v5/order/history (closed orders; 7-day windows walked back from now to `since`)"""
    wanted = limit or 100
    query = {"category": category(symbol), "symbol": bybit_symbol(symbol), "limit": PAGE}
    rows, pages = [], []
    for start, end in _windows(api.now(), since):
        found, replies = _pages(api, "/v5/order/history", {**query, "startTime": start, "endTime": end},
                                max_rows=wanted - len(rows))
        rows += found
        pages += replies
        if len(rows) >= wanted:
            break
    rows.sort(key=lambda o: whole_or_zero(o.get("createdTime")))
    specs = specs_by_exchange_id(api, KINDS[query["category"]])
    return [_order(o, query["category"], specs) for o in rows], pages


def _windows(now, since):
    """(startTime, endTime) pairs of at most 7 days, newest first, covering [since, now].
    Without `since`, one call with no times: Bybit's own default, the last 7 days."""
    if since is None:
        yield None, None
        return
    end = now
    while end > since:
        yield max(since, end - WEEK_MS), end
        end -= WEEK_MS


def positions(api, symbol=None):
    """GET /v5/position/list (linear: one swap, a range such as USDT.swap, or every settle coin)"""
    if symbol and symbol.base:
        queries = [{"symbol": bybit_symbol(symbol)}]
    else:
        coins = {symbol.quote} if symbol else {spec["quote_asset"] for spec in MARKETS.get(api, "swap").values()}
        queries = [{"settleCoin": coin} for coin in sorted(coins)]
    rows, pages = [], []
    for query in queries:
        found, replies = _pages(api, "/v5/position/list", {"category": "linear", "limit": 200, **query})
        rows += found
        pages += replies
    specs = specs_by_exchange_id(api, "swap")
    answer = [_position(p, specs[p["symbol"]]["symbol"]) for p in rows
              if number_or_zero(p.get("size")) and p.get("symbol") in specs]
    return answer, one_or_all(pages)


def _position(p, symbol):
    """Sizes are coins (one FMZ contract); Bybit does not say how much a resting close reserves."""
    return {
        "symbol": symbol, "margin_level": number_or_zero(p.get("leverage")), "amount": number_or_zero(p.get("size")),
        "frozen_amount": Decimal(0), "price": number_or_zero(p.get("avgPrice")),
        "profit": number_or_zero(p.get("unrealisedPnl")),
        "type": 0 if p.get("side") == "Buy" else 1, "contract_type": "swap",
        "margin": number_or_zero(p.get("positionIM") or p.get("positionBalance")),
    }


def margin_level(api, symbol, level):
    """POST /v5/position/set-leverage (the same leverage for both sides; already set = success)"""
    body = {"category": "linear", "symbol": bybit_symbol(symbol), "buyLeverage": str(level),
            "sellLeverage": str(level)}
    try:
        reply = api.post("/v5/position/set-leverage", body, signed=True, idempotent=True)
    except PluginError as error:
        if error.code != LEVERAGE_UNCHANGED:
            raise
        reply = {"retCode": int(error.code), "retMsg": str(error).partition(": ")[2]}
    return True, reply


def fundings(api, symbol=None):
    """GET /v5/market/tickers (linear: fundingRate, nextFundingTime; the interval from
    instruments-info fundingInterval)"""
    query = {"category": "linear", "symbol": bybit_symbol(symbol) if symbol and symbol.base else None}
    reply = api.get("/v5/market/tickers", query, signed=False)
    rows = []
    for t, spec in _listed_rows(api, "linear", reply, symbol):
        interval = spec["funding_interval"] or int(number_or_zero(t.get("fundingIntervalHour")) * 3_600_000)
        rows.append({"symbol": spec["symbol"], "rate": number_or_zero(t.get("fundingRate")),
                     "time": whole_or_zero(t.get("nextFundingTime")), "interval": interval})
    return rows, reply


def cancel(api, order_id, symbol=None):
    """POST /v5/order/cancel (sent once, with its recv_window deadline; an unanswered or refused
    cancel is explained by looking the order up: 110001/170213 "Order does not exist" is also what
    a filled or canceled order answers)"""
    category_name, name, bybit_id = split_order_id(order_id)

    def send():
        return True, api.post("/v5/order/cancel", {"category": category_name, "symbol": name, "orderId": bybit_id},
                              signed=True, deadline=True)

    return cancel_once(send, lambda: order(api, order_id), api)


def _order(o, category_name, specs):
    """A Bybit order object as FMZ's Order; an instrument no longer listed keeps Bybit's name.
    `type` is the side that went to the book; a linear order's `offset` is close when it is
    reduceOnly (one-way mode) or a Sell on positionIdx 1 / Buy on positionIdx 2 (hedge mode);
    `time` is its creation (createdTime)."""
    avg = number_or_zero(o.get("avgPrice"))
    filled, value = number_or_zero(o.get("cumExecQty")), number_or_zero(o.get("cumExecValue"))
    if not avg and filled:
        avg = value / filled
    side, swap = o.get("side", "").lower(), category_name == "linear"
    closes = o.get("reduceOnly") is True or (o.get("positionIdx"), side) in ((1, "sell"), (2, "buy"))
    return {
        "id": f"{category_name},{o['symbol']},{o['orderId']}",
        "symbol": specs[o["symbol"]]["symbol"] if o["symbol"] in specs else o["symbol"],
        "amount": number_or_zero(o.get("qty")), "price": number_or_zero(o.get("price")),
        "deal_amount": filled, "avg_price": avg,
        "type": side,
        "offset": ("close" if closes else "open") if swap else "",
        "contract_type": "swap" if swap else "",
        "time": whole_or_zero(o.get("createdTime")),
        "status": STATUS.get(o.get("orderStatus"), o.get("orderStatus", "")),
    }


def _pages(api, path, query, max_rows=None):
    """Follow Bybit's `nextPageCursor` until it is empty or max_rows are in."""
    rows, pages, cursor = [], [], None
    while max_rows is None or len(rows) < max_rows:
        reply = api.get(path, {**query, "cursor": cursor}, signed=True)
        pages.append(reply)
        rows += _rows(reply)
        cursor = _data(reply).get("nextPageCursor")
        if not cursor:
            break
    return rows[:max_rows], pages


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic): ("linear", ("depth", Symbol('BTC_USDT.swap')))."""
    if method == "records":
        return None                       # candles stay REST
    return category(symbol), (method, symbol)


def stream_names(topic):
    """Bybit's topics of one channel: ["orderbook.50.BTCUSDT"]; a spot ticker also orderbook.1."""
    method, symbol = topic
    names = [prefix + bybit_symbol(symbol) for prefix in STREAM_NAMES[method]]
    return names + (["orderbook.1." + bybit_symbol(symbol)] if method == "ticker" and not symbol.is_swap else [])


def stream_subscribe(topics):
    """{"req_id": "7", "op": "subscribe", "args": ["tickers.BTCUSDT", ...]}, 10 args at most each."""
    return _operations("subscribe", topics, SUBSCRIBING.new)


def stream_unsubscribe(topics):
    return _operations("unsubscribe", topics, lambda chunk: "unsubscribe")


def _operations(op, topics, request_id):
    topics, messages = list(topics), []
    for start in range(0, len(topics), STREAM_ARGS // 2):            # a topic has at most 2 args
        chunk = topics[start:start + STREAM_ARGS // 2]
        messages.append(json.dumps({"req_id": str(request_id(chunk)), "op": op,
                                    "args": [name for topic in chunk for name in stream_names(topic)]}))
    return messages


def stream_ping():
    return json.dumps({"op": "ping"})


def stream_read(message, feed):
    """One message: an answer {"success", "ret_msg", "op", "req_id"} (pongs too), or a push
    {"topic", "type": "snapshot" | "delta", "ts", "data"}."""
    reply = json.loads(message)
    if "topic" not in reply:
        topics = SUBSCRIBING.answered(int(reply["req_id"])) if str(reply.get("req_id", "")).isdigit() else ()
        if reply.get("op") == "subscribe" and reply.get("success"):
            for topic in topics:
                feed.subscribed(topic)
        return
    name = reply["topic"]
    topic = feed.topic_named(name, stream_names)
    if topic is not None:
        STREAM_READERS[topic[0]](topic, name, reply, feed)


def _read_ticker(topic, name, reply, feed):
    """tickers: a snapshot, then (linear) deltas of the changed fields; a spot ticker's best bid
    and ask come from orderbook.1 (kept as a book of one level)."""
    parts, symbol, data = feed.state(topic), topic[1], reply.get("data") or {}
    if name.startswith("orderbook."):
        best = parts.setdefault("best", Book())
        if not _update_book(best, reply, data) and best.sequence is not None:
            return feed.resync(topic, f"Bybit {name}: update {data.get('u')} after {best.sequence}")
    elif reply.get("type") == "snapshot":
        parts["ticker"] = dict(data)
    elif "ticker" in parts:
        parts["ticker"].update(data)
    if "ticker" in parts and (symbol.is_swap or "best" in parts):
        fields = dict(parts["ticker"])
        if not symbol.is_swap:
            asks, bids = parts["best"].sides()
            fields.update(ask1Price=asks[0][0] if asks else None, bid1Price=bids[0][0] if bids else None)
        feed.ticker(topic, _ticker(fields, str(symbol), reply.get("ts")), reply)


def _read_depth(topic, name, reply, feed):
    book = feed.book(topic)
    if _update_book(book, reply, reply.get("data") or {}):
        feed.depth(topic, reply)
    elif book.sequence is not None:
        feed.resync(topic, f"Bybit {name}: update {reply['data'].get('u')} after {book.sequence}")


def _update_book(book, reply, data):
    """A snapshot resets the book; a delta applies when its `u` follows the last by one. False
    when a delta does not follow (a message was lost) or came before any snapshot."""
    if reply.get("type") == "snapshot":
        book.reset(data.get("a"), data.get("b"))
    elif book.sequence is None or data.get("u") != book.sequence + 1:
        return False
    else:
        book.apply(data.get("a"), data.get("b"))
    book.sequence, book.time = data.get("u"), whole_or_zero(reply.get("ts"))
    return True


def _read_trades(topic, name, reply, feed):
    """publicTrade: [{"i" id, "T" time, "p" price, "v" size, "S" Buy | Sell}, ...]"""
    rows = [_trade({"execId": t.get("i"), "time": t.get("T"), "price": t.get("p"), "size": t.get("v"),
                    "side": t.get("S", "")}) for t in reply.get("data") or []]
    feed.trades(topic, sorted(rows, key=lambda row: row["time"]), reply)


STREAM_READERS = {"ticker": _read_ticker, "depth": _read_depth, "trades": _read_trades}


METHODS = {
    "ticker": ticker,
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
    "markets": markets,
    "tickers": tickers,
    "positions": positions,
    "margin_level": margin_level,
    "fundings": fundings,
    "__api_": signed_io,
}
