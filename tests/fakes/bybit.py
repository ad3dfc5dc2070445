"""A fake Bybit v5 REST API (categories spot and linear) with real state, for tests. Shapes and
codes follow https://bybit-exchange.github.io/docs/v5/intro (each endpoint's response example,
"Error Codes"): every reply is {retCode, retMsg, result, retExtInfo, time}.

It verifies every private call as Bybit does: API key (10003), timestamp within
[server - recv_window, server + 1000 ms) (10002), and X-BAPI-SIGN = hex HMAC-SHA256(secret,
timestamp + api_key + recv_window + query string | JSON body) (10004). State lives in the shared
engine (tests/fakes/engine.py); this file only speaks Bybit's dialect: categories, BTCUSDT
names, orderLinkId, cursors, the 7-day window of the order history.
"""
import hashlib
import hmac
import urllib.parse
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, OPEN, PARTIAL, Engine, Refused, fmt

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


def name_of(pair):
    return "".join(pair)


class Rejected(Exception):
    """Bybit refuses the request: answered as the envelope with this retCode and retMsg."""

    def __init__(self, code, message, status=200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class FakeBybit(FakeExchange):
    NAME = "Bybit"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET
    ORDER_PATH, TIME_PATH = "/v5/order/create", "/v5/market/time"
    CODES = {reason: str(code) for reason, (code, _) in REFUSALS.items()}
    CODES.update(unknown_symbol="10001")             # market data of a symbol Bybit does not list
    FOREIGN_ORDER_ID = "spot,ETHUSDT,12345"          # well-formed, but no such order

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.recent_closed = 500          # closed orders /v5/order/realtime still finds by id (UTA)
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
        }

    # ------------------------------------------------------------------ envelope
    def envelope(self, result, code=0, message="OK"):
        return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": self.now_ms()}

    def not_found(self, request):
        return 404, self.envelope({}, 10017, "Route not found")

    def rate_limited(self):
        return 200, self.envelope({}, 10006, "Too many visits!")

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
        server = self.now_ms()
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
        if category != "spot":
            return None
        return next((pair for pair in self.engine.markets if name_of(pair) == name), None)

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
        category = self._category(request.query)
        if category is None:
            raise Rejected(10001, "params error: category invalid")
        if category != "spot":
            return {"category": category, "list": [], "nextPageCursor": ""}
        return {"category": "spot",
                "list": [self._spot_instrument(pair, spec) for pair, spec in self.engine.markets.items()]}

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
        pairs = list(self.engine.markets) if category == "spot" else []
        if request.query.get("symbol"):
            pair = self._pair(category, request.query["symbol"])
            if pair is None:
                raise Rejected(10001, "Not supported symbols")
            pairs = [pair]
        return {"category": category, "list": [self._ticker(pair) for pair in pairs]}

    def _ticker(self, pair):
        asks, bids = self.engine.book(pair)
        mid = self.engine.markets[pair]["mid"]
        return {"symbol": name_of(pair), "bid1Price": fmt(bids[0][0]), "bid1Size": fmt(bids[0][1]),
                "ask1Price": fmt(asks[0][0]), "ask1Size": fmt(asks[0][1]), "lastPrice": fmt(mid),
                "prevPrice24h": fmt(mid - 100), "price24hPcnt": "0.002", "highPrice24h": fmt(mid + 500),
                "lowPrice24h": fmt(mid - 500), "turnover24h": "61725000", "volume24h": "1234.5",
                "usdIndexPrice": fmt(mid)}

    def orderbook(self, request):
        category, pair = self._market_request(request)
        limit = self._limit(request.query, ORDERBOOK_LIMITS[category])
        if limit is None:
            raise Rejected(10001, "params error: limit invalid")
        asks, bids = self.engine.book(pair, levels=limit)
        level = lambda px, size: [fmt(px), fmt(size)]
        now = self.now_ms()
        return {"s": name_of(pair), "a": [level(*row) for row in asks], "b": [level(*row) for row in bids],
                        "ts": now, "u": 230704, "seq": 1432604333, "cts": now - 100}

    def recent_trades(self, request):
        category, pair = self._market_request(request)
        limit = self._limit(request.query, TRADE_LIMITS[category])
        if limit is None:
            raise Rejected(10001, "params error: limit invalid")
        now, mid = self.now_ms(), self.engine.markets[pair]["mid"]
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
        coins = []
        for coin, (free, frozen) in self.engine.balances.items():
            if free or frozen:
                usd = (free + frozen) * self._usd_price(coin)
                coins.append({
                    "coin": coin, "equity": fmt(free + frozen), "usdValue": fmt(usd),
                    "walletBalance": fmt(free + frozen), "locked": fmt(frozen), "free": "",
                    "availableToWithdraw": "", "availableToBorrow": "", "borrowAmount": "0", "spotBorrow": "0",
                    "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0",
                    "unrealisedPnl": "0", "cumRealisedPnl": "0", "bonus": "0", "spotHedgingQty": "0",
                    "marginCollateral": True, "collateralSwitch": True})
        total = fmt(sum(D(c["usdValue"]) for c in coins))
        return {"list": [{
            "accountType": "UNIFIED", "totalEquity": total, "totalWalletBalance": total,
            "totalMarginBalance": total, "totalAvailableBalance": total, "totalPerpUPL": "0",
            "totalInitialMargin": "0", "totalMaintenanceMargin": "0", "accountIMRate": "0",
            "accountMMRate": "0", "accountLTV": "0", "coin": coins}]}

    def _usd_price(self, coin):
        spec = self.engine.markets.get((coin, "USDT"))
        return spec["mid"] if spec else D(1)

    # ------------------------------------------------------------------ trading
    def create(self, request):
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
        quote_amount = kind == "Market" and side == "Buy" and body.get("marketUnit", "quoteCoin") == "quoteCoin"
        if kind == "Market" and side == "Sell" and body.get("marketUnit") == "quoteCoin":
            raise Rejected(10001, "params error: marketUnit invalid")
        if pair:
            self._check_spot_value(pair, side, amount, price, quote_amount)
        try:
            order = self.engine.place(pair, side.lower(), kind.lower(), amount, price, client_id, quote_amount)
        except Refused as error:
            raise Rejected(*REFUSALS[error.reason])
        return {"orderId": order["id"], "orderLinkId": client_id}

    def _check_spot_value(self, pair, side, amount, price, quote_amount):
        """Bybit's own spot rules on top of the engine's: the quote precision of a market buy
        and the minimum order value (lotSizeFilter.minOrderAmt)."""
        if quote_amount and amount % QUOTE_PRECISION:
            raise Rejected(170148, "Market order amount decimal too long")
        asks, bids = self.engine.book(pair, levels=1)
        value = amount if quote_amount else amount * (price or (asks if side == "Buy" else bids)[0][0])
        if value < self.engine.markets[pair]["min_notional"]:
            raise Rejected(170140, "Order value exceeded lower limit")

    def render(self, order):
        """An engine order as Bybit's order object (GET /v5/order/realtime)."""
        avg = self.engine.avg_price(order)
        status = STATUSES[order["status"]]
        if status == "Cancelled" and order["filled"]:
            status = "PartiallyFilledCanceled"           # spot: partly filled, then cancelled
        remaining = D(0) if order["status"] in (FILLED, CANCELED) else order["amount"] - order["filled"]
        return {
            "orderId": order["id"], "orderLinkId": order["client_id"], "blockTradeId": "",
            "symbol": name_of(order["pair"]), "price": fmt(order["price"]) if order["price"] else "0",
            "qty": fmt(order["amount"]), "side": order["side"].capitalize(), "isLeverage": "0",
            "positionIdx": 0, "orderStatus": status, "createType": "CreateByUser",
            "cancelType": "CancelByUser" if order["status"] == CANCELED else "UNKNOWN",
            "rejectReason": "EC_NoError", "avgPrice": fmt(avg) if avg else "", "leavesQty": fmt(remaining),
            "leavesValue": fmt(remaining * (order["price"] or 0)), "cumExecQty": fmt(order["filled"]),
            "cumExecValue": fmt(order["cost"]), "cumExecFee": "0",
            "timeInForce": "IOC" if order["type"] == "market" else "GTC",
            "orderType": order["type"].capitalize(), "stopOrderType": "", "orderIv": "",
            "marketUnit": ("quoteCoin" if order["quote_amount"] else "baseCoin") if order["type"] == "market" else "",
            "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0", "tpslMode": "",
            "triggerDirection": 0, "triggerBy": "", "reduceOnly": False, "closeOnTrigger": False,
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
        if params.get("orderId") or params.get("orderLinkId"):
            order = self.engine.find(params.get("orderId"), params.get("orderLinkId"))
            found = [order] if order and order["status"] in statuses and pair in (None, order["pair"]) else []
            return category, found
        return category, self.engine.listing(statuses, pair)

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
        body = request.json()
        category = self._category(body)
        order = self.engine.find(body.get("orderId"), body.get("orderLinkId") if not body.get("orderId") else None)
        try:
            if order is None or category is None or name_of(order["pair"]) != body.get("symbol"):
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            raise Rejected(*REFUSALS[error.reason])
        return {"orderId": order["id"], "orderLinkId": order["client_id"]}
