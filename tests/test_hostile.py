"""Hostile or broken clients: address allow-list, slow and huge requests, and a corpus of
malformed envelopes. Every answer is JSON, the connection is never just dropped, and the
server serves a valid request right after."""
import http.client
import json

import pytest

import fmz_plugin
from tests.conftest import PluginClient, start_plugin


def raw_post(url, body, path="/OKX", headers=None):
    """POST on a fresh connection; returns (status, decoded JSON answer)."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.getheader("Content-Type").startswith("application/json")
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------- --allow

@pytest.fixture
def plugin_allowing(okx_fake):
    servers = []

    def start(allow):
        server, url = start_plugin({"okx": okx_fake.url}, allow=allow)
        servers.append(server)
        return url
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def ticker_body(okx_fake):
    return json.dumps({"access_key": okx_fake.ACCESS_KEY, "secret_key": okx_fake.SECRET_KEY,
                       "method": "ticker", "params": {"symbol": "BTC_USDT"}, "nonce": 1}).encode()


def test_allow_refuses_other_addresses_with_403_json(plugin_allowing, okx_fake):
    url = plugin_allowing(["10.1.2.3", "192.168.0.0/16"])
    status, answer = raw_post(url, ticker_body(okx_fake))
    assert status == 403 and answer == {"error": "client address 127.0.0.1 is not allowed (see --allow)"}
    assert okx_fake.requests == []


def test_allow_admits_listed_addresses_and_networks(plugin_allowing, okx_fake):
    for allow in (["127.0.0.1"], ["10.0.0.1", "127.0.0.0/8"]):
        status, answer = raw_post(plugin_allowing(allow), ticker_body(okx_fake))
        assert status == 200 and answer["data"]["symbol"] == "BTC_USDT"


def test_allow_matches_ipv4_mapped_ipv6_clients():
    settings = fmz_plugin.Settings(allow=["10.0.0.5"])
    assert settings.allows("::ffff:10.0.0.5") and not settings.allows("::ffff:10.0.0.6")
    assert not settings.allows("not-an-address") and fmz_plugin.Settings().allows("203.0.113.9")


def test_allow_flag_is_validated(capsys):
    assert fmz_plugin.parse_args(["--allow", "127.0.0.1, 10.0.0.0/8"]).allow_list == ["127.0.0.1", "10.0.0.0/8"]
    assert fmz_plugin.parse_args([]).allow_list is None
    for bad in ("nobody", "", "10.0.0.300"):
        with pytest.raises(SystemExit):
            fmz_plugin.parse_args(["--allow", bad])
