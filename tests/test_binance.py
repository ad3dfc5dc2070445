"""What is specific to Binance: the signature, key errors, the recvWindow, id format, quoteOrderQty,
exchangeInfo filters, depth limits, kline paging."""
import hashlib
import hmac
import http.client
import json

import pytest

from exchanges import binance
from exchanges._kit import Api, Request
from tests.conftest import PluginClient, client_of, exchange_fixtures
from tests.fakes.binance import API_KEY, SECRET, FakeBinance, split_signature

# rest-api.md, "SIGNED Endpoint Examples for POST /api/v3/order"
DOC_PAYLOAD = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
               "&recvWindow=5000&timestamp=1499827319559")
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
DOC_MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


fake, client = exchange_fixtures(FakeBinance)


def sent(fake, verb, path):
    """(query, body) of the requests the plugin sent to path."""
    return [(target.partition("?")[2], body) for target, body in fake.sent(path, verb)]


def raw_call(fake, verb, target, body="", key=API_KEY):
    conn = http.client.HTTPConnection(fake.url.split("//")[1], timeout=5)
    headers = {"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"}
    conn.request(verb, target, body=body or None, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


# ------------------------------------------------------------------ signature

def test_sign_reproduces_the_documented_signature():
    request = Request("POST", "/api/v3/order", query=DOC_PAYLOAD.rsplit("&timestamp=", 1)[0])
    binance.sign(request, binance.parse_keys(API_KEY, SECRET), 1499827319559)
    assert request.query == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}"
    assert request.headers == {"X-MBX-APIKEY": API_KEY} and request.body == ""


def test_a_post_is_built_with_its_params_in_the_query_string():
    """POST_PARAMS = "query": _kit builds the request that way, so sign() only signs."""
    request = Api(binance)._build("POST", "/api/v3/order", {"symbol": "LTCBTC", "quantity": "1", "flag": True,
                                                            "price": None})
    assert (request.query, request.body, request.headers) == ("symbol=LTCBTC&quantity=1&flag=true", "", {})
    binance.sign(request, binance.parse_keys(API_KEY, SECRET), 1499827319559)
    assert request.query.startswith("symbol=LTCBTC&quantity=1&flag=true&timestamp=1499827319559&recvWindow=5000"
                                    "&signature=") and request.body == ""


def test_fake_verifies_the_documented_examples():
    assert split_signature(f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}", "") == (DOC_SIGNATURE, DOC_PAYLOAD)
    query, body = DOC_PAYLOAD.split("&quantity=")
    assert split_signature(query, f"quantity={body}&signature={DOC_MIXED_SIGNATURE}") == \
        (DOC_MIXED_SIGNATURE, query + "quantity=" + body)


def test_fake_accepts_parameters_in_the_form_body(fake):
    """Binance reads POST parameters from the body too; the fake signs query + body as documented."""
    query = "symbol=ETHUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=0.01&price=1000&recvWindow=5000&timestamp={fake.now_ms()}"
    signature = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    status, reply = raw_call(fake, "POST", f"/api/v3/order?{query}", f"{body}&signature={signature}")
    assert status == 200 and reply["status"] == "NEW" and reply["origQty"] == "0.01000000"
    status, reply = raw_call(fake, "POST", f"/api/v3/order?{query}", f"{body}&signature={'0' * 64}")
    assert (status, reply["code"]) == (400, -1022)


