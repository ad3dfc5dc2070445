"""What is specific to BingX: signing, keys, order ids, and the mapping of BingX's own response
examples (as its docs give them, quoted in CCXT's bingx.py): numbers as strings or as JSON
numbers, empty strings, asks listed best-last, a ticker that is a list on spot and an object
on swaps, spot orders without avgPrice."""
import hashlib
import hmac
import json
import urllib.parse
from decimal import Decimal

import pytest

from exchanges import bingx
from exchanges._kit import PluginError, Request, Symbol
from tests.conftest import PluginClient, exchange_fixtures
from tests.fakes.bingx import API_KEY, SECRET, FakeBingX

DOCS_KEY = "Zsm4DcrHBTewmVaElrdwA67PmivPv6VDK6JAkiECZ9QfcUnmn67qjCOgvRuZVOzU"
DOCS_SECRET = "UuGuyEGt6ZEkpUObCYCmIfh0elYsZVh80jlYwpJuRZEw70t6vomMH7Sjmf94ztSI"


fake, client = exchange_fixtures(FakeBingX)


# ---------------------------------------------------------------------------- signing and keys

def test_the_docs_signature_example_is_what_the_fake_checks():
    """Spot docs, "Signature Authentication": the parameter string and its signature."""
    text = "quoteOrderQty=20&side=BUY&symbol=ETHUSDT&timestamp=1649404670162&type=MARKET"
    signature = "428a3c383bde514baff0d10d3c20e5adfaacaf799e324546dafe5ccc480dd827"
    request = type("SentRequest", (), {"raw_query": f"{text}&signature={signature}"})
    assert FakeBingX.signed_string(request) == text
    assert hmac.new(DOCS_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest() == signature


def test_signature_is_hex_hmac_of_the_query_with_timestamp_and_recv_window():
    request = Request("GET", "/openApi/spot/v1/trade/query", query="symbol=ETH-USDT&orderId=1")
    bingx.sign(request, bingx.Keys(DOCS_KEY, DOCS_SECRET), 1649404670162)
    text, _, signature = request.query.rpartition("&signature=")
    assert text == "symbol=ETH-USDT&orderId=1&timestamp=1649404670162&recvWindow=5000"
    assert signature == hmac.new(DOCS_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert request.headers == {"X-BX-APIKEY": DOCS_KEY}


def test_a_post_sends_its_parameters_in_the_signed_query_and_no_body(client):
    client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")
    (verb, target, body), = [r for r in client.fake.requests if r[1].startswith(FakeBingX.ORDER_PATH)]
    params = dict(urllib.parse.parse_qsl(target.partition("?")[2]))
    assert (verb, body) == ("POST", "")
    assert {"symbol": "BTC-USDT", "side": "BUY", "type": "LIMIT", "price": "40000", "quantity": "0.01",
            "recvWindow": "3000"}.items() <= params.items()       # an order's deadline: --timeout (3 s here)
    assert params["newClientOrderId"].startswith("fmz") and params["signature"]


def test_wrong_secret_and_wrong_key_get_bingx_codes(client):
    url = client.url
    error = PluginClient(url, "BingX", API_KEY, "not-" + SECRET).error("accounts")
    assert error == "BingX 100001: Signature verification failed due to signature mismatch"
    assert PluginClient(url, "BingX", "other-key", SECRET).error("accounts") == "BingX 100413: Incorrect apiKey"


@pytest.mark.parametrize("access_key, secret_key", [("", "s"), ("k", ""), ("k", "a,b")])
def test_keys_are_the_api_key_and_its_secret(access_key, secret_key):
    with pytest.raises(PluginError, match="access_key must be the API key and secret_key its secret"):
        bingx.parse_keys(access_key, secret_key)


def test_path_is_case_insensitive(client):
    body = json.dumps(client.envelope("ticker", {"symbol": "BTC_USDT"})).encode()
    for path in ("/bingx", "/BINGX", "/BingX"):
        assert client.post(body, path=path)["data"]["symbol"] == "BTC_USDT"


# ---------------------------------------------------------------------------- ids

def test_order_ids_say_which_api_they_belong_to(client):
    spot = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
    swap = client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")["id"]
    assert spot.startswith("BTC-USDT,") and swap.startswith("BTC-USDT.swap,")
    assert bingx.split_order_id(swap) == ("swap", "BTC-USDT", swap.split(",")[1])
    assert client.data("order", id=swap)["symbol"] == "BTC_USDT.swap"     # no symbol needed
    assert client.data("cancel", id=spot) is True


# ---------------------------------------------------------------------------- BingX's examples

class CannedApi:
    """Stands in for _kit.Api: answers each path with a canned BingX reply."""

    name, base_url, access_key, exchange = "BingX", "canned", "", bingx

    def __init__(self, replies):
        self.replies = replies

    def get(self, path, params=None, *, signed, host=None):
        return self.replies[path]


SPOT_SYMBOLS = {"code": 0, "msg": "", "debugMsg": "", "data": {"symbols": [
    {"symbol": "GEAR-USDT", "minQty": 735, "maxQty": 2941177, "minNotional": 5, "maxNotional": 20000,
     "status": 1, "tickSize": 0.000001, "stepSize": 1, "apiStateSell": True, "apiStateBuy": True,
     "timeOnline": 0, "offTime": 0, "maintainTime": 0},
    {"symbol": "XRP-USDT", "minQty": 1, "maxQty": 100, "minNotional": 5, "maxNotional": 20000,
     "status": 1, "tickSize": 0.0001, "stepSize": 0.1, "apiStateSell": True, "apiStateBuy": True}]}}
CONTRACTS = {"code": 0, "msg": "", "data": [
    {"contractId": "100", "symbol": "BTC-USDT", "size": "0.0001", "quantityPrecision": "4", "pricePrecision": "1",
     "feeRate": "0.0005", "makerFeeRate": "0.0002", "takerFeeRate": "0.0005", "tradeMinLimit": "0",
     "tradeMinQuantity": "0.0001", "tradeMinUSDT": "2", "maxLongLeverage": "125", "maxShortLeverage": "125",
     "currency": "USDT", "asset": "BTC", "status": "1", "apiStateOpen": "true", "apiStateClose": "true",
     "ensureTrigger": True, "triggerFeeRate": "0.00020000"},
    {"contractId": "101", "symbol": "LTC-USDT", "quantityPrecision": "1", "pricePrecision": "2",
     "tradeMinQuantity": "", "tradeMinUSDT": "2", "currency": "USDT", "asset": "LTC", "status": "1",
     "apiStateOpen": "true", "apiStateClose": "true"}]}
MARKET_REPLIES = {"/openApi/spot/v1/common/symbols": SPOT_SYMBOLS, "/openApi/swap/v2/quote/contracts": CONTRACTS}


def canned(replies):
    return CannedApi({**MARKET_REPLIES, **replies})


def test_market_specs_from_the_docs_examples():
    spot = bingx.load_markets(canned({}), "spot")["GEAR_USDT"]
    assert (spot["tick_size"], spot["amount_size"], spot["min_qty"], spot["min_notional"]) == \
        (Decimal("0.000001"), 1, 735, 5)
    assert (spot["price_precision"], spot["amount_precision"], spot["ct_val"]) == (6, 0, 0)
    swaps = bingx.load_markets(canned({}), "swap")
    btc = swaps["BTC_USDT.swap"]
    assert (btc["tick_size"], btc["amount_size"], btc["min_qty"], btc["min_notional"]) == \
        (Decimal("0.1"), Decimal("0.0001"), Decimal("0.0001"), 2)
    assert (btc["ct_val"], btc["ct_val_ccy"]) == (1, "BTC")
    assert swaps["LTC_USDT.swap"]["min_qty"] == Decimal("0.1")       # empty minimum: one lot


def test_spot_depth_example_lists_asks_best_last_and_is_sorted():
    reply = {"code": 0, "timestamp": 1743240504535, "data": {
        "bids": [["83775.39", "1.981875"], ["83775.38", "0.001076"], ["83775.34", "0.254716"]],
        "asks": [["83985.40", "0.000013"], ["83980.00", "0.000011"], ["83975.70", "0.000061000000000000005"]],
        "ts": 1743240504535, "lastUpdateId": 13565639906}}
    book, raw = bingx.depth(canned({"/openApi/spot/v1/market/depth": reply}), Symbol("BTC", "USDT"), limit=2)
    assert book == {"time": 1743240504535, "asks": [[83975.70, float("0.000061000000000000005")], [83980.00, 0.000011]],
                    "bids": [[83775.39, 1.981875], [83775.38, 0.001076]]}     # the floats a robot reads


def test_ticker_is_a_list_on_spot_and_an_object_on_swaps():
    row = {"symbol": "SOL-USDT", "priceChange": "-2.418", "priceChangePercent": "-1.6900%", "lastPrice": "140.574",
           "lastQty": "1", "highPrice": "146.190", "lowPrice": "138.586", "volume": "1464648.00",
           "quoteVolume": "102928.12", "openPrice": "142.994", "closeTime": "1720647284976", "bidPrice": "140.573",
           "bidQty": "372", "askPrice": "140.577", "askQty": "58"}
    api = canned({"/openApi/spot/v1/ticker/24hr": {"code": 0, "msg": "", "timestamp": 1720647285296, "data": [row]},
                  "/openApi/swap/v2/quote/ticker": {"code": 0, "msg": "", "data": row}})
    spot, _ = bingx.ticker(api, Symbol("SOL", "USDT"))
    swap, _ = bingx.ticker(api, Symbol("SOL", "USDT", "swap"))
    assert spot == {"symbol": "SOL_USDT", "buy": 140.573, "sell": 140.577,
                    "high": 146.190, "low": 138.586, "open": 142.994,
                    "last": 140.574, "vol": 1464648.00, "time": 1720647284976}
    assert swap == dict(spot, symbol="SOL_USDT.swap")


def test_candles_of_both_shapes_come_oldest_first():
    spot = {"code": 0, "data": [[1691402640000, 29093.24, 29095.0, 29090.1, 29094.0, 0.6, 1691402699999, 17000.0],
                                [1691402580000, 29093.61, 29093.93, 29087.73, 29093.24, 0.59, 1691402639999, 17221.07]]}
    swap = {"code": 0, "msg": "", "data": [
        {"open": "19394.4", "close": "19379.0", "high": "19394.4", "low": "19368.3", "volume": "167.44",
         "time": 1666584000000},
        {"open": "19396.8", "close": "19394.4", "high": "19397.5", "low": "19385.7", "volume": "110.05",
         "time": 1666583700000}]}
    api = canned({"/openApi/spot/v1/market/kline": spot, "/openApi/swap/v3/quote/klines": swap})
    rows, _ = bingx.records(api, Symbol("BTC", "USDT"), period=1, limit=2)
    assert rows[0] == [1691402580000, 29093.61, 29093.93, 29087.73, 29093.24, 0.59]
    rows, _ = bingx.records(api, Symbol("BTC", "USDT", "swap"), period=5, limit=2)
    assert [r[0] for r in rows] == [1666583700000, 1666584000000] and rows[1][4] == 19379.0


def test_spot_order_example_without_avg_price():
    o = {"symbol": "XRP-USDT", "orderId": 1514087361158316032, "price": "0.5", "origQty": "10",
         "executedQty": "4", "cummulativeQuoteQty": "2", "status": "CANCELED", "type": "LIMIT", "side": "BUY",
         "time": 1649821532000, "updateTime": 1649821543000, "origQuoteOrderQty": "0", "fee": "0", "feeAsset": "XRP"}
    assert bingx._order(o, "spot", {"XRP-USDT": {"symbol": "XRP_USDT"}}) == {
        "id": "XRP-USDT,1514087361158316032", "symbol": "XRP_USDT", "amount": 10, "price": Decimal("0.5"),
        "deal_amount": 4, "avg_price": Decimal("0.5"), "type": "buy", "offset": "", "contract_type": "",
        "time": 1649821532000, "status": "canceled"}


def test_swap_order_example_with_empty_fields():
    o = {"symbol": "BTC-USDT", "orderId": 1597597642269917184, "side": "SELL", "positionSide": "LONG",
         "type": "TAKE_PROFIT_MARKET", "origQty": "1.0000", "price": "0.0", "executedQty": "0.0000",
         "avgPrice": "0.0", "cumQuote": "", "stopPrice": "16494.0", "profit": "", "commission": "",
         "status": "FILLED", "time": 1669731935000, "updateTime": 1669752524000}
    mapped = bingx._order(o, "swap", {"BTC-USDT": {"symbol": "BTC_USDT.swap"}})
    assert mapped["id"] == "BTC-USDT.swap,1597597642269917184" and mapped["symbol"] == "BTC_USDT.swap"
    assert (mapped["amount"], mapped["deal_amount"], mapped["avg_price"]) == (1, 0, 0)
    assert (mapped["type"], mapped["offset"], mapped["status"]) == ("sell", "close", "filled")   # SELL on LONG closes
    assert (mapped["contract_type"], mapped["time"]) == ("swap", 1669731935000)


def test_position_example():
    reply = {"code": 0, "msg": "", "data": [
        {"positionId": "1792480725958881280", "symbol": "BTC-USDT", "currency": "USDT", "positionAmt": "0.1",
         "availableAmt": "0.04", "positionSide": "SHORT", "isolated": False, "avgPrice": "83.53",
         "initialMargin": "1.3922", "margin": "0.3528", "leverage": 6, "unrealizedProfit": "-1.0393",
         "realisedProfit": "-0.2119", "liquidationPrice": 0, "pnlRatio": "-0.7465", "maxMarginReduction": "0.0000",
         "riskRate": "0.0008", "markPrice": "73.14", "positionValue": "7.3136", "onlyOnePosition": True,
         "updateTime": 1721088016688},
        {"symbol": "GONE-USDT", "positionAmt": "5", "positionSide": "LONG"}]}
    rows, _ = bingx.positions(canned({"/openApi/swap/v2/user/positions": reply}))
    assert rows == [{"symbol": "BTC_USDT.swap", "margin_level": 6, "amount": Decimal("0.1"),
                     "frozen_amount": Decimal("0.06"), "price": Decimal("83.53"), "profit": Decimal("-1.0393"),
                     "type": 1, "contract_type": "swap", "margin": Decimal("1.3922")}]


def test_funding_without_an_interval_falls_back_to_eight_hours():
    reply = {"code": 0, "msg": "", "data": {"symbol": "BTC-USDT", "markPrice": "16884.5", "indexPrice": "16886.9",
                                             "lastFundingRate": "0.0001", "nextFundingTime": 1672041600000}}
    rows, _ = bingx.fundings(canned({"/openApi/swap/v2/quote/premiumIndex": reply}), Symbol("BTC", "USDT", "swap"))
    assert rows == [{"symbol": "BTC_USDT.swap", "rate": Decimal("0.0001"), "time": 1672041600000,
                     "interval": 8 * 3_600_000}]


def test_hedge_mode_orders_name_their_side_and_close_without_reduce_only(client):
    client.fake.engine.set_hedge_mode(True)
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.02")
    client.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount="0.02")
    sent = [dict(urllib.parse.parse_qsl(t.partition("?")[2])) for v, t, _ in client.fake.requests
            if v == "POST" and t.startswith(FakeBingX.SWAP_ORDER_PATH)]
    assert [(p["side"], p["positionSide"], p.get("reduceOnly")) for p in sent] == \
        [("BUY", "LONG", None), ("SELL", "LONG", None)]
    assert client.data("positions") == []


def test_every_endpoint_the_plugin_calls_has_its_documented_limit(client):
    """RATE_LIMITS names each path the module calls: market data in one shared budget per IP,
    the private endpoints in the account budget and their own per-key limit."""
    for method, params in [("markets", {}), ("ticker", {"symbol": "BTC_USDT"}), ("tickers", {}),
                           ("depth", {"symbol": "BTC_USDT.swap"}), ("trades", {"symbol": "BTC_USDT"}),
                           ("trades", {"symbol": "BTC_USDT.swap"}), ("records", {"symbol": "BTC_USDT"}),
                           ("records", {"symbol": "BTC_USDT.swap"}), ("accounts", {}), ("orders", {}),
                           ("orders", {"symbol": "BTC_USDT.swap"}), ("positions", {}), ("fundings", {}),
                           ("historyorders", {"symbol": "BTC_USDT"}), ("historyorders", {"symbol": "BTC_USDT.swap"}),
                           ("margin_level", {"symbol": "BTC_USDT.swap", "level": 5})]:
        client.data(method, **params)
    for symbol in ("BTC_USDT", "BTC_USDT.swap"):
        order_id = client.data("trade", symbol=symbol, type="buy", price=40000, amount="0.01")["id"]
        client.data("order", id=order_id)
        client.data("cancel", id=order_id)
    called = {f"{verb} {target.split('?')[0]}" for verb, target, _ in client.fake.requests}
    assert called - set(bingx.RATE_LIMITS) == set()
    public = [endpoint for endpoint in called if "/trade/" not in endpoint and "/user/" not in endpoint
              and "/account/" not in endpoint and "positionSide" not in endpoint]
    assert {bingx.RATE_LIMITS[endpoint].pool for endpoint in public} == {"market data"}


@pytest.mark.parametrize("symbol, path, field", [("BTC_USDT", "/openApi/spot/v1/trade/query", "clientOrderID"),
                                                 ("BTC_USDT.swap", "/openApi/swap/v2/trade/order", "clientOrderId")])
def test_a_lost_answer_is_looked_up_by_the_client_id_field_of_that_api(client, symbol, path, field):
    place = FakeBingX.ORDER_PATH if symbol == "BTC_USDT" else FakeBingX.SWAP_ORDER_PATH
    client.fake.inject("drop_after", path=place, method="POST")
    order_id = client.data("trade", symbol=symbol, type="buy", price=40000, amount="0.01")["id"]
    (order,) = client.fake.engine.orders.values()
    assert order_id.endswith("," + order["id"])
    lookups = [dict(urllib.parse.parse_qsl(t.partition("?")[2])) for v, t, _ in client.fake.requests
               if v == "GET" and t.startswith(path + "?")]
    assert [q.get(field) for q in lookups] == [order["client_id"]]


@pytest.mark.parametrize("reply, message", [
    ({"code": "100413", "msg": "Incorrect apiKey", "timestamp": "1725195218082"}, "BingX 100413: Incorrect apiKey"),
    ({"code": 100404, "msg": " order not exist", "debugMsg": ""}, "BingX 100404: order not exist"),
    ({"code": 101204, "msg": "", "data": {}}, "BingX 101204: HTTP 200"),
])
def test_refusals_as_bingx_sends_them(reply, message):
    """Replies quoted from BingX (OctoBot's and CCXT's notes): the code as a string or a number,
    a msg with a leading space or none at all."""
    with pytest.raises(PluginError) as refused:
        bingx.check(200, reply)
    assert (str(refused.value), refused.value.code) == (message, message.split()[1].rstrip(":"))


def test_unknown_spot_order_is_bingx_100404(client):
    assert client.error("order", id="BTC-USDT,12345") == "BingX 100404: order not exist"
