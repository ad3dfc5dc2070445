"""A fake Bitvavo REST API v2 (spot only) with real state, for tests. Shapes and codes follow
https://docs.bitvavo.com/ (each endpoint's response example; "Handle errors",
https://docs.bitvavo.com/docs/errors): a success is the bare object or list, a refusal is
{"errorCode": N, "error": "..."} with an HTTP 4xx/5xx status.

It verifies every private call as Bitvavo documents it
(https://docs.bitvavo.com/docs/rest-api/introduction/): Bitvavo-Access-Key (300 absent, 301 not
64 characters, 305 unknown), Bitvavo-Access-Timestamp in ms (302), Bitvavo-Access-Window 100..60000
ms, default 10000 (303), the request within that window of the timestamp (304), and
Bitvavo-Access-Signature = hex HMAC-SHA256(secret, timestamp + METHOD + /v2/path?query + body)
(308 not 64 hex characters, 309 wrong). The window is checked against when the request arrived; an
order or cancel the engine takes after timestamp + window is refused with 304 too (the strict
reading of "the request must be received within the window"). Orders need an integer operatorId
(as CCXT requires it for create and cancel) and a UUID clientOrderId unique among the market's
OPEN orders (220); a market has at most 100 open orders (235); an order parameter Bitvavo does not
take is refused (204). Every answer carries bitvavo-ratelimit-limit / -remaining / -resetat: the
caller's weight budget (per API key, or per IP for public calls) over the current minute, with
each endpoint's documented weight.

State lives in the shared engine (tests/fakes/engine.py); this file speaks Bitvavo's dialect:
BTC-USDT market names, UUID order ids, amountQuote for a market buy by quote, newest-first lists.
An order id is a UUID whose last group is the engine's 12-digit order id.

Its WebSocket API (https://docs.bitvavo.com/docs/websocket-overview) is served on the same port
at /v2/ (and /v2, as CCXT writes it): {"action": "subscribe" | "unsubscribe", "channels": [{"name",
"markets"}]} answered {"event": "subscribed" | "unsubscribed", "subscriptions": {name: [markets]}}
(the session's channels after the change), or {"action", "errorCode": 205, "error"} for a market
or channel it does not have. Channels: ticker24h (a push on subscribing and after every fill),
ticker (the best bid, ask and last price after every fill),
book (changed levels with a nonce one past the last; no snapshot: the getBook action answers
{"action": "getBook", "response": {"market", "nonce", "bids", "asks"}}), trades (every fill of the
engine as {"event": "trade"}). The getTime action is answered too (unless `ws_answers_ping` is
False: a server gone silent). Tests move the stream with
`push_book_update`, `ws_drop()` and `fault_next_book = "gap"` (the next update skips a nonce).
"""
import itertools
import json
import hashlib
import hmac
import re
import uuid
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange, book_rows
from tests.fakes.engine import CANCELED, FILLED, OPEN, PARTIAL, Engine, Refused, fmt

API_KEY = "bitvavo0test0key0" + "a" * 47                       # Bitvavo keys are 64 characters
SECRET = "bitvavo0test0secret0" + "b" * 108                    # ... and secrets 128
DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW = 10_000, 60_000, 100
MAX_OPEN_ORDERS = 100                                          # per market
FIRST_ORDER_ID = 100000000001                                  # 12 digits: the last group of a UUID
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": HOUR_MS,
               "2h": 2 * HOUR_MS, "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "8h": 8 * HOUR_MS,
               "12h": 12 * HOUR_MS, "1d": DAY_MS, "1W": 7 * DAY_MS}
MONDAY_MS = 4 * DAY_MS                                         # weekly candles open on Mondays
CANDLE_LIMIT, TRADE_LIMIT, ORDER_LIMIT, BOOK_LIMIT = 1440, 1000, 1000, 1000
WEIGHT_LIMIT = 1000                                            # weight points a minute
by_market = lambda one, every: lambda query: one if query.get("market") else every
WEIGHTS = {("GET", "/v2/ticker/24h"): by_market(1, 25), ("GET", "/v2/ordersOpen"): by_market(1, 25),
           ("GET", "/v2/balance"): 5, ("GET", "/v2/orders"): 5}     # every other endpoint: 1
