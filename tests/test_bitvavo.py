"""What is specific to Bitvavo: signing (the docs' own vectors), keys with an operator id, UUID
order ids, spot only, the weight budget, and the mapping of Bitvavo's response examples as its
docs (https://docs.bitvavo.com/) and CCXT's bitvavo.py quote them: numbers as strings, candle
times as strings or numbers, a one-market ticker as an object or a one-row list, nulls for a
market without trades, a book timestamp in ms or ns, orders without price or amount."""
import json
import re
import uuid
from decimal import Decimal

import pytest

from exchanges import _kit, _throttle, bitvavo
from exchanges._kit import PluginError, Request, Symbol
from tests.conftest import PluginClient, client_of, exchange_fixtures
from tests.fakes.bitvavo import API_KEY, SECRET, FakeBitvavo

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


fake, client = exchange_fixtures(FakeBitvavo)


class Replies:
    """An api stand-in for one handler: answers each GET with the next canned reply."""

    def __init__(self, *replies):
        self.replies, self.sent = list(replies), []

    def get(self, path, params=None, *, signed):
        self.sent.append((path, {k: v for k, v in (params or {}).items() if v is not None}))
        return self.replies.pop(0)

    def now(self):
        return 1_700_000_000_000


# ---------------------------------------------------------------------------- signing and keys

DOCS_BODY = '{"market":"BTC-EUR","side":"buy","price":"5000","amount":"1.23","orderType":"limit"}'


def test_the_docs_signature_example():
    """REST introduction, "Create a signature": secret `bitvavo`, POST /v2/order at 1548172481125."""
    request = Request("POST", "/v2/order", body=DOCS_BODY)
    bitvavo.sign(request, bitvavo.Keys("K" * 64, "bitvavo", 1), 1548172481125)
    assert request.headers["Bitvavo-Access-Signature"] == \
        "44d022723a20973a18f7ee97398b9fdd405d2d019c8d39e24b8cc0dcb39ca016"
    assert request.headers["Bitvavo-Access-Timestamp"] == "1548172481125"
    assert request.headers["Bitvavo-Access-Key"] == "K" * 64
    assert request.headers["Bitvavo-Access-Window"] == "10000"


def test_a_get_signs_its_path_with_the_query_and_no_body():
    """The RFQ docs' vector (1548172481125GET/v2/rfq/trades), and a query is part of the path."""
    request = Request("GET", "/v2/rfq/trades")
    bitvavo.sign(request, bitvavo.Keys("K" * 64, "bitvavo", 1), 1548172481125)
    assert request.headers["Bitvavo-Access-Signature"] == \
        "5cabebe6735355a6e359bebc4a3c9ceef649afa455b7cf6cc11af65627cb99f3"
    with_query = Request("GET", "/v2/order", query="market=BTC-EUR&orderId=x")
    bitvavo.sign(with_query, bitvavo.Keys("K" * 64, "bitvavo", 1), 1548172481125)
    assert with_query.headers["Bitvavo-Access-Signature"] != request.headers["Bitvavo-Access-Signature"]


def test_keys_take_an_optional_operator_id():
    assert bitvavo.parse_keys(f" {API_KEY} ", " secret ") == bitvavo.Keys(API_KEY, "secret", 1)
    assert bitvavo.parse_keys(API_KEY, "secret,42") == bitvavo.Keys(API_KEY, "secret", 42)
    for secret_key in ("", ",42", "secret,abc", "secret,4,2", "secret,-1"):
        with pytest.raises(PluginError, match="Bitvavo keys"):
            bitvavo.parse_keys(API_KEY, secret_key)
    with pytest.raises(PluginError, match="Bitvavo keys"):
        bitvavo.parse_keys("", "secret")


def test_a_key_cut_short_is_refused_before_any_call(client):
    """A 3-character Access Key never reaches Bitvavo: the answer says how long a key is."""
    client.fake.requests.clear()
    error = PluginClient(client.url, "Bitvavo", "abc", SECRET).error("accounts")
    assert error == "Bitvavo keys: the API key is 3 characters, Bitvavo's are 64: paste the whole key as the Access Key"
    assert client.fake.requests == []


