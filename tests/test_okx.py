"""What is specific to OKX: key format, signature codes, demo trading, id format, IO."""
import json

import pytest

from tests.conftest import PluginClient, exchange_fixtures
from tests.fakes.okx import API_KEY, DEMO_API_KEY, PASSPHRASE, SECRET, FakeOKX

fake, client = exchange_fixtures(FakeOKX, both_modes=True)


def test_ticker_maps_okx_fields(client):
    answer = client.call("ticker", symbol="BTC_USDT")
    assert answer["data"] == {"symbol": "BTC_USDT", "buy": 50000, "sell": 50000.1, "high": 50500, "low": 49500,
                              "open": 49900, "last": 50000, "vol": 1234.5, "time": answer["data"]["time"]}
    assert answer["raw"]["data"][0]["instId"] == "BTC-USDT"


def test_order_id_is_instid_comma_ordid(client):
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)["id"]
    inst, ord_id = order_id.split(",")
    assert inst == "BTC-USDT" and ord_id.isdigit()


def test_market_buy_sends_tgtccy_quote(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount=100)
    body = [b for verb, target, b in client.fake.requests if verb == "POST"][-1]
    assert '"tgtCcy":"quote_ccy"' in body and '"ordType":"market"' in body and '"sz":"100"' in body


def test_records_page_with_after_cursor(client):
    client.data("records", symbol="BTC_USDT", period=1, limit=700)
    pages = [t for _, t, _ in client.fake.requests if t.startswith("/api/v5/market/candles")]
    assert len(pages) == 3 and "after=" not in pages[0] and "after=" in pages[1]


def test_io_get_passes_query_and_returns_exchange_reply(client):
    client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    answer = client.call("__api_/api/v5/trade/orders-pending", http_method="GET", instType="SPOT", instId="ETH-USDT")
    assert answer["data"]["code"] == "0" and len(answer["data"]["data"]) == 1
    assert client.fake.requests[-1][1] == "/api/v5/trade/orders-pending?instType=SPOT&instId=ETH-USDT"


def test_io_post_sends_params_as_json_body(client):
    order_id = client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    answer = client.call("__api_/api/v5/trade/cancel-order", http_method="POST",
                      instId="ETH-USDT", ordId=order_id.split(",")[1])
    assert answer["data"]["data"][0]["sCode"] == "0"


def test_signature_is_verified_by_the_fake(fake, client):
    wrong_secret = PluginClient(client.url, "OKX", API_KEY, f"not-{SECRET},{PASSPHRASE}")
    assert wrong_secret.error("accounts") == "OKX 50113: Invalid Sign."
    wrong_pass = PluginClient(client.url, "OKX", API_KEY, f"{SECRET},nope")
    assert wrong_pass.error("accounts") == "OKX 50105: Invalid OK-ACCESS-PASSPHRASE."
    wrong_key = PluginClient(client.url, "OKX", "other", f"{SECRET},{PASSPHRASE}")
    assert wrong_key.error("accounts") == "OKX 50111: Invalid OK-ACCESS-KEY."


@pytest.mark.parametrize("secret_key", ["", "only-secret", "a,b,c,d", "s,p,live", ",p"])
def test_bad_key_format_is_a_clear_error(fake, client, secret_key):
    keyed = PluginClient(client.url, "OKX", API_KEY, secret_key)
    assert keyed.error("accounts").startswith("OKX keys:")
    assert keyed.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"     # public data needs no keys


def test_simulate_sends_demo_trading_header(fake, client):
    keyed = PluginClient(client.url, "OKX", DEMO_API_KEY, f"{SECRET},{PASSPHRASE},simulate")
    seen = []
    original = fake.authenticate
    fake.authenticate = lambda request: seen.append(request.headers.get("x-simulated-trading")) or original(request)
    keyed.data("accounts")
    assert seen == ["1"]


def test_a_key_used_in_the_other_environment_is_refused(fake, client):
    live_as_demo = PluginClient(client.url, "OKX", API_KEY, f"{SECRET},{PASSPHRASE},simulate")
    assert live_as_demo.error("accounts") == "OKX 50101: APIKey does not match current environment."
    demo_as_live = PluginClient(client.url, "OKX", DEMO_API_KEY, f"{SECRET},{PASSPHRASE}")
    assert demo_as_live.error("accounts") == "OKX 50101: APIKey does not match current environment."


