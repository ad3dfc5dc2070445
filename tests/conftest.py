"""Fixtures: a fake exchange on 127.0.0.1:0 and the plugin server pointed at it.

`plugin.call(method, **params)` sends exactly what FMZ's docker sends (POST /<Exchange>,
JSON envelope with string params) and returns the decoded answer.
"""
import http.client
import json
import threading
import time

import pytest

import fmz_plugin
from exchanges import _kit
from tests.fakes.binance import FakeBinance
from tests.fakes.bybit import FakeBybit
from tests.fakes.okx import FakeOKX

FAKES = {"OKX": FakeOKX, "Binance": FakeBinance, "Bybit": FakeBybit}   # exchange name -> its fake; the contract suite runs against each


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


def start_plugin(base_urls, timeout=3.0, throttle=False, allow=None):
    """The plugin in this process. The client-side throttle is off unless asked for: the fakes
    do not limit rates, and the suite places orders faster than OKX would allow."""
    server = fmz_plugin.Server(("127.0.0.1", 0), fmz_plugin.Settings(base_urls, timeout, throttle, allow))
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


@pytest.fixture(autouse=True)
def fresh_caches():
    _kit.MARKETS.clear()
    _kit.THROTTLE.clear()
    _kit.ACCOUNT_SETTINGS.clear()
    _kit.Api.clock_offsets.clear()
    yield


@pytest.fixture
def okx_fake():
    with FakeOKX() as fake:
        yield fake


@pytest.fixture
def plugin_server(okx_fake):
    server, url = start_plugin({"okx": okx_fake.url})
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def okx(plugin_server, okx_fake):
    client = PluginClient(plugin_server, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
    client.fake = okx_fake
    return client


@pytest.fixture(params=list(FAKES))
def exchange(request):
    """A plugin client for each exchange in FAKES, its fake at `.fake`."""
    with FAKES[request.param]() as fake:
        server, url = start_plugin({request.param.lower(): fake.url})
        client = PluginClient(url, request.param, fake.ACCESS_KEY, fake.SECRET_KEY)
        client.fake, client.server = fake, server
        yield client
        server.shutdown()
        server.server_close()
