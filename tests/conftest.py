"""Fixtures: a fake exchange on 127.0.0.1:0 and the plugin server pointed at it.

`plugin.call(method, **params)` sends exactly what FMZ's docker sends (POST /<Exchange>,
JSON envelope with string params) and returns the decoded answer.

The plugin server fixtures (`plugin_server`, `okx`, `exchange`) run every test twice: against
the repository's modules in this process ("repo"), and against the one-file bundle started
as its own process from an empty directory ("bundle"), built once per session. A test that
reaches into the plugin's process (monkeypatch, caplog) is marked `@pytest.mark.repo_only`.
"""
import contextlib
import http.client
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import fmz_plugin
from exchanges import _kit
from tests.fakes.binance import FakeBinance
from tests.fakes.okx import FakeOKX

FAKES = {"OKX": FakeOKX, "Binance": FakeBinance}        # exchange name -> its fake; the contract suite runs against each


class PluginClient:
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


def start_plugin(base_urls, timeout=3.0):
    server = fmz_plugin.Server(("127.0.0.1", 0), fmz_plugin.Settings(base_urls, timeout))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


PLUGIN_MODES = ["repo", "bundle"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BundledPlugin:
    """The bundle as a process of its own: `python3 fmz_plugin.py --port 0 --base-url ...`.

    Its port is read from the first banner line; its log goes to `log_path`.
    """

    def __init__(self, path, base_urls, folder, timeout=3.0):
        argv = [sys.executable, "-I", "-S", str(path), "--port", "0", "--timeout", str(timeout)]
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


class BundlePool:
    """Bundled plugins started one test ahead, on the otherwise idle second core.

    Each is pointed at a listening socket of its own (`plugin.listener`) that the test's fake
    then serves too (FakeExchange.serve_also), so no test waits for a process to start and
    every test still gets a fresh process with no cache or clock offset left by another.
    """

    def __init__(self, path, folder):
        self.path, self.folder = path, folder
        self.starter = ThreadPoolExecutor(max_workers=1)
        self.next = {}                    # exchange key -> a plugin being started for it

    def take(self, key):
        pending = self.next.pop(key, None)
        plugin = pending.result() if pending else self._start(key)
        self.next[key] = self.starter.submit(self._start, key)
        return plugin

    def _start(self, key):
        listener = socket.create_server(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        plugin = BundledPlugin(self.path, {key: url}, pathlib.Path(tempfile.mkdtemp(dir=self.folder)))
        plugin.listener = listener
        return plugin

    def close(self):
        for pending in self.next.values():
            plugin = pending.result()
            plugin.stop()
            plugin.listener.close()
        self.starter.shutdown()


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory):
    """The one-file plugin, built once, alone in a directory of its own."""
    path = tmp_path_factory.mktemp("bundle") / "fmz_plugin.py"
    path.write_text(fmz_plugin.bundle_text(ROOT)[0], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bundle_pool(bundle_path, tmp_path_factory):
    pool = BundlePool(bundle_path, tmp_path_factory.mktemp("runs"))
    yield pool
    pool.close()


@contextlib.contextmanager
def running_plugin(request, mode, fake, key):
    """The plugin server in `mode` ("repo" or "bundle") serving exchange `key` from `fake`."""
    if mode == "bundle":
        plugin = request.getfixturevalue("bundle_pool").take(key)
        fake.serve_also(plugin.listener)
        try:
            yield plugin.url
        finally:
            plugin.stop()
        return
    server, url = start_plugin({key: fake.url})
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=PLUGIN_MODES)
def plugin_mode(request):
    return request.param


def pytest_configure(config):
    config.addinivalue_line("markers", "repo_only: reaches into the plugin's process, so not run against the bundle")


def pytest_collection_modifyitems(config, items):
    bundled = [item for item in items if item.get_closest_marker("repo_only")
               and getattr(item, "callspec", None) and item.callspec.params.get("plugin_mode") == "bundle"]
    if bundled:
        config.hook.pytest_deselected(items=bundled)
        items[:] = [item for item in items if item not in bundled]


@pytest.fixture(autouse=True)
def fresh_caches():
    _kit.MARKETS.clear()
    _kit.Api.clock_offsets.clear()
    yield


@pytest.fixture
def okx_fake():
    with FakeOKX() as fake:
        yield fake


@pytest.fixture
def plugin_server(request, plugin_mode, okx_fake):
    with running_plugin(request, plugin_mode, okx_fake, "okx") as url:
        yield url


@pytest.fixture
def okx(plugin_server, okx_fake):
    client = PluginClient(plugin_server, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
    client.fake = okx_fake
    return client


@pytest.fixture(params=list(FAKES))
def exchange(request, plugin_mode):
    """A plugin client for each exchange in FAKES, its fake at `.fake`."""
    with FAKES[request.param]() as fake, \
            running_plugin(request, plugin_mode, fake, request.param.lower()) as url:
        client = PluginClient(url, request.param, fake.ACCESS_KEY, fake.SECRET_KEY)
        client.fake = fake
        yield client