def test_wrong_secret_key_and_window_get_bitvavo_codes(client):
    url = client.url
    assert PluginClient(url, "Bitvavo", API_KEY, "x" + SECRET).error("accounts") == \
        "Bitvavo 309: The signature is invalid."
    assert PluginClient(url, "Bitvavo", "B" * 64, SECRET).error("accounts") == "Bitvavo 305: No active API key found."
    assert PluginClient(url, "Bitvavo", "s" * 40, SECRET).error("accounts") == "Bitvavo 301: API Key must be of length 64."


def test_the_fake_refuses_a_window_beyond_a_minute(fake):
    request = Request("GET", "/v2/balance")
    bitvavo.sign(request, bitvavo.parse_keys(API_KEY, SECRET), fake.now_ms())
    request.headers["Bitvavo-Access-Window"] = "60001"
    seen = type("Seen", (), {"headers": request.headers, "method": "GET", "target": "/v2/balance", "body": ""})
    assert fake.authenticate(seen) == (403, {"errorCode": 303, "error": "Window must be between 100 and 60000 ms."})


def test_operator_id_goes_with_every_order_and_cancel(fake):
    with client_of(fake) as plugin:
        plugin.secret_key = SECRET + ",42"
        order_id = plugin.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
        assert plugin.data("cancel", id=order_id, symbol="BTC_USDT") is True
    assert fake.operators == [42, 42]
    (cancel,) = [target for verb, target, _ in fake.requests if verb == "DELETE"]
    assert "operatorId=42" in cancel and "market=BTC-USDT" in cancel


def test_an_order_is_sent_as_bitvavo_names_its_fields(client):
    order_id = client.data("trade", symbol="ETH_USDT", type="sell", price="3100.005", amount="0.0123456")["id"]
    (body,) = [json.loads(body) for verb, target, body in client.fake.requests if verb == "POST"]
    assert UUID4.fullmatch(body.pop("clientOrderId"))
    assert body == {"market": "ETH-USDT", "side": "sell", "orderType": "limit", "operatorId": 1,
                    "price": "3100.01", "amount": "0.012345"}
    market, oid = order_id.split(",")
    assert market == "ETH-USDT" and uuid.UUID(oid)


def test_a_market_buy_spends_quote_rounded_to_notional_decimals(client):
    """The fake's markets have notionalDecimals 2: 100.129 USDT goes as amountQuote 100.12."""
    order_id = client.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount="100.129")["id"]
    (body,) = [json.loads(body) for verb, target, body in client.fake.requests if verb == "POST"]
    assert body["amountQuote"] == "100.12" and "amount" not in body and "price" not in body
    order = client.data("order", id=order_id, symbol="ETH_USDT")
    assert order["amount"] == 100.12 and order["price"] == 0 and order["status"] == "filled"


def test_a_client_order_id_may_be_reused_once_the_order_is_closed(fake):
    """Bitvavo checks clientOrderId among a market's open orders only (220 "conflict")."""
    body = {"market": "BTC-USDT", "side": "buy", "orderType": "limit", "price": "40000", "amount": "0.01",
            "operatorId": 1, "clientOrderId": str(uuid.uuid4())}
    api = _kit.Api(bitvavo, API_KEY, SECRET, {"": fake.url})
    first = api.post("/v2/order", body, signed=True)
    with pytest.raises(PluginError, match="Bitvavo 220: clientOrderId conflict within the market."):
        api.post("/v2/order", body, signed=True)
    api.call("DELETE", "/v2/order", {"market": "BTC-USDT", "orderId": first["orderId"], "operatorId": 1}, signed=True)
    assert api.post("/v2/order", body, signed=True)["orderId"] != first["orderId"]


# ---------------------------------------------------------------------------- spot only

