"""What is specific to Coinbase Advanced Trade: the JWT each private request carries (its header
and claims, both key kinds, a PEM pasted with literal \\n), keys refused without being shown,
cursor paging, refusals answered with HTTP 200 (success: false, failure_reason), a client order id
that never makes a second order, and the mapping of replies as CCXT recorded them
(ts/src/test/static/response/coinbase.json): empty strings, microsecond times, newest-first lists.

The fake checks every JWT with the `cryptography` package, a test-only dependency."""
import base64
import json
import re
from decimal import Decimal

import pytest

pytest.importorskip("cryptography")

from exchanges import _kit, coinbase  # noqa: E402
from exchanges._kit import PluginError, Request, Symbol  # noqa: E402
from tests.conftest import PluginClient, client_of, exchange_fixtures  # noqa: E402
from tests.fakes.coinbase import (EC_PEM, EC_PKCS8_PEM, ED25519_NAME, ED25519_SECRET, KEY_NAME,  # noqa: E402
                                  FakeCoinbase)

API = "/api/v3/brokerage"


fake, client = exchange_fixtures(FakeCoinbase)


def decoded(token):
    header, claims, _ = token.split(".")
    pad = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    return json.loads(pad(header)), json.loads(pad(claims))


def bearer(fake, path):
    (request,) = [r for r in fake.recent if r.path == path][-1:]
    scheme, token = request.headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    return token


# ---------------------------------------------------------------------------- the JWT

def test_the_jwt_is_what_coinbase_documents():
    request = Request("GET", f"{API}/orders/historical/batch", query="product_ids=BTC-USD&limit=5")
    coinbase.sign(request, coinbase.parse_keys(KEY_NAME, EC_PEM), 1_700_000_000_987)
    header, claims = decoded(request.headers["Authorization"].split(" ")[1])
    assert header["alg"] == "ES256" and header["kid"] == KEY_NAME and header["typ"] == "JWT"
    assert re.fullmatch(r"[0-9a-f]{32}", header["nonce"])
    assert claims == {"sub": KEY_NAME, "iss": "cdp", "nbf": 1_700_000_000, "exp": 1_700_000_120,
                      "uri": f"GET api.coinbase.com{API}/orders/historical/batch"}     # no query string


def test_every_request_gets_a_fresh_token(client, fake):
    client.data("accounts")
    client.data("accounts")
    nonces = [header["nonce"] for header, _ in fake.jwts]
    assert len(nonces) == 2 and len(set(nonces)) == 2


def test_the_uri_names_coinbase_even_when_the_host_is_moved(client, fake):
    """--base-url moves the host (here to the fake); the JWT still names api.coinbase.com, which
    is what Coinbase checks behind a proxy (the fake checks it too)."""
    client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")
    _, claims = decoded(bearer(fake, f"{API}/orders"))
    assert claims["uri"] == f"POST api.coinbase.com{API}/orders"


@pytest.mark.parametrize("secret", [EC_PEM, EC_PKCS8_PEM, "  " + EC_PEM + "\n\n", EC_PEM.replace("\n", "\r\n")],
                         ids=["sec1", "pkcs8", "padded", "crlf"])
def test_an_ec_key_in_any_pem_form_signs_through_fmzs_one_line_field(fake, secret):
    """FMZ's field is one line (the plugin refuses control characters in keys): the PEM's line
    breaks are pasted as the two characters \\n, as CDP's downloaded JSON writes them."""
    with client_of(fake) as plugin:
        plugin.secret_key = secret.replace("\r", "").replace("\n", "\\n")
        assert plugin.data("accounts")
    assert fake.jwts[-1][0]["alg"] == "ES256"


def test_a_pem_with_real_newlines_signs_too(fake):
    """What a caller that is not FMZ's docker may send (the core refuses it in a docker request)."""
    api = _kit.Api(coinbase, KEY_NAME, EC_PEM, {"": fake.url})
    assert api.get(f"{API}/accounts", signed=True)["accounts"]


