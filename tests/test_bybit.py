"""What is specific to Bybit: signing, key format, id format, market-buy units, paging, IO."""
import hashlib
import hmac
import json

import pytest

from exchanges import bybit
from exchanges._kit import Request
from tests.conftest import PluginClient, exchange_fixtures
from tests.fakes.bybit import API_KEY, SECRET, FakeBybit


fake, client = exchange_fixtures(FakeBybit)


def test_signature_of_a_get_is_hex_hmac_of_time_key_window_query():
    # The docs' example string to sign, with a secret of our own (the docs do not give theirs).
    request = Request("GET", "/v5/order/realtime", query="category=option&symbol=BTC-29JUL22-25000-C")
    bybit.sign(request, bybit.Keys("XXXXXXXXXX", "our-secret"), 1658384314791)
    prehash = "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C"
    assert request.headers == {
        "X-BAPI-API-KEY": "XXXXXXXXXX", "X-BAPI-TIMESTAMP": "1658384314791", "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": hmac.new(b"our-secret", prehash.encode(), hashlib.sha256).hexdigest()}


def test_signature_of_a_post_covers_the_exact_body():
    request = Request("POST", "/v5/order/create", body='{"category": "option"}')
    bybit.sign(request, bybit.Keys("XXXXXXXXXX", "our-secret"), 1658385579423)
    prehash = '1658385579423XXXXXXXXXX5000{"category": "option"}'
    assert request.headers["X-BAPI-SIGN"] == hmac.new(b"our-secret", prehash.encode(), hashlib.sha256).hexdigest()


def test_wrong_secret_and_wrong_key_get_bybits_codes(fake, client):
    error = PluginClient(client.url, "Bybit", API_KEY, "not-" + SECRET).error("accounts")
    assert error.startswith("Bybit 10004: error sign!")
    assert API_KEY not in error and SECRET not in error          # Bybit echoes the signed string
    assert PluginClient(client.url, "Bybit", "other-key", SECRET).error("accounts") == \
        "Bybit 10003: API key is invalid."


@pytest.mark.parametrize("secret_key", ["", "   ", "secret,passphrase"])
def test_bad_key_format_is_a_clear_error(fake, client, secret_key):
    keyed = PluginClient(client.url, "Bybit", API_KEY, secret_key)
    assert keyed.error("accounts").startswith("Bybit keys:")
    assert keyed.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"     # public data needs no keys


def test_ticker_maps_bybit_fields(client):
    answer = client.call("ticker", symbol="BTC_USDT")
    assert answer["data"] == {"symbol": "BTC_USDT", "buy": 50000, "sell": 50000.1, "high": 50500, "low": 49500,
                              "open": 49900, "last": 50000, "vol": 1234.5, "time": answer["raw"]["time"]}
    assert answer["raw"]["result"]["list"][0]["symbol"] == "BTCUSDT"
    assert client.fake.sent("/v5/market/tickers")[-1][0].endswith("?category=spot&symbol=BTCUSDT")


def test_order_id_is_category_symbol_orderid(client):
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)["id"]
    category, name, bybit_id = order_id.split(",")
    assert (category, name) == ("spot", "BTCUSDT") and bybit_id.isdigit()
    assert client.data("order", id=order_id)["symbol"] == "BTC_USDT"        # no symbol needed


def test_order_of_another_category_is_not_found(client):
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)["id"]
    error = client.error("order", id=order_id.replace("spot,", "linear,"))
    assert error.startswith("Bybit 110001: Order does not exist")


def test_market_buy_sends_quote_amount_with_market_unit(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount="100.123456789")
    body = json.loads(client.fake.sent("/v5/order/create")[-1][1])
    assert body["orderType"] == "Market" and body["marketUnit"] == "quoteCoin" and body["timeInForce"] == "IOC"
    assert body["qty"] == "100.1234567" and "price" not in body            # quotePrecision 0.0000001


def test_market_sell_sends_base_amount(client):
    client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.5")
    body = json.loads(client.fake.sent("/v5/order/create")[-1][1])
    assert (body["side"], body["marketUnit"], body["qty"]) == ("Sell", "baseCoin", "0.5")


def test_spot_has_no_close_orders(client):
    assert "buy or sell" in client.error("trade", symbol="BTC_USDT", type="closebuy", price=40000, amount=0.01)
    assert client.fake.sent("/v5/order/create") == []