def test_a_swap_symbol_is_refused_before_sending(client):
    for method, params in [("ticker", {}), ("depth", {}), ("records", {}), ("orders", {}),
                           ("trade", {"type": "buy", "price": 40000, "amount": 1})]:
        error = client.error(method, symbol="BTC_USDT.swap", **params)
        assert "Bitvavo has spot markets only, not BTC_USDT.swap" in error, (method, error)
    assert client.fake.requests == []


@pytest.mark.parametrize("method", ["positions", "margin_level", "fundings"])
def test_swap_methods_are_not_served(client, method):
    assert "Bitvavo does not support" in client.error(method, symbol="BTC_USDT.swap", level=5)
    assert client.fake.requests == []


def test_markets_are_the_spot_markets_that_take_orders(client):
    markets = client.data("markets")
    assert set(markets) == {"BTC_USDT", "ETH_USDT"}                  # OLD-USDT is halted
    btc = markets["BTC_USDT"]
    assert (btc["tick_size"], btc["amount_size"], btc["min_qty"], btc["min_notional"]) == (0.1, 1e-08, 1e-05, 0.1)
    assert (btc["price_precision"], btc["amount_precision"], btc["ct_val"], btc["ct_val_ccy"]) == (1, 8, 0, "")


def test_tickers_of_a_range(client):
    rows = client.data("tickers", symbol="USDT")
    assert {r["symbol"] for r in rows} == {"BTC_USDT", "ETH_USDT", "OLD_USDT"}
    quiet = next(r for r in rows if r["symbol"] == "OLD_USDT")      # no trades in 24 h: nulls
    assert (quiet["last"], quiet["buy"], quiet["sell"], quiet["vol"]) == (0, 0, 0, 0)
    assert client.data("tickers", symbol="EUR") == []


# ---------------------------------------------------------------------------- Bitvavo's own examples

DOCS_TICKER = {"market": "BTC-EUR", "startTimestamp": 1700490607372, "timestamp": 1700576057382,
               "open": "5001.1", "openTimestamp": 1700490620146, "high": "5003.2", "low": "5001.1",
               "last": "5003.2", "closeTimestamp": 1700490620146, "bid": "4999.9", "bidSize": "0.15",
               "ask": "5003.3", "askSize": "0.2", "volume": "0.15", "volumeQuote": "750.2865"}


@pytest.mark.parametrize("reply", [DOCS_TICKER, [DOCS_TICKER]], ids=["object", "one-row list"])
def test_docs_ticker(reply):
    """GET /ticker/24h: the docs' schema shows a list even for one market, CCXT reads an object."""
    data, raw = bitvavo.ticker(Replies(reply), Symbol("BTC", "EUR"))
    assert data == {"symbol": "BTC_EUR", "buy": 4999.9, "sell": 5003.3,
                    "high": 5003.2, "low": 5001.1, "open": 5001.1,
                    "last": 5003.2, "vol": 0.15, "time": 1700576057382}
    assert raw is reply