def test_suspended_instruments_are_not_markets(client):
    error = client.error("trade", symbol="OLD_USDT", type="buy", price=1, amount=1)
    assert error == "OKX has no live market OLD_USDT"


# ---------------------------------------------------------------------------- swaps

def sent_orders(fake):
    return [json.loads(body) for verb, target, body in fake.requests
            if verb == "POST" and target == "/api/v5/trade/order"]


def test_swap_symbols_map_to_okx_swap_instruments(client):
    order_id = client.data("trade", symbol="BTC_USD.swap", type="buy", price=40000, amount=1)["id"]
    assert order_id.startswith("BTC-USD-SWAP,")
    assert sent_orders(client.fake)[-1]["instId"] == "BTC-USD-SWAP"
    assert client.call("ticker", symbol="ETH_USDT.swap")["raw"]["data"][0]["instId"] == "ETH-USDT-SWAP"


def test_net_mode_closes_are_reduce_only_cross_orders(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=2)
    client.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=2)
    opened, closed = sent_orders(client.fake)
    assert (opened["side"], opened["tdMode"], "posSide" in opened, "reduceOnly" in opened) == ("buy", "cross", False, False)
    assert (closed["side"], closed["tdMode"], closed["reduceOnly"], "posSide" in closed) == ("sell", "cross", True, False)
    assert opened["sz"] == "2" and "tgtCcy" not in opened


def test_long_short_mode_orders_name_their_side(client):
    client.fake.engine.set_hedge_mode(True)
    for fmz_type in ("buy", "sell", "closebuy", "closesell"):
        client.data("trade", symbol="ETH_USDT.swap", type=fmz_type, price=-1, amount=1)
    sent = [(o["side"], o["posSide"], "reduceOnly" in o) for o in sent_orders(client.fake)]
    assert sent == [("buy", "long", False), ("sell", "short", False), ("sell", "long", False), ("buy", "short", False)]


def test_position_mode_is_read_once_per_key(client):
    for _ in range(3):
        client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1)
    assert sum(target == "/api/v5/account/config" for _, target, _ in client.fake.requests) == 1


def test_position_mode_is_read_again_after_okx_refuses_the_pos_side(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)
    client.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=-1, amount=1)
    client.fake.engine.set_hedge_mode(True)                # the trader switches modes on OKX's site
    assert client.error("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1) == "OKX 51000: Parameter posSide error"
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)
    assert sent_orders(client.fake)[-1]["posSide"] == "long"


def test_isolated_key_option_sets_td_mode_and_both_leverage_sides(fake, client):
    keyed = PluginClient(client.url, "OKX", API_KEY, f"{SECRET},{PASSPHRASE},isolated")
    fake.engine.set_hedge_mode(True)
    assert keyed.data("margin_level", symbol="BTC_USDT.swap", level=5) is True
    bodies = [json.loads(b) for verb, target, b in fake.requests if target == "/api/v5/account/set-leverage"]
    assert bodies == [{"instId": "BTC-USDT-SWAP", "lever": "5", "mgnMode": "isolated", "posSide": side}
                      for side in ("long", "short")]
    keyed.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)
    assert sent_orders(fake)[-1]["tdMode"] == "isolated"
    (held,) = keyed.data("positions", symbol="BTC_USDT.swap")
    assert held["margin"] == 100.0002 and held["margin_level"] == 5      # isolated: OKX's `margin` field


def test_cross_leverage_is_one_call_without_pos_side(client):
    client.data("margin_level", symbol="ETH_USDT.swap", level=3)
    (body,) = [b for verb, target, b in client.fake.requests if target == "/api/v5/account/set-leverage"]
    assert json.loads(body) == {"instId": "ETH-USDT-SWAP", "lever": "3", "mgnMode": "cross"}


@pytest.mark.parametrize("options", ["isolated,cross", "simulate,simulate", "isolated,live"])
def test_bad_key_options(fake, client, options):
    keyed = PluginClient(client.url, "OKX", API_KEY, f"{SECRET},{PASSPHRASE},{options}")
    assert keyed.error("accounts").startswith("OKX keys:")


