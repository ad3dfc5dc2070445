"""Paper trading: a simulated account on an exchange's live prices, with no API key at all.

On FMZ the exchange is configured as usual (`http://127.0.0.1:6666/OKX`) with Access Key `paper`
and Secret Key the account's starting balances, `USDT=10000,BTC=0.1` (empty: DEFAULT_BALANCES).
The Secret Key string names the account: robots that type the same string trade one account.
It is shown nowhere (status page, log, answers, `paper list`) but as a short digest, `#1f0c9a2b`
(shown_name): a real SECRET,PASSPHRASE typed there by mistake never appears. It is at most
LABEL_MAX characters, and each balance at most BALANCE_MAX: the database and the page stay small.
`LABEL:USDT=10000` gives a second account with the same balances; a `hedge` item
(`USDT=10000,hedge`) holds swap longs and shorts apart (long/short mode) instead of netting them.

Public methods (ticker, depth, trades, records, markets, tickers, fundings) are served by the
exchange module as always. The private ones (METHODS below) run here, on state kept in SQLite;
they call the module's public handlers for the book, the recent trades and the last price, and
through PublicApi, which refuses any signed call: a paper account never sends a key anywhere.

Matching
- A market order, and a limit order that crosses, fills at once against the live book
  (BOOK_LEVELS levels of `depth`), level by level: a large order pays the slippage it would pay.
  A market order's unfilled rest is canceled; a limit order's rest rests.
- A resting order fills, at its own price, when the exchange's recent trades (`trades`) go
  through it: trades strictly below a buy's price or above a sell's, newer than the last ones
  it was matched with, fill it by their volume. This is looked at on every call that touches
  the account, for every market in which it has an open order.
- Fees: the taker rate on fills against the book, the maker rate on resting fills (FEES per
  market kind in each exchange module, or `--paper-fees MAKER,TAKER` for all). Spot fees are taken
  from what the order receives (the base of a buy, the quote of a sell); swap fees from the
  margin currency's balance.
- Orders are rounded and refused as the exchange would (`_orders.order_size`: tick, lot, minimum;
  the market's min_notional and max_qty), and refused when the balance does not cover them.
  A resting order freezes what it would spend (`frozen` in accounts) until it fills or is canceled.

Perpetual swaps (amounts in the exchange's own unit, each `ct_val` of `ct_val_ccy`)
- Linear (ct_val in the base, margined in the quote): notional = amount * ct_val * price.
  Inverse (ct_val in the quote, e.g. 100 USD, margined in the base): amount * ct_val / price.
- Cross margin: margin = notional / leverage (DEFAULT_LEVERAGE until margin_level sets it for
  the swap), frozen while an opening order rests, held by the position (counted in `frozen`),
  released with the profit or loss when the position is reduced. Net mode by default (a buy
  first reduces a short); closebuy / closesell only reduce, and never more than is held less
  what resting closes reserve. Profit in positions is at the last traded price (ticker's last).
  Not simulated: liquidation, funding payments, the exchange's leverage brackets.

Order ids are `SYMBOL,NUMBER` (`ETH_USDT,17`): like most of the served exchanges' own ids
(`ETH-USDT,123456`), a market and a number; the number is unique in the database for ever,
so an id kept across `paper reset` never names another order.

State: one SQLite file (`--paper-db`), written in one transaction (BEGIN IMMEDIATE) per order
event, in WAL mode: a restart loses nothing, several plugin processes may share the file, and
robots trading one account at once never lose an update. Network calls never happen inside a
transaction. Amounts are kept as exact decimal text.
"""
import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from decimal import Decimal

from exchanges import EXCHANGES
from exchanges._kit import IO_PREFIX, Api, PluginError, market_spec, now_ms, parse_symbol, round_down
from exchanges._orders import order_size

ACCESS_KEY = "paper"                 # the Access Key that makes an account a paper one
DEFAULT_BALANCES = "USDT=10000,USDC=10000,USD=10000,EUR=10000"   # an empty Secret Key's account
DEFAULT_LEVERAGE = 10
BOOK_LEVELS = 50                     # levels of the live book an order may walk
LOCKED_PAUSE = 0.01                  # seconds between two tries of a statement SQLite refused as locked
BUSY_SECONDS = 10.0                  # how long a transaction waits for another process's to end
MONEY = Decimal("0.00000001")        # swap margins and profits are kept to 8 decimal places
DB_NAME = "fmz_plugin_paper.db"      # the default database, beside the plugin file
ACCOUNTS_SHOWN = 100                 # paper accounts the status page counts calls of (a bound, not a rule)
LABEL_MAX = 256                      # characters of a paper account's Secret Key (700 KiB ones grew the file to 215 MB)
BALANCE_MAX = 15                     # a starting balance is under 1e15 (1e999999999 is a typo or an attack)
BALANCE_DECIMALS = 18                # ... and has no digit below 1e-18

