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
import itertools
from datetime import datetime
from decimal import Decimal as D

from tests.fakes.base import FakeExchange

API_KEY, SECRET, PASSPHRASE = "okx-test-key", "okx-test-secret", "okx-test-pass"
SECRET_KEY = f"{SECRET},{PASSPHRASE}"          # what a trader types into FMZ's Secret Key

INSTRUMENTS = {
    "BTC-USDT": {"tickSz": "0.1", "lotSz": "0.00000001", "minSz": "0.00001", "maxLmtSz": "9999999999",
                 "maxMktSz": "1000000", "book": (D("50000"), D("0.1"))},
    "ETH-USDT": {"tickSz": "0.01", "lotSz": "0.000001", "minSz": "0.001", "maxLmtSz": "99999999",
                 "maxMktSz": "1000000", "book": (D("3000"), D("0.01"))},
}
BAR_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
          "1H": 3_600_000, "2H": 7_200_000, "4H": 14_400_000, "6Hutc": 21_600_000,
          "12Hutc": 43_200_000, "1Dutc": 86_400_000, "1Wutc": 604_800_000}


def fmt(number):
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def ok(data):
    return 200, {"code": "0", "msg": "", "data": data}


def fail(code, msg, status=200, data=None):
    return status, {"code": code, "msg": msg, "data": data or []}