def test_insufficient_balance_names_the_currency_paid(client):
    error = client.error("trade", symbol="ETH_USDT", type="sell", price=3000, amount=11)
    assert error == "Bybit 170131: Balance insufficient (this order pays in ETH)"


def test_order_below_the_minimum_value_gets_bybits_code(client):
    error = client.error("trade", symbol="BTC_USDT", type="buy", price=1000, amount="0.00001")
    assert error == "Bybit 170140: Order value exceeded lower limit"           # 0.01 USDT < minOrderAmt 0.1


def test_records_page_back_with_end(client):
    rows = client.data("records", symbol="BTC_USDT", period=1, limit=1500)
    pages = [target for target, _ in client.fake.sent("/v5/market/kline")]
    assert len(rows) == 1500 and len(pages) == 2
    assert "end=" not in pages[0] and "limit=1000" in pages[0]
    assert f"end={rows[500][0] - 1}" in pages[1] and "limit=500" in pages[1]


def test_daily_and_weekly_candles(client):
    days = client.data("records", symbol="BTC_USDT", period=1440, limit=3)
    weeks = client.data("records", symbol="BTC_USDT", period=10080, limit=3)
    assert all(row[0] % 86_400_000 == 0 for row in days)
    assert all((row[0] - 4 * 86_400_000) % (7 * 86_400_000) == 0 for row in weeks)      # Mondays


def test_depth_limit_is_capped_at_bybits_maximum(client):
    book = client.data("depth", symbol="BTC_USDT", limit=1000)
    assert len(book["asks"]) == 200 and "limit=200" in client.fake.sent("/v5/market/orderbook")[-1][0]


def test_order_falls_back_to_history_when_realtime_has_forgotten_it(client):
    order_id = client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")["id"]
    client.fake.recent_closed = 0
    assert client.data("order", id=order_id)["status"] == "filled"
    assert len(client.fake.sent("/v5/order/history")) == 1


def test_history_walks_back_in_seven_day_windows(client):
    client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")
    now = client.fake.now_ms()
    assert len(client.data("historyorders", symbol="ETH_USDT", since=now - 10 * 86_400_000)) == 1
    windows = [target for target, _ in client.fake.sent("/v5/order/history")]
    assert len(windows) == 2 and all("startTime=" in w and "endTime=" in w for w in windows)


def test_history_follows_the_cursor(client):
    for _ in range(60):
        client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.001")
    assert len(client.data("historyorders", symbol="ETH_USDT", limit=0)) == 60
    pages = [target for target, _ in client.fake.sent("/v5/order/history")]
    assert len(pages) == 2 and "cursor=page_args" in pages[1]


def test_order_dropped_after_it_was_stored_is_found_by_order_link_id(client):
    client.fake.inject("drop_after", path="/v5/order/create")
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)["id"]
    (order,) = client.fake.engine.orders.values()
    assert order_id == f"spot,BTCUSDT,{order['id']}"
    assert len(client.fake.sent("/v5/order/create")) == 1


def test_order_dropped_before_it_arrived_is_sent_once_more(client):
    client.server.settings.timeout = 0.3        # the order's deadline, waited out before the resend
    client.fake.inject("drop_before", path="/v5/order/create")
    client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)
    assert len(client.fake.engine.orders) == 1
    bodies = [json.loads(body) for _, body in client.fake.sent("/v5/order/create")]
    assert len(bodies) == 2 and bodies[0] == bodies[1]                   # same orderLinkId


def test_rate_limit_on_a_read_waits_once(client):
    client.fake.inject("429")
    assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
    client.fake.inject("429", times=2)
    assert client.error("ticker", symbol="BTC_USDT") == ("Bybit rate limit reached for GET /v5/market/tickers "
                                                         "(Bybit allows 600 requests per 5 s per IP): Bybit 10006: Too many visits!")