def test_simulate_and_isolated_together(fake, client):
    keyed = PluginClient(client.url, "OKX", DEMO_API_KEY, f"{SECRET},{PASSPHRASE},simulate,isolated")
    keyed.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=1)
    assert sent_orders(fake)[-1]["tdMode"] == "isolated"


def test_resting_close_order_shows_as_frozen_amount(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=10)
    order_id = client.data("trade", symbol="BTC_USDT.swap", type="closebuy", price=60000, amount=4)["id"]
    (held,) = client.data("positions", symbol="BTC_USDT.swap")
    assert (held["amount"], held["frozen_amount"]) == (10, 4)
    client.data("cancel", id=order_id, symbol="BTC_USDT.swap")
    assert client.data("positions", symbol="BTC_USDT.swap")[0]["frozen_amount"] == 0


def test_net_mode_short_is_a_negative_pos(client):
    client.data("trade", symbol="ETH_USDT.swap", type="sell", price=-1, amount=7)
    answer = client.call("positions", symbol="ETH_USDT.swap")
    assert answer["raw"]["data"][0]["pos"] == "-7" and answer["raw"]["data"][0]["posSide"] == "net"
    assert (answer["data"][0]["amount"], answer["data"][0]["type"]) == (7, 1)


def test_accounts_add_equity_and_upnl_for_the_margin_currency(client):
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=-1, amount=10)
    rows = {r["currency"]: r for r in client.data("accounts")}
    assert rows["USDT"] == {"currency": "USDT", "free": 99499.999, "frozen": 500.001,
                            "equity": 99999.99, "upnl": -0.01}
    assert set(rows["ETH"]) == {"currency", "free", "frozen"}        # no derivative position: no upl


def test_funding_interval_is_next_minus_this_settlement(client):
    answer = client.call("fundings", symbol="BTC_USDT.swap")
    raw = answer["raw"]["data"][0]
    assert answer["data"][0]["time"] == int(raw["fundingTime"])
    assert answer["data"][0]["interval"] == int(raw["nextFundingTime"]) - int(raw["fundingTime"])
    assert client.fake.requests[-1][1] == "/api/v5/public/funding-rate?instId=BTC-USDT-SWAP"
    client.data("fundings")
    assert client.fake.requests[-1][1] == "/api/v5/public/funding-rate?instId=ANY"


def test_markets_are_cached_for_orders_and_the_markets_call(client):
    client.data("markets")
    client.data("trade", symbol="BTC_USDT.swap", type="buy", price=40000, amount=1)
    client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)
    loads = [t for _, t, _ in client.fake.requests if t.startswith("/api/v5/public/instruments")]
    assert loads == ["/api/v5/public/instruments?instType=SPOT", "/api/v5/public/instruments?instType=SWAP"]


def test_tickers_of_a_spot_range_or_one_symbol_ask_one_inst_type(client):
    assert {t["symbol"] for t in client.data("tickers", symbol="USDT")} == {"BTC_USDT", "ETH_USDT"}
    assert client.fake.requests[-1][1] == "/api/v5/market/tickers?instType=SPOT"
    assert [t["symbol"] for t in client.data("tickers", symbol="BTC_USD.swap")] == ["BTC_USD.swap"]
    assert client.fake.requests[-1][1] == "/api/v5/market/tickers?instType=SWAP"


def test_clock_offset_is_kept_per_base_url():
    from exchanges import _kit, okx
    from tests.fakes.okx import FakeOKX
    with FakeOKX() as ahead, FakeOKX() as on_time:
        ahead.clock_skew_ms = 120_000
        for fake in (ahead, on_time, ahead, on_time):
            api = _kit.Api(okx, fake.ACCESS_KEY, fake.SECRET_KEY, {"": fake.url}, timeout=3)
            assert okx.accounts(api)[0]
        assert sum(t.startswith(ahead.TIME_PATH) for _, t, _ in ahead.requests) == 1
        assert not any(t.startswith(on_time.TIME_PATH) for _, t, _ in on_time.requests)
