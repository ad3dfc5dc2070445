"""A fake Alpaca (Trading API v2 and Market Data API, on one server) with real state, for tests.

Shapes and codes follow https://docs.alpaca.markets/reference (each endpoint's response example)
and the error bodies Alpaca answers: `{"code": 40010001, "message": "..."}` with HTTP 401, 403,
404 or 422 (and 429 "rate limit exceeded"). Alpaca signs nothing: every trading call, and every
stock data call, must carry both headers APCA-API-KEY-ID and APCA-API-SECRET-KEY; a missing or
wrong one is HTTP 401 `{"code": 40110000, "message": "request is not authorized"}` on the
trading paths and HTTP 403 `{"message": "forbidden."}` on the data paths (as CCXT's alpaca
error table records them). Crypto market data is public, as on Alpaca.

Assets: the engine's crypto pairs BTC/USDT and ETH/USDT (Alpaca lists them) plus BTC/USD and
ETH/USD, and the stocks AAPL (fractionable) and ZVZZT (NASDAQ's test symbol, not fractionable
here). Cash is USD (`/v2/account`); every other holding, USDT included, is a position
(`/v2/positions`, crypto positions named BTCUSD / USDTUSD as Alpaca names them).

Rules kept from Alpaca's docs: a client_order_id is unique among ALL the account's orders, not
only open ones (alpaca-py issue #260: "client_order_id must be unique" after a cancel); crypto
orders take time_in_force gtc or ioc, a fractional or notional stock order must be day; qty and
notional are exclusive; notional only with market orders for stocks; extended_hours only on a
day limit order. While `fake.market_open` is False a stock order is accepted and held for the
open (status "accepted", funds frozen, nothing matched); `fake.open_market()` matches them.
`fake.pattern_day_trader` refuses stock orders with 40310100 (PDT protection). Canceling an
order that is no longer open is 422 'order is already in "filled" state' (42210000).

Its market-data stream (docs "Real-time crypto pricing data", "Real-time stock pricing data") is
served on the same port: /v1beta3/crypto/us (crypto) and /v2/iex, /v2/sip (stocks). It greets
[{"T": "success", "msg": "connected"}] and wants {"action": "auth", "key", "secret"} first: a key
and secret it does not know (`ws_keys`) get [{"T": "error", "code": 402, "msg": "auth failed"}]
and a close, a second connection of one key to one endpoint [{"T": "error", "code": 406, "msg":
"connection limit exceeded"}] and a close (most plans allow one), anything before auth 401 "not
authenticated". {"action": "subscribe" | "unsubscribe", "quotes" | "trades" | "dailyBars" |
"orderbooks" (crypto): [symbols]} is answered [{"T": "subscription", ...}] with every channel's
symbols. Pushes: the latest quote, the daily bar and the whole book ("r": true) on subscribing,
then every fill of the engine as a trade, a fresh quote and a book update.

Unverified details (not in the docs we could read): the exact texts of the not-fractionable and
wrong-time-in-force refusals, and the 403 text of the data host.
"""
import json
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, OPEN, PARTIAL, SPOT_MARKETS, Engine, Refused, fmt

KEY_ID, SECRET = "alpaca-test-key-id", "alpaca-test-secret"
CRYPTO_STREAM = "/v1beta3/crypto/us"
WS_PATHS = (CRYPTO_STREAM, "/v2/iex", "/v2/sip")
WS_CHANNELS_CRYPTO = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
WS_CHANNELS_STOCKS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
WS_BOOK_LEVELS = 100           # levels a side of the whole book pushed on subscribing
CRYPTO = {("BTC", "USDT"), ("ETH", "USDT"), ("BTC", "USD"), ("ETH", "USD")}
STOCKS = {
    ("AAPL", "USD"): {"tick": D("0.01"), "lot": D("0.000000001"), "min": D("0.000000001"), "max": D("1000000"),
                      "mid": D("190"), "step": D("0.01"), "fractionable": True},
    ("ZVZZT", "USD"): {"tick": D("0.01"), "lot": D("1"), "min": D("1"), "max": D("1000000"),
                       "mid": D("10"), "step": D("0.01"), "fractionable": False},
}
START_HOLDINGS = {"USD": D("100000"), "AAPL": D("10")}    # besides the engine's USDT, BTC, ETH
# Timeframe units, in Alpaca's long and short spellings ("1Min" / "1T" / "1min", "1Hour" / "1H", ...)
TIMEFRAME_MS = {"Min": 60_000, "T": 60_000, "min": 60_000, "Hour": 3_600_000, "H": 3_600_000,
                "Day": 86_400_000, "D": 86_400_000, "Week": 604_800_000, "W": 604_800_000}
