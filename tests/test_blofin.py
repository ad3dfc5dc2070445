"""What is specific to BloFin: keys and their options, the signature (base64 of the hex digest,
a fresh nonce, the 60 s window set back to --timeout on orders), swaps only, position modes,
margin modes, and BloFin's messy replies as CCXT recorded them."""
import base64
import hashlib
import hmac
import json
import uuid
from decimal import Decimal

import pytest

from exchanges import _kit, blofin
from tests.conftest import PluginClient, client_of
from tests.fakes.blofin import API_KEY, PASSPHRASE, SECRET, FakeBloFin


@pytest.fixture
def fake():
    with FakeBloFin() as fake:
        yield fake


@pytest.fixture
def bf(fake):
    with client_of(fake) as client:
        yield client


def sent(fake, path, verb="POST"):
    return [r for r in fake.recent if r.method == verb and r.path == path]


# ---------------------------------------------------------------------------- keys and signature

def test_signature_follows_the_documented_prehash():
    """path?query + METHOD + timestamp + nonce + body, HMAC-SHA256, the hex text base64-encoded."""
    request = _kit.Request("GET", "/api/v1/asset/balances", query="accountType=futures")
    blofin.sign(request, blofin.parse_keys("k", "s3cret,pass"), 1704038400000)
    headers = request.headers
    prehash = "/api/v1/asset/balances?accountType=futures" + "GET" + "1704038400000" + headers["ACCESS-NONCE"]
    hex_digest = hmac.new(b"s3cret", prehash.encode(), hashlib.sha256).hexdigest()
    assert headers["ACCESS-SIGN"] == base64.b64encode(hex_digest.encode()).decode()
    assert (headers["ACCESS-KEY"], headers["ACCESS-PASSPHRASE"], headers["ACCESS-TIMESTAMP"]) == \
        ("k", "pass", "1704038400000")
    assert uuid.UUID(headers["ACCESS-NONCE"]).version == 4


def test_every_request_carries_a_fresh_nonce_even_in_the_same_millisecond():
    keys = blofin.parse_keys("k", "s,p")
    nonces = set()
    for _ in range(50):
        request = _kit.Request("GET", "/api/v1/account/balance")
        blofin.sign(request, keys, 1704038400000)
        nonces.add(request.headers["ACCESS-NONCE"])
    assert len(nonces) == 50


def test_an_order_is_signed_so_that_blofins_window_ends_at_its_deadline():
    """BloFin takes a request for 60 s after its timestamp: an order's timestamp is set back so
    that the window closes --timeout after signing (request.deadline)."""
    request = _kit.Request("POST", "/api/v1/trade/order", body='{"instId":"BTC-USDT"}')
    request.window_ms, request.deadline = 3000, 1704038403000
    blofin.sign(request, blofin.parse_keys("k", "s,p"), 1704038400000)
    assert int(request.headers["ACCESS-TIMESTAMP"]) + 60_000 == request.deadline


def test_orders_arrive_with_a_deadline_of_timeout(bf):
    bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1)
    (placed,) = sent(bf.fake, "/api/v1/trade/order")
    assert 0 < bf.fake.deadline_of(placed) - placed.arrived_ms <= 3000


def test_the_fake_refuses_a_repeated_nonce(fake, bf):
    bf.data("accounts")
    replay = fake.recent[-1]
    status, answer = fake.authenticate(replay)
    assert (status, answer["code"]) == (200, "152407")


@pytest.mark.parametrize("secret_key, code", [
    (f"not-{SECRET},{PASSPHRASE}", "152409"),
    (f"{SECRET},nope", "152408"),
])
def test_wrong_secret_or_passphrase_carry_blofins_codes(bf, secret_key, code):
    client = PluginClient(bf.url, "BloFin", API_KEY, secret_key)
    assert client.error("accounts").startswith(f"BloFin {code}:")


def test_an_unknown_key_is_152401(bf):
    stranger = PluginClient(bf.url, "BloFin", "other", f"{SECRET},{PASSPHRASE}")
    assert stranger.error("accounts").startswith("BloFin 152401:")


