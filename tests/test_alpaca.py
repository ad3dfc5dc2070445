"""What is specific to Alpaca: stocks beside crypto (one-level depth, notional market buys,
fractional shares, time in force, market hours, pattern day trader), keys and hosts (paper,
data), the asset list, order ids, times with nanoseconds, the status table and paging."""
import json
import time

import pytest

import fmz_plugin
from exchanges import alpaca
from exchanges._kit import Request
from tests.conftest import client_of, exchange_fixtures, serving
from tests.fakes.alpaca import KEY_ID, SECRET, FakeAlpaca


fake, client = exchange_fixtures(FakeAlpaca)


def orders_sent(fake):
    return [json.loads(body) for _, body in fake.sent("/v2/orders", "POST")]


def holding(client, currency):
    return {row["currency"]: row for row in client.data("accounts")}[currency]


# ---------------------------------------------------------------------------- keys and hosts

def test_both_key_headers_travel_on_every_call_and_nothing_is_signed():
    request = Request("GET", "/v2/account")
    alpaca.sign(request, alpaca.parse_keys("KEYID", "SECRET,paper"), 1700000000000)
    assert request.headers == {"APCA-API-KEY-ID": "KEYID", "APCA-API-SECRET-KEY": "SECRET"}


@pytest.mark.parametrize("secret_key, paper, extended, feed", [
    ("S", False, False, "iex"), ("S,paper", True, False, "iex"), ("S, paper ,extended,sip", True, True, "sip")])
def test_key_options(secret_key, paper, extended, feed):
    keys = alpaca.parse_keys("K", secret_key)
    assert (keys.secret, keys.paper, keys.extended, keys.feed) == ("S", paper, extended, feed)


@pytest.mark.parametrize("access_key, secret_key", [("", "S"), ("K", ""), ("K", "S,simulate"), ("K", "S,paper,paper")])
def test_bad_keys_are_refused_naming_the_format(access_key, secret_key):
    with pytest.raises(alpaca.PluginError, match="Alpaca keys"):
        alpaca.parse_keys(access_key, secret_key)


def test_wrong_secret_is_alpacas_401_with_a_hint(fake):
    with client_of(fake) as client:
        client.secret_key = "wrong"
        error = client.error("accounts")
    assert error.startswith("Alpaca 40110000: request is not authorized (check the key id and secret")


def test_paper_keys_trade_on_the_paper_host_and_read_data_from_the_data_host():
    with FakeAlpaca() as live, FakeAlpaca() as paper, FakeAlpaca() as data, \
            serving({"alpaca": live.url, "alpaca.paper": paper.url, "alpaca.data": data.url}) as (url, _):
        client = fmz_plugin_client(url, SECRET + ",paper")
        order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
        assert client.data("order", id=order_id)["status"] == "pending"
        assert client.data("ticker", symbol="AAPL_USD")["buy"] == 190
        assert list(paper.engine.orders) and not live.engine.orders
        assert not any(target.startswith(("/v2/stocks", "/v1beta3")) for _, target, _ in paper.requests)
        assert data.sent("/v2/stocks/snapshots") and not data.sent("/v2/orders")
        assert not live.requests                    # the asset list too comes from the paper host


def fmz_plugin_client(url, secret_key):
    from tests.conftest import PluginClient
    return PluginClient(url, "Alpaca", KEY_ID, secret_key)


# ---------------------------------------------------------------------------- symbols from the asset list

def test_stock_and_crypto_are_told_apart_by_the_asset_list(client):
    assert client.data("ticker", symbol="AAPL_USD")["last"] == 190
    assert client.data("ticker", symbol="BTC_USD")["last"] == 50000
    stock, crypto = client.fake.sent("/v2/stocks/snapshots"), client.fake.sent("/v1beta3/crypto/us/snapshots")
    assert [t for t, _ in stock] == ["/v2/stocks/snapshots?symbols=AAPL&feed=iex"]
    assert [t for t, _ in crypto] == ["/v1beta3/crypto/us/snapshots?symbols=BTC%2FUSD"]
    assert len(client.fake.sent("/v2/assets")) == 2            # us_equity and crypto, once


