"""A fake OKX v5 REST API with real state, for tests. Shapes and codes follow
https://www.okx.com/docs-v5/en/ (response examples of each endpoint, "Error Code" section).

It verifies every private call as OKX does: key (50111), passphrase (50105), timestamp within
30 s of its clock (50102), and the signature base64(HMAC-SHA256(secret, ts + VERB + path?query
+ body)) (50113). An order carrying the `expTime` header ("Transaction Timeouts": the request is
not processed once the server's time is after it) is refused with 50036 when it arrives after
that time and with 50037 "Order expired." when the engine takes it after that time (which of the
two documented codes OKX gives at which moment is our reading). It keeps balances and orders: limit orders rest unless they cross the book,
market orders fill against the book, cancel frees the frozen funds, filled and canceled orders
move to the history. SWAP instruments (BTC-USDT-SWAP, ETH-USDT-SWAP, BTC-USD-SWAP) trade in
contracts with positions, leverage, funding and net / long_short position modes through the same
engine; `fake.engine.set_hedge_mode(True)` is what POST /api/v5/account/set-position-mode does.

Its WebSocket API (docs-v5 "WebSocket", public channels) is served on the same port at
/ws/v5/public and /ws/v5/business (candles: candle1m, candle1H, ..., the candle still open on
subscribing and after every fill): {"op": "subscribe" | "unsubscribe", "args": [{"channel", "instId"}]} answered by
an event per arg ({"event": "subscribe", "arg", "connId"}) or {"event": "error", "code": "60018"};
channels tickers (a push on subscribing and after every fill), books (a 400-level snapshot,
then updates chained by seqId / prevSeqId with the CRC32 checksum of the top 25 levels), books5
(the top 5 levels, whole in every push) and
trades (every fill of the engine). A text "ping" is answered "pong"; a connection that sends
nothing for `ws_idle_limit` seconds (OKX: 30) is closed. Tests move the stream with
`push_book_update`, `ws_drop()`, and `fault_next_book` ("checksum": a wrong checksum, "gap": a
skipped sequence number).
"""
import base64
import hashlib
import hmac
import itertools
import json
import zlib
from datetime import datetime
from decimal import Decimal as D

from tests.fakes.base import FakeExchange, book_rows
from tests.fakes.engine import CANCELED, FILLED, LONG, OPEN, PARTIAL, Engine, Refused, fmt

API_KEY, SECRET, PASSPHRASE = "okx-test-key", "okx-test-secret", "okx-test-pass"
DEMO_API_KEY = "okx-demo-key"      # a demo-trading key (same secret and passphrase): x-simulated-trading only
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
    "insufficient_margin": ("51008", "Order failed. Insufficient {} margin in account"),
    "no_position": ("51169", "Order failed because you don't have any positions in this direction "
                             "for this contract to reduce or close."),
    "close_exceeds_position": ("51112", "Close order size exceeds your available size."),
    "position_side_required": ("51000", "Parameter posSide error"),
    "bad_leverage": ("51000", "Parameter lever error"),
    "leverage_too_high": ("59102", "Leverage exceeds the maximum limit. Please lower the leverage."),
    "position_mode_busy": ("59000", "Settings failed. Close any open positions or orders before modifying settings."),
}
POS_MODES = {False: "net_mode", True: "long_short_mode"}
WS_BOOK_LEVELS = 400           # levels a side of a books snapshot
WS_CHANNELS = {"/ws/v5/public": ("tickers", "books", "books5", "trades"),      # path -> its channels
               "/ws/v5/business": tuple("candle" + bar for bar in BAR_MS)}


def ok(data):
    return 200, {"code": "0", "msg": "", "data": data}


def fail(code, msg, status=200, data=None):
    return status, {"code": code, "msg": msg, "data": data or []}


def refuse_call(error):
    """A refused non-order call (set-leverage, set-position-mode): the code at the top level."""
    code, msg = REFUSALS[error.reason]
    return fail(code, msg.format(error.detail))


def bad_parameter(name):
    """51000 comes with HTTP 400, as the "Error Code" table documents."""
    return fail("51000", f"Parameter {name} error", 400)


