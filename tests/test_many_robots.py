"""Many robots on one plugin, throttle on (issue #13): a burst of orders larger than the limit is
all placed, in turn, and the fake exchange, which records when each request arrived, never sees
more than the limit in any window. Limits are made small so the tests stay short; no assertion
depends on how fast the machine is."""
import threading

import pytest

import fmz_plugin
from exchanges import EXCHANGES, _kit, _throttle
from tests.conftest import PluginClient
from tests.test_contract_swap import units

pytestmark = pytest.mark.repo_only        # sets the plugin's throttle and limits in this process


def module_of(exchange):
    return EXCHANGES[exchange.exchange.lower()]


def throttled(exchange, monkeypatch, endpoint, limit, max_wait=30.0):
    """Throttle on in the plugin serving `exchange`, with `limit` for `endpoint`; the fake
    forgets the arrivals so far (they went unthrottled)."""
    monkeypatch.setitem(module_of(exchange).RATE_LIMITS, endpoint, limit)
    exchange.server.settings.throttle = _throttle.Throttle()
    exchange.server.settings.max_wait = max_wait
    exchange.fake.arrivals.clear()


def robots(exchange, count, work):
    """`count` robots, each with a connection of its own, running `work(client, n)`; their
    answers, in no particular order."""
    answers, lock = [], threading.Lock()

    def robot(n):
        client = PluginClient(exchange.url, exchange.exchange, exchange.access_key, exchange.secret_key)
        for answer in work(client, n):
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=robot, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_burst_larger_than_the_limit_is_all_placed_and_never_over_the_limit(exchange, monkeypatch):
    """Four robots place 3 orders each under a limit of 4 orders per 0.3 s: all 12 are placed
    (none refused), and no 0.3 s at the exchange saw more than 4 of them arrive."""
    exchange.data("markets")                          # instruments cached: an order is one request
    order = f"POST {exchange.fake.ORDER_PATH}"
    throttled(exchange, monkeypatch, order, (4, 0.3))

    def place(client, n):
        return [client.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000 - 10 * (3 * n + i),
                            amount=exchange.fake.AMOUNT) for i in range(3)]

    answers = robots(exchange, 4, place)
    assert [a for a in answers if "error" in a] == []
    assert len({a["data"]["id"] for a in answers}) == 12
    assert len(exchange.fake.engine.orders) == 12
    assert exchange.fake.most_in_window(0.3, "POST", exchange.fake.ORDER_PATH) <= 4


def test_network_jitter_never_puts_more_than_the_limit_into_a_window(exchange, monkeypatch):
    """Each order reaches the exchange up to 0.15 s late, at random: some early, some late. A
    call counts until a window after its answer, so the exchange still never sees more than 3
    arrive in any 0.3 s."""
    exchange.data("markets")
    order = f"POST {exchange.fake.ORDER_PATH}"
    throttled(exchange, monkeypatch, order, (3, 0.3))
    exchange.fake.jitter = 0.15

    def place(client, n):
        return [client.call("trade", symbol=exchange.fake.SYMBOL, type="buy", price=40000 - 10 * (3 * n + i),
                            amount=exchange.fake.AMOUNT) for i in range(3)]

    answers = robots(exchange, 3, place)
    assert [a for a in answers if "error" in a] == [] and len(exchange.fake.engine.orders) == 9
    assert exchange.fake.most_in_window(0.3, "POST", exchange.fake.ORDER_PATH) <= 3


def test_a_call_that_cannot_go_within_max_wait_is_refused_naming_the_limit(exchange, monkeypatch):
    exchange.data("accounts")
    endpoint = f"{exchange.fake.requests[-1][0]} {exchange.fake.requests[-1][1].split('?')[0]}"
    throttled(exchange, monkeypatch, endpoint, (1, 60.0), max_wait=0.5)
    assert exchange.data("accounts")
    error = exchange.error("accounts")
    assert error.startswith(f"{exchange.fake.NAME} {endpoint}: not sent")
    assert "1 requests per 60 s" in error and "0.5 s" in error