def test_every_parameter_travels_in_the_signed_query_string(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    ((query, body),) = sent(client.fake, "POST", "/api/v3/order")
    assert body == ""
    assert query.startswith("symbol=ETHUSDT&side=BUY&type=LIMIT&newClientOrderId=fmz")
    assert "&timeInForce=GTC&price=1000&quantity=0.01&timestamp=" in query
    assert "&recvWindow=3000&signature=" in query       # an order's deadline is --timeout (3 s here)


def test_reads_keep_binance_default_recv_window(client):
    client.data("accounts")
    ((query, _),) = sent(client.fake, "GET", "/api/v3/account")
    assert "&recvWindow=5000&signature=" in query


def test_wrong_secret_key_and_malformed_key_carry_binance_codes(fake, client):
    assert PluginClient(client.url, "Binance", API_KEY, "x" * 64).error("accounts") == \
        "Binance -1022: Signature for this request is not valid."
    assert PluginClient(client.url, "Binance", "A" * 64, SECRET).error("accounts") == \
        "Binance -2015: Invalid API-key, IP, or permissions for action."
    assert PluginClient(client.url, "Binance", "short-key", SECRET).error("accounts") == \
        "Binance -2014: API-key format invalid."


@pytest.mark.parametrize("access_key, secret_key", [("", SECRET), (API_KEY, ""), ("key with space", SECRET)])
def test_bad_key_format_is_a_clear_error(client, access_key, secret_key):
    keyed = PluginClient(client.url, "Binance", access_key, secret_key)
    assert keyed.error("accounts").startswith("Binance keys:")
    assert keyed.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"     # public data needs no keys


def test_secret_never_appears_in_an_error(fake, client):
    keyed = PluginClient(client.url, "Binance", API_KEY, "s3cr3t-" + "y" * 40)
    assert "s3cr3t" not in keyed.error("accounts")


@pytest.mark.parametrize("skew_ms, message", [(60_000, "outside of the recvWindow"),
                                              (-60_000, "1000ms ahead of the server's time")])
def test_fake_refuses_timestamps_outside_the_window_with_1021(fake, skew_ms, message):
    target = f"/api/v3/account?timestamp={fake.now_ms() - skew_ms}&recvWindow=5000"
    status, reply = raw_call(fake, "GET", target)
    assert (status, reply["code"]) == (400, -1021) and message in reply["msg"]


def test_clock_behind_binance_resyncs_once_then_signs_with_the_offset(client):
    client.fake.clock_skew_ms = -30_000                    # Binance's clock behind ours: "ahead" refusal
    assert client.data("accounts")
    assert client.data("accounts")
    assert [t for _, t, _ in client.fake.requests].count("/api/v3/time") == 1


# ------------------------------------------------------------------ ids and trading

def test_order_id_is_symbol_comma_orderid(client):
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)["id"]
    market, number = order_id.split(",")
    assert market == "BTCUSDT" and number.isdigit()
    assert client.data("order", id=order_id)["symbol"] == "BTC_USDT"        # no symbol needed


def test_market_buy_sends_quote_order_qty(client):
    order_id = client.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount="100.123456789")["id"]
    ((query, _),) = sent(client.fake, "POST", "/api/v3/order")
    assert "type=MARKET" in query and "quoteOrderQty=100.12345678&" in query and "quantity" not in query
    order = client.data("order", id=order_id)
    assert order["amount"] == 100.12345678 and order["status"] == "filled"


def test_market_sell_sends_quantity(client):
    client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.25")
    ((query, _),) = sent(client.fake, "POST", "/api/v3/order")
    assert "type=MARKET" in query and "quantity=0.25&" in query and "timeInForce" not in query


def test_insufficient_balance_names_the_currency(client):
    error = client.error("trade", symbol="ETH_USDT", type="sell", price=3000, amount=11)
    assert error == "Binance -2010: Account has insufficient balance for requested action. " \
                    "(a sell of ETH_USDT spends ETH)"


def test_close_types_are_refused_on_spot(client):
    assert "buy or sell" in client.error("trade", symbol="ETH_USDT", type="closebuy", price=3000, amount=1)


def test_order_below_min_notional_is_refused_with_filter_failure(client):
    error = client.error("trade", symbol="BTC_USDT", type="buy", price=5000, amount="0.00001")
    assert error == "Binance -1013: Filter failure: NOTIONAL"


def test_unknown_order_on_cancel_is_2011(client):
    assert client.error("cancel", id="ETHUSDT,12345").startswith("Binance -2011: Unknown order sent.")


def test_spot_orders_list_oldest_first_with_binance_ids(client):
    first = client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    second = client.data("trade", symbol="ETH_USDT", type="buy", price=1001, amount="0.01")["id"]
    assert [o["id"] for o in client.data("orders", symbol="ETH_USDT")] == [first, second]


