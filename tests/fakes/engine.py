"""The exchange-neutral state every fake exchange keeps: markets, a static book, balances, orders.

Each fake translates its own dialect (OKX's instId/sz/px, ...) to and from this engine, so the
matching rules are written once and every fake behaves the same way, which is what lets one
contract test suite run against all of them. Numbers are Decimal; times are ms.

Rules: the book never changes (every level is always there); a limit order fills against the
levels its price crosses and rests with the rest; a market order fills what the book has and is
then done; funds are frozen when an order is placed and released when it finishes.
"""
import itertools
import time
from decimal import Decimal as D

# Every fake lists the same spot markets, so the contract tests can expect the same numbers.
# min_notional (the smallest price * amount a fake whose exchange has such a rule accepts) is
# low enough for the small orders of the contract suite.
SPOT_MARKETS = {
    ("BTC", "USDT"): {"tick": D("0.1"), "lot": D("0.00000001"), "min": D("0.00001"), "max": D("9000"),
                      "min_notional": D("0.1"), "mid": D("50000"), "step": D("0.1")},
    ("ETH", "USDT"): {"tick": D("0.01"), "lot": D("0.000001"), "min": D("0.001"), "max": D("90000"),
                      "min_notional": D("0.1"), "mid": D("3000"), "step": D("0.01")},
}
START_BALANCES = {"USDT": D("100000"), "BTC": D("1"), "ETH": D("10")}
OPEN, PARTIAL, FILLED, CANCELED = "open", "partial", "filled", "canceled"


class Refused(Exception):
    """The engine refuses an order; `reason` is one of the keys every fake maps to its own code."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def fmt(number):
    """Decimal -> the plain text exchanges send: 0.00001, 50000, 1.5."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Engine:
    def __init__(self, now_ms=lambda: int(time.time() * 1000)):
        self.now_ms = now_ms
        self.markets = dict(SPOT_MARKETS)
        self.balances = {ccy: [amount, D(0)] for ccy, amount in START_BALANCES.items()}  # [free, frozen]
        self.orders = {}
        self._ids = itertools.count(600000000000000001)

    # ------------------------------------------------------------------ market data
    def book(self, pair, levels=5):
        """asks ascending from mid+step, bids descending from mid; level i holds 0.5*(i+1)."""
        spec = self.markets[pair]
        asks = [(spec["mid"] + spec["step"] * (i + 1), D("0.5") * (i + 1)) for i in range(levels)]
        bids = [(spec["mid"] - spec["step"] * i, D("0.5") * (i + 1)) for i in range(levels)]
        return asks, bids

    def candle(self, pair, ts, step_ms):
        """A deterministic OHLCV row for the candle opening at ts."""
        o = D(100) + D(ts // step_ms % 97)
        return ts, o, o + 2, o - 1, o + 1, D("10.5")

    # ------------------------------------------------------------------ orders
    def place(self, pair, side, kind, amount, price=None, client_id="", quote_amount=False):
        """Validate, freeze funds, match. `amount` is quote currency when quote_amount is set."""
        if pair not in self.markets:
            raise Refused("unknown_symbol")
        spec = self.markets[pair]
        if client_id and any(o["client_id"] == client_id for o in self.orders.values()):
            raise Refused("duplicate_client_id")
        if not quote_amount and amount % spec["lot"]:
            raise Refused("bad_amount", "amount is not a multiple of the lot size")
        if price is not None and (price <= 0 or price % spec["tick"]):
            raise Refused("bad_price", "price is not a multiple of the tick size")
        if not quote_amount and amount < spec["min"]:
            raise Refused("below_min")
        base, quote = pair
        pay = quote if side == "buy" else base
        if side == "sell" or quote_amount:
            need = amount
        else:
            need = amount * (price if price is not None else self.book(pair)[0][-1][0])
        if self.balances.setdefault(pay, [D(0), D(0)])[0] < need:
            raise Refused("insufficient", pay)
        now = self.now_ms()
        order = {"id": str(next(self._ids)), "client_id": client_id, "pair": pair, "side": side,
                 "type": kind, "price": price, "amount": amount, "quote_amount": quote_amount,
                 "filled": D(0), "cost": D(0), "status": OPEN, "created": now, "updated": now,
                 "frozen": need, "pay": pay}
        self.balances[pay][0] -= need
        self.balances[pay][1] += need
        self.orders[order["id"]] = order
        self._match(order)
        return order

    def _match(self, order):
        asks, bids = self.book(order["pair"])
        levels, side, limit = (asks if order["side"] == "buy" else bids), order["side"], order["price"]
        remaining = order["amount"]
        for px, size in levels:
            if remaining <= 0 or (limit is not None and (px > limit if side == "buy" else px < limit)):
                break
            take = min(size, remaining / px) if order["quote_amount"] else min(size, remaining)
            take = take.quantize(D("0.00000001"))
            if take <= 0:
                break
            order["filled"] += take
            order["cost"] += take * px
            remaining -= take * px if order["quote_amount"] else take
        if order["filled"]:
            self._settle(order)
        if order["type"] == "market" or remaining <= 0:
            self._finish(order, FILLED if order["filled"] else CANCELED)
        elif order["filled"]:
            order["status"] = PARTIAL

    def _settle(self, order):
        base, quote = order["pair"]
        if order["side"] == "buy":
            self.balances[quote][1] -= order["cost"]
            order["frozen"] -= order["cost"]
            self.balances.setdefault(base, [D(0), D(0)])[0] += order["filled"]
        else:
            self.balances[base][1] -= order["filled"]
            order["frozen"] -= order["filled"]
            self.balances.setdefault(quote, [D(0), D(0)])[0] += order["cost"]

    def _finish(self, order, status):
        """Whatever is still frozen goes back to free."""
        pay = self.balances[order["pay"]]
        pay[0] += order["frozen"]
        pay[1] -= order["frozen"]
        order["frozen"] = D(0)
        order["status"] = status
        order["updated"] = self.now_ms()

    def cancel(self, order_id):
        order = self.orders.get(order_id)
        if order is None:
            raise Refused("unknown_order")
        if order["status"] not in (OPEN, PARTIAL):
            raise Refused("order_closed")
        self._finish(order, CANCELED)
        return order

    def find(self, order_id=None, client_id=None):
        for order in self.orders.values():
            if order["id"] == order_id or (client_id and order["client_id"] == client_id):
                return order
        return None

    def listing(self, statuses, pair=None, since=None):
        """Orders in those statuses, newest first, as exchanges list them."""
        found = [o for o in self.orders.values() if o["status"] in statuses
                 and (pair is None or o["pair"] == pair) and (since is None or o["created"] >= since)]
        return sorted(found, key=lambda o: int(o["id"]), reverse=True)

    @staticmethod
    def avg_price(order):
        return (order["cost"] / order["filled"]).quantize(D("0.00000001")) if order["filled"] else None