def test_the_listen_backlog_holds_a_burst_of_robots():
    assert fmz_plugin.Server.request_queue_size >= 128


# ---------------------------------------------------------------------------- counted as the exchange counts

class FakeClock:
    """A monotonic clock that waiting moves forward: the throttle's turns without real waits."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.now += seconds


def on_fake_clock(exchange):
    clock = FakeClock()
    exchange.server.settings.throttle = _throttle.Throttle(clock=clock, wait=clock.wait)
    return clock


@pytest.fixture
def okx_client(okx_fake):
    from tests.conftest import client_of
    with client_of(okx_fake) as client:
        client.url = "http://127.0.0.1:%d" % client.server.server_address[1]
        client.data("markets")
        yield client


def instrument_is(inst_id):
    return lambda arrival: f'"instId":"{inst_id}"' in arrival.body


def test_okx_orders_on_two_instruments_each_have_their_own_limit(okx_client, monkeypatch):
    """OKX counts orders per account and instrument: two robots, one per pair, each at 3 orders
    per 0.4 s; both pairs are placed in full and neither pair ever goes over its own limit."""
    exchange = okx_client
    throttled(exchange, monkeypatch, "POST /api/v5/trade/order", _throttle.Limit(3, 0.4, per="key+instId"))
    pairs = {0: ("BTC_USDT", 40000), 1: ("ETH_USDT", 1000)}

    def place(client, n):
        symbol, price = pairs[n]
        return [client.call("trade", symbol=symbol, type="buy", price=price - i, amount="0.01") for i in range(6)]

    answers = robots(exchange, 2, place)
    assert [a for a in answers if "error" in a] == [] and len(exchange.fake.engine.orders) == 12
    for inst_id in ("BTC-USDT", "ETH-USDT"):
        assert exchange.fake.most_in_window(0.4, "POST", "/api/v5/trade/order", instrument_is(inst_id)) <= 3


def test_okx_two_instruments_take_half_the_time_of_one(okx_client, monkeypatch):
    """On a fake clock: 6 orders on each of two pairs under 3 per 2 s per instrument go in one
    wait of a window; counted per key, the same 12 would take three. (Orders are not paced.)"""
    exchange = okx_client
    throttled(exchange, monkeypatch, "POST /api/v5/trade/order", _throttle.Limit(3, 2.0, per="key+instId"))
    clock = on_fake_clock(exchange)
    start = clock.now
    for i in range(6):
        for symbol, price in (("BTC_USDT", 40000), ("ETH_USDT", 1000)):
            exchange.data("trade", symbol=symbol, type="buy", price=price - i, amount="0.01")
    assert clock.now - start == pytest.approx(2.0 + _throttle.THROTTLE_MARGIN)
    monkeypatch.setitem(module_of(exchange).RATE_LIMITS, "POST /api/v5/trade/order", _throttle.Limit(3, 2.0, per="key"))
    start = clock.now
    for i in range(6):
        for symbol, price in (("BTC_USDT", 40000), ("ETH_USDT", 1000)):
            exchange.data("trade", symbol=symbol, type="buy", price=price - 10 - i, amount="0.01")
    assert clock.now - start == pytest.approx(3 * (2.0 + _throttle.THROTTLE_MARGIN))


def test_okx_order_limits_are_the_documented_ones():
    from exchanges import okx
    place = _throttle.limits_of(okx.RATE_LIMITS["POST /api/v5/trade/order"])
    assert [(l.requests, l.seconds, l.per) for l in place] == [(60, 2.0, "key+instId"), (1000, 2.0, "key")]
    for endpoint in ("GET /api/v5/trade/order", "POST /api/v5/trade/cancel-order"):
        assert [(l.requests, l.per) for l in _throttle.limits_of(okx.RATE_LIMITS[endpoint])] == [(60, "key+instId")]


@pytest.fixture
def binance_client():
    from tests.conftest import client_of
    from tests.fakes.binance import FakeBinance
    with FakeBinance() as fake, client_of(fake) as client:
        client.url = "http://127.0.0.1:%d" % client.server.server_address[1]
        client.data("markets")
        yield client


# ---------------------------------------------------------------------------- orders before reads (#23, 7)

# What robots poll, per exchange and market: a read that spends a budget the order, or what an
# order needs first (the markets, an account setting such as the position mode), also counts in
# (each module's RATE_LIMITS), with its symbol; its weight divides what reads may spend of that
# budget, so they leave nothing of their share unspent.
HEAVY_READS = {
    ("OKX", "spot"): ("depth", "BTC_USDT"),         # books: 40 per 2 s of its own (see SHARES_A_BUDGET)
    ("OKX", "swap"): ("depth", "BTC_USDT.swap"),
    ("Binance", "spot"): ("trades", "BTC_USDT"),    # 25 of the IP's 6000 weight a minute, which exchangeInfo
                                                    # and orders spend too (a depth of 1000 weighs 50, and its
                                                    # 1000 levels make the scenario slow)
    ("Binance", "swap"): ("fundings", "USDT.swap"),  # premiumIndex of every swap: 10 of the IP's 2400
                                                    # futures weight a minute, as positionSide/dual (30)
    ("Bybit", "spot"): ("depth", "BTC_USDT"),       # orderbook: 600 per 5 s per IP, as instruments-info
    ("Bybit", "swap"): ("depth", "BTC_USDT.swap"),  # ... and position/list (the position mode)
    ("BingX", "spot"): ("depth", "BTC_USDT"),       # 500 market-data calls per 10 s per IP, as common/symbols
    ("BingX", "swap"): ("depth", "BTC_USDT.swap"),  # ... and quote/contracts
    ("Bitvavo", "spot"): ("tickers", "BTC_USDT"),   # every market: 25 of 1000 weight a minute per IP, as /v2/markets
    ("Alpaca", "spot"): ("depth", "BTC_USDT"),      # market data: 200 a minute per key (see SHARES_A_BUDGET)
    ("BloFin", "swap"): ("depth", "BTC_USDT.swap"),  # 500 per minute per IP, as instruments, position-mode, orders
    ("Coinbase", "spot"): ("depth", "BTC_USDT"),    # public: 10 a second per IP, as market/products
}
# Where reads and orders count in no common budget, orders (and what they need) go ahead of reads
# trivially: OKX counts books, instruments, its account config and orders each on its own; Alpaca
# counts market data and trading (assets, orders) in two budgets. The scenario runs there all the same.
SHARES_A_BUDGET = {name: name not in ("OKX", "Alpaca") for name, market in HEAVY_READS}


class RecordingThrottle(_throttle.Throttle):
    """The throttle, noting the buckets urgent calls (orders and what they need) and reads were charged."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.charged = {True: set(), False: set()}

    def turn(self, charges, label, max_wait=None, urgent=False):
        with self.changed:
            self.charged[urgent].update(key for key, limit, units in charges)
        return super().turn(charges, label, max_wait, urgent)


