"""A fake Coinbase Advanced Trade API v3 (spot) with real state, for tests. Shapes follow
Coinbase's API reference (https://docs.cdp.coinbase.com/advanced-trade/reference) and the replies
CCXT recorded (ts/src/test/static/response/coinbase.json): a success is the endpoint's object
({"products": [...]}, {"order": {...}}), a refusal {"error": "NOT_FOUND", "error_details": "...",
"message": "..."} with a 4xx status, a refused JWT HTTP 401 with the text "Unauthorized", and an
order or cancel refused with HTTP 200 and `success: false` (error_response / failure_reason).

It verifies every private call's JWT as Coinbase documents it, with the `cryptography` package
(an implementation independent of exchanges/_ecc.py): `Authorization: Bearer <JWS>`; header alg
ES256 (r||s, 64 bytes) or EdDSA as the key is, kid = the key name, a nonce never seen before,
typ JWT; claims iss "cdp" (or the older "coinbase-cloud" CCXT still sends), sub == kid,
nbf <= now < exp, exp - nbf <= 120 s, and uri "METHOD api.coinbase.com/path" for this very
request, no query string (or `uris`, a list of that one, as CCXT writes it for Ed25519 keys).
Two keys are known: an EC P-256 key (SECRET_KEY, a PEM with literal \\n as CDP's JSON download
writes it) and an Ed25519 key (ED25519_NAME / ED25519_SECRET).

State lives in the shared engine (tests/fakes/engine.py); this file speaks Coinbase's dialect:
BTC-USDT product ids, UUID order ids (the last group is the engine's 12-digit id), BUY/SELL,
RFC 3339 times with microseconds, newest-first lists paged with cursor/has_next. A client_order_id
used before (by any order, open or not) makes no new order: the order that has it is answered,
as Coinbase documents.

Its market-data WebSocket (wss://advanced-trade-ws.coinbase.com; "WebSocket Overview" and
"WebSocket Channels") is served on the same port at / : {"type": "subscribe" | "unsubscribe",
"product_ids": [...], "channel": ...} (one channel a message; CCXT's api_key, timestamp and signature
fields, or a jwt, are taken and not needed: market data is public), answered {"channel":
"subscriptions", "events": [{"subscriptions": {channel: [product ids]}}]} (the session's channels
after the change), or {"type": "error", "message"} for a channel or product it does not have.
Every message carries the session's sequence_num (0, 1, 2, ...). Channels: heartbeats (one on
subscribing, then `push_heartbeat()`), ticker (a snapshot on subscribing, an update after every
fill), level2 (sent as "l2_data": the whole book as a snapshot on subscribing, then the changed
levels), market_trades (the latest 50 trades, newest first, on subscribing, then every fill of the
engine). Tests move the stream with `push_book_update`, `ws_drop()` and `fault_next_book = "gap"`
(the next level2 update skips a sequence_num).
"""
import base64
import itertools
import json
import re
import urllib.parse
import uuid
from datetime import datetime, timezone
from decimal import Decimal as D, InvalidOperation

from tests.fakes.base import FakeExchange
from tests.fakes.engine import CANCELED, FILLED, OPEN, PARTIAL, Engine, Refused, fmt

KEY_NAME = "organizations/0f1e2d3c-fmz-test-org/apiKeys/4b5a6978-fmz-test-key"
EC_PEM = ("-----BEGIN EC PRIVATE KEY-----\n"
          "MHcCAQEEIFFUxOog11Qkw1u5uoz78N4GoADpri1b/BE3iGjBrcpioAoGCCqGSM49\n"
          "AwEHoUQDQgAE/AqDxkwvQHIQFE2KpcPWEkyzFb8F1Zh6xE7COOvxj7F+eA5nWV0q\n"
          "gOTc//cTTJw0h5LS3FPHJCCXDtwnc3OJxw==\n"
          "-----END EC PRIVATE KEY-----\n")
EC_PKCS8_PEM = ("-----BEGIN PRIVATE KEY-----\n"
                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUVTE6iDXVCTDW7m6\n"
                "jPvw3gagAOmuLVv8ETeIaMGtymKhRANCAAT8CoPGTC9AchAUTYqlw9YSTLMVvwXV\n"
                "mHrETsI46/GPsX54DmdZXSqA5Nz/9xNMnDSHktLcU8ckIJcO3Cdzc4nH\n"
                "-----END PRIVATE KEY-----\n")