def test_an_ed25519_key_signs_eddsa(fake):
    with client_of(fake) as plugin:
        plugin.access_key, plugin.secret_key = ED25519_NAME, ED25519_SECRET
        assert {row["currency"] for row in plugin.data("accounts")} >= {"BTC", "USDT"}
    header, claims = fake.jwts[-1]
    assert header["alg"] == "EdDSA" and header["kid"] == claims["sub"] == ED25519_NAME


@pytest.mark.parametrize("secret", ["not a key", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----",
                                    base64.b64encode(b"x" * 64).decode()[:-4], EC_PEM[:-40]])
def test_a_bad_key_names_the_formats_and_never_shows_the_key(fake, secret):
    with client_of(fake) as plugin:
        plugin.secret_key = secret.replace("\n", "\\n")
        error = plugin.error("accounts")
    assert error.startswith("Coinbase keys:") and "BEGIN EC PRIVATE KEY" in error and "Ed25519" in error
    assert not any(len(line) > 8 and line in error for line in secret.split("\n") if "BEGIN" not in line)
    assert fake.requests == []


def test_a_key_name_with_spaces_is_refused(fake):
    with client_of(fake) as plugin:
        plugin.access_key = "organizations/x/apiKeys/ y"
        assert "key name" in plugin.error("accounts")
    assert fake.requests == []


def test_a_wrong_key_is_unauthorized_after_one_clock_check(fake):
    """Coinbase answers 401 "Unauthorized" for every JWT it refuses, a skewed clock's as a wrong
    key's: the plugin reads Coinbase's clock and sends once more, then answers the refusal."""
    with client_of(fake) as plugin:
        plugin.access_key = "organizations/x/apiKeys/someone-else"
        error = plugin.error("accounts")
    assert error.startswith("Coinbase 401: Unauthorized") and "clock" in error
    assert [target.split("?")[0] for _, target, _ in fake.requests] == \
        [f"{API}/accounts", f"{API}/time", f"{API}/accounts"]


def test_a_skewed_clock_is_learnt_from_coinbase(client, fake):
    fake.clock_skew_ms = -130_000
    assert client.data("accounts")
    assert client.data("accounts")
    assert [target.split("?")[0] for _, target, _ in fake.requests] == \
        [f"{API}/accounts", f"{API}/time", f"{API}/accounts", f"{API}/accounts"]


# ---------------------------------------------------------------------------- paging, orders

def test_accounts_follow_the_cursor(client, fake):
    fake.accounts_page_max = 2
    fake.engine.balances.update({ccy: [Decimal(1), Decimal(0)] for ccy in ("ADA", "SOL", "XRP")})
    rows = client.data("accounts")
    assert sorted(row["currency"] for row in rows) == ["ADA", "BTC", "ETH", "SOL", "USDT", "XRP"]
    assert len(fake.sent(f"{API}/accounts")) == 3


def test_open_orders_follow_the_cursor(client, fake):
    fake.orders_page_max = 2
    ids = {client.data("trade", symbol="ETH_USDT", type="buy", price=1000 + i, amount="0.01")["id"] for i in range(5)}
    assert {o["id"] for o in client.data("orders", symbol="ETH_USDT")} == ids
    assert len(fake.sent(f"{API}/orders/historical/batch")) == 3


def test_history_is_filled_and_cancelled_never_open(client):
    resting = client.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")["id"]
    canceled = client.data("trade", symbol="ETH_USDT", type="buy", price=1001, amount="0.01")["id"]
    client.data("cancel", id=canceled)
    sold = client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")["id"]
    history = client.data("historyorders", symbol="ETH_USDT")
    assert [(o["id"], o["status"]) for o in history] == [(canceled, "canceled"), (sold, "filled")]
    assert resting not in {o["id"] for o in history}


