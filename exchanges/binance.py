"""Binance spot, REST /api/v3: https://developers.binance.com/docs/binance-spot-api-docs/rest-api

Keys: access_key = the API key; secret_key = its secret (an HMAC key: Binance's RSA and Ed25519
keys are not supported).

Signing (TRADE and USER_DATA endpoints): `signature` = hex HMAC-SHA256(secret, totalParams), where
totalParams is the query string followed directly by the request body. Binance accepts a POST's
parameters in either; this module sends every parameter in the query string and an empty body, so
totalParams is the query string: `...&timestamp=MS&recvWindow=5000` then `&signature=HEX` last,
with the key in the X-MBX-APIKEY header. Binance refuses a timestamp more than recvWindow behind
its clock or 1 s ahead (-1021), hence the clock offset.

Order ids given to FMZ are `SYMBOL,ORDERID` in Binance's own words (`BTCUSDT,12345`): order and
cancel need no lookup.
"""
import hashlib
import hmac
import json
import re
import urllib.parse
import uuid
from collections import namedtuple

from exchanges._kit import MARKETS, PluginError, Symbol, cancel_once, num, order_size, place_once, precision

NAME = "Binance"
BASE_URL = "https://api.binance.com"
HOSTS = {"futures": "https://fapi.binance.com"}     # USDT-M futures live on their own host
CLOCK_ERRORS = ("-1021",)            # Timestamp for this request is outside of the recvWindow.
RATE_LIMIT_ERRORS = ("-1003", "-1015")   # Too much request weight used (HTTP 429) / too many new orders
# Binance limits request *weight* per IP (6000 a minute, shared by every endpoint) and new
# orders per account (10 a second). Per endpoint, _kit.Throttle allows a quarter of the weight
# budget divided by the endpoint's weight (rest-api.md, current weights), so four endpoints
# busy at once still stay under the shared budget; orders get the account's order limit.
RATE_LIMITS = {
    "GET /api/v3/time": (1500, 60.0),               # weight 1
    "GET /api/v3/exchangeInfo": (75, 60.0),         # weight 20
    "GET /api/v3/ticker/24hr": (750, 60.0),         # weight 2 with a symbol (80 without)
    "GET /api/v3/depth": (300, 60.0),               # weight 5 up to 100 levels
    "GET /api/v3/trades": (60, 60.0),               # weight 25
    "GET /api/v3/klines": (750, 60.0),              # weight 2
    "GET /api/v3/account": (75, 60.0),              # weight 20
    "POST /api/v3/order": (10, 1.0),                # ORDERS 10 per second per account
    "GET /api/v3/order": (375, 60.0),               # weight 4
    "DELETE /api/v3/order": (1500, 60.0),           # weight 1
    "GET /api/v3/openOrders": (250, 60.0),          # weight 6 with a symbol (80 without)
    "GET /api/v3/allOrders": (75, 60.0),            # weight 20
}
RECV_WINDOW = 5000                   # ms; Binance's default, max 60000
KLINES_PAGE = 1000                   # max klines per request
TRADES_LIMIT = 100                   # recent trades answered by `trades`
DEPTH_DEFAULT = 20                   # levels a side when the docker sends no limit
# GET /api/v3/depth limits Binance has always accepted (newer docs accept any 1..5000): the
# smallest one >= the wanted depth is asked for, and the answer trimmed.
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
HISTORY_PAGE = 1000                  # max orders per GET /api/v3/allOrders
HISTORY_DEFAULT = 100                # history orders answered when the docker sends no limit

