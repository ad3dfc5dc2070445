"""Fixtures: a fake exchange on 127.0.0.1:0 and the plugin server pointed at it.

`plugin.call(method, **params)` sends exactly what FMZ's docker sends (POST /<Exchange>,
JSON envelope with string params) and returns the decoded answer.

The plugin server fixtures (`plugin_server`, `okx`, `exchange`) run every test twice: against
the repository's modules in this process ("repo"), and against the one-file bundle, built once
per session, in a process of its own per test ("bundle": BundleForker). A test that reaches
into the plugin's process (monkeypatch, caplog) is marked `@pytest.mark.repo_only`.
"""
import contextlib
import http.client
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import fmz_plugin
from exchanges import _kit, _paper, _throttle, coinbase
from tests.fakes.base import SERVE_POLL
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.binance import FakeBinance
from tests.fakes.bingx import FakeBingX
from tests.fakes.bitvavo import FakeBitvavo
from tests.fakes.blofin import FakeBloFin
from tests.fakes.bybit import FakeBybit
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.okx import FakeOKX

FAKES = {"OKX": FakeOKX, "Binance": FakeBinance, "Bybit": FakeBybit, "BingX": FakeBingX, "Alpaca": FakeAlpaca,
         "Bitvavo": FakeBitvavo, "BloFin": FakeBloFin}   # exchange name -> its fake; the contract suite runs against each
if importlib.util.find_spec("cryptography"):    # fake Coinbase checks JWTs with it (a test-only dependency)
    FAKES["Coinbase"] = FakeCoinbase


class PluginClient:
    paper = False                # a client of a paper account (see paper_client)

    def __init__(self, url, exchange, access_key, secret_key):
        self.url, self.exchange = url, exchange
        self.access_key, self.secret_key = access_key, secret_key
        host, port = url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def envelope(self, method, params, **overrides):
        envelope = {"access_key": self.access_key, "secret_key": self.secret_key, "method": method,
                    "params": {k: str(v) for k, v in params.items()}, "nonce": time.time_ns()}
        envelope.update(overrides)
        return envelope

    def call(self, method, http_method=None, **params):
        return self.post(json.dumps(self.envelope(method, params)).encode(), http_method=http_method)

    def post(self, body, path=None, http_method=None, headers=None):
        headers = dict(headers or {"Content-Type": "application/json"})
        if http_method:
            headers["Http-Method"] = http_method
        self.conn.request("POST", path or "/" + self.exchange, body=body, headers=headers)
        response = self.conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("application/json")
        answer = json.loads(response.read())
        if response.getheader("Connection") == "close":
            self.conn.close()
        return answer

    def data(self, method, **params):
        answer = self.call(method, **params)
        assert "error" not in answer, answer
        return answer["data"]

    def error(self, method, **params):
        answer = self.call(method, **params)
        assert set(answer) == {"error"}, answer
        return answer["error"]

    def refusal(self, reason, method="trade"):
        """How the error of that engine refusal (tests/fakes/engine.py) begins: the exchange's own
        code, or "NAME paper:" where a paper account served the method."""
        if self.paper and method in _paper.METHODS:
            return f"{self.fake.NAME} paper:"
        return f"{self.fake.NAME} {self.fake.CODES[reason]}:"

    def set_hedge_mode(self, hedge):
        """Long/short (hedge) or net position mode: the fake's account setting, or a paper
        account whose Secret Key says `hedge` (a fresh account with the same balances)."""
        if self.paper:
            self.secret_key = PAPER_BALANCES + (",hedge" if hedge else "")
        else:
            self.fake.engine.set_hedge_mode(hedge)


PAPER_BALANCES = "USDT=100000,BTC=1,ETH=10"     # the fakes' START_BALANCES, as a paper account's Secret Key
ACCOUNTS = ["live", "paper"]                    # what the contract suites run on (see paper_client)


