"""The exchange-neutral state every fake exchange keeps: markets, a static book, balances, orders,
and perpetual-swap positions.

Each fake translates its own dialect (OKX's instId/sz/px, ...) to and from this engine, so the
matching rules are written once and every fake behaves the same way, which is what lets one
contract test suite run against all of them. Numbers are Decimal; times are ms.

Client order ids are unique among OPEN orders only, as OKX (clOrdId), Binance (newClientOrderId)
and Bybit (orderLinkId) check them: once an order has filled or been canceled its client id may be
used again, so a resend with the same id after a fill makes a second order.

Spot rules: the book never changes (every level is always there); a limit order fills against
the levels its price crosses and rests with the rest (a resting order never fills later); a
market order fills what the book has and is then done; funds are frozen when an order is placed
and released when it finishes.

Swap rules (perpetuals; markets keyed ("BTC", "USDT", "swap"), in `Engine.swaps`):
- Amounts are contracts. One contract is `ct_val` of `ct_val_ccy`: 0.01 BTC on BTC_USDT.swap,
  0.1 ETH on ETH_USDT.swap (linear, margined and settled in USDT), 100 USD on BTC_USD.swap
  (inverse, margined and settled in BTC). Book sizes are contracts too.
- Notional: linear = contracts * ct_val * price (USDT); inverse = contracts * ct_val / price (BTC).
  Margin = notional / leverage, taken from the settle currency's balance: frozen when an
  opening order is placed, held by the position while it is open (it counts as "frozen" in the
  balance), released with the profit or loss when the position is reduced. An order that lacks
  the margin is refused ("insufficient_margin"). Leverage is per swap (DEFAULT_LEVERAGE until set),
  applies to later opens, and must be 1..max_leverage ("bad_leverage", "leverage_too_high").
- Positions are kept per (swap, "long"/"short"). Net mode (the default): a buy first reduces a
  short and opens a long with the rest, a sell the reverse; `reduce_only` orders only reduce.
  Hedge mode (`set_hedge_mode(True)`, refused while positions or swap orders are open): every
  order names its position side; buy+long and sell+short open, sell+long and buy+short close.
- Closing more than the position holds (less the contracts reserved by resting closing orders)
  is refused as a whole ("close_exceeds_position"; "no_position" when nothing is held).
- Mark price = the book's mid. Profit: linear long = contracts * ct_val * (exit - entry);
  inverse long = contracts * ct_val * (1/entry - 1/exit); shorts the opposite.
- Funding: a fixed rate per swap, settled every `funding_interval` ms on multiples of it (UTC);
  `funding(pair)` gives the rate, the next settlement time and the interval. Nothing is charged.
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
HOUR_MS = 3_600_000
# Perpetual swaps every fake lists: two linear (USDT-margined), one inverse (coin-margined).
SWAP_MARKETS = {
    ("BTC", "USDT", "swap"): {"tick": D("0.1"), "lot": D("0.1"), "min": D("0.1"), "max": D("100000"),
                              "mid": D("50000"), "step": D("0.1"), "depth": D("10"),
                              "ct_val": D("0.01"), "ct_val_ccy": "BTC", "settle": "USDT", "inverse": False,
                              "max_leverage": 100, "funding_rate": D("0.0001"), "funding_interval": 8 * HOUR_MS},
    ("ETH", "USDT", "swap"): {"tick": D("0.01"), "lot": D("1"), "min": D("1"), "max": D("1000000"),
                              "mid": D("3000"), "step": D("0.01"), "depth": D("100"),
                              "ct_val": D("0.1"), "ct_val_ccy": "ETH", "settle": "USDT", "inverse": False,
                              "max_leverage": 50, "funding_rate": D("-0.00005"), "funding_interval": 4 * HOUR_MS},
    ("BTC", "USD", "swap"): {"tick": D("0.1"), "lot": D("1"), "min": D("1"), "max": D("100000"),
                             "mid": D("50000"), "step": D("0.1"), "depth": D("100"),
                             "ct_val": D("100"), "ct_val_ccy": "USD", "settle": "BTC", "inverse": True,
                             "max_leverage": 125, "funding_rate": D("0.0002"), "funding_interval": 8 * HOUR_MS},
}
DEFAULT_LEVERAGE = 10
SPOT_DEPTH = D("0.5")          # spot book: level i holds SPOT_DEPTH * (i + 1)
START_BALANCES = {"USDT": D("100000"), "BTC": D("1"), "ETH": D("10")}
OPEN, PARTIAL, FILLED, CANCELED = "open", "partial", "filled", "canceled"
LONG, SHORT = "long", "short"
EIGHT_PLACES = D("0.00000001")


class Refused(Exception):
    """The engine refuses an order; `reason` is one of the keys every fake maps to its own code."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def fmt(number):
    """Decimal -> the plain text exchanges send: 0.00001, 50000, 1.5."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text



def _multiple(number, step):
    """True when number is a whole multiple of step; absurd sizes (1e400) are simply not."""
    try:
        return not number % step
    except ArithmeticError:
        return False


class Engine:
    def __init__(self, now_ms=lambda: int(time.time() * 1000), first_id=600000000000000001):
        self.now_ms = now_ms
        self.markets = dict(SPOT_MARKETS)
        self.swaps = {pair: dict(spec) for pair, spec in SWAP_MARKETS.items()}
        self.balances = {ccy: [amount, D(0)] for ccy, amount in START_BALANCES.items()}  # [free, frozen]
        self.orders = {}
        self.positions = {}                  # (swap pair, LONG/SHORT) -> position dict
        self.leverage = {}                   # swap pair -> leverage set by the trader
        self.hedge_mode = False
        self._ids = itertools.count(first_id)          # order ids: numbers in creation order
        self.watchers = []                   # functions(pair, side, price, amount) told of every fill (streams)

    def spec(self, pair):
        """The spec of a spot market or a swap, or None."""
        return self.markets.get(pair) or self.swaps.get(pair)

    # ------------------------------------------------------------------ market data
    def book(self, pair, levels=5):
        """asks ascending from mid+step, bids descending from mid; level i holds depth*(i+1)."""
        spec = self.spec(pair)
        depth = spec.get("depth", SPOT_DEPTH)
        asks = [(spec["mid"] + spec["step"] * (i + 1), depth * (i + 1)) for i in range(levels)]
        bids = [(spec["mid"] - spec["step"] * i, depth * (i + 1)) for i in range(levels)]
        return asks, bids

    def candle(self, pair, ts, step_ms):
        """A deterministic OHLCV row for the candle opening at ts."""
        o = D(100) + D(ts // step_ms % 97)
        return ts, o, o + 2, o - 1, o + 1, D("10.5")

    def funding(self, pair):
        """{rate, time: the next settlement (ms), interval (ms)} of a swap."""
        spec = self.swaps[pair]
        interval = spec["funding_interval"]
        return {"rate": spec["funding_rate"], "time": (self.now_ms() // interval + 1) * interval,
                "interval": interval}

    # ------------------------------------------------------------------ orders
    def place(self, pair, side, kind, amount, price=None, client_id="", quote_amount=False,
              position_side=None, reduce_only=False, margin_mode="cross", hold=False):
        """Validate, freeze funds, match. `amount` is quote currency when quote_amount is set.
        `hold` keeps a spot order away from the book (funds frozen) until release_held(): a
        stock order placed while the market is closed.

        Swaps (pair in self.swaps) take amounts in contracts and the position arguments; see the
        swap rules at the top of this file."""
        spec = self.spec(pair)
        if spec is None:
            raise Refused("unknown_symbol")
        if client_id and any(o["client_id"] == client_id and o["status"] in (OPEN, PARTIAL)
                             for o in self.orders.values()):
            raise Refused("duplicate_client_id")
        if not quote_amount and not _multiple(amount, spec["lot"]):
            raise Refused("bad_amount", "amount is not a multiple of the lot size")
        if price is not None and (price <= 0 or not _multiple(price, spec["tick"])):
            raise Refused("bad_price", "price is not a multiple of the tick size")
        if not quote_amount and amount < spec["min"]:
            raise Refused("below_min")
        if pair in self.swaps:
            return self._place_swap(pair, side, kind, amount, price, client_id, position_side,
                                    reduce_only, margin_mode)
        base, quote = pair
        pay = quote if side == "buy" else base
        if side == "sell" or quote_amount:
            need = amount
        else:
            need = amount * (price if price is not None else self.book(pair)[0][-1][0])
        if self.balances.setdefault(pay, [D(0), D(0)])[0] < need:
            raise Refused("insufficient", pay)
        order = self._new_order(pair, side, kind, amount, price, client_id, need, pay, quote_amount=quote_amount,
                                held=hold)
        if not hold:
            self._match(order)
        return order

    def release_held(self):
        """The held orders meet the book now (the market opened), oldest first."""
        for order in sorted(self.orders.values(), key=lambda o: int(o["id"])):
            if order.get("held") and order["status"] == OPEN:
                order["held"] = False
                self._match(order)

    def _new_order(self, pair, side, kind, amount, price, client_id, frozen, pay, **extra):
        now = self.now_ms()
        order = {"id": str(next(self._ids)), "client_id": client_id, "pair": pair, "side": side,
                 "type": kind, "price": price, "amount": amount, "quote_amount": False,
                 "filled": D(0), "cost": D(0), "status": OPEN, "created": now, "updated": now,
                 "frozen": frozen, "pay": pay, **extra}
        self.balances.setdefault(pay, [D(0), D(0)])
        self.balances[pay][0] -= frozen
        self.balances[pay][1] += frozen
        self.orders[order["id"]] = order
        return order

    def _fills(self, pair, side, limit, amount, quote_amount=False):
        """[(price, size)] the static book gives an order, and what is left unfilled."""
        asks, bids = self.book(pair)
        remaining, fills = amount, []
        for px, size in (asks if side == "buy" else bids):
            if remaining <= 0 or (limit is not None and (px > limit if side == "buy" else px < limit)):
                break
            take = min(size, remaining / px) if quote_amount else min(size, remaining)
            take = take.quantize(EIGHT_PLACES)
            if take <= 0:
                break
            fills.append((px, take))
            remaining -= take * px if quote_amount else take
        return fills, remaining

    def _match(self, order):
        fills, remaining = self._fills(order["pair"], order["side"], order["price"], order["amount"],
                                       order["quote_amount"])
        for px, take in fills:
            order["filled"] += take
            order["cost"] += take * px
            self._traded(order["pair"], order["side"], px, take)
        if order["filled"]:
            self._settle(order)
        self._after_match(order, remaining)

    def _traded(self, pair, side, price, amount):
        for watcher in self.watchers:
            watcher(pair, side, price, amount)

    def _after_match(self, order, remaining):
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
        """Whatever is still frozen goes back to free; a closing order's reserve is released."""
        pay = self.balances[order["pay"]]
        pay[0] += order["frozen"]
        pay[1] -= order["frozen"]
        order["frozen"] = D(0)
        order["reserved"] = D(0)
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
        """The order with this id, else the NEWEST with this client id: a client id is unique only
        among open orders, so finished orders may share one, and exchanges answer the latest."""
        if order_id in self.orders:
            return self.orders[order_id]
        sharing = [o for o in self.orders.values() if client_id and o["client_id"] == client_id]
        return sharing[-1] if sharing else None

    def listing(self, statuses, pair=None, since=None):
        """Orders in those statuses, newest first, as exchanges list them."""
        found = [o for o in self.orders.values() if o["status"] in statuses
                 and (pair is None or o["pair"] == pair) and (since is None or o["created"] >= since)]
        return sorted(found, key=lambda o: int(o["id"]), reverse=True)

    @staticmethod
    def avg_price(order):
        return (order["cost"] / order["filled"]).quantize(EIGHT_PLACES) if order["filled"] else None

    # ------------------------------------------------------------------ swaps: settings
    def leverage_of(self, pair):
        return self.leverage.get(pair, min(DEFAULT_LEVERAGE, self.swaps[pair]["max_leverage"]))

    def set_leverage(self, pair, level):
        if pair not in self.swaps:
            raise Refused("unknown_symbol")
        if level < 1 or level != int(level):
            raise Refused("bad_leverage")
        if level > self.swaps[pair]["max_leverage"]:
            raise Refused("leverage_too_high")
        self.leverage[pair] = int(level)
        return int(level)

    def set_hedge_mode(self, hedge):
        """Switch between net mode and hedge (long/short) mode, as exchanges allow: only flat."""
        busy = self.positions or any(o["pair"] in self.swaps and o["status"] in (OPEN, PARTIAL)
                                     for o in self.orders.values())
        if busy and bool(hedge) != self.hedge_mode:
            raise Refused("position_mode_busy")
        self.hedge_mode = bool(hedge)

    # ------------------------------------------------------------------ swaps: orders
    def _place_swap(self, pair, side, kind, amount, price, client_id, position_side, reduce_only, margin_mode):
        close_side, close_amount, open_side = self._swap_intent(pair, side, amount, position_side, reduce_only)
        fills, remaining = self._fills(pair, side, price, amount)
        to_close, close_fills, open_fills = close_amount, [], []
        for px, take in fills:
            part = min(take, to_close)
            to_close -= part
            close_fills += [(px, part)] if part else []
            open_fills += [(px, take - part)] if take - part else []
        resting = remaining if kind == "limit" else D(0)
        rest_close = min(resting, to_close)
        leverage = self.leverage_of(pair)
        need = sum(self.margin(pair, px, size, leverage) for px, size in open_fills)
        if resting - rest_close:
            need += self.margin(pair, price, resting - rest_close, leverage)
        settle = self.swaps[pair]["settle"]
        if self.balances.setdefault(settle, [D(0), D(0)])[0] < need:
            raise Refused("insufficient_margin", settle)
        order = self._new_order(pair, side, kind, amount, price, client_id, need, settle,
                                position_side=position_side or "net", reduce_only=bool(reduce_only),
                                margin_mode=margin_mode, leverage=leverage, close_side=close_side,
                                open_side=open_side, reserved=rest_close)
        for px, size in close_fills:
            self._reduce(pair, close_side, px, size)
        for px, size in open_fills:
            margin = self.margin(pair, px, size, leverage)
            order["frozen"] -= margin
            self._increase(pair, open_side, px, size, margin, leverage, margin_mode)
        for px, size in fills:
            order["filled"] += size
            order["cost"] += size * px
            self._traded(pair, side, px, size)
        self._after_match(order, remaining)
        return order

    def _swap_intent(self, pair, side, amount, position_side, reduce_only):
        """(side of the position it reduces, contracts it reduces, side it opens or None)."""
        if self.hedge_mode:
            if position_side not in (LONG, SHORT):
                raise Refused("position_side_required")
            if (side == "sell") != (position_side == LONG):     # buy+long / sell+short open
                return None, D(0), position_side
            self._check_close(pair, position_side, amount)
            return position_side, amount, None
        opens, reduces = (LONG, SHORT) if side == "buy" else (SHORT, LONG)
        if reduce_only:
            self._check_close(pair, reduces, amount)
            return reduces, amount, None
        return reduces, min(amount, self.closable(pair, reduces)), opens

    def _check_close(self, pair, side, amount):
        closable = self.closable(pair, side)
        if closable <= 0:
            raise Refused("no_position")
        if amount > closable:
            raise Refused("close_exceeds_position", fmt(closable))

    def closable(self, pair, side):
        """Contracts of a position not yet reserved by resting closing orders."""
        position = self.positions.get((pair, side))
        if position is None:
            return D(0)
        return position["size"] - self.reserved(pair, side)

    def reserved(self, pair, side):
        return sum((o["reserved"] for o in self.orders.values() if o["pair"] == pair
                    and o.get("close_side") == side and o["status"] in (OPEN, PARTIAL)), D(0))

    # ------------------------------------------------------------------ swaps: positions
    def margin(self, pair, price, contracts, leverage):
        return (self.notional(pair, price, contracts) / leverage).quantize(EIGHT_PLACES)

    def notional(self, pair, price, contracts):
        """In the settle currency: USDT for linear swaps, the coin for inverse ones."""
        spec = self.swaps[pair]
        value = contracts * spec["ct_val"]
        return value / price if spec["inverse"] else value * price

    def pnl(self, pair, side, entry, exit_price, contracts):
        spec = self.swaps[pair]
        value = contracts * spec["ct_val"]
        gain = value * (1 / entry - 1 / exit_price) if spec["inverse"] else value * (exit_price - entry)
        return (gain if side == LONG else -gain).quantize(EIGHT_PLACES)

    def _increase(self, pair, side, px, size, margin, leverage, margin_mode):
        """An opening fill: the margin, frozen by the order, now belongs to the position."""
        now = self.now_ms()
        position = self.positions.setdefault((pair, side), {
            "pair": pair, "side": side, "size": D(0), "avg": px, "margin": D(0), "leverage": leverage,
            "margin_mode": margin_mode, "created": now, "updated": now, "realized": D(0)})
        total = position["size"] + size
        if self.swaps[pair]["inverse"]:     # the average of an inverse contract is harmonic
            position["avg"] = total / (position["size"] / position["avg"] + size / px)
        else:
            position["avg"] = (position["size"] * position["avg"] + size * px) / total
        position["avg"] = position["avg"].quantize(EIGHT_PLACES)
        position["size"], position["updated"] = total, now
        position["margin"] += margin
        position["leverage"] = leverage

    def _reduce(self, pair, side, px, size):
        """A closing fill: release the margin's share with the profit or loss."""
        position = self.positions[(pair, side)]
        pnl = self.pnl(pair, side, position["avg"], px, size)
        release = position["margin"] if size == position["size"] else \
            (position["margin"] * size / position["size"]).quantize(EIGHT_PLACES)
        balance = self.balances[self.swaps[pair]["settle"]]
        balance[1] -= release
        balance[0] += release + pnl
        position["margin"] -= release
        position["size"] -= size
        position["realized"] += pnl
        position["updated"] = self.now_ms()
        if position["size"] <= 0:
            del self.positions[(pair, side)]

    def unrealised(self, position):
        """Profit at the mark price (the book's mid)."""
        mark = self.swaps[position["pair"]]["mid"]
        return self.pnl(position["pair"], position["side"], position["avg"], mark, position["size"])

    def open_positions(self, pair=None):
        """Open positions, newest first, as exchanges list them."""
        found = [p for p in self.positions.values() if pair is None or p["pair"] == pair]
        return sorted(found, key=lambda p: p["created"], reverse=True)

    def equity(self, currency):
        """(equity, unrealised profit) of a settle currency: balance plus its positions' profit."""
        free, frozen = self.balances.get(currency, (D(0), D(0)))
        upl = sum((self.unrealised(p) for p in self.positions.values()
                   if self.swaps[p["pair"]]["settle"] == currency), D(0))
        return free + frozen + upl, upl