# FMZ period in minutes -> Binance kline interval (rest-api.md, "Kline/Candlestick chart intervals")
INTERVALS = {
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

Keys = namedtuple("Keys", "api_key secret")
_HEADER_SAFE = re.compile(r"[!-~]+")           # printable ASCII: the key travels in a header
_ORDER_ID = re.compile(r"([A-Z0-9]{2,30}),([0-9]{1,20})")


def parse_keys(access_key, secret_key):
    api_key, secret = (access_key or "").strip(), (secret_key or "").strip()
    if not api_key or not secret:
        raise PluginError("Binance keys: access_key must be the API key and secret_key its secret")
    if not _HEADER_SAFE.fullmatch(api_key):
        raise PluginError("Binance keys: the API key has spaces or characters a Binance key never has")
    return Keys(api_key, secret)


def sign(request, keys, now_ms):
    """Every parameter goes in the query string, so totalParams is exactly the query string.

    _kit encodes a POST's parameters as a JSON body, which Binance does not read: they are
    moved into the query string here, before timestamp and recvWindow are appended."""
    fields = urllib.parse.parse_qsl(request.query, keep_blank_values=True)
    if request.body:
        fields += [(name, _form_value(value)) for name, value in json.loads(request.body).items()]
        request.body = ""
        request.headers.pop("Content-Type", None)
    fields = [(name, value) for name, value in fields if name not in ("timestamp", "signature")]
    fields.append(("timestamp", str(now_ms)))
    if not any(name == "recvWindow" for name, _ in fields):
        fields.append(("recvWindow", str(RECV_WINDOW)))
    query = urllib.parse.urlencode(fields)
    signature = hmac.new(keys.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    request.query = f"{query}&signature={signature}"
    request.headers["X-MBX-APIKEY"] = keys.api_key


def _form_value(value):
    """A JSON value as Binance's form text: true/false, numbers as written, arrays as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def check(status, reply):
    """Binance answers an error as {"code": -2010, "msg": "..."} with HTTP 4xx (429 or 418 when
    rate limited, 5xx when the outcome is unknown); a success is the bare object or list."""
    code = reply.get("code") if isinstance(reply, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code < 0:
        message = reply.get("msg") or f"HTTP {status}"
        raise PluginError(f"Binance {code}: {message}", code=str(code), ambiguous=status >= 500)
    if status >= 400:
        raise PluginError(f"Binance answered HTTP {status}: {str(reply)[:80]}", ambiguous=status >= 500)


def server_time(api):
    """GET /api/v3/time"""
    return int(api.get("/api/v3/time")["serverTime"])


# ---------------------------------------------------------------------------- symbols and ids

def market_id(symbol):
    """Symbol('BTC_USDT') -> BTCUSDT."""
    return symbol.base + symbol.quote


def _spot_only(symbol):
    if symbol is not None and symbol.is_swap:
        raise PluginError(f"Binance USDT perpetuals are not served yet: {symbol} is a swap")


def _names(api):
    """BTCUSDT -> BTC_USDT for every live market: Binance's symbols do not mark the split."""
    return {spec["base_asset"] + spec["quote_asset"]: name for name, spec in MARKETS.get(api, "spot").items()}


def split_order_id(order_id):
    """`BTCUSDT,12345` -> ("BTCUSDT", "12345")."""
    found = _ORDER_ID.fullmatch(order_id)
    if not found:
        raise PluginError(f"invalid Binance order id {order_id[:40]!r}: expected SYMBOL,ORDERID such as BTCUSDT,12345")
    return found.group(1), found.group(2)


def new_client_id():
    """newClientOrderId: Binance allows ^[.A-Z:/a-z0-9_-]{1,36}$; letters and digits are enough."""
    return "fmz" + uuid.uuid4().hex[:29]


# ---------------------------------------------------------------------------- market data

def ticker(api, symbol):
    """GET /api/v3/ticker/24hr"""
    _spot_only(symbol)
    reply = api.get("/api/v3/ticker/24hr", {"symbol": market_id(symbol)})
    return _ticker(reply, str(symbol)), reply


def _ticker(t, name):
    return {
        "symbol": name,
        "buy": num(t.get("bidPrice")), "sell": num(t.get("askPrice")),
        "high": num(t.get("highPrice")), "low": num(t.get("lowPrice")),
        "open": num(t.get("openPrice")), "last": num(t.get("lastPrice")),
        "vol": num(t.get("volume")), "time": int(num(t.get("closeTime"))),
    }


def tickers(api, symbol=None):
    """GET /api/v3/ticker/24hr without a symbol: every live market in one call (or one quote's)"""
    _spot_only(symbol)
    names = _names(api)
    reply = api.get("/api/v3/ticker/24hr")
    rows = [_ticker(t, names[t["symbol"]]) for t in reply if t.get("symbol") in names]
    if symbol is not None:
        rows = [row for row in rows if row["symbol"] == str(symbol)
                or (not symbol.base and row["symbol"].endswith("_" + symbol.quote))]
    return rows, reply


def depth(api, symbol, limit=None):
    """GET /api/v3/depth (the smallest Binance limit >= the wanted levels, then trimmed)"""
    _spot_only(symbol)
    wanted = limit or DEPTH_DEFAULT
    asked = next((n for n in DEPTH_LIMITS if n >= wanted), DEPTH_LIMITS[-1])
    reply = api.get("/api/v3/depth", {"symbol": market_id(symbol), "limit": asked})
    levels = lambda rows: [[num(row[0]), num(row[1])] for row in rows[:wanted]]
    return {"time": int(reply.get("T") or api.now()), "asks": levels(reply.get("asks", [])),
            "bids": levels(reply.get("bids", []))}, reply


def trades(api, symbol):
    """GET /api/v3/trades (recent trades, oldest first)"""
    _spot_only(symbol)
    reply = api.get("/api/v3/trades", {"symbol": market_id(symbol), "limit": TRADES_LIMIT})
    rows = [{"id": str(t["id"]), "time": int(t["time"]), "price": num(t.get("price")),
             "amount": num(t.get("qty")), "type": "sell" if t.get("isBuyerMaker") else "buy"}
            for t in reply]
    return rows, reply


def records(api, symbol, period=60, limit=None):
    """GET /api/v3/klines (oldest first, 1000 a page; older pages asked for with endTime)"""
    _spot_only(symbol)
    interval = INTERVALS.get(period)
    if interval is None:
        raise PluginError(f"Binance has no {period}-minute klines; periods: {', '.join(map(str, INTERVALS))}")
    wanted, rows, pages, end = limit or 100, [], [], None
    while len(rows) < wanted:
        reply = api.get("/api/v3/klines", {"symbol": market_id(symbol), "interval": interval,
                                           "limit": min(wanted - len(rows), KLINES_PAGE), "endTime": end})
        pages.append(reply)
        if not reply:
            break
        rows = [[int(r[0]), num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5])] for r in reply] + rows
        end = int(reply[0][0]) - 1
    return rows, pages[0] if len(pages) == 1 else pages


