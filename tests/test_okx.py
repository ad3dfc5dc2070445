"""What is specific to OKX: key format, signature codes, demo trading, id format, IO."""
import pytest

from tests.conftest import PluginClient
from tests.fakes.okx import API_KEY, PASSPHRASE, SECRET


def test_ticker_maps_okx_fields(okx):
    answer = okx.call("ticker", symbol="BTC_USDT")
    assert answer["data"] == {"symbol": "BTC_USDT", "buy": 50000, "sell": 50000.1, "high": 50500, "low": 49500,
                              "open": 49900, "last": 50000, "vol": 1234.5, "time": answer["data"]["time"]}
    assert answer["raw"]["data"][0]["instId"] == "BTC-USDT"


def test_order_id_is_instid_comma_ordid(okx):
    order_id = okx.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount=0.001)["id"]
    inst, ord_id = order_id.split(",")
    assert inst == "BTC-USDT" and ord_id.isdigit()


def test_market_buy_sends_tgtccy_quote(okx):
    okx.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount=100)
    body = [b for verb, target, b in okx.fake.requests if verb == "POST"][-1]
    assert '"tgtCcy":"quote_ccy"' in body and '"ordType":"market"' in body and '"sz":"100"' in body


def test_records_page_with_after_cursor(okx):
    okx.data("records", symbol="BTC_USDT", period=1, limit=700)
    pages = [t for _, t, _ in okx.fake.requests if t.startswith("/api/v5/market/candles")]
    assert len(pages) == 3 and "after=" not in pages[0] and "after=" in pages[1]


def test_io_get_passes_query_and_returns_exchange_reply(okx):
    okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")
    answer = okx.call("__api_/api/v5/trade/orders-pending", http_method="GET", instType="SPOT", instId="ETH-USDT")
    assert answer["data"]["code"] == "0" and len(answer["data"]["data"]) == 1
    assert okx.fake.requests[-1][1] == "/api/v5/trade/orders-pending?instType=SPOT&instId=ETH-USDT"


def test_io_post_sends_params_as_json_body(okx):
    order_id = okx.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    answer = okx.call("__api_/api/v5/trade/cancel-order", http_method="POST",
                      instId="ETH-USDT", ordId=order_id.split(",")[1])
    assert answer["data"]["data"][0]["sCode"] == "0"


def test_signature_is_verified_by_the_fake(okx_fake, plugin_server):
    wrong_secret = PluginClient(plugin_server, "OKX", API_KEY, f"not-{SECRET},{PASSPHRASE}")
    assert wrong_secret.error("accounts") == "OKX 50113: Invalid Sign."
    wrong_pass = PluginClient(plugin_server, "OKX", API_KEY, f"{SECRET},nope")
    assert wrong_pass.error("accounts") == "OKX 50105: Invalid OK-ACCESS-PASSPHRASE."
    wrong_key = PluginClient(plugin_server, "OKX", "other", f"{SECRET},{PASSPHRASE}")
    assert wrong_key.error("accounts") == "OKX 50111: Invalid OK-ACCESS-KEY."


@pytest.mark.parametrize("secret_key", ["", "only-secret", "a,b,c,d", "s,p,live", ",p"])
def test_bad_key_format_is_a_clear_error(okx_fake, plugin_server, secret_key):
    client = PluginClient(plugin_server, "OKX", API_KEY, secret_key)
    assert client.error("accounts").startswith("OKX keys:")
    assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"     # public data needs no keys


def test_simulate_sends_demo_trading_header(okx_fake, plugin_server):
    client = PluginClient(plugin_server, "OKX", API_KEY, f"{SECRET},{PASSPHRASE},simulate")
    seen = []
    original = okx_fake.authenticate
    okx_fake.authenticate = lambda request: seen.append(request.headers.get("x-simulated-trading")) or original(request)
    client.data("accounts")
    assert seen == ["1"]


def test_suspended_instruments_are_not_markets(okx):
    error = okx.error("trade", symbol="OLD_USDT", type="buy", price=1, amount=1)
    assert error == "OKX has no live market OLD_USDT"
