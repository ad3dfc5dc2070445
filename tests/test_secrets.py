"""Secrets never reach output: the plugin runs as a real process (`python fmz_plugin.py`), at each
log level, and every method is called on its success and error paths; nothing it printed (stdout,
stderr, log lines, tracebacks) and nothing it answered may contain the API key, the secret, the
passphrase or any signature the exchange received."""
import itertools
import json
import logging
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fmz_plugin
from exchanges import EXCHANGES, _kit
from tests.conftest import FAKES, PluginClient, client_of, serving
from tests.test_status import get

ROOT = Path(__file__).resolve().parent.parent
LEVELS = ["debug", "info", "warning", "error"]
FAULTS = ["5xx", "drop_after", "429"]     # a failed read, a lost answer, a rate limit


def params_for(method, fake, order_id):
    """Plausible params for each protocol method (unknown ones get none)."""
    return {
        "ticker": {"symbol": fake.SYMBOL}, "depth": {"symbol": fake.SYMBOL, "limit": 5},
        "trades": {"symbol": fake.SYMBOL}, "records": {"symbol": fake.SYMBOL, "period": 1, "limit": 5},
        "trade": {"symbol": fake.SYMBOL, "type": "buy", "price": 40000, "amount": fake.AMOUNT},
        "orders": {"symbol": fake.SYMBOL}, "order": {"id": order_id, "symbol": fake.SYMBOL},
        "historyorders": {"symbol": fake.SYMBOL, "since": 0, "limit": 5},
        "cancel": {"id": order_id, "symbol": fake.SYMBOL},
        "tickers": {"symbol": "USDT.swap"}, "positions": {"symbol": "USDT.swap"},
        "margin_level": {"symbol": "BTC_USDT.swap", "level": 5}, "fundings": {"symbol": "USDT.swap"},
    }.get(method, {})


def secrets_of(fake):
    parts = [fake.ACCESS_KEY] + fake.SECRET_KEY.split(",")
    return [part for part in parts if len(part) >= 4 and part not in ("simulate", "isolated", "cross")]


class PluginProcess:
    """`python fmz_plugin.py --port 0 ...`; everything it prints is kept for `output()`."""

    def __init__(self, name, fake_url, level):
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "fmz_plugin.py"), "--port", "0", "--log-level", level, "--no-throttle",
             "--timeout", "1", "--base-url", f"{name.lower()}={fake_url}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.banner = [self.process.stdout.readline()]
        assert "listening on http://127.0.0.1:" in self.banner[0], self.banner
        self.url = self.banner[0].split("listening on ")[1].strip()

    def output(self):
        self.process.terminate()
        stdout, _ = self.process.communicate(timeout=10)
        self.log.seek(0)
        return "".join(self.banner) + stdout + self.log.read().decode("utf-8", "replace")


def exercise(client, fake, module):
    """Every method on its success path, then on error paths; returns every answer as text."""
    answers = []

    def call(method, **params):
        answers.append(json.dumps(client.call(method, **params)))
        return json.loads(answers[-1])

    order_id = call("trade", **params_for("trade", fake, ""))["data"]["id"]
    for method in module.METHODS:
        name = "__api_" + fake.TIME_PATH if method == "__api_" else method
        call(name, **params_for(method, fake, order_id))
    for kind in FAULTS:                                     # the exchange misbehaves
        for method in ("accounts", "trade"):
            fake.inject(kind, times=2)
            call(method, **params_for(method, fake, order_id))
            fake.faults.clear()
    call("trade", symbol=fake.SYMBOL, type="buy", price=1, amount="-1")     # refused before sending
    call("trade", symbol=fake.SYMBOL, type="buy", price=40000, amount="999999")   # refused by the exchange
    call("teleport")
    wrong = [fake.SECRET_KEY.replace(secrets_of(fake)[1], secrets_of(fake)[1] + "x"),   # wrong secret
             "x", "a,b,c,d,e", ""]
    for secret_key in wrong:
        client.secret_key = secret_key
        for method in ("accounts", "trade", "orders", "cancel", "__api_"):
            name = "__api_" + fake.TIME_PATH if method == "__api_" else method
            call(name, **params_for(method, fake, order_id))
    return "\n".join(answers)


def run_at_level(name, level):
    """One fake and one plugin process at `level`: (secrets, printed text, answers text)."""
    with FAKES[name]() as fake:
        plugin = PluginProcess(name, fake.url, level)
        try:
            client = PluginClient(plugin.url, name, fake.ACCESS_KEY, fake.SECRET_KEY)
            answers = exercise(client, fake, EXCHANGES[name.lower()])
        finally:
            printed = plugin.output()
    assert fake.signatures, f"the fake {name} records no signatures: give it signature_of()"
    return secrets_of(fake) + fake.signatures, printed, answers


@pytest.mark.parametrize("name", list(FAKES))
def test_no_secret_in_anything_printed_or_answered(name):
    with ThreadPoolExecutor(len(LEVELS)) as pool:          # the levels run side by side: mostly waiting
        runs = dict(zip(LEVELS, pool.map(lambda level: run_at_level(name, level), LEVELS)))
    assert "ticker" in runs["debug"][1] and "error" in runs["debug"][1]     # the log really was captured
    for level, (secrets, printed, answers) in runs.items():
        for secret in secrets:
            assert secret not in printed, f"{secret[:6]}... printed at level {level}"
            assert secret not in answers, f"{secret[:6]}... answered"