def load_markets(api, kind):
    """GET /api/v3/exchangeInfo (filters: PRICE_FILTER, LOT_SIZE, NOTIONAL or MIN_NOTIONAL)"""
    reply = api.get("/api/v3/exchangeInfo")
    markets = {}
    for info in reply.get("symbols", []):
        if info.get("status") != "TRADING" or info.get("isSpotTradingAllowed") is False:
            continue
        symbol = Symbol(info["baseAsset"], info["quoteAsset"])
        filters = {f.get("filterType"): f for f in info.get("filters", [])}
        tick = num(filters.get("PRICE_FILTER", {}).get("tickSize"))
        lot = filters.get("LOT_SIZE", {})
        step = num(lot.get("stepSize"))
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        markets[str(symbol)] = {
            "symbol": str(symbol),
            "base_asset": symbol.base, "quote_asset": symbol.quote,
            "tick_size": tick, "amount_size": step,
            "price_precision": precision(tick), "amount_precision": precision(step),
            "min_qty": num(lot.get("minQty")), "max_qty": num(lot.get("maxQty")),
            "min_notional": num(notional.get("minNotional")), "max_notional": num(notional.get("maxNotional")),
            "ct_val": num(None), "ct_val_ccy": "",
        }
    return markets


def markets(api):
    """GET /api/v3/exchangeInfo, through the markets cache: every live spot market by symbol"""
    return MARKETS.get(api, "spot"), None


# ---------------------------------------------------------------------------- account

def accounts(api):
    """GET /api/v3/account (omitZeroBalances: every currency with a balance)"""
    reply = api.get("/api/v3/account", {"omitZeroBalances": "true"}, signed=True)
    rows = [{"currency": b["asset"], "free": num(b.get("free")), "frozen": num(b.get("locked"))}
            for b in reply.get("balances", []) if num(b.get("free")) or num(b.get("locked"))]
    return rows, reply


assets = accounts


# ---------------------------------------------------------------------------- trading

