"""A fake Binance spot REST API (/api/v3) with real state, for tests. Shapes, messages and codes
follow binance-spot-api-docs: rest-api.md (response examples of each endpoint), errors.md,
filters.md and enums.md.

It verifies every SIGNED call as Binance does: the X-MBX-APIKEY header (-2014 malformed, -2015
unknown), `timestamp` within `recvWindow` behind its clock and less than 1 s ahead (-1021), and
`signature` = hex HMAC-SHA256(secret, totalParams) where totalParams is the query string
(without `signature`) followed directly by the form body (-1022). Parameters are read from the
query string and the form body, the query string winning, as Binance reads them.

State lives in the shared engine (tests/fakes/engine.py); this file translates Binance's dialect
(BTCUSDT, BUY/SELL, LIMIT/MARKET, quoteOrderQty, 8-decimal strings) and its filters (PRICE_FILTER,
LOT_SIZE, NOTIONAL) to and from it. Simplifications: LIMIT orders are GTC only, quoteOrderQty is
accepted on market buys only, a FULL answer reports one aggregated fill.
"""
import hashlib
import hmac
import re
import urllib.parse
import uuid
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, OPEN, PARTIAL, Engine, Refused

# The API key and secret of Binance's own signing example (rest-api.md, "SIGNED Endpoint Examples").
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
KEY_FORMAT = re.compile(r"[A-Za-z0-9]{64}")
CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
MAX_RECV_WINDOW = 60_000