def test_markets_and_tickers(client):
    markets = client.data("markets")
    assert set(markets) == {"BTC_USDT", "ETH_USDT", "BTC_USDT.swap", "ETH_USDT.swap"}
    assert markets["BTC_USDT"]["tick_size"] == 0.1 and markets["BTC_USDT"]["min_qty"] == 0.00001
    assert markets["ETH_USDT"]["amount_size"] == 0.000001 and markets["ETH_USDT"]["min_notional"] == 0.1
    assert markets["ETH_USDT.swap"]["min_notional"] == 5 and markets["ETH_USDT.swap"]["ct_val"] == 1
    assert not {"quote_step", "funding_interval"} & (set(markets["ETH_USDT"]) | set(markets["ETH_USDT.swap"]))
    tickers = client.data("tickers")
    assert {t["symbol"] for t in tickers} == {"BTC_USDT", "ETH_USDT", "BTC_USDT.swap", "ETH_USDT.swap"}
    assert [t["symbol"] for t in client.data("tickers", symbol="ETH_USDT")] == ["ETH_USDT"]
    assert client.data("tickers", symbol="BTC") == []


def test_linear_instruments_are_paged_with_the_cursor(client):
    client.fake.instruments_page = 1
    assert {"BTC_USDT.swap", "ETH_USDT.swap"} <= set(client.data("markets"))
    pages = [target for target, _ in client.fake.sent("/v5/market/instruments-info") if "category=linear" in target]
    assert len(pages) == 2 and "cursor=1" in pages[1]


# ---------------------------------------------------------------------------- linear perpetuals

def test_spot_and_linear_orders_of_one_name_never_mix(client):
    spot_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
    swap_id = client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")["id"]
    assert spot_id.startswith("spot,BTCUSDT,") and swap_id.startswith("linear,BTCUSDT,")
    assert client.data("order", id=spot_id)["symbol"] == "BTC_USDT"
    assert client.data("order", id=swap_id)["symbol"] == "BTC_USDT.swap"
    assert [o["id"] for o in client.data("orders", symbol="BTC_USDT.swap")] == [swap_id]
    assert [o["id"] for o in client.data("orders", symbol="BTC_USDT")] == [spot_id]
    forged = "linear," + spot_id.split(",", 1)[1]
    assert client.error("cancel", id=forged).startswith("Bybit 110001:")
    assert client.data("order", id=spot_id)["status"] == "pending"


def test_linear_amounts_are_coins_and_market_orders_have_no_market_unit(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.0123")
    body = json.loads(client.fake.sent("/v5/order/create")[-1][1])
    assert (body["category"], body["qty"], body["orderType"], body["positionIdx"]) == ("linear", "0.012", "Market", 0)
    assert "marketUnit" not in body and "reduceOnly" not in body
    assert client.data("positions", symbol="BTC_USDT.swap")[0]["amount"] == 0.012


def test_one_way_closes_are_reduce_only_on_position_idx_0(client):
    client.data("trade", symbol="ETH_USDT.swap", type="sell", price=-1, amount="0.5")
    client.data("trade", symbol="ETH_USDT.swap", type="closesell", price=-1, amount="0.5")
    body = json.loads(client.fake.sent("/v5/order/create")[-1][1])
    assert (body["side"], body["positionIdx"], body["reduceOnly"]) == ("Buy", 0, True)
    assert client.data("positions", symbol="ETH_USDT.swap") == []


def test_hedge_mode_orders_name_their_position_idx(client):
    client.fake.engine.set_hedge_mode(True)
    for fmz_type in ("buy", "sell", "closebuy", "closesell"):
        client.data("trade", symbol="BTC_USDT.swap", type=fmz_type, price=-1, amount="0.01")
    sides = [(b["side"], b["positionIdx"], b.get("reduceOnly", False))
             for b in (json.loads(body) for _, body in client.fake.sent("/v5/order/create"))]
    assert sides == [("Buy", 1, False), ("Sell", 2, False), ("Sell", 1, True), ("Buy", 2, True)]


def test_position_mode_is_read_once_per_symbol(client):
    for _ in range(3):
        client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.01")
    client.data("trade", symbol="ETH_USDT.swap", type="buy", price=-1, amount="0.1")
    reads = [target for target, _ in client.fake.sent("/v5/position/list")]
    assert len(reads) == 2 and "symbol=BTCUSDT" in reads[0] and "symbol=ETHUSDT" in reads[1]


def test_a_switched_position_mode_is_read_again_and_the_refused_order_sent_once_more(client):
    order_id = client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount="0.01")["id"]
    client.data("cancel", id=order_id)                        # read as one-way mode, then flat again
    client.fake.engine.set_hedge_mode(True)                   # the trader switches on Bybit's site
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.01")
    bodies = [json.loads(body) for _, body in client.fake.sent("/v5/order/create")][1:]
    assert [b["positionIdx"] for b in bodies] == [0, 1] and bodies[0]["orderLinkId"] == bodies[1]["orderLinkId"]
    assert len(client.fake.sent("/v5/position/list")) == 2
    assert [p["type"] for p in client.data("positions", symbol="BTC_USDT.swap")] == [0]