# The rates of a kind an exchange module's FEES does not list (or of an exchange not registered).
DEFAULT_FEES = {"spot": ("0.001", "0.001"), "swap": ("0.0002", "0.0005")}

OPEN, PARTIAL, FILLED, CANCELED = "pending", "partial-filled", "filled", "canceled"   # FMZ's words
LIVE = (OPEN, PARTIAL)
LONG, SHORT = "long", "short"

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, exchange TEXT NOT NULL, name TEXT NOT NULL,
    created INTEGER NOT NULL, UNIQUE (exchange, name));
CREATE TABLE IF NOT EXISTS balances (account INTEGER NOT NULL, currency TEXT NOT NULL, free TEXT NOT NULL,
    frozen TEXT NOT NULL, PRIMARY KEY (account, currency));
CREATE TABLE IF NOT EXISTS orders (account INTEGER NOT NULL, id TEXT NOT NULL, symbol TEXT NOT NULL,
    status TEXT NOT NULL, created INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (account, id));
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (account, status, symbol);
CREATE TABLE IF NOT EXISTS positions (account INTEGER NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (account, symbol, side));
CREATE TABLE IF NOT EXISTS leverage (account INTEGER NOT NULL, symbol TEXT NOT NULL, level INTEGER NOT NULL,
    PRIMARY KEY (account, symbol));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def is_paper(access_key):
    return isinstance(access_key, str) and access_key.strip().lower() == ACCESS_KEY


def shown_name(name):
    """How a paper account is shown: "(default)", or a short digest of its Secret Key, never the
    text (it may be a real secret typed by mistake)."""
    return "#" + hashlib.sha256(name.encode()).hexdigest()[:8] if name else "(default)"


def default_path(beside):
    """DB_NAME in the folder of the file `beside` (the plugin), or the working folder."""
    folder = os.path.dirname(os.path.abspath(beside)) if beside else os.getcwd()
    return os.path.join(folder, DB_NAME)


def parse_fees(text):
    """`--paper-fees MAKER,TAKER` (fractions: 0.001 is 0.1%), or one rate for both: (maker, taker)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        rates = [Decimal(part) for part in parts]
    except ArithmeticError:
        rates = []
    if len(rates) not in (1, 2) or not all(rate.is_finite() and 0 <= rate < Decimal("0.01") for rate in rates):
        raise ValueError(f"expected MAKER,TAKER rates as fractions under 0.01 (0.001 is 0.1%), got {text!r}")
    return (rates[0], rates[-1])


class PublicApi(Api):
    """The Api of a paper account: public calls only. A signed call is refused before anything
    is signed or sent, so no key, real or not, ever leaves for the exchange."""

    def call(self, method, path, params=None, *, signed, **options):
        if signed:
            raise PluginError(f"{self.name} paper: {method} {path} needs a signed request, which a paper "
                              f"account never sends (README: Paper trading)")
        return super().call(method, path, params, signed=False, **options)

    @property
    def keys(self):
        raise PluginError(f"{self.name} paper: this call needs API keys for a signed request, which a paper "
                          f"account never has nor sends (README: Paper trading)")


class PaperExchange:
    """An exchange module as a paper account's Api sees it: the module's constants and public
    handlers, with its private methods (those of METHODS below that it serves) served by the
    account, and exchange.IO refused. The core and the risk guard call it as they call a module."""

    def __init__(self, module, account):
        self.module = module
        self.METHODS = dict(module.METHODS)
        for name, handler in METHODS.items():
            if name in module.METHODS:
                self.METHODS[name] = _served_by(account, handler)
        if IO_PREFIX in module.METHODS:
            self.METHODS[IO_PREFIX] = _no_io

    def __getattr__(self, name):
        return getattr(self.module, name)          # NAME, BASE_URL, load_markets, check, ...


def _served_by(account, handler):
    return lambda api, **params: handler(account, **params)


def _no_io(api, **params):
    raise PluginError(f"{api.name} paper: exchange.IO is not served on a paper account (it sends signed requests)")


# -- The database ----------------------------------------------------------------------------------

def _exact(number):
    """The Decimal of a number from a public answer, which carries floats (the float64 a robot
    reads): its shortest repr, the exchange's own digits."""
    return Decimal(repr(number))


