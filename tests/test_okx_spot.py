"""OKX spot, end to end: the docker's request -> plugin -> fake OKX -> FMZ-shaped answer."""
import pytest

from tests.fakes.okx import API_KEY, PASSPHRASE, SECRET


def test_ticker_maps_okx_fields(okx):
    answer = okx.call("ticker", symbol="BTC_USDT")
    t = answer["data"]
    assert t["symbol"] == "BTC_USDT"
    assert (t["buy"], t["sell"], t["last"]) == (50000, 50000.1, 50000)
    assert t["high"] == 50500 and t["low"] == 49500 and t["open"] == 49900 and t["vol"] == 1234.5
    assert isinstance(t["time"], int) and t["time"] > 1.7e12
    assert answer["raw"]["data"][0]["instId"] == "BTC-USDT"


@pytest.mark.parametrize("text", ["btc_usdt", "Btc_Usdt", "BTC_USDT"])
def test_symbol_in_any_case(okx, text):
    assert okx.data("ticker", symbol=text)["symbol"] == "BTC_USDT"


@pytest.mark.parametrize("text", ["USDT", "BTC-USDT", "BTC_USDT_X", "_USDT", "BTC_USDT.future"])
def test_incomplete_or_malformed_symbol_is_an_error(okx, text):
    assert "symbol" in okx.error("ticker", symbol=text)


def test_unknown_instrument_carries_okx_code(okx):
    assert okx.error("ticker", symbol="NOPE_USDT") == "OKX 51001: Instrument ID does not exist"


def test_depth_honours_limit_and_orders_sides(okx):
    book = okx.data("depth", symbol="ETH_USDT", limit=7)
    assert len(book["asks"]) == 7 and len(book["bids"]) == 7
    asks, bids = [p for p, _ in book["asks"]], [p for p, _ in book["bids"]]
    assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]
    assert book["asks"][0] == [3000.01, 0.5]
    assert isinstance(book["time"], int)


def test_trades_oldest_first(okx):
    rows = okx.data("trades", symbol="BTC_USDT")
    assert len(rows) == 100
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert set(rows[0]) == {"id", "time", "price", "amount", "type"}
    assert isinstance(rows[0]["id"], str) and rows[0]["type"] in ("buy", "sell")


def test_records_oldest_first_in_ms_with_period_in_minutes(okx):
    rows = okx.data("records", symbol="BTC_USDT", period=60, limit=10)
    assert len(rows) == 10
    times = [r[0] for r in rows]
    assert times == sorted(times) and {b - a for a, b in zip(times, times[1:])} == {3_600_000}
    assert all(len(r) == 6 for r in rows)


def test_records_page_beyond_one_okx_page(okx, okx_fake):
    rows = okx.data("records", symbol="BTC_USDT", period=1, limit=700)
    times = [r[0] for r in rows]
    assert len(rows) == 700 and len(set(times)) == 700 and times == sorted(times)
    assert sum("/market/candles" in target for _, target, _ in okx_fake.requests) == 3


def test_records_unknown_period(okx):
    assert "7-minute" in okx.error("records", symbol="BTC_USDT", period=7)


def test_accounts_every_currency_free_and_frozen(okx):
    rows = okx.data("accounts")
    assert {"currency": "USDT", "free": 100000, "frozen": 0} in rows
    assert {r["currency"] for r in rows} == {"USDT", "BTC", "ETH"}
    assert okx.data("assets") == rows


def test_limit_buy_rests_freezes_funds_and_cancels(okx):
    order_id = okx.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.5)["id"]
    assert order_id.startswith("BTC-USDT,")
    usdt = {r["currency"]: r for r in okx.data("accounts")}["USDT"]
    assert (usdt["free"], usdt["frozen"]) == (80000, 20000)
    order = okx.data("order", id=order_id, symbol="BTC_USDT")
    assert order == {"id": order_id, "symbol": "BTC_USDT", "amount": 0.5, "price": 40000,
                     "deal_amount": 0, "avg_price": 0, "type": "buy", "status": "pending"}
    assert [o["id"] for o in okx.data("orders", symbol="BTC_USDT")] == [order_id]
    assert okx.data("cancel", id=order_id, symbol="BTC_USDT") is True
    assert okx.data("order", id=order_id)["status"] == "canceled"
    assert okx.data("orders", symbol="BTC_USDT") == []
    usdt = {r["currency"]: r for r in okx.data("accounts")}["USDT"]
    assert (usdt["free"], usdt["frozen"]) == (100000, 0)