def refuse(error, client_id="", ord_id=""):
    """A refused order or cancel: top-level code "1", the reason in data[0].sCode / sMsg."""
    code, msg = REFUSALS[error.reason]
    return fail("1", "All operations failed", 200,
                [{"clOrdId": client_id, "ordId": ord_id, "tag": "", "sCode": code, "sMsg": msg.format(error.detail)}])


def inst_id(pair):
    """("BTC", "USDT") -> BTC-USDT; ("BTC", "USDT", "swap") -> BTC-USDT-SWAP."""
    return "-".join(pair[:2]) + ("-SWAP" if len(pair) == 3 else "")


def pair_of(inst):
    parts = tuple((inst or "").split("-"))
    if len(parts) == 3 and parts[2] == "SWAP":
        return parts[0], parts[1], "swap"
    return parts if len(parts) == 2 else None


def okx_checksum(book):
    """OKX's book checksum: signed CRC32 of bid1px:bid1sz:ask1px:ask1sz:... over 25 levels a side."""
    asks = sorted(book["asks"].items(), key=lambda level: D(level[0]))[:25]
    bids = sorted(book["bids"].items(), key=lambda level: D(level[0]), reverse=True)[:25]
    fields = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                fields += side[i]
    crc = zlib.crc32(":".join(fields).encode())
    return crc - 2 ** 32 if crc > 2 ** 31 - 1 else crc


def inst_type(pair):
    return "SWAP" if len(pair) == 3 else "SPOT"


