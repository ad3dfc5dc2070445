#!/usr/bin/env python3
"""Benchmark: this plugin beside a bare http.server and the FMZ guide's reference program.

    python3 benchmarks/bench.py              # OKX; about a minute and a half; prints Markdown tables
    python3 benchmarks/bench.py --exchange all        # OKX, Binance, Bybit, BingX, Bitvavo, BloFin, each through its fake
    python3 benchmarks/bench.py --seconds 1  # quicker, noisier
    python3 benchmarks/bench.py --log-level warning   # the plugin without its line per request
    python3 benchmarks/bench.py --limits --exchange all   # only the throttle-on rows, every exchange
    python3 benchmarks/bench.py --guard      # only the risk guard's cost per order (a second)

Everything runs on this machine: the chosen exchanges' fakes (tests/fakes/), each in a process of
its own, each server under test in a process of its own, and the clients (threads, one keep-alive
connection each) in this process. Measured for 1 and 8 concurrent clients, with 0 and 50 ms of
latency added by the fake exchange to every answer:

  bare       a ThreadingMixIn http.server answering a constant JSON: the ceiling of this stack
  plugin     fmz_plugin.py, one process per chosen exchange, pointed at that exchange's fake with
             --base-url NAME=URL: `ticker` through the fake, and a request refused before any
             exchange call (an invalid symbol), i.e. the plugin's own overhead
  reference  the FMZ guide's Python example (the code at the end of the guide's text), extracted
             at run time into a temp dir with its hard-coded https://www.okx.com replaced by the
             fake's URL. The guide is not part of this repository: give its text with --guide
             PATH (found without it at ../shared/seeds/000_2cf53884887e97c0.txt, beside the
             checkout); without it these rows are skipped, with one line saying so. It speaks
             OKX only, so it is measured only when OKX is among the chosen exchanges.
  exchange   the fake exchange's ticker asked directly, for scale

Then, with the throttle on (the plugin's default, the exchanges' real documented limits), per
chosen exchange: 8 robots polling one ticker for 3 s at 50 ms exchange latency (answers/s,
errors, and the most ticker calls the fake saw arrive in any window of the exchange's limit),
and one grid robot placing 105 limit orders in a loop (time, orders placed, refused, and the
most orders the fake saw arrive in any window of the order limit).

Last, the risk guard's own cost per order when no rule needs an exchange call (a limit order
checked against symbols, max_order_amount, max_order_value and max_orders_per_minute, the rules
file's and the halt file's stat included), measured in this process: the guard's admission and
its bookkeeping after the answer, without the HTTP round trips (README "Risk guard").

Columns: requests/s, p50 and p99 latency seen by the client, upstream (exchange) connections
opened per 100 requests; per server: cold start (process start to first answer) and peak RSS.
This is a benchmark, not a test: numbers depend on the machine, nothing is asserted.
"""
import argparse
import http.client
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT.parent / "shared" / "seeds" / "000_2cf53884887e97c0.txt"    # where --guide is looked for
CLIENTS = (1, 8)
LATENCIES_MS = (0, 50)
WARMUP = 3                               # requests per client before measuring
ROUNDS = 3                               # rounds per row, interleaved across servers; the best is kept

sys.path.insert(0, str(ROOT))
from exchanges import EXCHANGES as MODULES    # noqa: E402  (the documented limits, for the report)
from exchanges._kit import Api, parse_symbol   # noqa: E402
from exchanges._throttle import limits_of   # noqa: E402
from exchanges._risk import RiskGuard        # noqa: E402
from tests.fakes.binance import FakeBinance   # noqa: E402  (the fakes live in the repository's tests)
from tests.fakes.bingx import FakeBingX       # noqa: E402
from tests.fakes.bitvavo import FakeBitvavo   # noqa: E402
from tests.fakes.blofin import FakeBloFin     # noqa: E402
from tests.fakes.bybit import FakeBybit       # noqa: E402
from tests.fakes.okx import FakeOKX           # noqa: E402

# --exchange value -> (the plugin's path and --base-url name, its fake, the fake's own ticker of the
# symbol the rows ask: the fake's SYMBOL, a spot pair, or BloFin's perpetual)
EXCHANGES = {
    "okx": ("OKX", FakeOKX, "/api/v5/market/ticker?instId=BTC-USDT"),
    "binance": ("Binance", FakeBinance, "/api/v3/ticker/24hr?symbol=BTCUSDT"),
    "bybit": ("Bybit", FakeBybit, "/v5/market/tickers?category=spot&symbol=BTCUSDT"),
    "bingx": ("BingX", FakeBingX, "/openApi/spot/v1/ticker/24hr?symbol=BTC-USDT"),
    "bitvavo": ("Bitvavo", FakeBitvavo, "/v2/ticker/24h?market=BTC-USDT"),
    "blofin": ("BloFin", FakeBloFin, "/api/v1/market/tickers?instId=BTC-USDT"),
}