def test_unknown_symbol_is_alpacas_own_not_found(client):
    assert client.error("ticker", symbol="NOPE_USD") == "Alpaca 40410000: asset not found for NOPE"


def test_markets_list_stocks_and_crypto_with_their_steps(client):
    markets = client.data("markets")
    assert {"AAPL_USD", "ZVZZT_USD", "BTC_USD", "BTC_USDT", "ETH_USDT"} <= set(markets)
    assert "OLDCO_USD" not in markets                           # inactive
    assert markets["AAPL_USD"]["amount_size"] == 0.000000001 and markets["AAPL_USD"]["min_notional"] == 1
    assert markets["ZVZZT_USD"]["amount_size"] == 1 and markets["ZVZZT_USD"]["tick_size"] == 0.01
    assert markets["BTC_USDT"]["tick_size"] == 0.1 and markets["BTC_USDT"]["min_qty"] == 0.00001
    assert markets["BTC_USD"]["min_notional"] == 10 and markets["BTC_USDT"]["min_notional"] == 0


# ---------------------------------------------------------------------------- stock market data

def test_stock_depth_is_one_level_from_the_latest_quote(client):
    book = client.data("depth", symbol="AAPL_USD", limit=10)
    assert book["asks"] == [[190.01, 0.5]] and book["bids"] == [[190, 0.5]]
    assert [t for t, _ in client.fake.sent("/v2/stocks/quotes/latest")] == \
        ["/v2/stocks/quotes/latest?symbols=AAPL&feed=iex"]


def test_crypto_depth_is_the_book_cut_to_limit(client):
    book = client.data("depth", symbol="BTC_USD", limit=3)
    assert len(book["asks"]) == len(book["bids"]) == 3 and book["asks"][0] == [50000.1, 0.5]


def test_stock_records_and_trades_ask_the_feed(client):
    rows = client.data("records", symbol="AAPL_USD", period=60, limit=5)
    assert len(rows) == 5 and {b[0] - a[0] for a, b in zip(rows, rows[1:])} == {3_600_000}
    (target, _), = client.fake.sent("/v2/stocks/bars")
    assert "feed=iex" in target and "timeframe=1Hour" in target and "sort=desc" in target
    trades = client.data("trades", symbol="AAPL_USD")
    assert len(trades) == 100 and {t["type"] for t in trades} == {"buy", "sell"}     # by the tick test


def test_sip_key_option_asks_the_sip_feed(fake):
    with client_of(fake) as client:
        client.secret_key = SECRET + ",sip"
        client.data("ticker", symbol="AAPL_USD")
    assert "feed=sip" in fake.sent("/v2/stocks/snapshots")[0][0]


# ---------------------------------------------------------------------------- stock orders

def test_market_buy_spends_usd_as_notional_on_a_day_order(client):
    order_id = client.data("trade", symbol="AAPL_USD", type="buy", price=-1, amount=100)["id"]
    (body,) = orders_sent(client.fake)
    assert (body["notional"], body["type"], body["time_in_force"]) == ("100", "market", "day") and "qty" not in body
    order = client.data("order", id=order_id)
    assert order["status"] == "filled" and order["amount"] == 100
    assert order["deal_amount"] * order["avg_price"] == pytest.approx(100, abs=0.01)
    assert holding(client, "AAPL")["free"] == pytest.approx(10 + 100 / 190.01, abs=1e-5)
    assert holding(client, "USD")["free"] == pytest.approx(99900, abs=0.01)


def test_fractional_shares_go_as_day_orders_whole_shares_rest_gtc(client):
    client.data("trade", symbol="AAPL_USD", type="buy", price=150, amount="0.5")
    client.data("trade", symbol="AAPL_USD", type="buy", price=150, amount="2")
    fractional, whole = orders_sent(client.fake)
    assert (fractional["qty"], fractional["time_in_force"]) == ("0.5", "day")
    assert (whole["qty"], whole["time_in_force"], whole["limit_price"]) == ("2", "gtc", "150")
    assert holding(client, "USD")["frozen"] == 375


def test_not_fractionable_stock_rounds_to_whole_shares_and_refuses_a_usd_buy(client):
    client.data("trade", symbol="ZVZZT_USD", type="buy", price=9, amount="1.7")
    assert orders_sent(client.fake)[0]["qty"] == "1"
    error = client.error("trade", symbol="ZVZZT_USD", type="buy", price=-1, amount=50)
    assert "ZVZZT is not fractionable" in error and len(orders_sent(client.fake)) == 1


