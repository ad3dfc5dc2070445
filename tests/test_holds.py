"""A server that holds under abuse (issue #17): many file descriptors, crowds on a cold cache,
odd symbols and numbers. Run against every exchange's fake (FAKES) where the exchange matters."""
import contextlib
import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

import fmz_plugin
from exchanges import EXCHANGES, _kit
from tests.conftest import FAKES, ROOT, PluginClient, client_of

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
            assert client.data("ticker", symbol=fake.SYMBOL)["symbol"] == fake.SYMBOL
        assert fake.connections == 1          # the pooled connection was checked and reused
        fake.close_idle()                     # the exchange closes it: noticed before reuse
        assert client.data("ticker", symbol=fake.SYMBOL)["symbol"] == fake.SYMBOL
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
        answers = all_at_once(lambda robot: robot.call("trade", symbol=fake.SYMBOL, type="buy", price=40000,
                                                       amount=fake.AMOUNT), robots(client, 40))
    assert [answer for answer in answers if "data" not in answer] == []
    assert counts == {"markets": 1}
    assert len(fake.engine.orders) == 40


def test_a_failed_load_is_shared_not_repeated_by_each_waiter():
    cache, calls, started = _kit.SingleFlight(keep=True), [], threading.Event()

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


# ---------------------------------------------------------------------------- slow clients

@pytest.fixture
def quick_deadline(monkeypatch):
    """Each read may wait a second, but a whole request must arrive within 0.3 s."""
    monkeypatch.setattr(fmz_plugin.Handler, "timeout", 1.0)
    monkeypatch.setattr(fmz_plugin.Handler, "request_timeout", 0.3)


def dribble(url, head, pieces, gap=0.05):
    """Send `head`, then `pieces` one every `gap` seconds (each read well within the per-read
    timeout) until the server answers or closes; returns (what it answered, pieces sent)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        for sent, piece in enumerate(pieces):
            if select.select([sock], [], [], gap)[0]:
                return _read_all(sock), sent
            try:
                sock.sendall(piece)
            except OSError:               # closed and reset by the server
                return b"", sent
        return _read_all(sock), len(pieces)


def _read_all(sock):
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_line_sent_a_byte_at_a_time_is_cut_off(fake, quick_deadline):
    with client_of(fake) as client:
        answer, sent = dribble(client.url, b"P", [bytes([c]) for c in b"OST /OKX HTTP/1.1\r\nHost: x" * 4])
        assert sent < 100 and answer == b""           # closed long before the request was whole
        assert client.data("ticker", symbol=fake.SYMBOL)["symbol"] == fake.SYMBOL


def test_a_body_sent_a_byte_at_a_time_is_answered_with_an_error(fake, quick_deadline):
    with client_of(fake) as client:
        body = json.dumps(client.envelope("ticker", {"symbol": fake.SYMBOL})).encode()
        head = b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (fake.NAME.encode(), len(body))
        answer, sent = dribble(client.url, head, [bytes([c]) for c in body])
        assert sent < len(body)
        assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"error": "the request did not arrive whole within 0.3s"}
        assert client.data("ticker", symbol=fake.SYMBOL)["symbol"] == fake.SYMBOL


def test_a_keep_alive_connection_may_idle_between_requests(okx_fake, monkeypatch):
    monkeypatch.setattr(fmz_plugin.Handler, "request_timeout", 0.1)
    with client_of(okx_fake) as client:
        client.data("ticker", symbol="BTC_USDT")
        time.sleep(0.3)                       # idle longer than a request may take, shorter than idle
        client.data("ticker", symbol="BTC_USDT")
    assert okx_fake.connections == 1


# ---------------------------------------------------------------------------- paging

def test_records_limit_is_capped_before_anything_is_sent(fake):
    with client_of(fake) as client:
        assert client.error("records", symbol=fake.SYMBOL, period=60, limit="1e9") == \
            f"limit 1000000000 is over the {fmz_plugin.MAX_RECORDS} that records answers at most: ask for fewer"
        assert "is over" in client.error("historyorders", symbol=fake.SYMBOL, limit=fmz_plugin.MAX_HISTORY_ORDERS + 1)
    assert fake.requests == []


def test_records_at_the_cap_is_served_in_few_requests(fake):
    with client_of(fake) as client:
        rows = client.data("records", symbol=fake.SYMBOL, period=1, limit=fmz_plugin.MAX_RECORDS)
    assert 0 < len(rows) <= fmz_plugin.MAX_RECORDS
    assert len(fake.requests) <= 20           # pages of 300 (OKX) to 1000 candles, and the clock


def test_history_since_is_capped(fake):
    with client_of(fake) as client:
        assert client.error("historyorders", symbol=fake.SYMBOL, since=2001) == \
            f"since 2001 is more than {fmz_plugin.MAX_HISTORY_DAYS} days ago (that looks like seconds: since " \
            f"is in milliseconds): historyorders looks back at most {fmz_plugin.MAX_HISTORY_DAYS} days"
        assert fake.requests == []
        oldest = int(time.time() * 1000) - (fmz_plugin.MAX_HISTORY_DAYS - 1) * fmz_plugin.DAY_MS
        assert client.data("historyorders", symbol=fake.SYMBOL, since=oldest) == []
    assert len(fake.requests) <= 20           # Bybit: 13 windows of 7 days, one page each


# ---------------------------------------------------------------------------- connections

@contextlib.contextmanager
def plugin_with(fake, **settings):
    """The plugin in this process with Settings(**settings), serving `fake`; yields (url, server)."""
    server = fmz_plugin.Server(("127.0.0.1", 0), fmz_plugin.Settings({fake.NAME.lower(): fake.url}, 3.0,
                                                                      throttle=False, **settings))
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        yield fmz_plugin.server_url(server), server
    finally:
        server.shutdown()
        server.server_close()


def connected(url, count):
    """`count` keep-alive connections, each served one request (so each is surely accepted)."""
    host, port = url.split("//")[1].split(":")
    conns = []
    for _ in range(count):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/status")
        assert conn.getresponse().read()
        conns.append(conn)
    return conns


def refused(url):
    """A POST on a fresh connection: (status, JSON answer, Connection header)."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/OKX", body=b"{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read()), response.getheader("Connection")
    finally:
        conn.close()


