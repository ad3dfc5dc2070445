"""A fake Binance with real state, for tests: spot (/api/v3) and USDT-M perpetual futures (/fapi)
on one server, as `--base-url Binance=URL` sends both there. Shapes, messages and codes follow
binance-spot-api-docs (rest-api.md response examples, errors.md, filters.md, enums.md) and the
USDS-M futures pages of developers.binance.com (see /work/notes/binance.md).

It verifies every SIGNED call as Binance does: the X-MBX-APIKEY header (-2014 malformed, -2015
unknown), `timestamp` within `recvWindow` behind its clock and less than 1 s ahead (-1021), and
`signature` = hex HMAC-SHA256(secret, totalParams) where totalParams is the query string
(without `signature`) followed directly by the form body (-1022). Parameters are read from the
query string and the form body, the query string winning, as Binance reads them.
The timestamp is checked against when the request arrived; an order or cancel the matching engine
takes after timestamp + recvWindow is refused too: futures with -5028 "Timestamp for this request is
outside of the ME recvWindow." (USDS-M error codes), spot with -1021 (the spot docs' timing rule:
"the request must be processed within a certain number of milliseconds or be rejected").

State lives in the shared engine (tests/fakes/engine.py); this file translates Binance's dialect
to and from it: BTCUSDT, BUY/SELL, LIMIT/MARKET, quoteOrderQty, 8-decimal spot strings, the
filters (PRICE_FILTER, LOT_SIZE, NOTIONAL / futures MIN_NOTIONAL), positionSide and reduceOnly.
- Futures quantities are in the base coin, as on Binance: one engine contract of BTC_USDT.swap
  (0.01 BTC) is 0.01 here, so the futures stepSize is the engine's lot times its contract value.
  Only the engine's linear (USDT-margined) swaps are listed on /fapi.
- Wallets: Binance keeps spot and futures wallets apart; the engine has one. The fake answers the
  margin its swaps hold (positions and resting futures orders) as the futures wallet and the rest
  as the spot wallet, so the two add up to the engine's wallet as Binance's two add up to the
  trader's money. Transfers between them are not modelled.
- Margin: a position's margin is what the engine holds for it (margin at the entry price), where
  Binance recomputes initial margin at the mark price.

Its market streams (spot "WebSocket Streams", USDT-M "Websocket Market Streams") are served on the
same port: spot at /ws and /stream/ws (raw pushes; CCXT adds /N) and /stream (combined:
{"stream", "data"}),
futures the same under /futures (where the plugin's tests move `binance.ws.futures`) and under
USDT-M's /public and /market hosts (where CCXT goes). {"method": "SUBSCRIBE" | "UNSUBSCRIBE" |
"LIST_SUBSCRIPTIONS", "params": [...], "id": N} is answered {"result": ..., "id": N}, a bad one
{"error": {"code", "msg"}, "id"}. Streams: <symbol>@ticker, @miniTicker, @bookTicker, @depth5/10/20[@100ms]
(the top levels whole), @depth[@100ms] (diff updates chained by U/u, and pu on futures, after
the lastUpdateId REST /depth gives), @trade and @aggTrade; a subscription gets the current
ticker, book ticker and partial book at once, and every engine fill pushes the trade, the
tickers and the books. `ws_ping_every` seconds (None: never) the fake pings, and closes a
connection whose pong has not come `ws_pong_limit` seconds later (Binance: a minute).

Simplifications: LIMIT orders are GTC only, quoteOrderQty is accepted on spot market buys only,
a spot FULL answer reports one aggregated fill, every futures position is cross margin.
"""
import functools
import hashlib
import hmac
import itertools
import json
import re
import socket
import time
import urllib.parse
import uuid
from collections import deque
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, LONG, OPEN, PARTIAL, SHORT, SWAP_MARKETS, Engine, Refused, fmt

# The API key and secret of Binance's own signing example (rest-api.md, "SIGNED Endpoint Examples").
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
KEY_FORMAT = re.compile(r"[A-Za-z0-9]{64}")
CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
MAX_RECV_WINDOW = 60_000
FUTURES_DEPTH_LIMITS = ("5", "10", "20", "50", "100", "500", "1000")
FUTURES_MIN_NOTIONAL = D("5")        # BTCUSDT's MIN_NOTIONAL on Binance (reduce-only orders exempt)
DEFAULT_FUNDING_HOURS = 8            # /fapi/v1/fundingInfo lists only the perpetuals that differ
SEVEN_DAYS_MS = 7 * 86_400_000       # the futures allOrders window
FIRST_UPDATE_ID = 1027024            # a book's lastUpdateId before any update
WS_STREAM = re.compile(r"([a-z0-9]+)@(ticker|miniTicker|bookTicker|depth(?:5|10|20)?(?:@100ms|@1000ms)?|trade|aggTrade)")
# path prefix -> futures: spot at the root and under /stream (CCXT tells a spot connection by
# "/stream" in its URL, as the real host stream.binance.com has), futures under /futures (the
# plugin's tests) and USDT-M's /public and /market (CCXT)
WS_HOSTS = {"": False, "/stream": False, "/futures": True, "/public": True, "/market": True}

