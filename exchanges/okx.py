"""OKX, REST API v5: https://www.okx.com/docs-v5/en/

Keys: access_key = the API key; secret_key = `SECRET,PASSPHRASE`, optionally followed by options:
`simulate` (sends `x-simulated-trading: 1`, i.e. OKX demo trading) and `isolated` or `cross`
(the margin mode of swap orders and leverage; cross when absent), e.g. `S,P,simulate,isolated`.

Signing: base64(HMAC-SHA256(secret, timestamp + METHOD + path[?query] + body)), where the
timestamp is ISO-8601 UTC with milliseconds and is also sent as OK-ACCESS-TIMESTAMP. OKX
refuses a timestamp more than 30 s away from its clock (50102), hence the clock offset.

Orders carry the `expTime` header ("Transaction Timeouts": OKX does not process an order once its
clock is past it), --timeout after signing, which is what lets _orders.place_once prove that an
unanswered order was not placed. OKX takes expTime on placing and amending orders, not on cancels.

Order ids given to FMZ are `INSTID,ORDID` (`ETH-USDT,123456`): order and cancel need no lookup.

Perpetual swaps: `BTC_USDT.swap` is BTC-USDT-SWAP (USDT-margined), `BTC_USD.swap` BTC-USD-SWAP
(coin-margined); amounts are contracts (ctVal of ctValCcy each). Orders follow the account's
position mode, read once per key from /api/v5/account/config: in net_mode closebuy/closesell are
reduce-only orders; in long_short_mode every order names its posSide.
"""
import base64
import hashlib
import hmac
import json
import zlib
from collections import namedtuple
from decimal import Decimal

from exchanges._kit import (ACCOUNT_SETTINGS, PluginError, Symbol, book_levels, candle_rows, iso_ms, market,
                            markets_answer, float_or_zero, number_or_zero, one_or_all, signed_io, whole_or_zero)
from exchanges._orders import cancel_once, new_client_id, order_size, place_once
from exchanges._throttle import Limit

NAME = "OKX"
BASE_URL = "https://www.okx.com"
HOSTS = {}                           # one REST host for spot and swaps
POST_PARAMS = "json"                 # a POST's params travel as a JSON body
CLOCK_ERRORS = ("50102", "50036")    # Timestamp request expired / expTime earlier than the system time
RATE_LIMIT_ERRORS = ("50011", "50013", "50061")   # Too Many Requests / Systems busy / order rate limit
# "Outcome unknown" (docs-v5 "Error Code"): 50004 endpoint request timeout (HTTP 400, "does not mean
# that the request was successful or failed"), 50026 system error, 51054 request timed out, 51149
# order timed out (same words as 50004), 51412 cancellation timed out, 51410 the order is already
# being canceled. _kit looks the order up after any of them, whatever the HTTP status.
AMBIGUOUS_ERRORS = ("50004", "50026", "51054", "51149", "51410", "51412")
# Documented limits (docs-v5, each endpoint's "Rate Limit" and "Rate limit rule" lines), all per
# 2 s. Public endpoints count per IP (a plain tuple: the whole process); private ones per account
# (a plain tuple on a signed call: per API key). The order endpoints count per account AND
# instrument ("Place order: 60 requests per 2 seconds, Rate limit rule: User ID + Instrument ID";
# cancel-order and GET trade/order the same), so a grid on two pairs has 60 per 2 s on each; on
# top of that, a sub-account may place at most 1000 orders per 2 s over all its instruments.
# Where OKX counts finer than shown here (instruments per IP and instType), counting coarser is
# only stricter. OKX sends no usage headers: the throttle counts alone.
PER_INSTRUMENT = Limit(60, 2.0, per="key+instId")
RATE_LIMITS = {
    "GET /api/v5/market/ticker": (20, 2.0),
    "GET /api/v5/market/tickers": (20, 2.0),
    "GET /api/v5/market/books": (40, 2.0),
    "GET /api/v5/market/trades": (100, 2.0),
    "GET /api/v5/market/candles": (40, 2.0),
    "GET /api/v5/public/instruments": (20, 2.0),
    "GET /api/v5/public/time": (10, 2.0),
    "GET /api/v5/public/funding-rate": (10, 2.0),
    "GET /api/v5/account/balance": (10, 2.0),
    "GET /api/v5/account/config": (5, 2.0),
    "GET /api/v5/account/positions": (10, 2.0),
    "POST /api/v5/account/set-leverage": (20, 2.0),
    "POST /api/v5/trade/order": [PER_INSTRUMENT, Limit(1000, 2.0, per="key", pool="orders")],
    "GET /api/v5/trade/order": PER_INSTRUMENT,
    "POST /api/v5/trade/cancel-order": PER_INSTRUMENT,
    "GET /api/v5/trade/orders-pending": (60, 2.0),
    "GET /api/v5/trade/orders-history": (40, 2.0),
}
INST_TYPES = {"spot": "SPOT", "swap": "SWAP"}
PAGE = 100                           # max rows per page of the order lists
DEPTH_DEFAULT = 20                   # levels a side when the docker asks no limit
TRADES_DEFAULT = 100                 # trades a `trades` answer holds
RECORDS_DEFAULT = 100                # candles when the docker asks no limit