@pytest.mark.repo_only
def test_connections_over_the_cap_are_refused_cleanly_and_logged_once(okx_fake, caplog):
    caplog.set_level("WARNING", logger="fmz_plugin")
    with plugin_with(okx_fake, max_connections=3) as (url, server):
        robots_now = connected(url, 3)
        for _ in range(4):
            assert refused(url) == (503, {"error": "the plugin serves at most 3 connections at once "
                                                   "(--max-connections): try again shortly"}, "close")
        robots_now.pop().close()              # one robot leaves: the next one is served
        deadline = time.monotonic() + 10
        while server.open_connections >= 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert connected(url, 1)
        for conn in robots_now:
            conn.close()
    warnings = [r.getMessage() for r in caplog.records if "max-connections" in r.getMessage()]
    assert warnings == ["refusing connections: 3 are open, the --max-connections limit (logged once a "
                        "minute while it lasts)"]


def test_max_connections_default_follows_the_open_file_limit(monkeypatch):
    assert fmz_plugin.parse_args(["--max-connections", "7"]).max_connections == 7
    assert fmz_plugin.settings_of(fmz_plugin.parse_args(fmz_plugin.strategy_argv({"MaxConnections": 7.0}))) \
        .max_connections == 7
    with pytest.raises(SystemExit):
        fmz_plugin.parse_args(["--max-connections", "0"])
    monkeypatch.setattr(fmz_plugin, "_open_file_limit", lambda: 1024)
    assert fmz_plugin.default_max_connections() == (1024 - fmz_plugin.FILES_KEPT) // 2
    monkeypatch.setattr(fmz_plugin, "_open_file_limit", lambda: 20_000)      # no fixed 512: 1,000 robots fit
    assert fmz_plugin.default_max_connections() == (20_000 - fmz_plugin.FILES_KEPT) // 2 == 9_984
    monkeypatch.setattr(fmz_plugin, "_open_file_limit", lambda: 10 ** 6)
    assert fmz_plugin.default_max_connections() == fmz_plugin.MAX_CONNECTIONS
    monkeypatch.setattr(fmz_plugin, "_open_file_limit", lambda: None)
    assert fmz_plugin.Settings().max_connections == fmz_plugin.MAX_CONNECTIONS


