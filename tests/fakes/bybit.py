"""A fake Bybit v5 REST API (categories spot and linear) with real state, for tests. Shapes and
codes follow https://bybit-exchange.github.io/docs/v5/intro (each endpoint's response example,
"Error Codes"): every reply is {retCode, retMsg, result, retExtInfo, time}.

It verifies every private call as Bybit does: API key (10003), timestamp within
[server - recv_window, server + 1000 ms) (10002), and X-BAPI-SIGN = hex HMAC-SHA256(secret,
timestamp + api_key + recv_window + query string | JSON body) (10004). The timestamp is checked
against when the request arrived; an order or cancel the engine takes after timestamp + recv_window
is refused with 10002 as well (Bybit documents the window, not the moment it is checked: ours is
the strict reading). State lives in the shared
engine (tests/fakes/engine.py); this file only speaks Bybit's dialect: categories, BTCUSDT
names, orderLinkId, cursors, the 7-day window of the order history, positionIdx.

Category linear lists the engine's USDT-margined swaps (its coin-margined one would be Bybit's
category inverse, which this fake does not serve). Bybit counts linear quantities in coins: one
engine contract of BTC_USDT.swap (0.01 BTC) is qty 0.01 here, so every size is converted at the
edge (CONTRACT_UNITS) and margins, prices and profits stay the engine's.

Its public streams ("WebSocket Stream") are served on the same port at /v5/public/spot and
/v5/public/linear: {"req_id", "op": "subscribe" | "unsubscribe", "args": [topic]} (spot: 10 args
at most) answered {"success", "ret_msg", "conn_id", "req_id", "op"}; {"op": "ping"} answered
with a pong; a connection silent for `ws_idle_limit` seconds is closed. Topics tickers.X (a
snapshot; linear then deltas of the fields that changed), orderbook.{1,50,200}.X (a snapshot,
then deltas numbered by `u`; level 1 a snapshot every push) and publicTrade.X; every engine fill
pushes the trade, the ticker and the books. Tests move the stream with `push_book_update`,
`fault_next_book` ("gap": an update id skipped; "restart": a u = 1 snapshot, as after a restart
of Bybit's service), `push_ticker_delta` and `ws_drop()`.
"""
import hashlib
import hmac
import itertools
import json
import re
import time
import urllib.parse
from collections import deque
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, LONG, OPEN, PARTIAL, SHORT, SWAP_MARKETS, Engine, Refused, fmt

API_KEY, SECRET = "bybit-test-key", "bybit-test-secret"
DEFAULT_RECV_WINDOW = 5000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
QUOTE_PRECISION = D("0.0000001")       # spot lotSizeFilter.quotePrecision: a market buy's quote step
INTERVAL_MS = {"1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000,
               "60": 3_600_000, "120": 7_200_000, "240": 14_400_000, "360": 21_600_000,
               "720": 43_200_000, "D": DAY_MS, "W": WEEK_MS}
MONDAY_MS = 4 * DAY_MS                 # 1970-01-05, a Monday: weekly candles open on Mondays
ORDERBOOK_LIMITS = {"spot": (1, 200, 1), "linear": (1, 500, 25)}      # (min, max, default)
TRADE_LIMITS = {"spot": (1, 60, 60), "linear": (1, 1000, 500)}
LIST_LIMITS = (1, 50, 20)              # order/realtime and order/history
POSITION_LIMITS = (1, 200, 20)         # position/list
INSTRUMENT_LIMITS = (1, 1000, 500)     # instruments-info (linear)
MIN_NOTIONAL = D("5")                  # linear lotSizeFilter.minNotionalValue (USDT)
LINEAR = {pair: spec for pair, spec in SWAP_MARKETS.items() if not spec["inverse"]}
WS_TOPIC = re.compile(r"(tickers|orderbook\.(1|50|200)|publicTrade)\.([A-Z0-9]+)")
WS_BOOK_LEVELS = 200
WS_SPOT_ARGS = 10                      # args one spot request may carry
POSITION_IDX = {LONG: 1, SHORT: 2}     # hedge mode; one-way mode is positionIdx 0
STATUSES = {OPEN: "New", PARTIAL: "PartiallyFilled", FILLED: "Filled", CANCELED: "Cancelled"}
# Engine refusals -> Bybit retCode and retMsg for spot (docs v5 "Error Codes", Spot Trade)
REFUSALS = {
    "unknown_symbol": (170121, "Invalid symbol."),
    "duplicate_client_id": (170141, "Duplicate clientOrderId"),
    "bad_amount": (170137, "Order volume decimal too long"),
    "bad_price": (170134, "Order price decimal too long."),
    "below_min": (170136, "Order quantity lower than the minimum."),
    "insufficient": (170131, "Balance insufficient"),
    "unknown_order": (170213, "Order does not exist."),
    "order_closed": (170213, "Order does not exist."),
}
# ... and for linear (docs v5 "Error Codes", UTA / contract)
LINEAR_REFUSALS = {
    "unknown_symbol": (10001, "params error: symbol invalid"),
    "duplicate_client_id": (110072, "OrderLinkedID is duplicate"),
    "bad_amount": (10001, "params error: qty invalid"),
    "bad_price": (10001, "params error: price invalid"),
    "below_min": (10001, "The number of contracts exceeds minimum limit allowed"),
    "insufficient_margin": (110007, "Available balance is insufficient"),
    "no_position": (110017, "Reduce-only rule not satisfied"),
    "close_exceeds_position": (110017, "Reduce-only rule not satisfied"),
    "position_side_required": (10001, "position idx not match position mode"),
    "unknown_order": (110001, "Order does not exist"),
    "order_closed": (110001, "Order does not exist"),
    "leverage_too_high": (110013, "Cannot set leverage due to risk limit level."),
    "bad_leverage": (10001, "params error: leverage invalid"),
}


