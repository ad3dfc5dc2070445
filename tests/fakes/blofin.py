"""A fake BloFin REST API v1 (USDT-margined perpetual swaps) with real state, for tests. Shapes and
codes follow BloFin's docs (https://docs.blofin.com/index.html, each endpoint's response example
and the "Errors" table) and CCXT's recorded BloFin responses: numbers as text with 18 decimals,
averagePrice "" before a fill, clientOrderId "" when none was given, lists newest first.

It verifies every private call as BloFin documents it ("REST Authentication"): the API key
(152401), the passphrase (152408), ACCESS-TIMESTAMP in ms (152410) within 60 s of its clock
(152405), ACCESS-SIGN = base64 of the hex text of HMAC-SHA256(secret, path?query + VERB +
timestamp + nonce + body) (152409), and a nonce not seen in the last 60 s (152407). A request
is valid for 60 s after its timestamp: an order or cancel the engine takes later is refused with
152405 too (our reading: BloFin documents the window, not when it is checked).

State lives in the shared engine (tests/fakes/engine.py); this file speaks BloFin's dialect:
BTC-USDT instIds, contracts (one engine contract each: contractValue is the engine's ct_val),
positionSide net / long / short with reduceOnly, clientOrderId (refused only while an order with
it is open). Only the engine's USDT-margined swaps are listed; BloFin has no spot API here.
BloFin documents that a net-mode reduce-only close larger than the position closes it whole; the
engine refuses it instead (close_exceeds_position), which the plugin does not rely on either way.
BloFin publishes no funding interval: every swap settles every 8 h here (FUNDING_INTERVAL).
Codes marked "unverified" are our best reading where BloFin's table names none.

Its public WebSocket (docs "WebSocket", "Public Channels") is served on the same port at
/ws/public: {"op": "subscribe" | "unsubscribe", "args": [{"channel", "instId"}]} answered by an
event per arg ({"event": "subscribe", "arg"}) or {"event": "error", "code", "msg"} for a channel
or instrument it does not have; channels tickers (a push on subscribing and after every fill),
books (a 200-level snapshot, then updates whose prevSeqId is the seqId before), trades (every
fill of the engine) and candle1m, candle1H, ... (the candle still open, on subscribing and after
every fill). Book levels and numbers are text, the data of books an object. A text "ping" is
answered "pong"; a connection that sends nothing for `ws_idle_limit` seconds (BloFin: 30) is
closed. Tests move the stream with `push_book_update`, `ws_drop()`, and `fault_next_book` ("gap":
a skipped sequence number, "crossed": a bid at the best ask that BloFin's own book never has).
"""
import base64
import hashlib
import hmac
import itertools
import json
import re
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange, book_rows
from tests.fakes.engine import CANCELED, FILLED, LONG, OPEN, PARTIAL, SHORT, SWAP_MARKETS, Engine, Refused, fmt

API_KEY, SECRET, PASSPHRASE = "blofin-test-key", "blofin-test-secret", "blofin-test-pass"
SECRET_KEY = f"{SECRET},{PASSPHRASE}"          # what a trader types into FMZ's Secret Key
WINDOW_MS = 60_000                             # timestamp tolerance and nonce memory
FUNDING_INTERVAL = 8 * 3_600_000
LINEAR = {pair: spec for pair, spec in SWAP_MARKETS.items() if not spec["inverse"]}
BAR_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1H": 3_600_000,
          "2H": 7_200_000, "4H": 14_400_000, "6H": 21_600_000, "8H": 28_800_000, "12H": 43_200_000,
          "1D": 86_400_000, "3D": 259_200_000, "1W": 604_800_000}
CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")      # docs: alphanumerics, up to 32 characters
ORDER_NOT_FOUND = "152002"                           # order-detail of an unknown order (unverified)
# Engine refusals -> BloFin (code, msg), from the "Errors" table where it has one.
REFUSALS = {
    "unknown_symbol": ("152014", "Instrument ID does not exist."),
    "duplicate_client_id": ("102002", "Duplicate customized order ID"),
    "bad_amount": ("152002", "Parameter size error."),
    "bad_price": ("152002", "Parameter price error."),
    "below_min": ("152002", "Parameter size error."),
    "insufficient_margin": ("103003", "Order failed. Insufficient {} margin in account"),
    "no_position": ("102022", "Failed to place order. You don't have any positions of this contract. "
                              "Turn off Reduce-only to continue."),
    "close_exceeds_position": ("152002", "Parameter size error: {} contracts can be closed."),   # unverified
    "position_side_required": ("102089", "Position mode mismatch"),
    "unknown_order": ("102068", "Cancel failed as the order has been filled, triggered, canceled or does not exist."),
    "order_closed": ("102068", "Cancel failed as the order has been filled, triggered, canceled or does not exist."),
    "bad_leverage": ("152002", "Parameter leverage error."),
    "leverage_too_high": ("152002", "Parameter leverage error."),                              # unverified
    "position_mode_busy": ("110019", "Setting failed. Cancel any open orders, and close positions first."),
}
WS_PATH = "/ws/public"
WS_BOOK_LEVELS = 200           # levels a side of a books snapshot
WS_CHANNELS = ("tickers", "books", "trades") + tuple("candle" + bar for bar in BAR_MS)
STATES = {OPEN: "live", PARTIAL: "partially_filled", FILLED: "filled"}
POSITION_MODES = {False: "net_mode", True: "long_short_mode"}


def ok(data):
    return 200, {"code": "0", "msg": "success", "data": data}


def fail(code, msg, status=200):
    return status, {"code": code, "msg": msg, "data": None}


def refuse_call(error):
    code, msg = REFUSALS[error.reason]
    return fail(code, msg.format(error.detail))


def refuse_order(error, order_id=None, client_id=""):
    """A refused order or cancel: the reason in data[0].code / msg under a top-level code "0", the
    way CCXT's handleErrors reads BloFin's order refusals (its example: orderId null, clientOrderId
    "", msg "Order failed. Insufficient USDT margin in account", code "103003"). The plugin reads
    the inner code under any top-level code (test_blofin: "1", All operations failed, too)."""
    code, msg = REFUSALS[error.reason]
    return 200, {"code": "0", "msg": "",
                 "data": [{"orderId": order_id, "clientOrderId": client_id, "msg": msg.format(error.detail),
                           "code": code}]}


def long_text(number):
    """BloFin's numbers: 1 -> "1.000000000000000000"."""
    return format(D(number).quantize(D("1e-18")), "f")


def inst_id(pair):
    return f"{pair[0]}-{pair[1]}"


def pair_of(inst):
    return next((pair for pair in LINEAR if inst_id(pair) == inst), None)


