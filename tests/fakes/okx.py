"""A fake OKX v5 REST API with real state, for tests. Shapes and codes follow
https://www.okx.com/docs-v5/en/ (response examples of each endpoint, "Error Code" section).

It verifies every private call as OKX does: key (50111), passphrase (50105), timestamp within
30 s of its clock (50102), and the signature base64(HMAC-SHA256(secret, ts + VERB + path?query
+ body)) (50113). It keeps balances and orders: limit orders rest unless they cross the book,
market orders fill against the book, cancel frees the frozen funds, filled and canceled orders
move to the history.
"""
import base64
import hashlib
import hmac
from datetime import datetime
from decimal import Decimal as D

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, OPEN, PARTIAL, Engine, Refused, fmt

API_KEY, SECRET, PASSPHRASE = "okx-test-key", "okx-test-secret", "okx-test-pass"
SECRET_KEY = f"{SECRET},{PASSPHRASE}"          # what a trader types into FMZ's Secret Key

BAR_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
          "1H": 3_600_000, "2H": 7_200_000, "4H": 14_400_000, "6Hutc": 21_600_000,
          "12Hutc": 43_200_000, "1Dutc": 86_400_000, "1Wutc": 604_800_000}
STATES = {OPEN: "live", PARTIAL: "partially_filled", FILLED: "filled", CANCELED: "canceled"}
# Engine refusals -> OKX sCode and sMsg (docs-v5, "Error Code", trade section)
REFUSALS = {
    "unknown_symbol": ("51001", "Instrument ID does not exist"),
    "duplicate_client_id": ("51016", "Duplicated clOrdId"),
    "bad_amount": ("51000", "Parameter sz error"),
    "bad_price": ("51000", "Parameter px error"),
    "below_min": ("51020", "Your order should meet or exceed the minimum order amount."),
    "insufficient": ("51008", "Order failed. Insufficient {} balance in account."),
    "unknown_order": ("51400", "Order cancellation failed as the order has been filled, canceled or does not exist"),
    "order_closed": ("51400", "Order cancellation failed as the order has been filled, canceled or does not exist"),
}


def ok(data):
    return 200, {"code": "0", "msg": "", "data": data}


def fail(code, msg, status=200, data=None):
    return status, {"code": code, "msg": msg, "data": data or []}


def bad_parameter(name):
    """51000 comes with HTTP 400, as the "Error Code" table documents."""
    return fail("51000", f"Parameter {name} error", 400)


def refuse(error, client_id="", ord_id=""):
    """A refused order or cancel: top-level code "1", the reason in data[0].sCode / sMsg."""
    code, msg = REFUSALS[error.reason]
    return fail("1", "All operations failed", 200,
                [{"clOrdId": client_id, "ordId": ord_id, "tag": "", "sCode": code, "sMsg": msg.format(error.detail)}])


def inst_id(pair):
    return "-".join(pair)


def pair_of(inst):
    parts = tuple((inst or "").split("-"))
    return parts if len(parts) == 2 else None