# The stream (WebSocket API, docs-v5 "WebSocket"): tickers, books (400 levels: a snapshot, then
# updates chained by seqId/prevSeqId and checked by a CRC32 of the top 25 levels) and trades on
# /ws/v5/public, candles (candle1m, candle1H, candle1Dutc, ...: the candle still open, pushed as
# it changes) on /ws/v5/business, spot and swaps alike. OKX closes a connection after 30 s without a message
# from the client and asks for a text "ping" (answered "pong") when nothing came for N < 30 s;
# it allows 3 connection requests per second per IP, and 480 subscribe/unsubscribe/login requests
# per hour per connection.
STREAM_URLS = {"public": "wss://ws.okx.com:8443/ws/v5/public", "business": "wss://ws.okx.com:8443/ws/v5/business"}
STREAM_LOGIN = ()                    # no endpoint here needs a key
STREAM_KEEPALIVE = 20.0              # seconds without a message before our "ping"
STREAM_SILENCE = 29.0                # seconds without any message: the connection is dead
STREAM_CONNECTS = (3, 1.0)           # connection requests per seconds, per IP
STREAM_REQUESTS = (480, 3600.0)      # subscribe / unsubscribe / login requests per connection
STREAM_TOPICS = 200                  # channels one connection carries
STREAM_DEPTH = 400                   # levels a side the books channel keeps
STREAM_CHANNELS = {"ticker": "tickers", "depth": "books", "trades": "trades"}
CHECKSUM_LEVELS = 25

# Paper trading's maker and taker rates, {kind: (maker, taker)}: the standard (lowest tier)
# rates the exchange publishes (fee pages, 2025).
FEES = {"spot": ("0.0008", "0.001"), "swap": ("0.0002", "0.0005")}

# FMZ period in minutes -> OKX candle bar. Daily and longer bars use the UTC-aligned variants
# so candle times fall on UTC midnight, as they do on every other exchange.
PERIODS = {
    1: "1m", 3: "3m", 5: "5m", 15: "15m", 30: "30m",
    60: "1H", 120: "2H", 240: "4H", 360: "6Hutc", 720: "12Hutc",
    1440: "1Dutc", 10080: "1Wutc",
}

# OKX order state -> the FMZ status vocabulary.
STATUS = {
    "live": "pending",
    "partially_filled": "partial-filled",
    "filled": "filled",
    "canceled": "canceled",
    "mmp_canceled": "canceled",
}

# FMZ swap order type -> (OKX side, posSide in long_short_mode, whether it closes)
SWAP_SIDES = {
    "buy": ("buy", "long", False),
    "sell": ("sell", "short", False),
    "closebuy": ("sell", "long", True),
    "closesell": ("buy", "short", True),
}
KEY_OPTIONS = ("simulate", "isolated", "cross")

Keys = namedtuple("Keys", "api_key secret passphrase simulated margin_mode")