def test_crypto_orders_are_gtc(client):
    client.data("trade", symbol="BTC_USD", type="buy", price=40000, amount="0.01")
    client.data("trade", symbol="BTC_USD", type="sell", price=-1, amount="0.01")
    assert [o["time_in_force"] for o in orders_sent(client.fake)] == ["gtc", "gtc"]


def test_extended_key_option_makes_stock_limits_extended_day_orders(fake):
    with client_of(fake) as client:
        client.secret_key = SECRET + ",extended"
        client.data("trade", symbol="AAPL_USD", type="buy", price=150, amount="2")
        client.data("trade", symbol="AAPL_USD", type="buy", price=-1, amount="20")
    limit, market = orders_sent(fake)
    assert (limit["extended_hours"], limit["time_in_force"]) == (True, "day")
    assert "extended_hours" not in market                        # Alpaca takes it on limit orders only


def test_market_closed_queues_a_stock_order_until_the_open(client):
    client.fake.market_open = False
    order_id = client.data("trade", symbol="AAPL_USD", type="buy", price=200, amount="1")["id"]
    assert client.data("order", id=order_id)["status"] == "pending"       # Alpaca's "accepted"
    assert client.fake.render(next(iter(client.fake.engine.orders.values())))["status"] == "accepted"
    client.fake.open_market()
    assert client.data("order", id=order_id)["status"] == "filled"


def test_a_stock_order_refused_while_the_market_is_closed_says_so(client):
    client.fake.market_open = False
    error = client.error("trade", symbol="AAPL_USD", type="buy", price=190, amount="100000")
    assert error.startswith("Alpaca 40310000: insufficient buying power")
    assert "the US stock market is closed now; it opens 2030-01-02T09:30:00-05:00" in error


def test_pattern_day_trader_refusal_is_explained(client):
    client.fake.pattern_day_trader = True
    error = client.error("trade", symbol="AAPL_USD", type="sell", price=-1, amount="1")
    assert error.startswith("Alpaca 40310100: trade denied due to pattern day trading protection")
    assert "3 day trades in 5 business days" in error


def test_accounts_have_usd_cash_and_each_position_as_a_currency(client):
    rows = client.data("accounts")
    assert rows[0] == {"currency": "USD", "free": 100000, "frozen": 0}
    assert {"currency": "AAPL", "free": 10, "frozen": 0} in rows
    client.data("trade", symbol="AAPL_USD", type="sell", price=250, amount="4")
    assert holding(client, "AAPL") == {"currency": "AAPL", "free": 6, "frozen": 4}


# ---------------------------------------------------------------------------- orders

def test_order_ids_are_alpacas_uuids(client):
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
    assert alpaca._UUID.match(order_id)
    assert [t for t, _ in client.fake.sent(f"/v2/orders/{order_id}")] == []
    client.data("order", id=order_id, symbol="BTC_USDT")
    assert client.fake.sent(f"/v2/orders/{order_id}", "GET")
    assert "invalid Alpaca order id" in client.error("order", id="BTC-USDT,123")


def test_a_stock_order_in_fmz_fields_with_its_creation_time(client):
    order_id = client.data("trade", symbol="AAPL_USD", type="sell", price=300, amount="1")["id"]
    order = client.data("order", id=order_id)
    assert (order["symbol"], order["type"], order["amount"], order["price"]) == ("AAPL_USD", "sell", 1, 300)
    assert (order["offset"], order["contract_type"]) == ("", "")
    assert order["time"] == client.fake.engine.orders[str(int(order_id.rsplit("-")[-1]))]["created"]