BAR_PAGE = 10_000                     # bars per page at most
ORDER_PAGE = (500, 50)                # GET /v2/orders limit: (max, default)
STATUSES = {OPEN: "new", PARTIAL: "partially_filled", FILLED: "filled", CANCELED: "canceled"}
OPEN_STATUSES, CLOSED_STATUSES = (OPEN, PARTIAL), (FILLED, CANCELED)
FIRST_ORDER = 100000000001            # engine ids of 12 digits: the last group of the order's UUID
# Engine refusals -> (HTTP status, Alpaca code, message)
REFUSALS = {
    "unknown_symbol": (422, 40010001, "invalid symbol"),
    "duplicate_client_id": (422, 40010001, "client_order_id must be unique"),
    "bad_amount": (422, 40010001, "qty must be a multiple of min_trade_increment"),
    "bad_price": (422, 40010001, "limit_price must be a multiple of price_increment"),
    "below_min": (403, 40310000, "qty must be >= min_order_size"),
    "insufficient": (403, 40310000, "insufficient balance for {}"),
    "unknown_order": (404, 40410000, "order not found"),
    "order_closed": (422, 42210000, 'order is already in "{}" state'),
}
UNAUTHORIZED = (401, {"code": 40110000, "message": "request is not authorized"})
FORBIDDEN = (403, {"message": "forbidden."})


class Rejected(Exception):
    """Alpaca refuses the request: HTTP `status` with {"code", "message"}."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_york_time(ms):
    """The clock's timestamp: New York time with its offset and nanoseconds (EST all year here)."""
    moment = datetime.fromtimestamp(ms / 1000 - 5 * 3600, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}738097-05:00"


def rfc3339(ms, extra_ns=0):
    """Alpaca's times: RFC-3339 UTC with nanoseconds, e.g. 2021-03-16T18:38:01.942282123Z."""
    moment = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000 * 1_000_000 + extra_ns:09d}Z"


TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_time(text, name="start"):
    """RFC-3339 (a zone, up to nanoseconds) -> ns since the epoch; Rejected when it is not one."""
    found = TIME.match(text or "")
    if not found:
        raise Rejected(422, 40010001, f"Invalid format for parameter {name}: error parsing {text!r} as RFC3339")
    seconds, fraction, zone = found.groups()
    moment = datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def alpaca_symbol(pair):
    """("BTC", "USD") -> BTC/USD (crypto); ("AAPL", "USD") -> AAPL (a stock)."""
    return f"{pair[0]}/{pair[1]}" if pair in CRYPTO else pair[0]


def compact_symbol(pair):
    """BTC/USD without the slash, a name Alpaca also accepts for a crypto asset: BTCUSD."""
    return pair[0] + pair[1]