@pytest.mark.parametrize("market", ["spot", "swap"])
def test_orders_go_before_robots_polling_a_heavy_read_on_a_cold_markets_cache(exchange, market):
    """#23: on Binance, 8 robots polling a depth of 1000 (50 weight each) while the markets cache
    was cold got every order of another robot refused. Under each exchange's own RATE_LIMITS, 8
    robots poll a heavy read until the throttle refuses them; then, the caches cold, another
    robot's orders, and what they need first (the markets, the position mode), go ahead of the
    reads and are all placed. A read is refused as soon as it would wait (--max-wait 5 ms, less
    than one step of any of these budgets' pace), so the reads spend all a window lets them at
    once; the markets were loaded before, so that share is spent on reads alone (an exchangeInfo
    among Binance's reads would leave room a cold load fits in)."""
    if (exchange.exchange, market) not in HEAVY_READS:
        pytest.skip(f"{exchange.exchange} serves no {market} markets")
    method, read_symbol = HEAVY_READS[exchange.exchange, market]
    symbol, amount = ("BTC_USDT.swap", units(exchange, "BTC_USDT.swap", 1)) if market == "swap" else \
        ("BTC_USDT", exchange.fake.AMOUNT)
    settings, fake = exchange.server.settings, exchange.fake
    exchange.data("markets")
    fake.forget()                               # the weight that load spent, where the fake counts it
    settings.throttle, settings.max_wait, settings.shared_reads = RecordingThrottle(), 0.005, None
    stop, refused, failures = threading.Event(), threading.Event(), []

    def robot():
        reader = PluginClient(exchange.url, exchange.exchange, exchange.access_key, exchange.secret_key)
        while not stop.is_set():
            error = reader.call(method, symbol=read_symbol).get("error")
            if error and "not sent" in error:
                refused.set()
            elif error:
                failures.append(error)

    readers = [threading.Thread(target=robot) for _ in range(8)]
    for thread in readers:
        thread.start()
    try:
        assert refused.wait(60), "the reads were never held back"
        _kit.MARKETS.clear()                    # cold: the first order loads the markets again
        _kit.ACCOUNT_SETTINGS.clear()           # ... and the position mode, where it reads one
        answers = [exchange.call("trade", symbol=symbol, type="buy", price=40000 - i, amount=amount)
                   for i in range(3)]
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert failures == [] and [a for a in answers if "error" in a] == [], (failures, answers)
    assert len(fake.engine.orders) == 3
    charged = settings.throttle.charged
    assert bool(charged[True] & charged[False]) == SHARES_A_BUDGET[exchange.exchange], charged