class FakeOKX(FakeExchange):
    NAME = "OKX"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET_KEY
    ORDER_PATH, TIME_PATH = "/api/v5/trade/order", "/api/v5/public/time"    # orders are placed with POST
    CANCEL_ROUTE = ("POST", "/api/v5/trade/cancel-order")
    CODES = {reason: code for reason, (code, _) in REFUSALS.items()}
    CODES.update(unknown_order="51603")               # GET /api/v5/trade/order of an unknown id
    FOREIGN_ORDER_ID = "ETH-USDT,12345"              # well-formed, but no such order

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {"/ws/v5/public": self.ws_public, "/ws/v5/business": self.ws_public}
        self.ws_idle_limit = 30.0            # seconds OKX waits for a client message before closing
        self.ws_answers_ping = True          # False: "ping" goes unanswered (a connection gone silent)
        self.ws_subscriptions = {}           # session -> {(channel, instId)}
        self.ws_books = {}                   # instId -> {"asks": {px: sz}, "bids": {px: sz}, "seq": int}
        self.fault_next_book = None          # "checksum" | "gap": the next book update is broken so
        self._seq = itertools.count(1000)
        self._trade_ids = itertools.count(500000000)
        self.routes = {
            ("GET", "/api/v5/public/time"): self.time,
            ("GET", "/api/v5/public/instruments"): self.instruments,
            ("GET", "/api/v5/market/ticker"): self.ticker,
            ("GET", "/api/v5/market/tickers"): self.tickers,
            ("GET", "/api/v5/public/funding-rate"): self.funding_rate,
            ("GET", "/api/v5/market/books"): self.books,
            ("GET", "/api/v5/market/trades"): self.trades,
            ("GET", "/api/v5/market/candles"): self.candles,
            ("GET", "/api/v5/account/balance"): self.private(self.balance),
            ("GET", "/api/v5/account/config"): self.private(self.config),
            ("POST", "/api/v5/account/set-position-mode"): self.private(self.set_position_mode),
            ("GET", "/api/v5/account/positions"): self.private(self.positions),
            ("POST", "/api/v5/account/set-leverage"): self.private(self.set_leverage),
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
        if headers["OK-ACCESS-KEY"] not in (API_KEY, DEMO_API_KEY):
            return fail("50111", "Invalid OK-ACCESS-KEY.", 401)
        if (headers["OK-ACCESS-KEY"] == DEMO_API_KEY) != (headers.get("x-simulated-trading") == "1"):
            return fail("50101", "APIKey does not match current environment.", 401)
        if headers.get("OK-ACCESS-PASSPHRASE") != PASSPHRASE:
            return fail("50105", "Invalid OK-ACCESS-PASSPHRASE.", 401)
        timestamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        try:
            sent = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
            sent_ms = int((sent - datetime(1970, 1, 1)).total_seconds() * 1000)
        except ValueError:
            return fail("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        if abs(request.arrived_ms - sent_ms) > 30_000:
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

    def outcome_unknown(self):
        return fail("50004", "API endpoint request timeout. (does not mean that the request was successful "
                             "or failed, please check the request result).", 400)

    def deadline_of(self, request):
        """The expTime header, which OKX honours on order placement only."""
        text = request.headers.get("expTime")
        return int(text) if text and text.isdigit() and request.path == self.ORDER_PATH else None

    def expired(self, request):
        """The refusal of an order whose expTime had passed on arrival or when the engine took it."""
        if request.headers.get("expTime") is not None and self.deadline_of(request) is None:
            return bad_parameter("expTime")
        deadline = self.deadline_of(request)
        if deadline is not None and request.arrived_ms > deadline:
            return fail("50036", "The expTime can't be earlier than the current system time. "
                                 "Please adjust the expTime and try again.")
        if self.taken_late(request):
            return fail("50037", "Order expired.")
        return None

    def signature_of(self, request):
        return request.headers.get("OK-ACCESS-SIGN")

    # ------------------------------------------------------------------ market data
    def time(self, request):
        return ok([{"ts": str(self.now_ms())}])

    def instruments(self, request):
        kind = request.query.get("instType")
        if kind == "SPOT":
            return ok([self._spot_instrument(pair, spec) for pair, spec in self.engine.markets.items()] + [{
                "instType": "SPOT", "instId": "OLD-USDT", "baseCcy": "OLD", "quoteCcy": "USDT",
                "tickSz": "0.1", "lotSz": "1", "minSz": "1", "state": "suspend"}])
        if kind == "SWAP":
            return ok([self._swap_instrument(pair, spec) for pair, spec in self.engine.swaps.items()])
        if not kind:
            return fail("50014", "Parameter instType can not be empty.", 400)
        return ok([])

    @staticmethod
    def _spot_instrument(pair, spec):
        return {
            "instType": "SPOT", "instId": inst_id(pair), "uly": "", "instFamily": "", "category": "1",
            "baseCcy": pair[0], "quoteCcy": pair[1], "settleCcy": "", "ctVal": "", "ctMult": "",
            "ctValCcy": "", "optType": "", "stk": "", "listTime": "1606468572000", "expTime": "",
            "lever": "10", "tickSz": fmt(spec["tick"]), "lotSz": fmt(spec["lot"]), "minSz": fmt(spec["min"]),
            "ctType": "", "alias": "", "state": "live", "maxLmtSz": fmt(spec["max"]),
            "maxMktSz": "1000000", "maxTwapSz": "", "maxIcebergSz": "", "maxTriggerSz": "", "maxStopSz": "",
        }

    @staticmethod
    def _swap_instrument(pair, spec):
        """Shaped like the real BTC-USDT-SWAP object (baseCcy/quoteCcy empty for derivatives)."""
        family = f"{pair[0]}-{pair[1]}"
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "ctMult": "1",
            "ctType": "inverse" if spec["inverse"] else "linear", "ctVal": fmt(spec["ct_val"]),
            "ctValCcy": spec["ct_val_ccy"], "expTime": "", "instFamily": family, "instId": inst_id(pair),
            "instType": "SWAP", "lever": str(spec["max_leverage"]), "listTime": "1573557408000",
            "lotSz": fmt(spec["lot"]), "maxIcebergSz": "100000000.0000000000000000", "maxLmtAmt": "20000000",
            "maxLmtSz": fmt(spec["max"]), "maxMktAmt": "", "maxMktSz": "12000", "maxStopSz": "12000",
            "maxTriggerSz": "100000000.0000000000000000", "maxTwapSz": "100000000.0000000000000000",
            "minSz": fmt(spec["min"]), "optType": "", "quoteCcy": "", "ruleType": "normal",
            "settleCcy": spec["settle"], "state": "live", "stk": "", "tickSz": fmt(spec["tick"]), "uly": family,
        }

    def _pair(self, request):
        pair = pair_of(request.query.get("instId"))
        return pair if self.engine.spec(pair or ()) else None

    def ticker(self, request):
        pair = self._pair(request)
        if pair is None:
            return fail("51001", "Instrument ID does not exist")
        return ok([self._ticker(pair)])

    def tickers(self, request):
        """Every instrument of one instType."""
        kind = request.query.get("instType")
        if not kind:
            return fail("50014", "Parameter instType can not be empty.", 400)
        pairs = {"SPOT": self.engine.markets, "SWAP": self.engine.swaps}.get(kind, {})
        return ok([self._ticker(pair) for pair in pairs])

    def _ticker(self, pair):
        asks, bids = self.engine.book(pair)
        spec = self.engine.spec(pair)
        mid, base_volume = spec["mid"], D("1234.5")
        if pair in self.engine.swaps:   # vol24h in contracts, volCcy24h in base currency
            contract_base = spec["ct_val"] / mid if spec["inverse"] else spec["ct_val"]
            volume, volume_ccy = base_volume / contract_base, base_volume
        else:                           # vol24h in base currency, volCcy24h in quote currency
            volume, volume_ccy = base_volume, base_volume * mid
        return {
            "instType": inst_type(pair), "instId": inst_id(pair), "last": fmt(mid), "lastSz": "0.1",
            "askPx": fmt(asks[0][0]), "askSz": fmt(asks[0][1]), "bidPx": fmt(bids[0][0]), "bidSz": fmt(bids[0][1]),
            "open24h": fmt(mid - 100), "high24h": fmt(mid + 500), "low24h": fmt(mid - 500),
            "volCcy24h": fmt(volume_ccy), "vol24h": fmt(volume), "ts": str(self.now_ms()),
            "sodUtc0": fmt(mid - 50), "sodUtc8": fmt(mid - 60)}

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
        now, mid = self.now_ms(), self.engine.spec(pair)["mid"]
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
        current = self.now_ms() // step * step
        newest, oldest = current, current - 1439 * step      # OKX keeps the latest 1440 here
        if request.query.get("after"):                       # only candles opening before `after`
            newest = min(newest, (int(request.query["after"]) - 1) // step * step)
        if request.query.get("before"):                      # only candles opening after `before`
            oldest = max(oldest, int(request.query["before"]) // step * step + step)
        rows = []
        for ts in range(newest, max(oldest, newest - limit * step + step) - 1, -step):
            _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
            confirm = "0" if ts == current else "1"          # the candle still open is not confirmed
            rows.append([str(ts), fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol), "1050", "1050", confirm])
        return ok(rows)

    def funding_rate(self, request):
        """instId=ANY answers every perpetual."""
        inst = request.query.get("instId")
        if not inst:
            return fail("50014", "Parameter instId can not be empty.", 400)
        pairs = list(self.engine.swaps) if inst == "ANY" else [pair_of(inst)]
        if any(pair not in self.engine.swaps for pair in pairs):
            return fail("51001", "Instrument ID does not exist")
        rows = []
        for pair in pairs:
            funding = self.engine.funding(pair)
            rows.append({
                "formulaType": "noRate", "fundingRate": fmt(funding["rate"]), "fundingTime": str(funding["time"]),
                "impactValue": "", "instId": inst_id(pair), "instType": "SWAP", "interestRate": "",
                "maxFundingRate": "0.00375", "method": "current_period", "minFundingRate": "-0.00375",
                "nextFundingRate": "", "nextFundingTime": str(funding["time"] + funding["interval"]),
                "premium": "0.0000910113652644", "settFundingRate": fmt(funding["rate"]),
                "settState": "settled", "ts": str(self.now_ms())})
        return ok(rows)

    # ------------------------------------------------------------------ WebSocket
    def ws_public(self, session):
        self.ws_serve(session, self.text_pings_then(self.ws_operation),
                      idle_close_code=4004)      # OKX closes a connection silent for 30 s

    def ws_operation(self, session, message):
        try:
            request = json.loads(message)
            op, args = request["op"], request["args"]
        except (ValueError, KeyError, TypeError):
            return session.send_text(json.dumps({"event": "error", "code": "60012",
                                                 "msg": f"Invalid request: {message[:100]}", "connId": "fake"}))
        for arg in args:
            topic = (arg.get("channel"), arg.get("instId"))
            pair = pair_of(topic[1])
            channels = WS_CHANNELS[session.path.split("?")[0]]
            if op not in ("subscribe", "unsubscribe") or topic[0] not in channels or not self.engine.spec(pair or ()):
                session.send_text(json.dumps({"event": "error", "code": "60018", "connId": "fake",
                                              "msg": f"Wrong URL or channel:{topic[0]},instId:{topic[1]} doesn't exist."}))
                continue
            with self.lock:
                self.ws_follow(session, op, [topic])
                session.send_text(json.dumps({"event": op, "arg": arg, "connId": "fake"}))
                if op == "subscribe":
                    self._first_push(session, topic, pair)
                self.ws_changed.notify_all()

    def _first_push(self, session, topic, pair):
        channel, inst = topic
        if channel.startswith("candle"):
            session.send_text(json.dumps(self._candle_push(channel, pair)))
        elif channel == "tickers":
            session.send_text(json.dumps({"arg": {"channel": channel, "instId": inst}, "data": [self._ticker(pair)]}))
        elif channel == "books5":
            session.send_text(json.dumps(self._books5(pair)))
        elif channel == "books":
            book = self._ws_book(pair)
            data = {"asks": self._rows(book["asks"], False), "bids": self._rows(book["bids"], True),
                    "ts": str(self.now_ms()), "checksum": okx_checksum(book), "prevSeqId": -1, "seqId": book["seq"]}
            session.send_text(json.dumps({"arg": {"channel": channel, "instId": inst}, "action": "snapshot",
                                          "data": [data]}))

    def _books5(self, pair):
        """A books5 push: the top 5 levels a side, whole every time (no action, no checksum)."""
        book, inst = self._ws_book(pair), inst_id(pair)
        data = {"asks": self._rows(book["asks"], False)[:5], "bids": self._rows(book["bids"], True)[:5],
                "instId": inst, "ts": str(self.now_ms()), "seqId": book["seq"]}
        return {"arg": {"channel": "books5", "instId": inst}, "data": [data]}

    def _ws_book(self, pair):
        inst = inst_id(pair)
        if inst not in self.ws_books:
            asks, bids = self.engine.book(pair, levels=WS_BOOK_LEVELS)
            self.ws_books[inst] = {"asks": {fmt(p): fmt(s) for p, s in asks}, "bids": {fmt(p): fmt(s) for p, s in bids},
                                   "seq": next(self._seq)}
        return self.ws_books[inst]

    @staticmethod
    def _rows(side, descending):
        """OKX's levels: [price, size, "0" (deprecated), order count]."""
        return [row + ["0", "1"] for row in book_rows(side, descending)]

    def push_book_update(self, pair, asks=(), bids=()):
        """A books update (levels [price, size] as text; size "0" removes) with its checksum."""
        with self.lock:
            book, inst = self._ws_book(pair), inst_id(pair)
            for side, rows in (("asks", asks), ("bids", bids)):
                for price, size in rows:
                    book[side].pop(price, None) if D(size) == 0 else book[side].__setitem__(price, size)
            previous, book["seq"] = book["seq"], next(self._seq)
            checksum = okx_checksum(book)
            fault, self.fault_next_book = self.fault_next_book, None
            if fault == "checksum":
                checksum += 1
            if fault == "gap":
                previous -= 1
            data = {"asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
                    "ts": str(self.now_ms()), "checksum": checksum, "prevSeqId": previous, "seqId": book["seq"]}
            self.ws_push(("books", inst), {"arg": {"channel": "books", "instId": inst}, "action": "update", "data": [data]})
            self.ws_push(("books5", inst), self._books5(pair))

    def _candle_push(self, channel, pair):
        """The candle still open, as the candle channels push it (confirm "0")."""
        step = BAR_MS[channel[len("candle"):]]
        ts = self.now_ms() // step * step
        _, o, h, low, c, vol = self.engine.candle(pair, ts, step)
        row = [str(ts), fmt(o), fmt(h), fmt(low), fmt(c), fmt(vol), "1050", "1050", "0"]
        return {"arg": {"channel": channel, "instId": inst_id(pair)}, "data": [row]}

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the ticker and the book move."""
        inst = inst_id(pair)
        trade = {"instId": inst, "tradeId": str(next(self._trade_ids)), "px": fmt(price), "sz": fmt(amount),
                 "side": side, "ts": str(self.now_ms()), "count": "1"}
        self.ws_push(("trades", inst), {"arg": {"channel": "trades", "instId": inst}, "data": [trade]})
        self.ws_push(("tickers", inst), {"arg": {"channel": "tickers", "instId": inst}, "data": [self._ticker(pair)]})
        for channel in self.ws_channels_on(inst):
            if channel.startswith("candle"):
                self.ws_push((channel, inst), self._candle_push(channel, pair))
        if self.ws_watched(("books", inst), ("books5", inst)):
            self.push_book_update(pair)

    # ------------------------------------------------------------------ account
    def balance(self, request):
        """A currency that settles open positions carries its equity and upl; others upl ""."""
        now = str(self.now_ms())
        settles = {self.engine.swaps[p["pair"]]["settle"] for p in self.engine.open_positions()}
        details = []
        for ccy, (free, frozen) in self.engine.balances.items():
            if not (free or frozen):
                continue
            eq, upl = self.engine.equity(ccy)
            on_orders = sum((o["frozen"] for o in self.engine.listing((OPEN, PARTIAL)) if o["pay"] == ccy), D(0))
            details.append({"ccy": ccy, "availBal": fmt(free), "frozenBal": fmt(frozen), "ordFrozen": fmt(on_orders),
                            "cashBal": fmt(free + frozen), "eq": fmt(eq), "availEq": "",
                            "upl": fmt(upl) if ccy in settles else "", "uTime": now})
        return ok([{"adjEq": "", "details": details, "totalEq": "0", "uTime": now}])

    def config(self, request):
        return ok([{"acctLv": "2", "acctStpMode": "cancel_maker", "autoLoan": False, "ctIsoMode": "automatic",
                    "greeksType": "PA", "level": "Lv1", "mgnIsoMode": "automatic", "perm": "read_only,trade",
                    "posMode": POS_MODES[self.engine.hedge_mode], "uid": "44705892343619584",
                    "mainUid": "44705892343619584", "label": "fake", "ip": "", "roleType": "0"}])

    def set_position_mode(self, request):
        mode = request.json().get("posMode")
        if mode not in POS_MODES.values():
            return bad_parameter("posMode")
        try:
            self.engine.set_hedge_mode(mode == "long_short_mode")
        except Refused as error:
            return refuse_call(error)
        return ok([{"posMode": mode}])

    def set_leverage(self, request):
        body = request.json()
        pair, mode = pair_of(body.get("instId")), body.get("mgnMode")
        if mode not in ("cross", "isolated"):
            return bad_parameter("mgnMode")
        if mode == "isolated" and self.engine.hedge_mode and body.get("posSide") not in ("long", "short"):
            return bad_parameter("posSide")
        try:
            level = D(str(body.get("lever", "")))
        except Exception:
            return bad_parameter("lever")
        try:
            self.engine.set_leverage(pair, level)
        except Refused as error:
            return refuse_call(error)
        return ok([{"lever": fmt(level), "mgnMode": mode, "instId": body["instId"], "posSide": body.get("posSide", "")}])

    def positions(self, request):
        """Newest first; in net mode one row per swap with a signed pos and posSide "net"."""
        if request.query.get("instType") not in (None, "", "SWAP"):
            return ok([])
        wanted = request.query.get("instId")
        pairs = [pair_of(inst) for inst in wanted.split(",")] if wanted else None
        return ok([self._position(p) for p in self.engine.open_positions()
                   if pairs is None or p["pair"] in pairs])

    def _position(self, p):
        settle, now = self.engine.swaps[p["pair"]]["settle"], str(p["updated"])
        pos = p["size"] if self.engine.hedge_mode or p["side"] == LONG else -p["size"]
        mid = self.engine.swaps[p["pair"]]["mid"]
        isolated = p["margin_mode"] == "isolated"
        return {
            "adl": "1", "availPos": fmt(self.engine.closable(p["pair"], p["side"])), "avgPx": fmt(p["avg"]),
            "cTime": str(p["created"]), "ccy": settle, "imr": "" if isolated else fmt(p["margin"]),
            "instId": inst_id(p["pair"]), "instType": "SWAP", "lever": str(p["leverage"]), "liqPx": "",
            "margin": fmt(p["margin"]) if isolated else "", "markPx": fmt(mid), "last": fmt(mid),
            "mgnMode": p["margin_mode"], "mgnRatio": "", "mmr": "", "notionalUsd": "",
            "pos": fmt(pos), "posCcy": "", "posId": str(p["created"]) + ("1" if p["side"] == LONG else "2"),
            "posSide": p["side"] if self.engine.hedge_mode else "net", "realizedPnl": fmt(p["realized"]),
            "uTime": now, "upl": fmt(self.engine.unrealised(p)), "uplRatio": "",
        }

    # ------------------------------------------------------------------ trading
    def place(self, request):
        refusal = self.expired(request)
        if refusal:
            return refusal
        body = request.json()
        side, kind, client_id = body.get("side"), body.get("ordType"), body.get("clOrdId", "")
        pair = pair_of(body.get("instId"))
        swap = pair is not None and len(pair) == 3
        modes = ("cross", "isolated") if swap else ("cash",)
        if side not in ("buy", "sell") or kind not in ("limit", "market") or body.get("tdMode") not in modes:
            return bad_parameter("side, ordType or tdMode")
        try:
            amount = D(body["sz"])
            price = D(body["px"]) if kind == "limit" else None
        except Exception:
            return bad_parameter("sz or px")
        position_side = body.get("posSide") or None
        if swap and not self.engine.hedge_mode and position_side not in (None, "net"):
            return refuse(Refused("position_side_required"), client_id)
        quote_amount = not swap and kind == "market" and side == "buy" and body.get("tgtCcy") == "quote_ccy"
        reduce_only = swap and not self.engine.hedge_mode and body.get("reduceOnly") in (True, "true")
        try:
            order = self.engine.place(pair, side, kind, amount, price, client_id, quote_amount,
                                      None if position_side == "net" else position_side, reduce_only,
                                      body.get("tdMode"))
        except Refused as error:
            return refuse(error, client_id)
        return ok([{"clOrdId": client_id, "ordId": order["id"], "tag": "", "ts": str(order["created"]),
                    "sCode": "0", "sMsg": "Order placed"}])

    def render(self, order):
        """An engine order as OKX's order object (GET /api/v5/trade/order)."""
        avg = self.engine.avg_price(order)
        swap = len(order["pair"]) == 3
        return {
            "instType": inst_type(order["pair"]), "instId": inst_id(order["pair"]), "ordId": order["id"],
            "clOrdId": order["client_id"], "tag": "", "px": fmt(order["price"]) if order["price"] else "",
            "sz": fmt(order["amount"]), "ordType": order["type"], "side": order["side"],
            "posSide": order["position_side"] if swap else "net", "tdMode": order["margin_mode"] if swap else "cash",
            "reduceOnly": "true" if swap and order["reduce_only"] else "false",
            "lever": str(order["leverage"]) if swap else "", "tgtCcy": "quote_ccy" if order["quote_amount"] else "",
            "accFillSz": fmt(order["filled"]), "fillPx": fmt(avg) if avg else "", "fillSz": "",
            "fillTime": str(order["created"]) if order["filled"] else "",    # the book fills on arrival
            "avgPx": fmt(avg) if avg else "", "state": STATES[order["status"]], "fee": "0",
            "feeCcy": order["pay"] if swap else order["pair"][0 if order["side"] == "buy" else 1],
            "cTime": str(order["created"]), "uTime": str(order["updated"]),
        }

    def get_order(self, request):
        order = self.engine.find(request.query.get("ordId"), request.query.get("clOrdId"))
        if order is None or inst_id(order["pair"]) != request.query.get("instId"):
            return fail("51603", "Order does not exist")
        return ok([self.render(order)])

    def _page(self, request, statuses):
        """Newest first; `state` (an OKX state) narrows `statuses`; after/before page by ordId."""
        query = request.query
        if query.get("state"):
            statuses = [status for status in statuses if STATES[status] == query["state"]]
        since = int(query["begin"]) if query.get("begin") else None
        found = [o for o in self.engine.listing(statuses, pair_of(query.get("instId")), since)
                 if query.get("instType") in (None, "", inst_type(o["pair"]))]
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