def test_crossing_limit_sell_fills_partially_against_the_book(okx):
    # bids: 50000 x 0.5, 49999.9 x 1.0, 49999.8 x 1.5 -> a sell at 49999.9 for 0.8 fills fully
    order_id = okx.data("trade", symbol="BTC_USDT", type="sell", price=49999.9, amount=0.8)["id"]
    order = okx.data("order", id=order_id)
    assert order["status"] == "filled" and order["deal_amount"] == 0.8
    assert order["avg_price"] == pytest.approx((50000 * 0.5 + 49999.9 * 0.3) / 0.8)


def test_market_buy_spends_quote_currency(okx, okx_fake):
    order_id = okx.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount=100)["id"]
    body = okx_fake.requests[-2][2] if "order?" in okx_fake.requests[-1][1] else okx_fake.requests[-1][2]
    assert '"tgtCcy":"quote_ccy"' in body and '"ordType":"market"' in body and '"sz":"100"' in body
    order = okx.data("order", id=order_id)
    assert order["status"] == "filled"
    assert order["deal_amount"] * order["avg_price"] == pytest.approx(100)


def test_market_sell_amount_is_base(okx):
    order_id = okx.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount=0.25)["id"]
    order = okx.data("order", id=order_id)
    assert order["status"] == "filled" and order["deal_amount"] == 0.25
    assert {r["currency"]: r for r in okx.data("accounts")}["ETH"]["free"] == 9.75


def test_tiny_amounts_leave_as_exact_decimals(okx, okx_fake):
    okx.data("trade", symbol="BTC_USDT", type="buy", price="30000.04", amount="0.00001")
    sent = [body for verb, target, body in okx_fake.requests if verb == "POST"][-1]
    assert '"sz":"0.00001"' in sent and '"px":"30000"' in sent and "e-" not in sent


def test_amount_rounds_down_to_lot_size(okx, okx_fake):
    okx.data("trade", symbol="ETH_USDT", type="buy", price="1000.009", amount="0.0123456789")
    sent = [body for verb, target, body in okx_fake.requests if verb == "POST"][-1]
    assert '"sz":"0.012345"' in sent and '"px":"1000.01"' in sent


def test_amount_below_minimum_is_refused_before_sending(okx, okx_fake):
    error = okx.error("trade", symbol="BTC_USDT", type="buy", price=30000, amount="0.000001")
    assert "below the minimum 0.00001" in error
    assert not [r for r in okx_fake.requests if r[0] == "POST"]


def test_every_order_carries_a_client_order_id(okx, okx_fake):
    okx.data("trade", symbol="BTC_USDT", type="buy", price=30000, amount=0.001)
    client_id = next(iter(okx_fake.orders.values()))["clOrdId"]
    assert client_id.isalnum() and client_id[0].isalpha() and len(client_id) <= 32


def test_insufficient_balance_carries_okx_scode(okx):
    error = okx.error("trade", symbol="BTC_USDT", type="buy", price=50000, amount=100)
    assert error == "OKX 51008: Order failed. Insufficient USDT balance in account."