def test_orders_are_sent_as_coinbase_configurations(client, fake):
    client.data("trade", symbol="BTC_USDT", type="buy", price=40000.04, amount="0.0123456789")
    client.data("trade", symbol="ETH_USDT", type="buy", price=-1, amount="30.123")
    client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.0100009")
    bodies = [json.loads(body) for _, body in fake.sent(f"{API}/orders")]
    assert [b["order_configuration"] for b in bodies] == [
        {"limit_limit_gtc": {"base_size": "0.01234567", "limit_price": "40000", "post_only": False}},
        {"market_market_ioc": {"quote_size": "30.12"}},                  # quote_increment 0.01
        {"market_market_ioc": {"base_size": "0.01"}}]                    # base_increment 0.000001
    assert [b["side"] for b in bodies] == ["BUY", "BUY", "SELL"]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", b["client_order_id"]) for b in bodies)


def test_a_lost_answer_is_found_by_its_client_id_and_never_doubled(client, fake):
    """The order is taken and its answer lost: the plugin finds it among the newest orders."""
    fake.inject("drop_after", path=f"{API}/orders", method="POST")
    answer = client.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.01")
    (order,) = fake.engine.orders.values()
    assert order["id"] in answer["id"] and len(fake.sent(f"{API}/orders")) == 1


def test_a_resend_with_a_used_client_id_answers_the_first_order(fake):
    """What Coinbase documents for client_order_id, and what makes a resend safe."""
    with client_of(fake) as plugin:
        plugin.data("markets")
    body = {"client_order_id": "0b7b4a8e-2f4c-4c7e-9a7e-3f1c2b5d6e7f", "product_id": "ETH-USDT", "side": "SELL",
            "order_configuration": {"market_market_ioc": {"base_size": "0.01"}}}
    api = _kit.Api(coinbase, KEY_NAME, EC_PEM, {"": fake.url})
    first = api.post(f"{API}/orders", body, signed=True)
    second = api.post(f"{API}/orders", body, signed=True)
    assert first["success_response"]["order_id"] == second["success_response"]["order_id"]
    assert len(fake.engine.orders) == 1


def test_cancel_of_a_filled_order_says_it_filled(client):
    sold = client.data("trade", symbol="ETH_USDT", type="sell", price=-1, amount="0.01")["id"]
    error = client.error("cancel", id=sold)
    assert error.startswith("Coinbase UNKNOWN_CANCEL_ORDER:") and "filled" in error


def test_swaps_are_refused_before_any_request(client, fake):
    assert "swap" in client.error("ticker", symbol="BTC_USDT.swap")
    assert fake.requests == []


def test_candles_come_300_a_request_oldest_first(client, fake):
    rows = client.data("records", symbol="BTC_USDT", period=1, limit=500)
    assert len(rows) == 500 and [r[0] for r in rows] == sorted({r[0] for r in rows})
    assert all(b[0] - a[0] == 60_000 for a, b in zip(rows, rows[1:]))
    pages = [dict(p.split("=") for p in target.split("?")[1].split("&"))
             for target, _ in fake.sent(f"{API}/market/products/BTC-USDT/candles")]
    assert len(pages) == 2 and all((int(p["end"]) - int(p["start"])) // 60 <= 300 for p in pages)


# ---------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("status, reply, code", [
    (200, {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
           "error_response": {"error": "INSUFFICIENT_FUND", "message": "Insufficient balance in source account",
                              "error_details": "", "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND"}},
     "INSUFFICIENT_FUND"),
    (200, {"success": False, "error_response": {"error": "UNKNOWN_FAILURE_REASON", "message": "",
                                                "preview_failure_reason": "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE"}},
     "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE"),                     # CCXT's handle_errors example
    (200, {"success": False, "failure_reason": "UNSUPPORTED_ORDER_CONFIGURATION"}, "UNSUPPORTED_ORDER_CONFIGURATION"),
    (200, {"success": False}, "UNKNOWN_FAILURE_REASON"),
    (200, {"results": [{"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": "x"}]},
     "UNKNOWN_CANCEL_ORDER"),
    (404, {"error": "NOT_FOUND", "error_details": "order with this orderID was not found",
           "message": "order with this orderID was not found"}, "NOT_FOUND"),
    (400, {"error": "unknown", "error_details": "order with this orderID was not found",
           "message": "order with this orderID was not found"}, "unknown"),    # as CCXT recorded it
    (429, {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}, "rate_limit_exceeded"),
    (401, "Unauthorized\n", "401"),
    (401, {"error": "UNAUTHENTICATED", "message": "invalid signature"}, "401"),
    (502, "<html>bad gateway</html>", "502"),
])
def test_refusals_name_their_code(status, reply, code):
    with pytest.raises(PluginError) as refused:
        coinbase.check(status, reply)
    assert refused.value.code == code
    assert str(refused.value).startswith((f"Coinbase {code}:", f"Coinbase answered HTTP {code}"))
    assert refused.value.ambiguous == (status >= 500)