def test_binance_counts_request_weight_per_ip_across_endpoints(binance_client, monkeypatch):
    """Depth of 500 levels weighs 25, of 5 levels 5, and a ticker 2: under a budget of 60 weight
    per 0.5 s, four robots asking all three never made the fake count more than 60 (each robot's
    reads its own: identical reads are not shared here)."""
    from exchanges import binance
    exchange = binance_client
    exchange.server.settings.shared_reads = None
    weight = _throttle.Limit(60, 0.5, per="ip", pool="spot request weight")
    for endpoint, cost in [("GET /api/v3/depth", binance._spot_depth_weight), ("GET /api/v3/ticker/24hr", 2)]:
        monkeypatch.setitem(binance.RATE_LIMITS, endpoint, weight.costing(cost))
    throttled(exchange, monkeypatch, "GET /api/v3/time", weight.costing(1))

    def read(client, n):
        return [client.call("depth", symbol="BTC_USDT", limit=limit) for limit in (500, 5)] + \
               [client.call("ticker", symbol="BTC_USDT")]

    answers = robots(exchange, 4, read)
    assert [a for a in answers if "error" in a] == []
    spot = lambda arrival: arrival.path.startswith("/api/v3/")
    weigh = lambda arrival: exchange.fake.weight_of(arrival)
    assert exchange.fake.most_in_window(0.5, "GET", where=spot, weight=weigh) <= 60
    assert exchange.fake.most_in_window(10, "GET", where=spot, weight=weigh) == 4 * (25 + 5 + 2)


def test_binance_weights_are_the_documented_ones():
    from exchanges import binance
    weight = lambda endpoint, **params: sum(l.units(params) for l in _throttle.limits_of(binance.RATE_LIMITS[endpoint])
                                            if l.pool == "spot request weight")
    assert weight("GET /api/v3/depth", limit=100) == 5 and weight("GET /api/v3/depth", limit=500) == 25
    assert weight("GET /api/v3/depth", limit=5000) == 250
    assert weight("GET /api/v3/ticker/24hr", symbol="BTCUSDT") == 2 and weight("GET /api/v3/ticker/24hr") == 80
    assert weight("GET /api/v3/openOrders") == 80 and weight("POST /api/v3/order") == 1
    assert [l.requests for l in _throttle.limits_of(binance.RATE_LIMITS["GET /api/v3/exchangeInfo"])] == [6000]
    assert [l.requests for l in _throttle.limits_of(binance.RATE_LIMITS["GET /fapi/v1/exchangeInfo"])] == [2400]
    assert [(l.requests, l.seconds) for l in _throttle.limits_of(binance.RATE_LIMITS["POST /fapi/v1/order"])] \
        == [(300, 10.0), (1200, 60.0)]