def test_history_orders_leave_open_ones_out(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    filled = client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")["id"]
    assert [o["id"] for o in client.data("historyorders", symbol="ETH_USDT")] == [filled]
    query, _ = sent(client.fake, "GET", "/api/v3/allOrders")[0]
    assert "startTime" not in query and "limit=1000" in query


# ------------------------------------------------------------------ market data

def test_ticker_maps_binance_fields(client):
    answer = client.call("ticker", symbol="BTC_USDT")
    assert answer["data"] == {"symbol": "BTC_USDT", "buy": 50000, "sell": 50000.1, "high": 50500, "low": 49500,
                              "open": 49900, "last": 50000, "vol": 1234.5, "time": answer["data"]["time"]}
    assert answer["raw"]["symbol"] == "BTCUSDT"


def test_markets_map_exchange_info_filters_and_skip_what_does_not_trade(client):
    markets = client.data("markets")
    # not OLDUSDT (spot BREAK, futures SETTLING) nor the quarterly BTCUSDT_261225
    assert set(markets) == {"BTC_USDT", "ETH_USDT", "BTC_USDT.swap", "ETH_USDT.swap"}
    assert markets["ETH_USDT"] == {
        "symbol": "ETH_USDT", "base_asset": "ETH", "quote_asset": "USDT", "tick_size": 0.01,
        "amount_size": 0.000001, "price_precision": 2, "amount_precision": 6, "min_qty": 0.001,
        "max_qty": 90000, "min_notional": 0.1, "max_notional": 9000000, "ct_val": 0, "ct_val_ccy": ""}
    assert markets["BTC_USDT.swap"] == {
        "symbol": "BTC_USDT.swap", "base_asset": "BTC", "quote_asset": "USDT", "tick_size": 0.1,
        "amount_size": 0.001, "price_precision": 1, "amount_precision": 3, "min_qty": 0.001, "max_qty": 1000,
        "min_notional": 5, "max_notional": 0, "ct_val": 1, "ct_val_ccy": "BTC"}


def test_tickers_all_or_one_quote(client):
    assert {t["symbol"] for t in client.data("tickers")} == {"BTC_USDT", "ETH_USDT", "BTC_USDT.swap", "ETH_USDT.swap"}
    assert [t["symbol"] for t in client.data("tickers", symbol="ETH_USDT")] == ["ETH_USDT"]
    assert {t["symbol"] for t in client.data("tickers", symbol="USDT")} == {"BTC_USDT", "ETH_USDT"}
    assert client.data("tickers", symbol="BTC") == []


@pytest.mark.parametrize("wanted, asked", [(1, 5), (5, 5), (7, 10), (30, 50), (101, 500), (9999, 5000)])
def test_depth_asks_the_next_binance_limit_and_trims(client, wanted, asked):
    book = client.data("depth", symbol="ETH_USDT", limit=wanted)
    assert len(book["asks"]) == len(book["bids"]) == min(wanted, asked)
    assert sent(client.fake, "GET", "/api/v3/depth")[0][0] == f"symbol=ETHUSDT&limit={asked}"


def test_trades_type_from_is_buyer_maker(client):
    answer = client.call("trades", symbol="BTC_USDT")
    for row, raw in zip(answer["data"], answer["raw"]):
        assert row["type"] == ("sell" if raw["isBuyerMaker"] else "buy") and row["id"] == str(raw["id"])


def test_records_page_backwards_with_end_time(client):
    rows = client.data("records", symbol="BTC_USDT", period=60, limit=2500)
    queries = [q for q, _ in sent(client.fake, "GET", "/api/v3/klines")]
    assert len(queries) == 3 and "endTime" not in queries[0]
    assert "limit=1000" in queries[0] and f"endTime={rows[1500][0] - 1}" in queries[1] and "limit=500" in queries[2]
    assert len({r[0] for r in rows}) == 2500


def test_weekly_klines_open_on_monday(client):
    rows = client.data("records", symbol="BTC_USDT", period=10080, limit=3)
    assert all((r[0] // 86_400_000 + 3) % 7 == 0 for r in rows)      # day 0 was a Thursday


# ------------------------------------------------------------------ IO and errors

def test_io_reaches_any_endpoint_signed(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    answer = client.call("__api_/api/v3/openOrders", http_method="GET", symbol="ETHUSDT")
    assert len(answer["data"]) == 1 and answer["data"][0]["symbol"] == "ETHUSDT"


def test_io_delete_cancels(client):
    order_id = client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    answer = client.call("__api_/api/v3/order", http_method="DELETE", symbol="ETHUSDT", orderId=order_id.split(",")[1])
    assert answer["data"]["status"] == "CANCELED"


def test_unknown_path_answers_binance_html_404_as_a_clear_error(client):
    assert client.error("__api_/api/v3/nope").startswith("Binance answered HTTP 404 with a body that is not JSON")


def test_rate_limit_is_1003_and_a_read_waits_once(client):
    client.fake.inject("429")
    assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
    client.fake.inject("429", times=2)
    error = client.error("ticker", symbol="BTC_USDT")
    assert error.startswith("Binance rate limit reached for GET /api/v3/ticker/24hr")
    assert "Binance -1003: Too much request weight used" in error


# ------------------------------------------------------------------ USDT-M futures

def test_swap_order_id_names_the_futures_market(client):
    order_id = client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")["id"]
    market, number = order_id.split(",")
    assert market == "BTCUSDT.swap" and number.isdigit()
    assert client.data("order", id=order_id)["symbol"] == "BTC_USDT.swap"
    assert client.error("order", id=f"BTCUSDT,{number}") == "Binance -2013: Order does not exist."   # not spot
    assert [v + " " + t.split("?")[0] for v, t, _ in client.fake.requests if "order" in t.lower()] == [
        "POST /fapi/v1/order", "GET /fapi/v1/order", "GET /api/v3/order"]


def test_one_way_mode_closes_with_reduce_only(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.05")
    client.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount="0.05")
    opened, closed = [q for q, _ in sent(client.fake, "POST", "/fapi/v1/order")]
    assert "side=BUY&type=MARKET" in opened and "reduceOnly" not in opened and "positionSide" not in opened
    assert "quantity=0.05&" in opened and "quoteOrderQty" not in opened
    assert "side=SELL&type=MARKET" in closed and "reduceOnly=true" in closed and "positionSide" not in closed
    assert len(sent(client.fake, "GET", "/fapi/v1/positionSide/dual")) == 1          # read once per key


def test_hedge_mode_sends_position_side_and_never_reduce_only(client):
    client.fake.engine.set_hedge_mode(True)
    client.data("trade", symbol="ETH_USDT.swap", type="sell", price=-1, amount="0.5")
    client.data("trade", symbol="ETH_USDT.swap", type="closesell", price=-1, amount="0.5")
    opened, closed = [q for q, _ in sent(client.fake, "POST", "/fapi/v1/order")]
    assert "side=SELL" in opened and "positionSide=SHORT" in opened and "reduceOnly" not in opened
    assert "side=BUY" in closed and "positionSide=SHORT" in closed and "reduceOnly" not in closed


def test_a_mode_switched_on_binance_is_read_again_after_4061(client):
    order_id = client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")["id"]
    client.data("cancel", id=order_id)
    client.fake.engine.set_hedge_mode(True)                       # the trader switches on the website
    error = client.error("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")
    assert error == "Binance -4061: Order's position side does not match user's setting."
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")
    assert "positionSide=LONG" in sent(client.fake, "POST", "/fapi/v1/order")[-1][0]


def test_futures_min_notional_is_4164(client):
    error = client.error("trade", symbol="BTC_USDT.swap", type="buy", price=1000, amount="0.001")
    assert error.startswith("Binance -4164: Order's notional must be no smaller than 5")


def test_leverage_out_of_range_names_the_level(client):
    assert client.error("margin_level", symbol="BTC_USDT.swap", level=101) == "Binance -4028: Leverage 101 is not valid"


def test_accounts_add_the_futures_wallet_to_the_spot_wallet(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.1")     # margin 500.001 USDT
    answer = client.call("accounts")
    usdt = {r["currency"]: r for r in answer["data"]}["USDT"]
    assert (usdt["free"], usdt["frozen"], usdt["upnl"], usdt["equity"]) == (99499.999, 500.001, -0.01, 499.991)
    spot = {b["asset"]: b for b in answer["raw"]["spot"]["balances"]}["USDT"]
    futures = {a["asset"]: a for a in answer["raw"]["futures"]["assets"]}["USDT"]
    assert (spot["free"], spot["locked"]) == ("99499.99900000", "0.00000000")
    assert (futures["initialMargin"], futures["availableBalance"]) == ("500.001", "0")


def test_a_key_without_futures_gets_spot_and_asks_futures_once(client):
    client.fake.futures_permission = False
    assert {r["currency"] for r in client.data("accounts")} == {"USDT", "BTC", "ETH"}
    client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    assert [o["symbol"] for o in client.data("orders")] == ["ETH_USDT"]
    assert client.data("accounts") == client.data("assets")
    assert len([t for _, t, _ in client.fake.requests if t.startswith("/fapi/")]) == 1
    assert client.error("positions").startswith("Binance -2015:")


@pytest.mark.parametrize("wanted, asked", [(7, 10), (1000, 1000), (2000, 1000)])
def test_futures_depth_asks_a_limit_binance_accepts(client, wanted, asked):
    client.data("depth", symbol="BTC_USDT.swap", limit=wanted)
    assert sent(client.fake, "GET", "/fapi/v1/depth")[0][0] == f"symbol=BTCUSDT&limit={asked}"


def test_futures_klines_page_1500(client):
    assert len(client.data("records", symbol="ETH_USDT.swap", period=5, limit=2000)) == 2000
    assert ["limit=1500" in q for q, _ in sent(client.fake, "GET", "/fapi/v1/klines")] == [True, False]


def test_futures_base_url_alone_moves_futures_calls(fake):
    with FakeBinance() as futures:
        with client_of(fake, **{"binance": fake.url, "binance.futures": futures.url}) as client:
            assert client.data("ticker", symbol="BTC_USDT.swap")["buy"] == 50000
            assert client.data("ticker", symbol="BTC_USDT")["buy"] == 50000
            assert client.call("__api_/fapi/v2/positionRisk", symbol="BTCUSDT")["data"][0]["symbol"] == "BTCUSDT"
    assert {t.split("?")[0] for _, t, _ in futures.requests} == {"/fapi/v1/ticker/24hr", "/fapi/v1/ticker/bookTicker",
                                                                 "/fapi/v2/positionRisk"}
    assert {t.split("?")[0] for _, t, _ in fake.requests} == {"/api/v3/ticker/24hr"}