class FakeAlpaca(FakeExchange):
    NAME = "Alpaca"
    ACCESS_KEY, SECRET_KEY = KEY_ID, SECRET
    ORDER_PATH, TIME_PATH = "/v2/orders", "/v2/clock"
    SIGNS_TIME = False                    # no timestamp in any request: a skewed clock changes nothing
    DEADLINES = False                     # its client ids are never reused: no deadline needed
    CANCEL_ROUTE = ("DELETE", None)       # DELETE /v2/orders/{id}: None = every DELETE path
    CODES = {reason: str(code) for reason, (_, code, _) in REFUSALS.items()}
    CODES.update(unknown_symbol="40410000")            # GET /v2/assets/{symbol} of an unknown asset
    FOREIGN_ORDER_ID = "00000000-0000-4000-8000-000000000001"   # well-formed, but no such order

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms, first_id=FIRST_ORDER)
        self.engine.markets.update({pair: dict(SPOT_MARKETS[("BTC" if pair[0] == "BTC" else "ETH", "USDT")])
                                    for pair in CRYPTO if pair[1] == "USD"})
        self.engine.markets.update({pair: dict(spec) for pair, spec in STOCKS.items()})
        for currency, amount in START_HOLDINGS.items():
            self.engine.balances[currency] = [amount, D(0)]
        self.market_open = True
        self.pattern_day_trader = False
        self.routes = {
            ("GET", "/v2/clock"): self.private(self.clock),
            ("GET", "/v2/account"): self.private(self.account),
            ("GET", "/v2/assets"): self.private(self.assets),
            ("GET", "/v2/positions"): self.private(self.positions),
            ("POST", "/v2/orders"): self.private(self.place),
            ("GET", "/v2/orders"): self.private(self.list_orders),
            ("GET", "/v2/orders:by_client_order_id"): self.private(self.by_client_id),
            ("GET", "/v2/stocks/snapshots"): self.stock_data(self.snapshots),
            ("GET", "/v2/stocks/quotes/latest"): self.stock_data(self.latest_quotes),
            ("GET", "/v2/stocks/trades"): self.stock_data(self.trades),
            ("GET", "/v2/stocks/bars"): self.stock_data(self.bars),
            ("GET", "/v1beta3/crypto/us/snapshots"): self.crypto_data(self.snapshots),
            ("GET", "/v1beta3/crypto/us/latest/quotes"): self.crypto_data(self.latest_quotes),
            ("GET", "/v1beta3/crypto/us/latest/orderbooks"): self.crypto_data(self.orderbooks),
            ("GET", "/v1beta3/crypto/us/trades"): self.crypto_data(self.trades),
            ("GET", "/v1beta3/crypto/us/bars"): self.crypto_data(self.bars),
        }
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {path: self.ws_session for path in WS_PATHS}
        self.ws_keys = {KEY_ID: SECRET}      # key -> secret the stream accepts
        self.ws_logins = {}                  # session -> (key, path) once authenticated
        self.ws_hold_auth = False            # True: a login is taken but its answer held until release_auth()
        self.ws_held_auths = []              # sessions whose "authenticated" is held
        self.ws_subscriptions = {}           # session -> {(channel, symbol)}
        self._trade_ids = iter(range(7_000_000_000, 8_000_000_000))

    # ------------------------------------------------------------------ routing and auth
    def route(self, request):
        """/v2/orders/{id} and /v2/assets/{symbol} carry their argument in the path."""
        for prefix, routes in (("/v2/orders/", {"GET": self.get_order, "DELETE": self.cancel}),
                               ("/v2/assets/", {"GET": self.asset})):
            if request.path.startswith(prefix) and request.method in routes:
                with self.lock:
                    return self.private(routes[request.method])(request)
        return super().route(request)

    def answer(self, function, request, refusal):
        try:
            return refusal or function(request)
        except Rejected as error:
            return error.status, {"code": error.code, "message": error.message}

    def private(self, function):
        return lambda request: self.answer(function, request, self.authenticate(request, UNAUTHORIZED))

    def stock_data(self, function):
        return lambda request: self.answer(lambda r: function(r, "stocks"), request,
                                           self.authenticate(request, FORBIDDEN))

    def crypto_data(self, function):
        """Public; keys, when sent, must still be right."""
        def public(request):
            sent = request.headers.get("APCA-API-KEY-ID") or request.headers.get("APCA-API-SECRET-KEY")
            return self.answer(lambda r: function(r, "crypto"), request,
                               self.authenticate(request, FORBIDDEN) if sent else None)
        return public

    @staticmethod
    def authenticate(request, refusal):
        headers = request.headers
        if headers.get("APCA-API-KEY-ID") != KEY_ID or headers.get("APCA-API-SECRET-KEY") != SECRET:
            return refusal
        return None

    def not_found(self, request):
        return 404, {"code": 40410000, "message": "endpoint not found."}

    def rate_limited(self):
        return 429, {"code": 42910000, "message": "rate limit exceeded"}

    def outcome_unknown(self):
        """Alpaca documents no "outcome unknown" code: its servers answer 5xx (this body unverified)."""
        return 500, {"code": 50010000, "message": "internal server error"}

    def deadline_of(self, request):
        return None                      # Alpaca requests carry no validity deadline

    def signature_of(self, request):
        """Alpaca has no signature: the secret itself travels. Only the real one is recorded (a
        test's deliberately wrong secrets, such as "x", are no secrets to keep)."""
        secret = request.headers.get("APCA-API-SECRET-KEY")
        return secret if secret == SECRET else None

    # ------------------------------------------------------------------ trading API: account and assets
    def clock(self, request):
        now = self.now_ms()
        return 200, {"timestamp": new_york_time(now), "is_open": self.market_open,
                     "next_open": "2030-01-02T09:30:00-05:00", "next_close": "2030-01-02T16:00:00-05:00"}

    def account(self, request):
        free, frozen = self.engine.balances["USD"]
        positions = sum((self._market_value(currency) for currency in self._held()), D(0))
        return 200, {
            "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA3717PJAYWN", "status": "ACTIVE",
            "crypto_status": "ACTIVE", "currency": "USD", "buying_power": fmt(free), "regt_buying_power": fmt(free),
            "daytrading_buying_power": "0", "effective_buying_power": fmt(free),
            "non_marginable_buying_power": fmt(free), "cash": fmt(free), "accrued_fees": "0",
            "portfolio_value": fmt(free + frozen + positions), "pattern_day_trader": self.pattern_day_trader,
            "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
            "created_at": "2022-06-13T14:59:18.318096Z", "trade_suspended_by_user": False, "multiplier": "1",
            "shorting_enabled": False, "equity": fmt(free + frozen + positions), "last_equity": fmt(free + frozen),
            "long_market_value": fmt(positions), "short_market_value": "0", "position_market_value": fmt(positions),
            "initial_margin": "0", "maintenance_margin": "0", "last_maintenance_margin": "0", "sma": "0",
            "daytrade_count": 0, "balance_asof": "2024-12-10", "crypto_tier": 1}

    def _pairs(self):
        return [pair for pair in self.engine.markets if pair in CRYPTO or pair in STOCKS]

    def _render_asset(self, pair):
        spec = self.engine.markets[pair]
        crypto = pair in CRYPTO
        asset = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, alpaca_symbol(pair))), "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ", "symbol": alpaca_symbol(pair),
            "name": f"{pair[0]} / {pair[1]}" if crypto else f"{pair[0]} Inc. Common Stock", "status": "active",
            "tradable": True, "marginable": not crypto, "maintenance_margin_requirement": 100 if crypto else 30,
            "shortable": not crypto, "easy_to_borrow": not crypto,
            "fractionable": crypto or spec["fractionable"], "attributes": []}
        if crypto:       # only crypto assets carry these three (stocks: whole shares, or 1e-9 if fractionable)
            asset.update(min_order_size=fmt(spec["min"]), min_trade_increment=fmt(spec["lot"]),
                         price_increment=fmt(spec["tick"]))
        return asset

    def assets(self, request):
        """?status=active&asset_class=us_equity|crypto; an inactive stock is listed with status=inactive only."""
        wanted_class = request.query.get("asset_class")
        rows = [self._render_asset(pair) for pair in self._pairs()]
        rows.append({**self._render_asset(("ZVZZT", "USD")), "symbol": "OLDCO", "status": "inactive",
                     "tradable": False, "id": "6ba3c5c6-0b63-4f1d-a5e4-3f6e38d3c0b2"})
        return 200, [a for a in rows if wanted_class in (None, "", a["class"])
                     and request.query.get("status") in (None, "", a["status"])]

    def asset(self, request):
        name = request.path[len("/v2/assets/"):].replace("%2F", "/")
        found = next((self._render_asset(p) for p in self._pairs()
                      if name in (alpaca_symbol(p), compact_symbol(p) if p in CRYPTO else None)), None)
        if found is None:
            raise Rejected(404, 40410000, f"asset not found for {name}")
        return 200, found

    def _held(self):
        """Every currency held but USD (cash), with its amount: USDT, BTC and ETH are crypto."""
        return [currency for currency, (free, frozen) in self.engine.balances.items()
                if currency != "USD" and free + frozen > 0]

    def _price(self, currency):
        return self.engine.markets.get((currency, "USD"), {}).get("mid", D(1))

    def _market_value(self, currency):
        return sum(self.engine.balances[currency]) * self._price(currency)

    def positions(self, request):
        rows = []
        for currency in self._held():
            free, frozen = self.engine.balances[currency]
            crypto, price = (currency, "USD") not in STOCKS, self._price(currency)
            rows.append({
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, currency)),
                "symbol": currency + "USD" if crypto else currency,
                "exchange": "CRYPTO" if crypto else "NASDAQ", "asset_class": "crypto" if crypto else "us_equity",
                "asset_marginable": not crypto, "qty": fmt(free + frozen), "avg_entry_price": fmt(price),
                "side": "long", "market_value": fmt((free + frozen) * price), "cost_basis": fmt((free + frozen) * price),
                "unrealized_pl": "0", "unrealized_plpc": "0", "unrealized_intraday_pl": "0",
                "unrealized_intraday_plpc": "0", "current_price": fmt(price), "lastday_price": fmt(price),
                "change_today": "0", "qty_available": fmt(free)})
        return 200, rows

    # ------------------------------------------------------------------ trading API: orders
    def _pair(self, symbol):
        return next((pair for pair in self._pairs() if alpaca_symbol(pair) == symbol), None)

    def place(self, request):
        try:
            body = request.json()
        except ValueError:
            raise Rejected(400, 40010000, "request body format is invalid")
        pair = self._pair(body.get("symbol"))
        if pair is None:
            raise Rejected(422, 40010001, "invalid symbol")
        side, kind, tif = body.get("side"), body.get("type"), body.get("time_in_force")
        if side not in ("buy", "sell") or kind not in ("market", "limit"):
            raise Rejected(422, 40010001, "invalid side or type")
        qty, notional, price = (self._decimal(body, name) for name in ("qty", "notional", "limit_price"))
        if (qty is None) == (notional is None):
            raise Rejected(400, 40010000, "qty or notional is required, not both")
        if (kind == "limit") != (price is not None):
            raise Rejected(422, 40010001, "limit_price is required for limit orders only")
        self._check_order_rules(pair, kind, tif, qty, notional, body.get("extended_hours") in (True, "true"))
        client_id = body.get("client_order_id") or str(uuid.uuid4())
        if len(client_id) > 128:
            raise Rejected(422, 40010001, "client_order_id must be no more than 128 characters")
        if any(o["client_id"] == client_id for o in self.engine.orders.values()):
            raise Rejected(*REFUSALS["duplicate_client_id"])       # any earlier order's id, not only open ones
        held = pair in STOCKS and not self.market_open
        try:
            order = self.engine.place(pair, side, kind, notional or qty, price, client_id,
                                      quote_amount=notional is not None, hold=held)
        except Refused as error:
            status, code, message = REFUSALS[error.reason]
            if error.reason == "insufficient" and pair in STOCKS:
                message = "insufficient buying power" if side == "buy" else \
                    "insufficient qty available for order (requested: {}, available: {})".format(
                        fmt(qty or D(0)), fmt(self.engine.balances.get(pair[0], [D(0)])[0]))
            raise Rejected(status, code, message.format(error.detail))
        order["time_in_force"], order["extended_hours"] = tif, body.get("extended_hours") in (True, "true")
        return 200, self.render(order)

    @staticmethod
    def _decimal(body, name):
        value = body.get(name)
        if value is None:
            return None
        try:
            number = D(str(value))
        except InvalidOperation:
            raise Rejected(422, 40010001, f"invalid {name}")
        if not number.is_finite() or number <= 0:
            raise Rejected(422, 40010001, f"{name} must be > 0")
        return number

    def _check_order_rules(self, pair, kind, tif, qty, notional, extended):
        """Alpaca's time-in-force, fractional and extended-hours rules (see the module docstring)."""
        if pair in CRYPTO:
            if tif not in ("gtc", "ioc"):
                raise Rejected(422, 42210000, "invalid crypto time_in_force")
            return
        if self.pattern_day_trader:
            raise Rejected(403, 40310100, "trade denied due to pattern day trading protection")
        fractional = notional is not None or qty != qty.to_integral_value()
        if fractional and not self.engine.markets[pair]["fractionable"]:
            raise Rejected(422, 40010001, f'asset "{pair[0]}" is not fractionable')
        if notional is not None and kind != "market":
            raise Rejected(422, 40010001, "notional orders are only supported for market orders")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise Rejected(422, 40010001, "invalid time_in_force")
        if fractional and tif != "day":
            raise Rejected(422, 40010001, "fractional orders must be DAY orders")
        if extended and (kind != "limit" or tif != "day"):
            raise Rejected(422, 40010001, 'extended hours order must be DAY limit orders')

    def open_market(self):
        """The stock market opens: the orders held while it was closed meet the book."""
        with self.lock:
            self.market_open = True
            self.engine.release_held()

    def render(self, order):
        """An engine order as Alpaca's order object (POST /v2/orders response example)."""
        avg = self.engine.avg_price(order)
        created = rfc3339(order["created"], self._sequence(order))
        updated = rfc3339(order["updated"], self._sequence(order))
        done = order["status"] in CLOSED_STATUSES
        notional = order["quote_amount"]
        status = "accepted" if order.get("held") else STATUSES[order["status"]]
        return {
            "id": order_uuid(order["id"]), "client_order_id": order["client_id"],
            "created_at": created, "updated_at": updated, "submitted_at": created,
            "filled_at": updated if order["status"] == FILLED else None, "expired_at": None,
            "canceled_at": updated if order["status"] == CANCELED else None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, alpaca_symbol(order["pair"]))),
            "symbol": alpaca_symbol(order["pair"]), "asset_class": "crypto" if order["pair"] in CRYPTO else "us_equity",
            "notional": fmt(order["amount"]) if notional else None, "qty": None if notional else fmt(order["amount"]),
            "filled_qty": fmt(order["filled"]), "filled_avg_price": fmt(avg) if avg else None,
            "order_class": "", "order_type": order["type"], "type": order["type"], "side": order["side"],
            "position_intent": ("buy_to_open" if order["side"] == "buy" else "sell_to_close"),
            "time_in_force": order.get("time_in_force", "gtc"),
            "limit_price": fmt(order["price"]) if order["price"] else None, "stop_price": None,
            "status": status if not (done and status == "accepted") else STATUSES[order["status"]],
            "extended_hours": order.get("extended_hours", False), "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None, "subtag": None, "source": None, "expires_at": None}

    @staticmethod
    def _sequence(order):
        """Sub-millisecond digits that keep every order's time distinct and in id order."""
        return int(order["id"]) % 1_000_000

    def _order_of(self, request):
        order_id = request.path.rsplit("/", 1)[1]
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise Rejected(422, 40010001, "order_id is missing")
        order = self.engine.orders.get(engine_id_of(order_id))
        if order is None:
            raise Rejected(404, 40410000, "order not found")
        return order

    def get_order(self, request):
        return 200, self.render(self._order_of(request))

    def by_client_id(self, request):
        order = self.engine.find(client_id=request.query.get("client_order_id") or None)
        if order is None:
            raise Rejected(404, 40410000, "order not found")
        return 200, self.render(order)

    def cancel(self, request):
        """204 with no body; an order no longer open is 422 (42210000)."""
        order = self._order_of(request)
        if order["status"] not in OPEN_STATUSES:
            raise Rejected(422, 42210000, f'order is already in "{STATUSES[order["status"]]}" state')
        self.engine.cancel(order["id"])
        order.pop("held", None)
        return 204, b""

    def list_orders(self, request):
        """status=open|closed|all, limit (<= 500), after/until (submitted_at, exclusive),
        direction asc|desc (default desc), symbols=A,B/C."""
        query = request.query
        statuses = {"open": OPEN_STATUSES, "closed": CLOSED_STATUSES, "all": OPEN_STATUSES + CLOSED_STATUSES,
                    "": OPEN_STATUSES}.get(query.get("status", ""))
        if statuses is None:
            raise Rejected(422, 40010001, "invalid status")
        try:
            limit = int(query.get("limit") or ORDER_PAGE[1])
        except ValueError:
            raise Rejected(422, 40010001, "invalid limit")
        if not 1 <= limit <= ORDER_PAGE[0]:
            raise Rejected(422, 40010001, f"limit must be between 1 and {ORDER_PAGE[0]}")
        symbols = set(filter(None, query.get("symbols", "").split(",")))
        rows = [self.render(o) for o in self.engine.listing(statuses)
                if not symbols or alpaca_symbol(o["pair"]) in symbols]
        if query.get("after"):
            after = parse_time(query["after"], "after")
            rows = [o for o in rows if parse_time(o["submitted_at"]) > after]
        if query.get("until"):
            until = parse_time(query["until"], "until")
            rows = [o for o in rows if parse_time(o["submitted_at"]) < until]
        if query.get("direction", "desc") == "asc":
            rows.reverse()
        return 200, rows[:limit]

    # ------------------------------------------------------------------ market data (stocks v2, crypto v1beta3)
    def _symbols(self, request, market):
        names = [s for s in request.query.get("symbols", "").split(",") if s]
        if not names:
            raise Rejected(400, 40010001, "missing symbols")
        pairs = {}
        for name in names:
            pair = self._pair(name)
            if pair is None or (pair in CRYPTO) != (market == "crypto"):
                if market == "crypto":
                    raise Rejected(400, 40010001, f"invalid symbol: {name}")
                continue          # stocks: an unknown symbol is simply absent from the answer
            pairs[name] = pair
        return pairs

    def _quote(self, pair, market):
        asks, bids = self.engine.book(pair, levels=1)
        quote = {"ap": float(asks[0][0]), "as": float(asks[0][1]), "bp": float(bids[0][0]),
                 "bs": float(bids[0][1]), "t": rfc3339(self.now_ms(), 456789)}
        if market == "stocks":
            quote.update(ax="V", bx="V", c=["R"], z="C")
        return quote

    def _trade(self, pair, market, ms, i):
        trade = {"t": rfc3339(ms, 0), "p": float(self.engine.markets[pair]["mid"] + i % 3),
                 "s": 0.01 if market == "crypto" else 10, "i": 5272941104897543146 - i}
        trade.update(tks="B" if i % 2 else "S") if market == "crypto" else trade.update(x="V", c=["@"], z="C")
        return trade

    def _bar(self, pair, ts, step):
        _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
        return {"t": rfc3339(ts).replace(".000000000Z", "Z"), "o": float(o), "h": float(h), "l": float(low),
                "c": float(c), "v": float(vol), "n": 11, "vw": float(o + 1)}

    @staticmethod
    def _keyed(market, key, values):
        """Every multi-symbol answer is {key: {symbol: ...}} (for stock snapshots too, as the
        example of Alpaca's public Postman collection shows)."""
        return {key: values}

    def snapshots(self, request, market):
        answers = {}
        for name, pair in self._symbols(request, market).items():
            mid, now = self.engine.markets[pair]["mid"], self.now_ms()
            day = now // 86_400_000 * 86_400_000
            answers[name] = {
                "latestTrade": self._trade(pair, market, now - 1000, 0), "latestQuote": self._quote(pair, market),
                "minuteBar": self._bar(pair, now // 60_000 * 60_000, 60_000),
                "dailyBar": self._daily_bar(pair),
                "prevDailyBar": self._bar(pair, day - 86_400_000, 86_400_000)}
        return 200, self._keyed(market, "snapshots", answers)

    def _daily_bar(self, pair):
        mid, day = self.engine.markets[pair]["mid"], self.now_ms() // 86_400_000 * 86_400_000
        return {"t": rfc3339(day).replace(".000000000Z", "Z"), "o": float(mid - 100), "h": float(mid + 500),
                "l": float(mid - 500), "c": float(mid), "v": 1234.5, "n": 129, "vw": float(mid)}

    def _book(self, pair, levels=30):
        asks, bids = self.engine.book(pair, levels=levels)
        return {"a": [{"p": float(p), "s": float(s)} for p, s in asks],
                "b": [{"p": float(p), "s": float(s)} for p, s in bids], "t": rfc3339(self.now_ms(), 1)}

    def latest_quotes(self, request, market):
        return 200, self._keyed(market, "quotes", {name: self._quote(pair, market)
                                                   for name, pair in self._symbols(request, market).items()})

    def orderbooks(self, request, market):
        books = {}
        for name, pair in self._symbols(request, market).items():
            books[name] = self._book(pair)
        return 200, {"orderbooks": books}

    def _page_params(self, request):
        query = request.query
        try:
            limit = int(query.get("limit") or 1000)
        except ValueError:
            raise Rejected(400, 40010001, "invalid limit")
        if not 1 <= limit <= BAR_PAGE:
            raise Rejected(400, 40010001, f"limit must be between 1 and {BAR_PAGE}")
        direction = query.get("sort", "asc")
        if direction not in ("asc", "desc"):
            raise Rejected(400, 40010001, "invalid sort")
        return limit, direction

    def _window(self, request, step):
        """[start, end] in ms, aligned to step: start defaults to the current day's beginning."""
        now = self.now_ms()
        start = parse_time(request.query["start"]) // 1_000_000 if request.query.get("start") else now // 86_400_000 * 86_400_000
        end = parse_time(request.query["end"]) // 1_000_000 if request.query.get("end") else now
        return -(-start // step) * step, min(end, now) // step * step

    def _paged(self, request, market, key, rows_of):
        """One symbol per request here (all the plugin sends); next_page_token continues a page."""
        pairs = self._symbols(request, market)
        limit, direction = self._page_params(request)
        token = request.query.get("page_token")
        skip = int(token) if token and token.isdigit() else 0
        answers, more = {}, False
        for name, pair in pairs.items():
            rows = rows_of(pair)
            if direction == "desc":
                rows.reverse()
            answers[name] = rows[skip:skip + limit]
            more = more or len(rows) > skip + limit
        return 200, {key: answers, "next_page_token": str(skip + limit) if more else None}

    def trades(self, request, market):
        start, end = self._window(request, 1000)
        def rows_of(pair):
            stamps = range(max(start, end - 999_000), end + 1, 1000)     # one trade a second, the last 1000
            return [self._trade(pair, market, ms, (end - ms) // 1000) for ms in stamps]
        return self._paged(request, market, "trades", rows_of)

    def bars(self, request, market):
        timeframe = request.query.get("timeframe", "")
        unit = timeframe.lstrip("0123456789")
        count = timeframe[:len(timeframe) - len(unit)]
        if unit not in TIMEFRAME_MS or not count.isdigit() or int(count) < 1:
            raise Rejected(400, 40010001, f"invalid timeframe {timeframe!r}")
        step = int(count) * TIMEFRAME_MS[unit]
        start, end = self._window(request, step)
        start = max(start, end - 20_000 * step)
        return self._paged(request, market, "bars",
                           lambda pair: [self._bar(pair, ts, step) for ts in range(start, end + 1, step)])

    # ------------------------------------------------------------------ market-data stream
    def ws_session(self, session):
        crypto = session.path.split("?")[0] == CRYPTO_STREAM
        with self.lock:
            self.ws_subscriptions[session] = set()
        session.send_text(json.dumps([{"T": "success", "msg": "connected"}]))
        try:
            while True:
                message = session.receive()
                self.ws_note(session, message)
                with self.lock:
                    if not self.ws_action(session, message, crypto):
                        return
                    self.ws_changed.notify_all()
        finally:
            with self.lock:
                self.ws_subscriptions.pop(session, None)
                self.ws_logins.pop(session, None)

    def ws_action(self, session, message, crypto):
        """Answer one client message (under the lock); False when the session must end."""
        try:
            request = json.loads(message)
            action = request["action"]
        except (ValueError, KeyError, TypeError):
            return self._ws_error(session, 400, "invalid syntax", close=False)
        if action == "auth":
            return self._ws_auth(session, request)
        if session not in self.ws_logins:
            return self._ws_error(session, 401, "not authenticated", close=False)
        if action not in ("subscribe", "unsubscribe"):
            return self._ws_error(session, 400, "invalid syntax", close=False)
        channels = WS_CHANNELS_CRYPTO if crypto else WS_CHANNELS_STOCKS
        subscribed, added = self.ws_subscriptions[session], []
        for channel in channels:
            for name in request.get(channel) or ():
                pair = self._pair(name)
                if pair is None or (pair in CRYPTO) != crypto:
                    continue
                if action == "subscribe" and (channel, name) not in subscribed:
                    added.append((channel, name, pair))
                subscribed.add((channel, name)) if action == "subscribe" else subscribed.discard((channel, name))
        answer = {"T": "subscription", **{c: sorted(n for ch, n in subscribed if ch == c) for c in channels}}
        session.send_text(json.dumps([answer]))
        for channel, name, pair in added:
            self._ws_first_push(session, channel, name, pair, crypto)
        return True

    def _ws_auth(self, session, request):
        key, secret, path = request.get("key"), request.get("secret"), session.path.split("?")[0]
        if session in self.ws_logins:
            return self._ws_error(session, 403, "already authenticated", close=False)
        if not key or self.ws_keys.get(key) != secret:
            return self._ws_error(session, 402, "auth failed")
        if (key, path) in self.ws_logins.values():
            return self._ws_error(session, 406, "connection limit exceeded")
        self.ws_logins[session] = (key, path)
        if self.ws_hold_auth:
            self.ws_held_auths.append(session)
        else:
            session.send_text(json.dumps([{"T": "success", "msg": "authenticated"}]))
        return True

    def release_auth(self):
        """Send the held "authenticated" answers."""
        with self.lock:
            held, self.ws_held_auths = self.ws_held_auths, []
            for session in held:
                session.send_text(json.dumps([{"T": "success", "msg": "authenticated"}]))

    @staticmethod
    def _ws_error(session, code, message, close=True):
        session.send_text(json.dumps([{"T": "error", "code": code, "msg": message}]))
        if close:
            session.close(1008)
        return not close

    def _ws_first_push(self, session, channel, name, pair, crypto):
        market = "crypto" if crypto else "stocks"
        if channel == "quotes":
            session.send_text(json.dumps([{"T": "q", "S": name, **self._quote(pair, market)}]))
        elif channel == "dailyBars":
            session.send_text(json.dumps([{"T": "d", "S": name, **self._daily_bar(pair)}]))
        elif channel == "orderbooks":
            session.send_text(json.dumps([{"T": "o", "S": name, **self._book(pair, levels=WS_BOOK_LEVELS), "r": True}]))

    def _ws_push(self, channel, name, item):
        """Send to every session subscribed to (channel, name); call under the lock."""
        text = json.dumps([item])
        for session, subscribed in self.ws_subscriptions.items():
            if (channel, name) in subscribed:
                session.send_text(text)

    def push_book_update(self, pair, asks=(), bids=()):
        """A crypto book update: levels [price, size] (size 0 removes)."""
        with self.lock:
            name = alpaca_symbol(pair)
            self._ws_push("orderbooks", name, {"T": "o", "S": name, "t": rfc3339(self.now_ms(), 2),
                                               "a": [{"p": float(p), "s": float(q)} for p, q in asks],
                                               "b": [{"p": float(p), "s": float(q)} for p, q in bids]})

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): a trade, a fresh quote and a book update."""
        if pair not in CRYPTO and pair not in STOCKS:
            return
        name, crypto = alpaca_symbol(pair), pair in CRYPTO
        trade = {"T": "t", "S": name, "p": float(price), "s": float(amount), "t": rfc3339(self.now_ms(), 3),
                 "i": next(self._trade_ids)}
        trade.update(tks="B" if side == "buy" else "S") if crypto else trade.update(x="V", c=["@"], z="C")
        self._ws_push("trades", name, trade)
        self._ws_push("quotes", name, {"T": "q", "S": name, **self._quote(pair, "crypto" if crypto else "stocks")})
        if crypto:
            self.push_book_update(pair)


def order_uuid(engine_id):
    """The engine's id as the UUID Alpaca gives every order: its digits are the last group."""
    return f"00000000-0000-4000-8000-{int(engine_id):012d}"


def engine_id_of(order_uuid):
    """The engine id inside one of our order UUIDs, or None for any other UUID."""
    head, _, last = order_uuid.rpartition("-")
    return str(int(last)) if head == "00000000-0000-4000-8000" and last.isdigit() else None