@pytest.mark.parametrize("reply", [
    {"success": True, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "o1",
     "success_response": {"order_id": "o1", "product_id": "BTC-USD", "side": "BUY", "client_order_id": "c"}},
    {"results": [{"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": "o1"}]},
    {"products": [], "num_products": 0},
])
def test_successes_are_not_refusals(reply):
    coinbase.check(200, reply)


# ---------------------------------------------------------------------------- messy replies

RECORDED_ORDER = {          # CCXT's fetchClosedOrders example: a market sell of 10 ADA
    "order_id": "01b6e467-b659-432f-9490-c7cefe949564", "product_id": "ADA-USDT",
    "user_id": "dbcb91e7-2bc9-5152-bb6f-72d6677e6727",
    "order_configuration": {"market_market_ioc": {"base_size": "10"}}, "side": "SELL",
    "client_order_id": "a0f970a2-05fa-4e1f-9517-f6702c33cfd1", "status": "FILLED",
    "time_in_force": "IMMEDIATE_OR_CANCEL", "created_time": "2023-11-26T10:19:47.423220Z",
    "completion_percentage": "100.00", "filled_size": "10", "average_filled_price": "0.392", "fee": "",
    "number_of_fills": "1", "filled_value": "3.92", "pending_cancel": False, "size_in_quote": False,
    "total_fees": "0.03136", "size_inclusive_of_fees": False, "total_value_after_fees": "3.88864",
    "trigger_status": "INVALID_ORDER_TYPE", "order_type": "MARKET", "reject_reason": "REJECT_REASON_UNSPECIFIED",
    "settled": True, "product_type": "SPOT", "reject_message": "", "cancel_message": "",
    "order_placement_source": "RETAIL_ADVANCED", "outstanding_hold_amount": "0", "is_liquidation": False,
    "last_fill_time": "2023-11-26T10:19:47.504Z", "edit_history": [], "leverage": "",
    "margin_type": "UNKNOWN_MARGIN_TYPE", "cursor": "748478308"}


def test_a_recorded_order_maps_to_fmz():
    assert coinbase._order(RECORDED_ORDER) == {
        "id": "01b6e467-b659-432f-9490-c7cefe949564", "symbol": "ADA_USDT", "amount": Decimal("10"),
        "price": 0, "deal_amount": Decimal("10"), "avg_price": Decimal("0.392"), "type": "sell",
        "offset": "", "contract_type": "", "time": 1700993987423, "status": "filled"}


@pytest.mark.parametrize("status, filled, expected", [
    ("OPEN", "0", "pending"), ("OPEN", "0.5", "partial-filled"), ("PENDING", "", "pending"),
    ("CANCELLED", "0.5", "canceled"), ("EXPIRED", "0", "canceled"), ("FAILED", "", "canceled"),
    ("FILLED", "1", "filled"), ("QUEUED", "0", "pending")])
def test_statuses(status, filled, expected):
    order = dict(RECORDED_ORDER, status=status, filled_size=filled, average_filled_price="")
    assert coinbase._order(order)["status"] == expected


def test_an_order_with_absent_fields_still_maps():
    mapped = coinbase._order({"order_id": "x", "product_id": "BTC-USD", "order_configuration": None,
                              "status": "OPEN", "created_time": ""})
    assert (mapped["amount"], mapped["price"], mapped["time"], mapped["status"]) == (0, 0, 0, "pending")