class FakeOKX(FakeExchange):
    def __init__(self):
        super().__init__()
        self.balances = {"USDT": [D("100000"), D(0)], "BTC": [D("1"), D(0)], "ETH": [D("10"), D(0)]}
        self.orders = {}                       # ordId -> OKX order dict
        self.order_ids = itertools.count(600000000000000001)
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
            "instType": "SPOT", "instId": inst, "uly": "", "instFamily": "", "category": "1",
            "baseCcy": inst.split("-")[0], "quoteCcy": inst.split("-")[1], "settleCcy": "",
            "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "", "stk": "", "listTime": "1606468572000",
            "expTime": "", "lever": "10", "tickSz": spec["tickSz"], "lotSz": spec["lotSz"],
            "minSz": spec["minSz"], "ctType": "", "alias": "", "state": "live",
            "maxLmtSz": spec["maxLmtSz"], "maxMktSz": spec["maxMktSz"], "maxTwapSz": "", "maxIcebergSz": "",
            "maxTriggerSz": "", "maxStopSz": "",
        } for inst, spec in INSTRUMENTS.items()] + [{
            "instType": "SPOT", "instId": "OLD-USDT", "baseCcy": "OLD", "quoteCcy": "USDT",
            "tickSz": "0.1", "lotSz": "1", "minSz": "1", "state": "suspend"}])

    def _inst(self, request):
        inst = request.query.get("instId") or (request.json().get("instId") if request.method == "POST" else None)
        return inst if inst in INSTRUMENTS else None

    def book(self, inst, levels=5):
        mid, step = INSTRUMENTS[inst]["book"]
        asks = [(mid + step * (i + 1), D("0.5") * (i + 1)) for i in range(levels)]
        bids = [(mid - step * i, D("0.5") * (i + 1)) for i in range(levels)]
        return asks, bids

    def ticker(self, request):
        inst = self._inst(request)
        if inst is None:
            return fail("51001", "Instrument ID does not exist")
        asks, bids = self.book(inst)
        mid = INSTRUMENTS[inst]["book"][0]
        return ok([{
            "instType": "SPOT", "instId": inst, "last": fmt(mid), "lastSz": "0.1",
            "askPx": fmt(asks[0][0]), "askSz": fmt(asks[0][1]), "bidPx": fmt(bids[0][0]), "bidSz": fmt(bids[0][1]),
            "open24h": fmt(mid - 100), "high24h": fmt(mid + 500), "low24h": fmt(mid - 500),
            "volCcy24h": "2222", "vol24h": "1234.5", "ts": str(self.now_ms()),
            "sodUtc0": fmt(mid - 50), "sodUtc8": fmt(mid - 60)}])

    def books(self, request):
        inst = self._inst(request)
        if inst is None:
            return fail("51001", "Instrument ID does not exist")
        size = min(int(request.query.get("sz", "1")), 400)
        asks, bids = self.book(inst, levels=size)
        row = lambda px, sz: [fmt(px), fmt(sz), "0", "1"]
        return ok([{"asks": [row(*level) for level in asks], "bids": [row(*level) for level in bids],
                    "ts": str(self.now_ms())}])

    def trades(self, request):
        inst = self._inst(request)
        if inst is None:
            return fail("51001", "Instrument ID does not exist")
        limit = min(int(request.query.get("limit", "100")), 500)
        now, mid = self.now_ms(), INSTRUMENTS[inst]["book"][0]
        return ok([{"instId": inst, "side": "buy" if i % 2 else "sell", "sz": "0.01",
                    "px": fmt(mid + i), "tradeId": str(242720720 - i), "ts": str(now - i * 1000)}
                   for i in range(limit)])                  # newest first, as OKX sends

    def candles(self, request):
        inst = self._inst(request)
        if inst is None:
            return fail("51001", "Instrument ID does not exist")
        bar = request.query.get("bar", "1m")
        if bar not in BAR_MS:
            return fail("51000", "Parameter bar error")
        step = BAR_MS[bar]
        limit = min(int(request.query.get("limit", "100")), 300)
        newest = self.now_ms() // step * step
        if request.query.get("after"):
            newest = min(newest, int(request.query["after"]) - step)
        oldest_kept = self.now_ms() // step * step - 1439 * step      # OKX keeps the latest 1440 here
        rows = []
        for i in range(limit):
            ts = newest - i * step
            if ts < oldest_kept:
                break
            o = D(100) + D(ts // step % 97)
            rows.append([str(ts), fmt(o), fmt(o + 2), fmt(o - 1), fmt(o + 1), "10.5", "1050", "1050", "1"])
        return ok(rows)

    # ------------------------------------------------------------------ account
    def balance(self, request):
        details = [{"ccy": ccy, "availBal": fmt(avail), "frozenBal": fmt(frozen), "ordFrozen": fmt(frozen),
                    "cashBal": fmt(avail + frozen), "eq": fmt(avail + frozen), "availEq": "", "upl": "",
                    "uTime": str(self.now_ms())}
                   for ccy, (avail, frozen) in self.balances.items() if avail or frozen]
        return ok([{"adjEq": "", "details": details, "totalEq": "0", "uTime": str(self.now_ms())}])

    # ------------------------------------------------------------------ trading
    def place(self, request):
        body = request.json()
        inst, side, kind = body.get("instId"), body.get("side"), body.get("ordType")
        client_id = body.get("clOrdId", "")
        refuse = lambda code, msg: fail("1", "All operations failed", 200,
                                        [{"clOrdId": client_id, "ordId": "", "tag": "", "sCode": code, "sMsg": msg}])
        if inst not in INSTRUMENTS:
            return refuse("51001", "Instrument ID does not exist")
        if side not in ("buy", "sell") or kind not in ("limit", "market") or body.get("tdMode") != "cash":
            return fail("51000", "Parameter side, ordType or tdMode error")
        if client_id and any(o["clOrdId"] == client_id for o in self.orders.values()):
            return refuse("51016", "Duplicated clOrdId")
        spec = INSTRUMENTS[inst]
        try:
            size = D(body["sz"])
            price = D(body["px"]) if kind == "limit" else None
        except Exception:
            return fail("51000", "Parameter sz error")
        quote_sized = kind == "market" and side == "buy" and body.get("tgtCcy") == "quote_ccy"
        if not quote_sized and size % D(spec["lotSz"]):
            return fail("51000", "Parameter sz error")
        if price is not None and (price <= 0 or price % D(spec["tickSz"])):
            return fail("51000", "Parameter px error")
        if not quote_sized and size < D(spec["minSz"]):
            return refuse("51020", "Your order should meet or exceed the minimum order amount.")
        base, quote = inst.split("-")
        pay = quote if side == "buy" else base
        need = (size if quote_sized or side == "sell" else size * price)
        if kind == "market" and side == "buy" and not quote_sized:
            need = size * self.book(inst)[0][-1][0]
        if self.balances.setdefault(pay, [D(0), D(0)])[0] < need:
            return refuse("51008", f"Order failed. Insufficient {pay} balance in account.")
        ord_id = str(next(self.order_ids))
        now = str(self.now_ms())
        self.orders[ord_id] = {
            "instType": "SPOT", "instId": inst, "ordId": ord_id, "clOrdId": client_id, "tag": "",
            "px": fmt(price) if price is not None else "", "sz": fmt(size), "ordType": kind, "side": side,
            "posSide": "net", "tdMode": "cash", "tgtCcy": body.get("tgtCcy", ""), "accFillSz": "0",
            "fillPx": "", "fillSz": "", "avgPx": "", "state": "live", "fee": "0", "feeCcy": quote,
            "cTime": now, "uTime": now, "_frozen": need, "_pay": pay, "_filled": D(0), "_cost": D(0),
        }
        self.balances[pay][0] -= need
        self.balances[pay][1] += need
        self._match(self.orders[ord_id], quote_sized)
        return ok([{"clOrdId": client_id, "ordId": ord_id, "tag": "", "ts": now, "sCode": "0",
                    "sMsg": "Order placed"}])

    def _match(self, order, quote_sized):
        """Fill against the (static) book: a limit order takes the levels its price crosses."""
        inst, side = order["instId"], order["side"]
        asks, bids = self.book(inst)
        levels = asks if side == "buy" else bids
        limit = D(order["px"]) if order["px"] else None
        remaining = D(order["sz"])                      # base, or quote for a quote-sized buy
        for px, sz in levels:
            if remaining <= 0 or (limit is not None and (px > limit if side == "buy" else px < limit)):
                break
            take = min(sz, remaining / px) if quote_sized else min(sz, remaining)
            take = take.quantize(D("0.00000001"))
            if take <= 0:
                break
            order["_filled"] += take
            order["_cost"] += take * px
            remaining -= take * px if quote_sized else take
        if order["_filled"]:
            self._settle(order)
        if order["ordType"] == "market" or remaining <= 0:
            self._close(order, "filled" if remaining <= 0 or order["_filled"] else "canceled")
        elif order["_filled"]:
            order["state"] = "partially_filled"

    def _settle(self, order):
        base, quote = order["instId"].split("-")
        filled, cost = order["_filled"], order["_cost"]
        if order["side"] == "buy":
            self.balances[quote][1] -= cost
            order["_frozen"] -= cost
            self.balances.setdefault(base, [D(0), D(0)])[0] += filled
        else:
            self.balances[base][1] -= filled
            order["_frozen"] -= filled
            self.balances[quote][0] += cost
        order["accFillSz"] = fmt(filled)
        order["avgPx"] = fmt((cost / filled).quantize(D("0.00000001")))
        order["fillPx"] = order["avgPx"]

    def _close(self, order, state):
        """Finish an order: whatever is still frozen goes back to available."""
        pay = self.balances[order["_pay"]]
        pay[0] += order["_frozen"]
        pay[1] -= order["_frozen"]
        order["_frozen"] = D(0)
        order["state"] = state
        order["uTime"] = str(self.now_ms())

    def _public(self, order):
        return {k: v for k, v in order.items() if not k.startswith("_")}

    def get_order(self, request):
        ord_id, client_id = request.query.get("ordId"), request.query.get("clOrdId")
        for order in self.orders.values():
            if order["instId"] == request.query.get("instId") and (
                    order["ordId"] == ord_id or (client_id and order["clOrdId"] == client_id)):
                return ok([self._public(order)])
        return fail("51603", "Order does not exist")

    def _page(self, request, states):
        wanted = [o for o in self.orders.values() if o["state"] in states
                  and o["instType"] == request.query.get("instType")
                  and request.query.get("instId", o["instId"]) == o["instId"]]
        wanted.sort(key=lambda o: int(o["ordId"]), reverse=True)        # newest first
        if request.query.get("after"):
            wanted = [o for o in wanted if int(o["ordId"]) < int(request.query["after"])]
        if request.query.get("begin"):
            wanted = [o for o in wanted if int(o["cTime"]) >= int(request.query["begin"])]
        limit = min(int(request.query.get("limit", "100")), 100)
        return ok([self._public(o) for o in wanted[:limit]])

    def pending(self, request):
        return self._page(request, ("live", "partially_filled"))

    def history(self, request):
        return self._page(request, ("filled", "canceled"))

    def cancel(self, request):
        body = request.json()
        order = self.orders.get(body.get("ordId"))
        refuse = lambda code, msg: fail("1", "All operations failed", 200,
                                        [{"clOrdId": "", "ordId": body.get("ordId", ""), "sCode": code, "sMsg": msg}])
        if order is None or order["instId"] != body.get("instId"):
            return refuse("51400", "Order cancellation failed as the order has been filled, canceled or does not exist")
        if order["state"] not in ("live", "partially_filled"):
            return refuse("51400", "Order cancellation failed as the order has been filled, canceled or does not exist")
        self._close(order, "canceled")
        return ok([{"clOrdId": order["clOrdId"], "ordId": order["ordId"], "sCode": "0", "sMsg": ""}])