ED25519_NAME = "7d3f1c2a-5b6e-4f80-9a1b-fmz0ed25519"
ED25519_SECRET = "gHiQj0cBcbLKbFthR2+EzxTXcyKBTdJrCLRwIVumcjzkN/KqQyfY0DOtiRM/Y8k1dHjs2CSOdNL+IDmDfaesDw=="
JWT_HOST = "api.coinbase.com"
ISSUERS = ("cdp", "coinbase-cloud")     # the docs' issuer, and the older one CCXT still signs ES256 with
JWT_MAX_LIFETIME = 120
API = "/api/v3/brokerage"
FIRST_ORDER_ID = 100000000001
GRANULARITY_S = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900, "THIRTY_MINUTE": 1800,
                 "ONE_HOUR": 3600, "TWO_HOUR": 7200, "SIX_HOUR": 21600, "ONE_DAY": 86400}
CANDLE_MAX, BOOK_MAX, TRADES_MAX = 350, 500, 1000
ORDERS_PAGE_MAX, ACCOUNTS_PAGE_DEFAULT, ACCOUNTS_PAGE_MAX = 1000, 49, 250
STATUSES = {OPEN: "OPEN", PARTIAL: "OPEN", FILLED: "FILLED", CANCELED: "CANCELLED"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ORDER_FIELDS = {"client_order_id", "product_id", "side", "order_configuration", "self_trade_prevention_id",
                "leverage", "margin_type", "retail_portfolio_id", "preview_id"}
# Engine refusals -> (error, preview_failure_reason, message) of an order answered success: false
ORDER_REFUSALS = {
    "insufficient": ("INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND", "Insufficient balance in source account"),
    "below_min": ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL", "base size is too small"),
    "below_min_quote": ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL", "quote size is too small"),
    "bad_amount": ("INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION", "Invalid order size precision"),
    "bad_price": ("INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION", "Invalid price precision"),
    "unknown_symbol": ("INVALID_PRODUCT_ID", "PREVIEW_INVALID_PRODUCT_ID", "Invalid product_id"),
}


def product_of(pair):
    return f"{pair[0]}-{pair[1]}"


def iso(ms):
    """RFC 3339 with microseconds, as Coinbase writes its times."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}000Z"


def parse_iso(text):
    return int(datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)


def _b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class Rejected(Exception):
    """Coinbase refuses the request: {"error", "error_details", "message"} with this status."""

    def __init__(self, error, message, status=400):
        super().__init__(message)
        self.error, self.message, self.status = error, message, status


def public_keys():
    """{key name: (alg, public key object)} of the keys this fake knows, loaded with cryptography."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    ec_key = serialization.load_pem_private_key(EC_PEM.encode(), password=None)
    seed = base64.b64decode(ED25519_SECRET)[:32]
    ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return {KEY_NAME: ("ES256", ec_key.public_key()), ED25519_NAME: ("EdDSA", ed_key.public_key())}


def signature_valid(alg, public, signing_input, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    try:
        if alg == "ES256":
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(signature, signing_input)
    except InvalidSignature:
        return False
    return True


class FakeCoinbase(FakeExchange):
    NAME = "Coinbase"
    ACCESS_KEY = KEY_NAME
    SECRET_KEY = EC_PEM.replace("\n", "\\n")          # pasted into FMZ's one-line field
    ORDER_PATH, TIME_PATH = f"{API}/orders", f"{API}/time"
    CANCEL_ROUTE = ("POST", f"{API}/orders/batch_cancel")
    CODES = {"unknown_symbol": "NOT_FOUND", "unknown_order": "NOT_FOUND", "order_closed": "UNKNOWN_CANCEL_ORDER",
             "insufficient": "INSUFFICIENT_FUND", "bad_amount": "INVALID_SIZE_PRECISION",
             "bad_price": "INVALID_PRICE_PRECISION", "below_min": "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"}
    FOREIGN_ORDER_ID = "1be6d0df-d5dc-4b53-a250-3376f3b393e6"     # well-formed, never placed
    CLIENT_ID = UUID
    SWAPS = ()
    DEADLINES = False

    def __init__(self):
        super().__init__()
        self.engine = Engine(self.now_ms, first_id=FIRST_ORDER_ID)
        self.keys = public_keys()
        self.nonces = set()               # JWT nonces seen: a replayed token is refused
        self.jwts = []                    # (header, claims) of every verified JWT, oldest first
        self.order_ids = {}               # engine id -> the UUID Coinbase showed for it
        self.configurations = {}          # engine id -> order_configuration as placed
        self.orders_page_max = ORDERS_PAGE_MAX
        self.accounts_page_max = ACCOUNTS_PAGE_MAX
        self.routes = {
            ("GET", f"{API}/time"): self.public(self.time),
            ("GET", f"{API}/market/products"): self.public(self.products),
            ("GET", f"{API}/market/product_book"): self.public(self.product_book),
            ("GET", f"{API}/accounts"): self.private(self.accounts),
            ("GET", f"{API}/transaction_summary"): self.private(self.transaction_summary),
            ("POST", f"{API}/orders"): self.private(self.place),
            ("POST", f"{API}/orders/batch_cancel"): self.private(self.batch_cancel),
            ("GET", f"{API}/orders/historical/batch"): self.private(self.list_orders),
        }
        self.engine.watchers.append(self.stream_fill)
        self.ws_routes = {"/": self.ws_session, "": self.ws_session}
        self.ws_subscriptions = {}        # session -> {(channel, product id)}
        self.ws_sequence = {}             # session -> the sequence_num of its next message
        self.ws_books = {}                # product id -> {"asks": {price: size}, "bids": {price: size}}
        self.fault_next_book = None       # "gap": the next level2 update skips a sequence_num
        self._trade_ids = itertools.count(90000001)

    # ------------------------------------------------------------------ envelope
    def route(self, request):
        """Paths with an id in them: /market/products/{id}[/ticker|/candles], /orders/historical/{id}."""
        parts = request.path[len(API):].split("/") if request.path.startswith(API + "/") else []
        if request.method == "GET" and parts[1:3] == ["market", "products"] and len(parts) in (4, 5):
            handler = {4: self.product, 5: {"ticker": self.ticker, "candles": self.candles}.get(parts[-1])}[len(parts)]
            if handler is not None:
                with self.lock:
                    return self.public(lambda r: handler(r, parts[3]))(request)
        if request.method == "GET" and parts[1:3] == ["orders", "historical"] and len(parts) == 4 \
                and parts[3] not in ("batch", "fills"):
            with self.lock:
                return self.private(lambda r: self.get_order(r, parts[3]))(request)
        return super().route(request)

    def public(self, function):
        def answer(request):
            try:
                return 200, function(request)
            except Rejected as error:
                return error.status, {"error": error.error, "error_details": error.message, "message": error.message}
        return answer

    def private(self, function):
        def checked(request):
            return self.authenticate(request) or self.public(function)(request)
        return checked

    def not_found(self, request):
        return 404, b"404 page not found\n"

    def rate_limited(self):
        return 429, {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}

    def outcome_unknown(self):
        return 500, {"error": "INTERNAL", "error_details": "internal error", "message": "internal error"}

    def signature_of(self, request):
        token = request.headers.get("Authorization", "")
        return token.rsplit(".", 1)[-1] if token.startswith("Bearer ") else None

    def deadline_of(self, request):
        """None: Coinbase's orders carry no validity deadline (the JWT lives 120 s); a client
        order id never makes two orders, which is the plugin's proof instead."""
        return None

    # ------------------------------------------------------------------ auth
    def authenticate(self, request):
        """None when the JWT is good; else (401, "Unauthorized"), all Coinbase ever says."""
        try:
            self._verify_jwt(request)
        except ValueError:
            return 401, b"Unauthorized\n"
        return None

    def _verify_jwt(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        parts = token.split(".")
        if scheme != "Bearer" or len(parts) != 3:
            raise ValueError("no bearer JWT")
        try:
            header, claims = (json.loads(_b64url_decode(p)) for p in parts[:2])
            signature = _b64url_decode(parts[2])
        except (ValueError, TypeError):
            raise ValueError("not a JWT") from None
        alg, public = self.keys.get(header.get("kid"), (None, None))
        if public is None or header.get("alg") != alg or header.get("typ") != "JWT":
            raise ValueError("unknown key or wrong alg")
        nonce = header.get("nonce")
        if not isinstance(nonce, str) or not re.fullmatch(r"[0-9a-f]{16,64}", nonce) or nonce in self.nonces:
            raise ValueError("nonce missing or replayed")
        now_s = self.now_ms() / 1000
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if claims.get("iss") not in ISSUERS or claims.get("sub") != header["kid"]:
            raise ValueError("iss or sub")
        if not (isinstance(nbf, int) and isinstance(exp, int) and nbf <= now_s < exp and exp - nbf <= JWT_MAX_LIFETIME):
            raise ValueError("outside nbf..exp")
        uris = claims.get("uris") if "uris" in claims else [claims.get("uri")]
        if uris != [f"{request.method} {JWT_HOST}{request.path}"]:
            raise ValueError("uri is another request's")
        if not signature_valid(alg, public, f"{parts[0]}.{parts[1]}".encode(), signature):
            raise ValueError("bad signature")
        self.nonces.add(nonce)
        self.jwts.append((header, claims))

    # ------------------------------------------------------------------ market data
    def time(self, request):
        now = self.now_ms()
        return {"iso": iso(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)}

    def _pair(self, product):
        parts = tuple(str(product or "").split("-"))
        if len(parts) != 2 or parts not in self.engine.markets:
            raise Rejected("NOT_FOUND", f"ProductID {str(product)[:40]} could not be found", 404)
        return parts

    def _product(self, pair, spec):
        mid = spec["mid"]
        return {
            "product_id": product_of(pair), "price": fmt(mid), "price_percentage_change_24h": "2.04081632653061",
            "volume_24h": "1234.5", "volume_percentage_change_24h": "-3.5", "base_increment": fmt(spec["lot"]),
            "quote_increment": fmt(spec["tick"]), "quote_min_size": fmt(spec["min_notional"]),
            "quote_max_size": "10000000", "base_min_size": fmt(spec["min"]), "base_max_size": fmt(spec["max"]),
            "base_name": pair[0], "quote_name": pair[1], "watched": False, "is_disabled": False, "new": False,
            "status": "online", "cancel_only": False, "limit_only": False, "post_only": False,
            "trading_disabled": False, "auction_mode": False, "product_type": "SPOT",
            "quote_currency_id": pair[1], "base_currency_id": pair[0], "fcm_trading_session_details": None,
            "mid_market_price": "", "alias": "", "alias_to": [], "base_display_symbol": pair[0],
            "quote_display_symbol": pair[1], "view_only": False, "price_increment": fmt(spec["tick"]),
            "display_name": f"{pair[0]}/{pair[1]}", "product_venue": "CBE",
        }

    def products(self, request):
        """Spot products, a disabled one and a future (left out when product_type=SPOT is asked)."""
        rows = [self._product(pair, spec) for pair, spec in self.engine.markets.items()]
        old = dict(self._product(("BTC", "USDT"), self.engine.markets[("BTC", "USDT")]),
                   product_id="OLD-USDT", base_currency_id="OLD", trading_disabled=True, status="delisted", price="")
        future = dict(self._product(("BTC", "USDT"), self.engine.markets[("BTC", "USDT")]),
                      product_id="BIT-31JAN25-CDE", product_type="FUTURE", base_currency_id="", quote_currency_id="USD")
        rows += [old] if request.query.get("product_type", "SPOT") == "SPOT" else [old, future]
        return {"products": rows, "num_products": len(rows)}

    def product(self, request, product):
        pair = self._pair(product)
        return self._product(pair, self.engine.markets[pair])

    def product_book(self, request):
        pair = self._pair(request.query.get("product_id"))
        limit = self._int(request, "limit", 1, BOOK_MAX, 50)
        asks, bids = self.engine.book(pair, levels=limit)
        side = lambda levels: [{"price": fmt(p), "size": fmt(a)} for p, a in levels]
        return {"pricebook": {"product_id": product_of(pair), "bids": side(bids), "asks": side(asks),
                              "time": iso(self.now_ms())},
                "last": fmt(self.engine.markets[pair]["mid"]), "mid_market": fmt(self.engine.markets[pair]["mid"]),
                "spread_bps": "2", "spread_absolute": fmt(self.engine.markets[pair]["step"])}

    def ticker(self, request, product):
        """The latest trades, newest first, with the best bid and ask."""
        pair = self._pair(product)
        limit = self._int(request, "limit", 1, TRADES_MAX, 100)
        asks, bids = self.engine.book(pair, levels=1)
        trades = [dict(trade, bid="", ask="") for trade in self._recent(pair, limit)]
        return {"trades": trades, "best_bid": fmt(bids[0][0]), "best_ask": fmt(asks[0][0])}

    def _recent(self, pair, limit):
        """The latest trades, newest first (the engine keeps no public trades: made up around mid)."""
        now, mid = self.now_ms(), self.engine.markets[pair]["mid"]
        return [{"trade_id": str(90000000 - i), "product_id": product_of(pair), "price": fmt(mid + i),
                 "size": "0.01", "time": iso(now - i * 1000), "side": "BUY" if i % 2 else "SELL"}
                for i in range(limit)]

    def candles(self, request, product):
        """Newest first; start <= open time < end; at most 350."""
        pair = self._pair(product)
        granularity = request.query.get("granularity", "")
        if granularity not in GRANULARITY_S:
            raise Rejected("INVALID_ARGUMENT", f"granularity {granularity[:20]!r} is not valid")
        step = GRANULARITY_S[granularity]
        start, end = self._int(request, "start", 0, 10 ** 11), self._int(request, "end", 0, 10 ** 11)
        limit = self._int(request, "limit", 1, CANDLE_MAX, CANDLE_MAX)
        if end <= start or (end - start) // step > CANDLE_MAX:
            raise Rejected("INVALID_ARGUMENT", "start and end argument is invalid - number of candles requested "
                                               "should be less than 350")
        rows, ts = [], (min(end, self.now_ms() // 1000) - 1) // step * step
        while ts >= start and len(rows) < limit:
            _, o, h, low, c, vol = self.engine.candle(pair, ts * 1000, step * 1000)
            rows.append({"start": str(ts), "low": fmt(low), "high": fmt(h), "open": fmt(o), "close": fmt(c),
                         "volume": fmt(vol)})
            ts -= step
        return {"candles": rows}

    def _int(self, request, name, low, high, default=None):
        value = request.query.get(name)
        if value is None and default is not None:
            return default
        if value is None or not value.isdigit() or not low <= int(value) <= high:
            raise Rejected("INVALID_ARGUMENT", f"{name} is invalid")
        return int(value)

    # ------------------------------------------------------------------ account
    def accounts(self, request):
        """Every currency's wallet (zero balances too), cursor-paged, 49 a page by default."""
        rows = [{"uuid": str(uuid.uuid5(uuid.NAMESPACE_OID, ccy)), "name": f"{ccy} Wallet", "currency": ccy,
                 "available_balance": {"value": fmt(free), "currency": ccy}, "default": True, "active": True,
                 "created_at": "2023-01-19T14:58:29.000Z", "updated_at": iso(self.now_ms()), "deleted_at": None,
                 "type": "ACCOUNT_TYPE_CRYPTO", "ready": True, "hold": {"value": fmt(frozen), "currency": ccy},
                 "retail_portfolio_id": "7d1a5c3e-0000-4000-8000-000000000001", "platform": "ACCOUNT_PLATFORM_CONSUMER"}
                for ccy, (free, frozen) in sorted(self.engine.balances.items())]
        limit = min(self._int(request, "limit", 1, ACCOUNTS_PAGE_MAX, ACCOUNTS_PAGE_DEFAULT), self.accounts_page_max)
        page, cursor, more = self._page(rows, request, limit)
        return {"accounts": page, "has_next": more, "cursor": cursor, "size": len(page)}

    def transaction_summary(self, request):
        """The fee tier (CCXT reads it while loading markets)."""
        return {"total_volume": 0, "total_fees": 0, "fee_tier": {
                    "pricing_tier": "Advanced 1", "usd_from": "0", "usd_to": "1000",
                    "taker_fee_rate": "0.012", "maker_fee_rate": "0.006"},
                "margin_rate": None, "goods_and_services_tax": None, "advanced_trade_only_volume": 0,
                "advanced_trade_only_fees": 0, "coinbase_pro_volume": 0, "coinbase_pro_fees": 0}

    def _page(self, rows, request, limit):
        """One page of rows from the opaque cursor (an offset here): (rows, next cursor, has_next)."""
        cursor = request.query.get("cursor") or ""
        try:
            start = int(base64.b64decode(cursor).decode()) if cursor else 0
        except ValueError:
            raise Rejected("INVALID_ARGUMENT", "cursor is invalid") from None
        page = rows[start:start + limit]
        more = start + limit < len(rows)
        return page, base64.b64encode(str(start + limit).encode()).decode() if more else "", more

    # ------------------------------------------------------------------ trading
    def place(self, request):
        try:
            body = request.json()
        except ValueError:
            raise Rejected("INVALID_ARGUMENT", "invalid character in request body") from None
        if not isinstance(body, dict):
            raise Rejected("INVALID_ARGUMENT", "request body must be an object")
        for name in body:
            if name not in ORDER_FIELDS:
                raise Rejected("INVALID_ARGUMENT", f'unknown field "{name}"')
        client_id = body.get("client_order_id")
        if not isinstance(client_id, str) or not client_id:
            raise Rejected("INVALID_ARGUMENT", "client_order_id is required")
        side = body.get("side")
        if side not in ("BUY", "SELL"):
            raise Rejected("INVALID_ARGUMENT", "side is invalid")
        configuration = body.get("order_configuration")
        if not isinstance(configuration, dict) or len(configuration) != 1:
            raise Rejected("INVALID_ARGUMENT", "order_configuration must have exactly one configuration")
        used = self.engine.find(client_id=client_id)
        if used is not None:                 # Coinbase answers the order that has this id
            return self._placed(used, configuration)
        pair = tuple(str(body.get("product_id", "")).split("-"))
        if pair not in self.engine.markets:
            return self._refused("unknown_symbol", side, body)
        kind, amount, price, quote = self._size(configuration, side)
        if quote and amount < self.engine.markets[pair]["min_notional"]:
            return self._refused("below_min_quote", side, body)
        try:
            order = self.engine.place(pair, side.lower(), kind, amount, price, client_id=client_id, quote_amount=quote)
        except Refused as error:
            return self._refused(error.reason, side, body)
        self.configurations[order["id"]] = configuration
        return self._placed(order, configuration)

    @staticmethod
    def _size(configuration, side):
        """(kind, amount, price, by quote) of limit_limit_gtc or market_market_ioc."""
        (name, fields), = configuration.items()
        if not isinstance(fields, dict):
            raise Rejected("INVALID_ARGUMENT", f"{name} must be an object")

        def number(field):
            try:
                value = D(str(fields.get(field)))
            except InvalidOperation:
                raise Rejected("INVALID_ARGUMENT", f"{name}.{field} is invalid") from None
            if not value.is_finite() or value <= 0:
                raise Rejected("INVALID_ARGUMENT", f"{name}.{field} is invalid")
            return value

        if name == "limit_limit_gtc":
            unknown = set(fields) - {"base_size", "limit_price", "post_only"}
            if unknown or not all(isinstance(fields.get(f), str) for f in ("base_size", "limit_price")):
                raise Rejected("INVALID_ARGUMENT", "limit_limit_gtc takes base_size and limit_price as strings")
            return "limit", number("base_size"), number("limit_price"), False
        if name == "market_market_ioc":
            if set(fields) not in ({"quote_size"}, {"base_size"}) or not all(isinstance(v, str)
                                                                              for v in fields.values()):
                raise Rejected("INVALID_ARGUMENT", "market_market_ioc takes one of quote_size or base_size, a string")
            if "quote_size" in fields:
                return "market", number("quote_size"), None, True
            return "market", number("base_size"), None, False
        raise Rejected("INVALID_ARGUMENT", f"unsupported order configuration {name[:30]}")

    def _placed(self, order, configuration):
        oid = self.uuid_of(order)
        return {"success": True, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": oid,
                "success_response": {"order_id": oid, "product_id": product_of(order["pair"]),
                                     "side": order["side"].upper(), "client_order_id": order["client_id"]},
                "order_configuration": self.configurations.get(order["id"], configuration)}

    @staticmethod
    def _refused(reason, side, body):
        error, preview, message = ORDER_REFUSALS[reason]
        return {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
                "error_response": {"error": error, "message": message, "error_details": "",
                                   "preview_failure_reason": preview,
                                   "new_order_failure_reason": "UNKNOWN_FAILURE_REASON"},
                "order_configuration": body.get("order_configuration")}

    def uuid_of(self, order):
        if order["id"] not in self.order_ids:
            self.order_ids[order["id"]] = str(uuid.uuid4())[:24] + order["id"]
        return self.order_ids[order["id"]]

    def _find(self, order_id):
        candidate = self.engine.orders.get(str(order_id)[-12:])
        if candidate is not None and self.order_ids.get(candidate["id"]) == order_id:
            return candidate
        return None

    def render(self, order):
        """An engine order as Coinbase's order object (CCXT's recorded fetchClosedOrders reply)."""
        filled, cost = order["filled"], order["cost"]
        configuration = self.configurations.get(order["id"], {})
        gtc = "limit_limit_gtc" in configuration
        return {
            "order_id": self.uuid_of(order), "product_id": product_of(order["pair"]),
            "user_id": "dbcb91e7-2bc9-5152-bb6f-72d6677e6727", "order_configuration": configuration,
            "side": order["side"].upper(), "client_order_id": order["client_id"],
            "status": STATUSES[order["status"]],
            "time_in_force": "GOOD_UNTIL_CANCELLED" if gtc else "IMMEDIATE_OR_CANCEL",
            "created_time": iso(order["created"]),
            "completion_percentage": fmt((filled / order["amount"] * 100).quantize(D("0.01")))
            if order["amount"] and not order["quote_amount"] else "0",
            "filled_size": fmt(filled), "average_filled_price": fmt(self.engine.avg_price(order) or D(0)),
            "fee": "", "number_of_fills": "1" if filled else "0", "filled_value": fmt(cost),
            "pending_cancel": False, "size_in_quote": bool(order["quote_amount"]), "total_fees": "0",
            "size_inclusive_of_fees": False, "total_value_after_fees": fmt(cost),
            "trigger_status": "INVALID_ORDER_TYPE", "order_type": "LIMIT" if gtc else "MARKET",
            "reject_reason": "REJECT_REASON_UNSPECIFIED", "settled": order["status"] in (FILLED, CANCELED),
            "product_type": "SPOT", "reject_message": "", "cancel_message": "",
            "order_placement_source": "RETAIL_ADVANCED", "outstanding_hold_amount": fmt(order["frozen"]),
            "is_liquidation": False, "last_fill_time": iso(order["updated"]) if filled else None,
            "edit_history": [], "leverage": "", "margin_type": "UNKNOWN_MARGIN_TYPE",
        }

    def get_order(self, request, order_id):
        order = self._find(order_id)
        if order is None:
            raise Rejected("NOT_FOUND", "order with this orderID was not found", 404)
        return {"order": self.render(order)}

    def batch_cancel(self, request):
        try:
            body = request.json()
        except ValueError:
            raise Rejected("INVALID_ARGUMENT", "invalid character in request body") from None
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise Rejected("INVALID_ARGUMENT", "order_ids is required")
        return {"results": [self._cancel_one(order_id) for order_id in ids]}

    def _cancel_one(self, order_id):
        order = self._find(order_id)
        if order is not None:
            try:
                self.engine.cancel(order["id"])
                return {"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": order_id}
            except Refused:
                pass
        return {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": order_id}

    def list_orders(self, request):
        """Orders newest first: product_ids and order_status filter (each may repeat), start_date
        and end_date bound the creation time, cursor and limit page."""
        statuses = self._repeated(request, "order_status")
        products = self._repeated(request, "product_ids")
        pairs = {self._pair(p) for p in products}
        start = parse_iso(request.query["start_date"]) if request.query.get("start_date") else None
        found = [o for o in self.engine.listing((OPEN, PARTIAL, FILLED, CANCELED), None, start)
                 if (not pairs or o["pair"] in pairs) and (not statuses or STATUSES[o["status"]] in statuses)]
        limit = min(self._int(request, "limit", 1, ORDERS_PAGE_MAX, 100), self.orders_page_max)
        page, cursor, more = self._page(found, request, limit)
        return {"orders": [self.render(o) for o in page], "sequence": "0", "has_next": more, "cursor": cursor}

    @staticmethod
    def _repeated(request, name):
        return [value for key, value in urllib.parse.parse_qsl(request.raw_query) if key == name]

    # ------------------------------------------------------------------ WebSocket
    def ws_session(self, session):
        with self.lock:
            self.ws_subscriptions[session], self.ws_sequence[session] = set(), 0
        try:
            while True:
                message = session.receive()
                self.ws_note(session, message)
                self.ws_message(session, message)
        finally:
            with self.lock:
                self.ws_subscriptions.pop(session, None)
                self.ws_sequence.pop(session, None)

    def ws_message(self, session, message):
        try:
            request = json.loads(message)
            action, channel = request["type"], request["channel"]
            products = request.get("product_ids") or []
        except (ValueError, KeyError, TypeError):
            return session.send_text(json.dumps({"type": "error", "message": "malformed subscription request"}))
        with self.lock:
            if action not in ("subscribe", "unsubscribe"):
                return session.send_text(json.dumps({"type": "error", "message": f"unknown type {str(action)[:20]}"}))
            if channel not in ("heartbeats", "ticker", "level2", "market_trades") or \
                    any(tuple(str(p).split("-")) not in self.engine.markets for p in products):
                return session.send_text(json.dumps({"type": "error", "message": "Failure to subscribe"}))
            topics = [("heartbeats", "heartbeats")] if channel == "heartbeats" else [(channel, p) for p in products]
            now = self.ws_follow(session, action, topics)
            self._ws_send(session, "subscriptions", [{"subscriptions": now}])
            if action == "subscribe":
                for name, product in topics:
                    self._ws_snapshot(session, name, product)
            self.ws_changed.notify_all()

    def _ws_send(self, session, channel, events, skip=0):
        """One message in Coinbase's envelope with the session's next sequence_num (call under the lock)."""
        self.ws_sequence[session] += skip
        number = self.ws_sequence[session]
        self.ws_sequence[session] += 1
        session.send_text(json.dumps({"channel": channel, "client_id": "", "timestamp": iso(self.now_ms()),
                                      "sequence_num": number, "events": events}))

    def _ws_snapshot(self, session, channel, product):
        pair = tuple(product.split("-"))
        if channel == "heartbeats":
            self._ws_send(session, "heartbeats", [self._heartbeat()])
        elif channel == "ticker":
            self._ws_send(session, "ticker", [{"type": "snapshot", "tickers": [self._ws_ticker(pair)]}])
        elif channel == "level2":
            book = self._ws_book(pair)
            updates = [self._level("bid", p, q) for p, q in self._sorted(book["bids"], True)] + \
                      [self._level("offer", p, q) for p, q in self._sorted(book["asks"], False)]
            self._ws_send(session, "l2_data", [{"type": "snapshot", "product_id": product, "updates": updates}])
        elif channel == "market_trades":
            self._ws_send(session, "market_trades", [{"type": "snapshot", "trades": self._recent(pair, 50)}])

    def _heartbeat(self):
        now = self.now_ms()
        return {"current_time": iso(now).replace("T", " ").replace("Z", " +0000 UTC"), "heartbeat_counter": now // 1000}

    def _level(self, side, price, quantity):
        return {"side": side, "event_time": iso(self.now_ms()), "price_level": price, "new_quantity": quantity}

    @staticmethod
    def _sorted(side, descending):
        return sorted(side.items(), key=lambda level: D(level[0]), reverse=descending)

    def _ws_book(self, pair):
        product = product_of(pair)
        if product not in self.ws_books:
            asks, bids = self.engine.book(pair, levels=BOOK_MAX)
            self.ws_books[product] = {"asks": {fmt(p): fmt(s) for p, s in asks}, "bids": {fmt(p): fmt(s) for p, s in bids}}
        return self.ws_books[product]

    def _ws_ticker(self, pair, price=None):
        """The ticker channel's row: the REST ticker's figures (24 h high, low and open from the
        hourly candles GET .../candles answers)."""
        spec, now_s = self.engine.markets[pair], self.now_ms() // 1000
        asks, bids = self.engine.book(pair, levels=1)
        hours, ts = [], (now_s - 1) // 3600 * 3600
        while ts >= now_s - 24 * 3600 and len(hours) < 24:
            hours.append(self.engine.candle(pair, ts * 1000, 3_600_000))
            ts -= 3600
        price = spec["mid"] if price is None else price
        opened = hours[-1][1]
        return {"type": "ticker", "product_id": product_of(pair), "price": fmt(price), "volume_24_h": "1234.5",
                "low_24_h": fmt(min(row[3] for row in hours)), "high_24_h": fmt(max(row[2] for row in hours)),
                "low_52_w": fmt(min(row[3] for row in hours)), "high_52_w": fmt(max(row[2] for row in hours)),
                "price_percent_chg_24_h": str((D(price) / D(opened) - 1) * 100),
                "best_bid": fmt(bids[0][0]), "best_bid_quantity": fmt(bids[0][1]),
                "best_ask": fmt(asks[0][0]), "best_ask_quantity": fmt(asks[0][1])}

    def _push(self, topic, channel, events, skip=0):
        """Send to every session subscribed to topic (call under the lock)."""
        for session, subscribed in list(self.ws_subscriptions.items()):
            if topic in subscribed:
                self._ws_send(session, channel, events, skip)

    def push_heartbeat(self):
        with self.lock:
            self._push(("heartbeats", "heartbeats"), "heartbeats", [self._heartbeat()])

    def push_book_update(self, pair, asks=(), bids=()):
        """A level2 update (levels [price, size] as text; size "0" removes)."""
        with self.lock:
            book, product = self._ws_book(pair), product_of(pair)
            updates = []
            for side, name, rows in (("asks", "offer", asks), ("bids", "bid", bids)):
                for price, size in rows:
                    book[side].pop(price, None) if D(size) == 0 else book[side].__setitem__(price, size)
                    updates.append(self._level(name, price, size))
            skip = 1 if self.fault_next_book == "gap" else 0
            self.fault_next_book = None
            self._push(("level2", product), "l2_data", [{"type": "update", "product_id": product, "updates": updates}],
                       skip)

    def stream_fill(self, pair, side, price, amount):
        """The engine filled an order (under the lock): the trade, the ticker and the book move."""
        product = product_of(pair)
        trade = {"trade_id": str(next(self._trade_ids)), "product_id": product, "price": fmt(price),
                 "size": fmt(amount), "side": side.upper(), "time": iso(self.now_ms())}
        self._push(("market_trades", product), "market_trades", [{"type": "update", "trades": [trade]}])
        self._push(("ticker", product), "ticker", [{"type": "update", "tickers": [self._ws_ticker(pair, price)]}])
        if self.ws_watched(("level2", product)):
            self.push_book_update(pair)