def test_orders_follow_every_page(okx):
    ids = {okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.001")["id"] for _ in range(105)}
    listed = okx.data("orders", symbol="ETH_USDT")
    assert {o["id"] for o in listed} == ids and len(listed) == 105


def test_orders_without_symbol_lists_all_spot(okx):
    okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    okx.data("trade", symbol="BTC_USDT", type="buy", price=10000, amount="0.01")
    assert {o["symbol"] for o in okx.data("orders")} == {"ETH_USDT", "BTC_USDT"}


def test_history_orders_since_and_limit(okx):
    ids = []
    for _ in range(3):
        ids.append(okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"])
        okx.data("cancel", id=ids[-1])
    okx.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")
    history = okx.data("historyorders", symbol="ETH_USDT", since=0, limit=0)
    assert len(history) == 4 and [o["status"] for o in history[:3]] == ["canceled"] * 3
    assert history[3]["status"] == "filled" and [o["id"] for o in history[:3]] == ids
    assert len(okx.data("historyorders", symbol="ETH_USDT", since=0, limit=2)) == 2
    assert okx.data("historyorders", symbol="ETH_USDT", since=4102444800000, limit=10) == []


def test_cancel_filled_order_carries_okx_code(okx):
    order_id = okx.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")["id"]
    assert okx.error("cancel", id=order_id).startswith("OKX 51400: ")


def test_unknown_order_carries_okx_code(okx):
    assert okx.error("order", id="ETH-USDT,12345") == "OKX 51603: Order does not exist"


@pytest.mark.parametrize("bad_id", ["12345", "ETH-USDT,", ",123", "a,b,c"])
def test_malformed_order_id(okx, bad_id):
    assert "invalid OKX order id" in okx.error("cancel", id=bad_id)


def test_io_get_passes_query_and_returns_exchange_reply(okx, okx_fake):
    okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    answer = okx.call("__api_/api/v5/trade/orders-pending", http_method="GET", instType="SPOT", instId="ETH-USDT")
    assert answer["data"]["code"] == "0" and len(answer["data"]["data"]) == 1
    assert okx_fake.requests[-1][1] == "/api/v5/trade/orders-pending?instType=SPOT&instId=ETH-USDT"


def test_io_post_sends_params_as_json_body(okx, okx_fake):
    order_id = okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    answer = okx.call("__api_/api/v5/trade/cancel-order", http_method="POST",
                      instId="ETH-USDT", ordId=order_id.split(",")[1])
    assert answer["data"]["data"][0]["sCode"] == "0"


@pytest.mark.parametrize("path", ["https://evil.example/x", "//evil.example/x", "/api/../../x", "api/v5/x",
                                  "/api/v5/x?y=1", "/api/v5/\r\nHost: x"])
def test_io_refuses_paths_off_the_exchange_host(okx, okx_fake, path):
    assert "refused" in okx.error("__api_" + path)
    assert okx_fake.requests == []


def test_signature_is_verified_by_the_fake(okx_fake, plugin_server):
    from tests.conftest import PluginClient
    wrong_secret = PluginClient(plugin_server, "OKX", API_KEY, f"not-{SECRET},{PASSPHRASE}")
    assert wrong_secret.error("accounts") == "OKX 50113: Invalid Sign."
    wrong_pass = PluginClient(plugin_server, "OKX", API_KEY, f"{SECRET},nope")
    assert wrong_pass.error("accounts") == "OKX 50105: Invalid OK-ACCESS-PASSPHRASE."
    wrong_key = PluginClient(plugin_server, "OKX", "other", f"{SECRET},{PASSPHRASE}")
    assert wrong_key.error("accounts") == "OKX 50111: Invalid OK-ACCESS-KEY."


@pytest.mark.parametrize("secret_key", ["", "only-secret", "a,b,c,d", "s,p,live", ",p"])
def test_bad_key_format_is_a_clear_error(okx_fake, plugin_server, secret_key):
    from tests.conftest import PluginClient
    client = PluginClient(plugin_server, "OKX", API_KEY, secret_key)
    assert client.error("accounts").startswith("OKX keys:")
    assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"     # public data needs no keys


def test_simulate_sends_demo_trading_header(okx_fake, plugin_server):
    from tests.conftest import PluginClient
    client = PluginClient(plugin_server, "OKX", API_KEY, f"{SECRET},{PASSPHRASE},simulate")
    seen = []
    original = okx_fake.authenticate
    okx_fake.authenticate = lambda request: seen.append(request.headers.get("x-simulated-trading")) or original(request)
    client.data("accounts")
    assert seen == ["1"]


def test_clock_skew_resyncs_and_retries_once(okx, okx_fake):
    okx_fake.clock_skew_ms = 120_000
    assert okx.data("accounts")
    assert okx.data("accounts")
    assert sum("/public/time" in target for _, target, _ in okx_fake.requests) == 1