def parse_keys(access_key, secret_key):
    parts = [part.strip() for part in (secret_key or "").split(",")]
    if not access_key or len(parts) < 2 or not parts[0] or not parts[1]:
        raise PluginError("OKX keys: access_key must be the API key and secret_key must be "
                          "SECRET,PASSPHRASE (optionally followed by ,simulate and/or ,isolated)")
    options = parts[2:]
    if (any(o not in KEY_OPTIONS for o in options) or len(set(options)) < len(options)
            or {"isolated", "cross"} <= set(options)):
        raise PluginError("OKX keys: after SECRET,PASSPHRASE the secret_key takes only the options "
                          "simulate and one of isolated / cross")
    margin_mode = "isolated" if "isolated" in options else "cross"
    return Keys(access_key.strip(), parts[0], parts[1], "simulate" in options, margin_mode)


def sign(request, keys, now_ms):
    timestamp = iso_ms(now_ms)
    prehash = timestamp + request.method + request.target + request.body
    digest = hmac.new(keys.secret.encode(), prehash.encode(), hashlib.sha256).digest()
    request.headers.update({
        "OK-ACCESS-KEY": keys.api_key,
        "OK-ACCESS-SIGN": base64.b64encode(digest).decode(),
        "OK-ACCESS-TIMESTAMP": timestamp,
        "OK-ACCESS-PASSPHRASE": keys.passphrase,
    })
    if keys.simulated:
        request.headers["x-simulated-trading"] = "1"
    if request.deadline is not None:
        request.headers["expTime"] = str(request.deadline)     # not signed: a header of its own


def check(status, reply):
    """OKX answers {"code": "0", "data": [...]} on success. A refused order still has code "1"
    (or "2" for a partly refused batch) with the reason in data[i].sCode / sMsg."""
    if not isinstance(reply, dict) or "code" not in reply:
        raise PluginError(f"OKX answered HTTP {status} without a code: {str(reply)[:80]}",
                          ambiguous=status >= 500)
    code = str(reply["code"])
    if code == "0":
        return
    for item in reply.get("data") or []:
        if isinstance(item, dict) and str(item.get("sCode", "0")) != "0":
            code, message = str(item["sCode"]), item.get("sMsg") or reply.get("msg")
            break
    else:
        message = reply.get("msg") or f"HTTP {status}"
    raise PluginError(f"OKX {code}: {message}", code=code, ambiguous=status >= 500)


def server_time(api):
    """GET /api/v5/public/time"""
    return int(_data(api.get("/api/v5/public/time", signed=False))[0]["ts"])


def _data(reply):
    """The rows of an OKX reply, {"code": "0", "data": [...]}: the one place the envelope is opened."""
    return reply.get("data") or []


# -- Symbols and ids -------------------------------------------------------------------------------

def inst_id(symbol):
    """Symbol('ETH_USDT') -> ETH-USDT; Symbol('BTC_USDT.swap') -> BTC-USDT-SWAP."""
    base = f"{symbol.base}-{symbol.quote}"
    return base + "-SWAP" if symbol.is_swap else base


def to_symbol(instrument):
    """ETH-USDT -> Symbol('ETH_USDT'); BTC-USDT-SWAP -> Symbol('BTC_USDT.swap')."""
    parts = instrument.split("-")
    kind = "swap" if len(parts) == 3 and parts[2] == "SWAP" else "spot"
    return Symbol(parts[0], parts[1] if len(parts) > 1 else "", kind)


def split_order_id(order_id):
    """`ETH-USDT,123456` -> ("ETH-USDT", "123456")."""
    inst, _, ord_id = order_id.partition(",")
    if not inst or not ord_id or "," in ord_id:
        raise PluginError(f"invalid OKX order id {order_id[:60]!r}: expected INSTID,ORDID such as ETH-USDT,123456")
    return inst, ord_id


# -- Market data -----------------------------------------------------------------------------------

def ticker(api, symbol):
    """GET /api/v5/market/ticker"""
    reply = api.get("/api/v5/market/ticker", {"instId": inst_id(symbol)}, signed=False)
    return _ticker(_first(reply, symbol)), reply