INTERVAL_MS = {"1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000}
WEEK_START_MS = 4 * 86_400_000       # Binance weeks open on Monday; 1970-01-01 was a Thursday

# Request weight of each endpoint (rest-api.md and the futures pages, "Weight"), as Binance adds
# it up per IP and reports it in X-MBX-USED-WEIGHT-1M: a number, or one with a symbol and one
# without, or a function of the params. A futures order weighs 0 (it counts on the order limits).
def _levels_weight(steps, default):
    def weight(params):
        levels = int(params["limit"]) if params.get("limit", "").isdigit() else default
        return next(w for top, w in steps if levels <= top)
    return weight


WEIGHTS = {
    "/api/v3/time": 1, "/api/v3/exchangeInfo": 20, "/api/v3/ticker/24hr": (2, 80),
    "/api/v3/depth": _levels_weight([(100, 5), (500, 25), (1000, 50), (5000, 250)], 100),
    "/api/v3/trades": 25, "/api/v3/klines": 2, "/api/v3/account": 20, "POST /api/v3/order": 1,
    "/api/v3/order": 4, "DELETE /api/v3/order": 1, "/api/v3/openOrders": (6, 80), "/api/v3/allOrders": 20,
    "/fapi/v1/time": 1, "/fapi/v1/exchangeInfo": 1, "/fapi/v1/ticker/24hr": (1, 40),
    "/fapi/v1/ticker/bookTicker": (2, 5),
    "/fapi/v1/depth": _levels_weight([(50, 2), (100, 5), (500, 10), (1000, 20)], 500),
    "/fapi/v1/trades": 5, "/fapi/v1/klines": _levels_weight([(99, 1), (499, 2), (1000, 5), (1500, 10)], 500),
    "/fapi/v1/premiumIndex": (1, 10), "/fapi/v1/fundingInfo": 0, "/fapi/v2/account": 5,
    "/fapi/v2/positionRisk": 5, "/fapi/v1/positionSide/dual": 30, "POST /fapi/v1/positionSide/dual": 1,
    "POST /fapi/v1/leverage": 1, "POST /fapi/v1/order": 0, "/fapi/v1/order": 1, "DELETE /fapi/v1/order": 1,
    "/fapi/v1/openOrders": (1, 40), "/fapi/v1/allOrders": 5,
}
ORDER_PATHS = {"/api/v3/order": "spot", "/fapi/v1/order": "futures"}

# Engine refusals -> Binance code and msg: spot (errors.md; -1013 messages from filters.md) ...
REFUSALS = {
    "unknown_symbol": (-1121, "Invalid symbol."),
    "duplicate_client_id": (-2010, "Duplicate order sent."),
    "bad_amount": (-1013, "Filter failure: LOT_SIZE"),
    "bad_price": (-1013, "Filter failure: PRICE_FILTER"),
    "below_min": (-1013, "Filter failure: LOT_SIZE"),
    "below_notional": (-1013, "Filter failure: NOTIONAL"),
    "insufficient": (-2010, "Account has insufficient balance for requested action."),
    "unknown_order": (-2011, "Unknown order sent."),
    "order_closed": (-2011, "Unknown order sent."),
}
# ... and USDT-M futures (the derivatives "Error Codes" page)
FUTURES_REFUSALS = {
    **REFUSALS,
    "duplicate_client_id": (-4116, "clientOrderId is duplicated"),
    "bad_amount": (-1111, "Precision is over the maximum defined for this asset."),
    "bad_price": (-4014, "Price not increased by tick size."),
    "below_min": (-4004, "Quantity less than min quantity."),
    "above_max": (-4005, "Quantity greater than max quantity."),
    "below_notional": (-4164, "Order's notional must be no smaller than 5 (unless you choose reduce only)."),
    "insufficient_margin": (-2019, "Margin is insufficient."),
    "no_position": (-2022, "ReduceOnly Order is rejected."),
    "close_exceeds_position": (-2022, "ReduceOnly Order is rejected."),
    "position_side_required": (-4061, "Order's position side does not match user's setting."),
    "bad_leverage": (-4028, "Leverage {} is not valid"),
    "leverage_too_high": (-4028, "Leverage {} is not valid"),
    "position_mode_busy": (-4068, "Position side cannot be changed if there exists position."),
}
STATUSES = {OPEN: "NEW", PARTIAL: "PARTIALLY_FILLED", FILLED: "FILLED", CANCELED: "CANCELED"}
POSITION_SIDES = {LONG: "LONG", SHORT: "SHORT", "net": "BOTH"}


def fail(code, msg, status=400):
    return status, {"code": code, "msg": msg}


def refuse(error, futures=False, detail=""):
    code, msg = (FUTURES_REFUSALS if futures else REFUSALS)[error.reason]
    return fail(code, msg.format(detail))


def mandatory(name):
    return fail(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name, legal):
    return fail(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def b8(number):
    """Binance writes spot prices and quantities with 8 decimals: "0.10000000"."""
    return f"{(number or D(0)):.8f}"


def decimals(step):
    return max(0, -step.normalize().as_tuple().exponent)


def split_signature(query, body):
    """(signature, totalParams): `signature` taken out of the query string or the body, and
    totalParams the rest of the query string followed directly by the rest of the body."""
    signature, kept = None, []
    for text in (query, body):
        fields = text.split("&") if text else []
        for field in fields:
            if field.startswith("signature="):
                signature = field[len("signature="):]
        kept.append("&".join(f for f in fields if not f.startswith("signature=")))
    return signature, kept[0] + kept[1]


class FakeBinance(FakeExchange):
    NAME = "Binance"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET
    ORDER_PATH, TIME_PATH = "/api/v3/order", "/api/v3/time"      # orders are placed with POST
    SWAP_ORDER_PATH = "/fapi/v1/order"
    CANCEL_ROUTE = ("DELETE", "/api/v3/order")
    CODES = {reason: str(code) for reason, (code, _) in FUTURES_REFUSALS.items()}
    CODES.update({reason: str(code) for reason, (code, _) in REFUSALS.items()}, unknown_order="-2013")
    FOREIGN_ORDER_ID = "ETHUSDT,12345"               # well-formed, but no such order
    # USDT-M quantities are coins: one engine contract of BTC_USDT.swap is 0.01 (BTC) here.
    # Coin-margined swaps (Binance's /dapi) are not served, so only the linear swaps are listed.
    CONTRACT_UNITS = {f"{base}_{quote}.swap": spec["ct_val"]
                      for (base, quote, _), spec in SWAP_MARKETS.items() if not spec["inverse"]}
    SWAPS = tuple(CONTRACT_UNITS)

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.futures_permission = True     # False: the key may trade spot only (/fapi answers -2015)
        self.weights = deque()             # (arrived, weight) of the last minute's requests
        self.weight_used = 0
        self.weight_used_elsewhere = 0     # weight another program on this IP spent this minute
        self.orders_placed = {"spot": deque(), "futures": deque()}    # when, over the last minute
        self.orders_elsewhere = 0          # orders another program on this account placed just now
        self.engine.watchers.append(self.stream_fill)
        self.update_ids = {}               # pair -> the book's last update id (REST lastUpdateId, U/u)
        self.ws_subscriptions = {}         # session -> {stream name}
        self.ws_kinds = {}                 # session -> (futures, combined)
        self.ws_ping_every = None          # seconds between the fake's pings (None: it does not ping)
        self.ws_pong_limit = 60.0          # seconds a ping may go unanswered before the connection closes
        self._trade_ids = itertools.count(30_000_000)
        self.ws_routes = {}
        for prefix, futures in WS_HOSTS.items():
            for path, combined in (("/ws", False), ("/stream", True)):
                serve = functools.partial(self.ws_market, futures=futures, combined=combined)
                self.ws_routes[prefix + path] = self.ws_routes[prefix + path + "/*"] = serve
        spot, futures = {"futures": False}, {"futures": True}
        market = lambda function, kind: functools.partial(function, **kind)
        signed = lambda function, kind: self.signed(functools.partial(function, **kind))
        self.routes = {
            ("GET", "/api/v3/time"): self.time,
            ("GET", "/api/v3/exchangeInfo"): self.exchange_info,
            ("GET", "/api/v3/ticker/24hr"): market(self.ticker_24hr, spot),
            ("GET", "/api/v3/depth"): market(self.depth, spot),
            ("GET", "/api/v3/trades"): market(self.trades, spot),
            ("GET", "/api/v3/klines"): market(self.klines, spot),
            ("GET", "/api/v3/account"): self.signed(self.account),
            ("POST", "/api/v3/order"): self.signed(self.new_order),
            ("GET", "/api/v3/order"): signed(self.get_order, spot),
            ("DELETE", "/api/v3/order"): signed(self.cancel_order, spot),
            ("GET", "/api/v3/openOrders"): signed(self.open_orders, spot),
            ("GET", "/api/v3/allOrders"): signed(self.all_orders, spot),
            ("GET", "/fapi/v1/time"): self.time,
            ("GET", "/fapi/v1/exchangeInfo"): self.futures_exchange_info,
            ("GET", "/fapi/v1/ticker/24hr"): market(self.ticker_24hr, futures),
            ("GET", "/fapi/v1/ticker/bookTicker"): self.book_ticker,
            ("GET", "/fapi/v1/depth"): market(self.depth, futures),
            ("GET", "/fapi/v1/trades"): market(self.trades, futures),
            ("GET", "/fapi/v1/klines"): market(self.klines, futures),
            ("GET", "/fapi/v1/premiumIndex"): self.premium_index,
            ("GET", "/fapi/v1/fundingInfo"): self.funding_info,
            ("GET", "/fapi/v2/account"): self.signed(self.futures_account),
            ("GET", "/fapi/v2/positionRisk"): self.signed(self.position_risk),
            ("GET", "/fapi/v1/positionSide/dual"): self.signed(self.get_position_mode),
            ("POST", "/fapi/v1/positionSide/dual"): self.signed(self.set_position_mode),
            ("POST", "/fapi/v1/leverage"): self.signed(self.set_leverage),
            ("POST", "/fapi/v1/order"): self.signed(self.new_futures_order),
            ("GET", "/fapi/v1/order"): signed(self.get_order, futures),
            ("DELETE", "/fapi/v1/order"): signed(self.cancel_order, futures),
            ("GET", "/fapi/v1/openOrders"): signed(self.open_orders, futures),
            ("GET", "/fapi/v1/allOrders"): signed(self.all_orders, futures),
        }

    # ------------------------------------------------------------------ auth
    @staticmethod
    def params(request):
        """Query string and form body together; a parameter in both is taken from the query."""
        fields = dict(urllib.parse.parse_qsl(request.body, keep_blank_values=True))
        fields.update(request.query)
        return fields

    def signed(self, function):
        def checked(request):
            refusal = self.authenticate(request)
            return refusal or function(self.params(request))
        return checked

    def authenticate(self, request):
        key = request.headers.get("X-MBX-APIKEY")
        if not key or not KEY_FORMAT.fullmatch(key):
            return fail(-2014, "API-key format invalid.", 401)
        if key != API_KEY or (request.path.startswith("/fapi/") and not self.futures_permission):
            return fail(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        params = self.params(request)
        if not params.get("timestamp", "").isdigit():
            return mandatory("timestamp")
        window = params.get("recvWindow", "5000")
        if not window.isdigit() or int(window) > MAX_RECV_WINDOW:
            return fail(-1131, "recvWindow must be less than 60000")
        sent, now = int(params["timestamp"]), request.arrived_ms
        if sent >= now + 1000:
            return fail(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - sent > int(window):
            return fail(-1021, "Timestamp for this request is outside of the recvWindow.")
        signature, total_params = split_signature(request.raw_query, request.body)
        if not signature:
            return mandatory("signature")
        expected = hmac.new(SECRET.encode(), total_params.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            return fail(-1022, "Signature for this request is not valid.")
        return None

    def deadline_of(self, request):
        return self.deadline(self.params(request))

    @staticmethod
    def deadline(params):
        """timestamp + recvWindow: the request is valid until then (authenticate checked both)."""
        return int(params["timestamp"]) + int(params.get("recvWindow", "5000"))

    def taken_late_by_engine(self, params, futures):
        """The refusal of an order or cancel the matching engine takes after its recvWindow."""
        if self.now_ms() <= self.deadline(params):
            return None
        if futures:
            return fail(-5028, "Timestamp for this request is outside of the ME recvWindow.")
        return fail(-1021, "Timestamp for this request is outside of the recvWindow.")

    def outcome_unknown(self):
        """-1007 as Binance answers it (HTTP 408 observed on /fapi/v1/order)."""
        return fail(-1007, "Timeout waiting for response from backend server. Send status unknown; "
                           "execution status unknown.", 408)

    def not_found(self, request):
        return 404, b"<!DOCTYPE html><html><head><title>Binance</title></head><body>404 Not Found</body></html>"

    def signature_of(self, request):
        return split_signature(request.raw_query, request.body)[0]

    def forget(self):
        super().forget()
        with self.lock:
            self.weights.clear()
            self.weight_used = 0

    def reply_headers(self, request, status):
        """X-MBX-USED-WEIGHT-1M on every reply (this IP's weight over the last minute, counted
        here over a sliding minute where Binance counts calendar minutes); on a placed order,
        X-MBX-ORDER-COUNT-10S (and -1M on futures, -1D on spot): the account's new orders."""
        now = time.monotonic()
        self.weights.append((now, self.weight_of(request)))
        self.weight_used += self.weights[-1][1]
        while self.weights[0][0] <= now - 60:
            self.weight_used -= self.weights.popleft()[1]
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.weight_used + self.weight_used_elsewhere)}
        kind = ORDER_PATHS.get(request.path)
        if request.method == "POST" and kind and status == 200:
            placed = self.orders_placed[kind]
            placed.append(now)
            while placed[0] <= now - 60:
                placed.popleft()
            recent = sum(1 for at in placed if at > now - 10) + self.orders_elsewhere
            headers["X-MBX-ORDER-COUNT-10S"] = str(recent)
            headers["X-MBX-ORDER-COUNT-1M" if kind == "futures" else "X-MBX-ORDER-COUNT-1D"] = \
                str(len(placed) + self.orders_elsewhere)
        return headers

    def weight_of(self, request):
        weight = WEIGHTS.get(f"{request.method} {request.path}", WEIGHTS.get(request.path, 1))
        if isinstance(weight, tuple):
            return weight[0] if self.params(request).get("symbol") else weight[1]
        return weight(self.params(request)) if callable(weight) else weight

    def rate_limited(self):
        return fail(-1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                           "Please use WebSocket Streams for live updates to avoid polling the API.", 429)

    # ------------------------------------------------------------------ symbols and units
    def listed(self, futures):
        """{BTCUSDT: engine pair} of the spot markets, or of the USDT-M perpetuals."""
        if futures:
            return {pair[0] + pair[1]: pair for pair, spec in self.engine.swaps.items() if not spec["inverse"]}
        return {pair[0] + pair[1]: pair for pair in self.engine.markets}

    def with_pair(self, params, futures=False):
        """(pair, None), or (None, the refusal) for a missing or unknown symbol."""
        if not params.get("symbol"):
            return None, mandatory("symbol")
        pair = self.listed(futures).get(params["symbol"])
        return (pair, None) if pair else (None, fail(-1121, "Invalid symbol."))

    def coins(self, pair, contracts):
        """Engine contracts -> Binance quantity (the base coin); spot amounts are already coins."""
        return contracts * self.engine.swaps[pair]["ct_val"] if pair in self.engine.swaps else contracts

    def text(self, pair, number):
        return fmt(number or D(0)) if pair in self.engine.swaps else b8(number)

    # ------------------------------------------------------------------ market data
    def time(self, request):
        return 200, {"serverTime": self.now_ms()}

    def exchange_info(self, request):
        symbols = [self.symbol_info(pair, spec) for pair, spec in self.engine.markets.items()]
        halted = self.symbol_info(("OLD", "USDT"), self.engine.markets[("BTC", "USDT")])
        halted["status"] = "BREAK"                     # delisted: listed, but not trading
        return 200, {"timezone": "UTC", "serverTime": self.now_ms(), "exchangeFilters": [],
                     "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                     "limit": 6000},
                                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 10}],
                     "symbols": symbols + [halted]}

    @staticmethod
    def symbol_info(pair, spec):
        return {
            "symbol": "".join(pair), "status": "TRADING", "baseAsset": pair[0], "baseAssetPrecision": 8,
            "quoteAsset": pair[1], "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": False, "ocoAllowed": False,
            "quoteOrderQtyMarketAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": b8(spec["tick"]), "maxPrice": "1000000.00000000",
                 "tickSize": b8(spec["tick"])},
                {"filterType": "LOT_SIZE", "minQty": b8(spec["min"]), "maxQty": b8(spec["max"]),
                 "stepSize": b8(spec["lot"])},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": b8(spec["max"]),
                 "stepSize": "0.00000000"},
                {"filterType": "NOTIONAL", "minNotional": b8(spec["min_notional"]), "applyMinToMarket": False,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": ["SPOT"], "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }

    def futures_exchange_info(self, request):
        symbols = [self.contract_info(pair) for pair in self.listed(futures=True).values()]
        quarterly = self.contract_info(("BTC", "USDT", "swap"))
        quarterly.update(symbol="BTCUSDT_261225", contractType="CURRENT_QUARTER", deliveryDate=1798185600000)
        settling = self.contract_info(("ETH", "USDT", "swap"))
        settling.update(symbol="OLDUSDT", pair="OLDUSDT", baseAsset="OLD", status="SETTLING")
        return 200, {"timezone": "UTC", "serverTime": self.now_ms(), "futuresType": "U_MARGINED",
                     "rateLimits": [{"interval": "MINUTE", "intervalNum": 1, "limit": 2400,
                                     "rateLimitType": "REQUEST_WEIGHT"},
                                    {"interval": "MINUTE", "intervalNum": 1, "limit": 1200, "rateLimitType": "ORDERS"}],
                     "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True,
                                                        "autoAssetExchange": "0"}],
                     "symbols": symbols + [quarterly, settling]}

    def contract_info(self, pair):
        spec = self.engine.swaps[pair]
        step, tick = self.coins(pair, spec["lot"]), spec["tick"]
        lot = {"minQty": fmt(self.coins(pair, spec["min"])), "maxQty": fmt(self.coins(pair, spec["max"])),
               "stepSize": fmt(step)}
        return {
            "symbol": pair[0] + pair[1], "pair": pair[0] + pair[1], "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
            "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": pair[0],
            "quoteAsset": pair[1], "marginAsset": spec["settle"], "pricePrecision": decimals(tick),
            "quantityPrecision": decimals(step), "baseAssetPrecision": 8, "quotePrecision": 8,
            "underlyingType": "COIN", "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt(tick), "maxPrice": "4529764", "tickSize": fmt(tick)},
                {"filterType": "LOT_SIZE", **lot},
                {"filterType": "MARKET_LOT_SIZE", **lot},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": fmt(FUTURES_MIN_NOTIONAL)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                          "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    def ticker_24hr(self, request, futures):
        if not request.query.get("symbol"):
            return 200, [self.ticker_of(pair, futures) for pair in self.listed(futures).values()]
        pair, refusal = self.with_pair(request.query, futures)
        return refusal or (200, self.ticker_of(pair, futures))

    def ticker_of(self, pair, futures):
        """The 24 h ticker; the futures one has no bid or ask (bookTicker has them)."""
        mid, now, text = self.engine.spec(pair)["mid"], self.now_ms(), functools.partial(self.text, pair)
        ticker = {
            "symbol": pair[0] + pair[1], "priceChange": text(D(100)), "priceChangePercent": "0.200",
            "weightedAvgPrice": text(mid), "lastPrice": text(mid), "lastQty": text(self.coins(pair, D(1))),
            "openPrice": text(mid - 100), "highPrice": text(mid + 500), "lowPrice": text(mid - 500),
            "volume": text(D("1234.5")), "quoteVolume": text(mid * D("1234.5")), "openTime": now - 86_400_000,
            "closeTime": now, "firstId": 28385, "lastId": 28460, "count": 76,
        }
        if not futures:
            asks, bids = self.engine.book(pair, levels=1)
            ticker.update(prevClosePrice=text(mid - 100), bidPrice=text(bids[0][0]), bidQty=text(bids[0][1]),
                          askPrice=text(asks[0][0]), askQty=text(asks[0][1]))
        return ticker

    def book_ticker(self, request):
        def book(pair):
            asks, bids = self.engine.book(pair, levels=1)
            return {"symbol": pair[0] + pair[1], "bidPrice": fmt(bids[0][0]),
                    "bidQty": fmt(self.coins(pair, bids[0][1])), "askPrice": fmt(asks[0][0]),
                    "askQty": fmt(self.coins(pair, asks[0][1])), "time": self.now_ms()}
        if not request.query.get("symbol"):
            return 200, [book(pair) for pair in self.listed(futures=True).values()]
        pair, refusal = self.with_pair(request.query, futures=True)
        return refusal or (200, book(pair))

    def depth(self, request, futures):
        pair, refusal = self.with_pair(request.query, futures)
        if refusal:
            return refusal
        limit = request.query.get("limit", "500" if futures else "100")
        if futures and limit not in FUTURES_DEPTH_LIMITS:
            return fail(-4021, "Invalid depth limit.")
        if not limit.isdigit() or int(limit) < 1:
            return illegal("limit", "1-5000")
        asks, bids = self.engine.book(pair, levels=min(int(limit), 5000))
        level = lambda px, size: [self.text(pair, px), self.text(pair, self.coins(pair, size))]
        book = {"lastUpdateId": self.update_ids.get(pair, FIRST_UPDATE_ID), "bids": [level(*b) for b in bids], "asks": [level(*a) for a in asks]}
        if futures:
            book.update(E=self.now_ms(), T=self.now_ms())
        return 200, book

    def trades(self, request, futures):
        pair, refusal = self.with_pair(request.query, futures)
        if refusal:
            return refusal
        limit = min(int(request.query.get("limit", "500")), 1000)
        now, mid, qty = self.now_ms(), self.engine.spec(pair)["mid"], self.coins(pair, D(1))
        extra = {"isRPITrade": False} if futures else {"isBestMatch": True}
        return 200, [{"id": 28457 - i, "price": self.text(pair, mid + i), "qty": self.text(pair, qty),
                      "quoteQty": self.text(pair, (mid + i) * qty), "time": now - i * 1000,
                      "isBuyerMaker": i % 2 == 0, **extra}
                     for i in reversed(range(limit))]              # oldest first, as Binance sends

    def klines(self, request, futures):
        query = request.query
        pair, refusal = self.with_pair(query, futures)
        if refusal:
            return refusal
        step = INTERVAL_MS.get(query.get("interval"))
        if step is None or (futures and query["interval"] == "1s"):
            return fail(-1120, "Invalid interval.")
        limit = min(int(query.get("limit", "500")), 1500 if futures else 1000)
        offset = WEEK_START_MS if query["interval"] == "1w" else 0
        align = lambda ms: (ms - offset) // step * step + offset
        newest = align(self.now_ms())
        if query.get("endTime"):
            newest = min(newest, align(int(query["endTime"])))
        if query.get("startTime"):                   # from startTime forward
            first = align(int(query["startTime"]) + step - 1)
            opens = range(first, min(newest, first + (limit - 1) * step) + 1, step)
        else:                                        # the latest `limit` up to endTime (or now)
            opens = range(newest - (limit - 1) * step, newest + 1, step)
        return 200, [self.kline(pair, ts, step) for ts in opens]

    def kline(self, pair, ts, step):
        _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
        text = functools.partial(self.text, pair)
        return [ts, text(o), text(h), text(low), text(c), text(vol), ts + step - 1, text(vol * c), 308,
                text(vol / 2), text(vol * c / 2), "0"]

    def premium_index(self, request):
        def index(pair):
            spec, funding = self.engine.swaps[pair], self.engine.funding(pair)
            return {"symbol": pair[0] + pair[1], "markPrice": fmt(spec["mid"]), "indexPrice": fmt(spec["mid"]),
                    "estimatedSettlePrice": fmt(spec["mid"]), "lastFundingRate": f"{funding['rate']:.8f}",
                    "interestRate": "0.00010000", "nextFundingTime": funding["time"], "time": self.now_ms()}
        if not request.query.get("symbol"):
            return 200, [index(pair) for pair in self.listed(futures=True).values()]
        pair, refusal = self.with_pair(request.query, futures=True)
        return refusal or (200, index(pair))

    def funding_info(self, request):
        """Only the perpetuals whose funding differs from the default 8 h, as Binance lists them."""
        rows = []
        for pair in self.listed(futures=True).values():
            hours = self.engine.swaps[pair]["funding_interval"] // 3_600_000
            if hours != DEFAULT_FUNDING_HOURS:
                rows.append({"symbol": pair[0] + pair[1], "adjustedFundingRateCap": "0.02000000",
                             "adjustedFundingRateFloor": "-0.02000000", "fundingIntervalHours": hours,
                             "disclaimer": False})
        return 200, rows

    # ------------------------------------------------------------------ wallets and positions
    def futures_margin(self, currency):
        """(margin held by positions, margin frozen by resting futures orders) in a currency."""
        positions = sum((p["margin"] for p in self.engine.positions.values()
                         if self.engine.swaps[p["pair"]]["settle"] == currency), D(0))
        orders = sum((o["frozen"] for o in self.engine.orders.values()
                      if o["pair"] in self.engine.swaps and o["pay"] == currency and o["status"] in (OPEN, PARTIAL)),
                     D(0))
        return positions, orders

    def account(self, params):
        """The spot wallet: the engine's, less what the futures wallet holds."""
        balances = []
        for ccy, (free, frozen) in self.engine.balances.items():
            locked = frozen - sum(self.futures_margin(ccy))
            if free or locked or params.get("omitZeroBalances") != "true":
                balances.append({"asset": ccy, "free": b8(free), "locked": b8(locked)})
        return 200, {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                     "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                         "seller": "0.00000000"},
                     "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                     "requireSelfTradePrevention": False, "updateTime": self.now_ms(), "accountType": "SPOT",
                     "balances": balances, "permissions": ["SPOT"]}

    def futures_account(self, params):
        """GET /fapi/v2/account: the USDT wallet (the margin the engine holds), every position."""
        held, ordered = self.futures_margin("USDT")
        upl = sum((self.engine.unrealised(p) for p in self.engine.positions.values()
                   if p["pair"] in self.listed(futures=True).values()), D(0))
        wallet, available = held + ordered, max(upl, D(0))
        usdt = {"asset": "USDT", "walletBalance": fmt(wallet), "unrealizedProfit": fmt(upl),
                "marginBalance": fmt(wallet + upl), "maintMargin": fmt(held / 100), "initialMargin": fmt(wallet),
                "positionInitialMargin": fmt(held), "openOrderInitialMargin": fmt(ordered),
                "crossWalletBalance": fmt(wallet), "crossUnPnl": fmt(upl), "availableBalance": fmt(available),
                "maxWithdrawAmount": fmt(available), "marginAvailable": True, "updateTime": self.now_ms()}
        positions = [{"symbol": row["symbol"], "initialMargin": row["isolatedWallet"], "maintMargin": "0",
                      "unrealizedProfit": row["unRealizedProfit"], "positionInitialMargin": row["isolatedWallet"],
                      "openOrderInitialMargin": "0", "leverage": row["leverage"], "isolated": False,
                      "entryPrice": row["entryPrice"], "maxNotional": row["maxNotionalValue"], "bidNotional": "0",
                      "askNotional": "0", "positionSide": row["positionSide"], "positionAmt": row["positionAmt"],
                      "updateTime": row["updateTime"]} for row in self.position_rows()]
        return 200, {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                     "multiAssetsMargin": False, "totalInitialMargin": fmt(wallet), "totalMaintMargin": fmt(held / 100),
                     "totalWalletBalance": fmt(wallet), "totalUnrealizedProfit": fmt(upl),
                     "totalMarginBalance": fmt(wallet + upl), "totalPositionInitialMargin": fmt(held),
                     "totalOpenOrderInitialMargin": fmt(ordered), "totalCrossWalletBalance": fmt(wallet),
                     "totalCrossUnPnl": fmt(upl), "availableBalance": fmt(available),
                     "maxWithdrawAmount": fmt(available), "assets": [usdt], "positions": positions}

    def position_rows(self, pairs=None):
        """positionRisk rows: every perpetual, BOTH in one-way mode, LONG and SHORT in hedge mode."""
        sides = ("LONG", "SHORT") if self.engine.hedge_mode else ("BOTH",)
        return [self.position_row(pair, side) for pair in (pairs or self.listed(futures=True).values())
                for side in sides]

    def position_row(self, pair, side):
        spec = self.engine.swaps[pair]
        held = [p for p in (self.engine.positions.get((pair, LONG)), self.engine.positions.get((pair, SHORT)))
                if p and side in ("BOTH", POSITION_SIDES[p["side"]])]
        position = held[0] if held else None
        amount = self.coins(pair, position["size"]) * (-1 if position["side"] == SHORT else 1) if position else D(0)
        upl = self.engine.unrealised(position) if position else D(0)
        return {"symbol": pair[0] + pair[1], "positionAmt": fmt(amount),
                "entryPrice": fmt(position["avg"]) if position else "0.0", "breakEvenPrice": "0.0",
                "markPrice": fmt(spec["mid"]), "unRealizedProfit": fmt(upl), "liquidationPrice": "0",
                "leverage": str(self.engine.leverage_of(pair)), "maxNotionalValue": "20000000",
                "marginType": "cross", "isolatedMargin": "0.00000000", "isAutoAddMargin": "false",
                "positionSide": side, "notional": fmt(amount * spec["mid"]),
                "isolatedWallet": fmt(position["margin"]) if position else "0",
                "updateTime": position["updated"] if position else 0}

    def position_risk(self, params):
        if not params.get("symbol"):
            return 200, self.position_rows()
        pair, refusal = self.with_pair(params, futures=True)
        return refusal or (200, self.position_rows([pair]))

    def get_position_mode(self, params):
        return 200, {"dualSidePosition": self.engine.hedge_mode}

    def set_position_mode(self, params):
        hedge = params.get("dualSidePosition")
        if hedge not in ("true", "false"):
            return mandatory("dualSidePosition")
        if (hedge == "true") == self.engine.hedge_mode:
            return fail(-4059, "No need to change position side.")
        try:
            self.engine.set_hedge_mode(hedge == "true")
        except Refused as error:
            return refuse(error, futures=True)
        return 200, {"code": 200, "msg": "success"}

    def set_leverage(self, params):
        pair, refusal = self.with_pair(params, futures=True)
        if refusal:
            return refusal
        text = params.get("leverage", "")
        if not text.isdigit():
            return mandatory("leverage")
        try:
            level = self.engine.set_leverage(pair, D(text))
        except Refused as error:
            return refuse(error, futures=True, detail=text)
        return 200, {"leverage": level, "maxNotionalValue": "20000000", "symbol": params["symbol"]}

    # ------------------------------------------------------------------ spot orders
    def new_order(self, params):
        late = self.taken_late_by_engine(params, futures=False)
        if late:
            return late
        pair, refusal = self.with_pair(params)
        if refusal:
            return refusal
        order, refusal = self.read_order(params, ("quantity", "quoteOrderQty"))
        if not refusal and order["kind"] == "market" and (order["amount"] is None) == (order["quote"] is None):
            refusal = fail(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        elif not refusal and order["quote"] is not None and order["side"] == "sell":
            refusal = fail(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        client_id, refusal = self.client_id(params, refusal)
        if refusal:
            return refusal
        quote_amount = order.pop("quote") is not None
        if quote_amount:
            order["amount"] = D(params["quoteOrderQty"])
        try:
            self.check_filters(pair, order, quote_amount)
            placed = self.engine.place(pair, client_id=client_id, quote_amount=quote_amount, **order)
        except Refused as error:
            return refuse(error)
        return 200, self.placed(placed, params.get("newOrderRespType", "FULL"))

    def read_order(self, params, amounts):
        """({side, kind, amount, price, quote}, None) or (None, the refusal): side and type, the
        decimals (8 places at most), and what a LIMIT order must carry."""
        side, kind = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            return None, illegal("side", "BUY, SELL")
        if kind not in ("LIMIT", "MARKET"):
            return None, fail(-1116, "Invalid orderType.")
        values = {}
        for name in amounts + ("price",):
            try:
                values[name] = D(params[name]) if params.get(name) else None
            except InvalidOperation:
                return None, illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
            if values[name] is not None and -values[name].as_tuple().exponent > 8:
                return None, fail(-1111, f"Parameter '{name}' has too much precision.")
        if kind == "LIMIT":
            for name in ("timeInForce", "quantity", "price"):
                if not params.get(name):
                    return None, mandatory(name)
            if params["timeInForce"] != "GTC":
                return None, fail(-1115, "Invalid timeInForce.")
        elif amounts == ("quantity",) and values["quantity"] is None:
            return None, mandatory("quantity")
        return {"side": side.lower(), "kind": kind.lower(), "amount": values["quantity"],
                "price": values["price"] if kind == "LIMIT" else None,
                "quote": values.get("quoteOrderQty")}, None

    @staticmethod
    def client_id(params, refusal):
        """(newClientOrderId or a generated one, the refusal so far or one for a bad id)."""
        client_id = params.get("newClientOrderId") or "web_" + uuid.uuid4().hex[:18]
        if not refusal and not CLIENT_ID.fullmatch(client_id):
            refusal = illegal("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        return client_id, refusal

    def check_filters(self, pair, order, quote_amount):
        """PRICE_FILTER, LOT_SIZE and NOTIONAL (applied to limit orders), as filters.md states them."""
        spec, price, amount = self.engine.markets[pair], order["price"], order["amount"]
        if price is not None and (price < spec["tick"] or price % spec["tick"]):
            raise Refused("bad_price")
        if quote_amount:
            return
        if amount < spec["min"] or amount > spec["max"] or amount % spec["lot"]:
            raise Refused("bad_amount")
        if price is not None and price * amount < spec["min_notional"]:
            raise Refused("below_notional")

    def render(self, order):
        return self.render_futures(order) if order["pair"] in self.engine.swaps else self.render_spot(order)

    @staticmethod
    def status(order):
        """A market order the book could not fill completely ends EXPIRED on Binance."""
        status = STATUSES[order["status"]]
        partly = not order["quote_amount"] and order["filled"] < order["amount"]
        if order["type"] == "market" and (status != "FILLED" or partly):
            return "EXPIRED"
        return status

    def render_spot(self, order):
        """An engine order as Binance's spot order object (GET /api/v3/order)."""
        return {
            "symbol": "".join(order["pair"]), "orderId": int(order["id"]), "orderListId": -1,
            "clientOrderId": order["client_id"], "price": b8(order["price"]),
            "origQty": b8(order["filled"] if order["quote_amount"] else order["amount"]),
            "executedQty": b8(order["filled"]), "cummulativeQuoteQty": b8(order["cost"]),
            "status": self.status(order), "timeInForce": "GTC", "type": order["type"].upper(),
            "side": order["side"].upper(), "stopPrice": "0.00000000", "icebergQty": "0.00000000",
            "time": order["created"], "updateTime": order["updated"], "isWorking": True,
            "workingTime": order["created"],
            "origQuoteOrderQty": b8(order["amount"] if order["quote_amount"] else D(0)),
            "selfTradePreventionMode": "NONE",
        }

    def placed(self, order, response_type):
        """POST /api/v3/order's answer: ACK, RESULT, or FULL (RESULT and its fills)."""
        full = self.render_spot(order)
        ack = {key: full[key] for key in ("symbol", "orderId", "orderListId", "clientOrderId")}
        ack["transactTime"] = order["created"]
        if response_type == "ACK":
            return ack
        result = {**ack, **{key: full[key] for key in (
            "price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status",
            "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode")}}
        if response_type == "FULL":
            avg = self.engine.avg_price(order)
            result["fills"] = [{"price": b8(avg), "qty": b8(order["filled"]), "commission": "0.00000000",
                                "commissionAsset": order["pair"][1], "tradeId": 56}] if avg else []
        return result

    # ------------------------------------------------------------------ futures orders
    def new_futures_order(self, params):
        late = self.taken_late_by_engine(params, futures=True)
        if late:
            return late
        pair, refusal = self.with_pair(params, futures=True)
        if refusal:
            return refusal
        order, refusal = self.read_order(params, ("quantity",))
        position_side, refusal = self.position_side(params, refusal)
        client_id, refusal = self.client_id(params, refusal)
        if refusal:
            return refusal
        order.pop("quote")
        reduce_only = params.get("reduceOnly") == "true"
        try:
            contracts = self.check_futures_filters(pair, order, reduce_only)
            placed = self.engine.place(pair, order["side"], order["kind"], contracts, order["price"], client_id,
                                       position_side=position_side, reduce_only=reduce_only)
        except Refused as error:
            return refuse(error, futures=True, detail=params.get("quantity", ""))
        answer = self.render_futures(placed)
        if params.get("newOrderRespType", "ACK") == "ACK":     # the order as accepted, before matching
            answer.update(status="NEW", executedQty="0", cumQuote="0", avgPrice="0.00000")
        return 200, {**answer, "cumQty": answer["executedQty"]}

    def position_side(self, params, refusal):
        """(engine position side, refusal): LONG/SHORT required in hedge mode, BOTH (or none) in
        one-way mode, and reduceOnly "cannot be sent in Hedge Mode"."""
        side = params.get("positionSide", "BOTH")
        if refusal:
            return None, refusal
        if self.engine.hedge_mode:
            if side not in ("LONG", "SHORT"):
                return None, refuse(Refused("position_side_required"), futures=True)
            if "reduceOnly" in params:
                return None, fail(-1106, "Parameter 'reduceOnly' sent when not required.")
            return side.lower(), None
        if side != "BOTH":
            return None, refuse(Refused("position_side_required"), futures=True)
        return None, None

    def check_futures_filters(self, pair, order, reduce_only):
        """Tick, step, min and max quantity, MIN_NOTIONAL (reduce-only exempt) -> engine contracts."""
        spec, price, qty = self.engine.swaps[pair], order["price"], order["amount"]
        if price is not None and price % spec["tick"]:
            raise Refused("bad_price")
        contracts = qty / spec["ct_val"]
        if contracts % spec["lot"]:
            raise Refused("bad_amount")
        if contracts < spec["min"]:
            raise Refused("below_min")
        if contracts > spec["max"]:
            raise Refused("above_max")
        if not reduce_only and qty * (price or spec["mid"]) < FUTURES_MIN_NOTIONAL:
            raise Refused("below_notional")
        return contracts

    def render_futures(self, order):
        """An engine swap order as Binance's futures order object (GET /fapi/v1/order)."""
        pair, avg = order["pair"], self.engine.avg_price(order)
        return {
            "avgPrice": fmt(avg) if avg else "0.00000", "clientOrderId": order["client_id"],
            "cumQuote": fmt(self.coins(pair, order["cost"])), "executedQty": fmt(self.coins(pair, order["filled"])),
            "orderId": int(order["id"]), "origQty": fmt(self.coins(pair, order["amount"])),
            "origType": order["type"].upper(), "price": fmt(order["price"]) if order["price"] else "0",
            "reduceOnly": order.get("reduce_only", False), "side": order["side"].upper(),
            "positionSide": POSITION_SIDES.get(order.get("position_side"), "BOTH"), "status": self.status(order),
            "stopPrice": "0", "closePosition": False, "symbol": pair[0] + pair[1], "time": order["created"],
            "timeInForce": "GTC", "type": order["type"].upper(), "updateTime": order["updated"],
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE", "goodTillDate": 0,
        }

    # ------------------------------------------------------------------ orders, both APIs
    def lookup(self, params, futures):
        """(the order named by orderId or origClientOrderId on this symbol or None, refusal)."""
        pair, refusal = self.with_pair(params, futures)
        if refusal:
            return None, refusal
        if not params.get("orderId") and not params.get("origClientOrderId"):
            return None, fail(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        order = self.engine.find(params.get("orderId"), params.get("origClientOrderId"))
        return (order if order and order["pair"] == pair else None), None

    def get_order(self, params, futures):
        order, refusal = self.lookup(params, futures)
        if refusal:
            return refusal
        return (200, self.render(order)) if order else fail(-2013, "Order does not exist.")

    def cancel_order(self, params, futures):
        late = self.taken_late_by_engine(params, futures)
        if late:
            return late
        order, refusal = self.lookup(params, futures)
        if refusal:
            return refusal
        try:
            if order is None:
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            return refuse(error, futures)
        if futures:
            return 200, {**self.render_futures(order), "cumQty": self.render_futures(order)["executedQty"]}
        answer = {key: value for key, value in self.render_spot(order).items() if key in (
            "symbol", "orderId", "orderListId", "price", "origQty", "executedQty", "cummulativeQuoteQty",
            "status", "timeInForce", "type", "side", "origQuoteOrderQty", "selfTradePreventionMode")}
        return 200, {**answer, "origClientOrderId": order["client_id"], "transactTime": self.now_ms(),
                     "clientOrderId": params.get("newClientOrderId") or "cancel_" + uuid.uuid4().hex[:16]}

    def open_orders(self, params, futures):
        pairs = set(self.listed(futures).values())
        if params.get("symbol"):
            pair, refusal = self.with_pair(params, futures)
            if refusal:
                return refusal
            pairs = {pair}
        found = [o for o in reversed(self.engine.listing((OPEN, PARTIAL))) if o["pair"] in pairs]
        return 200, [self.render(o) for o in found]

    def all_orders(self, params, futures):
        """orderId set: from that id up; startTime set: from that time up; else the latest `limit`.
        Futures look at 7 days at most: from startTime, or the last 7 days."""
        pair, refusal = self.with_pair(params, futures)
        if refusal:
            return refusal
        limit = min(int(params.get("limit", "500")), 1000)
        found = self.engine.listing((OPEN, PARTIAL, FILLED, CANCELED), pair)[::-1]     # oldest first
        end = int(params["endTime"]) if params.get("endTime") else None
        if futures and params.get("startTime") and end is None:
            end = int(params["startTime"]) + SEVEN_DAYS_MS
        if futures and not params.get("startTime") and not params.get("orderId"):
            found = [o for o in found if o["created"] >= (end or self.now_ms()) - SEVEN_DAYS_MS]
        if end is not None:
            found = [o for o in found if o["created"] <= end]
        if params.get("orderId"):
            found = [o for o in found if int(o["id"]) >= int(params["orderId"])][:limit]
        elif params.get("startTime"):
            found = [o for o in found if o["created"] >= int(params["startTime"])][:limit]
        else:
            found = found[-limit:]
        return 200, [self.render(o) for o in found]

    # ------------------------------------------------------------------ WebSocket market streams
    def ws_market(self, session, futures, combined):
        with self.lock:
            self.ws_subscriptions[session], self.ws_kinds[session] = set(), (futures, combined)
        pinged, pongs = None, 0             # when the unanswered ping went out; pongs seen
        try:
            while True:
                if pinged is not None and len(session.pongs) > pongs:
                    pinged, pongs = None, len(session.pongs)
                if pinged is not None and time.monotonic() - pinged > self.ws_pong_limit:
                    return session.close(1008)     # no pong within the limit: Binance disconnects
                try:
                    message = session.receive(timeout=self.ws_ping_every or 0.5)
                except socket.timeout:
                    if self.ws_ping_every and pinged is None:
                        pinged = time.monotonic()
                        session.ping(b"")
                    continue
                self.ws_note(session, message)
                self.ws_request(session, message, futures)
        finally:
            with self.lock:
                self.ws_subscriptions.pop(session, None)
                self.ws_kinds.pop(session, None)

    def ws_request(self, session, message, futures):
        try:
            request = json.loads(message)
            method, names, request_id = request["method"], request.get("params", []), request["id"]
            if method not in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS") or not isinstance(names, list):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return session.send_text(json.dumps({"error": {"code": 2, "msg": f"Invalid request: {message[:100]}"},
                                                 "id": None}))
        listed = self.listed(futures)
        found = [WS_STREAM.fullmatch(name) if isinstance(name, str) else None for name in names]
        if any(match is None or match.group(1).upper() not in listed for match in found):
            return session.send_text(json.dumps({"error": {"code": 2, "msg": "Invalid request: unknown stream"},
                                                 "id": request_id}))
        with self.lock:
            subscribed = self.ws_subscriptions[session]
            if method == "LIST_SUBSCRIPTIONS":
                return session.send_text(json.dumps({"result": sorted(subscribed), "id": request_id}))
            for name in names:
                subscribed.add(name) if method == "SUBSCRIBE" else subscribed.discard(name)
            session.send_text(json.dumps({"result": None, "id": request_id}))
            if method == "SUBSCRIBE":
                for match in found:
                    self._first_push(session, match.group(0), listed[match.group(1).upper()], match.group(2))
            self.ws_changed.notify_all()

    def _first_push(self, session, name, pair, kind):
        """What Binance's next tick would bring: the tickers and partial books (diffs and trades
        come when something changes)."""
        if kind in ("ticker", "miniTicker", "bookTicker") or WS_PARTIAL.fullmatch(kind):
            self._ws_send(session, name, self._payload(pair, kind))

    def _ws_send(self, session, name, payload):
        combined = self.ws_kinds[session][1]
        session.send_text(json.dumps({"stream": name, "data": payload} if combined else payload))

    def _push(self, pair, make):
        """Send `make(kind)` to every session subscribed to a stream of the pair (under the lock)."""
        futures, stream_id = pair in self.engine.swaps, (pair[0] + pair[1]).lower()
        for session, names in self.ws_subscriptions.items():
            if self.ws_kinds[session][0] != futures:
                continue
            for name in sorted(names):
                symbol, _, kind = name.partition("@")
                payload = make(kind) if symbol == stream_id else None
                if payload is not None:
                    self._ws_send(session, name, payload)

    def _payload(self, pair, kind, diff=None, trade=None):
        """A push of one stream kind (None: that kind does not push now)."""
        futures, now, text = pair in self.engine.swaps, self.now_ms(), functools.partial(self.text, pair)
        symbol = pair[0] + pair[1]
        if kind in ("ticker", "miniTicker"):
            t = self.ticker_of(pair, futures)
            day = {"e": "24hrTicker", "E": now, "s": symbol, "p": t["priceChange"], "P": t["priceChangePercent"],
                   "w": t["weightedAvgPrice"], "c": t["lastPrice"], "Q": t["lastQty"], "o": t["openPrice"],
                   "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"],
                   "O": t["openTime"], "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]}
            if kind == "miniTicker":
                return {"e": "24hrMiniTicker", **{k: day[k] for k in ("E", "s", "c", "o", "h", "l", "v", "q")}}
            if not futures:
                day.update(x=t["prevClosePrice"], b=t["bidPrice"], B=t["bidQty"], a=t["askPrice"], A=t["askQty"])
            return day
        update_id = self.update_ids.get(pair, FIRST_UPDATE_ID)
        level = lambda row: [text(row[0]), text(self.coins(pair, row[1]))]
        if kind == "bookTicker":
            (ask, *_), (bid, *_) = self.engine.book(pair, levels=1)
            book = {"u": update_id, "s": symbol, "b": level(bid)[0], "B": level(bid)[1], "a": level(ask)[0],
                    "A": level(ask)[1]}
            return {"e": "bookTicker", **book, "E": now, "T": now} if futures else book
        partial = WS_PARTIAL.fullmatch(kind)
        if partial:
            asks, bids = self.engine.book(pair, levels=int(partial.group(1)))
            if not futures:
                return {"lastUpdateId": update_id, "bids": [level(b) for b in bids], "asks": [level(a) for a in asks]}
            return {"e": "depthUpdate", "E": now, "T": now, "s": symbol, "U": update_id, "u": update_id,
                    "pu": update_id - 1, "b": [level(b) for b in bids], "a": [level(a) for a in asks]}
        if WS_DIFF.fullmatch(kind) and diff is not None:
            first, last, previous, asks, bids = diff
            event = {"e": "depthUpdate", "E": now, "s": symbol, "U": first, "u": last, "b": bids, "a": asks}
            return {**event, "T": now, "pu": previous} if futures else event
        if kind in ("trade", "aggTrade") and trade is not None:
            trade_id, side, price, amount = trade
            row = {"e": kind, "E": now, "s": symbol, "p": text(price), "q": text(self.coins(pair, amount)),
                   "T": now, "m": side == "sell"}
            row.update({"t": trade_id} if kind == "trade" else {"a": trade_id, "f": trade_id, "l": trade_id})
            return {**row, "X": "MARKET"} if futures and kind == "trade" else {**row, "M": True}
        return None

    def push_depth_update(self, pair, asks=(), bids=(), gap=False):
        """A diff-depth event (levels [price, quantity] as text; quantity "0" removes) with the next
        update id (`gap`: one skipped, as when a message is lost)."""
        with self.lock:
            previous = self.update_ids.get(pair, FIRST_UPDATE_ID)
            first = previous + 1 + bool(gap)
            self.update_ids[pair] = first
            diff = (first, first, previous, [list(a) for a in asks], [list(b) for b in bids])
            self._push(pair, lambda kind: self._payload(pair, kind, diff=diff) if WS_DIFF.fullmatch(kind) else None)

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the tickers and the books move."""
        if not self.ws_subscriptions or not (pair in self.engine.markets or pair in self.listed(True).values()):
            return
        trade = (next(self._trade_ids), side, price, amount)
        self._push(pair, lambda kind: self._payload(pair, kind, trade=trade) if kind in ("trade", "aggTrade")
                   else self._payload(pair, kind))
        asks, bids = self.engine.book(pair, levels=5)
        level = lambda row: [self.text(pair, row[0]), self.text(pair, self.coins(pair, row[1]))]
        self.push_depth_update(pair, asks=[level(a) for a in asks], bids=[level(b) for b in bids])


WS_PARTIAL = re.compile(r"depth(5|10|20)(?:@100ms|@1000ms)?")
WS_DIFF = re.compile(r"depth(?:@100ms|@1000ms)?")