MARKET_PATH_WEIGHTS = {"book": 1, "trades": 5, "candles": 1}
STATUSES = {OPEN: "new", PARTIAL: "partiallyFilled", FILLED: "filled", CANCELED: "canceled"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Engine refusals -> Bitvavo errorCode and error ("Handle errors"; texts as Bitvavo words them
# where CCXT's table quotes them)
REFUSALS = {
    "unknown_symbol": (205, "market parameter is invalid."),
    "duplicate_client_id": (220, "clientOrderId conflict within the market."),
    "bad_amount": (205, "amount parameter is invalid."),
    "bad_price": (205, "price parameter is invalid."),
    "below_min": (212, "Amount is below the minimum allowed amount for this asset."),
    "below_min_quote": (217, "Minimum order size in quote currency is 5 EUR or 0.001 BTC."),
    "insufficient": (216, "You do not have sufficient balance to complete this operation."),
    "unknown_order": (240, "No order found. Please be aware that simultaneously updating the same "
                           "order may return this error."),
    "order_closed": (233, "Order must be active (status new or partiallyFilled) to allow updating/cancelling."),
    "too_many_open": (235, "You can only have 100 open orders on each book."),
}
# The parameters each order endpoint takes (docs: Create order, Get order, Cancel order); any
# other is refused with 204, so the plugin is held to the documented names.
ORDER_FIELDS = {"market", "side", "orderType", "amount", "amountQuote", "price", "triggerAmount", "triggerType",
                "triggerReference", "timeInForce", "postOnly", "selfTradePrevention", "disableMarketProtection",
                "responseRequired", "clientOrderId", "operatorId"}
LOOKUP_FIELDS = {"market", "orderId", "clientOrderId"}
CANCEL_FIELDS = LOOKUP_FIELDS | {"operatorId"}
STATUS_OF = {205: 400, 212: 400, 216: 400, 217: 400, 220: 400, 233: 400, 235: 400, 240: 404}


def market_of(pair):
    return f"{pair[0]}-{pair[1]}"


def pair_of(market):
    parts = tuple((market or "").split("-"))
    return parts if len(parts) == 2 else None


class Rejected(Exception):
    """Bitvavo refuses the request: answered {"errorCode", "error"} with this HTTP status."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def refused(reason):
    code, message = REFUSALS[reason]
    return Rejected(code, message, STATUS_OF.get(code, 400))


def only(fields, allowed):
    """Refuse a parameter the endpoint does not take (204)."""
    for name in fields:
        if name not in allowed:
            raise Rejected(204, f"{name} parameter is not supported.")


def decimal_field(fields, name, required=True):
    """A decimal string of the request, or None when absent and not required (205 when garbage)."""
    value = fields.get(name)
    if value in (None, "") and not required:
        return None
    if value in (None, ""):
        raise Rejected(203, f"{name} parameter is required.")
    try:
        number = D(str(value))
    except InvalidOperation:
        raise Rejected(205, f"{name} parameter is invalid.") from None
    if not number.is_finite() or number <= 0:
        raise Rejected(205, f"{name} parameter is invalid.")
    return number


class FakeBitvavo(FakeExchange):
    NAME = "Bitvavo"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET
    ORDER_PATH, TIME_PATH = "/v2/order", "/v2/time"
    CANCEL_ROUTE = ("DELETE", "/v2/order")
    CODES = {reason: str(code) for reason, (code, _) in REFUSALS.items()}
    FOREIGN_ORDER_ID = "ETH-USDT,1be6d0df-d5dc-4b53-a250-3376f3b393e6"      # well-formed, never placed
    CLIENT_ID = UUID                                 # what a clientOrderId must look like
    MAX_OPEN_ORDERS = MAX_OPEN_ORDERS

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms, first_id=FIRST_ORDER_ID)
        self.order_ids = {}               # engine id -> the UUID Bitvavo showed for it
        self.operators = []               # operatorId of every order and cancel, oldest first
        self.weight_minute, self.weight_used = {}, {}     # per API key (or "ip"): this minute's weight
        self.weight_used_elsewhere = 0    # weight another program spent on the same key or IP
        self.routes = {
            ("GET", "/v2/time"): self.public(self.time),
            ("GET", "/v2/markets"): self.public(self.markets),
            ("GET", "/v2/assets"): self.public(self.assets),
            ("GET", "/v2/ticker/24h"): self.public(self.ticker_24h),
            ("GET", "/v2/ticker/book"): self.public(self.ticker_book),
            ("GET", "/v2/balance"): self.private(self.balance),
            ("POST", "/v2/order"): self.private(self.place),
            ("GET", "/v2/order"): self.private(self.get_order),
            ("DELETE", "/v2/order"): self.private(self.cancel),
            ("GET", "/v2/ordersOpen"): self.private(self.orders_open),
            ("GET", "/v2/orders"): self.private(self.orders),
        }
        self.market_routes = {"book": self.book, "trades": self.trades, "candles": self.candles}
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {"/v2/": self.ws_session, "/v2": self.ws_session}
        self.ws_subscriptions = {}           # session -> {(channel name, market)}
        self.ws_books = {}                   # market -> {"asks": {px: sz}, "bids": {px: sz}, "nonce": int}
        self.fault_next_book = None          # "gap": the next book update skips a nonce
        self._trade_ids = itertools.count(1)

    # ------------------------------------------------------------------ envelope
    def route(self, request):
        """/v2/{market}/book, /trades and /candles carry the market in the path."""
        parts = request.path.split("/")
        if request.method == "GET" and len(parts) == 4 and parts[1] == "v2" and parts[3] in self.market_routes:
            handler = self.market_routes[parts[3]]
            with self.lock:
                return self.public(lambda r: handler(r, self._pair(parts[2])))(request)
        return super().route(request)

    def public(self, function):
        def answer(request):
            try:
                return 200, function(request)
            except Rejected as error:
                return error.status, {"errorCode": error.code, "error": error.message}
        return answer

    def private(self, function):
        def checked(request):
            return self.authenticate(request) or self.public(function)(request)
        return checked

    def not_found(self, request):
        return 404, {"errorCode": 110, "error": "Invalid endpoint. Please check url and HTTP method."}

    def rate_limited(self):
        return 429, {"errorCode": 105, "error": "Your IP or API key has been banned for not respecting the "
                                                f"rate limit. The ban expires at {self.now_ms() + 60_000}."}

    def signature_of(self, request):
        return request.headers.get("Bitvavo-Access-Signature")

    def outcome_unknown(self):
        return 500, {"errorCode": 101, "error": "Unknown error. Operation may or may not have succeeded."}

    def deadline_of(self, request):
        """Bitvavo-Access-Timestamp + Bitvavo-Access-Window (authenticate checked both)."""
        headers = request.headers
        return int(headers["Bitvavo-Access-Timestamp"]) + int(headers.get("Bitvavo-Access-Window") or DEFAULT_WINDOW)

    def refuse_if_taken_late(self, request):
        if self.taken_late(request):
            raise Rejected(304, "Request was not received within acceptable window (default 30s, or custom with "
                                "Bitvavo-Access-Window header) of Bitvavo-Access-Timestamp header (or timestamp "
                                "parameter for websocket).", 403)

    def reply_headers(self, request, status):
        """Every answer carries the weight budget of the caller (its API key, or this IP for a
        public call) as Bitvavo counts it: points left of 1000, and when the minute resets."""
        scope = request.headers.get("Bitvavo-Access-Key") or "ip"
        now = self.now_ms()
        minute = now // 60_000
        if self.weight_minute.get(scope) != minute:
            self.weight_minute[scope], self.weight_used[scope] = minute, 0
        self.weight_used[scope] += self.weight_of(request)
        spent = self.weight_used[scope] + self.weight_used_elsewhere
        return {"bitvavo-ratelimit-limit": str(WEIGHT_LIMIT),
                "bitvavo-ratelimit-remaining": str(max(WEIGHT_LIMIT - spent, 0)),
                "bitvavo-ratelimit-resetat": str((minute + 1) * 60_000)}

    def forget(self):
        super().forget()
        with self.lock:
            self.weight_minute.clear()
            self.weight_used.clear()

    @staticmethod
    def weight_of(request):
        """The documented weight of a request (each endpoint's "Rate limit weight points")."""
        if request.path.split("/")[-1] in MARKET_PATH_WEIGHTS and request.path.count("/") == 3:
            return MARKET_PATH_WEIGHTS[request.path.split("/")[-1]]
        weight = WEIGHTS.get((request.method, request.path), 1)
        return weight(request.query) if callable(weight) else weight

    # ------------------------------------------------------------------ auth
    def authenticate(self, request):
        headers = request.headers

        def fail(code, message):
            return 403, {"errorCode": code, "error": message}

        key = headers.get("Bitvavo-Access-Key")
        if not key:
            return fail(300, "Authentication is required for this endpoint.")
        if len(key) != 64:
            return fail(301, "API Key must be of length 64.")
        if key != API_KEY:
            return fail(305, "No active API key found.")
        timestamp, window = headers.get("Bitvavo-Access-Timestamp", ""), headers.get("Bitvavo-Access-Window")
        if not timestamp.isdigit():
            return fail(302, "Timestamp is invalid. This must be a timestamp in ms. See Bitvavo-Access-Timestamp "
                             "header or timestamp parameter for websocket.")
        if window is not None and (not window.isdigit() or not MIN_WINDOW <= int(window) <= MAX_WINDOW):
            return fail(303, "Window must be between 100 and 60000 ms.")
        if abs(request.arrived_ms - int(timestamp)) > int(window or DEFAULT_WINDOW):
            return fail(304, "Request was not received within acceptable window (default 30s, or custom with "
                             "Bitvavo-Access-Window header) of Bitvavo-Access-Timestamp header (or timestamp "
                             "parameter for websocket).")
        signature = headers.get("Bitvavo-Access-Signature", "")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", signature):
            return fail(308, "The signature length is invalid (HMAC-SHA256 should return a 64 length "
                             "hexadecimal string).")
        prehash = timestamp + request.method + request.target + request.body
        expected = hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return fail(309, "The signature is invalid.")
        return None

    # ------------------------------------------------------------------ market data
    def time(self, request):
        now = self.now_ms()
        return {"time": now, "timeNs": now * 1_000_000}

    def _pair(self, market):
        pair = pair_of(market)
        if pair is None or pair not in self.engine.markets:
            raise refused("unknown_symbol")
        return pair

    def _market(self, pair, spec):
        """Shaped like GET /v2/markets (v2.12.0: tickSize validated, pricePrecision deprecated)."""
        return {
            "market": market_of(pair), "status": "trading", "base": pair[0], "quote": pair[1],
            "pricePrecision": None, "tickSize": fmt(spec["tick"]),
            "minOrderInBaseAsset": fmt(spec["min"]), "minOrderInQuoteAsset": fmt(spec["min_notional"]),
            "maxOrderInBaseAsset": fmt(spec["max"]), "maxOrderInQuoteAsset": "1000000000",
            "quantityDecimals": str(-spec["lot"].normalize().as_tuple().exponent), "notionalDecimals": "2",
            "maxOpenOrders": str(MAX_OPEN_ORDERS), "feeCategory": "A",
            "orderTypes": ["market", "limit", "stopLoss", "stopLossLimit", "takeProfit", "takeProfitLimit"],
        }

    def markets(self, request):
        rows = [self._market(pair, spec) for pair, spec in self.engine.markets.items()]
        rows.append({"market": "OLD-USDT", "status": "halted", "base": "OLD", "quote": "USDT",
                     "pricePrecision": None, "tickSize": "0.001", "minOrderInBaseAsset": "1",
                     "minOrderInQuoteAsset": "5", "maxOrderInBaseAsset": "1000000", "maxOrderInQuoteAsset": "1000000",
                     "quantityDecimals": "0", "notionalDecimals": "2", "maxOpenOrders": "100",
                     "feeCategory": "C", "orderTypes": ["limit"]})
        if request.query.get("market"):
            pair = self._pair(request.query["market"])
            return self._market(pair, self.engine.markets[pair])
        return rows

    def assets(self, request):
        return [{"symbol": ccy, "name": ccy, "decimals": 8, "depositFee": "0", "depositConfirmations": 10,
                 "depositStatus": "OK", "withdrawalFee": "0", "withdrawalMinAmount": "0",
                 "withdrawalStatus": "OK", "networks": ["Mainnet"], "message": ""}
                for ccy in ("BTC", "ETH", "USDT")]

    def _ticker(self, pair):
        asks, bids = self.engine.book(pair)
        mid, now = self.engine.markets[pair]["mid"], self.now_ms()
        return {"market": market_of(pair), "startTimestamp": now - DAY_MS, "timestamp": now,
                "open": fmt(mid - 100), "openTimestamp": now - DAY_MS + 5000, "high": fmt(mid + 500),
                "low": fmt(mid - 500), "last": fmt(mid), "closeTimestamp": now - 1000,
                "bid": fmt(bids[0][0]), "bidSize": fmt(bids[0][1]), "ask": fmt(asks[0][0]),
                "askSize": fmt(asks[0][1]), "volume": "1234.5", "volumeQuote": fmt(D("1234.5") * mid)}

    def ticker_24h(self, request):
        """One market's object with ?market=, else every market's (a listed one without trades has
        nulls, as Bitvavo's do)."""
        if request.query.get("market"):
            return self._ticker(self._pair(request.query["market"]))
        quiet = {"market": "OLD-USDT", "startTimestamp": self.now_ms() - DAY_MS, "timestamp": self.now_ms(),
                 "open": None, "openTimestamp": None, "high": None, "low": None, "last": None,
                 "closeTimestamp": None, "bid": None, "bidSize": None, "ask": None, "askSize": None,
                 "volume": "0", "volumeQuote": "0"}
        return [self._ticker(pair) for pair in self.engine.markets] + [quiet]

    def ticker_book(self, request):
        def row(pair):
            asks, bids = self.engine.book(pair)
            return {"market": market_of(pair), "bid": fmt(bids[0][0]), "bidSize": fmt(bids[0][1]),
                    "ask": fmt(asks[0][0]), "askSize": fmt(asks[0][1])}
        if request.query.get("market"):
            return row(self._pair(request.query["market"]))
        return [row(pair) for pair in self.engine.markets]

    def book(self, request, pair):
        depth = self._limit(request, "depth", BOOK_LIMIT, BOOK_LIMIT)
        asks, bids = self.engine.book(pair, levels=depth)
        return {"market": market_of(pair), "nonce": 438524, "bids": [[fmt(p), fmt(a)] for p, a in bids],
                "asks": [[fmt(p), fmt(a)] for p, a in asks], "timestamp": self.now_ms() * 1_000_000}

    def trades(self, request, pair):
        """Newest first; ids are UUIDs."""
        limit = self._limit(request, "limit", TRADE_LIMIT, 500)
        now, mid = self.now_ms(), self.engine.markets[pair]["mid"]
        return [{"id": str(uuid.UUID(int=i + 1)), "timestamp": now - i * 1000, "amount": "0.01",
                 "price": fmt(mid + i), "side": "buy" if i % 2 else "sell"} for i in range(limit)]

    def candles(self, request, pair):
        """Newest first; `start` and `end` bound the open times (an aligned `end` is the end of the
        last interval, so its candle opened before it)."""
        interval = request.query.get("interval")
        if not interval:
            raise Rejected(203, "interval parameter is required.")
        if interval not in INTERVAL_MS:
            raise Rejected(205, "interval parameter is invalid.")
        step = INTERVAL_MS[interval]
        offset = MONDAY_MS % step if interval == "1W" else 0
        limit = self._limit(request, "limit", CANDLE_LIMIT, CANDLE_LIMIT)
        newest = (self.now_ms() - offset) // step * step + offset
        if request.query.get("end"):                     # only candles opening before `end`
            newest = min(newest, (self._int(request, "end") - 1 - offset) // step * step + offset)
        oldest = self._int(request, "start") if request.query.get("start") else 0
        rows = []
        for ts in range(newest, newest - limit * step, -step):
            if ts < oldest:
                break
            _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
            rows.append([ts, fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol)])
        return rows

    def _int(self, request, name):
        value = request.query.get(name, "")
        if not value.lstrip("-").isdigit():
            raise Rejected(205, f"{name} parameter is invalid.")
        return int(value)

    def _limit(self, request, name, maximum, default):
        if name not in request.query:
            return default
        value = self._int(request, name)
        if not 1 <= value <= maximum:
            raise Rejected(205, f"{name} parameter is invalid.")
        return value

    # ------------------------------------------------------------------ account
    def balance(self, request):
        return [{"symbol": ccy, "available": fmt(free), "inOrder": fmt(frozen)}
                for ccy, (free, frozen) in self.engine.balances.items() if free or frozen]

    # ------------------------------------------------------------------ trading
    def _operator(self, fields):
        operator = fields.get("operatorId")
        if operator is None or operator == "":
            raise Rejected(203, "operatorId parameter is required.")
        if isinstance(operator, bool) or not str(operator).isdigit():
            raise Rejected(205, "operatorId parameter is invalid.")
        self.operators.append(int(operator))

    def place(self, request):
        self.refuse_if_taken_late(request)
        try:
            body = request.json()
        except ValueError:
            raise Rejected(102, "Invalid JSON.") from None
        if not isinstance(body, dict):
            raise Rejected(102, "Invalid JSON.")
        only(body, ORDER_FIELDS)
        for name in ("market", "side", "orderType"):
            if not body.get(name):
                raise Rejected(203, f"{name} parameter is required.")
        pair = self._pair(body["market"])
        side, kind = body["side"], body["orderType"]
        if side not in ("buy", "sell"):
            raise Rejected(205, "side parameter is invalid.")
        if kind not in ("limit", "market"):
            raise Rejected(205, "orderType parameter is invalid.")
        self._operator(body)
        client_id = body.get("clientOrderId", "")
        if client_id and not UUID.fullmatch(str(client_id)):
            raise Rejected(205, "clientOrderId parameter is invalid.")
        price, amount, quote = self._order_size(body, kind)
        open_here = self.engine.listing((OPEN, PARTIAL), pair)
        if client_id and any(o["client_id"] == client_id for o in open_here):
            raise refused("duplicate_client_id")
        if len(open_here) >= MAX_OPEN_ORDERS:
            raise refused("too_many_open")
        if quote is not None and quote < self.engine.markets[pair]["min_notional"] \
                or price is not None and price * amount < self.engine.markets[pair]["min_notional"]:
            raise refused("below_min_quote")
        try:
            order = self.engine.place(pair, side, kind, quote if quote is not None else amount, price,
                                      quote_amount=quote is not None)
        except Refused as error:
            raise refused(error.reason) from None
        order["client_id"] = client_id      # unique among open orders only: kept here, not by the engine
        return self.render(order)

    @staticmethod
    def _order_size(body, kind):
        """(price, amount, amountQuote): a limit order needs amount and price; a market order
        amount or amountQuote, never both (236)."""
        if kind == "limit":
            if "amountQuote" in body:
                raise Rejected(202, "amountQuote parameter is not supported for orderType limit.")
            return decimal_field(body, "price"), decimal_field(body, "amount"), None
        if "price" in body:
            raise Rejected(202, "price parameter is not supported for orderType market.")
        amount, quote = decimal_field(body, "amount", False), decimal_field(body, "amountQuote", False)
        if (amount is None) == (quote is None):
            raise Rejected(236, "Only one of amount, amountRemaining, or amountQuote is allowed."
                           if amount is not None else "amount or amountQuote parameter is required.")
        return None, amount, quote

    def uuid_of(self, order):
        """The UUID Bitvavo shows for an engine order: random groups, the engine id last."""
        if order["id"] not in self.order_ids:
            self.order_ids[order["id"]] = str(uuid.uuid4())[:24] + order["id"]
        return self.order_ids[order["id"]]

    def render(self, order):
        """An engine order as Bitvavo's order object (GET /v2/order). A market buy by amountQuote
        has amountQuote and amountQuoteRemaining instead of amount and amountRemaining."""
        base, quote = order["pair"]
        filled, cost = order["filled"], order["cost"]
        row = {"orderId": self.uuid_of(order), "market": market_of(order["pair"]),
               "created": order["created"], "updated": order["updated"], "status": STATUSES[order["status"]],
               "side": order["side"], "orderType": order["type"]}
        if order["client_id"]:
            row["clientOrderId"] = order["client_id"]
        if order["quote_amount"]:
            row.update(amountQuote=fmt(order["amount"]), amountQuoteRemaining=fmt(order["amount"] - cost))
        else:
            remaining = order["amount"] - filled if order["status"] in (OPEN, PARTIAL) else D(0)
            row.update(amount=fmt(order["amount"]), amountRemaining=fmt(remaining))
        if order["price"] is not None:
            row["price"] = fmt(order["price"])
        row.update({
            "onHold": fmt(order["frozen"]), "onHoldCurrency": order["pay"],
            "filledAmount": fmt(filled), "filledAmountQuote": fmt(cost), "feePaid": "0",
            "feeCurrency": quote, "fills": [], "selfTradePrevention": "decrementAndCancel",
            "visible": order["type"] == "limit", "timeInForce": "GTC", "postOnly": False,
            "disableMarketProtection": False})
        if order["type"] == "market" and filled:
            row["fills"] = [{"id": str(uuid.UUID(int=int(order["id"]))), "timestamp": order["created"],
                             "amount": fmt(filled), "price": fmt((cost / filled).quantize(D("0.00000001"))),
                             "taker": True, "fee": "0", "feeCurrency": quote, "settled": True}]
        return row

    def _find(self, query, pair):
        """The order named by orderId (or clientOrderId, which wins when both are set), or 240."""
        found = None
        if query.get("clientOrderId"):
            mine = [o for o in self.engine.listing((OPEN, PARTIAL, FILLED, CANCELED), pair)
                    if o["client_id"] == query["clientOrderId"]]
            found = mine[0] if mine else None
        elif query.get("orderId"):
            order_id = str(query["orderId"])
            candidate = self.engine.orders.get(order_id[-12:])
            if candidate is not None and self.order_ids.get(candidate["id"]) == order_id:
                found = candidate
        else:
            raise Rejected(203, "orderId or clientOrderId parameter is required.")
        if found is None or found["pair"] != pair:
            raise refused("unknown_order")
        return found

    def get_order(self, request):
        only(request.query, LOOKUP_FIELDS)
        pair = self._pair(request.query.get("market"))
        return self.render(self._find(request.query, pair))

    def cancel(self, request):
        only(request.query, CANCEL_FIELDS)
        self.refuse_if_taken_late(request)
        pair = self._pair(request.query.get("market"))
        self._operator(request.query)
        order = self._find(request.query, pair)
        try:
            self.engine.cancel(order["id"])
        except Refused as error:
            raise refused(error.reason) from None
        answer = {"orderId": self.uuid_of(order)}
        if order["client_id"]:
            answer["clientOrderId"] = order["client_id"]
        return answer

    def orders_open(self, request):
        """Every open order of one market, or of every market without one (newest first)."""
        pair = self._pair(request.query["market"]) if request.query.get("market") else None
        return [self.render(o) for o in self.engine.listing((OPEN, PARTIAL), pair)]

    def orders(self, request):
        """Every order of one market (open and closed), newest first: start/end bound the creation
        time, limit (default 500, at most 1000) the count."""
        if not request.query.get("market"):
            raise Rejected(203, "market parameter is required.")
        pair = self._pair(request.query["market"])
        limit = self._limit(request, "limit", ORDER_LIMIT, 500)
        start = self._int(request, "start") if request.query.get("start") else None
        found = self.engine.listing((OPEN, PARTIAL, FILLED, CANCELED), pair, start)
        if request.query.get("end"):
            found = [o for o in found if o["created"] <= self._int(request, "end")]
        return [self.render(o) for o in found[:limit]]

    # ------------------------------------------------------------------ WebSocket
    def ws_session(self, session):
        self.ws_serve(session, self.ws_action)

    def ws_action(self, session, message):
        try:
            request = json.loads(message)
            action = request["action"]
        except (ValueError, KeyError, TypeError):
            return session.send_text(json.dumps({"errorCode": 400, "error": "Unknown error."}))
        with self.lock:
            if action in ("subscribe", "unsubscribe"):
                self._ws_channels(session, action, request.get("channels") or [])
            elif action == "getBook":
                self._ws_get_book(session, request)
            elif action == "getTime":
                if self.ws_answers_ping:             # False: a server gone silent
                    session.send_text(json.dumps({"action": "getTime", "response": self.time(None)}))
            else:
                session.send_text(json.dumps({"action": action, "errorCode": 400, "error": "Unknown error."}))
            self.ws_changed.notify_all()

    def _ws_channels(self, session, action, channels):
        topics = [(c.get("name"), market) for c in channels for market in c.get("markets") or []]
        for name, market in topics:
            if name not in ("ticker24h", "ticker", "book", "trades") or pair_of(market) not in self.engine.markets:
                return session.send_text(json.dumps({"action": action, "errorCode": 205,
                                                     "error": "market parameter is invalid."}))
        now = self.ws_follow(session, action, topics)
        session.send_text(json.dumps({"event": action + "d", "subscriptions": now}))
        for name, market in topics:
            if action == "subscribe" and name == "ticker24h":
                session.send_text(json.dumps(self._ticker24h(pair_of(market))))

    def _ws_get_book(self, session, request):
        pair = pair_of(request.get("market"))
        if pair not in self.engine.markets:
            return session.send_text(json.dumps({"action": "getBook", "errorCode": 205,
                                                 "error": "market parameter is invalid."}))
        book, depth = self._ws_book(pair), int(request.get("depth") or BOOK_LIMIT)
        session.send_text(json.dumps({"action": "getBook", "response": {
            "market": market_of(pair), "nonce": book["nonce"],
            "bids": book_rows(book["bids"], True)[:depth], "asks": book_rows(book["asks"], False)[:depth]}}))

    def _ticker24h(self, pair):
        return {"event": "ticker24h", "data": [self._ticker(pair)]}

    def _ws_book(self, pair):
        market = market_of(pair)
        if market not in self.ws_books:
            asks, bids = self.engine.book(pair, levels=BOOK_LIMIT)
            self.ws_books[market] = {"asks": {fmt(p): fmt(s) for p, s in asks},
                                     "bids": {fmt(p): fmt(s) for p, s in bids}, "nonce": 438524}
        return self.ws_books[market]

    def push_book_update(self, pair, asks=(), bids=()):
        """A book event (levels [price, size] as text; size "0" removes) with the next nonce."""
        with self.lock:
            book, market = self._ws_book(pair), market_of(pair)
            for side, rows in (("asks", asks), ("bids", bids)):
                for price, size in rows:
                    book[side].pop(price, None) if D(size) == 0 else book[side].__setitem__(price, size)
            book["nonce"] += 2 if self.fault_next_book == "gap" else 1
            self.fault_next_book = None
            self.ws_push(("book", market), {"event": "book", "market": market, "nonce": book["nonce"],
                                          "bids": [list(row) for row in bids], "asks": [list(row) for row in asks]})

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the ticker and the book move."""
        market = market_of(pair)
        trade = {"event": "trade", "timestamp": self.now_ms(), "market": market,
                 "id": str(uuid.UUID(int=(1 << 64) + next(self._trade_ids))), "amount": fmt(amount),
                 "price": fmt(price), "side": side}
        self.ws_push(("trades", market), trade)
        self.ws_push(("ticker24h", market), self._ticker24h(pair))
        asks, bids = self.engine.book(pair, levels=1)
        self.ws_push(("ticker", market), {"event": "ticker", "market": market, "bestBid": fmt(bids[0][0]),
                                        "bestBidSize": fmt(bids[0][1]), "bestAsk": fmt(asks[0][0]),
                                        "bestAskSize": fmt(asks[0][1]), "lastPrice": fmt(price)})
        if self.ws_watched(("book", market)):
            self.push_book_update(pair)
