"""The risk guard: limits on the orders robots send, per exchange and API key, and a kill switch.

A bug in a robot can place a thousand orders, or one order a hundred times too large, in
seconds. Every order of every robot on a docker passes through this plugin, so the guard sits
here, between dispatch and the exchange module's handler (README "Risk guard"). It guards `trade`
(and `margin_level`, for max_leverage) only: reads and cancels are never blocked. A refused order
never reaches the exchange; its error names the rule, the value and the limit:

    risk guard: order value 12,000 USDT over max_order_value 5,000 (OKX, risk.json)

The rules are JSON (--risk FILE, re-read when the file changes; or FMZ's Risk parameter):

    {"OKX": {"max_order_value": 5000, "symbols": ["BTC_USDT", "BTC_USDT.swap"]},
     "OKX:9f3a": {"max_order_value": 100}}

An entry is an exchange path, optionally narrowed to one access key by its last 4 characters
(`OKX:9f3a`, so the file holds no secret). A key's entry overrides the same rules of its
exchange's entry and keeps the others. Names beginning with "_" are notes, ignored. RULES below
says what each rule counts, in the order they are checked; a reducing close (closebuy,
closesell) always passes symbols, max_order_value and max_position, so the guard never traps a
trader in a position.

What a rule needs from the exchange it asks through the same `api`, with the exchange module's own
handlers (ticker: a market order's best price; orders; positions) and _kit.market_spec (a swap's
contract value), and only when that rule is set. A check that cannot be made refuses the order.

The kill switch: while the halt file exists, every new order on every exchange is refused.

Thread-safe: robots on many threads share one guard. Orders let through and not yet answered
count as open orders (and toward the position) of their symbol, so robots racing each other
cannot pass a limit together. Nothing here names an exchange.
"""
import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from decimal import Decimal, localcontext

from exchanges._kit import PluginError, market_spec, parse_symbol

# Each rule, in the order checked -> what it limits (README "Risk guard" repeats this).
RULES = {
    "symbols": "the symbols that may be traded, e.g. [\"BTC_USDT\", \"USDT.swap\"] (a range: every USDT swap)",
    "max_order_amount": "an order's amount (base currency; a swap's in its amount unit; a spot market "
                        "buy's quote amount counts at the best ask)",
    "max_order_value": "an order's value in the quote currency: price x amount (a market order at the best "
                       "price; a swap: amount x contract value x price)",
    "max_orders_per_minute": "orders that reached the exchange in the last 60 s, this one included",
    "max_open_orders": "the exchange's open orders on the symbol, this one included",
    "max_position": "a swap position after the order, on the side it opens (amount unit)",
    "max_leverage": "the leverage margin_level may set",
}
WHOLE_RULES = ("max_orders_per_minute", "max_open_orders", "max_leverage")    # whole numbers
CLOSE_TYPES = ("closebuy", "closesell")          # reducing closes (the core parsed every other form into these)
HALT_FILE = "fmz-plugin.halt"                    # the kill switch's default name, beside the risk file
INLINE_SOURCE = "Risk parameter"                 # how messages name rules given as text
KEY_SUFFIX = 4                                   # characters of an access key that narrow an entry
MINUTE = 60.0
SYMBOLS_SHOWN = 6                                # allowed symbols a refusal lists
FLIGHT_KEYS_KEPT = 1024                          # (exchange, key, symbol) lists kept before a sweep
REFUSALS_LOGGED_EVERY = 60.0                     # seconds: a refusal per exchange and rule is logged once per
_UNGUARDED = contextlib.nullcontext()            # the context of a call no rule counts


def default_halt_file(risk_path=None):
    """The kill switch's file: beside the risk file, else in the current directory."""
    folder = os.path.dirname(os.path.abspath(risk_path)) if risk_path else os.getcwd()
    return os.path.join(folder, HALT_FILE)


def figure(number):
    """A number as a trader reads it in a refusal: 12000 -> 12,000; 0.5000 -> 0.5."""
    with localcontext() as context:
        context.prec = 100
        number = Decimal(number)
        if number.as_tuple().exponent < -8:
            number = round(number, 8)
        return format(number.normalize(), ",f")


# -- The rules: parsed once per version of the file -------------------------------------------------

class Rule:
    """One rule's limit, and the entry it comes from (whose orders max_orders_per_minute counts)."""

    __slots__ = ("limit", "scope")

    def __init__(self, limit, scope):
        self.limit, self.scope = limit, scope