class FakeBloFin(FakeExchange):
    NAME = "BloFin"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET_KEY
    ORDER_PATH = "/api/v1/trade/order"
    TIME_PATH = "/api/v1/market/tickers"            # BloFin has no time endpoint: a ticker's ts
    CANCEL_ROUTE = ("POST", "/api/v1/trade/cancel-order")
    CODES = {reason: code for reason, (code, _) in REFUSALS.items()}
    CODES.update(unknown_order=ORDER_NOT_FOUND, insufficient=REFUSALS["insufficient_margin"][0])
    FOREIGN_ORDER_ID = "BTC-USDT,12345"              # well-formed, but no such order
    SWAPS = tuple(f"{base}_{quote}.swap" for base, quote, _ in LINEAR)
    SPOT = False
    SYMBOL, AMOUNT = "BTC_USDT.swap", "1"            # 1 contract of 0.01 BTC: 40 USDT of margin at 40000
    FUNDING_INTERVAL = FUNDING_INTERVAL

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        for pair in self.engine.swaps:
            self.engine.swaps[pair]["funding_interval"] = FUNDING_INTERVAL
        self.nonces = {}                             # nonce -> when it arrived (ms)
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {WS_PATH: self.ws_public}
        self.ws_idle_limit = 30.0            # seconds BloFin waits for a client message before closing
        self.ws_subscriptions = {}           # session -> {(channel, instId)}
        self.ws_books = {}                   # instId -> {"asks": {px: sz}, "bids": {px: sz}, "seq": int}
        self.fault_next_book = None          # "gap" | "crossed": the next book update is broken so
        self._seq = itertools.count(3374250786)
        self._trade_ids = itertools.count(3373545342)
        private = self.private
        self.routes = {
            ("GET", "/api/v1/market/instruments"): self.instruments,
            ("GET", "/api/v1/market/tickers"): self.tickers,
            ("GET", "/api/v1/market/books"): self.books,
            ("GET", "/api/v1/market/trades"): self.trades,
            ("GET", "/api/v1/market/candles"): self.candles,
            ("GET", "/api/v1/market/funding-rate"): self.funding_rate,
            ("GET", "/api/v1/account/balance"): private(self.balance),
            ("GET", "/api/v1/account/positions"): private(self.positions),
            ("GET", "/api/v1/account/position-mode"): private(self.get_position_mode),
            ("POST", "/api/v1/account/set-position-mode"): private(self.set_position_mode),
            ("POST", "/api/v1/account/set-leverage"): private(self.set_leverage),
            ("POST", "/api/v1/trade/order"): private(self.place),
            ("POST", "/api/v1/trade/cancel-order"): private(self.cancel),
            ("GET", "/api/v1/trade/order-detail"): private(self.order_detail),
            ("GET", "/api/v1/trade/orders-pending"): private(self.pending),
            ("GET", "/api/v1/trade/orders-history"): private(self.history),
        }

    # ------------------------------------------------------------------ auth
    def private(self, function):
        def checked(request):
            return self.authenticate(request) or function(request)
        return checked

    def authenticate(self, request):
        headers = request.headers
        if headers.get("ACCESS-KEY") != API_KEY:
            return fail("152401", "Access key does not exist, Please go to the API Management page and check if "
                                  "it exists and is in an active state.")
        if headers.get("ACCESS-PASSPHRASE") != PASSPHRASE:
            return fail("152408", "Passphrase error")
        timestamp, nonce = headers.get("ACCESS-TIMESTAMP", ""), headers.get("ACCESS-NONCE", "")
        if not timestamp.isdigit() or len(timestamp) != 13:
            return fail("152410", "The value of ACCESS-TIMESTAMP needs to be a millisecond timestamp, "
                                  "e.g: 1704038400000.")
        if abs(request.arrived_ms - int(timestamp)) > WINDOW_MS:
            return fail("152405", "Timestamp in header or signature has expired, need to be within 60s")
        prehash = request.target + request.method + timestamp + nonce + request.body
        digest = hmac.new(SECRET.encode(), prehash.encode(), hashlib.sha256).hexdigest()
        if not nonce or not hmac.compare_digest(base64.b64encode(digest.encode()).decode(),
                                                headers.get("ACCESS-SIGN", "")):
            return fail("152409", "Signature verification failed")
        self.nonces = {n: at for n, at in self.nonces.items() if at > request.arrived_ms - WINDOW_MS}
        if nonce in self.nonces:
            return fail("152407", "Repeated nonce, Reusing within 60 seconds is not allowed.")
        self.nonces[nonce] = request.arrived_ms
        return None

    def not_found(self, request):
        return fail("404", "not found", 404)

    def rate_limited(self):
        return fail("429", "Too Many Requests", 429)

    def outcome_unknown(self):
        return 200, {"code": "500", "msg": "Internal Server Error", "data": {}, "detailMsg": "",
                     "error_code": "500", "error_message": "Internal Server Error"}

    def deadline_of(self, request):
        """Every signed request is valid until its timestamp + 60 s."""
        text = request.headers.get("ACCESS-TIMESTAMP", "")
        return int(text) + WINDOW_MS if text.isdigit() else None

    def late(self, request):
        if self.taken_late(request):
            return fail("152405", "Timestamp in header or signature has expired, need to be within 60s")
        return None

    def signature_of(self, request):
        return request.headers.get("ACCESS-SIGN")

    # ------------------------------------------------------------------ parameters
    @staticmethod
    def limit(query, default, maximum):
        text = query.get("limit", "")
        if text == "":
            return default
        if not text.isdigit() or int(text) < 1:
            raise ValueError("limit")
        return min(int(text), maximum)

    def _pair(self, request, required=True):
        """(pair or None, refusal or None) of the instId in the query."""
        inst = request.query.get("instId", "")
        if not inst:
            return None, (fail("152001", "Parameter instId cannot be empty.") if required else None)
        pair = pair_of(inst)
        return pair, (None if pair else fail(*REFUSALS["unknown_symbol"]))

    # ------------------------------------------------------------------ market data
    def instruments(self, request):
        rows = [{"instId": inst_id(pair), "baseCurrency": pair[0], "quoteCurrency": pair[1],
                 "contractValue": fmt(spec["ct_val"]), "listTime": "1638333031000", "expireTime": "",
                 "maxLeverage": str(spec["max_leverage"]), "minSize": fmt(spec["min"]), "lotSize": fmt(spec["lot"]),
                 "tickSize": fmt(spec["tick"]), "instType": "SWAP", "contractType": "linear",
                 "maxLimitSize": fmt(spec["max"]), "maxMarketSize": "1000000", "state": "live",
                 "settleCurrency": spec["settle"]} for pair, spec in LINEAR.items()]
        rows.append({"instId": "OLD-USDT", "baseCurrency": "OLD", "quoteCurrency": "USDT", "contractValue": "1",
                     "minSize": "1", "lotSize": "1", "tickSize": "0.01", "instType": "SWAP", "state": "suspend"})
        return ok(rows)

    def _ticker(self, pair):
        asks, bids = self.engine.book(pair, levels=1)
        mid = self.engine.swaps[pair]["mid"]
        return {"instId": inst_id(pair), "last": fmt(mid), "lastSize": "1", "askPrice": fmt(asks[0][0]),
                "askSize": fmt(asks[0][1]), "bidPrice": fmt(bids[0][0]), "bidSize": fmt(bids[0][1]),
                "high24h": fmt(mid + 500), "open24h": fmt(mid - 100), "low24h": fmt(mid - 500),
                "volCurrency24h": "1234.5", "vol24h": fmt(D("1234.5") / self.engine.swaps[pair]["ct_val"]),
                "ts": str(self.now_ms())}

    def tickers(self, request):
        pair, refusal = self._pair(request, required=False)
        if refusal:
            return refusal
        return ok([self._ticker(p) for p in ([pair] if pair else LINEAR)])

    def books(self, request):
        pair, refusal = self._pair(request)
        if refusal:
            return refusal
        size = request.query.get("size", "1")
        if not size.isdigit() or not 1 <= int(size) <= 100:
            return fail("152002", "Parameter size error.")
        asks, bids = self.engine.book(pair, levels=int(size))
        return ok([{"asks": [[fmt(p), fmt(q)] for p, q in asks], "bids": [[fmt(p), fmt(q)] for p, q in bids],
                    "ts": str(self.now_ms())}])

    def trades(self, request):
        pair, refusal = self._pair(request)
        if refusal:
            return refusal
        try:
            limit = self.limit(request.query, 100, 100)
        except ValueError:
            return fail("152002", "Parameter limit error.")
        now, mid = self.now_ms(), self.engine.swaps[pair]["mid"]
        return ok([{"tradeId": str(124892894 - i), "instId": inst_id(pair), "price": fmt(mid + i), "size": "1",
                    "side": "buy" if i % 2 else "sell", "ts": str(now - i * 1000)} for i in range(limit)])

    def candles(self, request):
        """Newest first; `after` pages back (candles opening before it); at most 1440."""
        pair, refusal = self._pair(request)
        if refusal:
            return refusal
        step = BAR_MS.get(request.query.get("bar", "1m"))
        try:
            limit = self.limit(request.query, 500, 1440)
        except ValueError:
            return fail("152002", "Parameter limit error.")
        if step is None:
            return fail("152002", "Parameter bar error.")
        current = self.now_ms() // step * step
        newest = current
        if request.query.get("after"):
            newest = min(newest, (int(request.query["after"]) - 1) // step * step)
        rows = []
        for ts in range(newest, newest - limit * step, -step):
            _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
            rows.append([str(ts), fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol), fmt(vol / 100), fmt(vol * c),
                         "0" if ts == current else "1"])
        return ok(rows)

    def funding_rate(self, request):
        pair, refusal = self._pair(request, required=False)
        if refusal:
            return refusal
        rows = []
        for p in [pair] if pair else LINEAR:
            funding = self.engine.funding(p)
            rows.append({"instId": inst_id(p), "fundingRate": fmt(funding["rate"]),
                         "fundingTime": str(funding["time"])})
        return ok(rows)

    # ------------------------------------------------------------------ WebSocket
    def ws_public(self, session):
        self.ws_serve(session, self.text_pings_then(self.ws_operation),
                      idle_close_code=1000)      # BloFin closes a connection silent for 30 s

    def ws_operation(self, session, message):
        try:
            request = json.loads(message)
            op, args = request["op"], list(request["args"])
        except (ValueError, KeyError, TypeError):
            return session.send_text(json.dumps({"event": "error", "code": "60012",        # code unverified
                                                 "msg": f"Invalid request: {message[:100]}"}))
        for arg in args:
            topic = (arg.get("channel"), arg.get("instId"))
            pair = pair_of(topic[1])
            if op not in ("subscribe", "unsubscribe") or topic[0] not in WS_CHANNELS or pair is None:
                session.send_text(json.dumps({"event": "error", "code": "60018",           # code unverified
                                              "msg": f"channel:{topic[0]},instId:{topic[1]} doesn't exist"}))
                continue
            with self.lock:
                self.ws_follow(session, op, [topic])
                session.send_text(json.dumps({"event": op, "arg": {"channel": topic[0], "instId": topic[1]}}))
                if op == "subscribe":
                    self._first_push(session, topic, pair)
                self.ws_changed.notify_all()

    def _first_push(self, session, topic, pair):
        channel, inst = topic
        arg = {"channel": channel, "instId": inst}
        if channel.startswith("candle"):
            session.send_text(json.dumps(self._candle_push(channel, pair)))
        elif channel == "tickers":
            session.send_text(json.dumps({"arg": arg, "data": [self._ticker(pair)]}))
        elif channel == "books":
            book = self._ws_book(pair)
            data = {"asks": book_rows(book["asks"], False), "bids": book_rows(book["bids"], True),
                    "ts": str(self.now_ms()), "prevSeqId": "0", "seqId": str(book["seq"])}
            session.send_text(json.dumps({"arg": arg, "action": "snapshot", "data": data}))

    def _ws_book(self, pair):
        inst = inst_id(pair)
        if inst not in self.ws_books:
            asks, bids = self.engine.book(pair, levels=WS_BOOK_LEVELS)
            self.ws_books[inst] = {"asks": {fmt(p): fmt(s) for p, s in asks}, "bids": {fmt(p): fmt(s) for p, s in bids},
                                   "seq": next(self._seq)}
        return self.ws_books[inst]

    def push_book_update(self, pair, asks=(), bids=()):
        """A books update (levels [price, size] as text; size "0" removes) chained to the last."""
        with self.lock:
            book, inst = self._ws_book(pair), inst_id(pair)
            fault, self.fault_next_book = self.fault_next_book, None
            for side, rows in (("asks", asks), ("bids", bids)):
                for price, size in rows:
                    book[side].pop(price, None) if D(size) == 0 else book[side].__setitem__(price, size)
            pushed = list(bids) + ([[min(book["asks"], key=D), "1"]] if fault == "crossed" else [])   # never kept
            previous, book["seq"] = book["seq"], next(self._seq)
            if fault == "gap":
                previous -= 1
            data = {"asks": [list(row) for row in asks], "bids": [list(row) for row in pushed],
                    "ts": str(self.now_ms()), "prevSeqId": str(previous), "seqId": str(book["seq"])}
            self.ws_push(("books", inst), {"arg": {"channel": "books", "instId": inst}, "action": "update", "data": data})

    def _candle_push(self, channel, pair):
        """The candle still open, as the candle channels push it (confirm "0")."""
        step = BAR_MS[channel[len("candle"):]]
        ts = self.now_ms() // step * step
        _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
        row = [str(ts), fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol), fmt(vol / 100), fmt(vol * c), "0"]
        return {"arg": {"channel": channel, "instId": inst_id(pair)}, "data": [row]}

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the ticker and the book move."""
        inst = inst_id(pair)
        if pair not in LINEAR:
            return
        trade = {"instId": inst, "tradeId": str(next(self._trade_ids)), "price": fmt(price), "size": fmt(amount),
                 "side": side, "ts": str(self.now_ms())}
        self.ws_push(("trades", inst), {"arg": {"channel": "trades", "instId": inst}, "data": [trade]})
        self.ws_push(("tickers", inst), {"arg": {"channel": "tickers", "instId": inst}, "data": [self._ticker(pair)]})
        for channel in self.ws_channels_on(inst):
            if channel.startswith("candle"):
                self.ws_push((channel, inst), self._candle_push(channel, pair))
        if self.ws_watched(("books", inst)):
            self.push_book_update(pair)

    # ------------------------------------------------------------------ account
    def balance(self, request):
        """The futures account: the engine's wallet (available, frozen = order margin + position
        margin, equity with the positions' profit)."""
        now, details = str(self.now_ms()), []
        for ccy, (free, frozen) in self.engine.balances.items():
            if not (free or frozen):
                continue
            equity, _ = self.engine.equity(ccy)
            on_orders = sum((o["frozen"] for o in self.engine.listing((OPEN, PARTIAL)) if o["pay"] == ccy), D(0))
            details.append({"currency": ccy, "equity": long_text(equity), "balance": long_text(free + frozen),
                            "ts": now, "isolatedEquity": "0", "available": long_text(free),
                            "availableEquity": long_text(free), "frozen": long_text(frozen),
                            "orderFrozen": long_text(on_orders), "equityUsd": long_text(equity),
                            "isolatedUnrealizedPnl": "0", "bonus": "0"})
        return ok({"ts": now, "totalEquity": "0", "isolatedEquity": "0", "details": details})

    def positions(self, request):
        pair, refusal = self._pair(request, required=False)
        if refusal:
            return refusal
        return ok([self._position(p) for p in self.engine.open_positions(pair)])

    def _position(self, p):
        hedge = self.engine.hedge_mode
        sign = 1 if hedge or p["side"] == LONG else -1
        cross = p["margin_mode"] == "cross"
        row = {"positionId": str(p["created"]), "instId": inst_id(p["pair"]), "instType": "SWAP",
               "marginMode": p["margin_mode"], "positionSide": p["side"] if hedge else "net", "adl": "5",
               "positions": fmt(sign * p["size"]),
               "availablePositions": fmt(sign * self.engine.closable(p["pair"], p["side"])),
               "averagePrice": long_text(p["avg"]), "markPrice": fmt(self.engine.swaps[p["pair"]]["mid"]),
               "marginRatio": "72.4", "liquidationPrice": "", "unrealizedPnl": fmt(self.engine.unrealised(p)),
               "unrealizedPnlRatio": "0", "maintenanceMargin": "0.6", "createTime": str(p["created"]),
               "updateTime": str(p["updated"]), "leverage": str(p["leverage"])}
        row["initialMargin" if cross else "margin"] = long_text(p["margin"])
        return row

    def get_position_mode(self, request):
        return ok({"positionMode": POSITION_MODES[self.engine.hedge_mode]})

    def set_position_mode(self, request):
        mode = request.json().get("positionMode")
        if mode not in POSITION_MODES.values():
            return fail("152002", "Parameter positionMode error.")
        try:
            self.engine.set_hedge_mode(mode == "long_short_mode")
        except Refused as error:
            return refuse_call(error)
        return ok({"positionMode": mode})

    def set_leverage(self, request):
        body = request.json()
        pair, mode = pair_of(body.get("instId")), body.get("marginMode")
        if mode not in ("cross", "isolated"):
            return fail("152002", "Parameter marginMode error.")
        if mode == "isolated" and self.engine.hedge_mode and body.get("positionSide") not in ("long", "short"):
            return fail("152002", "Parameter positionSide error.")
        try:
            level = D(str(body.get("leverage", "")))
            self.engine.set_leverage(pair, level)
        except InvalidOperation:
            return fail("152002", "Parameter leverage error.")
        except Refused as error:
            return refuse_call(error)
        return ok({"leverage": body["leverage"], "marginMode": mode, "instId": body["instId"],
                   "positionSide": body.get("positionSide") or "net"})

    # ------------------------------------------------------------------ trading
    def place(self, request):
        refusal = self.late(request)
        if refusal:
            return refusal
        body = request.json()
        side, kind, client_id = body.get("side"), body.get("orderType"), body.get("clientOrderId") or ""
        pair = pair_of(body.get("instId"))
        if pair is None:
            return refuse_order(Refused("unknown_symbol"), client_id=client_id)
        if side not in ("buy", "sell") or kind not in ("limit", "market") or \
                body.get("marginMode") not in ("cross", "isolated"):
            return fail("152002", "Parameter side, orderType or marginMode error.")
        if client_id and not CLIENT_ID.match(client_id):
            return fail("152009", "clientOrderId must be a combination of numbers, letters, or underscores, "
                                  "and the maximum length of characters is 32.")
        try:
            size = D(body["size"])
            price = D(body["price"]) if kind == "limit" else None
        except (KeyError, TypeError, InvalidOperation):
            return fail("152002", "Parameter size or price error.")
        hedge, position_side = self.engine.hedge_mode, body.get("positionSide") or "net"
        if position_side not in (("long", "short") if hedge else ("net",)):
            return refuse_order(Refused("position_side_required"), client_id=client_id)
        reduce_only = body.get("reduceOnly", "false")
        if reduce_only not in ("true", "false") or (hedge and reduce_only == "true"):
            return fail("152002", "Parameter reduceOnly error.")                  # unverified in hedge mode
        try:
            order = self.engine.place(pair, side, kind, size, price, client_id,
                                      position_side={"long": LONG, "short": SHORT}.get(position_side),
                                      reduce_only=reduce_only == "true", margin_mode=body["marginMode"])
        except Refused as error:
            return refuse_order(error, client_id=client_id)
        return ok([{"orderId": order["id"], "clientOrderId": client_id, "msg": "", "code": "0"}])

    def render(self, order):
        avg = self.engine.avg_price(order)
        state = STATES.get(order["status"]) or ("partially_canceled" if order["filled"] else "canceled")
        return {
            "orderId": order["id"], "clientOrderId": order["client_id"], "instId": inst_id(order["pair"]),
            "marginMode": order["margin_mode"], "positionSide": order["position_side"],
            "side": order["side"], "orderType": order["type"],
            "price": long_text(order["price"] or 0), "size": long_text(order["amount"]),
            "reduceOnly": "true" if order["reduce_only"] else "false", "leverage": str(order["leverage"]),
            "state": state, "filledSize": long_text(order["filled"]), "filled_amount": long_text(order["filled"]),
            "averagePrice": long_text(avg) if avg else "", "fee": "0", "pnl": "0",
            "createTime": str(order["created"]), "updateTime": str(order["updated"]),
            "orderCategory": "normal", "tpTriggerPrice": None, "tpOrderPrice": None, "slTriggerPrice": None,
            "slOrderPrice": None, "algoClientOrderId": "", "algoId": "", "brokerId": "",
            "cancelSource": "" if order["status"] != CANCELED else "user_canceled",
        }

    def order_detail(self, request):
        pair, refusal = self._pair(request)
        if refusal:
            return refusal
        order_id, client_id = request.query.get("orderId"), request.query.get("clientOrderId")
        if not order_id and not client_id:
            return fail("152003", "Either parameter orderId or clientOrderId is required.")
        order = self.engine.find(order_id, None if order_id else client_id)
        if order is None or order["pair"] != pair:
            return fail(ORDER_NOT_FOUND, "Parameter orderId error.")
        return ok(self.render(order))

    def _page(self, request, statuses, states):
        """Newest first; `state` narrows; after/before page by orderId; begin/end by createTime."""
        query = request.query
        pair, refusal = self._pair(request, required=False)
        if refusal:
            return refusal
        if query.get("state") and query["state"] not in states:
            return fail("152002", "Parameter state error.")
        try:
            limit = self.limit(query, 20, 100)
        except ValueError:
            return fail("152002", "Parameter limit error.")
        found = [o for o in self.engine.listing(statuses, pair, int(query.get("begin") or 0) or None)
                 if o["pair"] in LINEAR]
        rendered = [row for row in map(self.render, found) if query.get("state") in (None, "", row["state"])]
        if query.get("end"):
            rendered = [row for row in rendered if int(row["createTime"]) <= int(query["end"])]
        if query.get("after"):
            rendered = [row for row in rendered if int(row["orderId"]) < int(query["after"])]
        if query.get("before"):
            rendered = [row for row in rendered if int(row["orderId"]) > int(query["before"])]
        return ok(rendered[:limit])

    def pending(self, request):
        return self._page(request, (OPEN, PARTIAL), ("live", "partially_filled"))

    def history(self, request):
        return self._page(request, (FILLED, CANCELED), ("filled", "canceled", "partially_canceled"))

    def cancel(self, request):
        refusal = self.late(request)
        if refusal:
            return refusal
        body = request.json()
        if not body.get("orderId"):
            return fail("152001", "Parameter orderId cannot be empty.")
        order = self.engine.find(body["orderId"])
        try:
            if order is None or (body.get("instId") and inst_id(order["pair"]) != body["instId"]):
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            return refuse_order(error, order_id=body["orderId"])
        return ok({"orderId": order["id"], "clientOrderId": order["client_id"] or None, "code": "0", "msg": None})