@pytest.mark.parametrize("secret_key", ["", "only-secret", ",p", "s,p,simulate", "s,p,isolated,cross", "s,p,x"])
def test_bad_key_format_is_a_clear_error(bf, secret_key):
    client = PluginClient(bf.url, "BloFin", API_KEY, secret_key)
    assert client.error("accounts").startswith("BloFin keys:")
    assert client.data("ticker", symbol="BTC_USDT.swap")["symbol"] == "BTC_USDT.swap"     # public needs none


def test_a_clock_far_off_is_resynced_from_the_ticker(bf):
    bf.fake.clock_skew_ms = 90_000
    assert bf.data("accounts")
    assert [r for r in bf.fake.recent if r.path == "/api/v1/market/tickers" and r.query == {"instId": "BTC-USDT"}]


# ---------------------------------------------------------------------------- swaps only

@pytest.mark.parametrize("method, params", [
    ("ticker", {"symbol": "BTC_USDT"}), ("depth", {"symbol": "ETH_USDT"}), ("trades", {"symbol": "BTC_USDT"}),
    ("records", {"symbol": "BTC_USDT"}), ("orders", {"symbol": "BTC_USDT"}), ("tickers", {"symbol": "USDT"}),
    ("historyorders", {"symbol": "BTC_USDT"}),
    ("trade", {"symbol": "BTC_USDT", "type": "buy", "price": 1, "amount": 1}),
])
def test_spot_symbols_are_refused_before_sending(bf, method, params):
    error = bf.error(method, **params)
    assert error.startswith("BloFin serves perpetual swaps only") and ".swap" in error
    assert bf.fake.requests == []


def test_markets_list_perpetuals_in_contracts_with_their_contract_value(bf):
    markets = bf.data("markets")
    assert set(markets) == {"BTC_USDT.swap", "ETH_USDT.swap"}               # OLD-USDT is suspended
    btc = markets["BTC_USDT.swap"]
    assert (btc["ct_val"], btc["ct_val_ccy"], btc["amount_size"], btc["min_qty"], btc["tick_size"]) == \
        (0.01, "BTC", 0.1, 0.1, 0.1)


# ---------------------------------------------------------------------------- position and margin modes

def order_bodies(fake):
    return [json.loads(r.body) for r in sent(fake, "/api/v1/trade/order")]


def test_net_mode_closes_are_reduce_only_on_position_side_net(bf):
    bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=2)
    bf.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=1)
    opening, closing = order_bodies(bf.fake)
    assert (opening["positionSide"], opening["side"], "reduceOnly" in opening) == ("net", "buy", False)
    assert (closing["positionSide"], closing["side"], closing["reduceOnly"]) == ("net", "sell", "true")
    assert opening["marginMode"] == "cross" and opening["orderType"] == "market" and "price" not in opening


def test_hedge_mode_orders_name_their_position_side(bf):
    bf.fake.engine.set_hedge_mode(True)
    bf.data("trade", symbol="BTC_USDT.swap", type="sell", price=60000, amount=1)
    bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)
    bf.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=1)
    assert [(b["side"], b["positionSide"], "reduceOnly" in b) for b in order_bodies(bf.fake)] == \
        [("sell", "short", False), ("buy", "long", False), ("sell", "long", False)]
    assert len(sent(bf.fake, "/api/v1/account/position-mode", "GET")) == 1       # read once per key


def test_a_switched_position_mode_is_read_again_after_blofin_refuses(bf):
    bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1)     # reads net_mode
    bf.data("cancel", id=bf.data("orders", symbol="BTC_USDT.swap")[0]["id"], symbol="BTC_USDT.swap")
    bf.fake.engine.set_hedge_mode(True)
    assert bf.error("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1).startswith("BloFin 102089:")
    assert bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1)
    assert order_bodies(bf.fake)[-1]["positionSide"] == "long"


def test_isolated_key_option_sets_the_margin_mode_of_orders_and_leverage(bf):
    client = PluginClient(bf.url, "BloFin", API_KEY, f"{SECRET},{PASSPHRASE},isolated")
    bf.fake.engine.set_hedge_mode(True)
    client.data("margin_level", symbol="BTC_USDT.swap", level=5)
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)
    levers = [json.loads(r.body) for r in sent(bf.fake, "/api/v1/account/set-leverage")]
    assert [(b["marginMode"], b["positionSide"]) for b in levers] == [("isolated", "long"), ("isolated", "short")]
    assert order_bodies(bf.fake)[-1]["marginMode"] == "isolated"
    (held,) = client.data("positions")
    assert (held["margin_level"], held["margin"]) == (5, 100.0002)         # isolated: `margin`, not initialMargin