def parse_rules(text, source, names):
    """The rules of a risk file's text: {(exchange NAME, key suffix or ""): {rule: Rule}}, the
    entries of a key already merged over their exchange's. `names` maps each served exchange's
    path, in lower case, to its NAME. Raises PluginError saying what is wrong."""
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant)
    except ValueError as error:
        raise PluginError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise PluginError(f"{source} must hold a JSON object of exchange paths, e.g. {{\"OKX\": {{...}}}}")
    entries = {}
    for name, rules in data.items():
        if name.startswith("_"):
            continue
        where = _entry_of(name, source, names)
        if where in entries:
            raise PluginError(f"{source}: {name} names an entry already given")
        entries[where] = _entry_rules(rules, name, source, _scope_label(*where))
    merged = {}
    for (exchange, suffix), rules in entries.items():
        merged[exchange, suffix] = {**entries.get((exchange, ""), {}), **rules} if suffix else rules
    return merged


def _no_duplicates(pairs):
    names = [name for name, _ in pairs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{twice[0]!r} is given twice")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def _entry_of(name, source, names):
    """`OKX` -> ("OKX", ""); `okx:9f3a` -> ("OKX", "9f3a")."""
    path, colon, suffix = name.partition(":")
    exchange = names.get(path.strip().lower())
    if exchange is None:
        raise PluginError(f"{source}: {name[:40]!r} is no exchange this plugin serves ({', '.join(names.values())}); "
                          f"an entry is an exchange path, optionally with :LAST4 of an access key")
    if colon and (len(suffix) != KEY_SUFFIX or not suffix.isprintable() or " " in suffix):
        raise PluginError(f"{source}: {name[:40]!r}: after the colon come the last {KEY_SUFFIX} characters of "
                          f"an access key")
    return exchange, suffix


def _scope_label(exchange, suffix):
    return f"{exchange} key ...{suffix}" if suffix else exchange


def _entry_rules(rules, name, source, scope):
    if not isinstance(rules, dict):
        raise PluginError(f"{source}: {name} must be an object of rules ({', '.join(RULES)})")
    parsed = {}
    for rule, value in rules.items():
        if rule.startswith("_"):
            continue
        if rule not in RULES:
            raise PluginError(f"{source}: {name}.{rule[:40]} is no rule; rules are {', '.join(RULES)}")
        parsed[rule] = Rule(_rule_value(rule, value, f"{source}: {name}.{rule}"), scope)
    return parsed


def _rule_value(rule, value, where):
    if rule == "symbols":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise PluginError(f"{where} must be a list of symbols such as [\"BTC_USDT\", \"BTC_USDT.swap\"]")
        try:
            return tuple(parse_symbol(item, allow_range=True) for item in value)
        except PluginError as error:
            raise PluginError(f"{where}: {error}") from None
    number = _number(value)
    whole = rule in WHOLE_RULES
    least = 1 if rule == "max_leverage" else 0
    if number is None or number < least or (whole and number != number.to_integral_value()):
        kind = "a whole number" if whole else "a number"
        shown = str(value) if isinstance(value, Decimal) else json.dumps(value)
        raise PluginError(f"{where} must be {kind} >= {least}, got {shown[:40]}")
    return int(number) if whole else number


def _number(value):
    """A JSON number (read as Decimal) or a numeric string, as a finite Decimal; else None."""
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            return None
    return value if isinstance(value, Decimal) and value.is_finite() else None


# -- The guard ---------------------------------------------------------------------------------------

class RiskGuard:
    """The rules of one risk file (or text) and the kill switch, shared by every robot.

    `names` maps each served exchange's path, in lower case, to its NAME. Build it with
    RiskGuard(names, path=FILE) or RiskGuard(names, text=JSON); both raise PluginError for rules
    that are not valid (the plugin then refuses to start). Later versions of the file are read
    when it changes; one that is not valid leaves the rules as they were, and says why (log,
    `report()`).
    """

    def __init__(self, names, path=None, text=None, halt_file=None, log=None, clock=time.monotonic):
        self.names, self.path = names, path
        self.source = os.path.basename(path) if path else INLINE_SOURCE
        self.halt_file = halt_file or default_halt_file(path)
        self.log = log or logging.getLogger("fmz_plugin")
        self.clock = clock
        self.lock = threading.Lock()
        self.problem = ""             # why the file's latest version was not taken, or ""
        self.stamp = None             # (mtime, size, inode) of the file version last read
        self.recent = {}              # rule scope -> deque of the Tickets of the last minute's orders
        self.flights = {}             # (exchange NAME, access key, symbol) -> recent Tickets on that symbol
        self.refusals = {}            # (exchange NAME, rule) -> [count, last refusal]
        self.logged = {}              # (exchange NAME, rule) -> when a refusal was last logged
        if path is None:
            self.rules = parse_rules(text or "{}", self.source, names)
        else:
            self.stamp = _stamp(path)
            self.rules = parse_rules(_read(path, self.source), self.source, names)

    # ------------------------------------------------------------------ what dispatch calls
    def admit(self, api, method, kwargs):
        """Before `method`'s handler runs: raises PluginError when the guard refuses, else returns
        a context manager to run the handler in (it counts what reached the exchange)."""
        if method == "trade":
            return self._admit_order(api, kwargs)
        if method == "margin_level":
            self._check_leverage(api, kwargs["level"])
        return _UNGUARDED

    def halted(self):
        return os.path.exists(self.halt_file)

    def report(self):
        """What the status page shows: halted or not, the rules' source and state, refusals per rule."""
        with self.lock:
            refusals = [{"exchange": exchange, "rule": rule, "count": count, "last": last}
                        for (exchange, rule), (count, last) in sorted(self.refusals.items())]
        return {"halted": self.halted(), "halt_file": self.halt_file, "rules": self.source,
                "rules_file": self.path, "entries": [_scope_label(*where) for where in sorted(self.rules)],
                "problem": self.problem, "refusals": refusals}

    # ------------------------------------------------------------------ the rules of a call
    def _rules_for(self, api):
        """The rules for this exchange and key: its key's entry, else its exchange's, else none."""
        self._reread_if_changed()
        rules = self.rules
        suffix = api.access_key[-KEY_SUFFIX:] if len(api.access_key) >= KEY_SUFFIX else None
        return rules.get((api.name, suffix)) or rules.get((api.name, "")) or {}

    def _reread_if_changed(self):
        if self.path is None:
            return
        stamp = _stamp(self.path)
        if stamp == self.stamp:
            return
        with self.lock:
            if stamp == self.stamp:
                return
            self.stamp = stamp
            try:
                self.rules = parse_rules(_read(self.path, self.source), self.source, self.names)
            except PluginError as error:
                self.problem = f"{self.source} is invalid, the previous rules stay: {error}"
                self.log.error("risk guard: %s", self.problem)
                return
            self.problem = ""
        self.log.warning("risk guard: read the changed rules of %s (%s)", self.path,
                         ", ".join(_scope_label(*where) for where in sorted(self.rules)) or "no entries")

    # ------------------------------------------------------------------ orders
    def _admit_order(self, api, kwargs):
        if self.halted():
            self._refuse(api, "halt", f"trading halted by {self.halt_file} (remove it, or run "
                                      f"`fmz_plugin.py resume`, to trade again)")
        rules = self._rules_for(api)
        if not rules:
            return _UNGUARDED
        order = _Order(kwargs)
        if not order.closes:
            self._check_symbol(api, rules, order)
        self._check_amount(api, rules, order)
        if not order.closes:
            self._check_value(api, rules, order)
        open_now = self._exchange_count(api, rules, order, "max_open_orders", self._open_orders)
        position_now = (None if order.closes or not order.symbol.is_swap
                        else self._exchange_count(api, rules, order, "max_position", self._position))
        return self._take_turn(api, rules, order, open_now, position_now)

    def _check_symbol(self, api, rules, order):
        rule = rules.get("symbols")
        if rule is not None and not any(allowed.covers(order.symbol) for allowed in rule.limit):
            shown = ", ".join(map(str, rule.limit[:SYMBOLS_SHOWN])) + (", ..." if len(rule.limit) > SYMBOLS_SHOWN else "")
            self._refuse(api, "symbols", f"{order.symbol} is not in symbols [{shown}] ({rule.scope}, {self.source})")

    def _check_amount(self, api, rules, order):
        rule = rules.get("max_order_amount")
        if rule is None:
            return
        amount, unit = order.amount, f" {order.symbol.base}" if not order.symbol.is_swap else ""
        if order.quote_amount:
            price = self._best_price(api, order, "max_order_amount")
            amount, unit = amount / price, f" {order.symbol.base} (at the best ask {figure(price)})"
        if amount > rule.limit:
            self._refuse(api, "max_order_amount", f"order amount {figure(amount)}{unit} over max_order_amount "
                                                  f"{figure(rule.limit)} ({rule.scope}, {self.source})")

    def _check_value(self, api, rules, order):
        rule = rules.get("max_order_value")
        if rule is None:
            return
        value = self._value(api, order)
        if value > rule.limit:
            self._refuse(api, "max_order_value", f"order value {figure(value)} {order.symbol.quote} over "
                                                 f"max_order_value {figure(rule.limit)} ({rule.scope}, {self.source})")

    def _value(self, api, order):
        """In the quote currency: price x amount; a spot market buy's amount is already quote. A
        swap's amount counts contracts of ct_val ct_val_ccy each: of the base (linear, also a coin
        amount with ct_val 1) times the price, or of the quote itself (inverse: 100 USD each)."""
        if order.quote_amount:
            return order.amount
        if not order.symbol.is_swap:
            return order.amount * self._price(api, order, "max_order_value")
        try:
            spec = market_spec(api, order.symbol)
        except PluginError as error:
            self._cannot_check(api, "max_order_value", error)
        ct_val = spec["ct_val"] or Decimal(1)
        if spec["ct_val_ccy"] == order.symbol.quote:
            return order.amount * ct_val
        return order.amount * ct_val * self._price(api, order, "max_order_value")

    def _price(self, api, order, rule):
        return order.price if order.price is not None else self._best_price(api, order, rule)

    def _best_price(self, api, order, rule):
        """The price a market order meets: the best ask for a buy, the best bid for a sell."""
        try:
            data, _ = api.exchange.METHODS["ticker"](api, symbol=order.symbol)
            price = Decimal(str(data["sell" if order.side == "buy" else "buy"]))
        except (PluginError, KeyError, ArithmeticError) as error:
            self._cannot_check(api, rule, error)
        if not price > 0:
            self._cannot_check(api, rule, f"no best price for {order.symbol}")
        return price

    def _exchange_count(self, api, rules, order, rule, read):
        """What the exchange says now (open orders, a position) when `rule` is set, else None."""
        if rule not in rules:
            return None
        started = self.clock()
        try:
            return started, read(api, order)
        except (PluginError, KeyError, ArithmeticError, TypeError) as error:
            self._cannot_check(api, rule, error)

    @staticmethod
    def _open_orders(api, order):
        data, _ = api.exchange.METHODS["orders"](api, symbol=order.symbol)
        return Decimal(len(data))

    @staticmethod
    def _position(api, order):
        """The position's amount on the side the order opens (type 0 long, 1 short)."""
        data, _ = api.exchange.METHODS["positions"](api, symbol=order.symbol)
        held = 0 if order.side == "buy" else 1
        return sum((Decimal(str(row["amount"])) for row in data
                    if row["symbol"] == str(order.symbol) and row["type"] == held), Decimal(0))

    def _take_turn(self, api, rules, order, open_now, position_now):
        """The rules that count orders, checked and counted under the lock so racing robots
        cannot pass a limit together: a Ticket for the handler call."""
        per_minute = rules.get("max_orders_per_minute")
        tracked = open_now is not None or position_now is not None
        with self.lock:
            now = self.clock()
            flights = self._flights((api.name, api.access_key, str(order.symbol)), now) if tracked else []
            if open_now is not None:
                started, count = open_now
                count += 1 + sum(1 for ticket in flights if ticket.unseen_by(started))
                self._over(api, rules, "max_open_orders", count, f"{figure(count)} open orders on {order.symbol}")
            if position_now is not None:
                started, held = position_now
                after = held + order.amount + sum((ticket.order.amount for ticket in flights
                                                   if ticket.unseen_by(started) and ticket.order.opens_as(order)),
                                                  Decimal(0))
                self._over(api, rules, "max_position", after,
                           f"position on {order.symbol} after the order {figure(after)}")
            recent = None
            if per_minute is not None:
                recent = self._recent(per_minute.scope, now)
                self._over(api, rules, "max_orders_per_minute", len(recent) + 1,
                           f"{len(recent) + 1} orders within a minute")
            ticket = Ticket(self, order, now, recent)
            if recent is not None:
                recent.append(ticket)
            if tracked:
                flights.append(ticket)
        return ticket

    def _over(self, api, rules, rule, value, what):
        """Refuse (under the lock) when `value` is over the rule's limit; `what` says the value."""
        limit = rules[rule]
        if value > limit.limit:
            self._refuse(api, rule, f"{what} over {rule} {figure(limit.limit)} ({limit.scope}, {self.source})",
                         locked=True)

    def _flights(self, key, now):
        """The Tickets of this exchange, key and symbol that an exchange read begun a moment ago
        may not show yet: those in flight and those answered in the last minute."""
        if len(self.flights) > FLIGHT_KEYS_KEPT:
            fresh = {k: _fresh(tickets, now) for k, tickets in self.flights.items()}
            self.flights = {k: tickets for k, tickets in fresh.items() if tickets}
        flights = self.flights[key] = _fresh(self.flights.get(key, ()), now)
        return flights

    def _recent(self, scope, now):
        recent = self.recent.setdefault(scope, deque())
        while recent and recent[0].at <= now - MINUTE:
            recent.popleft()
        return recent

    def _landed(self, ticket, reached):
        with self.lock:
            ticket.landed = self.clock()
            if not reached and ticket.recent is not None:
                try:
                    ticket.recent.remove(ticket)     # never reached the exchange: not one of its orders
                except ValueError:
                    pass

    # ------------------------------------------------------------------ leverage
    def _check_leverage(self, api, level):
        rule = self._rules_for(api).get("max_leverage")
        if rule is not None and level > rule.limit:
            self._refuse(api, "max_leverage", f"leverage {level} over max_leverage {rule.limit} "
                                              f"({rule.scope}, {self.source})")

    # ------------------------------------------------------------------ refusals
    def _cannot_check(self, api, rule, error):
        self._refuse(api, rule, f"cannot check {rule} ({error}), so the order was not sent")

    def _refuse(self, api, rule, text, locked=False):
        """Count the refusal (status page), log it (once a minute per exchange and rule), raise it."""
        message = "risk guard: " + text
        if not locked:
            with self.lock:
                log_it = self._count(api.name, rule, message)
        else:
            log_it = self._count(api.name, rule, message)
        if log_it:
            self.log.warning("%s (refusals of %s %s are logged once a minute)", message, api.name, rule)
        raise PluginError(message)

    def _count(self, exchange, rule, message):
        entry = self.refusals.setdefault((exchange, rule), [0, ""])
        entry[0] += 1
        entry[1] = message
        now = self.clock()
        if now - self.logged.get((exchange, rule), -REFUSALS_LOGGED_EVERY) < REFUSALS_LOGGED_EVERY:
            return False
        self.logged[exchange, rule] = now
        return True


def _fresh(tickets, now):
    return [ticket for ticket in tickets if ticket.landed is None or ticket.landed > now - MINUTE]


class _Order:
    """What the rules read of one `trade` call."""

    __slots__ = ("symbol", "order_type", "side", "price", "amount", "closes", "quote_amount")

    def __init__(self, kwargs):
        self.symbol, self.order_type = kwargs["symbol"], kwargs["order_type"]
        self.price, self.amount = kwargs["price"], kwargs["amount"]
        self.closes = self.order_type in CLOSE_TYPES
        self.side = {"closebuy": "sell", "closesell": "buy"}.get(self.order_type, self.order_type)
        self.quote_amount = self.price is None and self.side == "buy" and not self.symbol.is_swap

    def opens_as(self, other):
        """True when this order opens the position side `other` opens."""
        return not self.closes and self.side == other.side


class Ticket:
    """An order the guard let through: the handler runs inside `with ticket:`, which notes when
    it was answered and whether it reached the exchange (an order refused before it was sent,
    below the minimum or held back by the throttle, is no order of the last minute)."""

    __slots__ = ("guard", "order", "at", "recent", "landed")

    def __init__(self, guard, order, at, recent):
        self.guard, self.order, self.at, self.recent = guard, order, at, recent
        self.landed = None

    def unseen_by(self, started):
        """True when an exchange read begun at `started` may not show this order yet."""
        return self.landed is None or self.landed > started

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        reached = error is None or not isinstance(error, PluginError) or error.code is not None or error.ambiguous
        self.guard._landed(self, reached)
        return False


def _stamp(path):
    """What changes when the file does: (mtime, size, inode), or the error of reading it."""
    try:
        st = os.stat(path)
    except OSError as error:
        return ("unreadable", error.strerror)
    return st.st_mtime_ns, st.st_size, st.st_ino


def _read(path, source):
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise PluginError(f"{source} cannot be read: {getattr(error, 'strerror', None) or error}") from None


# -- The kill switch from a terminal: halt / resume --------------------------------------------------

def halt(halt_file, reason=""):
    """Create the halt file (a line saying when and why); the message to print."""
    if os.path.exists(halt_file):
        return f"already halted: {halt_file} exists"
    with open(halt_file, "w", encoding="utf-8") as file:
        file.write(f"halted at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}{': ' + reason if reason else ''}\n")
    return f"trading halted: {halt_file} exists, every new order on every exchange is refused until `resume`"


def resume(halt_file):
    """Remove the halt file; the message to print."""
    try:
        os.remove(halt_file)
    except FileNotFoundError:
        return f"not halted: {halt_file} does not exist"
    return f"trading resumed: {halt_file} removed"