# ---------------------------------------------------------------------------- the processes

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A server under test: started, timed to its first answer, measured, stopped."""

    def __init__(self, argv, port, path, probe, cwd=ROOT):
        self.port = port
        started = time.perf_counter()
        self.popen = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self.cold_start_ms = wait_for_answer(port, path, probe, self.popen) - started
        self.cold_start_ms *= 1000

    def peak_rss_mb(self):
        """VmHWM: the most resident memory the process ever had (Linux)."""
        try:
            status = Path(f"/proc/{self.popen.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        except (OSError, AttributeError):
            return float("nan")

    def stop(self):
        self.popen.terminate()
        self.popen.wait(timeout=10)


def wait_for_answer(port, path, body, popen):
    """Poll until the server answers one request; returns the time of that answer."""
    deadline = time.perf_counter() + 20
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            raise SystemExit(f"a server exited at start (code {popen.returncode})")
        try:
            post(http.client.HTTPConnection("127.0.0.1", port, timeout=5), path, body)
            return time.perf_counter()
        except OSError:
            time.sleep(0.002)
    raise SystemExit(f"no answer on port {port} within 20 s")


class FakeExchangeProcess:
    """One exchange's fake (tests/fakes/) in a process of its own, steered over its stdin:
    `latency S`, `connections`, `forget` (the arrivals so far), `most SECONDS VERB PATH` (the most
    requests that arrived in any SECONDS), `calls VERB PATH`."""

    def __init__(self, exchange):
        self.popen = subprocess.Popen([sys.executable, __file__, "--serve-fake", exchange], cwd=ROOT, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.url = self.popen.stdout.readline().strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def ask(self, line):
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()
        return self.popen.stdout.readline().strip()

    def set_latency(self, ms):
        self.ask(f"latency {ms / 1000}")

    def connections(self):
        return int(self.ask("connections"))

    def most(self, seconds, verb, path):
        return int(self.ask(f"most {seconds} {verb} {path}"))

    def orders(self):
        return int(self.ask("orders"))

    def calls(self, verb, path):
        return int(self.ask(f"calls {verb} {path}"))

    def stop(self):
        self.popen.stdin.close()
        self.popen.wait(timeout=10)


def serve_fake(exchange):
    """The --serve-fake side of FakeExchangeProcess."""
    fake = EXCHANGES[exchange][1]().start()
    print(fake.url, flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "latency":
            fake.latency = float(value)
            print("ok", flush=True)
        elif command == "connections":
            print(fake.connections, flush=True)
        elif command == "forget":
            fake.forget()
            print("ok", flush=True)
        elif command == "most":
            seconds, verb, path = value.split()
            print(fake.most_in_window(float(seconds), verb, path), flush=True)
        elif command == "orders":
            print(len(fake.engine.orders), flush=True)
        elif command == "calls":
            verb, path = value.split()
            print(sum(1 for a in list(fake.arrivals) if (a.method, a.path) == (verb, path)), flush=True)
    fake.stop()


def serve_bare(port):
    """--serve-bare: the same stack as the plugin (ThreadingMixIn, HTTP/1.1 keep-alive, no Nagle,
    one write per answer), reading the body and answering one constant JSON."""
    import http.server
    import socketserver
    answer = json.dumps({"data": {"symbol": "BTC_USDT", "buy": 50000, "sell": 50000.1, "last": 50000}}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = -1

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    Server(("127.0.0.1", port), Handler).serve_forever()


def extract_reference(guide, fake_url, directory):
    """The guide's Python example: the text from its last `import http.server` to the end,
    with the OKX host replaced by the fake's (in this temporary copy only)."""
    text = Path(guide).read_text(encoding="utf-8")
    if "import http.server" not in text:
        raise SystemExit(f"{guide} holds no Python example (no `import http.server`): is it the FMZ guide's text?")
    code = text[text.rindex("import http.server"):]
    if "https://www.okx.com" not in code:
        raise SystemExit("the reference program no longer names https://www.okx.com; update the benchmark")
    path = Path(directory) / "reference_plugin.py"
    path.write_text(code.replace("https://www.okx.com", fake_url), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- the clients

def post(conn, path, body):
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.will_close:
        conn.close()
    return data


def envelope(fake, symbol):
    """A `ticker` request as FMZ's docker sends it, with the keys `fake` accepts."""
    return json.dumps({"access_key": fake.ACCESS_KEY, "secret_key": fake.SECRET_KEY, "method": "ticker",
                       "params": {"symbol": symbol}, "nonce": time.time_ns()}).encode()


TICKER_PATH, REFUSED_PATH = "ticker", "refused (no exchange call)"
CONSTANT_PATH, DIRECT_PATH = "constant JSON", "ticker (the fake, direct)"


class Target:
    """Something the clients can ask: a server under test (speaking `exchange`, None for the bare
    server), or the fake exchange itself (verb GET). `fake` is the FakeExchangeProcess it calls."""

    def __init__(self, name, exchange, port, fake=None, verb="POST"):
        self.name, self.exchange, self.port, self.fake, self.verb = name, exchange, port, fake, verb
        self.process = None              # the Process, for a server under test
        self.upstream = 0                # exchange connections opened while it was measured
        label, fake_class, direct = EXCHANGES[exchange or "okx"]     # the bare server answers any request
        self.label = label if exchange else "-"
        self.path = direct if verb == "GET" else "/" + label
        self.bodies = {TICKER_PATH: envelope(fake_class, fake_class.SYMBOL),
                       REFUSED_PATH: envelope(fake_class, "BTCUSDT")}   # invalid: refused before any exchange call

    def upstream_connections(self):
        return self.fake.connections() if self.fake else 0


def load(target, clients, seconds, request):
    """`clients` threads, each on its own keep-alive connection (reopened when the server closes
    it), sending `request` (TICKER_PATH or REFUSED_PATH) for `seconds` after a short warm-up.
    Returns (latencies in seconds, errors, seconds actually taken, exchange connections opened
    after the warm-up)."""
    body, count_upstream = target.bodies[request], target.upstream_connections
    latencies, errors, ends, lock = [], [], [], threading.Lock()
    warm = threading.Barrier(clients + 1, timeout=120)
    go = threading.Barrier(clients + 1, timeout=120)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        mine, failed = [], 0

        def once():
            if target.verb == "GET":
                conn.request("GET", target.path)
                return conn.getresponse().read()
            return post(conn, target.path, body)

        for _ in range(WARMUP):
            once()
        warm.wait()
        go.wait()
        deadline = time.perf_counter() + seconds
        while True:
            began = time.perf_counter()
            if began >= deadline:
                break
            answer = once()
            mine.append(time.perf_counter() - began)
            failed += b'"error"' in answer and request == TICKER_PATH
        with lock:
            ends.append(time.perf_counter())
            latencies.extend(mine)
            errors.append(failed)
        conn.close()

    opened_before = count_upstream()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    warm.wait()
    measured_before = count_upstream()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    opened_after = count_upstream()
    target.upstream += opened_after - opened_before
    return latencies, sum(errors), max(ends) - started, opened_after - measured_before


def percentile(sorted_values, fraction):
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class Row:
    def __init__(self, server, exchange, path, clients, latency_ms, latencies, errors, elapsed, upstream):
        latencies.sort()
        self.server, self.exchange, self.path = server, exchange, path
        self.clients, self.latency_ms = clients, latency_ms
        self.count, self.errors, self.upstream = len(latencies), errors, upstream
        self.rps = len(latencies) / elapsed         # elapsed: until the last answer, not the nominal window
        self.p50 = percentile(latencies, 0.50) * 1000
        self.p99 = percentile(latencies, 0.99) * 1000

    def cells(self):
        upstream = "-" if self.upstream is None else f"{100 * self.upstream / self.count:.2f}"
        latency = "-" if self.latency_ms is None else f"{self.latency_ms} ms"
        errors = f" ({self.errors} errors)" if self.errors else ""
        return [self.server, self.exchange, self.path, str(self.clients), latency, f"{self.rps:,.0f}{errors}",
                f"{self.p50:.2f}", f"{self.p99:.2f}", upstream]


# ---------------------------------------------------------------------------- the run

def configurations(bare, plugins, reference, directs):
    """(request name, exchange latency, clients, targets, the fake whose latency is set): targets
    compared side by side. `plugins` and `directs` hold one target per chosen exchange, in order;
    `reference` (OKX only) is None when OKX was not chosen."""
    speaks_okx = [reference] if reference else []
    for clients in CLIENTS:
        yield REFUSED_PATH, None, clients, [bare, *plugins, *speaks_okx], None
    for plugin, direct in zip(plugins, directs):
        beside = speaks_okx if plugin.exchange == "okx" else []
        for latency_ms in LATENCIES_MS:
            for clients in CLIENTS:
                yield (TICKER_PATH, latency_ms, clients, [plugin, *beside] + ([direct] if not latency_ms else []),
                       plugin.fake)


def measure(config, seconds, rounds):
    """Each target of one configuration in turn, `rounds` times; the best round of each is kept,
    so a burst of outside load on the machine spoils one round, not the comparison."""
    request, latency_ms, clients, targets, fake = config
    if fake:
        fake.set_latency(latency_ms)
    best = {}
    for _ in range(rounds):
        for target in targets:
            latencies, errors, elapsed, upstream = load(target, clients, seconds / rounds, request)
            name = {"bare": CONSTANT_PATH, "exchange": DIRECT_PATH}.get(target.name, request)
            through_us = request == TICKER_PATH and target.verb == "POST"     # a server that asks the exchange
            row = Row(target.name, target.label, name, clients, latency_ms, latencies, errors, elapsed,
                      upstream if through_us else None)
            if target not in best or row.rps > best[target].rps:
                best[target] = row
    for row in best.values():
        print(f"  {row.server:<10} {row.exchange:<8} {row.path:<27} {clients} clients {latency_ms or 0:>2} ms: "
              f"{row.rps:,.0f} req/s", file=sys.stderr, flush=True)
    return list(best.values())


def run(exchanges, seconds, rounds, log_level, limits_only=False, guide=None):
    """Measure the plugin for each of `exchanges` (keys of EXCHANGES), beside the bare server
    and, when OKX is among them and the `guide` is given, the guide's reference program; then
    the throttle-on rows (alone with `limits_only`) and the stream rows."""
    fakes = {exchange: FakeExchangeProcess(exchange) for exchange in exchanges}
    python, servers = sys.executable, []
    with tempfile.TemporaryDirectory() as directory:
        try:
            def start(name, exchange, argv, cwd=ROOT):
                port = free_port()
                target = Target(name, exchange, port, fakes.get(exchange))
                target.process = Process(argv + ["--port", str(port)], port, target.path,
                                         target.bodies[REFUSED_PATH], cwd)
                servers.append(target)
                return target

            if limits_only:
                return [], [], limit_rows(exchanges, fakes, start, log_level), []
            bare = start("bare", None, [python, __file__, "--serve-bare"])
            plugins = [start("plugin", exchange, [python, str(ROOT / "fmz_plugin.py"), "--no-throttle",
                                                  "--log-level", log_level,
                                                  "--base-url", f"{EXCHANGES[exchange][0]}={fakes[exchange].url}"])
                       for exchange in exchanges]
            reference = None
            if "okx" in fakes and guide is not None:
                code = extract_reference(guide, fakes["okx"].url, directory)
                reference = start("reference", "okx", [python, str(code), "--address", "127.0.0.1"], directory)
            directs = [Target("exchange", exchange, fakes[exchange].port, fakes[exchange], "GET")
                       for exchange in exchanges]
            rows = [row for config in configurations(bare, plugins, reference, directs)
                    for row in measure(config, seconds, rounds)]
            summary = [(t.name, t.label, t.process.cold_start_ms, t.process.peak_rss_mb(), t.upstream)
                       for t in servers]
            throttled = limit_rows(exchanges, fakes, start, log_level)
            streamed = stream_rows(exchanges, fakes, start, log_level, seconds)
        finally:
            for target in servers:
                target.process.stop()
            for fake in fakes.values():
                fake.stop()
    return rows, summary, throttled, streamed


# ---------------------------------------------------------------------------- throttle on: the real limits

POLL_ROBOTS, POLL_SECONDS, POLL_LATENCY_MS = 8, 3.0, 50
BURST_ORDERS = 105
ONE_INSTRUMENT = {"symbol": "x", "market": "x"}     # a call's params naming one instrument (a weight may depend on it)


def documented(exchange, endpoint):
    """The tightest limit the exchange module documents for `endpoint` ("VERB /path"): the
    fewest calls per second it allows (a weight divides the budget)."""
    calls_per_second = lambda limit: limit.requests / limit.seconds / (limit.units(ONE_INSTRUMENT) or 1)
    return min(limits_of(MODULES[exchange].RATE_LIMITS.get(endpoint)), key=calls_per_second)


def trade_envelope(fake_class, n):
    """Order n of a grid: a small limit buy of the fake's SYMBOL (0.01 BTC, or a BloFin contract),
    one price step lower each time."""
    return json.dumps({"access_key": fake_class.ACCESS_KEY, "secret_key": fake_class.SECRET_KEY,
                       "method": "trade", "nonce": time.time_ns(),
                       "params": {"symbol": fake_class.SYMBOL, "type": "buy", "price": str(40000 - n),
                                  "amount": fake_class.AMOUNT}}).encode()


class LimitRow:
    def __init__(self, exchange, what, figures, limit):
        self.exchange, self.what, self.figures, self.limit = exchange, what, figures, limit


def poll_one_ticker(target, fake, exchange):
    """8 robots polling BTC_USDT for 3 s, 50 ms exchange latency: what they got, and the most
    ticker calls the fake saw arrive in any window of the documented limit."""
    label, fake_class, direct = EXCHANGES[exchange]
    path = direct.split("?")[0]
    limit = documented(exchange, f"GET {path}")
    fake.set_latency(POLL_LATENCY_MS)
    fake.ask("forget")
    latencies, errors, elapsed, _ = load(target, POLL_ROBOTS, POLL_SECONDS, TICKER_PATH)
    calls = fake.calls("GET", path)
    most = fake.most(limit.seconds, "GET", path) * limit.units(ONE_INSTRUMENT)   # in the limit's units
    fake.set_latency(0)
    answers_per_s = len(latencies) / elapsed
    bound = limit.requests / limit.seconds / (limit.units(ONE_INSTRUMENT) or 1)   # answers/s at one call each
    row = LimitRow(label, "8 robots poll one ticker, 50 ms latency, 3 s", {
        "answers/s": f"{answers_per_s:,.0f}", "errors": str(errors),
        "exchange calls": f"{calls} ({calls / elapsed:.1f}/s)",
        "answers per call": f"{len(latencies) / max(calls, 1):.1f}",
        "most in one window": f"{most}", "vs the limit-bound figure": f"{answers_per_s / bound:.1f}x",
    }, limit)
    row.binds = bound < 1000 / POLL_LATENCY_MS      # the limit, not the latency, bounds one robot
    return row


def order_burst(target, fake, exchange):
    """One grid robot placing 105 limit orders in a loop, 0 ms exchange latency."""
    label, fake_class, _ = EXCHANGES[exchange]
    path = fake_class.ORDER_PATH
    limit = documented(exchange, f"POST {path}")
    fake.ask("forget")
    orders_before = fake.orders()
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
    started, refused = time.perf_counter(), 0
    for n in range(BURST_ORDERS):
        answer = json.loads(post(conn, target.path, trade_envelope(fake_class, n)))
        refused += "error" in answer
    elapsed = time.perf_counter() - started
    conn.close()
    placed = fake.orders() - orders_before
    most = fake.most(limit.seconds, "POST", path)
    return LimitRow(label, f"{BURST_ORDERS} limit orders in a loop, 0 ms latency", {
        "time s": f"{elapsed:.2f}", "placed": str(placed), "refused": str(refused),
        "most in one window": str(most),
    }, limit)


def limit_rows(exchanges, fakes, start, log_level):
    """The throttle-on rows: a plugin per exchange started with its default throttle."""
    rows = []
    for exchange in exchanges:
        plugin = start("plugin, throttle on", exchange,
                       [sys.executable, str(ROOT / "fmz_plugin.py"), "--log-level", log_level,
                        "--base-url", f"{EXCHANGES[exchange][0]}={fakes[exchange].url}"])
        rows.append(poll_one_ticker(plugin, fakes[exchange], exchange))
        rows.append(order_burst(plugin, fakes[exchange], exchange))
        for row in rows[-2:]:
            print(f"  throttle on {row.exchange:<8} {row.what}: {row.figures}", file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------- streams: market data from the WebSocket

STREAM_ROBOTS = (8, 64)
STREAM_WARM_SECONDS = 5.0                # at most, until the stream answers (no more REST ticker calls)


def stream_rows(exchanges, fakes, start, log_level, seconds):
    """Robots polling one ticker through a plugin with default flags (throttle on), its stream
    on the fake's WebSocket, and the same with --no-stream: answers/s, the robots' p50/p99, the
    plugin's own p50/p99 (its status), and REST ticker calls per minute in the steady state."""
    rows = []
    for exchange in [e for e in exchanges if MODULES[e].STREAM_URLS]:
        label, _, direct = EXCHANGES[exchange]
        fake, path = fakes[exchange], direct.split("?")[0]
        fake.set_latency(POLL_LATENCY_MS)
        for robots in STREAM_ROBOTS:
            for flags in ([], ["--no-stream"]):
                plugin = start("plugin" + (", --no-stream" if flags else ", stream"), exchange,
                               [sys.executable, str(ROOT / "fmz_plugin.py"), "--log-level", log_level, *flags,
                                "--base-url", f"{label}={fake.url}",
                                "--base-url", f"{label}.ws={fake.url.replace('http://', 'ws://')}"])
                warm_until_streamed(plugin, fake, path)
                before = fake.calls("GET", path)
                latencies, errors, elapsed, _ = load(plugin, robots, seconds, TICKER_PATH)
                calls = fake.calls("GET", path) - before
                own = plugin_latency(plugin.port, "ticker")
                plugin.process.stop()
                latencies.sort()
                rows.append([label, str(robots), "off (--no-stream)" if flags else "on",
                             f"{len(latencies) / elapsed:,.0f}", f"{percentile(latencies, 0.5) * 1000:.2f}",
                             f"{percentile(latencies, 0.99) * 1000:.2f}", own, str(errors),
                             f"{calls * 60 / elapsed:,.0f}"])
                print(f"  stream {' | '.join(rows[-1])}", file=sys.stderr, flush=True)
        fake.set_latency(0)
    return rows


def warm_until_streamed(plugin, fake, path):
    """Ask for the ticker until ten answers in a row needed no REST call (the stream answers),
    or STREAM_WARM_SECONDS passed (--no-stream never gets there)."""
    conn = http.client.HTTPConnection("127.0.0.1", plugin.port, timeout=30)
    deadline, quiet = time.perf_counter() + STREAM_WARM_SECONDS, 0
    while quiet < 10 and time.perf_counter() < deadline:
        before = fake.calls("GET", path)
        post(conn, plugin.path, plugin.bodies[TICKER_PATH])
        quiet = quiet + 1 if fake.calls("GET", path) == before else 0
    conn.close()


def plugin_latency(port, method):
    """The plugin's own p50 / p99 of `method` (ms), as its status reports them."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/status?format=json")
    report = json.loads(conn.getresponse().read())
    conn.close()
    row = next((r for r in report["methods"] if r["method"] == method), None)
    return f"{row['p50_ms']} / {row['p99_ms']}" if row else "-"


def report_streams(rows):
    if not rows:
        return
    print("\nStreams: robots polling one ticker over keep-alive connections, default flags (throttle on), "
          f"{POLL_LATENCY_MS} ms exchange latency:\n")
    print(table(["exchange", "robots", "stream", "answers/s", "p50 ms", "p99 ms", "plugin p50 / p99 ms",
                 "errors", "REST ticker calls/min"], rows))


# ---------------------------------------------------------------------------- the report

def table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])


def find(rows, server, exchange, path, clients, latency_ms):
    wanted = (server, exchange, path, clients, latency_ms)
    return next(r for r in rows if (r.server, r.exchange, r.path, r.clients, r.latency_ms) == wanted)


def verdicts(rows, servers, exchange):
    """The issue's targets for the plugin speaking `exchange` (a label: OKX, Binance, Bybit),
    each with the figure measured and whether it was met. The comparison with the reference
    program is made for OKX only: the reference speaks nothing else."""
    def plugin(path, clients, latency_ms=None):
        return find(rows, "plugin", exchange, path, clients, latency_ms)

    def bare(clients):
        return find(rows, "bare", "-", CONSTANT_PATH, clients, None)

    overhead = plugin(REFUSED_PATH, 1).p50 - bare(1).p50
    through = plugin(TICKER_PATH, 1, 0).p50 - find(rows, "exchange", exchange, DIRECT_PATH, 1, 0).p50
    share = [plugin(REFUSED_PATH, n).rps / bare(n).rps for n in CLIENTS]
    plugin_upstream = next(s[4] for s in servers if s[:2] == ("plugin", exchange))
    yes = lambda ok: "met" if ok else "MISSED"
    lines = [
        ["plugin overhead, p50 (refused request minus bare server, 1 client)", "<= 0.3 ms",
         f"{overhead:.3f} ms", yes(overhead <= 0.3)],
        ["  for reference: plugin ticker minus the exchange asked directly, 1 client, 0 ms", "-",
         f"{through:.3f} ms", "-"],
        ["throughput on the overhead path vs the bare server (1 / 8 clients)", ">= 80 %",
         " / ".join(f"{100 * s:.0f} %" for s in share), yes(min(share) >= 0.8)],
    ]
    if any(row.server == "reference" for row in rows) and exchange == "OKX":
        speedup = plugin(TICKER_PATH, 8, 50).rps / find(rows, "reference", "OKX", TICKER_PATH, 8, 50).rps
        lines.append(["ticker throughput vs the reference, 8 clients, 50 ms latency", ">= 5x",
                      f"{speedup:.1f}x", yes(speedup >= 5)])
    lines.append(["upstream connections over the plugin's whole run (8 client threads at most)", "<= 8",
                  str(plugin_upstream), yes(plugin_upstream <= max(CLIENTS))])
    return lines


def report(rows, servers, exchanges, seconds, rounds, log_level):
    labels = [EXCHANGES[exchange][0] for exchange in exchanges]
    print(f"\nfmz-plugin benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}; each row the best of {rounds} rounds of {seconds / rounds:g} s, "
          f"servers interleaved; plugin at --log-level {log_level}; exchanges: {', '.join(labels)}")
    if any(server[0] == "reference" for server in servers):
        print("The guide's reference program speaks OKX only: its rows are OKX's.\n")
    else:
        print("The guide's reference program was not measured (it needs --guide and okx among --exchange).\n")
    print(table(["server", "exchange", "request", "clients", "exchange latency", "req/s", "p50 ms", "p99 ms",
                 "upstream conns / 100 req"], [row.cells() for row in rows]))
    print()
    print(table(["server", "exchange", "cold start ms", "peak RSS MB", "upstream connections, whole run"],
                [[name, label, f"{cold:.0f}", f"{rss:.1f}", str(upstream) if name != "bare" else "-"]
                 for name, label, cold, rss, upstream in servers]))
    if len(labels) > 1:
        print("\nticker through the plugin, by exchange (0 ms exchange latency):\n")
        print(table(["exchange"] + [f"{n} client{'s' * (n > 1)}: req/s, p50 ms" for n in CLIENTS],
                    [[label] + [f"{r.rps:,.0f}, {r.p50:.2f}" for r in
                                (find(rows, "plugin", label, TICKER_PATH, n, 0) for n in CLIENTS)]
                     for label in labels]))
    for label in labels:
        print(f"\n{label}:\n")
        print(table(["target", "wanted", "measured", ""], verdicts(rows, servers, label)))


def report_limits(rows):
    """The throttle-on rows and their targets: nothing refused, the exchange never over its
    limit, and polling robots answered at least 8x what the limit allows one robot per call."""
    print("\nThrottle on (the exchanges' documented limits, as the plugin runs by default):\n")
    for kind in ("poll", "burst"):
        chosen = [r for r in rows if ("poll" in r.what) == (kind == "poll")]
        if not chosen:
            continue
        names = list(chosen[0].figures)
        print(table(["exchange", "run", *names, "limit"],
                    [[r.exchange, r.what, *r.figures.values(), r.limit.describe()] for r in chosen]))
        print()
    yes = lambda ok: "met" if ok else "MISSED"
    lines = []
    for r in rows:
        over = int(r.figures["most in one window"]) > r.limit.requests
        if "poll" in r.what:
            ratio = float(r.figures["vs the limit-bound figure"].rstrip("x"))
            wanted = (">= 8x the limit-bound answers/s" if r.binds
                      else "(the limit does not bind at 50 ms: answers per call instead)")
            shown = f"{ratio:.1f}x" if r.binds else f"{r.figures['answers per call']} answers per call"
            good = ratio >= 8 if r.binds else float(r.figures["answers per call"]) >= 7
            lines.append([r.exchange, f"polling: 0 errors, never over the limit, {wanted}",
                          f"{r.figures['errors']} errors, most {r.figures['most in one window']} of "
                          f"{r.limit.requests}, {shown}", yes(r.figures["errors"] == "0" and not over and good)])
        else:
            lines.append([r.exchange, f"burst: all {BURST_ORDERS} placed, 0 refused, never over the limit",
                          f"{r.figures['placed']} placed, {r.figures['refused']} refused, most "
                          f"{r.figures['most in one window']} of {r.limit.requests}",
                          yes(r.figures["refused"] == "0" and not over)])
    print(table(["exchange", "target", "measured", ""], lines))


# ---------------------------------------------------------------------------- the risk guard's cost

GUARD_ORDERS = 20000                     # orders admitted per measurement
GUARD_TARGET_MS = 0.1                    # what the guard may cost an order that needs no exchange call


def guard_cost():
    """[(what, microseconds per order)]: the guard admitting a limit order and noting its answer,
    best of ROUNDS runs of GUARD_ORDERS, with rules that need no exchange call and with none."""
    names = {key: module.NAME for key, module in MODULES.items()}
    order = {"symbol": parse_symbol("BTC_USDT"), "order_type": "buy", "price": Decimal("40000"),
             "amount": Decimal("0.01")}
    api = Api(MODULES["okx"], "bench-key-9f3a", "secret,pass")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "risk.json")
        with open(path, "w") as file:
            json.dump({"OKX": {"symbols": ["BTC_USDT", "ETH_USDT"], "max_order_amount": 10, "max_order_value": 50000,
                               "max_orders_per_minute": 10 ** 9}}, file)
        guards = [("symbols, max_order_amount, max_order_value, max_orders_per_minute (risk.json)",
                   RiskGuard(names, path=path)),
                  ("no rules: the kill switch alone", RiskGuard(names, halt_file=os.path.join(folder, "halt")))]
        rows = []
        for what, guard in guards:
            best = float("inf")
            for _ in range(ROUNDS):
                started = time.perf_counter()
                for _ in range(GUARD_ORDERS):
                    with guard.admit(api, "trade", order):
                        pass
                best = min(best, (time.perf_counter() - started) / GUARD_ORDERS)
            rows.append((what, best * 1e6))
    return rows


def report_guard(rows):
    print(f"\nRisk guard, per order that needs no exchange call (best of {ROUNDS} x {GUARD_ORDERS}; "
          f"target under {GUARD_TARGET_MS:g} ms):\n")
    print(table(["rules", "us per order", ""],
                [[what, f"{us:.1f}", "yes" if us < GUARD_TARGET_MS * 1000 else "NO"] for what, us in rows]))


def main(argv):
    parser = argparse.ArgumentParser(description="Benchmark the plugin against a bare server and the guide's example.")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per row and server, split into rounds (default 3)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per row; the best is kept (default {ROUNDS})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="the plugin's --log-level (default info, the plugin's own default: a line per request)")
    parser.add_argument("--exchange", default="okx", choices=[*EXCHANGES, "all"],
                        help="the exchange(s) whose fake the plugin is measured against (default okx); "
                             "the guide's reference program speaks OKX only")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s per row: a rough look in seconds")
    parser.add_argument("--limits", action="store_true",
                        help="only the throttle-on rows (the exchanges' real limits): polling robots, an order burst")
    parser.add_argument("--guard", action="store_true", help="only the risk guard's cost per order")
    parser.add_argument("--guide", metavar="PATH", type=Path, default=None,
                        help="the FMZ guide's text, whose Python example is the reference program (default: "
                             f"{GUIDE} when it exists; without it the reference rows are skipped)")
    parser.add_argument("--serve-fake", choices=list(EXCHANGES), help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)          # the bare server's
    args = parser.parse_args(argv)
    if args.serve_fake:
        return serve_fake(args.serve_fake)
    if args.serve_bare:
        return serve_bare(args.port)
    if args.guard:
        return report_guard(guard_cost())
    exchanges = list(EXCHANGES) if args.exchange == "all" else [args.exchange]
    guide = args.guide or (GUIDE if GUIDE.exists() else None)
    if args.guide is not None and not args.guide.is_file():
        raise SystemExit(f"--guide {args.guide}: no such file (give the FMZ guide's text, or leave --guide out)")
    if guide is None and "okx" in exchanges and not args.limits:
        print(f"Reference rows skipped: they run the FMZ guide's example, and the guide is not here "
              f"(give --guide PATH; looked for {GUIDE}).", flush=True)
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    rows, servers, throttled, streamed = run(exchanges, args.seconds, args.rounds, args.log_level, args.limits, guide)
    if not args.limits:
        report(rows, servers, exchanges, args.seconds, args.rounds, args.log_level)
    report_limits(throttled)
    report_streams(streamed)
    if not args.limits:
        report_guard(guard_cost())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