# ---------------------------------------------------------------------------- orders and ids

def test_order_id_is_instid_comma_orderid_and_order_reads_order_detail(bf):
    order_id = bf.data("trade", symbol="ETH_USDT.swap", type="sell", price=3100, amount=2)["id"]
    inst, blofin_id = order_id.split(",")
    assert inst == "ETH-USDT" and blofin_id.isdigit()
    order = bf.data("order", id=order_id)
    assert (order["status"], order["avg_price"], order["amount"], order["offset"]) == ("pending", 0, 2, "open")
    assert sent(bf.fake, "/api/v1/trade/order-detail", "GET")[-1].query == {"instId": "ETH-USDT", "orderId": blofin_id}


def test_an_unknown_order_carries_blofins_code(bf):
    assert bf.error("order", id=bf.fake.FOREIGN_ORDER_ID).startswith(f"BloFin {bf.fake.CODES['unknown_order']}:")


def test_cancel_of_a_filled_order_says_it_filled(bf):
    order_id = bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)["id"]
    error = bf.error("cancel", id=order_id)
    assert error.startswith("BloFin 102068:") and "already filled" in error


def test_refused_order_reads_the_code_inside_data(bf):
    error = bf.error("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=100000)
    assert error == "BloFin 103003: Order failed. Insufficient USDT margin in account"
    assert bf.fake.engine.orders == {}


def test_a_lost_order_answer_is_found_by_its_client_id_among_open_orders(bf):
    bf.fake.inject("drop_after", path="/api/v1/trade/order")
    order_id = bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1)["id"]
    (order,) = bf.fake.engine.orders.values()
    assert order_id == f"BTC-USDT,{order['id']}" and len(sent(bf.fake, "/api/v1/trade/order")) == 1


def test_a_lost_answer_of_a_filled_order_is_found_in_the_history(bf):
    bf.fake.inject("drop_after", path="/api/v1/trade/order")
    order_id = bf.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)["id"]
    (order,) = bf.fake.engine.orders.values()
    assert order_id == f"BTC-USDT,{order['id']}" and order["status"] == "filled"
    assert len(sent(bf.fake, "/api/v1/trade/orders-history", "GET")) == 1


def test_records_page_back_with_after(bf):
    rows = bf.data("records", symbol="BTC_USDT.swap", period=1, limit=2000)
    pages = [r for r in bf.fake.recent if r.path == "/api/v1/market/candles"]
    assert len(rows) == 2000 and len(pages) == 2 and "after" not in pages[0].query and "after" in pages[1].query
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_fundings_say_eight_hours(bf):
    assert {f["interval"] for f in bf.data("fundings")} == {8 * 3_600_000}


def test_io_reaches_any_endpoint_signed(bf):
    answer = bf.call("__api_/api/v1/account/position-mode", http_method="GET")
    assert answer["data"] == {"code": "0", "msg": "success", "data": {"positionMode": "net_mode"}}


# ---------------------------------------------------------------------------- messy replies (CCXT's recordings)

CCXT_OPEN_ORDER = {   # ccxt ts/src/test/static/response/blofin.json, fetchOpenOrders
    "orderId": "2075704519", "clientOrderId": "", "instId": "LTC-USDT", "marginMode": "cross",
    "positionSide": "net", "side": "buy", "orderType": "limit", "price": "50.000000000000000000",
    "size": "1.000000000000000000", "reduceOnly": "false", "leverage": "1", "state": "live",
    "filledSize": "0.000000000000000000", "filled_amount": "0.000000000000000000",
    "averagePrice": "0.000000000000000000", "fee": "0.000000000000000000", "pnl": "0.000000000000000000",
    "createTime": "1707222888921", "updateTime": "1707222888960", "orderCategory": "normal",
    "tpTriggerPrice": None, "slTriggerPrice": None, "slOrderPrice": None, "tpOrderPrice": None,
    "brokerId": "ec6dd3a7dd982d0b"}