def _ticker(t):
    return {
        "symbol": str(to_symbol(t["instId"])),
        "buy": float_or_zero(t.get("bidPx")), "sell": float_or_zero(t.get("askPx")),
        "high": float_or_zero(t.get("high24h")), "low": float_or_zero(t.get("low24h")),
        "open": float_or_zero(t.get("open24h")), "last": float_or_zero(t.get("last")),
        "vol": float_or_zero(t.get("vol24h")), "time": whole_or_zero(t.get("ts")),
    }


def tickers(api, symbol=None):
    """GET /api/v5/market/tickers (SPOT and SWAP without a symbol; a range such as USDT.swap narrows it)"""
    kinds = [symbol.kind] if symbol else ["spot", "swap"]
    rows, replies = [], []
    for kind in kinds:
        reply = api.get("/api/v5/market/tickers", {"instType": INST_TYPES[kind]}, signed=False)
        replies.append(reply)
        rows += [_ticker(t) for t in _data(reply) if symbol is None or symbol.covers(to_symbol(t["instId"]))]
    return rows, one_or_all(replies)


def depth(api, symbol, limit=None):
    """GET /api/v5/market/books (sz up to 400 levels a side)"""
    reply = api.get("/api/v5/market/books", {"instId": inst_id(symbol), "sz": min(limit or DEPTH_DEFAULT, 400)},
                    signed=False)
    book = _first(reply, symbol)
    return {"time": whole_or_zero(book.get("ts")), "asks": book_levels(book.get("asks")),
            "bids": book_levels(book.get("bids"))}, reply


def trades(api, symbol):
    """GET /api/v5/market/trades (newest first, the latest 100 of up to 500; answered oldest first)"""
    reply = api.get("/api/v5/market/trades", {"instId": inst_id(symbol), "limit": TRADES_DEFAULT}, signed=False)
    return [_trade(t) for t in _data(reply)][::-1], reply


def _trade(t):
    return {"id": t["tradeId"], "time": whole_or_zero(t["ts"]), "price": float_or_zero(t["px"]),
            "amount": float_or_zero(t["sz"]), "type": t["side"]}


def records(api, symbol, period=60, limit=None):
    """GET /api/v5/market/candles (newest first, 300 a page; paged back with `after`)"""
    bar = PERIODS.get(period)
    if bar is None:
        raise PluginError(f"OKX has no {period}-minute candles; periods: {', '.join(map(str, PERIODS))}")
    wanted, rows, pages, after = limit or RECORDS_DEFAULT, [], [], None
    while len(rows) < wanted:
        reply = api.get("/api/v5/market/candles", {"instId": inst_id(symbol), "bar": bar,
                                                   "limit": min(wanted - len(rows), 300), "after": after},
                        signed=False)
        pages.append(reply)
        page = _data(reply)
        if not page:
            break
        rows += candle_rows(page)
        after = page[-1][0]
    rows.sort(key=lambda row: row[0])
    return rows, one_or_all(pages)


def markets(api):
    """GET /api/v5/public/instruments (SPOT and SWAP, through the markets cache; no raw)"""
    return markets_answer(api, ("spot", "swap"))


def load_markets(api, kind):
    """GET /api/v5/public/instruments (the spec of a swap is in contracts: lotSz, minSz, ctVal)"""
    reply = api.get("/api/v5/public/instruments", {"instType": INST_TYPES[kind]}, signed=False)
    markets = {}
    for inst in _data(reply):
        if inst.get("state", "live") != "live":
            continue
        symbol = to_symbol(inst["instId"])
        tick, lot = number_or_zero(inst.get("tickSz")), number_or_zero(inst.get("lotSz"))
        markets[str(symbol)] = market(
            symbol, tick, lot, min_qty=number_or_zero(inst.get("minSz")), max_qty=number_or_zero(inst.get("maxLmtSz")),
            ct_val=number_or_zero(inst.get("ctVal")), ct_val_ccy=inst.get("ctValCcy", ""))
    return markets


# -- Account ---------------------------------------------------------------------------------------