def test_internal_error_traceback_is_redacted(okx_fake, monkeypatch, capfd):
    """A bug that puts the keys into an exception: the logged traceback and the answer hide them."""
    def leaky(api, symbol):
        raise RuntimeError(f"bug with {api.access_key} and {api.secret_key}")
    monkeypatch.setitem(EXCHANGES["okx"].METHODS, "ticker", leaky)
    handler = logging.StreamHandler(sys.stderr)
    fmz_plugin.log.addHandler(handler)
    try:
        with client_of(okx_fake) as client:
            answer = client.error("ticker", symbol="BTC_USDT")
    finally:
        fmz_plugin.log.removeHandler(handler)
    printed = "".join(capfd.readouterr())
    assert answer == "internal error in ticker: RuntimeError" and "RuntimeError: bug with ***" in printed
    for secret in secrets_of(okx_fake):
        assert secret not in printed + answer


# ---------------------------------------------------------------------------- echoes, cuts, URLs (issue #23)

RUN = 6                       # characters: no run this long of a key or secret may be shown


WORDS = "secret_key Secret Key passphrase"      # the plugin's own words, also in the fakes' keys


def runs(secret, length=RUN):
    return {secret[i:i + length] for i in range(len(secret) - length + 1)} - runs_of_words(length)


def runs_of_words(length):
    return {WORDS[i:i + length] for i in range(len(WORDS) - length + 1)}


def leaked(secrets, text, length=RUN):
    return sorted(run for secret in secrets for run in runs(secret, max(length, 10 if len(secret) > 40 else length))
                  if run in text)


def status_texts(url):
    return get(url, "/status")[2] + get(url, "/", accept="text/html")[2]


@pytest.mark.parametrize("name", list(FAKES))
def test_an_error_page_echoing_the_request_shows_no_part_of_a_secret(name, caplog, monkeypatch):
    """A proxy's error page echoes the request headers: the error is cut short for the answer,
    and the cut once fell inside the passphrase, after which the whole of it could not be found
    to blank (16 of its 20 characters reached the answer, the log and the status page).
    Secrets are blanked before any cut; any run of one that survives a cut is blanked too.
    The 96 reads are each asked twice: the pause before the retry is not waited out here."""
    monkeypatch.setattr(_kit, "RETRY_BACKOFF", 0)
    with FAKES[name]() as fake, client_of(fake) as client:
        answers = []
        for skip, pad in itertools.product(range(4), range(0, 72, 3)):     # the secrets slide across every cut
            fake.inject("echo", pad=pad, skip=skip, times=2)                # a read is asked twice
            answers.append(client.error("accounts"))
        shown = "\n".join(answers) + status_texts(client.url)
    shown += "\n".join(record.getMessage() for record in caplog.records)
    assert "502" in answers[0], answers[0]
    assert leaked(secrets_of(fake) + fake.signatures, shown) == []


@pytest.mark.parametrize("name", list(FAKES))
def test_a_successful_answer_echoing_the_request_shows_no_secret(name):
    """An exchange (or exchange.IO's endpoint) whose successful reply echoes the request: keys,
    passphrase and signatures are blanked in data and raw as in errors."""
    with FAKES[name]() as fake, client_of(fake) as client:
        fake.inject("echo_json", path=fake.TIME_PATH)
        io = client.call("__api_" + fake.TIME_PATH)
        fake.inject("echo_json")
        accounts = client.call("accounts")
    assert "data" in io and "***" in json.dumps(io["raw"]), io
    shown = json.dumps(io) + json.dumps(accounts)
    assert leaked(secrets_of(fake) + fake.signatures, shown) == []


def test_a_base_url_never_shows_its_user_and_password(okx_fake, caplog):
    """`--base-url okx=http://user:password@host`: the password was printed in errors, the status
    page and the log. The user:password part is never sent (the transport has no use for it) and
    never shown."""
    password = "pa55word-hunter2"
    port = okx_fake.url.rsplit(":", 1)[1]
    args = fmz_plugin.parse_args(["--port", "0", "--base-url", f"okx=http://u5ername:{password}@127.0.0.1:{port}",
                                  "--base-url", f"bybit=http://u5ername:{password}@127.0.0.1:1"])
    settings = fmz_plugin.settings_of(args)
    assert password not in json.dumps(settings.base_urls)
    with serving(args.base_urls) as (url, server):
        okx = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
        assert okx.data("ticker", symbol="BTC_USDT")
        bybit = PluginClient(url, "Bybit", "bybit-key", "bybit-secret")
        error = bybit.error("ticker", symbol="BTC_USDT")
        assert "cannot reach http://127.0.0.1:1" in error, error
        shown = error + status_texts(url) + fmz_plugin.banner(server, server.settings)
    shown += "\n".join(record.getMessage() for record in caplog.records)
    assert "u5ername" not in shown and leaked([password], shown) == []


def test_what_a_cut_left_of_a_secret_is_blanked():
    """A message cut before it was redacted would hold part of a secret no whole-secret search
    finds: a run of 4 or more of its characters at a cut (before ... or a closing quote, at the
    end, or its end at the start) is blanked too; the same letters elsewhere are left alone."""
    envelope = {"access_key": "AK7f3e9c1b2a", "secret_key": "S3cr3tValue0123,myPassphrase99"}
    assert fmz_plugin.redact("proxy page: '<pre>myPass'", envelope) == "proxy page: '<pre>***'"
    assert fmz_plugin.redact("echo S3cr3tVa...", envelope) == "echo ***..."
    assert fmz_plugin.redact("7f3e9c1b2a rest of a page", envelope) == "*** rest of a page"
    assert fmz_plugin.redact("myPa", envelope) == "***"
    assert fmz_plugin.redact("my Passphrase of myPas is wrong", envelope) == "my Passphrase of myPas is wrong"
    assert fmz_plugin.redact("key AK7f3e9c1b2a and S3cr3tValue0123", envelope) == "key *** and ***"