def test_docs_ticker_of_a_market_without_trades():
    quiet = {**DOCS_TICKER, "open": None, "high": None, "low": None, "last": None, "bid": None,
             "bidSize": None, "ask": None, "askSize": None, "volume": "0", "volumeQuote": "0"}
    data, _ = bitvavo.ticker(Replies(quiet), Symbol("BTC", "EUR"))
    assert (data["last"], data["buy"], data["high"], data["vol"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("timestamp, ms", [(1542967486256, 1542967486256), (1542967486256123456, 1542967486256),
                                           (None, 1_700_000_000_000), ("NaN", 1_700_000_000_000)],
                         ids=["ms", "ns", "absent", "garbled"])
def test_docs_book(timestamp, ms):
    """GET /{market}/book: the REST example's timestamp is in ms, the WebSocket docs say ns."""
    book = {"market": "BTC-EUR", "nonce": 438524,
            "bids": [["4999.9", "0.015"], ["4999.8", "0.015"], ["4999.7", "0.015"], ["4999.6", "0.015"]],
            "asks": [["5001.1", "0.015"], ["5001.2", "0.015"], ["5001.3", "0.015"], ["5001.4", "0.015"]],
            "timestamp": timestamp}
    api = Replies(book)
    data, _ = bitvavo.depth(api, Symbol("BTC", "EUR"), limit=4)
    assert api.sent == [("/v2/BTC-EUR/book", {"depth": 4})]
    assert data["time"] == ms
    assert data["bids"][0] == [4999.9, 0.015] and data["asks"][-1][0] == 5001.4     # the floats a robot reads


def test_docs_trades_newest_first_answered_oldest_first():
    reply = [{"id": "94154c98-6e8b-4e33-92a8-74e33fc05650", "timestamp": 1590382761859, "amount": "0.06026079",
              "price": "8095.3", "side": "buy"},
             {"id": "57b1159b-6bf5-4cde-9e2c-6bd6a5678baf", "timestamp": 1590382761000, "amount": "0.1",
              "price": "8095.1", "side": "sell"}]
    rows, _ = bitvavo.trades(Replies(reply), Symbol("BTC", "EUR"))
    assert [r["id"] for r in rows] == ["57b1159b-6bf5-4cde-9e2c-6bd6a5678baf", "94154c98-6e8b-4e33-92a8-74e33fc05650"]
    assert rows[1] == {"id": "94154c98-6e8b-4e33-92a8-74e33fc05650", "time": 1590382761859,
                       "price": 8095.3, "amount": 0.06026079, "type": "buy"}


def test_docs_candles_with_string_or_number_times():
    """GET /{market}/candles: the REST docs quote the time as a string, CCXT as a number."""
    reply = [[1590383700000, "8088.5", "8088.5", "8088.5", "8088.5", "0.04788623"],
             ["1590383640000", "8091.3", "8091.5", "8091.3", "8091.5", "0.04931221"]]
    rows, _ = bitvavo.records(Replies(reply, []), Symbol("BTC", "EUR"), period=1, limit=5)
    assert [r[0] for r in rows] == [1590383640000, 1590383700000]
    assert rows[0][1:] == [8091.3, 8091.5, 8091.3, 8091.5, 0.04931221]     # the floats a robot reads


def test_candles_page_back_with_end():
    newest = [[3_000_000 - i * 60_000, "1", "2", "0.5", "1.5", "3"] for i in range(2)]
    older = [[3_000_000 - i * 60_000, "1", "2", "0.5", "1.5", "3"] for i in range(1, 4)]   # repeats one
    api = Replies(newest, older)
    rows, raw = bitvavo.records(api, Symbol("BTC", "EUR"), period=1, limit=4)
    assert [r[0] for r in rows] == [2_820_000, 2_880_000, 2_940_000, 3_000_000]
    assert api.sent[1][1]["end"] == 2_940_000 and raw == [newest, older]


def test_docs_markets():
    reply = [{"market": "BTC-EUR", "status": "trading", "base": "BTC", "quote": "EUR", "pricePrecision": "0",
              "tickSize": "1.00", "minOrderInBaseAsset": "0.00006100", "minOrderInQuoteAsset": "5.00",
              "maxOrderInBaseAsset": "1000000000.00000000", "maxOrderInQuoteAsset": "1000000000.00",
              "quantityDecimals": "8", "notionalDecimals": "2", "maxOpenOrders": "100", "feeCategory": "A",
              "orderTypes": ["market", "limit", "stopLoss", "stopLossLimit", "takeProfit", "takeProfitLimit"]},
             {"market": "ADA-EUR", "status": "auction", "base": "ADA", "quote": "EUR", "tickSize": "0.0001",
              "minOrderInBaseAsset": "1", "minOrderInQuoteAsset": "5", "quantityDecimals": 6,
              "notionalDecimals": 2},
             {"market": "LUNA-EUR", "status": "halted", "base": "LUNA", "quote": "EUR"}]
    specs = bitvavo.load_markets(Replies(reply), "spot")
    assert set(specs) == {"BTC_EUR", "ADA_EUR"}
    btc = specs["BTC_EUR"]
    assert (btc["tick_size"], btc["amount_size"], btc["quote_step"]) == (1, Decimal("1e-8"), Decimal("0.01"))
    assert (btc["min_qty"], btc["min_notional"], btc["price_precision"], btc["amount_precision"]) == \
        (Decimal("0.000061"), 5, 0, 8)
    assert specs["ADA_EUR"]["amount_size"] == Decimal("0.000001")
    garbled = bitvavo.load_markets(Replies([{**reply[0], "quantityDecimals": "NaN", "notionalDecimals": "2.5"}]), "spot")
    assert (garbled["BTC_EUR"]["amount_size"], garbled["BTC_EUR"]["quote_step"]) == (0, 0)
    assert bitvavo.load_markets(Replies(), "swap") == {}


DOCS_ORDER = {"orderId": "af76d6ce-9f7c-4006-b715-bb5d430652d0", "market": "ETH-EUR", "created": 1590505649241,
              "updated": 1590505649241, "status": "filled", "side": "sell", "orderType": "market",
              "amount": "0.249825", "amountRemaining": "0", "onHold": "0", "onHoldCurrency": "ETH",
              "filledAmount": "0.249825", "filledAmountQuote": "45.84038925", "feePaid": "0.12038925",
              "feeCurrency": "EUR",
              "fills": [{"id": "b0c86aa5-6ed3-4a2d-ba3a-be9a964220f4", "timestamp": 1590505649245,
                         "amount": "0.249825", "price": "183.49", "taker": True, "fee": "0.12038925",
                         "feeCurrency": "EUR", "settled": True}],
              "selfTradePrevention": "decrementAndCancel", "visible": False, "disableMarketProtection": False}


def test_docs_order():
    """GET /order: a filled market sell (no price: 0), average from filledAmountQuote."""
    assert bitvavo._order(DOCS_ORDER) == {
        "id": "ETH-EUR,af76d6ce-9f7c-4006-b715-bb5d430652d0", "symbol": "ETH_EUR",
        "amount": Decimal("0.249825"), "price": 0, "deal_amount": Decimal("0.249825"),
        "avg_price": Decimal("45.84038925") / Decimal("0.249825"), "type": "sell", "offset": "",
        "contract_type": "", "time": 1590505649241, "status": "filled"}


@pytest.mark.parametrize("state, fmz", [("new", "pending"), ("awaitingTrigger", "pending"),
                                        ("partiallyFilled", "partial-filled"), ("canceledIOC", "canceled"),
                                        ("canceledMarketProtection", "canceled"), ("expired", "canceled"),
                                        ("rejected", "canceled")])
def test_order_states(state, fmz):
    assert bitvavo._order({**DOCS_ORDER, "status": state})["status"] == fmz


def test_docs_order_by_quote_amount_has_no_amount():
    by_quote = {k: v for k, v in DOCS_ORDER.items() if k not in ("amount", "amountRemaining")}
    by_quote.update(side="buy", amountQuote="50", amountQuoteRemaining="4.15961075")
    order = bitvavo._order(by_quote)
    assert order["amount"] == 50 and order["type"] == "buy"


def test_docs_balance():
    reply = [{"symbol": "BTC", "available": "1.57593193", "inOrder": "0.74832374"}, "junk"]
    rows, _ = bitvavo.accounts(Replies(reply))
    assert rows == [{"currency": "BTC", "free": Decimal("1.57593193"), "frozen": Decimal("0.74832374")}]


@pytest.mark.parametrize("status, reply, text, ambiguous", [
    (400, {"errorCode": 216, "error": "You do not have sufficient balance to complete this operation."},
     "Bitvavo 216: You do not have sufficient balance to complete this operation.", False),
    (404, {"errorCode": 240, "error": "No order found."}, "Bitvavo 240: No order found.", False),
    (500, {"errorCode": 101, "error": "Unknown error. Operation may or may not have succeeded."},
     "Bitvavo 101: Unknown error. Operation may or may not have succeeded.", True),
    (400, {"errorCode": 109, "error": "The matching engine did not respond in time."},
     "Bitvavo 109: The matching engine did not respond in time.", True),
    (502, "<html>Bad gateway</html>", "Bitvavo answered HTTP 502: <html>Bad gateway</html>", True),
])
def test_errors(status, reply, text, ambiguous):
    with pytest.raises(PluginError) as raised:
        bitvavo.check(status, reply)
    assert str(raised.value) == text and raised.value.ambiguous is ambiguous


def test_an_unexpected_shape_is_a_clear_error():
    with pytest.raises(PluginError, match="where a list was expected"):
        bitvavo.trades(Replies({"errorCode": None}), Symbol("BTC", "EUR"))


# ---------------------------------------------------------------------------- rate limits

def test_every_endpoint_the_module_calls_has_its_limit(client):
    for method, params in [("ticker", {"symbol": "BTC_USDT"}), ("tickers", {}), ("depth", {"symbol": "BTC_USDT"}),
                           ("trades", {"symbol": "BTC_USDT"}), ("records", {"symbol": "BTC_USDT"}),
                           ("markets", {}), ("accounts", {}), ("orders", {}), ("historyorders", {"symbol": "BTC_USDT"}),
                           ("trade", {"symbol": "BTC_USDT", "type": "buy", "price": 40000, "amount": "0.01"})]:
        client.data(method, **params)
    order_id = client.data("orders", symbol="BTC_USDT")[0]["id"]
    client.data("order", id=order_id)
    client.data("cancel", id=order_id)
    client.data("__api_/v2/time")
    called = {(verb, target.split("?")[0]) for verb, target, _ in client.fake.requests}
    assert len(called) == 12                  # /v2/time through exchange.IO
    for verb, path in called:
        assert _throttle.endpoint_limits(bitvavo.RATE_LIMITS, verb, path)[1], (verb, path)


def test_weights_are_the_documented_ones():
    weight = lambda endpoint, **params: sum(limit.units(params) for limit in _throttle.limits_of(bitvavo.RATE_LIMITS[endpoint])
                                            if limit.pool == "request weight")
    assert weight("GET /v2/ticker/24h", market="BTC-EUR") == 1 and weight("GET /v2/ticker/24h") == 25
    assert weight("GET /v2/ordersOpen") == 25 and weight("GET /v2/balance") == 5 and weight("GET /v2/orders") == 5
    assert weight("POST /v2/order") == 1 and weight("DELETE /v2/order") == 1
    assert weight("GET /v2/{market}/trades") == 5 and weight("GET /v2/{market}/book") == 1
    assert bitvavo._WEIGHT_USED({"bitvavo-ratelimit-limit": "1000", "bitvavo-ratelimit-remaining": "990"}) == 10
    assert bitvavo._WEIGHT_USED({}) is None


@pytest.mark.repo_only
def test_the_remaining_weight_header_is_followed(client):
    """Another program spent 990 of this key's 1000 points: after a balance (5) Bitvavo says 5 are
    left, so every market's open orders (25) cannot go within --max-wait."""
    client.server.settings.throttle = _throttle.Throttle()
    client.server.settings.max_wait = 1.0
    client.fake.weight_used_elsewhere = 990
    assert client.data("accounts")
    before = len(client.fake.requests)
    error = client.error("orders")
    assert "Bitvavo GET /v2/ordersOpen: not sent" in error and "1000 request weight per 60 s" in error
    assert len(client.fake.requests) == before


def test_the_fake_refuses_a_field_bitvavo_does_not_take(fake):
    """So the plugin is held to Bitvavo's own field names (204 for any other)."""
    api = _kit.Api(bitvavo, API_KEY, SECRET, {"": fake.url})
    body = {"market": "BTC-USDT", "side": "buy", "orderType": "limit", "price": "40000", "amount": "0.01",
            "operatorId": 1, "quantity": "0.01"}
    with pytest.raises(PluginError, match="Bitvavo 204: quantity parameter is not supported."):
        api.post("/v2/order", body, signed=True)