def accounts(api):
    """GET /api/v5/account/balance (every currency with a balance; equity and upnl where OKX
    gives `upl`, i.e. for a margin currency of derivative positions)"""
    reply = api.get("/api/v5/account/balance", signed=True)
    rows = []
    for account in _data(reply):
        for d in account.get("details", []):
            free = d.get("availBal") or d.get("availEq") or d.get("cashBal")
            frozen = d.get("frozenBal") or d.get("ordFrozen")
            row = {"currency": d["ccy"], "free": number_or_zero(free), "frozen": number_or_zero(frozen)}
            if d.get("upl") not in (None, ""):
                row.update(equity=number_or_zero(d.get("eq")), upnl=number_or_zero(d["upl"]))
            rows.append(row)
    return rows, reply


assets = accounts


# -- Trading ---------------------------------------------------------------------------------------

def position_mode(api):
    """GET /api/v5/account/config (posMode, read once per key: net_mode or long_short_mode)"""
    load = lambda: _data(api.get("/api/v5/account/config", signed=True))[0]["posMode"]
    return ACCOUNT_SETTINGS.get(api, "posMode", load)


def trade(api, symbol, order_type, price, amount):
    """POST /api/v5/trade/order (price None = market; a spot market buy spends `amount` quote;
    swap amounts are contracts)"""
    market_buy = price is None and order_type == "buy" and not symbol.is_swap
    px, sz = order_size(api, symbol, price, amount, quote_amount=market_buy)
    client_id = new_client_id()
    body = {"instId": inst_id(symbol), "clOrdId": client_id, "ordType": "market" if price is None else "limit",
            "px": px, "sz": sz}
    if symbol.is_swap:
        body.update(_swap_order_fields(api, order_type))
    else:
        body.update(side=order_type, tdMode="cash", tgtCcy="quote_ccy" if market_buy else None)

    def send():
        try:
            reply = api.post("/api/v5/trade/order", body, signed=True, deadline=True)
        except PluginError as error:
            if error.code == "51000" and "posSide" in str(error):
                ACCOUNT_SETTINGS.forget(api, "posMode")      # the trader switched modes: read it again
            raise
        return {"id": f"{body['instId']},{_data(reply)[0]['ordId']}"}, reply

    def find():
        try:
            reply = api.get("/api/v5/trade/order", {"instId": body["instId"], "clOrdId": client_id}, signed=True)
        except PluginError as error:
            if error.code == "51603":       # Order does not exist
                return None
            raise
        return {"id": f"{body['instId']},{_data(reply)[0]['ordId']}"}, reply

    return place_once(send, find, api, client_id)


def _swap_order_fields(api, order_type):
    """side from FMZ's order type, tdMode from the key; posSide in long_short_mode, reduceOnly
    for closes in net_mode."""
    side, pos_side, closes = SWAP_SIDES[order_type]
    fields = {"side": side, "tdMode": api.keys.margin_mode}
    if position_mode(api) == "long_short_mode":
        fields["posSide"] = pos_side
    elif closes:
        fields["reduceOnly"] = True
    return fields


def positions(api, symbol=None):
    """GET /api/v5/account/positions (SWAP: one swap, a range such as USDT.swap, or every one)"""
    query = {"instType": "SWAP", "instId": inst_id(symbol) if symbol and symbol.base else None}
    reply = api.get("/api/v5/account/positions", query, signed=True)
    rows = [_position(p) for p in _data(reply)
            if number_or_zero(p.get("pos")) and (symbol is None or symbol.covers(to_symbol(p["instId"])))]
    return rows, reply


def _position(p):
    """Net mode signs `pos` (+ long, - short); long/short mode gives the side in posSide."""
    pos, side = number_or_zero(p.get("pos")), p.get("posSide")
    is_long = side == "long" or (side not in ("long", "short") and pos > 0)
    closable = p.get("availPos")
    frozen = abs(pos) - number_or_zero(closable) if closable not in (None, "") else Decimal(0)
    return {
        "symbol": str(to_symbol(p["instId"])), "margin_level": number_or_zero(p.get("lever")),
        "amount": abs(pos), "frozen_amount": max(frozen, Decimal(0)), "price": number_or_zero(p.get("avgPx")),
        "profit": number_or_zero(p.get("upl")), "type": 0 if is_long else 1, "contract_type": "swap",
        "margin": number_or_zero(p.get("margin") or p.get("imr")),
    }


