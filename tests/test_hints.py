"""Small mistakes get a hint (#26): check at https:// on a plain-HTTP plugin, check at the status
port, a method name with a typo, a call that needs keys without any, paper commands naming an
exchange the plugin does not serve or a database that does not exist."""
import os
import re
import threading

import pytest

import fmz_plugin
from tests.conftest import serving
from tests.test_paper import okx_paper  # noqa: F401 (a fixture)


def test_check_over_https_on_a_plain_http_plugin_says_so(okx, capsys):
    url = okx.url.replace("http://", "https://") + "/OKX"
    assert fmz_plugin.run(["check", url]) == 2
    out, err = capsys.readouterr()
    assert err == (f"{url}: the TLS handshake with {url[8:-4]} failed (WRONG_VERSION_NUMBER): it serves plain "
                   f"HTTP, use {okx.url}/OKX\n") and out == ""


def test_call_over_https_on_a_plain_http_plugin_says_so(okx, capsys):
    assert fmz_plugin.run(["call", "OKX", "ticker", "symbol=BTC_USDT", "--url", okx.url.replace("http", "https")]) == 2
    assert f"it serves plain HTTP, use {okx.url}/OKX" in capsys.readouterr().err


def test_check_at_the_status_port_names_the_plugin_port(okx_fake, capsys):
    with serving({"okx": okx_fake.url}) as (url, server):
        page = fmz_plugin.StatusServer(("127.0.0.1", 0), server)
        try:
            threading.Thread(target=page.serve_forever, args=(0.05,), daemon=True).start()
            page_url = fmz_plugin.server_url(page) + "/OKX"
            assert fmz_plugin.run(["check", page_url]) == 2
        finally:
            page.shutdown()
            page.server_close()
    assert capsys.readouterr().err == f"{page_url} is fmz-plugin's status page, not the plugin: check {url}/OKX\n"


def test_check_where_nothing_listens_says_so(capsys):
    assert fmz_plugin.run(["check", "http://127.0.0.1:9/OKX"]) == 2
    assert capsys.readouterr().err == "nothing answers at http://127.0.0.1:9/OKX: is the plugin running?\n"


@pytest.mark.parametrize("typed, meant", [("tiker", "ticker"), ("GetTiker", "ticker"), ("acounts", "accounts"),
                                          ("historyorder", None), ("teleport", None)])
def test_a_method_name_with_a_typo_suggests_the_method(typed, meant):
    answer = fmz_plugin.dispatch("OKX", {"access_key": "", "secret_key": "", "method": typed, "params": {}})
    if typed == "historyorder":                         # an alias, no typo
        assert "unknown method" not in answer["error"]
    elif meant:
        assert answer["error"].startswith(f"unknown method: {typed} (did you mean {meant}?); served: ticker, ")
    else:
        assert answer["error"].startswith(f"unknown method: {typed}; served: ticker, ")


def test_call_without_keys_says_no_keys_were_given(capsys, monkeypatch):
    monkeypatch.delenv("FMZ_ACCESS_KEY", raising=False)
    monkeypatch.delenv("FMZ_SECRET_KEY", raising=False)
    with pytest.raises(SystemExit) as stop:
        fmz_plugin.run(["call", "OKX", "accounts"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "fmz_plugin.py call: accounts needs keys: no keys given (FMZ_ACCESS_KEY / --access-key and "
        "FMZ_SECRET_KEY / --secret-key; or --access-key paper for a paper account) (--help lists every flag)\n")
    with pytest.raises(SystemExit):
        fmz_plugin.run(["call", "OKX", "buy", "--access-key", "k"])
    assert "buy needs keys: no secret key given (FMZ_SECRET_KEY / --secret-key)" in capsys.readouterr().err


def test_paper_reset_on_an_exchange_not_served_names_the_served_ones(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        fmz_plugin.run(["paper", "reset", "X", "--exchange", "Kraken", "--paper-db", str(tmp_path / "p.db")])
    assert stop.value.code == 2
    served = ", ".join(module.NAME for module in fmz_plugin.EXCHANGES.values())
    assert capsys.readouterr().err == (f"fmz_plugin.py paper: --exchange Kraken: no such exchange here; the plugin "
                                       f"serves {served} (--help lists every flag)\n")


@pytest.mark.parametrize("action", [["list"], ["reset", "USDT=5"]])
def test_paper_commands_never_create_a_missing_database(tmp_path, capsys, action):
    path = tmp_path / "missing.db"
    assert fmz_plugin.run(["paper", *action, "--paper-db", str(path)]) == 0
    assert not os.path.exists(path) and os.listdir(tmp_path) == []
    assert capsys.readouterr().out.startswith(f"no paper account: {path} does not exist (--paper-db; ")


def test_paper_list_shows_balances_and_a_readable_time(okx_paper, tmp_path, capsys):
    okx_paper.data("trade", symbol="ETH_USDT", type="buy", price=1000, amount="0.01")    # freezes 10 USDT
    assert fmz_plugin.run(["paper", "list", "--paper-db", str(tmp_path / "paper.db")]) == 0
    head, row = capsys.readouterr().out.splitlines()
    assert head.split() == ["exchange", "account", "open_orders", "positions", "created", "balances", "(free,", "frozen)"]
    assert re.search(r"\s1\s+0\s+20\d\d-\d\d-\d\d \d\d:\d\d UTC\s+BTC 1, ETH 10, USDT 99,990 \(10 frozen\)$", row), row