def test_a_refusal_that_is_not_about_the_mode_is_not_resent(client):
    error = client.error("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount="0.01")
    assert error == "Bybit 110017: Reduce-only rule not satisfied"
    assert len(client.fake.sent("/v5/order/create")) == 1


def test_leverage_already_set_is_success(client):
    answer = client.call("margin_level", symbol="BTC_USDT.swap", level=10)      # 10 is the starting leverage
    assert answer["data"] is True and answer["raw"]["retCode"] == 110043
    body = json.loads(client.fake.sent("/v5/position/set-leverage")[-1][1])
    assert body == {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "10", "sellLeverage": "10"}


def test_linear_order_below_the_minimum_notional_gets_bybits_code(client):
    error = client.error("trade", symbol="BTC_USDT.swap", type="buy", price=100, amount="0.001")
    assert error == "Bybit 110094: Order notional value below the lower limit"


def test_funding_interval_comes_from_instruments_info(client):
    answer = client.call("fundings", symbol="ETH_USDT.swap")
    (funding,) = answer["data"]
    assert funding["interval"] == 4 * 3_600_000 and funding["rate"] == -0.00005
    assert funding["time"] == int(answer["raw"]["result"]["list"][0]["nextFundingTime"])


def test_positions_without_symbol_ask_per_settle_coin(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.01")
    assert [p["symbol"] for p in client.data("positions")] == ["BTC_USDT.swap"]
    assert "settleCoin=USDT" in client.fake.sent("/v5/position/list")[-1][0]


def test_accounts_show_equity_and_upnl_of_the_margin_coin(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.1")
    usdt = {r["currency"]: r for r in client.data("accounts")}["USDT"]
    assert (usdt["frozen"], usdt["upnl"]) == (500.001, -0.01)
    assert usdt["equity"] == pytest.approx(100000 - 0.01)


def test_io_get_passes_query_and_returns_bybit_reply(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    answer = client.call("__api_/v5/order/realtime", http_method="GET", category="spot", symbol="ETHUSDT")
    assert answer["data"]["retCode"] == 0 and len(answer["data"]["result"]["list"]) == 1


def test_io_post_sends_params_as_json_body(client):
    order_id = client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    answer = client.call("__api_/v5/order/cancel", http_method="POST",
                         category="spot", symbol="ETHUSDT", orderId=order_id.split(",")[2])
    assert answer["data"]["retCode"] == 0
    assert client.data("order", id=order_id)["status"] == "canceled"


def test_a_10001_in_the_same_mode_is_not_resent(client):
    client.data("markets")                                    # the plugin caches tick 0.1 ...
    client.fake.engine.swaps[("BTC", "USDT", "swap")]["tick"] = 1      # ... Bybit now wants whole dollars
    error = client.error("trade", symbol="BTC_USDT.swap", type="buy", price="40000.5", amount="0.01")
    assert error == "Bybit 10001: params error: price invalid"
    assert len(client.fake.sent("/v5/order/create")) == 1 and len(client.fake.sent("/v5/position/list")) == 2


def test_io_switch_mode_puts_the_account_in_hedge_mode(client):
    """A trader may switch modes with exchange.IO; the fake answers switch-mode as Bybit does."""
    switch = dict(http_method="POST", category="linear", symbol="BTCUSDT", mode=3)
    assert client.call("__api_/v5/position/switch-mode", **switch)["data"]["retCode"] == 0
    assert client.fake.engine.hedge_mode
    assert "110025" in json.dumps(client.call("__api_/v5/position/switch-mode", **switch))   # not modified
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount="0.01")
    [(_, body)] = client.fake.sent("/v5/order/create")
    assert json.loads(body)["positionIdx"] == 1
    back = dict(switch, mode=0)
    assert "110024" in json.dumps(client.call("__api_/v5/position/switch-mode", **back))     # position open