def margin_level(api, symbol, level):
    """POST /api/v5/account/set-leverage (mgnMode from the key; isolated in long_short_mode sets
    both sides)"""
    body = {"instId": inst_id(symbol), "lever": str(level), "mgnMode": api.keys.margin_mode}
    sides = [None]
    if api.keys.margin_mode == "isolated" and position_mode(api) == "long_short_mode":
        sides = ["long", "short"]
    replies = [api.post("/api/v5/account/set-leverage", {**body, "posSide": side}, signed=True, idempotent=True)
               for side in sides]
    return True, one_or_all(replies)


def fundings(api, symbol=None):
    """GET /api/v5/public/funding-rate (instId=ANY for every perpetual)"""
    reply = api.get("/api/v5/public/funding-rate", {"instId": inst_id(symbol) if symbol and symbol.base else "ANY"},
                    signed=False)
    rows = []
    for f in _data(reply):
        if symbol is None or symbol.covers(to_symbol(f["instId"])):
            time, following = whole_or_zero(f.get("fundingTime")), whole_or_zero(f.get("nextFundingTime"))
            rows.append({"symbol": str(to_symbol(f["instId"])), "rate": number_or_zero(f.get("fundingRate")),
                         "time": time, "interval": max(following - time, 0)})
    return rows, reply


def orders(api, symbol=None):
    """GET /api/v5/trade/orders-pending (every page, newest first, paged with `after`)"""
    query = {"instType": INST_TYPES[symbol.kind if symbol else "spot"],
             "instId": inst_id(symbol) if symbol else None, "limit": PAGE}
    rows, pages = _pages(api, "/api/v5/trade/orders-pending", query)
    return [_order(o) for o in rows], pages


def order(api, order_id, symbol=None):
    """GET /api/v5/trade/order"""
    inst, ord_id = split_order_id(order_id)
    reply = api.get("/api/v5/trade/order", {"instId": inst, "ordId": ord_id}, signed=True)
    return _order(_data(reply)[0]), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /api/v5/trade/orders-history (last 7 days; `since` -> begin, ms)"""
    query = {"instType": INST_TYPES[symbol.kind], "instId": inst_id(symbol), "limit": PAGE,
             "begin": since or None}
    rows, pages = _pages(api, "/api/v5/trade/orders-history", query, max_rows=limit or PAGE)
    rows.sort(key=lambda o: whole_or_zero(o.get("cTime")))
    return [_order(o) for o in rows], pages


def cancel(api, order_id, symbol=None):
    """POST /api/v5/trade/cancel-order (sent once; an unanswered or refused cancel is explained by
    looking the order up: 51400 covers filled, canceled and unknown orders alike)"""
    inst, ord_id = split_order_id(order_id)

    def send():
        return True, api.post("/api/v5/trade/cancel-order", {"instId": inst, "ordId": ord_id}, signed=True)

    return cancel_once(send, lambda: order(api, order_id), api)


def _order(o):
    """An OKX order object as FMZ's Order: `type` is the side that went to the book, `offset`
    whether a swap order opens or closes (reduceOnly in net_mode; sell on posSide long or buy on
    short in long_short_mode), `time` its creation (cTime)."""
    symbol = to_symbol(o["instId"])
    side, pos_side = o.get("side", ""), o.get("posSide", "")
    closes = o.get("reduceOnly") in ("true", True) or (side, pos_side) in (("sell", "long"), ("buy", "short"))
    return {
        "id": f"{o['instId']},{o['ordId']}",
        "symbol": str(symbol),
        "amount": number_or_zero(o.get("sz")), "price": number_or_zero(o.get("px")),
        "deal_amount": number_or_zero(o.get("accFillSz")), "avg_price": number_or_zero(o.get("avgPx")),
        "type": side,
        "offset": ("close" if closes else "open") if symbol.is_swap else "",
        "contract_type": "swap" if symbol.is_swap else "",
        "time": whole_or_zero(o.get("cTime")),
        "status": STATUS.get(o.get("state"), o.get("state", "")),
    }


def _pages(api, path, query, max_rows=None):
    """Follow OKX's `after` cursor (the last ordId of a page) until a short page or max_rows."""
    rows, pages = [], []
    while max_rows is None or len(rows) < max_rows:
        reply = api.get(path, {**query, "after": rows[-1]["ordId"] if rows else None}, signed=True)
        pages.append(reply)
        page = _data(reply)
        rows += page
        if len(page) < query["limit"]:
            break
    return rows[:max_rows], pages