@pytest.mark.parametrize("text, ms", [
    ("2023-11-26T10:19:47.423220Z", 1700993987423), ("2024-04-24T09:56:38.063595123Z", 1713952598063),
    ("2023-11-26T10:19:47Z", 1700993987000), ("2023-11-26T12:19:47.5+02:00", 1700993987500),
    ("", 0), (None, 0), ("yesterday", 0)])
def test_times(text, ms):
    assert coinbase._ms(text) == ms


class Replies:
    """An api stand-in: answers each GET with the next canned reply."""
    base_url = "https://api.coinbase.com"

    def __init__(self, *replies):
        self.replies = list(replies)
        coinbase.DAY_STATS.clear()

    def get(self, path, params=None, *, signed):
        return self.replies.pop(0)

    def now(self):
        return 1_713_952_600_000


def test_the_recorded_ticker_reply_with_empty_bid_and_ask_fields():
    """CCXT's fetchTicker example: the trade rows carry "bid": "" and "ask": ""."""
    quote = {"trades": [{"trade_id": "635541194", "product_id": "BTC-USDC", "price": "66363.03",
                         "size": "0.03720194", "time": "2024-04-24T09:56:38.063595Z", "side": "BUY", "bid": "",
                         "ask": ""}], "best_bid": "66367.58", "best_ask": "66367.59"}
    product = {"product_id": "BTC-USDC", "price": "66363.03", "volume_24h": "10967.87426597"}
    candles = {"candles": [{"start": "1713949200", "low": "66000", "high": "66500", "open": "66100",
                            "close": "66363", "volume": "12"},
                           {"start": "1713945600", "low": "65900", "high": "66200", "open": "66050",
                            "close": "66100", "volume": "10"}]}
    data, _ = coinbase.ticker(Replies(quote, product, candles), Symbol("BTC", "USDC"))
    assert (data["buy"], data["sell"], data["last"]) == (66367.58, 66367.59, 66363.03)      # floats, as answered
    assert (data["open"], data["high"], data["low"]) == (66050, 66500, 65900)
    assert data["vol"] == 10967.87426597 and data["time"] == 1713952598063


def test_an_empty_ticker_reads_zero_not_an_error():
    data, _ = coinbase.ticker(Replies({"trades": [], "best_bid": "", "best_ask": ""}, {"price": "", "volume_24h": ""},
                                      {"candles": []}), Symbol("BTC", "USD"))
    assert (data["buy"], data["last"], data["high"], data["vol"]) == (0, 0, 0, 0)
    assert data["time"] == 1_713_952_600_000


def test_markets_keep_online_spot_products_only(client):
    markets = client.data("markets")
    assert set(markets) == {"BTC_USDT", "ETH_USDT"}                       # OLD-USDT is disabled
    btc = markets["BTC_USDT"]
    assert (btc["tick_size"], btc["amount_size"], btc["min_qty"], btc["min_notional"]) == \
        (0.1, 0.00000001, 0.00001, 0.1)


def test_a_polled_ticker_is_one_call_its_24h_figures_kept_a_while(client, fake):
    for _ in range(3):
        assert client.data("ticker", symbol="ETH_USDT")["vol"] == 1234.5
    paths = [target.split("?")[0] for _, target, _ in fake.requests if "ETH-USDT" in target]
    assert sorted(paths) == sorted([f"{API}/market/products/ETH-USDT", f"{API}/market/products/ETH-USDT/candles"]
                                   + [f"{API}/market/products/ETH-USDT/ticker"] * 3)


def test_market_data_needs_no_keys(fake):
    with client_of(fake) as plugin:
        keyless = PluginClient(plugin.url, "Coinbase", "", "")
        assert keyless.data("ticker", symbol="BTC_USDT")["last"] == 50000
        assert keyless.error("accounts").startswith("Coinbase keys:")