def test_the_listen_backlog_is_the_connection_limit_and_a_system_cap_is_said(okx_fake, monkeypatch):
    assert fmz_plugin.listen_backlog(100) == 1024 and fmz_plugin.listen_backlog(5000) == 5000
    monkeypatch.setattr(fmz_plugin, "backlog_cap", lambda: 128)
    with plugin_with(okx_fake, max_connections=3000) as (url, server):
        assert server.request_queue_size == 3000
        banner = fmz_plugin.banner(server, server.settings)
    assert ("the system caps the listen backlog at 128 (net.core.somaxconn), below the 3000 asked for "
            "--max-connections 3000") in banner
    monkeypatch.setattr(fmz_plugin, "backlog_cap", lambda: 4096)
    with plugin_with(okx_fake, max_connections=3000) as (url, server):
        assert "somaxconn" not in fmz_plugin.banner(server, server.settings)


def test_refused_connections_are_counted_on_the_status_page(okx_fake):
    with plugin_with(okx_fake, max_connections=1) as (url, server):
        robot = connected(url, 1)
        for _ in range(2):
            assert refused(url)[0] == 503
        report = fmz_plugin.status_report(server)
        assert report["connections"] == {"open": 1, "max": 1, "refused": {"max connections": 2, "out of files": 0,
                                                                          "not allowed": 0}}
        line = "Refused 2 connections: 2 over --max-connections 1 (open now: 1)"
        assert line in fmz_plugin.status_html(report) and line in fmz_plugin.refusals_line(report["connections"])
        robot[0].close()


def test_a_connection_refused_for_want_of_files_is_closed_once_its_client_hangs_up(okx_fake):
    """At the file limit the spare descriptor refuses a robot: the 503 is read whole, and the
    socket is closed as soon as the robot hangs up, not kept half-open (#23: robots behind it
    waited 17 s for their 503)."""
    with plugin_with(okx_fake) as (url, server), socket.create_server(("127.0.0.1", 0)) as listener:
        robot = socket.create_connection(listener.getsockname(), timeout=10)
        robot.sendall(b"POST /OKX HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        accepted, _ = listener.accept()

        def read_and_hang_up():
            answer.append(_read_all(robot))
            robot.close()

        answer = []
        reader = threading.Thread(target=read_and_hang_up)
        reader.start()
        server._refuse(accepted, "no file descriptor left", linger=False)
        reader.join()
        assert accepted.fileno() == -1 and server.refused == []
        assert answer[0].startswith(b"HTTP/1.1 503 ") and answer[0].endswith(b'{"error":"no file descriptor left"}')


LOW_FILE_LIMIT = 64


def plugin_process(fake, *flags):
    """`python fmz_plugin.py` with an open-file limit of LOW_FILE_LIMIT; yields (URL, process)."""
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_FILE_LIMIT, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), "--port", "0", "--no-throttle",
                                "--base-url", f"okx={fake.url}", *flags], cwd=ROOT, preexec_fn=low_limit,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = re.search(r"listening on (http://\S+)", process.stdout.readline()).group(1)
    return url, process


def stopped(process):
    process.terminate()
    _, log = process.communicate(timeout=10)
    return log


def robot_or_refusal(url):
    """A new keep-alive connection served GET /status: (connection, None), or (None, the JSON
    answer) when the plugin refused it with HTTP 503."""
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/status")
    response = conn.getresponse()
    body = response.read()
    if response.status == 503:
        conn.close()
        return None, json.loads(body)
    return conn, None


@pytest.mark.skipif(os.name != "posix", reason="open-file limits are POSIX")
def test_at_the_open_file_limit_new_robots_are_refused_not_left_hanging(okx_fake):
    url, process = plugin_process(okx_fake, "--max-connections", "1000")      # over what the limit allows
    robots_now, refusal = [], None
    try:
        while refusal is None and len(robots_now) < LOW_FILE_LIMIT:     # more than it has descriptors
            conn, refusal = robot_or_refusal(url)
            robots_now += [conn] if conn else []
        assert refusal == {"error": "the plugin has no file descriptor left for another connection"}
        assert robot_or_refusal(url)[1] == refusal      # and again: the loop refuses, it does not spin
        for conn in robots_now:
            conn.close()
        deadline = time.monotonic() + 10      # until the server has noticed the closed connections
        while (served := robot_or_refusal(url)[0]) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        client = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
        client.conn = served
        assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
    finally:
        log = stopped(process)
    assert log.count("no file descriptor left") == 1, log


@pytest.mark.skipif(os.name != "posix", reason="open-file limits are POSIX")
def test_a_low_open_file_limit_lowers_the_connection_cap(okx_fake):
    url, process = plugin_process(okx_fake)
    cap = (LOW_FILE_LIMIT - fmz_plugin.FILES_KEPT) // 2
    try:
        robots_now = connected(url, cap)
        status, answer, _ = refused(url)
        assert status == 503 and f"at most {cap} connections" in answer["error"]
        for conn in robots_now:
            conn.close()
    finally:
        stopped(process)