class FakeOKX(FakeExchange):
    NAME = "OKX"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET_KEY
    ORDER_PATH, TIME_PATH = "/api/v5/trade/order", "/api/v5/public/time"
    CODES = {reason: code for reason, (code, _) in REFUSALS.items()}
    CODES.update(unknown_order="51603")               # GET /api/v5/trade/order of an unknown id
    FOREIGN_ORDER_ID = "ETH-USDT,12345"              # well-formed, but no such order

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.routes = {
            ("GET", "/api/v5/public/time"): self.time,
            ("GET", "/api/v5/public/instruments"): self.instruments,
            ("GET", "/api/v5/market/ticker"): self.ticker,
            ("GET", "/api/v5/market/books"): self.books,
            ("GET", "/api/v5/market/trades"): self.trades,
            ("GET", "/api/v5/market/candles"): self.candles,
            ("GET", "/api/v5/account/balance"): self.private(self.balance),
            ("POST", "/api/v5/trade/order"): self.private(self.place),
            ("GET", "/api/v5/trade/order"): self.private(self.get_order),
            ("GET", "/api/v5/trade/orders-pending"): self.private(self.pending),
            ("GET", "/api/v5/trade/orders-history"): self.private(self.history),
            ("POST", "/api/v5/trade/cancel-order"): self.private(self.cancel),
        }

    # ------------------------------------------------------------------ auth
    def private(self, function):
        def checked(request):
            refusal = self.authenticate(request)
            return refusal or function(request)
        return checked

    def authenticate(self, request):
        headers = request.headers
        if not headers.get("OK-ACCESS-KEY"):
            return fail("50103", "Request header OK-ACCESS-KEY cannot be empty.", 401)
        if headers["OK-ACCESS-KEY"] != API_KEY:
            return fail("50111", "Invalid OK-ACCESS-KEY.", 401)
        if headers.get("OK-ACCESS-PASSPHRASE") != PASSPHRASE:
            return fail("50105", "Invalid OK-ACCESS-PASSPHRASE.", 401)
        timestamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        try:
            sent = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
            sent_ms = int((sent - datetime(1970, 1, 1)).total_seconds() * 1000)
        except ValueError:
            return fail("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        if abs(self.now_ms() - sent_ms) > 30_000:
            return fail("50102", "Timestamp request expired.", 401)
        prehash = timestamp + request.method + request.target + request.body
        expected = base64.b64encode(hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.decode(), headers.get("OK-ACCESS-SIGN", "")):
            return fail("50113", "Invalid Sign.", 401)
        return None

    def not_found(self, request):
        return fail("50000", "Not Found", 404)

    def rate_limited(self):
        return fail("50011", "Too Many Requests", 429)

    # ------------------------------------------------------------------ market data
    def time(self, request):
        return ok([{"ts": str(self.now_ms())}])

    def instruments(self, request):
        if request.query.get("instType") != "SPOT":
            return ok([])
        return ok([{
            "instType": "SPOT", "instId": inst_id(pair), "uly": "", "instFamily": "", "category": "1",
            "baseCcy": pair[0], "quoteCcy": pair[1], "settleCcy": "", "ctVal": "", "ctMult": "",
            "ctValCcy": "", "optType": "", "stk": "", "listTime": "1606468572000", "expTime": "",
            "lever": "10", "tickSz": fmt(spec["tick"]), "lotSz": fmt(spec["lot"]), "minSz": fmt(spec["min"]),
            "ctType": "", "alias": "", "state": "live", "maxLmtSz": fmt(spec["max"]),
            "maxMktSz": "1000000", "maxTwapSz": "", "maxIcebergSz": "", "maxTriggerSz": "", "maxStopSz": "",
        } for pair, spec in self.engine.markets.items()] + [{
            "instType": "SPOT", "instId": "OLD-USDT", "baseCcy": "OLD", "quoteCcy": "USDT",
            "tickSz": "0.1", "lotSz": "1", "minSz": "1", "state": "suspend"}])

    def _pair(self, request):
        pair = pair_of(request.query.get("instId"))
        return pair if pair in self.engine.markets else None

    def ticker(self, request):
        pair = self._pair(request)
        if pair is None:
            return fail("51001", "Instrument ID does not exist")
        asks, bids = self.engine.book(pair)
        mid = self.engine.markets[pair]["mid"]
        return ok([{
            "instType": "SPOT", "instId": inst_id(pair), "last": fmt(mid), "lastSz": "0.1",
            "askPx": fmt(asks[0][0]), "askSz": fmt(asks[0][1]), "bidPx": fmt(bids[0][0]), "bidSz": fmt(bids[0][1]),
            "open24h": fmt(mid - 100), "high24h": fmt(mid + 500), "low24h": fmt(mid - 500),
            "volCcy24h": fmt(D("1234.5") * mid), "vol24h": "1234.5", "ts": str(self.now_ms()),
            "sodUtc0": fmt(mid - 50), "sodUtc8": fmt(mid - 60)}])

    def books(self, request):
        pair = self._pair(request)
        if pair is None:
            return fail("51001", "Instrument ID does not exist")
        asks, bids = self.engine.book(pair, levels=min(int(request.query.get("sz", "1")), 400))
        row = lambda px, sz: [fmt(px), fmt(sz), "0", "1"]
        return ok([{"asks": [row(*level) for level in asks], "bids": [row(*level) for level in bids],
                    "ts": str(self.now_ms())}])

    def trades(self, request):
        pair = self._pair(request)
        if pair is None:
            return fail("51001", "Instrument ID does not exist")
        limit = min(int(request.query.get("limit", "100")), 500)
        now, mid = self.now_ms(), self.engine.markets[pair]["mid"]
        return ok([{"instId": inst_id(pair), "side": "buy" if i % 2 else "sell", "sz": "0.01",
                    "px": fmt(mid + i), "tradeId": str(242720720 - i), "ts": str(now - i * 1000)}
                   for i in range(limit)])                  # newest first, as OKX sends

    def candles(self, request):
        pair = self._pair(request)
        if pair is None:
            return fail("51001", "Instrument ID does not exist")
        bar = request.query.get("bar", "1m")
        if bar not in BAR_MS:
            return bad_parameter("bar")
        step = BAR_MS[bar]
        limit = min(int(request.query.get("limit", "100")), 300)
        newest = self.now_ms() // step * step
        oldest_kept = newest - 1439 * step                  # OKX keeps the latest 1440 here
        if request.query.get("after"):
            newest = min(newest, int(request.query["after"]) - step)
        rows = []
        for ts in range(newest, newest - limit * step, -step):
            if ts < oldest_kept:
                break
            _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
            rows.append([str(ts), fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol), "1050", "1050", "1"])
        return ok(rows)

    # ------------------------------------------------------------------ account
    def balance(self, request):
        now = str(self.now_ms())
        details = [{"ccy": ccy, "availBal": fmt(free), "frozenBal": fmt(frozen), "ordFrozen": fmt(frozen),
                    "cashBal": fmt(free + frozen), "eq": fmt(free + frozen), "availEq": "", "upl": "", "uTime": now}
                   for ccy, (free, frozen) in self.engine.balances.items() if free or frozen]
        return ok([{"adjEq": "", "details": details, "totalEq": "0", "uTime": now}])

    # ------------------------------------------------------------------ trading
    def place(self, request):
        body = request.json()
        side, kind, client_id = body.get("side"), body.get("ordType"), body.get("clOrdId", "")
        if side not in ("buy", "sell") or kind not in ("limit", "market") or body.get("tdMode") != "cash":
            return bad_parameter("side, ordType or tdMode")
        try:
            amount = D(body["sz"])
            price = D(body["px"]) if kind == "limit" else None
        except Exception:
            return bad_parameter("sz or px")
        quote_amount = kind == "market" and side == "buy" and body.get("tgtCcy") == "quote_ccy"
        try:
            order = self.engine.place(pair_of(body.get("instId")), side, kind, amount, price, client_id, quote_amount)
        except Refused as error:
            return refuse(error, client_id)
        return ok([{"clOrdId": client_id, "ordId": order["id"], "tag": "", "ts": str(order["created"]),
                    "sCode": "0", "sMsg": "Order placed"}])

    def render(self, order):
        """An engine order as OKX's order object (GET /api/v5/trade/order)."""
        avg = self.engine.avg_price(order)
        return {
            "instType": "SPOT", "instId": inst_id(order["pair"]), "ordId": order["id"],
            "clOrdId": order["client_id"], "tag": "", "px": fmt(order["price"]) if order["price"] else "",
            "sz": fmt(order["amount"]), "ordType": order["type"], "side": order["side"], "posSide": "net",
            "tdMode": "cash", "tgtCcy": "quote_ccy" if order["quote_amount"] else "",
            "accFillSz": fmt(order["filled"]), "fillPx": fmt(avg) if avg else "", "fillSz": "",
            "avgPx": fmt(avg) if avg else "", "state": STATES[order["status"]], "fee": "0",
            "feeCcy": order["pair"][0 if order["side"] == "buy" else 1], "cTime": str(order["created"]), "uTime": str(order["updated"]),
        }

    def get_order(self, request):
        order = self.engine.find(request.query.get("ordId"), request.query.get("clOrdId"))
        if order is None or inst_id(order["pair"]) != request.query.get("instId"):
            return fail("51603", "Order does not exist")
        return ok([self.render(order)])

    def _page(self, request, statuses):
        """Newest first; `state` (an OKX state) narrows `statuses`; after/before page by ordId."""
        query = request.query
        if query.get("instType", "SPOT") != "SPOT":
            return ok([])
        if query.get("state"):
            statuses = [status for status in statuses if STATES[status] == query["state"]]
        since = int(query["begin"]) if query.get("begin") else None
        found = self.engine.listing(statuses, pair_of(query.get("instId")), since)
        if query.get("end"):
            found = [o for o in found if o["created"] <= int(query["end"])]
        if query.get("after"):
            found = [o for o in found if int(o["id"]) < int(query["after"])]
        if query.get("before"):
            found = [o for o in found if int(o["id"]) > int(query["before"])]
        limit = min(int(query.get("limit", "100")), 100)
        return ok([self.render(o) for o in found[:limit]])

    def pending(self, request):
        return self._page(request, (OPEN, PARTIAL))

    def history(self, request):
        if not request.query.get("instType"):             # required here, optional for pending
            return fail("50014", "Parameter instType can not be empty.", 400)
        return self._page(request, (FILLED, CANCELED))

    def cancel(self, request):
        body = request.json()
        order = self.engine.find(body.get("ordId"), None if body.get("ordId") else body.get("clOrdId"))
        try:
            if order is None or inst_id(order["pair"]) != body.get("instId"):
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            return refuse(error, ord_id=body.get("ordId", ""))
        return ok([{"clOrdId": order["client_id"], "ordId": order["id"], "ts": str(self.now_ms()),
                    "sCode": "0", "sMsg": ""}])