INTERVAL_MS = {"1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000}
WEEK_START_MS = 4 * 86_400_000       # Binance weeks open on Monday; 1970-01-01 was a Thursday

# Engine refusals -> Binance code and msg (errors.md; -1013 messages from filters.md)
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


def fail(code, msg, status=400):
    return status, {"code": code, "msg": msg}


def refuse(error):
    return fail(*REFUSALS[error.reason])


def mandatory(name):
    return fail(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def b8(number):
    """Binance writes spot prices and quantities with 8 decimals: "0.10000000"."""
    return f"{(number or D(0)):.8f}"


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
    CANCEL_ROUTE = ("DELETE", "/api/v3/order")
    CODES = {reason: str(code) for reason, (code, _) in REFUSALS.items()}
    CODES.update(unknown_order="-2013")               # GET /api/v3/order of an unknown id
    FOREIGN_ORDER_ID = "ETHUSDT,12345"               # well-formed, but no such order

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.routes = {
            ("GET", "/api/v3/time"): self.time,
            ("GET", "/api/v3/exchangeInfo"): self.exchange_info,
            ("GET", "/api/v3/ticker/24hr"): self.ticker_24hr,
            ("GET", "/api/v3/depth"): self.depth,
            ("GET", "/api/v3/trades"): self.trades,
            ("GET", "/api/v3/klines"): self.klines,
            ("GET", "/api/v3/account"): self.signed(self.account),
            ("POST", "/api/v3/order"): self.signed(self.new_order),
            ("GET", "/api/v3/order"): self.signed(self.get_order),
            ("DELETE", "/api/v3/order"): self.signed(self.cancel_order),
            ("GET", "/api/v3/openOrders"): self.signed(self.open_orders),
            ("GET", "/api/v3/allOrders"): self.signed(self.all_orders),
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
        if key != API_KEY:
            return fail(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        params = self.params(request)
        if not params.get("timestamp", "").isdigit():
            return mandatory("timestamp")
        window = params.get("recvWindow", "5000")
        if not window.isdigit() or int(window) > MAX_RECV_WINDOW:
            return fail(-1131, "recvWindow must be less than 60000")
        sent, now = int(params["timestamp"]), self.now_ms()
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

    def not_found(self, request):
        return 404, b"<!DOCTYPE html><html><head><title>Binance</title></head><body>404 Not Found</body></html>"

    def signature_of(self, request):
        return split_signature(request.raw_query, request.body)[0]

    def rate_limited(self):
        return fail(-1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                           "Please use WebSocket Streams for live updates to avoid polling the API.", 429)

    # ------------------------------------------------------------------ market data
    def pair(self, params):
        """BTCUSDT -> ("BTC", "USDT"), or None when no live market has that symbol."""
        for pair in self.engine.markets:
            if "".join(pair) == params.get("symbol"):
                return pair
        return None

    def with_pair(self, params):
        """(pair, None), or (None, the refusal) for a missing or unknown symbol."""
        if not params.get("symbol"):
            return None, mandatory("symbol")
        pair = self.pair(params)
        return (pair, None) if pair else (None, fail(-1121, "Invalid symbol."))

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

    def ticker_24hr(self, request):
        if not request.query.get("symbol"):
            return 200, [self.ticker_of(pair) for pair in self.engine.markets]
        pair, refusal = self.with_pair(request.query)
        return refusal or (200, self.ticker_of(pair))

    def ticker_of(self, pair):
        asks, bids = self.engine.book(pair, levels=1)
        mid, now = self.engine.markets[pair]["mid"], self.now_ms()
        return {
            "symbol": "".join(pair), "priceChange": b8(D(100)), "priceChangePercent": "0.200",
            "weightedAvgPrice": b8(mid), "prevClosePrice": b8(mid - 100), "lastPrice": b8(mid),
            "lastQty": "0.10000000", "bidPrice": b8(bids[0][0]), "bidQty": b8(bids[0][1]),
            "askPrice": b8(asks[0][0]), "askQty": b8(asks[0][1]), "openPrice": b8(mid - 100),
            "highPrice": b8(mid + 500), "lowPrice": b8(mid - 500), "volume": "1234.50000000",
            "quoteVolume": b8(mid * D("1234.5")), "openTime": now - 86_400_000, "closeTime": now,
            "firstId": 28385, "lastId": 28460, "count": 76,
        }

    def depth(self, request):
        pair, refusal = self.with_pair(request.query)
        if refusal:
            return refusal
        limit = request.query.get("limit", "100")
        if not limit.isdigit() or int(limit) < 1:
            return fail(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'.")
        asks, bids = self.engine.book(pair, levels=min(int(limit), 5000))
        return 200, {"lastUpdateId": 1027024, "bids": [[b8(px), b8(sz)] for px, sz in bids],
                     "asks": [[b8(px), b8(sz)] for px, sz in asks]}

    def trades(self, request):
        pair, refusal = self.with_pair(request.query)
        if refusal:
            return refusal
        limit = min(int(request.query.get("limit", "500")), 1000)
        now, mid = self.now_ms(), self.engine.markets[pair]["mid"]
        return 200, [{"id": 28457 - i, "price": b8(mid + i), "qty": "0.01000000", "quoteQty": b8((mid + i) / 100),
                      "time": now - i * 1000, "isBuyerMaker": i % 2 == 0, "isBestMatch": True}
                     for i in reversed(range(limit))]              # oldest first, as Binance sends

    def klines(self, request):
        query = request.query
        pair, refusal = self.with_pair(query)
        if refusal:
            return refusal
        step = INTERVAL_MS.get(query.get("interval"))
        if step is None:
            return fail(-1120, "Invalid interval.")
        limit = min(int(query.get("limit", "500")), 1000)
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
        return [ts, b8(o), b8(h), b8(low), b8(c), b8(vol), ts + step - 1, b8(vol * c), 308,
                b8(vol / 2), b8(vol * c / 2), "0"]

    # ------------------------------------------------------------------ account
    def account(self, params):
        balances = [{"asset": ccy, "free": b8(free), "locked": b8(frozen)}
                    for ccy, (free, frozen) in self.engine.balances.items()
                    if free or frozen or params.get("omitZeroBalances") != "true"]
        return 200, {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                     "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                         "seller": "0.00000000"},
                     "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                     "requireSelfTradePrevention": False, "updateTime": self.now_ms(), "accountType": "SPOT",
                     "balances": balances, "permissions": ["SPOT"]}

    # ------------------------------------------------------------------ trading
    def new_order(self, params):
        pair, refusal = self.with_pair(params)
        if refusal:
            return refusal
        order, refusal = self.read_order(pair, params)
        if refusal:
            return refusal
        client_id = params.get("newClientOrderId") or "web_" + uuid.uuid4().hex[:18]
        if not CLIENT_ID.fullmatch(client_id):
            return fail(-1100, "Illegal characters found in parameter 'newClientOrderId'; "
                               "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        try:
            self.check_filters(pair, order)
            placed = self.engine.place(pair, client_id=client_id, **order)
        except Refused as error:
            return refuse(error)
        return 200, self.placed(placed, params.get("newOrderRespType", "FULL"))

    def read_order(self, pair, params):
        """({side, kind, amount, price, quote_amount}, None) or (None, the refusal)."""
        side, kind = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            return None, fail(-1100, "Illegal characters found in parameter 'side'; legal range is 'BUY, SELL'.")
        if kind not in ("LIMIT", "MARKET"):
            return None, fail(-1116, "Invalid orderType.")
        names = ["quantity", "price"] if kind == "LIMIT" else ["quantity", "quoteOrderQty"]
        values = {}
        for name in names:
            try:
                values[name] = D(params[name]) if params.get(name) else None
            except InvalidOperation:
                return None, fail(-1100, f"Illegal characters found in parameter '{name}'; "
                                         "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
            if values[name] is not None and -values[name].as_tuple().exponent > 8:
                return None, fail(-1111, f"Parameter '{name}' has too much precision.")
        if kind == "LIMIT":
            for name in ("timeInForce", "quantity", "price"):
                if not params.get(name):
                    return None, mandatory(name)
            if params["timeInForce"] != "GTC":
                return None, fail(-1115, "Invalid timeInForce.")
        elif (values["quantity"] is None) == (values["quoteOrderQty"] is None):
            return None, fail(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        elif values["quoteOrderQty"] is not None and side == "SELL":
            return None, fail(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        quote_amount = values.get("quoteOrderQty") is not None
        return {"side": side.lower(), "kind": kind.lower(), "price": values.get("price"), "quote_amount": quote_amount,
                "amount": values["quoteOrderQty"] if quote_amount else values["quantity"]}, None

    def check_filters(self, pair, order):
        """PRICE_FILTER, LOT_SIZE and NOTIONAL (applied to limit orders), as filters.md states them."""
        spec, price, amount = self.engine.markets[pair], order["price"], order["amount"]
        if price is not None and (price < spec["tick"] or price % spec["tick"]):
            raise Refused("bad_price")
        if order["quote_amount"]:
            return
        if amount < spec["min"] or amount > spec["max"] or amount % spec["lot"]:
            raise Refused("bad_amount")
        if price is not None and price * amount < spec["min_notional"]:
            raise Refused("below_notional")

    def render(self, order):
        """An engine order as Binance's order object (GET /api/v3/order)."""
        status = {OPEN: "NEW", PARTIAL: "PARTIALLY_FILLED", FILLED: "FILLED", CANCELED: "CANCELED"}[order["status"]]
        if order["type"] == "market" and status != "FILLED" or \
                status == "FILLED" and not order["quote_amount"] and order["filled"] < order["amount"]:
            status = "EXPIRED"                        # a market order the book could not fill
        return {
            "symbol": "".join(order["pair"]), "orderId": int(order["id"]), "orderListId": -1,
            "clientOrderId": order["client_id"], "price": b8(order["price"]),
            "origQty": b8(order["filled"] if order["quote_amount"] else order["amount"]),
            "executedQty": b8(order["filled"]), "cummulativeQuoteQty": b8(order["cost"]), "status": status,
            "timeInForce": "GTC", "type": order["type"].upper(), "side": order["side"].upper(),
            "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": order["created"],
            "updateTime": order["updated"], "isWorking": True, "workingTime": order["created"],
            "origQuoteOrderQty": b8(order["amount"] if order["quote_amount"] else D(0)),
            "selfTradePreventionMode": "NONE",
        }

    def placed(self, order, response_type):
        """POST /api/v3/order's answer: ACK, RESULT, or FULL (RESULT and its fills)."""
        full = self.render(order)
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

    def lookup(self, params):
        """The order named by orderId (or origClientOrderId) on this symbol, or None."""
        pair = self.pair(params)
        order = self.engine.find(params.get("orderId"), params.get("origClientOrderId"))
        return order if order and order["pair"] == pair else None

    def order_params_refusal(self, params):
        pair, refusal = self.with_pair(params)
        if refusal:
            return refusal
        if not params.get("orderId") and not params.get("origClientOrderId"):
            return fail(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return None

    def get_order(self, params):
        refusal = self.order_params_refusal(params)
        if refusal:
            return refusal
        order = self.lookup(params)
        return (200, self.render(order)) if order else fail(-2013, "Order does not exist.")

    def cancel_order(self, params):
        refusal = self.order_params_refusal(params)
        if refusal:
            return refusal
        order = self.lookup(params)
        try:
            if order is None:
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            return refuse(error)
        answer = {key: value for key, value in self.render(order).items() if key in (
            "symbol", "orderId", "orderListId", "price", "origQty", "executedQty", "cummulativeQuoteQty",
            "status", "timeInForce", "type", "side", "origQuoteOrderQty", "selfTradePreventionMode")}
        return 200, {**answer, "origClientOrderId": order["client_id"], "transactTime": self.now_ms(),
                     "clientOrderId": params.get("newClientOrderId") or "cancel_" + uuid.uuid4().hex[:16]}

    def open_orders(self, params):
        pair = None
        if params.get("symbol"):
            pair, refusal = self.with_pair(params)
            if refusal:
                return refusal
        return 200, [self.render(o) for o in reversed(self.engine.listing((OPEN, PARTIAL), pair))]

    def all_orders(self, params):
        """orderId set: from that id up; startTime set: from that time up; else the latest `limit`."""
        pair, refusal = self.with_pair(params)
        if refusal:
            return refusal
        limit = min(int(params.get("limit", "500")), 1000)
        found = self.engine.listing((OPEN, PARTIAL, FILLED, CANCELED), pair)[::-1]     # oldest first
        if params.get("endTime"):
            found = [o for o in found if o["created"] <= int(params["endTime"])]
        if params.get("orderId"):
            found = [o for o in found if int(o["id"]) >= int(params["orderId"])][:limit]
        elif params.get("startTime"):
            found = [o for o in found if o["created"] >= int(params["startTime"])][:limit]
        else:
            found = found[-limit:]
        return 200, [self.render(o) for o in found]