def _first(reply, symbol):
    rows = _data(reply)
    if not rows:
        raise PluginError(f"OKX returned no data for {symbol}")
    return rows[0]


# -- Stream (the dialect exchanges/_stream.py speaks) ------------------------------------------------

def stream_topic(symbol, method, period):
    """(endpoint, topic) of a method's channel for one symbol: ("public", ("tickers", "BTC-USDT")),
    ("business", ("candle1H", "BTC-USDT")) for records of `period` minutes (None: no such bar)."""
    if method == "records":
        return ("business", ("candle" + PERIODS[period], inst_id(symbol))) if period in PERIODS else None
    return "public", (STREAM_CHANNELS[method], inst_id(symbol))


def stream_subscribe(topics):
    """{"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}, ...]}"""
    return [_operation("subscribe", topics)]


def stream_unsubscribe(topics):
    return [_operation("unsubscribe", topics)]


def _operation(op, topics):
    return json.dumps({"op": op, "args": [{"channel": channel, "instId": inst} for channel, inst in topics]})


def stream_ping():
    """OKX's keepalive is the text "ping", answered "pong"."""
    return "ping"


def stream_read(message, feed):
    """One message from OKX: an event (subscribe, unsubscribe, error, notice), a "pong", or a push
    {"arg": {"channel", "instId"}, ["action",] "data": [...]}."""
    if message == "pong":
        return
    reply = json.loads(message)
    arg = reply.get("arg") or {}
    topic = (arg.get("channel"), arg.get("instId"))
    if reply.get("event") == "subscribe":
        feed.subscribed(topic)
    elif reply.get("event") == "notice":         # 64008: the connection closes soon for an upgrade
        feed.reconnect(f"OKX {reply.get('code')}: {reply.get('msg')}")
    elif not reply.get("event") and str(topic[0]).startswith("candle"):
        feed.candles(topic, sorted(candle_rows(_data(reply))), reply)
    elif not reply.get("event") and topic[0] in STREAM_READERS:
        STREAM_READERS[topic[0]](topic, reply, feed)


def _read_tickers(topic, reply, feed):
    for t in _data(reply):
        feed.ticker(topic, _ticker(t), reply)


def _read_trades(topic, reply, feed):
    rows = sorted((_trade(t) for t in _data(reply)), key=lambda row: row["time"])
    feed.trades(topic, rows, reply)


def _read_books(topic, reply, feed):
    """A snapshot resets the book; an update applies when its prevSeqId is the last seqId (else a
    message was lost); the CRC32 of the top 25 levels must then match OKX's `checksum`. Updates
    before the first snapshot (just after a resync) are ignored."""
    book = feed.book(topic)
    for data in _data(reply):
        if reply.get("action") == "snapshot":
            book.reset(data.get("asks"), data.get("bids"))
        elif book.sequence is None:
            return
        elif data.get("prevSeqId") != book.sequence:
            return feed.resync(topic, f"OKX {topic[1]} book: update {data.get('prevSeqId')} after {book.sequence}")
        else:
            book.apply(data.get("asks"), data.get("bids"))
        book.sequence, book.time = data.get("seqId"), whole_or_zero(data.get("ts"))
        if "checksum" in data and data["checksum"] != book_checksum(book):
            return feed.resync(topic, f"OKX {topic[1]} book: checksum mismatch")
    feed.depth(topic, reply)


def book_checksum(book):
    """CRC32 (signed 32-bit) of "bid1px:bid1sz:ask1px:ask1sz:bid2px:..." over the top 25 levels
    of each side, as OKX wrote them; a shorter side simply ends earlier."""
    asks, bids = book.sides()
    parts = []
    for i in range(CHECKSUM_LEVELS):
        parts += bids[i] if i < len(bids) else ()
        parts += asks[i] if i < len(asks) else ()
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


STREAM_READERS = {"tickers": _read_tickers, "trades": _read_trades, "books": _read_books}


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