def _while_locked(statement):
    """statement(), asked again while the file is locked, for at most BUSY_SECONDS. SQLite waits
    out another connection's lock by itself, but not when two connections (two processes, or two
    robots' first calls) turn a new file to WAL at the same moment: one of them is refused at
    once, "database is locked"."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(LOCKED_PAUSE)


class Ledger:
    """The SQLite file every paper account lives in. `fees` replaces FEES for every exchange
    ((maker, taker) or None); `fill_from_trades=False` lets resting orders fill only when
    placed (the test fakes' trade tape does not follow their book)."""

    def __init__(self, path, fees=None, fill_from_trades=True):
        self.path, self.fees, self.fill_from_trades = path, fees, fill_from_trades
        self.ready = False
        self.lock = threading.Lock()
        self.used = {}                     # (exchange NAME, account name) -> calls since start

    def connect(self):
        db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            with self.lock:
                if not self.ready:                        # WAL (kept in the file): readers never wait
                    _while_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
                    db.executescript(SCHEMA)
                    self.ready = True
            db.execute("PRAGMA synchronous=NORMAL")           # WAL: a commit survives the process dying
        except BaseException:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction: BEGIN IMMEDIATE takes the write lock first, so two robots (or
        two processes) changing one account run one after the other, each on fresh state."""
        try:
            db = self.connect()
        except sqlite3.Error as error:
            raise PluginError(f"paper database {self.path}: {error} (see --paper-db)") from error
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as error:
            raise PluginError(f"paper database {self.path}: {error}") from error
        finally:
            db.close()

    def api(self, module, name, **options):
        """The Api of the paper account `name` on the exchange `module` (options as for Api):
        public calls go to the exchange, the private methods to the account (PaperExchange)."""
        api = PublicApi(module, ACCESS_KEY, name, **options)
        account = Account(self, api, name)          # a Secret Key that is no account is refused here
        with self.lock:
            key = (module.NAME, name)
            if key in self.used or len(self.used) < ACCOUNTS_SHOWN:
                self.used[key] = self.used.get(key, 0) + 1
        api.exchange = PaperExchange(module, account)
        return api

    def fee_rate(self, exchange, kind, maker):
        listed = next((module.FEES for module in EXCHANGES.values() if module.NAME == exchange), {})
        rates = self.fees or listed.get(kind) or DEFAULT_FEES[kind]
        return Decimal(rates[0] if maker else rates[1])

    def accounts(self):
        """Every account in the file: [{exchange, account, created, open_orders, positions,
        balances: {currency: (free, frozen)}}]."""
        with self.transaction() as db:
            rows = db.execute("SELECT a.id, a.exchange, a.name, a.created, "
                              "(SELECT COUNT(*) FROM orders o WHERE o.account = a.id AND o.status IN (?, ?)), "
                              "(SELECT COUNT(*) FROM positions p WHERE p.account = a.id) "
                              "FROM accounts a ORDER BY a.exchange, a.name", LIVE).fetchall()
            balances = {}
            for account, currency, free, frozen in db.execute("SELECT account, currency, free, frozen FROM balances "
                                                              "ORDER BY currency"):
                balances.setdefault(account, {})[currency] = (Decimal(free), Decimal(frozen))
        return [{"exchange": r[1], "account": shown_name(r[2]), "created": r[3], "open_orders": r[4],
                 "positions": r[5],
                 "balances": balances.get(r[0], {})} for r in rows]

    def reset(self, name, exchange=None):
        """Forget the account `name`, its Secret Key or the digest `paper list` shows (on one
        exchange, or on all): its next call starts it afresh from its starting balances. Returns
        how many accounts were removed."""
        with self.transaction() as db:
            query, args = "SELECT id, name FROM accounts", []
            if exchange:
                query, args = query + " WHERE lower(exchange) = lower(?)", [exchange]
            ids = [row[0] for row in db.execute(query, args) if name in (row[1], shown_name(row[1]))]
            for table in ("balances", "orders", "positions", "leverage"):
                db.executemany(f"DELETE FROM {table} WHERE account = ?", [(i,) for i in ids])
            db.executemany("DELETE FROM accounts WHERE id = ?", [(i,) for i in ids])
        return len(ids)

    def used_accounts(self):
        with self.lock:
            return [{"exchange": exchange, "account": shown_name(name), "calls": calls}
                    for (exchange, name), calls in sorted(self.used.items())]


def starting_balances(name):
    """`LABEL:USDT=10000,BTC=0.1,hedge` -> ({"USDT": 10000, "BTC": 0.1}, hedge)."""
    if len(name) > LABEL_MAX:
        raise PluginError(f"paper account: the Secret Key is {len(name)} characters, over {LABEL_MAX}: it holds "
                          f"the starting balances, e.g. USDT=10000,BTC=0.1")
    text = name.partition(":")[2] if ":" in name else name
    balances, hedge = {}, False
    items = [part.strip() for part in (text or DEFAULT_BALANCES).split(",") if part.strip()]
    for number, item in enumerate(items, 1):
        if item.lower() == "hedge":
            hedge = True
            continue
        currency, sep, amount = item.partition("=")
        try:
            value = Decimal(amount.strip())
        except ArithmeticError:
            value = None
        if not sep or not currency.strip().isalnum() or value is None or not value.is_finite() or value < 0:
            raise PluginError(f"paper account: the Secret Key holds the starting balances as CURRENCY=AMOUNT "
                              f"separated by commas (USDT=10000,BTC=0.1); item {number} is not (not shown: it "
                              f"may be a real secret)")
        if value and not -BALANCE_DECIMALS <= value.adjusted() < BALANCE_MAX:
            raise PluginError(f"paper account: the starting balance of {currency.strip().upper()[:20]} is out of "
                              f"range (1e-{BALANCE_DECIMALS} to 1e{BALANCE_MAX})")
        balances[currency.strip().upper()] = value
    return balances, hedge


class Account:
    """One paper account on one exchange, as a handler uses it: its row, balances, orders and
    positions, read and written inside Ledger transactions."""

    def __init__(self, ledger, api, name):
        self.ledger, self.api, self.name = ledger, api, name
        self.shown = shown_name(name)            # never the Secret Key's text
        self.exchange = api.name
        self.balances_at_start, self.hedge = starting_balances(name)

    def refusal(self, message):
        return PluginError(f"{self.exchange} paper: {message}")

    # ------------------------------------------------------------------ rows
    def open(self, db):
        """This account's id, created with its starting balances on first use."""
        row = db.execute("SELECT id FROM accounts WHERE exchange = ? AND name = ?", (self.exchange, self.name)).fetchone()
        if row:
            return row[0]
        cursor = db.execute("INSERT INTO accounts (exchange, name, created) VALUES (?, ?, ?)",
                            (self.exchange, self.name, now_ms()))
        db.executemany("INSERT INTO balances VALUES (?, ?, ?, '0')",
                       [(cursor.lastrowid, ccy, str(amount)) for ccy, amount in self.balances_at_start.items()])
        return cursor.lastrowid

    def balances(self, db, account):
        return {row[0]: [Decimal(row[1]), Decimal(row[2])]
                for row in db.execute("SELECT currency, free, frozen FROM balances WHERE account = ?", (account,))}

    def save_balances(self, db, account, balances):
        db.executemany("INSERT OR REPLACE INTO balances VALUES (?, ?, ?, ?)",
                       [(account, ccy, str(free), str(frozen)) for ccy, (free, frozen) in balances.items()])

    def orders(self, db, account, statuses, symbol=None):
        query = f"SELECT body FROM orders WHERE account = ? AND status IN ({','.join('?' * len(statuses))})"
        args = [account, *statuses]
        if symbol is not None:
            query, args = query + " AND symbol = ?", args + [str(symbol)]
        return [_load(row[0]) for row in db.execute(query + " ORDER BY created, rowid", args)]

    def find(self, db, account, order_id):
        row = db.execute("SELECT body FROM orders WHERE account = ? AND id = ?", (account, order_id)).fetchone()
        if row is None:
            raise self.refusal(f"no order {order_id} on this paper account")
        return _load(row[0])

    def save_order(self, db, account, order):
        db.execute("INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?)",
                   (account, order["id"], order["symbol"], order["status"], order["created"], _dump(order)))

    def positions(self, db, account):
        return {(row[0], row[1]): _load(row[2])
                for row in db.execute("SELECT symbol, side, body FROM positions WHERE account = ?", (account,))}

    def save_positions(self, db, account, positions):
        db.execute("DELETE FROM positions WHERE account = ?", (account,))
        db.executemany("INSERT INTO positions VALUES (?, ?, ?, ?)",
                       [(account, symbol, side, _dump(p)) for (symbol, side), p in positions.items() if p["size"] > 0])

    def leverage(self, db, account, symbol):
        row = db.execute("SELECT level FROM leverage WHERE account = ? AND symbol = ?",
                         (account, str(symbol))).fetchone()
        return row[0] if row else DEFAULT_LEVERAGE

    def next_id(self, db, symbol):
        """`SYMBOL,NUMBER`, the number counted over the whole database, never reused."""
        db.execute("INSERT OR IGNORE INTO counters VALUES ('orders', 0)")
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'orders'")
        return f"{symbol},{db.execute('SELECT value FROM counters WHERE name = ?', ('orders',)).fetchone()[0]}"

    # ------------------------------------------------------------------ the live market
    def spec(self, symbol):
        try:
            return market_spec(self.api, symbol)
        except PluginError as error:
            raise self.refusal(str(error)) from None

    def book(self, symbol):
        book, _ = self.api.exchange.METHODS["depth"](self.api, symbol=symbol, limit=BOOK_LEVELS)
        exact = lambda levels: [[_exact(price), _exact(amount)] for price, amount in levels]
        return {**book, "asks": exact(book["asks"]), "bids": exact(book["bids"])}

    def last_price(self, symbol):
        ticker, _ = self.api.exchange.METHODS["ticker"](self.api, symbol=symbol)
        return _exact(ticker["last"] or (ticker["buy"] + ticker["sell"]) / 2)

    def catch_up(self):
        """Fill the resting orders the market has traded through since they were last looked at:
        the recent trades of each market with an open order, then one transaction. Every open
        order has a price: a market order is done once placed (State.after_fills)."""
        if not self.ledger.fill_from_trades:
            return
        with self.ledger.transaction() as db:
            account = self.open(db)
            symbols = sorted({o["symbol"] for o in self.orders(db, account, LIVE)})
        tapes = {}
        for text in symbols:
            try:
                trades, _ = self.api.exchange.METHODS["trades"](self.api, symbol=parse_symbol(text))
                tapes[text] = [{**t, "price": _exact(t["price"]), "amount": _exact(t["amount"])} for t in trades]
            except PluginError:
                continue                   # the exchange is away: those orders are looked at next call
        if not tapes:
            return
        with self.ledger.transaction() as db:
            account = self.open(db)
            state = State(self, db, account)
            for order in self.orders(db, account, LIVE):
                if order["symbol"] in tapes:
                    state.fill_from_tape(order, tapes[order["symbol"]])
            state.save()


class State:
    """An account's balances and positions inside one transaction, and the fills that change them."""

    def __init__(self, account, db, account_id):
        self.account, self.db, self.id = account, db, account_id
        self.balances = account.balances(db, account_id)
        self.positions = account.positions(db, account_id)

    def save(self):
        self.account.save_balances(self.db, self.id, self.balances)
        self.account.save_positions(self.db, self.id, self.positions)

    def balance(self, currency):
        return self.balances.setdefault(currency, [Decimal(0), Decimal(0)])

    def freeze(self, order, amount):
        balance = self.balance(order["frozen_ccy"])
        balance[0] -= amount
        balance[1] += amount
        order["frozen"] += amount

    def unfreeze(self, order, amount):
        self.freeze(order, -amount)

    def finish(self, order, status):
        """Whatever the order still holds goes back to free; its reserve of a position ends."""
        self.unfreeze(order, order["frozen"])
        order["reserved"] = Decimal(0)
        order["status"] = status
        order["updated"] = now_ms()
        self.account.save_order(self.db, self.id, order)

    def after_fills(self, order, left):
        """The status once an order has met the book (or the tape): a market order is done."""
        if order["kind"] == "market" or left <= 0:
            self.finish(order, FILLED if order["filled"] else CANCELED)
        else:
            order["status"] = PARTIAL if order["filled"] else OPEN
            order["updated"] = now_ms()
            self.account.save_order(self.db, self.id, order)

    def fee_rate(self, order, maker):
        return self.account.ledger.fee_rate(self.account.exchange, order["kind_of_market"], maker)

    # ------------------------------------------------------------------ fills
    def fill(self, order, price, size, maker):
        if order["kind_of_market"] == "swap":
            self.fill_swap(order, price, size, maker)
        else:
            self.fill_spot(order, price, size, maker)
        order["filled"] += size
        order["cost"] += price * size

    def fill_spot(self, order, price, size, maker):
        """The spot fill of `size` at `price`: pay from what the order froze, receive less the fee."""
        base, quote = order["base"], order["quote"]
        cost, rate = price * size, self.fee_rate(order, maker)
        if order["side"] == "buy":
            release = cost if order["price"] is None else size * order["price"]
            self.unfreeze(order, release)
            self.balance(quote)[0] -= cost
            fee = size * rate
            self.balance(base)[0] += size - fee
        else:
            self.unfreeze(order, size)
            self.balance(base)[0] -= size
            fee = cost * rate
            self.balance(quote)[0] += cost - fee
        order["fee"] += fee

    def fill_swap(self, order, price, size, maker):
        """A swap fill: first what it closes (margin back with the profit or loss), then what it
        opens (margin from what the order froze, or from free for a fill at another price)."""
        closing = min(size, order["to_close"])
        if closing:
            self.reduce(order, price, closing)
            order["to_close"] -= closing
            order["reserved"] = max(Decimal(0), order["reserved"] - closing)
        opening = size - closing
        swap = order["swap"]
        if opening:
            margin = _margin(swap, price, opening, order["leverage"])
            if maker:                      # a resting order's margin was frozen when it was placed
                self.unfreeze(order, min(order["frozen"], margin))
            self.increase(order, price, opening, margin)
        fee = (_notional(swap, price, size) * self.fee_rate(order, maker)).quantize(MONEY)
        self.balance(swap["settle"])[0] -= fee
        order["fee"] += fee

    def increase(self, order, price, size, margin):
        swap, side = order["swap"], order["open_side"]
        key = (order["symbol"], side)
        position = self.positions.get(key) or {"size": Decimal(0), "avg": price, "margin": Decimal(0),
                                               "leverage": order["leverage"], "created": now_ms()}
        total = position["size"] + size
        if swap["inverse"]:                # an inverse contract's average entry is harmonic
            position["avg"] = total / (position["size"] / position["avg"] + size / price)
        else:
            position["avg"] = (position["size"] * position["avg"] + size * price) / total
        position["avg"] = position["avg"].quantize(MONEY)
        position["size"], position["leverage"] = total, order["leverage"]
        position["margin"] += margin
        balance = self.balance(swap["settle"])
        balance[0] -= margin
        balance[1] += margin
        self.positions[key] = position

    def reduce(self, order, price, size):
        swap, side = order["swap"], order["close_side"]
        position = self.positions[(order["symbol"], side)]
        pnl = _pnl(swap, side, position["avg"], price, size)
        release = (position["margin"] if size >= position["size"]
                   else (position["margin"] * size / position["size"]).quantize(MONEY))
        balance = self.balance(swap["settle"])
        balance[1] -= release
        balance[0] += release + pnl
        position["margin"] -= release
        position["size"] -= size
        if position["size"] <= 0:
            del self.positions[(order["symbol"], side)]

    def fill_from_tape(self, order, trades):
        """Trades through a resting order's price since it last looked fill it by their volume (what
        is under a lot is kept for the next trades)."""
        through = [t for t in trades if t["time"] > order["seen"] and
                   (t["price"] < order["price"] if order["side"] == "buy" else t["price"] > order["price"])]
        if not trades:
            return
        order["seen"] = max(order["seen"], max(t["time"] for t in trades))
        left = order["amount"] - order["filled"]
        # volume traded through it and not yet used (less than a lot waits for more)
        order["volume"] = order.get("volume", Decimal(0)) + sum((t["amount"] for t in through), Decimal(0))
        size = round_down(min(left, order["volume"]), order["lot"])
        order["volume"] -= size
        if size > 0:
            self.fill(order, order["price"], size, maker=True)
            self.after_fills(order, left - size)
        else:
            self.account.save_order(self.db, self.id, order)


# -- Numbers of a swap -----------------------------------------------------------------------------

def _swap_terms(spec, symbol):
    """What a swap's margin and profit need: contract value, inverse or not, margin currency."""
    inverse = spec.get("ct_val_ccy") == symbol.quote and symbol.quote not in ("USDT", "USDC")
    return {"ct_val": str(spec.get("ct_val") or 1), "inverse": inverse,
            "settle": symbol.base if inverse else symbol.quote}


def _notional(swap, price, size):
    value = size * Decimal(swap["ct_val"])
    return value / price if swap["inverse"] else value * price


def _margin(swap, price, size, leverage):
    return (_notional(swap, price, size) / leverage).quantize(MONEY)


def _pnl(swap, side, entry, exit_price, size):
    value = size * Decimal(swap["ct_val"])
    gain = value * (1 / entry - 1 / exit_price) if swap["inverse"] else value * (exit_price - entry)
    return (gain if side == LONG else -gain).quantize(MONEY)


# -- Matching --------------------------------------------------------------------------------------

def walk(levels, side, limit, amount, lot, quote=False):
    """The fills an order takes from one side of the book, best level first, and what is left:
    `amount` is quote currency to spend when `quote` (a spot market buy)."""
    left, fills = amount, []
    for price, size in levels:
        if left <= 0 or price <= 0 or (limit is not None and (price > limit if side == "buy" else price < limit)):
            break
        take = round_down(min(size, left / price if quote else left), lot)
        if take <= 0:
            break
        fills.append((price, take))
        left -= take * price if quote else take
    return fills, left


# -- Handlers: what the docker's private methods do on a paper account -----------------------------

def accounts(account):
    account.catch_up()
    with account.ledger.transaction() as db:
        account_id = account.open(db)
        balances = account.balances(db, account_id)
        positions = account.positions(db, account_id)
    upnl = {}
    for (text, side), position in positions.items():
        symbol = parse_symbol(text)
        swap = _swap_terms(account.spec(symbol), symbol)
        profit = _pnl(swap, side, position["avg"], account.last_price(symbol), position["size"])
        upnl[swap["settle"]] = upnl.get(swap["settle"], Decimal(0)) + profit
    rows = []
    for currency, (free, frozen) in sorted(balances.items()):
        row = {"currency": currency, "free": free, "frozen": frozen}
        if currency in upnl:
            row.update(equity=free + frozen + upnl[currency], upnl=upnl[currency])
        rows.append(row)
    return rows, {"paper": account.exchange, "account": account.shown}


assets = accounts


def trade(account, symbol, order_type, price, amount):
    """Place an order: round and check it as the exchange would, then meet the live book."""
    spec = account.spec(symbol)
    side = {"buy": "buy", "sell": "sell", "closebuy": "sell", "closesell": "buy"}[order_type]
    market_buy = price is None and side == "buy" and not symbol.is_swap
    px, size = order_size(account.api, symbol, price, amount, quote_amount=market_buy)
    price, size = (Decimal(px) if px is not None else None), Decimal(size)
    book = account.book(symbol)
    levels = book["asks"] if side == "buy" else book["bids"]
    _check_limits(account, spec, symbol, price, size, levels, market_buy, order_type in ("closebuy", "closesell"))
    order = {"symbol": str(symbol), "side": side, "kind": "market" if price is None else "limit",
             "price": price, "amount": size, "quote_amount": market_buy, "filled": Decimal(0), "cost": Decimal(0),
             "fee": Decimal(0), "frozen": Decimal(0), "reserved": Decimal(0), "to_close": Decimal(0),
             "lot": spec["amount_size"], "kind_of_market": symbol.kind, "base": symbol.base, "quote": symbol.quote,
             "created": now_ms(), "offset": ""}
    order["seen"] = order["created"]
    fills, left = walk(levels, side, price, size, spec["amount_size"], quote=market_buy)
    with account.ledger.transaction() as db:
        account_id = account.open(db)
        state = State(account, db, account_id)
        order["id"] = account.next_id(db, symbol)
        if symbol.is_swap:
            _place_swap(account, state, order, order_type, symbol, spec, fills, left)
        else:
            _place_spot(account, state, order, fills, left)
        state.save()
    return {"id": order["id"]}, {"paper": account.exchange, "account": account.shown,
                                 "fills": [[p, s] for p, s in fills]}


def _check_limits(account, spec, symbol, price, size, levels, market_buy, closes):
    """The market's own refusals beyond order_size's minimum: max_qty and min_notional."""
    if not market_buy and spec.get("max_qty") and size > spec["max_qty"]:
        raise account.refusal(f"amount {size} is above the maximum {spec['max_qty']} for {symbol}")
    minimum = spec.get("min_notional") or 0
    if symbol.is_swap and (closes or _swap_terms(spec, symbol)["inverse"]):
        minimum = 0                        # reduce-only orders, and contracts counted in USD, have none
    reference = price if price is not None else (levels[0][0] if levels else None)
    if minimum and reference and not market_buy:
        value = size * reference * (Decimal(str(spec.get("ct_val") or 1)) if symbol.is_swap else 1)
        if value < minimum:
            raise account.refusal(f"order value {value} is below the minimum {minimum} for {symbol}")
    if minimum and market_buy and size < minimum:
        raise account.refusal(f"amount {size} {symbol.quote} is below the minimum order value {minimum} for {symbol}")


def _place_spot(account, state, order, fills, left):
    base, quote = order["base"], order["quote"]
    order["frozen_ccy"] = quote if order["side"] == "buy" else base
    # a buy freezes its quote (a limit buy amount x price, a market buy the quote it spends), a sell its base
    need = (order["amount"] * order["price"] if order["side"] == "buy" and order["price"] is not None
            else order["amount"])
    free = state.balance(order["frozen_ccy"])[0]
    if free < need:
        raise account.refusal(f"insufficient {order['frozen_ccy']}: {free} free, {need} needed")
    state.freeze(order, need)
    for price, size in fills:
        state.fill(order, price, size, maker=False)
    state.after_fills(order, left)


def _place_swap(account, state, order, order_type, symbol, spec, fills, left):
    """Net mode: a buy first reduces a short, a sell a long; closes only reduce. Hedge mode (the
    account's `hedge`): buy/sell open a long/short, closebuy/closesell close them."""
    closes = order_type in ("closebuy", "closesell")
    held_side = LONG if order["side"] == "sell" else SHORT          # the position this side reduces
    open_side = None if closes else (LONG if order["side"] == "buy" else SHORT)
    closable = _closable(account, state, symbol, held_side)
    if closes:
        if closable <= 0:
            raise account.refusal(f"no {held_side} position in {symbol} to close")
        if order["amount"] > closable:
            raise account.refusal(f"closing {order['amount']} exceeds the {closable} of the {held_side} "
                                  f"position in {symbol} that can be closed")
        to_close = order["amount"]
    else:
        to_close = Decimal(0) if account.hedge else min(order["amount"], closable)
    swap = _swap_terms(spec, symbol)
    leverage = account.leverage(state.db, state.id, symbol)
    order.update(swap=swap, leverage=leverage, close_side=held_side, open_side=open_side, to_close=to_close,
                 frozen_ccy=swap["settle"], offset="close" if closes else "open")
    filled_close = min(sum((s for _, s in fills), Decimal(0)), to_close)
    resting = left if order["kind"] == "limit" else Decimal(0)
    order["reserved"] = min(resting, to_close - filled_close)
    need, closing = Decimal(0), to_close
    rate = state.fee_rate(order, maker=False)
    for price, size in fills:
        part = min(size, closing)
        closing -= part
        need += _margin(swap, price, size - part, leverage) + (_notional(swap, price, size) * rate).quantize(MONEY)
    rest_open = resting - order["reserved"]
    rest_margin = _margin(swap, order["price"], rest_open, leverage) if rest_open > 0 else Decimal(0)
    free = state.balance(swap["settle"])[0]
    if free < need + rest_margin:
        raise account.refusal(f"insufficient {swap['settle']} margin: {free} free, {need + rest_margin} needed")
    state.freeze(order, rest_margin)
    for price, size in fills:
        state.fill(order, price, size, maker=False)
    state.after_fills(order, left)


def _closable(account, state, symbol, side):
    """What of a position resting closing orders have not reserved yet."""
    position = state.positions.get((str(symbol), side))
    if position is None:
        return Decimal(0)
    reserved = sum((o["reserved"] for o in account.orders(state.db, state.id, LIVE, symbol)
                    if o.get("close_side") == side), Decimal(0))
    return position["size"] - reserved


def orders(account, symbol=None):
    account.catch_up()
    with account.ledger.transaction() as db:
        found = account.orders(db, account.open(db), LIVE, symbol)
    return [_answer(o) for o in found], {"paper": account.exchange, "account": account.shown}


def order(account, order_id, symbol=None):
    account.catch_up()
    order_id = _checked_id(account, order_id)
    with account.ledger.transaction() as db:
        found = account.find(db, account.open(db), order_id)
    return _answer(found), {"paper": account.exchange, "account": account.shown}


def historyorders(account, symbol, since=None, limit=None):
    """Finished orders (filled, canceled) of one market since `since`, the newest `limit`
    (100 unless asked), oldest first."""
    account.catch_up()
    with account.ledger.transaction() as db:
        found = account.orders(db, account.open(db), (FILLED, CANCELED), symbol)
    found = [o for o in found if since is None or o["created"] >= since][-(limit or 100):]
    return [_answer(o) for o in found], {"paper": account.exchange, "account": account.shown}


def cancel(account, order_id, symbol=None):
    account.catch_up()
    order_id = _checked_id(account, order_id)
    with account.ledger.transaction() as db:
        account_id = account.open(db)
        found = account.find(db, account_id, order_id)
        if found["status"] not in LIVE:
            raise account.refusal(f"order {order_id} is {found['status']}: only an open order can be canceled")
        state = State(account, db, account_id)
        state.finish(found, CANCELED)
        state.save()
    return True, {"paper": account.exchange, "account": account.shown}


def positions(account, symbol=None):
    """Open positions: profit at the last traded price, margin as held."""
    account.catch_up()
    with account.ledger.transaction() as db:
        account_id = account.open(db)
        held = account.positions(db, account_id)
        reserved = {}
        for o in account.orders(db, account_id, LIVE):
            if o.get("close_side"):
                key = (o["symbol"], o["close_side"])
                reserved[key] = reserved.get(key, Decimal(0)) + o["reserved"]
    rows = []
    for (text, side), position in sorted(held.items(), key=lambda item: -item[1]["created"]):
        held_symbol = parse_symbol(text)
        if symbol is not None and not symbol.covers(held_symbol):
            continue
        swap = _swap_terms(account.spec(held_symbol), held_symbol)
        profit = _pnl(swap, side, position["avg"], account.last_price(held_symbol), position["size"])
        rows.append({"symbol": text, "margin_level": position["leverage"], "amount": position["size"],
                     "frozen_amount": reserved.get((text, side), Decimal(0)), "price": position["avg"],
                     "profit": profit, "type": 0 if side == LONG else 1, "contract_type": "swap",
                     "margin": position["margin"]})
    return rows, {"paper": account.exchange, "account": account.shown}


def margin_level(account, symbol, level):
    """The leverage of the swap's later opening orders (open positions keep their margin)."""
    account.spec(symbol)
    with account.ledger.transaction() as db:
        db.execute("INSERT OR REPLACE INTO leverage VALUES (?, ?, ?)", (account.open(db), str(symbol), level))
    return True, {"paper": account.exchange, "account": account.shown, "leverage": level}


def _checked_id(account, order_id):
    """`SYMBOL,NUMBER` as trade answered it; anything else is refused naming the form."""
    text, sep, number = order_id.partition(",")
    try:
        valid = sep and number.isdigit() and "," not in number and str(parse_symbol(text)) == text
    except PluginError:
        valid = False
    if not valid:
        raise account.refusal(f"invalid paper order id {order_id[:60]!r}: expected SYMBOL,NUMBER such as ETH_USDT,17")
    return order_id


def _answer(o):
    """An order as FMZ's Order (fmz_plugin.ORDER)."""
    swap = o["kind_of_market"] == "swap"
    return {"id": o["id"], "symbol": o["symbol"], "amount": o["amount"], "price": o["price"] or Decimal(0),
            "deal_amount": o["filled"], "avg_price": o["cost"] / o["filled"] if o["filled"] else Decimal(0),
            "type": o["side"], "offset": o["offset"] if swap else "", "contract_type": "swap" if swap else "",
            "time": o["created"], "status": o["status"]}


METHODS = {
    "accounts": accounts,
    "assets": assets,
    "trade": trade,
    "orders": orders,
    "order": order,
    "historyorders": historyorders,
    "cancel": cancel,
    "positions": positions,
    "margin_level": margin_level,
}


# -- Stored form: Decimals as exact text -----------------------------------------------------------

def _dump(record):
    return json.dumps({key: {"$d": str(value)} if isinstance(value, Decimal) else value
                       for key, value in record.items()}, separators=(",", ":"))


def _load(text):
    def decoded(value):
        if isinstance(value, dict) and set(value) == {"$d"}:
            return Decimal(value["$d"])
        if isinstance(value, dict):
            return {key: decoded(inner) for key, inner in value.items()}
        return value
    return {key: decoded(value) for key, value in json.loads(text).items()}