# ---------------------------------------------------------------------------- logs

def raw_request(url, data):
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return _read_all(sock)


def logged_lines(caplog):
    return [fmz_plugin.logging.Formatter("%(levelname)s %(message)s").format(r) for r in caplog.records]


@pytest.mark.repo_only
def test_no_field_of_a_log_line_can_forge_another_or_reach_the_terminal(okx_fake, caplog):
    caplog.set_level("DEBUG", logger="fmz_plugin")
    forged = "ticker\n2026-12-01 08:00:00,000 INFO OKX trade BTC_USDT 1ms ok"
    with client_of(okx_fake) as client:
        client.call(forged, symbol="BTC_USDT\u2028x")
        client.call("ticker", symbol="\x1b[31mBTC_USDT")
        body = json.dumps(client.envelope("ticker", {"symbol": "BTC_USDT"})).encode()
        raw_request(client.url, b"POST /OKX\x1b[2J\x9b1m HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body))
    lines = logged_lines(caplog)
    assert any("ticker\\x0a2026-12-01" in line for line in lines), lines
    assert any("/OKX\\x1b[2J\\x9b1m" in line or "OKX\\x1b[2J\\x9b1m" in line for line in lines), lines
    for line in lines:
        assert line.isprintable(), line


@pytest.mark.repo_only
def test_a_traceback_is_logged_indented_under_its_line(okx_fake, caplog, monkeypatch):
    def broken(api, symbol):
        raise RuntimeError("bug\n2026-12-01 INFO OKX trade ok")
    monkeypatch.setitem(EXCHANGES["okx"].METHODS, "ticker", broken)
    caplog.set_level("ERROR", logger="fmz_plugin")
    with client_of(okx_fake) as client:
        assert client.error("ticker", symbol="BTC_USDT") == "internal error in ticker: RuntimeError"
    [line] = logged_lines(caplog)
    first, *rest = line.split("\n")
    assert first == "ERROR internal error in ticker:" and rest
    assert all(part.startswith("    ") for part in rest), line


@pytest.mark.repo_only
def test_a_client_refused_by_allow_is_logged_once_a_minute(okx_fake, caplog):
    caplog.set_level("WARNING", logger="fmz_plugin")
    with plugin_with(okx_fake, allow=["10.9.9.9"]) as (url, _):
        for _ in range(5):
            assert refused(url)[:2] == (403, {"error": "client address 127.0.0.1 is not allowed (see --allow)"})
    assert [line for line in logged_lines(caplog) if "--allow" in line] == [
        "WARNING refused a request from 127.0.0.1 (not in --allow; logged once a minute per address)"]


def test_refusals_are_counted_per_kind_and_forgotten_after_a_while(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(fmz_plugin.time, "monotonic", lambda: clock[0])
    refusals = fmz_plugin.Refusals(60)
    assert refusals.first_in_a_while("10.0.0.1") and refusals.first_in_a_while("10.0.0.2")
    assert not refusals.first_in_a_while("10.0.0.1")
    clock[0] += 61
    assert refusals.first_in_a_while("10.0.0.1")
    for n in range(3000):                     # a scan from many addresses stays bounded
        refusals.first_in_a_while(f"addr{n}")
        clock[0] += 0.1
    assert len(refusals.logged) <= 1024


# ---------------------------------------------------------------------------- redaction

KEY, SECRET, PASSPHRASE = "ak-0123/456+789", 'sec"ret\\0123456789', "pw"
ENVELOPE = {"access_key": KEY, "secret_key": f"{SECRET},{PASSPHRASE}"}


@pytest.mark.parametrize("echo", [
    KEY, SECRET, json.dumps(SECRET), json.dumps(json.dumps(SECRET)), json.dumps(KEY).replace("/", "\\/"),
    urllib.parse.quote(KEY, safe=""), urllib.parse.quote(KEY, safe="").lower(), urllib.parse.quote_plus(SECRET),
    urllib.parse.urlencode({"apiKey": KEY, "s": SECRET}),
])
def test_keys_are_blanked_however_an_exchange_spells_them(echo):
    text = fmz_plugin.redact(f"Binance -2014: API-key format invalid: {echo}", ENVELOPE)
    for part in ("0123", "456", "789", "sec", "ret"):
        assert part not in text, text


def test_a_key_that_begins_another_leaves_no_tail():
    envelope = {"access_key": "abcdefgh", "secret_key": "abcdefgh12345678,p"}
    assert fmz_plugin.redact("key abcdefgh secret abcdefgh12345678", envelope) == "key *** secret ***"


def test_short_secrets_are_blanked_where_they_stand_alone():
    envelope = {"access_key": "k1", "secret_key": "s,pw"}
    assert fmz_plugin.redact('passphrase "pw" is wrong for k1 (s); pwned k1x', envelope) == \
        'passphrase "***" is wrong for *** (***); pwned k1x'


@pytest.mark.repo_only
def test_an_exchange_echoing_the_signed_request_gets_it_blanked(fake, monkeypatch):
    """Whatever an exchange's error echoes of the request (its signature, the keys, escaped or
    URL-encoded), the answer and the log hold none of it."""
    module = EXCHANGES[fake.NAME.lower()]
    secrets = [fake.ACCESS_KEY] + [part for part in fake.SECRET_KEY.split(",") if len(part) >= 4]

    def echoing(status, reply):
        signature = fake.signatures[-1]
        echoed = [signature, urllib.parse.quote(signature, safe=""), json.dumps(signature)] + \
                 [form for secret in secrets for form in (json.dumps(secret), urllib.parse.quote(secret, safe=""))]
        raise _kit.PluginError(f"{fake.NAME} -1: echo of your request: {' '.join(echoed)}", code="-1")
    monkeypatch.setattr(module, "check", echoing)
    with client_of(fake) as client:
        error = client.error("accounts")
    assert error.startswith(f"{fake.NAME} -1: echo of your request: ***"), error
    for secret in secrets + fake.signatures:
        assert secret not in error and urllib.parse.quote(secret, safe="") not in error


# ---------------------------------------------------------------------------- IPv6

def ipv6_works():
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def ipv6_client(url, fake):
    """A PluginClient for http://[::1]:PORT."""
    port = int(url.rsplit(":", 1)[1])
    client = PluginClient("http://127.0.0.1:1", fake.NAME, fake.ACCESS_KEY, fake.SECRET_KEY)
    client.conn = http.client.HTTPConnection("::1", port, timeout=10)
    return client


@pytest.mark.skipif(not ipv6_works(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("address", ["::1", "::"])
def test_the_plugin_listens_on_ipv6(okx_fake, address):
    settings = fmz_plugin.Settings({"okx": okx_fake.url}, 3.0, throttle=False)
    server = fmz_plugin.Server((address, 0), settings)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        url = fmz_plugin.server_url(server)
        assert url == f"http://[{address}]:{server.server_address[1]}"
        if address == "::1":
            assert f"{url}/OKX" in fmz_plugin.banner(server, settings)
        else:                                 # every address: the banner names real ones, never [::]
            text = fmz_plugin.banner(server, settings)
            assert "[::]" not in text and f"http://127.0.0.1:{server.server_address[1]}/" in text
        assert ipv6_client(url, okx_fake).data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
        if address == "::":                   # both stacks: IPv4 robots are served too
            client = PluginClient(f"http://127.0.0.1:{server.server_address[1]}", "OKX",
                                  okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
            assert client.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not ipv6_works(), reason="no IPv6 loopback here")
def test_allow_matches_ipv6_clients(okx_fake):
    for allow, served in ((["::1"], True), (["fd00::/8"], False), (["127.0.0.1"], False)):
        server = fmz_plugin.Server(("::1", 0), fmz_plugin.Settings({"okx": okx_fake.url}, 3.0, throttle=False,
                                                                   allow=allow))
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        try:
            answer = ipv6_client(fmz_plugin.server_url(server), okx_fake).post(
                json.dumps({"access_key": "k", "secret_key": "s,p", "method": "ticker",
                            "params": {"symbol": "BTC_USDT"}}).encode()) if served else None
            if served:
                assert answer["data"]["symbol"] == "BTC_USDT"
            else:
                conn = http.client.HTTPConnection("::1", server.server_address[1], timeout=10)
                conn.request("POST", "/OKX", body=b"{}")
                response = conn.getresponse()
                assert response.status == 403 and b"client address ::1 is not allowed" in response.read()
                conn.close()
        finally:
            server.shutdown()
            server.server_close()


def test_address_flag_takes_ipv6():
    assert fmz_plugin.parse_args(["--address", "::1"]).address == "::1"