CCXT_CLOSED_ORDER = {   # fetchClosedOrders: a reduce-only market buy (closes a short in net mode)
    **CCXT_OPEN_ORDER, "orderId": "2075628533", "orderType": "market", "price": "0.000000000000000000",
    "reduceOnly": "true", "leverage": "3", "state": "filled", "filledSize": "1.000000000000000000",
    "averagePrice": "68.110000000000000000", "createTime": "1706891359010", "cancelSource": "not_canceled"}


def test_recorded_orders_map_to_fmz_orders():
    assert blofin._order(CCXT_OPEN_ORDER) == {
        "id": "LTC-USDT,2075704519", "symbol": "LTC_USDT.swap", "amount": Decimal(1), "price": Decimal(50),
        "deal_amount": Decimal(0), "avg_price": Decimal(0), "type": "buy", "offset": "open",
        "contract_type": "swap", "time": 1707222888921, "status": "pending"}
    closed = blofin._order(CCXT_CLOSED_ORDER)
    assert (closed["type"], closed["offset"], closed["status"], closed["avg_price"]) == \
        ("buy", "close", "filled", Decimal("68.11"))


def test_an_order_with_empty_and_absent_fields_still_maps():
    order = blofin._order({"orderId": "1", "instId": "BTC-USDT", "averagePrice": "", "price": "", "state": "weird"})
    assert (order["avg_price"], order["price"], order["time"], order["status"], order["offset"]) == \
        (0, 0, 0, "weird", "open")


def test_recorded_positions_map_net_and_isolated():
    ccxt_net_short = {"positionId": "5483", "instId": "BCH-USDT", "instType": "SWAP", "marginMode": "cross",
                      "positionSide": "net", "positions": "-290", "availablePositions": "-290",
                      "averagePrice": "1890.000000000000000000", "unrealizedPnl": "2.9",
                      "initialMargin": "1826.033333333333333333", "leverage": "3"}
    short = blofin._position(ccxt_net_short)
    assert (short["type"], short["amount"], short["frozen_amount"], short["margin_level"]) == (1, 290, 0, 3)
    docs_isolated = {"instId": "ETH-USDT", "marginMode": "isolated", "positionSide": "net", "positions": "1",
                     "availablePositions": "1", "averagePrice": "1591.8", "margin": "53.06", "leverage": "3"}
    assert blofin._position(docs_isolated)["margin"] == Decimal("53.06")


def test_a_refusal_inside_data_is_read_whatever_the_envelope():
    recorded = {"code": "1", "msg": "All operations failed", "data": [
        {"orderId": None, "clientOrderId": "", "msg": "Order failed. Insufficient USDT margin in account",
         "code": "103003"}]}
    with pytest.raises(_kit.PluginError, match="^BloFin 103003: Order failed. Insufficient USDT"):
        blofin.check(200, recorded)
    with pytest.raises(_kit.PluginError, match="^BloFin 102068:"):           # a cancel's data is an object
        blofin.check(200, {"code": "0", "msg": "", "data": {"orderId": "1", "code": "102068", "msg": "gone"}})
    blofin.check(200, {"code": "0", "msg": "success", "data": {"orderId": "1012", "clientOrderId": None,
                                                               "code": "0", "msg": None}})
    with pytest.raises(_kit.PluginError, match="^BloFin 500: Internal Server Error$"):
        blofin.check(200, {"code": 500, "data": {}, "msg": "Internal Server Error"})


def test_recorded_balance_maps_free_frozen_and_equity(bf, monkeypatch):
    docs = {"code": "0", "msg": "success", "data": {"ts": "1697021343571", "details": [
        {"currency": "USDT", "equity": "10014042.988958415234430699548", "balance": "10013119.885958415234430699",
         "available": "9996399.4708691159703362725", "frozen": "15805.149672632597427761", "bonus": "0"}]}}
    monkeypatch.setitem(bf.fake.routes, ("GET", "/api/v1/account/balance"), lambda request: (200, docs))
    (usdt,) = bf.data("accounts")
    assert (usdt["free"], usdt["frozen"]) == (pytest.approx(9996399.4708691), pytest.approx(15805.1496726))
    assert usdt["upnl"] == pytest.approx(923.103)