def test_binance_used_weight_header_is_followed(binance_client):
    """Another program on this IP has spent 5990 of 6000: after one ticker (the fake's
    X-MBX-USED-WEIGHT-1M says 5992) a depth of 500 (25) cannot go within --max-wait."""
    exchange = binance_client
    exchange.server.settings.throttle = _throttle.Throttle()
    exchange.server.settings.max_wait = 1.0
    exchange.fake.weight_used_elsewhere = 5990 - exchange.fake.weight_used
    assert exchange.data("ticker", symbol="BTC_USDT")
    before = len(exchange.fake.requests)
    error = exchange.error("depth", symbol="BTC_USDT", limit=500)
    assert "Binance GET /api/v3/depth: not sent" in error and "6000 spot request weight per 60 s per IP" in error
    assert len(exchange.fake.requests) == before


def test_binance_order_count_header_is_followed(binance_client):
    """Another program on this account placed 99 orders in these 10 s: one more is placed, the
    next one waits for the window (here: refused, --max-wait 1 s)."""
    exchange = binance_client
    exchange.server.settings.throttle = _throttle.Throttle()
    exchange.server.settings.max_wait = 1.0
    exchange.fake.orders_elsewhere = 99
    assert exchange.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    error = exchange.error("trade", symbol="BTC_USDT", type="buy", price=40001, amount="0.001")
    assert "not sent" in error and "100 spot orders per 10 s per API key" in error
    assert len(exchange.fake.engine.orders) == 1


@pytest.fixture
def bybit_client():
    from tests.conftest import client_of
    from tests.fakes.bybit import FakeBybit
    with FakeBybit() as fake, client_of(fake) as client:
        client.url = "http://127.0.0.1:%d" % client.server.server_address[1]
        client.data("markets")
        yield client


def test_bybit_limit_status_header_is_followed(bybit_client):
    """Bybit says nothing is left of this second's order limit (X-Bapi-Limit-Status 0, another
    program on this UID): the next order waits for the second to pass instead of being sent."""
    exchange = bybit_client
    clock = on_fake_clock(exchange)
    exchange.fake.uid_used_elsewhere = 10
    assert exchange.data("trade", symbol="BTC_USDT", type="buy", price=40000, amount="0.001")
    start = clock.now
    exchange.fake.uid_used_elsewhere = 0
    assert exchange.data("trade", symbol="BTC_USDT", type="buy", price=40001, amount="0.001")
    assert clock.now - start == pytest.approx(1.0 + _throttle.THROTTLE_MARGIN)


# ---------------------------------------------------------------------------- identical public reads shared

def gets_to(exchange):
    return [r for r in exchange.fake.requests if r[0] == "GET"]


def at_once(exchange, asks, wrong_secret=()):
    """One robot per ask ((method, params)), all sending at the same moment (a barrier), while
    the fake answers 0.3 s late so that they overlap; throttle on with the real limits. The
    robots numbered in `wrong_secret` send a secret the exchange refuses."""
    exchange.server.settings.throttle = _throttle.Throttle()
    barrier = threading.Barrier(len(asks))

    def ask(client, n):
        method, params = asks[n]
        if n in wrong_secret:
            client = PluginClient(exchange.url, exchange.exchange, exchange.access_key, exchange.secret_key + "x")
        barrier.wait(10)
        return [(n, client.call(method, **params))]

    exchange.fake.latency = 0.3
    try:
        return dict(robots(exchange, len(asks), ask))
    finally:
        exchange.fake.latency = 0.0


