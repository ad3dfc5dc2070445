"""A fake BingX REST API (spot /openApi/spot/v1, USDT-M perpetual swaps /openApi/swap/v2 and v3)
with real state, for tests. Shapes follow the response examples of BingX's docs
(https://bingx-api.github.io/docs/) as CCXT's bingx.py quotes them; every reply is the envelope
{"code": 0, "msg": "", "timestamp": ms, "data": ...}, a refusal the same with a non-zero code.

It verifies every private call as BingX documents it (docs "Signature Authentication"): the API
key in the X-BX-APIKEY header (100413), `timestamp` within `recvWindow` (default 5000 ms) of its
clock (100421), and `signature` = hex HMAC-SHA256(secret, the parameter string), where the
parameter string is the query exactly as sent with the `signature` field taken out (100001).
Private POST and DELETE calls carry their parameters in the query string, as BingX's own
examples send them. The timestamp is checked against when the request arrived; an order or cancel
the engine takes after timestamp + recvWindow is refused with 100421 too (the strict reading of
"refuses a request older than recvWindow").

State lives in the shared engine (tests/fakes/engine.py); this file only speaks BingX's dialect:
BTC-USDT names, BUY/SELL, LIMIT/MARKET, quoteOrderQty, positionSide BOTH/LONG/SHORT with
reduceOnly, clientOrderID. A client order id is refused only while an order with it is open.
- Swap quantities are coins, as on BingX: one engine contract of BTC_USDT.swap (0.01 BTC) is
  quantity 0.01 here (CONTRACT_UNITS). Only the engine's USDT-margined swaps are listed (BingX's
  coin-margined ones live on another API, /openApi/cswap).
- Wallets: BingX keeps the spot and the perpetual wallets apart; the engine has one. The fake
  answers the margin its swaps hold (positions and resting swap orders) as the perpetual wallet
  and the rest as the spot wallet, so the two add up to the engine's wallet.
- Its market-data streams are served on the same port at /market (spot) and /swap-market (swap),
  every message gzip-compressed in a binary frame, as BingX sends them: {"id", "reqType": "sub" |
  "unsub", "dataType"} answered {"id", "code": 0, ...}; data types X@ticker, X@depth{5,10,20,50,100}
  (whole top levels; a swap's asks best last, as BingX's examples list them) and X@trade; every
  engine fill pushes the trade, the ticker and the books. Every `ws_ping_every` seconds (None:
  never; BingX: 5) the swap host sends "Ping" and the spot host {"ping": ID, "time"}; a connection
  whose answer has not come `ws_pong_limit` seconds later is closed.
- Error codes marked "unverified" below are the best reading of BingX's docs and of the codes
  client libraries map (CCXT, BingX.Net); the plugin treats them the same way as the others.
"""
import gzip
import hashlib
import hmac
import itertools
import json
import re
import socket
import time
import uuid
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, LONG, OPEN, PARTIAL, SHORT, SWAP_MARKETS, Engine, Refused, fmt

API_KEY = "bingxTestKeyZsm4DcrHBTewmVaElrdwA67PmivPv6VDK6JA"
SECRET = "bingxTestSecretUuGuyEGt6ZEkpUObCYCmIfh0elYsZVh80jlY"
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
SPOT, SWAP = "/openApi/spot/v1", "/openApi/swap/v2"
LINEAR = {pair: spec for pair, spec in SWAP_MARKETS.items() if not spec["inverse"]}
INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000}
MONDAY_MS = 4 * 86_400_000             # 1970-01-05: weekly candles open on Mondays
KLINE_MAX = 1440
WS_DATA_TYPE = re.compile(r"([A-Z0-9]+-[A-Z0-9]+)@(ticker|depth(5|10|20|50|100)|trade)")
MIN_NOTIONAL_SWAP = D("2")             # quote/contracts tradeMinUSDT
CLIENT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")   # unverified: BingX's rule for clientOrderID
SPOT_STATUS = {OPEN: "PENDING", PARTIAL: "PARTIALLY_FILLED", FILLED: "FILLED", CANCELED: "CANCELED"}
SWAP_STATUS = {OPEN: "NEW", PARTIAL: "PARTIALLY_FILLED", FILLED: "FILLED", CANCELED: "CANCELLED"}
# Engine refusals -> BingX (code, msg), spot API. The 100404 texts are BingX's own (as OctoBot
# quotes them); 109201 duplicate id and 109425 unknown pair are codes CCXT maps (texts unverified).
SPOT_REFUSALS = {
    "unknown_symbol": (109425, "{} not exist, please verify it"),
    "duplicate_client_id": (109201, "the same clientOrderID is already used by an open order"),
    "bad_amount": (100400, "quantity precision is wrong"),
    "bad_price": (100400, "price precision is wrong"),
    "below_min": (100400, "The minimum amount per order is {}"),
    "insufficient": (100202, "Insufficient balance"),
    "unknown_order": (100404, " order not exist"),
    "order_closed": (100404, "the order you want to cancel is FILLED or CANCELLED already, or is not a valid "
                             "order id ,please verify"),
}
# ... and the perpetual swap API (CCXT's and BingX.Net's maps: 101204 insufficient margin,
# 101205 no position to close, 101400 below the minimum, 101414 leverage above the maximum,
# 80016 order not exist, 80018 order already filled, 80014 invalid parameters, 101481 duplicate)
SWAP_REFUSALS = {
    "unknown_symbol": (109425, "{} not exist, please verify it"),
    "duplicate_client_id": (101481, "the same clientOrderID is already used by an open order"),
    "bad_amount": (80014, "Invalid parameters, err: quantity precision"),
    "bad_price": (80014, "Invalid parameters, err: price precision"),
    "below_min": (101400, "The minimum order amount is {}"),
    "insufficient_margin": (101204, "Insufficient margin"),
    "no_position": (101205, "No position to close"),
    "close_exceeds_position": (101205, "Insufficient position to close: {} available"),
    "position_side_required": (80014, "Invalid parameters, err: positionSide does not match the position mode"),
    "unknown_order": (80016, "order not exist"),
    "order_closed": (80018, "order is already filled or canceled"),
    "bad_leverage": (80014, "Invalid parameters, err: leverage"),
    "leverage_too_high": (101414, "Maximum leverage exceeded"),
    "position_mode_busy": (80014, "there are positions or open orders, the position mode cannot be changed"),
}