def trade(api, symbol, side, price, amount):
    """POST /api/v3/order (LIMIT GTC; price None = MARKET, a market buy spends `amount` quote)"""
    _spot_only(symbol)
    if side not in ("buy", "sell"):
        raise PluginError(f"Binance spot orders are buy or sell, not {side!r}")
    market_buy = price is None and side == "buy"
    px, qty = order_size(api, symbol, price, amount, quote_amount=market_buy)
    client_id = new_client_id()
    params = {"symbol": market_id(symbol), "side": side.upper(), "type": "MARKET" if price is None else "LIMIT",
              "newClientOrderId": client_id, "newOrderRespType": "RESULT"}
    if price is not None:
        params.update(timeInForce="GTC", price=px)
    params["quoteOrderQty" if market_buy else "quantity"] = qty

    def send():
        reply = api.post("/api/v3/order", params)
        return {"id": f"{reply['symbol']},{reply['orderId']}"}, reply

    def find():
        try:
            reply = api.get("/api/v3/order", {"symbol": params["symbol"], "origClientOrderId": client_id},
                            signed=True)
        except PluginError as error:
            if error.code == "-2013":       # Order does not exist.
                return None
            raise
        return {"id": f"{reply['symbol']},{reply['orderId']}"}, reply

    try:
        return place_once(send, find)
    except PluginError as error:
        raise _name_the_currency(error, symbol, side) from None


def _name_the_currency(error, symbol, side):
    """Binance's -2010 "insufficient balance" does not say which balance: add it."""
    if error.code != "-2010" or "insufficient balance" not in str(error):
        return error
    currency = symbol.quote if side == "buy" else symbol.base
    return PluginError(f"{error} (a {side} of {symbol} spends {currency})", code=error.code)


def orders(api, symbol=None):
    """GET /api/v3/openOrders (one symbol's, or every spot symbol's)"""
    _spot_only(symbol)
    reply = api.get("/api/v3/openOrders", {"symbol": market_id(symbol) if symbol else None}, signed=True)
    names = _names(api)
    return [_order(o, names) for o in reply], reply


def order(api, order_id, symbol=None):
    """GET /api/v3/order"""
    market, oid = split_order_id(order_id)
    reply = api.get("/api/v3/order", {"symbol": market, "orderId": oid}, signed=True)
    return _order(reply, _names(api)), reply


def historyorders(api, symbol, since=None, limit=None):
    """GET /api/v3/allOrders (the latest 1000, or 1000 from `since`; the closed ones, oldest first)"""
    _spot_only(symbol)
    reply = api.get("/api/v3/allOrders", {"symbol": market_id(symbol), "startTime": since,
                                          "limit": HISTORY_PAGE}, signed=True)
    closed = sorted((o for o in reply if o.get("status") in CLOSED), key=lambda o: int(o["orderId"]))
    names = _names(api)
    return [_order(o, names) for o in closed[-(limit or HISTORY_DEFAULT):]], reply


def cancel(api, order_id, symbol=None):
    """DELETE /api/v3/order (sent once; if no answer came, the order is looked up)"""
    market, oid = split_order_id(order_id)

    def send():
        return True, api.call("DELETE", "/api/v3/order", {"symbol": market, "orderId": oid}, signed=True,
                              idempotent=False)

    return cancel_once(send, lambda: order(api, order_id))


def io(api, http_method, path, params):
    """exchange.IO("api", VERB, path, query): any Binance endpoint, signed; the reply unchanged."""
    reply = api.call(http_method, path, params, signed=True)
    return reply, reply


def _order(o, names):
    """A spot order object. The amount of a market buy by quote (quoteOrderQty) is that quote
    amount, as it was placed; the average price is cummulativeQuoteQty / executedQty."""
    executed, cost = num(o.get("executedQty")), num(o.get("cummulativeQuoteQty"))
    amount = num(o.get("origQuoteOrderQty")) if o.get("type") == "MARKET" else 0
    return {
        "id": f"{o['symbol']},{o['orderId']}",
        "symbol": names.get(o["symbol"], o["symbol"]),
        "amount": amount or num(o.get("origQty")), "price": num(o.get("price")),
        "deal_amount": executed, "avg_price": cost / executed if executed and cost > 0 else num(None),
        "type": str(o.get("side", "")).lower(), "status": STATUS.get(o.get("status"), o.get("status", "")),
    }


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
    "__api_": io,
}