def test_32_robots_asking_one_ticker_at_once_cost_a_few_exchange_calls(exchange):
    """A ticker is shared by the robots asking it at once: a public one, and a signed one a
    module marks per_key (Alpaca's market data carries the keys) among robots on one key."""
    exchange.data("markets")
    before, signatures = len(gets_to(exchange)), len(exchange.fake.signatures)
    symbol = exchange.fake.SYMBOL
    one = exchange.data("ticker", symbol=symbol)
    per_ticker = len(gets_to(exchange)) - before                  # calls one ticker costs alone
    before = len(gets_to(exchange))
    answers = at_once(exchange, [("ticker", {"symbol": symbol})] * 32)
    assert len(answers) == 32 and all("data" in a and a["data"]["symbol"] == symbol for a in answers.values())
    assert {a["data"]["last"] for a in answers.values()} == {one["last"]}
    assert len(gets_to(exchange)) - before <= 3 * per_ticker


def test_a_signed_market_read_is_never_shared_across_keys(exchange):
    """Robots on the right key and robots on the same key id with a wrong secret ask one ticker
    at once: where the ticker is a signed call (Alpaca), each robot gets what its own keys get
    (data, or the exchange's refusal), never the answer of another key's call."""
    exchange.data("markets")
    signatures = len(exchange.fake.signatures)
    exchange.data("ticker", symbol=exchange.fake.SYMBOL)
    if len(exchange.fake.signatures) == signatures:
        pytest.skip(f"{exchange.exchange}'s ticker is public: no keys to share it by")
    asks = [("ticker", {"symbol": exchange.fake.SYMBOL})] * 16
    answers = at_once(exchange, asks, wrong_secret=range(1, 16, 2))
    for n, answer in answers.items():
        assert ("error" in answer) == (n % 2 == 1), (n, answer)


def test_mixed_symbols_and_depths_never_share_an_answer(exchange):
    exchange.data("markets")
    btc, eth = ("BTC_USDT", "ETH_USDT") if exchange.fake.SPOT else ("BTC_USDT.swap", "ETH_USDT.swap")
    asks = [("ticker", {"symbol": btc}), ("ticker", {"symbol": eth}),
            ("depth", {"symbol": btc, "limit": 5}), ("depth", {"symbol": btc, "limit": 10}),
            ("depth", {"symbol": eth, "limit": 5})] * 4
    answers = at_once(exchange, asks)
    for n, (method, params) in enumerate(asks):
        data = answers[n]["data"]
        if method == "ticker":
            assert data["symbol"] == params["symbol"]
            assert 1000 < data["last"] < 10000 if params["symbol"] == eth else data["last"] > 10000
        else:
            assert len(data["asks"]) == len(data["bids"]) == params["limit"]
            best = data["asks"][0][0]
            assert 1000 < best < 10000 if params["symbol"] == eth else best > 10000


def test_a_shared_call_error_reaches_every_robot_that_joined_it(exchange):
    """Twelve robots ask a ticker for a pair the exchange does not have: every one gets the
    exchange's refusal, the same text, from a few calls."""
    exchange.data("markets")
    before, signatures = len(exchange.fake.requests), len(exchange.fake.signatures)
    answers = at_once(exchange, [("ticker", {"symbol": "XYZ_USDT"})] * 12)
    errors = {a.get("error") for a in answers.values()}
    assert len(errors) == 1 and None not in errors
    if len(exchange.fake.signatures) == signatures:               # public: shared
        assert len(exchange.fake.requests) - before <= 3 * 2      # a few calls, each maybe retried once


def test_signed_reads_are_never_shared(exchange):
    exchange.data("accounts")
    before = len(exchange.fake.requests)
    exchange.data("accounts")
    per_accounts = len(exchange.fake.requests) - before
    before = len(exchange.fake.requests)
    answers = at_once(exchange, [("accounts", {})] * 6)
    assert all("data" in a for a in answers.values())
    assert len(exchange.fake.requests) - before == 6 * per_accounts
