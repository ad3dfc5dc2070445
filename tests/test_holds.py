"""A server that holds under abuse (issue #17): many file descriptors, crowds on a cold cache,
odd symbols and numbers. Run against every exchange's fake (FAKES) where the exchange matters."""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from exchanges import EXCHANGES, _kit
from tests.conftest import FAKES, PluginClient, client_of

HIGH_FD = 1100               # above select()'s limit of 1023
LOAD_WINDOW = 0.2            # seconds a load takes here, so a crowd arrives while it runs


@pytest.fixture(params=list(FAKES))
def fake(request):
    with FAKES[request.param]() as fake:
        yield fake


def robots(client, count):
    """`count` clients of the plugin `client` talks to, each on a keep-alive connection of its
    own, opened and served one after the other (a burst of connects is the listen backlog's
    business, not this test's)."""
    crowd = [PluginClient(client.url, client.exchange, client.access_key, client.secret_key) for _ in range(count)]
    for robot in crowd:
        robot.conn.request("GET", "/status")
        robot.conn.getresponse().read()
    return crowd


def all_at_once(function, items):
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(function, items))


# ---------------------------------------------------------------------------- file descriptors

@pytest.fixture
def fds_above_select_limit():
    """Hold open files until the next descriptor the process opens is numbered above 1023."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < HIGH_FD + 100:
        if hard != resource.RLIM_INFINITY and hard < HIGH_FD + 100:
            pytest.skip(f"the open-file limit ({hard}) is too low to pass descriptor {HIGH_FD}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (HIGH_FD + 100, hard))
    held = []
    while not held or held[-1] < HIGH_FD:
        held.append(os.open(os.devnull, os.O_RDONLY))
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(os.name != "posix", reason="descriptor numbers above 1023 are a POSIX select() limit")
def test_keep_alive_to_the_exchange_survives_descriptors_above_1023(fake, fds_above_select_limit):
    with client_of(fake) as client:
        for _ in range(3):
            assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
        assert fake.connections == 1          # the pooled connection was checked and reused
        fake.close_idle()                     # the exchange closes it: noticed before reuse
        assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
        assert fake.connections == 2


# ---------------------------------------------------------------------------- cache stampedes

COUNTING = threading.Lock()


def counting(load, counts, name):
    """`load`, counting its calls under `name` and taking LOAD_WINDOW seconds."""
    def counted(*args):
        with COUNTING:
            counts[name] = counts.get(name, 0) + 1
        time.sleep(LOAD_WINDOW)
        return load(*args)
    return counted


def test_a_crowd_on_a_cold_markets_cache_loads_it_once(fake, monkeypatch):
    module, counts = EXCHANGES[fake.NAME.lower()], {}
    monkeypatch.setattr(module, "load_markets", counting(module.load_markets, counts, "markets"))
    with client_of(fake) as client:
        answers = all_at_once(lambda robot: robot.call("trade", symbol="BTC_USDT", type="buy", price=40000,
                                                       amount="0.001"), robots(client, 40))
    assert [answer for answer in answers if "data" not in answer] == []
    assert counts == {"markets": 1}
    assert len(fake.engine.orders) == 40


def test_a_failed_load_is_shared_not_repeated_by_each_waiter():
    cache, calls, started = _kit.LoadedOnce(), [], threading.Event()

    def load():
        calls.append(1)
        started.set()
        time.sleep(LOAD_WINDOW)
        raise _kit.PluginError("OKX 50001: service unavailable", code="50001")

    def get(_):
        try:
            return cache.get("key", load)
        except _kit.PluginError as error:
            return (str(error), error.code)

    assert all_at_once(get, range(8)) == [("OKX 50001: service unavailable", "50001")] * 8
    assert len(calls) == 1
    assert cache.get("key", lambda: "loaded") == "loaded"      # a failure is not kept


def test_robots_sharing_a_key_read_its_position_mode_once(fake, monkeypatch):
    module = EXCHANGES[fake.NAME.lower()]
    if "positions" not in module.METHODS:
        pytest.skip(f"{fake.NAME} does not serve perpetual swaps")
    counts, original = {}, _kit.ACCOUNT_SETTINGS.get
    monkeypatch.setattr(_kit.ACCOUNT_SETTINGS, "get",
                        lambda api, name, load: original(api, name, counting(load, counts, name)))
    one_contract = float(Decimal(fake.CONTRACT_UNITS.get("BTC_USDT.swap", 1)))
    with client_of(fake) as client:
        client.data("markets")                # specs cached: only the account settings are cold
        answers = all_at_once(lambda robot: robot.call("trade", symbol="BTC_USDT.swap", type="buy", price=-1,
                                                       amount=one_contract), robots(client, 12))
    assert [answer for answer in answers if "data" not in answer] == []
    assert counts and set(counts.values()) == {1}, counts


# ---------------------------------------------------------------------------- symbols and numbers

@pytest.mark.parametrize("symbol", ["ıNJ_USDT", "BTC_USDT.ſwap", "BTC\n_USDT", "ＢＴＣ_USDT", "BTC_USDT\n"])
def test_symbols_are_ascii_before_upper_casing(symbol):
    if symbol.endswith("\n"):                 # outer white space is trimmed, as the docker's may be
        assert str(_kit.parse_symbol(symbol)) == "BTC_USDT"
        return
    with pytest.raises(_kit.PluginError, match="invalid symbol"):
        _kit.parse_symbol(symbol)


def test_turkish_dotless_i_is_refused_by_every_exchange(fake):
    with client_of(fake) as client:
        assert "invalid symbol" in client.error("ticker", symbol="ıNJ_USDT")
        assert "invalid symbol" in client.error("trade", symbol="bıtc_usdt", type="buy", price=40000, amount="0.001")
    assert fake.engine.orders == {}


@pytest.mark.parametrize("amount", ["1_000", "0.00_1", "١", "٠.٠٠١", "０.001", "𝟎.001"])
def test_numbers_are_ascii_digits_only(fake, amount):
    with client_of(fake) as client:
        assert client.error("trade", symbol="BTC_USDT", type="buy", price=40000, amount=amount) == \
            f"amount must be a number, got {amount!r}"
        assert "limit must be a number" in client.error("records", symbol="BTC_USDT", period=60, limit=amount)
    assert fake.engine.orders == {}
