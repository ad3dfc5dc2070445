"""Bybit, unified REST API v5 (categories spot and linear): https://bybit-exchange.github.io/docs/v5/intro

Keys: access_key = the API key; secret_key = its secret (HMAC keys; RSA keys are not supported).

Signing: lowercase hex HMAC-SHA256(secret, timestamp + api_key + recv_window + payload), where the
payload is the query string of a GET and the exact JSON body of a POST; sent as X-BAPI-SIGN with
X-BAPI-API-KEY, X-BAPI-TIMESTAMP (ms) and X-BAPI-RECV-WINDOW. Bybit refuses a timestamp outside
[server - recv_window, server + 1000 ms) with retCode 10002, hence the clock offset.

Order ids given to FMZ are `CATEGORY,SYMBOL,ORDERID` (`spot,BTCUSDT,1321003749386327552`,
`linear,BTCUSDT,c6f055d9-7f21-...`): order and cancel need no lookup, and a spot order is never
mistaken for a perpetual order of the same pair (both are named BTCUSDT on Bybit).
"""
import hashlib
import hmac
import re
import uuid
from collections import namedtuple

from exchanges._kit import (MARKETS, PluginError, Symbol, market, num, order_size, place_once, plain,
                            precision, round_down)

NAME = "Bybit"
BASE_URL = "https://api.bybit.com"
CLOCK_ERRORS = ("10002",)            # The request time exceeds the time window range.
RATE_LIMIT_ERRORS = ("10006",)       # Too many visits!
RECV_WINDOW = "5000"                 # ms a signed request stays valid (Bybit's default)
CATEGORIES = {"spot": "spot", "swap": "linear"}      # FMZ market kind -> Bybit category
MARKET_KINDS = ("spot",)             # what `markets` lists
KINDS = {category: kind for kind, category in CATEGORIES.items()}
PAGE = 50                            # max rows per page of the order lists
KLINE_PAGE = 1000                    # max candles per /v5/market/kline call
WEEK_MS = 7 * 24 * 3600 * 1000       # /v5/order/history answers at most a 7-day window per call
DEPTH_MAX = {"spot": 200, "linear": 500}
TRADES_LIMIT = {"spot": 60, "linear": 100}
# "Order does not exist" per category (docs v5 "Error Codes"): order() reports a lookup that
# finds nothing with it, as cancel() gets it from Bybit.
NO_ORDER = {"spot": ("170213", "Order does not exist."), "linear": ("110001", "Order does not exist")}
INSUFFICIENT = ("170131", "110004", "110007", "110012", "110044", "110045")