@pytest.mark.repo_only
def test_open_and_closed_orders_page_by_submitted_time(client, monkeypatch):
    monkeypatch.setattr(alpaca, "ORDER_PAGE", 5)
    ids = [client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.001")["id"] for _ in range(12)]
    assert {o["id"] for o in client.data("orders")} == set(ids)
    targets = [t for t, _ in client.fake.sent("/v2/orders", "GET")]
    assert len(targets) == 3 and "until=" in targets[1] and "until=" not in targets[0]
    for order_id in ids:
        client.data("cancel", id=order_id)
    history = client.data("historyorders", symbol="ETH_USDT", since=int(time.time() * 1000) - 86_400_000, limit=12)
    assert [o["id"] for o in history] == ids                    # oldest first, across 3 pages of 5
    assert [o["id"] for o in client.data("historyorders", symbol="ETH_USDT", limit=7)] == ids[-7:]


def test_cancel_answers_true_on_alpacas_204_and_a_closed_order_is_explained(client):
    """A second cancel gets 422 'already canceled': the order is canceled, so true (FMZ reads no
    error as success); a filled order's 422 stays an error, saying it filled."""
    order_id = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")["id"]
    assert client.data("cancel", id=order_id) is True
    assert client.data("cancel", id=order_id) is True
    filled = client.data("trade", symbol="BTC_USDT", type="buy", price=50010, amount="0.01")["id"]
    error = client.error("cancel", id=filled)
    assert error.startswith('Alpaca 42210000: order is already in "filled" state') and "already filled" in error


def test_io_reaches_the_trading_host(client):
    answer = client.call("__api_/v2/clock")
    assert answer["data"]["is_open"] is True and answer["data"]["timestamp"].endswith("-05:00")


def test_swap_methods_are_not_supported(client):
    for method in ("positions", "fundings"):
        assert client.error(method) == f"Alpaca does not support {method}"


# ---------------------------------------------------------------------------- tables and times

def test_every_alpaca_order_status_maps_to_fmz():
    documented = {"new", "partially_filled", "filled", "done_for_day", "canceled", "expired", "replaced",
                  "pending_cancel", "pending_replace", "accepted", "pending_new", "accepted_for_bidding",
                  "stopped", "rejected", "suspended", "calculated", "held"}
    assert set(alpaca.STATUS) == documented
    assert set(alpaca.STATUS.values()) <= set(fmz_plugin.OPEN_STATUSES + fmz_plugin.CLOSED_STATUSES)


@pytest.mark.parametrize("text, ms", [
    ("2021-03-16T18:38:01.942282123Z", 1615919881942),
    ("2021-03-16T18:38:01Z", 1615919881000),
    ("2023-11-22T08:07:57.654738097-05:00", 1700658477654),
    ("2022-07-21T05:00:00+02:00", 1658372400000),
    ("", 0), (None, 0), ("yesterday", 0)])
def test_rfc3339_times_with_nanoseconds_and_zones(text, ms):
    assert alpaca._ms(text) == ms


def test_check_passes_for_a_stock(client, capsys):
    url = f"{client.url}/Alpaca"
    assert fmz_plugin.run(["check", url, "--symbol", "AAPL_USD", "--trade", "--yes",
                           "--access-key", KEY_ID, "--secret-key", SECRET]) == 0, capsys.readouterr().out
    (order,) = client.fake.engine.orders.values()
    assert order["status"] == "canceled" and order["pair"] == ("AAPL", "USD")


def test_tickers_unasked_are_every_crypto_pair_and_the_stocks_held(client):
    assert {t["symbol"] for t in client.data("tickers")} == {"BTC_USDT", "ETH_USDT", "BTC_USD", "ETH_USD", "AAPL_USD"}
    assert {t["symbol"] for t in client.data("tickers", symbol="USDT")} == {"BTC_USDT", "ETH_USDT"}
    assert [t["symbol"] for t in client.data("tickers", symbol="ZVZZT_USD")] == ["ZVZZT_USD"]


def test_market_data_is_read_under_its_kind_or_keyed_at_the_top():
    spec = {"alpaca_symbol": "AAPL", "symbol": "AAPL_USD", "asset_class": "us_equity"}
    snapshot = {"latestQuote": {"bp": 1}}
    assert alpaca._data({"snapshots": {"AAPL": snapshot}}, "snapshots", spec) is snapshot
    assert alpaca._data({"AAPL": snapshot}, "snapshots", spec) is snapshot
    with pytest.raises(alpaca.PluginError, match="Alpaca has no snapshots for AAPL_USD right now .*IEX"):
        alpaca._data({"snapshots": {}}, "snapshots", spec)