def name_of(pair):
    """("BTC", "USDT") and ("BTC", "USDT", "swap") are both BTC-USDT: the API tells them apart."""
    return f"{pair[0]}-{pair[1]}"


def precision_digits(step):
    return max(0, -step.normalize().as_tuple().exponent)


class Rejected(Exception):
    """BingX refuses the request: answered as the envelope with this code and msg."""

    def __init__(self, code, message, status=200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def refused(error, table, *args):
    code, message = table[error.reason]
    return Rejected(code, message.format(*(args or (error.detail,))))


class FakeBingX(FakeExchange):
    NAME = "BingX"
    ACCESS_KEY, SECRET_KEY = API_KEY, SECRET
    ORDER_PATH, SWAP_ORDER_PATH = SPOT + "/trade/order", SWAP + "/trade/order"
    TIME_PATH = SPOT + "/server/time"
    CANCEL_ROUTE = ("POST", SPOT + "/trade/cancel")
    CODES = {reason: str(code) for reason, (code, _) in {**SWAP_REFUSALS, **SPOT_REFUSALS}.items()}
    FOREIGN_ORDER_ID = "ETH-USDT,12345"              # well-formed, but no such order
    SWAPS = tuple(f"{base}_{quote}.swap" for base, quote, _ in LINEAR)
    CONTRACT_UNITS = {f"{base}_{quote}.swap": spec["ct_val"] for (base, quote, _), spec in LINEAR.items()}

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms)
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {"/market": self.ws_market, "/swap-market": self.ws_market}
        self.ws_subscriptions = {}        # session -> {dataType}
        self.ws_ping_every = None         # seconds between the fake's pings (None: it does not ping)
        self.ws_pong_limit = 30.0         # seconds a ping may go unanswered before the connection closes
        self._trade_ids = itertools.count(90_000_000)
        public, private = self.public, self.private
        self.routes = {
            ("GET", SPOT + "/server/time"): public(self.time),
            ("GET", SPOT + "/common/symbols"): public(self.spot_symbols),
            ("GET", SPOT + "/ticker/24hr"): public(self.spot_ticker),
            ("GET", SPOT + "/market/depth"): public(self.spot_depth),
            ("GET", SPOT + "/market/trades"): public(self.spot_trades),
            ("GET", SPOT + "/market/kline"): public(self.spot_kline),
            ("GET", "/openApi/spot/v2/market/kline"): public(self.spot_kline),
            ("GET", SPOT + "/account/balance"): private(self.spot_balance),
            ("POST", SPOT + "/trade/order"): private(self.spot_place),
            ("GET", SPOT + "/trade/query"): private(self.spot_query),
            ("GET", SPOT + "/trade/openOrders"): private(self.spot_open_orders),
            ("GET", SPOT + "/trade/historyOrders"): private(self.spot_history),
            ("POST", SPOT + "/trade/cancel"): private(self.spot_cancel),
            ("GET", SWAP + "/server/time"): public(self.time),
            ("GET", SWAP + "/quote/contracts"): public(self.contracts),
            ("GET", SWAP + "/quote/ticker"): public(self.swap_ticker),
            ("GET", SWAP + "/quote/depth"): public(self.swap_depth),
            ("GET", SWAP + "/quote/trades"): public(self.swap_trades),
            ("GET", "/openApi/swap/v3/quote/klines"): public(self.swap_klines),
            ("GET", SWAP + "/quote/premiumIndex"): public(self.premium_index),
            ("GET", "/openApi/swap/v3/user/balance"): private(self.swap_balance),
            ("GET", SWAP + "/user/positions"): private(self.positions),
            ("POST", SWAP + "/trade/order"): private(self.swap_place),
            ("GET", SWAP + "/trade/order"): private(self.swap_query),
            ("DELETE", SWAP + "/trade/order"): private(self.swap_cancel),
            ("GET", SWAP + "/trade/openOrders"): private(self.swap_open_orders),
            ("GET", SWAP + "/trade/allOrders"): private(self.swap_all_orders),
            ("POST", SWAP + "/trade/leverage"): private(self.set_leverage),
            ("GET", SWAP + "/trade/leverage"): private(self.get_leverage),
            ("GET", "/openApi/swap/v1/positionSide/dual"): private(self.get_position_mode),
            ("POST", "/openApi/swap/v1/positionSide/dual"): private(self.set_position_mode),
        }

    # ------------------------------------------------------------------ envelope
    def envelope(self, data, code=0, message=""):
        return {"code": code, "msg": message, "timestamp": self.now_ms(), "data": data}

    def not_found(self, request):
        return 404, {"code": 100400, "msg": f"this api is not exist: {request.method} {request.path}"}

    def signature_of(self, request):
        return request.query.get("signature")

    def rate_limited(self):
        return 200, self.envelope({}, 100410, "rate limited: the request frequency is too high, try again later")

    def outcome_unknown(self):
        return 200, self.envelope({}, 100500, "Internal server error")        # unverified text

    def deadline_of(self, request):
        return self.deadline(self.params(request))

    @staticmethod
    def deadline(params):
        """timestamp + recvWindow (authenticate checked both are numbers)."""
        return int(params["timestamp"]) + int(params.get("recvWindow") or DEFAULT_RECV_WINDOW)

    def refuse_if_taken_late(self, params):
        """An order or cancel the engine takes after its recvWindow is refused, however it got late."""
        if self.now_ms() > self.deadline(params):
            raise Rejected(100421, "Null timestamp or timestamp mismatch")      # unverified text

    # ------------------------------------------------------------------ auth
    def public(self, function):
        """A handler returns `data` or raises Rejected; either becomes the envelope."""
        def answer(request):
            try:
                return 200, self.envelope(function(self.params(request)))
            except Rejected as error:
                return error.status, self.envelope({}, error.code, error.message)
        return answer

    def private(self, function):
        def answer(request):
            try:
                self.authenticate(request)
                return 200, self.envelope(function(self.params(request)))
            except Rejected as error:
                return error.status, self.envelope({}, error.code, error.message)
        return answer

    @staticmethod
    def params(request):
        return {k: v for k, v in request.query.items() if k != "signature"}

    @staticmethod
    def signed_string(request):
        """The parameter string the client signed: the query as sent, `signature` left out."""
        return "&".join(part for part in request.raw_query.split("&") if part and not part.startswith("signature="))

    def authenticate(self, request):
        key = request.headers.get("X-BX-APIKEY")
        if not key:
            raise Rejected(100413, "Null apiKey")
        if key != API_KEY:
            raise Rejected(100413, "Incorrect apiKey")
        query = request.query
        timestamp, window = query.get("timestamp", ""), query.get("recvWindow") or str(DEFAULT_RECV_WINDOW)
        server = request.arrived_ms
        if not timestamp.isdigit() or not window.isdigit() or int(window) > MAX_RECV_WINDOW \
                or not server - int(window) <= int(timestamp) < server + 1000:
            raise Rejected(100421, "Null timestamp or timestamp mismatch")      # unverified text
        expected = hmac.new(SECRET.encode(), self.signed_string(request).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, query.get("signature", "")):
            raise Rejected(100001, "Signature verification failed due to signature mismatch")

    # ------------------------------------------------------------------ parameters
    def spot_pair(self, params, required=True):
        name = params.get("symbol", "")
        pair = next((p for p in self.engine.markets if name_of(p) == name), None)
        if pair is None and (required or name):
            raise Rejected(109425, f"{name} not exist, please verify it")
        return pair

    def swap_pair(self, params, required=True):
        name = params.get("symbol", "")
        pair = next((p for p in LINEAR if name_of(p) == name), None)
        if pair is None and (required or name):
            raise Rejected(109425, f"{name} not exist, please verify it")
        return pair

    @staticmethod
    def number(params, name, required=True):
        text = params.get(name)
        if text in (None, ""):
            if required:
                raise Rejected(100400, f"miss arguments: {name}")
            return None
        try:
            value = D(text)
        except InvalidOperation:
            raise Rejected(100400, f"Invalid parameters, err: {name}") from None
        if not value.is_finite() or value < 0:
            raise Rejected(100400, f"Invalid parameters, err: {name}")
        return value

    @staticmethod
    def limit(params, default, maximum):
        text = params.get("limit", "")
        if text == "":
            return default
        if not text.isdigit() or not 1 <= int(text):
            raise Rejected(100400, "Invalid parameters, err: limit")
        return min(int(text), maximum)

    def coins(self, pair, contracts):
        return contracts * self.engine.swaps[pair]["ct_val"]

    # ------------------------------------------------------------------ market data
    def time(self, params):
        return {"serverTime": self.now_ms()}

    def spot_symbols(self, params):
        """GET /openApi/spot/v1/common/symbols: minQty/maxQty are deprecated in BingX's docs but
        still sent; status 1 = online."""
        rows = [{"symbol": name_of(pair), "minQty": float(spec["min"]), "maxQty": float(spec["max"]),
                 "minNotional": float(spec["min_notional"]), "maxNotional": 20000000, "status": 1,
                 "tickSize": float(spec["tick"]), "stepSize": float(spec["lot"]), "apiStateSell": True,
                 "apiStateBuy": True, "timeOnline": 0, "offTime": 0, "maintainTime": 0}
                for pair, spec in self.engine.markets.items()]
        rows.append({"symbol": "OLD-USDT", "minQty": 1, "maxQty": 100, "minNotional": 5, "maxNotional": 20000,
                     "status": 0, "tickSize": 0.01, "stepSize": 1, "apiStateSell": False, "apiStateBuy": False,
                     "timeOnline": 0, "offTime": 1700000000000, "maintainTime": 0})
        return {"symbols": rows}

    def _ticker(self, pair, swap):
        asks, bids = self.engine.book(pair, levels=1)
        mid = self.engine.spec(pair)["mid"]
        unit = self.engine.swaps[pair]["ct_val"] if swap else D(1)
        now = self.now_ms()
        row = {"symbol": name_of(pair), "priceChange": "100", "priceChangePercent": "0.2%",
               "lastPrice": fmt(mid), "highPrice": fmt(mid + 500), "lowPrice": fmt(mid - 500),
               "volume": "1234.5", "quoteVolume": "61725000", "openPrice": fmt(mid - 100),
               "openTime": now - 86_400_000, "closeTime": now,
               "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1] * unit),
               "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1] * unit)}
        if swap:
            row["lastQty"] = "0.01"           # only swap tickers carry lastQty
        else:
            row.update(bidPrice=float(bids[0][0]), askPrice=float(asks[0][0]))    # spot: numbers
        return row

    def spot_ticker(self, params):
        pairs = [self.spot_pair(params)] if params.get("symbol") else list(self.engine.markets)
        return [self._ticker(pair, swap=False) for pair in pairs]

    def spot_depth(self, params):
        """Both sides best last for asks: BingX's spot example lists asks descending."""
        pair = self.spot_pair(params)
        asks, bids = self.engine.book(pair, levels=self.limit(params, 20, 1000))
        now = self.now_ms()
        return {"bids": [[fmt(p), fmt(q)] for p, q in bids], "asks": [[fmt(p), fmt(q)] for p, q in reversed(asks)],
                "ts": now, "lastUpdateId": 13565639906}

    def spot_trades(self, params):
        pair = self.spot_pair(params)
        mid, now = self.engine.spec(pair)["mid"], self.now_ms()
        return [{"id": 43148253 - i, "price": float(mid + i), "qty": 0.01, "time": now - i * 1000,
                 "buyerMaker": bool(i % 2)} for i in range(self.limit(params, 100, 100))]     # newest first

    def _candles(self, pair, params):
        step = INTERVAL_MS.get(params.get("interval"))
        if step is None:
            raise Rejected(100400, "Invalid parameters, err: interval")
        limit = self.limit(params, 500, KLINE_MAX)
        offset = MONDAY_MS if step == INTERVAL_MS["1w"] else 0
        end = int(params.get("endTime") or self.now_ms())
        start = int(params.get("startTime") or 0)
        newest = (min(end, self.now_ms()) - offset) // step * step + offset
        if start:                              # from startTime forward, as BingX answers it
            first = (start - offset + step - 1) // step * step + offset
            times = [t for t in range(first, first + limit * step, step) if t <= newest]
        else:
            times = list(range(newest - (limit - 1) * step, newest + step, step))
        return step, [(t, *self.engine.candle(pair, t, step)[1:]) for t in times]

    def spot_kline(self, params):
        """Rows [openTime, open, high, low, close, volume, closeTime, quoteVolume], newest first."""
        step, rows = self._candles(self.spot_pair(params), params)
        return [[t, float(o), float(h), float(low), float(c), float(v), t + step - 1, float(v * c)]
                for t, o, h, low, c, v in reversed(rows)]

    def spot_balance(self, params):
        """The spot wallet: the engine's, less what the perpetual wallet holds."""
        rows = []
        for ccy, (free, frozen) in self.engine.balances.items():
            locked = frozen - sum(self.swap_margin(ccy))
            rows.append({"asset": ccy, "free": fmt(free), "locked": fmt(locked)})
        return {"balances": rows}

    def contracts(self, params):
        """GET /openApi/swap/v2/quote/contracts: precisions as digits, sizes in coins."""
        rows = []
        for pair, spec in LINEAR.items():
            lot = spec["lot"] * spec["ct_val"]
            rows.append({"contractId": str(100 + len(rows)), "symbol": name_of(pair), "size": "0.0001",
                         "quantityPrecision": precision_digits(lot), "pricePrecision": precision_digits(spec["tick"]),
                         "feeRate": 0.0005, "makerFeeRate": 0.0002, "takerFeeRate": 0.0005, "tradeMinLimit": 0,
                         "tradeMinQuantity": float(spec["min"] * spec["ct_val"]),
                         "tradeMinUSDT": float(MIN_NOTIONAL_SWAP),
                         "maxLongLeverage": spec["max_leverage"], "maxShortLeverage": spec["max_leverage"],
                         "currency": spec["settle"], "asset": pair[0], "status": 1, "apiStateOpen": "true",
                         "apiStateClose": "true", "ensureTrigger": True, "triggerFeeRate": "0.00020000"})
        return rows

    def swap_ticker(self, params):
        """One symbol: `data` is the ticker object; none: the list of every swap."""
        if params.get("symbol"):
            return self._ticker(self.swap_pair(params), swap=True)
        return [self._ticker(pair, swap=True) for pair in LINEAR]

    def swap_depth(self, params):
        pair = self.swap_pair(params)
        asks, bids = self.engine.book(pair, levels=self.limit(params, 20, 1000))
        side = lambda rows: [[fmt(p), fmt(self.coins(pair, q))] for p, q in rows]
        return {"T": self.now_ms(), "bids": side(bids), "asks": side(reversed(asks)),
                "bidsCoin": side(bids), "asksCoin": side(reversed(asks))}

    def swap_trades(self, params):
        pair = self.swap_pair(params)
        mid, now = self.engine.spec(pair)["mid"], self.now_ms()
        return [{"time": now - i * 1000, "isBuyerMaker": bool(i % 2), "price": fmt(mid + i), "qty": "0.01",
                 "quoteQty": fmt((mid + i) / 100)} for i in range(self.limit(params, 500, 1000))]

    def swap_klines(self, params):
        step, rows = self._candles(self.swap_pair(params), params)
        return [{"open": fmt(o), "close": fmt(c), "high": fmt(h), "low": fmt(low), "volume": fmt(v), "time": t}
                for t, o, h, low, c, v in reversed(rows)]

    def premium_index(self, params):
        def row(pair):
            funding, mid = self.engine.funding(pair), self.engine.swaps[pair]["mid"]
            return {"symbol": name_of(pair), "markPrice": fmt(mid), "indexPrice": fmt(mid),
                    "lastFundingRate": fmt(funding["rate"]), "nextFundingTime": funding["time"],
                    "fundingIntervalHours": funding["interval"] // 3_600_000}
        if params.get("symbol"):
            return row(self.swap_pair(params))
        return [row(pair) for pair in LINEAR]

    # ------------------------------------------------------------------ perpetual wallet and positions
    def swap_margin(self, currency):
        """(margin held by positions, margin frozen by resting swap orders) in a currency."""
        held = sum((p["margin"] for p in self.engine.positions.values()
                    if self.engine.swaps[p["pair"]]["settle"] == currency), D(0))
        ordered = sum((o["frozen"] for o in self.engine.orders.values() if o["pair"] in self.engine.swaps
                       and o["pay"] == currency and o["status"] in (OPEN, PARTIAL)), D(0))
        return held, ordered

    def swap_balance(self, params):
        """GET /openApi/swap/v3/user/balance: the USDT wallet is the margin the engine holds."""
        held, ordered = self.swap_margin("USDT")
        upl = sum((self.engine.unrealised(p) for p in self.engine.positions.values()), D(0))
        wallet = held + ordered
        return [{"userId": "116***295", "asset": "USDT", "balance": fmt(wallet), "equity": fmt(wallet + upl),
                 "unrealizedProfit": fmt(upl), "realisedProfit": "0", "availableMargin": fmt(max(upl, D(0))),
                 "usedMargin": fmt(held), "freezedMargin": fmt(ordered), "shortUid": "12851936"}]

    def positions(self, params):
        pair = self.swap_pair(params, required=False)
        rows = []
        for p in self.engine.open_positions(pair):
            spec, size = self.engine.swaps[p["pair"]], self.coins(p["pair"], p["size"])
            rows.append({"positionId": str(1792480725958881280 + len(rows)), "symbol": name_of(p["pair"]),
                         "currency": spec["settle"], "positionAmt": fmt(size), "availableAmt": fmt(
                             self.coins(p["pair"], self.engine.closable(p["pair"], p["side"]))),
                         "positionSide": "LONG" if p["side"] == LONG else "SHORT", "isolated": False,
                         "avgPrice": fmt(p["avg"]), "initialMargin": fmt(p["margin"]), "margin": fmt(p["margin"]),
                         "leverage": p["leverage"], "unrealizedProfit": fmt(self.engine.unrealised(p)),
                         "realisedProfit": fmt(p["realized"]), "liquidationPrice": 0, "pnlRatio": "0",
                         "maxMarginReduction": "0.0000", "riskRate": "0.0008", "markPrice": fmt(spec["mid"]),
                         "positionValue": fmt(size * spec["mid"]), "onlyOnePosition": not self.engine.hedge_mode,
                         "updateTime": p["updated"]})
        return rows

    def get_position_mode(self, params):
        return {"dualSidePosition": "true" if self.engine.hedge_mode else "false"}

    def set_position_mode(self, params):
        wanted = params.get("dualSidePosition")
        if wanted not in ("true", "false"):
            raise Rejected(100400, "Invalid parameters, err: dualSidePosition")
        try:
            self.engine.set_hedge_mode(wanted == "true")
        except Refused as error:
            raise refused(error, SWAP_REFUSALS) from None
        return {"dualSidePosition": wanted}

    def get_leverage(self, params):
        level = self.engine.leverage_of(self.swap_pair(params))
        return {"longLeverage": level, "shortLeverage": level}

    def set_leverage(self, params):
        """side LONG / SHORT (hedge mode) or BOTH (one-way mode); the engine keeps one leverage per swap."""
        pair = self.swap_pair(params)
        side = params.get("side")
        if side not in (("LONG", "SHORT") if self.engine.hedge_mode else ("LONG", "SHORT", "BOTH")):
            raise Rejected(80014, "Invalid parameters, err: side")
        level = self.number(params, "leverage")
        try:
            self.engine.set_leverage(pair, level)
        except Refused as error:
            raise refused(error, SWAP_REFUSALS) from None
        return {"leverage": int(level), "symbol": name_of(pair)}

    # ------------------------------------------------------------------ orders: shared rules
    def _order_fields(self, params):
        side, kind = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL") or kind not in ("LIMIT", "MARKET"):
            raise Rejected(100400, "Invalid parameters, err: side or type")
        client_id = params.get("newClientOrderId") or params.get("clientOrderID") or ""
        if client_id and not CLIENT_ID.match(client_id):
            raise Rejected(100400, "Invalid parameters, err: clientOrderID")
        price = self.number(params, "price") if kind == "LIMIT" else None
        return side.lower(), kind.lower(), price, client_id

    def _check_client_id(self, client_id, table):
        if client_id and any(o["client_id"] == client_id and o["status"] in (OPEN, PARTIAL)
                             for o in self.engine.orders.values()):
            code, message = table["duplicate_client_id"]
            raise Rejected(code, message)

    def _find(self, params, swap):
        """The order a query names by orderId or clientOrderID, on this API, or None."""
        order_id, client_id = params.get("orderId"), params.get("clientOrderID") or params.get("clientOrderId")
        matches = [o for o in self.engine.orders.values() if (o["pair"] in LINEAR) == swap
                   and name_of(o["pair"]) == params.get("symbol")
                   and (o["id"] == order_id if order_id else client_id and o["client_id"] == client_id)]
        return max(matches, key=lambda o: int(o["id"])) if matches else None

    # ------------------------------------------------------------------ spot orders
    def spot_place(self, params):
        self.refuse_if_taken_late(params)
        pair = self.spot_pair(params)
        side, kind, price, client_id = self._order_fields(params)
        self._check_client_id(client_id, SPOT_REFUSALS)
        quote = self.number(params, "quoteOrderQty", required=False)
        amount = self.number(params, "quantity", required=False)
        quote_amount = amount is None and quote is not None
        if quote_amount and not (kind == "market" and side == "buy"):
            raise Rejected(100400, "quoteOrderQty is accepted on market buys only")
        if (amount if not quote_amount else quote) in (None, D(0)):
            raise Rejected(100400, "quantity/quoteOrderQty can't both be lte 0")
        asks, bids = self.engine.book(pair, levels=1)
        value = quote if quote_amount else amount * (price or (asks if side == "buy" else bids)[0][0])
        spec = self.engine.markets[pair]
        if value < spec["min_notional"]:
            raise Rejected(100400, f"The minimum amount per order is {fmt(spec['min_notional'])} {pair[1]}")
        try:
            order = self.engine.place(pair, side, kind, quote if quote_amount else amount, price, "", quote_amount)
        except Refused as error:
            raise refused(error, SPOT_REFUSALS, fmt(spec["min"]) if error.reason == "below_min" else error.detail) \
                from None
        order["client_id"] = client_id
        row = self.render_spot(order)
        return {key: row[key] for key in ("symbol", "orderId", "transactTime", "price", "origQty", "executedQty",
                                          "cummulativeQuoteQty", "status", "type", "side", "clientOrderID")}

    def render_spot(self, order):
        """A spot order as GET /openApi/spot/v1/trade/query answers it (a market buy by quote amount
        has origQty 0 and the amount in origQuoteOrderQty)."""
        quote_amount = order["quote_amount"]
        return {"symbol": name_of(order["pair"]), "orderId": int(order["id"]),
                "price": fmt(order["price"]) if order["price"] else "0", "StopPrice": "0",
                "origQty": "0" if quote_amount else fmt(order["amount"]), "executedQty": fmt(order["filled"]),
                "cummulativeQuoteQty": fmt(order["cost"]), "status": SPOT_STATUS[order["status"]],
                "type": order["type"].upper(), "side": order["side"].upper(), "time": order["created"],
                "transactTime": order["created"], "updateTime": order["updated"],
                "origQuoteOrderQty": fmt(order["amount"]) if quote_amount else "0", "fee": "0",
                "feeAsset": order["pair"][0] if order["side"] == "buy" else order["pair"][1],
                "clientOrderID": order["client_id"]}

    def spot_query(self, params):
        self.spot_pair(params)
        order = self._find(params, swap=False)
        if order is None:
            raise Rejected(*SPOT_REFUSALS["unknown_order"])
        return self.render_spot(order)

    def spot_open_orders(self, params):
        pair = self.spot_pair(params, required=False)
        orders = [o for o in self.engine.listing((OPEN, PARTIAL), pair) if o["pair"] in self.engine.markets]
        return {"orders": [self.render_spot(o) for o in orders]}

    def spot_history(self, params):
        """Finished orders, newest first, paged by pageIndex (from 1) and pageSize (at most 100)."""
        pair = self.spot_pair(params)
        index, size = params.get("pageIndex", "1"), params.get("pageSize", "100")
        if not (index.isdigit() and size.isdigit() and int(index) >= 1 and 1 <= int(size) <= 100):
            raise Rejected(100400, "Invalid parameters, err: pageIndex or pageSize")
        start, end = int(params.get("startTime") or 0), int(params.get("endTime") or 2**62)
        found = [o for o in self.engine.listing((FILLED, CANCELED), pair) if start <= o["created"] <= end]
        first = (int(index) - 1) * int(size)
        return {"orders": [self.render_spot(o) for o in found[first:first + int(size)]]}

    def spot_cancel(self, params):
        self.refuse_if_taken_late(params)
        self.spot_pair(params)
        order = self._find(params, swap=False)
        try:
            if order is None:
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            raise refused(error, SPOT_REFUSALS) from None
        row = self.render_spot(order)
        return {key: row[key] for key in ("symbol", "orderId", "price", "origQty", "executedQty",
                                          "cummulativeQuoteQty", "status", "type", "side")}

    # ------------------------------------------------------------------ swap orders
    def swap_place(self, params):
        """positionSide BOTH in one-way mode (reduceOnly may only reduce), LONG / SHORT in hedge mode
        (where reduceOnly is not taken); quantity in coins."""
        self.refuse_if_taken_late(params)
        pair = self.swap_pair(params)
        side, kind, price, client_id = self._order_fields(params)
        self._check_client_id(client_id, SWAP_REFUSALS)
        position_side = params.get("positionSide", "BOTH")
        hedge = self.engine.hedge_mode
        if position_side not in (("LONG", "SHORT") if hedge else ("BOTH",)):
            raise Rejected(*SWAP_REFUSALS["position_side_required"])
        reduce_only = params.get("reduceOnly") == "true"
        if hedge and reduce_only:
            raise Rejected(80014, "Invalid parameters, err: reduceOnly is not taken in hedge mode")
        quantity = self.number(params, "quantity")
        spec = self.engine.swaps[pair]
        closes = reduce_only or (hedge and (side == "sell") == (position_side == "LONG"))
        if not closes and quantity * (price or spec["mid"]) < MIN_NOTIONAL_SWAP:
            raise Rejected(110425, f"Please ensure that the minimum nominal value of the order placed must be "
                                   f"greater than {fmt(MIN_NOTIONAL_SWAP)}u")
        try:
            order = self.engine.place(pair, side, kind, quantity / spec["ct_val"], price, "",
                                      position_side={"LONG": LONG, "SHORT": SHORT}.get(position_side),
                                      reduce_only=reduce_only)
        except Refused as error:
            if error.reason == "below_min":
                raise refused(error, SWAP_REFUSALS, fmt(spec["min"] * spec["ct_val"]) + " " + pair[0]) from None
            if error.reason == "close_exceeds_position":
                raise refused(error, SWAP_REFUSALS, fmt(self.coins(pair, D(error.detail)))) from None
            raise refused(error, SWAP_REFUSALS) from None
        order["client_id"] = client_id
        return {"order": {"symbol": name_of(pair), "orderId": int(order["id"]), "side": side.upper(),
                          "positionSide": position_side, "type": kind.upper(), "clientOrderID": client_id,
                          "workingType": "MARK_PRICE", "price": fmt(price) if price else "0",
                          "quantity": fmt(quantity), "reduceOnly": reduce_only}}

    def render_swap(self, order):
        avg, unit = self.engine.avg_price(order), self.engine.swaps[order["pair"]]["ct_val"]
        position_side = {LONG: "LONG", SHORT: "SHORT"}.get(order.get("position_side"), "BOTH")
        return {"symbol": name_of(order["pair"]), "orderId": int(order["id"]), "side": order["side"].upper(),
                "positionSide": position_side, "type": order["type"].upper(), "origQty": fmt(order["amount"] * unit),
                "price": fmt(order["price"]) if order["price"] else "0", "executedQty": fmt(order["filled"] * unit),
                "avgPrice": fmt(avg) if avg else "0.0", "cumQuote": fmt(order["cost"] * unit), "stopPrice": "",
                "profit": "0.0000", "commission": "0.000000", "status": SWAP_STATUS[order["status"]],
                "time": order["created"], "updateTime": order["updated"], "clientOrderId": order["client_id"],
                "leverage": f"{order['leverage']}X", "workingType": "MARK_PRICE",
                "onlyOnePosition": position_side == "BOTH", "reduceOnly": bool(order.get("reduce_only"))}

    def swap_query(self, params):
        self.swap_pair(params)
        order = self._find(params, swap=True)
        if order is None:
            raise Rejected(*SWAP_REFUSALS["unknown_order"])
        return {"order": self.render_swap(order)}

    def swap_cancel(self, params):
        self.refuse_if_taken_late(params)
        self.swap_pair(params)
        order = self._find(params, swap=True)
        try:
            if order is None:
                raise Refused("unknown_order")
            self.engine.cancel(order["id"])
        except Refused as error:
            raise refused(error, SWAP_REFUSALS) from None
        return {"order": self.render_swap(order)}

    def swap_open_orders(self, params):
        pair = self.swap_pair(params, required=False)
        orders = [o for o in self.engine.listing((OPEN, PARTIAL), pair) if o["pair"] in LINEAR]
        return {"orders": [self.render_swap(o) for o in orders]}

    def swap_all_orders(self, params):
        """Every order of a swap (open ones too) created in [startTime, endTime], at most `limit`
        (default 500, at most 1000), newest first."""
        pair = self.swap_pair(params)
        limit = self.limit(params, 500, 1000)
        start, end = int(params.get("startTime") or 0), int(params.get("endTime") or 2**62)
        found = [o for o in self.engine.listing((OPEN, PARTIAL, FILLED, CANCELED), pair)
                 if start <= o["created"] <= end]
        return {"orders": [self.render_swap(o) for o in found[:limit]]}


    # ------------------------------------------------------------------ WebSocket
    @staticmethod
    def _ws_kind(session):
        return "swap" if session.path.split("?")[0] == "/swap-market" else "spot"

    def ws_send(self, session, message):
        """Every message gzip-compressed in a binary frame, as BingX sends them."""
        text = message if isinstance(message, str) else json.dumps(message)
        session.send_binary(gzip.compress(text.encode()))

    def ws_market(self, session):
        kind = self._ws_kind(session)
        with self.lock:
            self.ws_subscriptions[session] = set()
        pinged = None                     # (ping id, when) of the unanswered ping
        try:
            while True:
                if pinged is not None and time.monotonic() - pinged[1] > self.ws_pong_limit:
                    return session.close(1000)
                try:
                    message = session.receive(timeout=self.ws_ping_every or 0.5)
                except socket.timeout:
                    if self.ws_ping_every and pinged is None:
                        pinged = (uuid.uuid4().hex, time.monotonic())
                        self.ws_send(session, "Ping" if kind == "swap" else
                                     {"ping": pinged[0], "time": time.strftime("%Y-%m-%dT%H:%M:%S.000+0800")})
                    continue
                self.ws_note(session, message)
                if message == "Pong" and kind == "swap":
                    pinged = None
                    continue
                try:
                    request = json.loads(message)
                except ValueError:
                    self.ws_send(session, {"code": 100400, "msg": "invalid message", "timestamp": self.now_ms()})
                    continue
                if isinstance(request, dict) and "pong" in request and kind == "spot":
                    pinged = None if pinged and request["pong"] == pinged[0] else pinged
                    continue
                self.ws_request(session, kind, request)
        finally:
            with self.lock:
                self.ws_subscriptions.pop(session, None)

    def ws_request(self, session, kind, request):
        request = request if isinstance(request, dict) else {}
        request_id, op, name = request.get("id"), request.get("reqType", "sub"), request.get("dataType", "")
        match = WS_DATA_TYPE.fullmatch(name) if isinstance(name, str) else None
        pair = self._ws_pair(kind, match.group(1)) if match else None
        if op not in ("sub", "unsub") or pair is None:
            return self.ws_send(session, {"id": request_id, "code": 100400,
                                          "msg": f"dataType {str(name)[:60]} not supported", "timestamp": self.now_ms()})
        with self.lock:
            subscribed = self.ws_subscriptions[session]
            subscribed.add(name) if op == "sub" else subscribed.discard(name)
            answer = {"id": request_id, "code": 0, "msg": "", "dataType": "", "data": None} if kind == "swap" else \
                {"code": 0, "id": request_id, "msg": "SUCCESS", "timestamp": self.now_ms()}
            self.ws_send(session, answer)
            if op == "sub" and match.group(2) != "trade":
                self.ws_send(session, self._ws_payload(pair, name, match.group(2)))
            self.ws_changed.notify_all()

    def _ws_pair(self, kind, name):
        listed = LINEAR if kind == "swap" else self.engine.markets
        return next((pair for pair in listed if name_of(pair) == name), None)

    def _ws_payload(self, pair, name, channel, trade=None):
        swap, now = pair in LINEAR, self.now_ms()
        unit = self.engine.swaps[pair]["ct_val"] if swap else D(1)
        if channel == "ticker":
            t = self._ticker(pair, swap)
            data = {"e": "24hTicker", "E": now, "s": name_of(pair), "p": t["priceChange"],
                    "P": t["priceChangePercent"], "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
                    "c": t["lastPrice"], "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
                    "C": t["closeTime"], "A": fmt(D(str(t["askPrice"]))), "a": t["askQty"],
                    "B": fmt(D(str(t["bidPrice"]))), "b": t["bidQty"]}
            return {"code": 0, "dataType": name, "timestamp": now, "data": data}
        if channel.startswith("depth"):
            asks, bids = self.engine.book(pair, levels=int(channel[5:]))
            side = lambda rows: [[fmt(p), fmt(q * unit)] for p, q in rows]
            asks = side(reversed(asks)) if swap else side(asks)          # the swap examples: asks best last
            if swap:
                return {"code": 0, "dataType": name, "ts": now, "data": {"bids": side(bids), "asks": asks}}
            return {"code": 0, "dataType": name, "timestamp": now, "success": True,
                    "data": {"bids": side(bids), "asks": asks, "lastUpdateId": next(self._trade_ids)}}
        side, price, amount = trade
        row = {"p": fmt(price), "q": fmt(amount * unit), "T": now, "m": side == "sell", "s": name_of(pair)}
        if swap:
            return {"code": 0, "dataType": name, "data": [row]}
        return {"code": 0, "dataType": name, "success": True,
                "data": {"e": "trade", "E": now, "t": str(next(self._trade_ids)), **row}}

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the ticker and the books move."""
        if not self.ws_subscriptions or not (pair in self.engine.markets or pair in LINEAR):
            return
        kind = "swap" if pair in LINEAR else "spot"
        for session, names in self.ws_subscriptions.items():
            if self._ws_kind(session) != kind:
                continue
            for name in sorted(names):
                match = WS_DATA_TYPE.fullmatch(name)
                if match.group(1) == name_of(pair):
                    self.ws_send(session, self._ws_payload(pair, name, match.group(2), (side, price, amount)))