def name_of(pair):
    """("BTC", "USDT") and ("BTC", "USDT", "swap") are both BTCUSDT: the category tells them apart."""
    return pair[0] + pair[1]


def category_of(pair):
    return "linear" if pair in LINEAR else "spot"


class Rejected(Exception):
    """Bybit refuses the request: answered as the envelope with this retCode and retMsg."""

    def __init__(self, code, message, status=200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class FakeBybit(FakeExchange):
    NAME = "Bybit"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET
    ORDER_PATH, TIME_PATH = "/v5/order/create", "/v5/market/time"
    CANCEL_ROUTE = ("POST", "/v5/order/cancel")
    CODES = {reason: str(code) for reason, (code, _) in {**LINEAR_REFUSALS, **REFUSALS}.items()}
    CODES.update(unknown_symbol="10001")             # market data of a symbol Bybit does not list
    FOREIGN_ORDER_ID = "spot,ETHUSDT,12345"          # well-formed, but no such order
    SWAPS = tuple(f"{base}_{quote}.swap" for base, quote, _ in LINEAR)
    CONTRACT_UNITS = {f"{base}_{quote}.swap": spec["ct_val"] for (base, quote, _), spec in LINEAR.items()}
    instruments_page = 1000                          # rows per instruments-info page, at most

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.recent_closed = 500          # closed orders /v5/order/realtime still finds by id (UTA)
        self.uid_calls = {}               # (API key, path) -> arrival times over the last second
        self.uid_used_elsewhere = 0       # calls another program on this UID made in that second
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {"/v5/public/spot": self.ws_public, "/v5/public/linear": self.ws_public}
        self.ws_idle_limit = 600.0        # seconds without a client message before the fake closes
        self.ws_subscriptions = {}        # session -> {topic}
        self.ws_books = {}                # pair -> {"asks": {px: size}, "bids": {px: size}}
        self.ws_update_ids = {}           # (pair, levels) -> the last `u` of that book topic
        self.fault_next_book = None       # "gap" | "restart": the next book update is broken so
        self._seq = itertools.count(7_961_638_724)
        self._trade_ids = itertools.count(1)
        self.routes = {
            ("GET", "/v5/market/time"): self.public(self.time),
            ("GET", "/v5/market/instruments-info"): self.public(self.instruments),
            ("GET", "/v5/market/tickers"): self.public(self.tickers),
            ("GET", "/v5/market/orderbook"): self.public(self.orderbook),
            ("GET", "/v5/market/recent-trade"): self.public(self.recent_trades),
            ("GET", "/v5/market/kline"): self.public(self.kline),
            ("GET", "/v5/account/wallet-balance"): self.private(self.wallet_balance),
            ("POST", "/v5/order/create"): self.private(self.create),
            ("GET", "/v5/order/realtime"): self.private(self.realtime),
            ("GET", "/v5/order/history"): self.private(self.history),
            ("POST", "/v5/order/cancel"): self.private(self.cancel),
            ("GET", "/v5/position/list"): self.private(self.position_list),
            ("POST", "/v5/position/set-leverage"): self.private(self.set_leverage),
            ("POST", "/v5/position/switch-mode"): self.private(self.switch_mode),
        }

    # ------------------------------------------------------------------ envelope
    def envelope(self, result, code=0, message="OK"):
        return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": self.now_ms()}

    def not_found(self, request):
        return 404, self.envelope({}, 10017, "Route not found")

    def signature_of(self, request):
        return request.headers.get("X-BAPI-SIGN")

    def rate_limited(self):
        return 200, self.envelope({}, 10006, "Too many visits!")

    def outcome_unknown(self):
        return 200, self.envelope({}, 10000, "Server Timeout")

    def deadline_of(self, request):
        """X-BAPI-TIMESTAMP + X-BAPI-RECV-WINDOW (authenticate checked that both are numbers)."""
        window = request.headers.get("X-BAPI-RECV-WINDOW") or str(DEFAULT_RECV_WINDOW)
        return int(request.headers["X-BAPI-TIMESTAMP"]) + int(window)

    def refuse_if_taken_late(self, request):
        if self.taken_late(request):
            raise Rejected(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                  f"req_timestamp[{request.headers['X-BAPI-TIMESTAMP']}],"
                                  f"server_timestamp[{self.now_ms()}],"
                                  f"recv_window[{request.headers.get('X-BAPI-RECV-WINDOW')}]")

    def reply_headers(self, request, status):
        """A private reply's X-Bapi-Limit (this UID's limit of the endpoint per second),
        X-Bapi-Limit-Status (what is left of it in the last second) and
        X-Bapi-Limit-Reset-Timestamp (docs v5 "Rate Limit Rules")."""
        key = request.headers.get("X-BAPI-API-KEY")
        if not key:
            return {}
        now = time.monotonic()
        calls = self.uid_calls.setdefault((key, request.path), deque())
        calls.append(now)
        while calls[0] <= now - 1:
            calls.popleft()
        limit = self.uid_limit(request)
        left = max(0, limit - len(calls) - self.uid_used_elsewhere)
        return {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(left),
                "X-Bapi-Limit-Reset-Timestamp": str(self.now_ms())}

    def uid_limit(self, request):
        """Per second and UID: order create and cancel 10 for linear, 20 for spot; others 50."""
        if request.path in ("/v5/order/create", "/v5/order/cancel"):
            try:
                category = json.loads(request.body or "{}").get("category")
            except ValueError:
                category = None
            return 20 if category == "spot" else 10
        return 50

    # ------------------------------------------------------------------ auth
    def public(self, function):
        """A handler returns the `result` object or raises Rejected; either becomes the envelope."""
        def answer(request):
            try:
                return 200, self.envelope(function(request))
            except Rejected as error:
                return error.status, self.envelope({}, error.code, error.message)
        return answer

    def private(self, function):
        def checked(request):
            self.authenticate(request)
            return function(request)
        return self.public(checked)

    def authenticate(self, request):
        headers = request.headers
        if headers.get("X-BAPI-API-KEY") != API_KEY:
            raise Rejected(10003, "API key is invalid.")
        timestamp = headers.get("X-BAPI-TIMESTAMP", "")
        window = headers.get("X-BAPI-RECV-WINDOW") or str(DEFAULT_RECV_WINDOW)
        server = request.arrived_ms
        if not timestamp.isdigit() or not window.isdigit() \
                or not server - int(window) <= int(timestamp) < server + 1000:
            raise Rejected(10002, f"invalid request, please check your server timestamp or recv_window param. "
                                    f"req_timestamp[{timestamp}],server_timestamp[{server}],recv_window[{window}]")
        payload = request.body if request.method == "POST" else request.raw_query
        prehash = timestamp + API_KEY + window + payload
        expected = hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
            raise Rejected(10004, f"error sign! origin_string[{prehash}]")

    # ------------------------------------------------------------------ parameters
    def _category(self, params, default=None):
        value = params.get("category", default)
        return value if value in ("spot", "linear") else None

    def _pair(self, category, name):
        """A listed instrument of the category by its Bybit name, or None."""
        listed = self.engine.markets if category == "spot" else LINEAR if category == "linear" else ()
        return next((pair for pair in listed if name_of(pair) == name), None)

    def _pairs(self, category):
        return list(self.engine.markets) if category == "spot" else list(LINEAR)

    def unit(self, pair):
        """Bybit's quantity of one engine amount unit: coins per contract for linear, 1 for spot."""
        return self.engine.swaps[pair]["ct_val"] if pair in LINEAR else D(1)

    @staticmethod
    def _limit(params, bounds):
        low, high, default = bounds
        text = params.get("limit", "")
        if text == "":
            return default
        return int(text) if text.isdigit() and low <= int(text) <= high else None

    def _market_request(self, request, default_category=None):
        """(category, pair) of a market-data request."""
        category = self._category(request.query, default_category)
        if category is None:
            raise Rejected(10001, "params error: category invalid")
        pair = self._pair(category, request.query.get("symbol", ""))
        if pair is None:
            raise Rejected(10001, "Not supported symbols")
        return category, pair

    # ------------------------------------------------------------------ market data
    def time(self, request):
        now = self.now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def instruments(self, request):
        """Spot in one list; linear paged with `limit` and `cursor` (an opaque offset)."""
        category = self._category(request.query)
        if category is None:
            raise Rejected(10001, "params error: category invalid")
        if category == "spot":
            return {"category": "spot",
                    "list": [self._spot_instrument(pair, spec) for pair, spec in self.engine.markets.items()]}
        limit = self._limit(request.query, INSTRUMENT_LIMITS)
        cursor = request.query.get("cursor", "")
        if limit is None or not (cursor == "" or cursor.isdigit()):
            raise Rejected(10001, "params error: limit or cursor invalid")
        start, size = int(cursor or 0), min(limit, self.instruments_page)
        rows = [self._linear_instrument(pair, self.engine.swaps[pair]) for pair in LINEAR]
        more = start + size < len(rows)
        return {"category": "linear", "list": rows[start:start + size],
                "nextPageCursor": str(start + size) if more else ""}

    @staticmethod
    def _linear_instrument(pair, spec):
        unit = spec["ct_val"]
        return {
            "symbol": name_of(pair), "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": pair[0], "quoteCoin": pair[1], "launchTime": "1585526400000", "deliveryTime": "0",
            "deliveryFeeRate": "", "priceScale": str(-spec["tick"].normalize().as_tuple().exponent),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": f"{spec['max_leverage']}.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": fmt(spec["tick"]), "maxPrice": "1999999.8", "tickSize": fmt(spec["tick"])},
            "lotSizeFilter": {"maxOrderQty": fmt(spec["max"] * unit), "minOrderQty": fmt(spec["min"] * unit),
                              "qtyStep": fmt(spec["lot"] * unit), "postOnlyMaxOrderQty": fmt(spec["max"] * unit),
                              "maxMktOrderQty": fmt(spec["max"] * unit / 2), "minNotionalValue": fmt(MIN_NOTIONAL)},
            "unifiedMarginTrade": True, "fundingInterval": spec["funding_interval"] // 60_000,
            "settleCoin": spec["settle"], "copyTrading": "both", "upperFundingRate": "0.00375",
            "lowerFundingRate": "-0.00375", "isPreListing": False, "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"}, "symbolType": "",
        }

    @staticmethod
    def _spot_instrument(pair, spec):
        return {
            "symbol": name_of(pair), "baseCoin": pair[0], "quoteCoin": pair[1], "innovation": "0",
            "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
            "lotSizeFilter": {"basePrecision": fmt(spec["lot"]), "quotePrecision": fmt(QUOTE_PRECISION),
                              "minOrderQty": fmt(spec["min"]), "maxOrderQty": fmt(spec["max"]),
                              "minOrderAmt": fmt(spec["min_notional"]), "maxOrderAmt": "8000000",
                              "maxLimitOrderQty": fmt(spec["max"]), "maxMarketOrderQty": fmt(spec["max"] / 2),
                              "postOnlyMaxLimitOrderSize": "60000"},
            "priceFilter": {"tickSize": fmt(spec["tick"])},
            "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"}, "symbolType": "",
        }

    def tickers(self, request):
        category = self._category(request.query)
        if category is None:
            raise Rejected(10001, "params error: category invalid")
        pairs = self._pairs(category)
        if request.query.get("symbol"):
            pair = self._pair(category, request.query["symbol"])
            if pair is None:
                raise Rejected(10001, "Not supported symbols")
            pairs = [pair]
        return {"category": category, "list": [self._ticker(pair) for pair in pairs]}

    def _ticker(self, pair):
        asks, bids = self.engine.book(pair)
        mid, unit = self.engine.spec(pair)["mid"], self.unit(pair)
        ticker = {"symbol": name_of(pair), "bid1Price": fmt(bids[0][0]), "bid1Size": fmt(bids[0][1] * unit),
                  "ask1Price": fmt(asks[0][0]), "ask1Size": fmt(asks[0][1] * unit), "lastPrice": fmt(mid),
                  "prevPrice24h": fmt(mid - 100), "price24hPcnt": "0.002", "highPrice24h": fmt(mid + 500),
                  "lowPrice24h": fmt(mid - 500), "turnover24h": "61725000", "volume24h": "1234.5"}
        if pair not in LINEAR:
            return {**ticker, "usdIndexPrice": fmt(mid)}
        funding = self.engine.funding(pair)
        return {**ticker, "indexPrice": fmt(mid), "markPrice": fmt(mid), "prevPrice1h": fmt(mid - 10),
                "openInterest": "1200", "openInterestValue": fmt(1200 * mid), "fundingRate": fmt(funding["rate"]),
                "nextFundingTime": str(funding["time"]), "predictedDeliveryPrice": "", "basisRate": "",
                "deliveryFeeRate": "", "deliveryTime": "0", "basis": "", "preOpenPrice": "", "preQty": "",
                "curPreListingPhase": "", "fundingIntervalHour": str(funding["interval"] // 3_600_000),
                "fundingCap": "0.005", "basisRateYear": ""}

    def orderbook(self, request):
        category, pair = self._market_request(request)
        limit = self._limit(request.query, ORDERBOOK_LIMITS[category])
        if limit is None:
            raise Rejected(10001, "params error: limit invalid")
        asks, bids = self.engine.book(pair, levels=limit)
        level = lambda px, size: [fmt(px), fmt(size * self.unit(pair))]
        now = self.now_ms()
        return {"s": name_of(pair), "a": [level(*row) for row in asks], "b": [level(*row) for row in bids],
                        "ts": now, "u": 230704, "seq": 1432604333, "cts": now - 100}

    def recent_trades(self, request):
        category, pair = self._market_request(request)
        limit = self._limit(request.query, TRADE_LIMITS[category])
        if limit is None:
            raise Rejected(10001, "params error: limit invalid")
        now, mid = self.now_ms(), self.engine.spec(pair)["mid"]
        return {"category": category, "list": [     # newest first, as Bybit sends
            {"execId": str(2100000000007764263 - i), "symbol": name_of(pair), "price": fmt(mid + i),
             "size": "0.01", "side": "Buy" if i % 2 else "Sell", "time": str(now - i * 1000),
             "isBlockTrade": False} for i in range(limit)]}

    def kline(self, request):
        category, pair = self._market_request(request, default_category="linear")
        step = INTERVAL_MS.get(request.query.get("interval"))
        limit = self._limit(request.query, (1, 1000, 200))
        if step is None or limit is None:
            raise Rejected(10001, "params error: interval or limit invalid")
        offset = MONDAY_MS if step == WEEK_MS else 0
        end = int(request.query.get("end") or self.now_ms())
        start = int(request.query.get("start") or 0)
        newest = (min(end, self.now_ms()) - offset) // step * step + offset
        rows = []
        for ts in range(newest, newest - limit * step, -step):      # newest first, as Bybit sends
            if ts < start:
                break
            _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
            rows.append([str(ts), fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol), fmt(vol * c)])
        return {"symbol": name_of(pair), "category": category, "list": rows}

    # ------------------------------------------------------------------ account
    def wallet_balance(self, request):
        if request.query.get("accountType") != "UNIFIED":
            raise Rejected(10001, "accountType only support UNIFIED.")
        coins = [self._coin(coin, free, frozen) for coin, (free, frozen) in self.engine.balances.items()
                 if free or frozen]
        total = lambda field: fmt(sum((D(c[field]) * self._usd_price(c["coin"]) for c in coins), D(0)))
        return {"list": [{
            "accountType": "UNIFIED", "totalEquity": total("equity"), "totalWalletBalance": total("walletBalance"),
            "totalMarginBalance": total("equity"), "totalAvailableBalance": total("walletBalance"),
            "totalPerpUPL": total("unrealisedPnl"), "totalInitialMargin": total("totalPositionIM"),
            "totalMaintenanceMargin": "0", "accountIMRate": "0", "accountMMRate": "0", "accountLTV": "0",
            "coin": coins}]}

    def _coin(self, coin, free, frozen):
        """The engine's frozen funds, told apart as Bybit does: `locked` by spot orders, initial
        margin of perpetual orders (totalOrderIM) and of positions (totalPositionIM)."""
        open_orders = [o for o in self.engine.orders.values() if o["status"] in (OPEN, PARTIAL) and o["pay"] == coin]
        locked = sum((o["frozen"] for o in open_orders if o["pair"] not in LINEAR), D(0))
        order_im = sum((o["frozen"] for o in open_orders if o["pair"] in LINEAR), D(0))
        position_im = sum((p["margin"] for p in self.engine.positions.values()
                           if p["pair"] in LINEAR and LINEAR[p["pair"]]["settle"] == coin), D(0))
        equity, upl = self.engine.equity(coin)
        return {
            "coin": coin, "equity": fmt(equity), "usdValue": fmt(equity * self._usd_price(coin)),
            "walletBalance": fmt(free + frozen), "locked": fmt(locked), "free": "",
            "availableToWithdraw": "", "availableToBorrow": "", "borrowAmount": "0", "spotBorrow": "0",
            "accruedInterest": "0", "totalOrderIM": fmt(order_im), "totalPositionIM": fmt(position_im),
            "totalPositionMM": fmt(position_im / 10), "unrealisedPnl": fmt(upl), "cumRealisedPnl": "0",
            "bonus": "0", "spotHedgingQty": "0", "marginCollateral": True, "collateralSwitch": True}

    def _usd_price(self, coin):
        spec = self.engine.markets.get((coin, "USDT"))
        return spec["mid"] if spec else D(1)

    # ------------------------------------------------------------------ trading
    def create(self, request):
        self.refuse_if_taken_late(request)
        body = request.json()
        category, client_id = self._category(body), body.get("orderLinkId", "")
        if category is None:
            raise Rejected(10001, "params error: category invalid")
        if len(client_id) > 36 or not all(ch.isalnum() or ch in "-_" for ch in client_id):
            raise Rejected(10001, "params error: orderLinkId invalid")
        side, kind = body.get("side"), body.get("orderType")
        if side not in ("Buy", "Sell") or kind not in ("Limit", "Market"):
            raise Rejected(10001, "params error: side or orderType invalid")
        try:
            amount = D(body["qty"])
            price = D(body["price"]) if kind == "Limit" else None
        except (KeyError, TypeError, InvalidOperation):
            raise Rejected(10001, "params error: qty or price invalid")
        pair = self._pair(category, body.get("symbol", ""))
        create = self._create_spot if category == "spot" else self._create_linear
        order = create(pair, body, side.lower(), kind.lower(), amount, price, client_id)
        return {"orderId": order["id"], "orderLinkId": client_id}

    def _create_spot(self, pair, body, side, kind, amount, price, client_id):
        """A market buy spends quote currency unless marketUnit says baseCoin."""
        quote_amount = kind == "market" and side == "buy" and body.get("marketUnit", "quoteCoin") == "quoteCoin"
        if kind == "market" and side == "sell" and body.get("marketUnit") == "quoteCoin":
            raise Rejected(10001, "params error: marketUnit invalid")
        if pair:
            self._check_spot_value(pair, side, amount, price, quote_amount)
        try:
            return self.engine.place(pair, side, kind, amount, price, client_id, quote_amount)
        except Refused as error:
            raise Rejected(*REFUSALS[error.reason])

    def _create_linear(self, pair, body, side, kind, qty, price, client_id):
        """positionIdx must match the position mode (0 one-way; 1 long / 2 short in hedge mode);
        reduceOnly may only reduce; qty is coins, turned into engine contracts."""
        hedge, idx = self.engine.hedge_mode, body.get("positionIdx", 0)
        if idx not in ((1, 2) if hedge else (0,)) or isinstance(idx, bool):
            raise Rejected(*LINEAR_REFUSALS["position_side_required"])
        position_side = {1: LONG, 2: SHORT}.get(idx)
        reduce_only = body.get("reduceOnly") is True
        if hedge and reduce_only and (side == "buy") == (position_side == LONG):
            raise Rejected(*LINEAR_REFUSALS["close_exceeds_position"])
        if pair is None:
            raise Rejected(*LINEAR_REFUSALS["unknown_symbol"])
        if not reduce_only and qty * (price or self.engine.swaps[pair]["mid"]) < MIN_NOTIONAL:
            raise Rejected(110094, "Order notional value below the lower limit")
        try:
            return self.engine.place(pair, side, kind, qty / self.unit(pair), price, client_id,
                                     position_side=position_side, reduce_only=reduce_only)
        except Refused as error:
            raise Rejected(*LINEAR_REFUSALS[error.reason])

    def _check_spot_value(self, pair, side, amount, price, quote_amount):
        """Bybit's own spot rules on top of the engine's: the quote precision of a market buy
        and the minimum order value (lotSizeFilter.minOrderAmt)."""
        if quote_amount and amount % QUOTE_PRECISION:
            raise Rejected(170148, "Market order amount decimal too long")
        asks, bids = self.engine.book(pair, levels=1)
        value = amount if quote_amount else amount * (price or (asks if side == "buy" else bids)[0][0])
        if value < self.engine.markets[pair]["min_notional"]:
            raise Rejected(170140, "Order value exceeded lower limit")

    def render(self, order):
        """An engine order as Bybit's order object (GET /v5/order/realtime)."""
        avg, unit, linear = self.engine.avg_price(order), self.unit(order["pair"]), order["pair"] in LINEAR
        status = STATUSES[order["status"]]
        if status == "Cancelled" and order["filled"] and not linear:
            status = "PartiallyFilledCanceled"           # spot: partly filled, then cancelled
        remaining = D(0) if order["status"] in (FILLED, CANCELED) else order["amount"] - order["filled"]
        spot_market = order["type"] == "market" and not linear
        return {
            "orderId": order["id"], "orderLinkId": order["client_id"], "blockTradeId": "",
            "symbol": name_of(order["pair"]), "price": fmt(order["price"]) if order["price"] else "0",
            "qty": fmt(order["amount"] * unit), "side": order["side"].capitalize(),
            "isLeverage": "" if linear else "0", "positionIdx": POSITION_IDX.get(order.get("position_side"), 0),
            "orderStatus": status, "createType": "CreateByUser",
            "cancelType": "CancelByUser" if order["status"] == CANCELED else "UNKNOWN",
            "rejectReason": "EC_NoError", "avgPrice": fmt(avg) if avg else "", "leavesQty": fmt(remaining * unit),
            "leavesValue": fmt(remaining * unit * (order["price"] or 0)), "cumExecQty": fmt(order["filled"] * unit),
            "cumExecValue": fmt(order["cost"] * unit), "cumExecFee": "0",
            "timeInForce": "IOC" if order["type"] == "market" else "GTC",
            "orderType": order["type"].capitalize(), "stopOrderType": "", "orderIv": "",
            "marketUnit": ("quoteCoin" if order["quote_amount"] else "baseCoin") if spot_market else "",
            "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0", "tpslMode": "",
            "triggerDirection": 0, "triggerBy": "", "reduceOnly": bool(order.get("reduce_only")),
            "closeOnTrigger": False,
            "placeType": "", "smpType": "None", "smpGroup": 0, "smpOrderId": "",
            "createdTime": str(order["created"]), "updatedTime": str(order["updated"]),
            "cumFeeDetail": {},
        }

    def _orders_of(self, params, statuses):
        """(category, orders) matching a realtime/history query, newest first."""
        category = self._category(params)
        if category is None:
            raise Rejected(10001, "params error: category invalid")
        symbol = params.get("symbol")
        if category == "linear" and not (symbol or params.get("settleCoin") or params.get("baseCoin")):
            raise Rejected(10001, "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        pair = self._pair(category, symbol) if symbol else None
        if symbol and pair is None:
            return category, []
        settle = params.get("settleCoin")
        wanted = lambda o: category_of(o["pair"]) == category and pair in (None, o["pair"]) \
            and settle in (None, o["pair"][1])
        if params.get("orderId") or params.get("orderLinkId"):
            order = self.engine.find(params.get("orderId"), params.get("orderLinkId"))
            return category, [order] if order and order["status"] in statuses and wanted(order) else []
        return category, [o for o in self.engine.listing(statuses, pair) if wanted(o)]

    def _recent(self, order):
        """Whether an order is open or among the `recent_closed` newest closed ones."""
        closed = self.engine.listing((FILLED, CANCELED))[:self.recent_closed]
        return order["status"] in (OPEN, PARTIAL) or order in closed

    def _page(self, params, category, found):
        """One page after the cursor; nextPageCursor is opaque and URL-encoded, as Bybit's is."""
        limit = self._limit(params, LIST_LIMITS)
        if limit is None:
            raise Rejected(10001, "params error: limit invalid")
        cursor = params.get("cursor", "")
        if cursor:
            after = dict(urllib.parse.parse_qsl(urllib.parse.unquote(cursor))).get("page_args", "")
            if not after.isdigit():
                raise Rejected(10001, "params error: cursor invalid")
            found = [o for o in found if int(o["id"]) < int(after)]
        page, more = found[:limit], len(found) > limit
        next_cursor = urllib.parse.quote(f"page_args={page[-1]['id']}&symbol={len(page)}&", safe="") if more else ""
        return {"category": category, "list": [self.render(o) for o in page], "nextPageCursor": next_cursor}

    def realtime(self, request):
        """Open orders; an orderId / orderLinkId also finds the `recent_closed` newest closed ones."""
        by_id = request.query.get("orderId") or request.query.get("orderLinkId")
        statuses = (OPEN, PARTIAL, FILLED, CANCELED) if by_id else (OPEN, PARTIAL)
        category, orders = self._orders_of(request.query, statuses)
        return self._page(request.query, category, [o for o in orders if self._recent(o)])

    def history(self, request):
        """Closed orders created in [startTime, endTime], a window of at most 7 days (the last 7
        days when neither is given)."""
        start, end = request.query.get("startTime", ""), request.query.get("endTime", "")
        if not all(text == "" or text.isdigit() for text in (start, end)):
            raise Rejected(10001, "params error: startTime or endTime invalid")
        if start and end:
            start, end = int(start), int(end)
        elif start:
            start = int(start)
            end = start + WEEK_MS
        else:
            end = int(end) if end else self.now_ms()
            start = end - WEEK_MS
        if end - start > WEEK_MS or end < start:
            raise Rejected(10001, "params error: The time range is up to 7 days")
        category, orders = self._orders_of(request.query, (FILLED, CANCELED))
        return self._page(request.query, category, [o for o in orders if start <= o["created"] <= end])

    def cancel(self, request):
        self.refuse_if_taken_late(request)
        body = request.json()
        category = self._category(body)
        order = self.engine.find(body.get("orderId"), body.get("orderLinkId") if not body.get("orderId") else None)
        try:
            if order is None or category_of(order["pair"]) != category or name_of(order["pair"]) != body.get("symbol"):
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            raise Rejected(*(LINEAR_REFUSALS if category == "linear" else REFUSALS)[error.reason])
        return {"orderId": order["id"], "orderLinkId": order["client_id"]}

    # ------------------------------------------------------------------ positions
    def position_list(self, request):
        """With a symbol, its rows even when flat (one in one-way mode, two in hedge mode); with
        settleCoin only, the open positions of that coin. Paged with `limit` and `cursor`."""
        query = request.query
        if query.get("category") != "linear":
            raise Rejected(10001, "params error: category invalid")
        limit, cursor = self._limit(query, POSITION_LIMITS), query.get("cursor", "")
        if limit is None or not (cursor == "" or cursor.isdigit()):
            raise Rejected(10001, "params error: limit or cursor invalid")
        if query.get("symbol"):
            pair = self._pair("linear", query["symbol"])
            if pair is None:
                raise Rejected(*LINEAR_REFUSALS["unknown_symbol"])
            rows = [self._position(pair, side) for side in ((LONG, SHORT) if self.engine.hedge_mode else (None,))]
        elif query.get("settleCoin"):
            rows = [self._position(p["pair"], p["side"] if self.engine.hedge_mode else None)
                    for p in self.engine.open_positions() if p["pair"] in LINEAR and p["pair"][1] == query["settleCoin"]]
        else:
            raise Rejected(10001, "Missing some parameters that must be filled in, symbol or settleCoin")
        start = int(cursor or 0)
        more = start + limit < len(rows)
        return {"category": "linear", "list": rows[start:start + limit],
                "nextPageCursor": str(start + limit) if more else ""}

    def _position(self, pair, side):
        """One position row; side None is one-way mode's single row (positionIdx 0)."""
        if side is None:
            held = [p for p in (self.engine.positions.get((pair, LONG)), self.engine.positions.get((pair, SHORT))) if p]
            p = held[0] if held else None
        else:
            p = self.engine.positions.get((pair, side))
        unit, mark, now = self.unit(pair), self.engine.swaps[pair]["mid"], str(self.now_ms())
        size = p["size"] * unit if p else D(0)
        return {
            "positionIdx": POSITION_IDX[side] if side else 0, "riskId": 1, "riskLimitValue": "2000000",
            "symbol": name_of(pair), "side": ("Buy" if p["side"] == LONG else "Sell") if p else "",
            "size": fmt(size), "avgPrice": fmt(p["avg"]) if p else "0", "positionValue": fmt(size * p["avg"]) if p else "",
            "tradeMode": 0, "autoAddMargin": 0, "positionStatus": "Normal",
            "leverage": str(p["leverage"] if p else self.engine.leverage_of(pair)), "markPrice": fmt(mark),
            "liqPrice": "", "bustPrice": "", "positionIM": fmt(p["margin"]) if p else "0",
            "positionMM": fmt(p["margin"] / 10) if p else "0", "positionBalance": fmt(p["margin"]) if p else "0",
            "takeProfit": "0", "stopLoss": "0", "trailingStop": "0", "sessionAvgPrice": "",
            "unrealisedPnl": fmt(self.engine.unrealised(p)) if p else "0",
            "curRealisedPnl": fmt(p["realized"]) if p else "0", "cumRealisedPnl": fmt(p["realized"]) if p else "0",
            "adlRankIndicator": 2 if p else 0, "createdTime": str(p["created"]) if p else now,
            "updatedTime": str(p["updated"]) if p else now, "seq": 5723621632, "isReduceOnly": False,
            "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
        }

    def switch_mode(self, request):
        """mode 0 one-way, 3 hedge, for a symbol or a settle coin. Simplification: the engine keeps
        one mode for the whole account, so any linear symbol or USDT switches every perpetual."""
        body = request.json()
        if body.get("category") != "linear" or body.get("mode") not in (0, 3, "0", "3"):
            raise Rejected(10001, "params error: category or mode invalid")
        if not (self._pair("linear", body.get("symbol", "")) or body.get("coin") == "USDT"):
            raise Rejected(10001, "params error: symbol or coin invalid")
        hedge = int(body["mode"]) == 3
        if hedge == self.engine.hedge_mode:
            raise Rejected(110025, "Position mode has not been modified.")
        try:
            self.engine.set_hedge_mode(hedge)
        except Refused:
            if self.engine.positions:
                raise Rejected(110024, "You have an existing position, so the position mode cannot be switched.")
            raise Rejected(110028, "You have existing open orders, so the position mode cannot be switched.")
        return {}

    def set_leverage(self, request):
        """buyLeverage must equal sellLeverage (one-way mode and cross margin); the current value
        again is 110043."""
        body = request.json()
        pair = self._pair(body.get("category"), body.get("symbol", "")) if body.get("category") == "linear" else None
        if pair is None:
            raise Rejected(*LINEAR_REFUSALS["unknown_symbol"])
        try:
            buy, sell = D(body["buyLeverage"]), D(body["sellLeverage"])
        except (KeyError, TypeError, InvalidOperation):
            raise Rejected(10001, "params error: buyLeverage or sellLeverage invalid")
        if buy != sell:
            raise Rejected(10001, "params error: buyLeverage must equal sellLeverage")
        if buy == self.engine.leverage_of(pair):
            raise Rejected(110043, "Set leverage has not been modified.")
        try:
            self.engine.set_leverage(pair, buy)
        except Refused as error:
            raise Rejected(*LINEAR_REFUSALS[error.reason])
        return {}


    # ------------------------------------------------------------------ WebSocket
    def ws_public(self, session):
        category = session.path.split("?")[0].rsplit("/", 1)[1]
        self.ws_serve(session, lambda session, message: self.ws_request(session, category, message))

    def ws_request(self, session, category, message):
        try:
            request = json.loads(message)
            op, args, req_id = request["op"], request.get("args") or [], request.get("req_id")
        except (ValueError, KeyError, TypeError):
            return session.send_text(json.dumps({"success": False, "ret_msg": "error:request not json",
                                                 "conn_id": "fake", "op": ""}))
        answer = {"success": True, "ret_msg": "", "conn_id": "fake-conn", "req_id": req_id, "op": op}
        if op == "ping":
            if self.ws_answers_ping:
                pong = {**answer, "ret_msg": "pong"} if category == "spot" else \
                    {"req_id": req_id, "op": "pong", "args": [str(self.now_ms())], "conn_id": "fake-conn"}
                session.send_text(json.dumps(pong))
            return
        found = [WS_TOPIC.fullmatch(arg) if isinstance(arg, str) else None for arg in args]
        bad = [arg for arg, match in zip(args, found) if match is None or not self._pair(category, match.group(3))]
        if op not in ("subscribe", "unsubscribe") or bad or not args:
            return session.send_text(json.dumps({**answer, "success": False,
                                                 "ret_msg": f"error:handler not found,topic:{','.join(map(str, bad))}"}))
        if category == "spot" and len(args) > WS_SPOT_ARGS:
            return session.send_text(json.dumps({**answer, "success": False, "ret_msg": "args size >10"}))
        with self.lock:
            subscribed = self.ws_subscriptions[session]
            session.send_text(json.dumps({**answer, "ret_msg": "subscribe" if category == "spot" else ""}))
            for match in found:
                subscribed.add(match.group(0)) if op == "subscribe" else subscribed.discard(match.group(0))
                if op == "subscribe":
                    first = self._ws_first(self._pair(category, match.group(3)), match.group(0), match.group(1))
                    if first is not None:
                        session.send_text(json.dumps(first))
            self.ws_changed.notify_all()

    def _ws_first(self, pair, topic, kind):
        if kind == "tickers":
            return self._ws_ticker(pair, topic)
        if kind == "publicTrade":
            return None                  # trades come when they happen
        return self._ws_snapshot(pair, topic, int(kind.split(".")[1]))

    def _ws_ticker(self, pair, topic):
        data = self._ticker(pair)
        if pair not in LINEAR:           # the spot ticker stream has no best bid and ask
            data = {k: v for k, v in data.items() if not k.startswith(("bid1", "ask1"))}
        return {"topic": topic, "ts": self.now_ms(), "type": "snapshot", "cs": next(self._seq), "data": data}

    def _ws_book(self, pair):
        if pair not in self.ws_books:
            asks, bids = self.engine.book(pair, levels=WS_BOOK_LEVELS)
            level = lambda rows: {fmt(px): fmt(size * self.unit(pair)) for px, size in rows}
            self.ws_books[pair] = {"asks": level(asks), "bids": level(bids)}
        return self.ws_books[pair]

    def _ws_snapshot(self, pair, topic, levels, update_id=None):
        book = self._ws_book(pair)
        if update_id is None:
            update_id = self.ws_update_ids.setdefault((pair, levels), 1000)
        rows = lambda side, descending: [[p, q] for p, q in sorted(book[side].items(), key=lambda lv: D(lv[0]),
                                                                 reverse=descending)][:levels]
        now = self.now_ms()
        return {"topic": topic, "type": "snapshot", "ts": now, "cts": now - 1,
                "data": {"s": name_of(pair), "b": rows("bids", True), "a": rows("asks", False), "u": update_id,
                         "seq": next(self._seq)}}

    def _ws_push(self, pair, make):
        """Send make(topic, kind) to every session subscribed to a topic of the pair (under the lock)."""
        category = category_of(pair)
        for session, topics in self.ws_subscriptions.items():
            if session.path.split("?")[0].rsplit("/", 1)[1] != category:
                continue
            for topic in sorted(topics):
                match = WS_TOPIC.fullmatch(topic)
                message = make(topic, match.group(1)) if match.group(3) == name_of(pair) else None
                if message is not None:
                    session.send_text(json.dumps(message))

    def push_book_update(self, pair, asks=(), bids=(), fault=None):
        """A book change (levels [price, size] as text; size "0" removes): a delta on orderbook.50
        and .200 (`fault` "gap": an update id skipped; "restart": a u = 1 snapshot instead), a
        snapshot on orderbook.1."""
        with self.lock:
            fault, self.fault_next_book = fault or self.fault_next_book, None
            book = self._ws_book(pair)
            for side, rows in (("asks", asks), ("bids", bids)):
                for price, size in rows:
                    book[side].pop(price, None) if D(size) == 0 else book[side].__setitem__(price, size)
            changed = {}
            for levels in (1, 50, 200):
                update_id = self.ws_update_ids.get((pair, levels), 1000) + 1 + (fault == "gap")
                self.ws_update_ids[(pair, levels)] = 1 if fault == "restart" else update_id
                changed[levels] = self.ws_update_ids[(pair, levels)]

            def make(topic, kind):
                if not kind.startswith("orderbook."):
                    return None
                levels = int(kind.split(".")[1])
                if levels == 1 or fault == "restart":
                    return self._ws_snapshot(pair, topic, levels, changed[levels])
                now = self.now_ms()
                return {"topic": topic, "type": "delta", "ts": now, "cts": now - 1,
                        "data": {"s": name_of(pair), "b": [list(b) for b in bids], "a": [list(a) for a in asks],
                                 "u": changed[levels], "seq": next(self._seq)}}
            self._ws_push(pair, make)

    def push_ticker_delta(self, pair, **fields):
        """A linear tickers delta carrying only `fields` (Bybit's names, text values)."""
        with self.lock:
            self._ws_push(pair, lambda topic, kind: {"topic": topic, "type": "delta", "ts": self.now_ms(),
                                                     "cs": next(self._seq),
                                                     "data": {"symbol": name_of(pair), **fields}}
                          if kind == "tickers" else None)

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the ticker and the books move."""
        if not self.ws_subscriptions or not (pair in self.engine.markets or pair in LINEAR):
            return
        now = self.now_ms()
        trade = {"T": now, "s": name_of(pair), "S": side.capitalize(), "v": fmt(amount * self.unit(pair)),
                 "p": fmt(price), "L": "PlusTick" if side == "buy" else "MinusTick",
                 "i": f"fake-{next(self._trade_ids):08d}-0000-0000-0000-000000000000", "BT": False}

        def make(topic, kind):
            if kind == "publicTrade":
                return {"topic": topic, "type": "snapshot", "ts": now, "data": [trade]}
            if kind == "tickers" and pair in LINEAR:      # a delta of what changed (here: nothing but the time)
                ticker = self._ticker(pair)
                return {"topic": topic, "type": "delta", "ts": now, "cs": next(self._seq),
                        "data": {k: ticker[k] for k in ("symbol", "lastPrice", "bid1Price", "ask1Price")}}
            return self._ws_ticker(pair, topic) if kind == "tickers" else None
        self._ws_push(pair, make)
        self.push_book_update(pair)