def paper_client(live, tmp_path):
    """A client of a paper account on the plugin (in this process) that `live` talks to: the
    same fake serves the public data, the account starts with the fakes' balances, no fees,
    and resting orders fill only when placed, as the fakes' own (their trade tape does not
    follow their book). An exchange whose public data needs keys is skipped."""
    live.server.settings.paper = _paper.Ledger(str(tmp_path / "paper.db"), fees=(0, 0), fill_from_trades=False)
    client = PluginClient(live.url, live.exchange, "paper", PAPER_BALANCES)
    client.fake, client.server, client.paper = live.fake, live.server, True
    answer = client.call("markets")
    if "signed request" in answer.get("error", ""):
        pytest.skip(f"{live.exchange} serves market data only with keys: {answer['error']}")
    live.fake.requests.clear()
    return client


@pytest.fixture(params=ACCOUNTS)
def account(request):
    """live: the fake's own account, signed; paper: a paper account on the fake's prices (repo
    mode only). A contract module overrides `exchange` with paper_client for "paper"."""
    return request.param


@contextlib.contextmanager
def serving(base_urls, timeout=3.0, throttle=False, allow=None, risk=None, stream=False):
    """The plugin in this process, serving `base_urls`: yields (url, server), stops it after.
    The client-side throttle is off unless asked for: the fakes do not limit rates, and the
    suite places orders faster than OKX would allow. `risk`: a RiskGuard orders must pass."""
    server = fmz_plugin.Server(("127.0.0.1", 0), fmz_plugin.Settings(base_urls, timeout, throttle, allow, risk=risk,
                                                                            stream=stream))
    threading.Thread(target=server.serve_forever, args=(SERVE_POLL,), daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def client_of(fake, **base_urls):
    """A PluginClient with the fake's keys, for a plugin serving that fake (or `base_urls`)."""
    with serving(base_urls or {fake.NAME.lower(): fake.url}) as (url, server):
        client = PluginClient(url, fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
        client.fake, client.server = fake, server
        yield client


def raw_exchange(url, data, half_close=True):
    """Send raw bytes to the plugin at `url` on a fresh socket and read until it closes: the
    whole answer, head and body, as bytes. `half_close` ends our side once sent."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def head_and_json(answer):
    """A raw answer as (its head as text, its body decoded from JSON)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode(), json.loads(body)


@pytest.fixture(scope="module", params=list(FAKES))
def served(request):
    """A client of one plugin (in this process) serving each exchange's fake, kept for a whole
    test module: for suites of many quick requests that each leave the plugin as they found it."""
    with FAKES[request.param]() as fake, client_of(fake) as client:
        yield client


PLUGIN_MODES = ["repo", "bundle"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BundledPlugin:
    """The bundle as a process of its own: `python3 fmz_plugin.py --port 0 --base-url ...`.

    Its port is read from the first banner line; its log goes to `log_path`.
    """

    def __init__(self, path, base_urls, folder, timeout=3.0):
        argv = [sys.executable, "-I", "-S", str(path), "--port", "0", "--timeout", str(timeout), "--no-throttle"]
        for name, url in base_urls.items():
            argv += ["--base-url", f"{name}={url}"]
        self.log_path = folder / "plugin.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=log, text=True)
        first_line = self.process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", first_line)
        if not found:
            self.stop()
            raise RuntimeError(f"the bundle did not start: {first_line!r} {self.log_path.read_text()}")
        self.url = found.group(1)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()


class BundleForker:
    """The bundle loaded once by a process of its own (tests/bundle_forker.py), which forks a
    fresh plugin process for each test: no cache or clock offset is shared between tests, and
    no test pays for an interpreter start.

    It runs from an empty directory with nothing but the standard library (-I -S).
    """

    def __init__(self, bundle, folder):
        self.log = open(folder / "plugins.log", "w")
        empty = folder / "empty"
        empty.mkdir()
        self.process = subprocess.Popen([sys.executable, "-I", "-S", os.path.join(ROOT, "tests", "bundle_forker.py"),
                                         str(bundle)], cwd=empty, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True)

    @contextlib.contextmanager
    def plugin(self, base_urls, timeout=3.0, extra=()):
        """A plugin process serving `base_urls` (more flags in `extra`); yields its URL, stops it after."""
        argv = ["--port", "0", "--timeout", str(timeout), "--no-throttle", *extra]
        for name, url in base_urls.items():
            argv += ["--base-url", f"{name}={url}"]
        self.process.stdin.write(json.dumps(argv) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().split()
        if len(answer) != 2 or not answer[1].startswith("http://"):
            raise RuntimeError(f"the bundle did not start: {answer} (see {self.log.name})")
        try:
            yield answer[1]
        finally:
            os.kill(int(answer[0]), signal.SIGTERM)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()
        self.log.close()


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory):
    """The one-file plugin, built once, alone in a directory of its own."""
    path = tmp_path_factory.mktemp("bundle") / "fmz_plugin.py"
    path.write_text(fmz_plugin.bundle_text(ROOT)[0], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bundle_forker(bundle_path, tmp_path_factory):
    forker = BundleForker(bundle_path, tmp_path_factory.mktemp("forker"))
    yield forker
    forker.close()


@contextlib.contextmanager
def running_plugin(request, mode, fake, key):
    """The plugin in `mode` ("repo" or "bundle") serving exchange `key` from `fake`: yields its
    URL and, in "repo" mode, the Server object (None for the bundle, in a process of its own)."""
    if mode == "bundle":
        with request.getfixturevalue("bundle_forker").plugin({key: fake.url}) as url:
            yield url, None
        return
    with serving({key: fake.url}) as (url, server):
        yield url, server


@pytest.fixture(params=PLUGIN_MODES)
def plugin_mode(request):
    return request.param


def pytest_configure(config):
    config.addinivalue_line("markers", "repo_only: reaches into the plugin's process, so not run against the bundle")
    config.addinivalue_line("markers", "live_only: about signed requests to the exchange, so not run on a paper account")


def pytest_collection_modifyitems(config, items):
    params = lambda item: item.callspec.params if getattr(item, "callspec", None) else {}
    left_out = [item for item in items if params(item).get("plugin_mode") == "bundle"
                and (item.get_closest_marker("repo_only") or params(item).get("account") == "paper")
                or item.get_closest_marker("live_only") and params(item).get("account") == "paper"]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        leaving = set(map(id, left_out))         # every worker does this for thousands of items: no list scans
        items[:] = [item for item in items if id(item) not in leaving]


@pytest.fixture(autouse=True)
def fresh_caches():
    _kit.MARKETS.clear()
    _throttle.THROTTLE.clear()
    _kit.ACCOUNT_SETTINGS.clear()
    _kit.CLOCK_OFFSETS.clear()
    coinbase.DAY_STATS.clear()      # a ticker's 24 h figures, kept 30 s per base URL (a new fake may reuse a port)
    yield
    _kit.POOL.clear()       # idle sockets to this test's fakes; past 1024 open files select() fails


@pytest.fixture
def okx_fake():
    with FakeOKX() as fake:
        yield fake


@pytest.fixture
def plugin_server(request, plugin_mode, okx_fake):
    with running_plugin(request, plugin_mode, okx_fake, "okx") as (url, server):
        yield url


@pytest.fixture
def okx(plugin_server, okx_fake):
    client = PluginClient(plugin_server, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
    client.fake = okx_fake
    return client


def exchange_fixtures(fake_class, both_modes=False):
    """The two fixtures every tests/test_<exchange>.py declares, under one name each:
    `fake, client = exchange_fixtures(FakeX)`. `fake` is the exchange's fake; `client` a
    PluginClient with the fake's keys (its fake at `.fake`, its URL at `.url`), for a plugin in
    this process, or with `both_modes` for each of PLUGIN_MODES (the repo and the bundle)."""
    @pytest.fixture
    def fake():
        with fake_class() as server:
            yield server

    def client(fake):
        with client_of(fake) as plugin:
            yield plugin

    def client_in_both_modes(request, plugin_mode, fake):
        with running_plugin(request, plugin_mode, fake, fake.NAME.lower()) as (url, server):
            plugin = PluginClient(url, fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
            plugin.fake, plugin.server = fake, server
            yield plugin

    return fake, pytest.fixture(client_in_both_modes if both_modes else client, name="client")


@pytest.fixture(params=list(FAKES))
def exchange(request, plugin_mode):
    """A plugin client for each exchange in FAKES, its fake at `.fake`."""
    with FAKES[request.param]() as fake, \
            running_plugin(request, plugin_mode, fake, request.param.lower()) as (url, server):
        client = PluginClient(url, request.param, fake.ACCESS_KEY, fake.SECRET_KEY)
        client.fake, client.server = fake, server
        yield client