# FMZ period in minutes -> Bybit kline interval (docs v5 enum "interval").
INTERVALS = {
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
    payload = request.body if request.method == "POST" else request.query
    prehash = timestamp + keys.api_key + RECV_WINDOW + payload
    request.headers.update({
        "X-BAPI-API-KEY": keys.api_key,
        "X-BAPI-SIGN": hmac.new(keys.secret.encode(), prehash.encode(), hashlib.sha256).hexdigest(),
        "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": RECV_WINDOW,
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
    return int(api.get("/v5/market/time")["time"])


# ---------------------------------------------------------------------------- symbols and ids

def category(symbol):
    return CATEGORIES[symbol.kind]


def bybit_symbol(symbol):
    """Symbol('BTC_USDT') and Symbol('BTC_USDT.swap') -> BTCUSDT (the category tells them apart)."""
    return symbol.base + symbol.quote


def listed(api, category_name):
    """{Bybit name: FMZ market spec} of a category: BTCUSDT -> the spec of BTC_USDT (spot) or
    BTC_USDT.swap (linear). The listed markets say where a name splits into base and quote."""
    return {spec["base_asset"] + spec["quote_asset"]: spec
            for spec in MARKETS.get(api, KINDS[category_name]).values()}


def split_order_id(order_id):
    """`spot,BTCUSDT,123` -> ("spot", "BTCUSDT", "123")."""
    parts = order_id.split(",")
    if len(parts) != 3 or parts[0] not in KINDS or not re.fullmatch(r"[A-Z0-9]{2,40}", parts[1]) \
            or not re.fullmatch(r"[A-Za-z0-9\-]{1,64}", parts[2]):
        raise PluginError(f"invalid Bybit order id {order_id[:60]!r}: expected CATEGORY,SYMBOL,ORDERID "
                          f"such as spot,BTCUSDT,1321003749386327552")
    return parts[0], parts[1], parts[2]


def new_client_id():
    """orderLinkId: up to 36 letters, digits, dashes and underscores; ours are 32 alphanumerics."""
    return "fmz" + uuid.uuid4().hex[:29]


# ---------------------------------------------------------------------------- market data

def ticker(api, symbol):
    """GET /v5/market/tickers"""
    reply = api.get("/v5/market/tickers", {"category": category(symbol), "symbol": bybit_symbol(symbol)})
    rows = reply["result"].get("list") or []
    if not rows:
        raise PluginError(f"Bybit returned no ticker for {symbol}")
    return _ticker(rows[0], str(symbol), reply["time"]), reply


def _ticker(t, symbol, time_ms):
    """Bybit tickers carry no timestamp of their own: the reply's `time` is used."""
    return {
        "symbol": symbol,
        "buy": num(t.get("bid1Price")), "sell": num(t.get("ask1Price")),
        "high": num(t.get("highPrice24h")), "low": num(t.get("lowPrice24h")),
        "open": num(t.get("prevPrice24h")), "last": num(t.get("lastPrice")),
        "vol": num(t.get("volume24h")), "time": int(num(time_ms)),
    }


def depth(api, symbol, limit=None):
    """GET /v5/market/orderbook (up to 200 levels a side for spot, 500 for linear)"""
    reply = api.get("/v5/market/orderbook", {"category": category(symbol), "symbol": bybit_symbol(symbol),
                                             "limit": min(limit or 20, DEPTH_MAX[category(symbol)])})
    book = reply["result"]
    levels = lambda rows: [[num(row[0]), num(row[1])] for row in rows or []]
    return {"time": int(num(book.get("ts"))), "asks": levels(book.get("a")), "bids": levels(book.get("b"))}, reply


def trades(api, symbol):
    """GET /v5/market/recent-trade (newest first: 60 for spot, 100 for linear; answered oldest first)"""
    reply = api.get("/v5/market/recent-trade", {"category": category(symbol), "symbol": bybit_symbol(symbol),
                                                "limit": TRADES_LIMIT[category(symbol)]})
    rows = [{"id": t["execId"], "time": int(num(t["time"])), "price": num(t["price"]),
             "amount": num(t["size"]), "type": t["side"].lower()} for t in reply["result"].get("list") or []]
    return rows[::-1], reply


def records(api, symbol, period=60, limit=None):
    """GET /v5/market/kline (newest first, 1000 a page; paged back with `end`)"""
    interval = INTERVALS.get(period)
    if interval is None:
        raise PluginError(f"Bybit has no {period}-minute candles; periods: {', '.join(map(str, INTERVALS))}")
    wanted, rows, pages, end = limit or 100, [], [], None
    while len(rows) < wanted:
        asked = min(wanted - len(rows), KLINE_PAGE)
        reply = api.get("/v5/market/kline", {"category": category(symbol), "symbol": bybit_symbol(symbol),
                                             "interval": interval, "limit": asked, "end": end})
        pages.append(reply)
        page = reply["result"].get("list") or []
        rows += [[int(r[0]), num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5])] for r in page]
        if len(page) < asked:
            break
        end = int(page[-1][0]) - 1
    rows.sort(key=lambda row: row[0])
    return rows, pages[0] if len(pages) == 1 else pages


def load_markets(api, kind):
    """GET /v5/market/instruments-info (spot in one reply; linear paged with `cursor`)"""
    markets, cursor = {}, None
    while True:
        reply = api.get("/v5/market/instruments-info", {"category": CATEGORIES[kind], "limit": 1000,
                                                        "cursor": cursor})
        for inst in reply["result"].get("list") or []:
            spec = _market(inst, kind)
            if spec:
                markets[spec["symbol"]] = spec
        cursor = reply["result"].get("nextPageCursor")
        if not cursor:
            return markets


def _market(inst, kind):
    """One instrument as FMZ Market fields; perpetuals only among linear contracts, and only those
    named BASE+QUOTE, so that BTC_USDT.swap <-> BTCUSDT holds both ways."""
    base, quote = inst.get("baseCoin", ""), inst.get("quoteCoin", "")
    if inst.get("status") != "Trading" or inst.get("symbol") != base + quote \
            or (kind == "swap" and inst.get("contractType") != "LinearPerpetual"):
        return None
    lot, tick = inst.get("lotSizeFilter") or {}, num((inst.get("priceFilter") or {}).get("tickSize"))
    step = num(lot.get("basePrecision") if kind == "spot" else lot.get("qtyStep"))
    symbol = Symbol(base, quote, kind)
    return {
        "symbol": str(symbol), "base_asset": base, "quote_asset": quote,
        "tick_size": tick, "amount_size": step,
        "price_precision": precision(tick), "amount_precision": precision(step),
        "min_qty": num(lot.get("minOrderQty")),
        "max_qty": num(lot.get("maxLimitOrderQty") or lot.get("maxOrderQty")),
        "min_notional": num(lot.get("minOrderAmt") or lot.get("minNotionalValue")),
        "max_notional": num(lot.get("maxOrderAmt")),
        "ct_val": num(1) if kind == "swap" else num(None), "ct_val_ccy": base if kind == "swap" else "",
        "quote_step": num(lot.get("quotePrecision")),     # not an FMZ field: `markets` leaves it out
    }


def markets(api):
    """GET /v5/market/instruments-info (cached): every trading spot pair, keyed by FMZ symbol"""
    found = {}
    for kind in MARKET_KINDS:
        for name, spec in MARKETS.get(api, kind).items():
            found[name] = {field: value for field, value in spec.items() if field != "quote_step"}
    return found, None


def tickers(api, symbol=None):
    """GET /v5/market/tickers (every instrument of a category in one call)"""
    category_name = CATEGORIES[symbol.kind if symbol else "spot"]
    reply = api.get("/v5/market/tickers", {"category": category_name})
    specs, rows = listed(api, category_name), []
    for t in reply["result"].get("list") or []:
        spec = specs.get(t.get("symbol"))
        if spec and (symbol is None or spec["symbol"] == str(symbol)
                     or (not symbol.base and spec["quote_asset"] == symbol.quote)):
            rows.append(_ticker(t, spec["symbol"], reply["time"]))
    return rows, reply


# ---------------------------------------------------------------------------- account

def accounts(api):
    """GET /v5/account/wallet-balance (unified trading account: every coin with a balance)"""
    reply = api.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"}, signed=True)
    rows = []
    for account in reply["result"].get("list") or []:
        for c in account.get("coin") or []:
            frozen = num(c.get("locked")) + num(c.get("totalOrderIM"))
            rows.append({"currency": c["coin"], "free": num(c.get("walletBalance")) - frozen, "frozen": frozen})
    return rows, reply


assets = accounts


# ---------------------------------------------------------------------------- trading

def trade(api, symbol, side, price, amount):
    """POST /v5/order/create (price None = market; a spot market buy spends `amount` quote)"""
    if side not in ("buy", "sell"):
        raise PluginError(f"Bybit spot orders are buy or sell, not {side!r}")
    market_buy = price is None and side == "buy" and not symbol.is_swap
    px, qty = order_size(api, symbol, price, amount, quote_amount=market_buy)
    if market_buy:
        qty = plain(round_down(num(qty), market(api, symbol)["quote_step"]))
        if num(qty) <= 0:
            raise PluginError(f"amount {plain(amount)} {symbol.quote} is below the quote step of {symbol}")
    body = {"category": category(symbol), "symbol": bybit_symbol(symbol), "side": side.capitalize(),
            "orderType": "Market" if price is None else "Limit", "qty": qty, "price": px,
            "timeInForce": "IOC" if price is None else "GTC", "orderLinkId": new_client_id()}
    if price is None and not symbol.is_swap:
        body["marketUnit"] = "quoteCoin" if market_buy else "baseCoin"
    try:
        return place_once(lambda: _send_order(api, body), lambda: _find_order(api, body))
    except PluginError as error:
        if error.code in INSUFFICIENT:
            pays = symbol.quote if side == "buy" or symbol.is_swap else symbol.base
            raise PluginError(f"{error} (this order pays in {pays})", code=error.code) from None
        raise


def _send_order(api, body):
    reply = api.post("/v5/order/create", body)
    return {"id": f"{body['category']},{body['symbol']},{reply['result']['orderId']}"}, reply


def _find_order(api, body):
    """The order placed with this orderLinkId, or None when Bybit has none."""
    reply = api.get("/v5/order/realtime", {"category": body["category"], "symbol": body["symbol"],
                                           "orderLinkId": body["orderLinkId"]}, signed=True)
    rows = reply["result"].get("list") or []
    if not rows:
        return None
    return {"id": f"{body['category']},{body['symbol']},{rows[0]['orderId']}"}, reply


def orders(api, symbol=None):
    """GET /v5/order/realtime (open orders, every page, newest first, paged with `cursor`)"""
    kind = symbol.kind if symbol else "spot"
    query = {"category": CATEGORIES[kind], "symbol": bybit_symbol(symbol) if symbol else None,
             "settleCoin": "USDT" if kind == "swap" and not symbol else None, "limit": PAGE}
    rows, pages = _pages(api, "/v5/order/realtime", query)
    specs = listed(api, query["category"])
    return [_order(o, query["category"], specs) for o in rows], pages


def order(api, order_id, symbol=None):
    """GET /v5/order/realtime (open and recent orders), then GET /v5/order/history"""
    category_name, name, bybit_id = split_order_id(order_id)
    query = {"category": category_name, "symbol": name, "orderId": bybit_id}
    for path in ("/v5/order/realtime", "/v5/order/history"):
        reply = api.get(path, query, signed=True)
        if reply["result"].get("list"):
            return _order(reply["result"]["list"][0], category_name, listed(api, category_name)), reply
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
    rows.sort(key=lambda o: int(num(o.get("createdTime"))))
    specs = listed(api, query["category"])
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


def cancel(api, order_id, symbol=None):
    """POST /v5/order/cancel"""
    category_name, name, bybit_id = split_order_id(order_id)
    reply = api.post("/v5/order/cancel", {"category": category_name, "symbol": name, "orderId": bybit_id})
    return True, reply


def io(api, http_method, path, params):
    """exchange.IO("api", VERB, path, query): any Bybit v5 endpoint, signed; the reply unchanged."""
    reply = api.call(http_method, path, params, signed=True)
    return reply, reply


def _order(o, category_name, specs):
    """A Bybit order object in FMZ's shape; an instrument no longer listed keeps Bybit's name."""
    avg = num(o.get("avgPrice"))
    filled, value = num(o.get("cumExecQty")), num(o.get("cumExecValue"))
    if not avg and filled:
        avg = value / filled
    return {
        "id": f"{category_name},{o['symbol']},{o['orderId']}",
        "symbol": specs[o["symbol"]]["symbol"] if o["symbol"] in specs else o["symbol"],
        "amount": num(o.get("qty")), "price": num(o.get("price")),
        "deal_amount": filled, "avg_price": avg,
        "type": o.get("side", "").lower(), "status": STATUS.get(o.get("orderStatus"), o.get("orderStatus", "")),
    }


def _pages(api, path, query, max_rows=None):
    """Follow Bybit's `nextPageCursor` until it is empty or max_rows are in."""
    rows, pages, cursor = [], [], None
    while max_rows is None or len(rows) < max_rows:
        reply = api.get(path, {**query, "cursor": cursor}, signed=True)
        pages.append(reply)
        rows += reply["result"].get("list") or []
        cursor = reply["result"].get("nextPageCursor")
        if not cursor:
            break
    return rows[:max_rows], pages


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
