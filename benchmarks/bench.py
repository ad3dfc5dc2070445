#!/usr/bin/env python3
"""Benchmark: this plugin beside a bare http.server, an earlier version of itself (--baseline)
and the FMZ guide's reference program, every server in a process of its own.

    python3 benchmarks/bench.py                      # OKX; about three minutes; prints Markdown tables
    python3 benchmarks/bench.py --baseline OLD.py    # and an earlier version, measured in the same run
    python3 benchmarks/bench.py --exchange all       # OKX, Binance, Bybit, BingX, Bitvavo, each through its fake
    python3 benchmarks/bench.py --limits --exchange all   # only the throttle-on rows, every exchange
    python3 benchmarks/bench.py --guard              # only the risk guard's cost per order (a second)
    python3 benchmarks/bench.py --sign               # only Coinbase's JWT signing cost per request

`--baseline PATH` names another plugin program (an older checkout's fmz_plugin.py, or a bundle
of it: `git stash; python3 fmz_plugin.py bundle -o /tmp/before.py; git stash pop`): every plugin
row is then measured for it too, the two taking turns, and a last table puts each figure before
and after side by side. Figures from two separate runs on a shared machine do not compare;
figures of one run do.

What runs where: the chosen exchanges' fakes (tests/fakes/), each in a process of its own, at 0 ms
latency unless a row says otherwise; the bare server (benchmarks/bare.py: http.server answering a
constant JSON, importing nothing of this repository); each plugin; and the robots, threads of
this process with a keep-alive connection each (reconnecting at once when a server closes it, as
a docker does). CPU per answer is the server process's own CPU time (user + system, from
/proc/PID/stat) over a round, divided by the answers it gave in that round: unlike a latency, it
hardly depends on what else the machine is running.

The rows:
  per answer    a real ticker through the plugin against a 0 ms exchange, 1 and 8 robots: the
                plugin's p50, p99 and CPU per answer as ratios to the bare server's in the same
                run, and what the plugin adds to asking the exchange directly. With 8 robots,
                identical public reads at once share one exchange call (shared reads): the
                column "exchange calls / answer" says how much. Throttle off (--no-throttle).
  depth 400     CPU per answer of a 400-level depth (1 robot): decoding, mapping, encoding.
  throttle      the plugin as it runs by default (throttle on, the exchanges' documented limits):
                8 robots polling one ticker for 10 s at 50 ms exchange latency (answers/s, p50,
                p99, exchange calls, the most the fake saw arrive in one window of the limit),
                and one grid robot placing 105 limit orders in a loop.
  pool          32 robots making signed calls (balances, not shared) for 5 s: exchange
                connections opened, per call (each would be a TLS handshake on a real exchange).
  many robots   64, 256 and 1,000 robots polling one ticker with every default (throttle on,
                --max-connections as the plugin sets it): answers/s, p50, p99 and HTTP 503 a second.
  streams       robots polling one ticker with default flags, the exchange's stream on the fake's
                WebSocket, and the same with --no-stream: answers/s, p50/p99, the plugin's own
                p50/p99, REST ticker calls a minute (exchanges that stream).
  start         process start to first answer, and peak memory, of the bare server, the plugin
                from this checkout and the plugin as one bundled file.
  guard         the risk guard's own cost per order that needs no exchange call, in this process.

Rounds: each row is measured `--rounds` times, the servers taking turns; the median round is kept.
This is a benchmark, not a test: numbers depend on the machine, nothing is asserted.
"""
import argparse
import http.client
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = Path(__file__).resolve().parent / "bare.py"
GUIDE = ROOT.parent / "shared" / "seeds" / "000_2cf53884887e97c0.txt"    # where --guide is looked for
CLIENTS = (1, 8)
WARMUP = 3                               # requests per robot before measuring
ROUNDS = 3                               # rounds per row, servers interleaved; the median is kept
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# The exchanges measured: the plugin's own registry (exchanges.EXCHANGES, for each one's NAME, the
# path and --base-url name) and the suite's fakes (tests/conftest.py FAKES, by NAME). What only the
# benchmark needs: each fake's own spot ticker, asked directly for scale and counted for the limits.
DIRECT_TICKERS = {
    "okx": "/api/v5/market/ticker?instId=BTC-USDT",
    "binance": "/api/v3/ticker/24hr?symbol=BTCUSDT",
    "bybit": "/v5/market/tickers?category=spot&symbol=BTCUSDT",
    "bingx": "/openApi/spot/v1/ticker/24hr?symbol=BTC-USDT",
    "bitvavo": "/v2/ticker/24h?market=BTC-USDT",
    "blofin": "/api/v1/market/tickers?instId=BTC-USDT",       # its fake's SYMBOL is the perpetual
    "coinbase": "/api/v3/brokerage/market/products/BTC-USDT/ticker?limit=1",   # its fake needs cryptography
}
EXCHANGES = {}                           # --exchange value -> (NAME, the fake's class name, its ticker path)


def registry():
    """{--exchange value: (NAME, fake class, direct ticker)} from the plugin's and the suite's tables
    (imported here, not at the top: the bare server and the fakes' processes need none of it)."""
    if not EXCHANGES:
        sys.path.insert(0, str(ROOT))
        from exchanges import EXCHANGES as MODULES
        from tests.conftest import FAKES
        for key, path in DIRECT_TICKERS.items():
            EXCHANGES[key] = (MODULES[key].NAME, FAKES[MODULES[key].NAME], path)
    return EXCHANGES


def fake_class(exchange):
    return registry()[exchange][1]


# ---------------------------------------------------------------------------- the processes

def free_port():
    """A free port below the kernel's ephemeral range (32768-60999 on Linux), so that between
    this check and the server's own bind no other program's port-0 bind can take it."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Process:
    """A server under test: started, timed to its first answer, measured, stopped."""

    def __init__(self, argv, port, path, probe, cwd=ROOT, env=None):
        self.port = port
        started = time.perf_counter()
        self.popen = subprocess.Popen(argv + ["--port", str(port)] if argv[1] != str(BARE) else argv + [str(port)],
                                      cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=env)
        self.cold_start_ms = (wait_for_answer(port, path, probe, self.popen) - started) * 1000
        self.start_cpu_ms = self.cpu_seconds() * 1000      # CPU spent up to the first answer: load-proof

    def cpu_seconds(self):
        """User + system CPU time of the whole process so far (every thread, ended ones included)."""
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return float("nan")

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
    requests that arrived in any SECONDS), `calls VERB PATH`, `orders`."""

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

    def calls(self, verb=None, path=None):
        return int(self.ask(f"calls {verb} {path}" if verb else "calls"))

    def stop(self):
        self.popen.stdin.close()
        self.popen.wait(timeout=10)


def serve_fake(exchange):
    """The --serve-fake side of FakeExchangeProcess."""
    fake = fake_class(exchange)().start()
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
        elif command == "cancel-open":          # a burst's resting orders freeze funds the next one needs
            from tests.fakes.engine import OPEN, PARTIAL
            for order_id, order in list(fake.engine.orders.items()):
                if order["status"] in (OPEN, PARTIAL):
                    fake.engine.cancel(order_id)
            print("ok", flush=True)
        elif command == "calls":
            verb, _, path = value.partition(" ")
            print(sum(1 for a in list(fake.arrivals) if not verb or (a.method, a.path) == (verb, path)), flush=True)
    fake.stop()


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


# ---------------------------------------------------------------------------- the robots

def post(conn, path, body):
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.will_close:
        conn.close()
    return response.status, data


def envelope(fake, method, **params):
    """A request as FMZ's docker sends it, with the keys `fake` accepts."""
    return json.dumps({"access_key": fake.ACCESS_KEY, "secret_key": fake.SECRET_KEY, "method": method,
                       "params": params, "nonce": time.time_ns()}).encode()


TICKER = "ticker"
DEPTH = "depth 400"
BALANCES = "accounts (signed)"


class Target:
    """A server the robots ask: a plugin (speaking `exchange`), the bare server (exchange None),
    or the fake exchange itself (verb GET, `process` None)."""

    def __init__(self, name, exchange, port, fake=None, verb="POST"):
        self.name, self.exchange, self.port, self.fake, self.verb = name, exchange, port, fake, verb
        self.process = None
        label, _, direct = registry()[exchange or "okx"]
        self.label = label if exchange else "-"
        self.path = direct if verb == "GET" else "/" + label
        fake_type = fake_class(exchange or "okx")
        self.bodies = {TICKER: envelope(fake_type, "ticker", symbol=fake_type.SYMBOL),
                       DEPTH: envelope(fake_type, "depth", symbol=fake_type.SYMBOL, limit="400"),
                       BALANCES: envelope(fake_type, "accounts")}

    def cpu_seconds(self):
        return self.process.cpu_seconds() if self.process else float("nan")


class Outcome:
    """What the robots of one round got: latencies of answers with data, errors, HTTP 503s,
    the round's length, the server's CPU and the exchange's calls and connections meanwhile."""

    def __init__(self, latencies, errors, refused, elapsed, cpu, calls, opened):
        self.latencies = sorted(latencies)
        self.count, self.errors, self.refused, self.elapsed = len(latencies), errors, refused, elapsed
        self.cpu, self.calls, self.opened = cpu, calls, opened

    @property
    def rps(self):
        return self.count / self.elapsed if self.elapsed else 0.0

    def p(self, fraction):
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(fraction * len(self.latencies)))] * 1000

    @property
    def cpu_us(self):
        """Server CPU per answer (503s included: refusing costs CPU too)."""
        answered = self.count + self.errors + self.refused
        return self.cpu / answered * 1e6 if answered else float("nan")

    @property
    def calls_per_answer(self):
        return self.calls / self.count if self.count else float("nan")


def load(target, robots, seconds, request, count_calls=True):
    """`robots` threads, each on its own keep-alive connection (reopened at once when the server
    closes it), sending `request` for `seconds` after a short warm-up. Returns an Outcome."""
    body = target.bodies[request]
    latencies, errors, refused, ends, lock = [], [], [], [], threading.Lock()
    warm = threading.Barrier(robots + 1, timeout=300)
    go = threading.Barrier(robots + 1, timeout=300)

    def robot():
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        mine, failed, turned_away = [], 0, 0

        def once():
            try:
                if target.verb == "GET":
                    conn.request("GET", target.path)
                    response = conn.getresponse()
                    return response.status, response.read()
                return post(conn, target.path, body)
            except (OSError, http.client.HTTPException):
                conn.close()
                return None, b""

        for _ in range(WARMUP):
            once()
        warm.wait()
        go.wait()
        deadline = time.perf_counter() + seconds
        while True:
            began = time.perf_counter()
            if began >= deadline:
                break
            status, answer = once()
            if status == 503:
                turned_away += 1
            elif status != 200 or (target.verb == "POST" and b'"error"' in answer):
                failed += 1
            else:
                mine.append(time.perf_counter() - began)
        with lock:
            ends.append(time.perf_counter())
            latencies.extend(mine)
            errors.append(failed)
            refused.append(turned_away)
        conn.close()

    stack = threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=robot, daemon=True) for _ in range(robots)]
    for thread in threads:
        thread.start()
    threading.stack_size(stack)
    warm.wait()
    fake = target.fake
    calls_before = fake.calls() if fake and count_calls else 0
    opened_before = fake.connections() if fake else 0
    cpu_before = target.cpu_seconds()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    cpu = target.cpu_seconds() - cpu_before
    calls = fake.calls() - calls_before if fake and count_calls else float("nan")
    opened = fake.connections() - opened_before if fake else float("nan")
    return Outcome(latencies, sum(errors), sum(refused), max(ends) - started, cpu, calls, opened)


def median_round(outcomes):
    """The round with the median answers/s: one burst of outside load spoils a round, not the row."""
    return sorted(outcomes, key=lambda outcome: outcome.rps)[len(outcomes) // 2]


def measure(targets, robots, seconds, rounds, request):
    """Each target in turn, `rounds` times: {target: the median Outcome}."""
    taken = {target: [] for target in targets}
    for _ in range(rounds):
        for target in targets:
            taken[target].append(load(target, robots, seconds / rounds, request))
    return {target: median_round(outcomes) for target, outcomes in taken.items()}


# ---------------------------------------------------------------------------- the report

def table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(map(str, line)) + " |" for line in lines])


def ms(value):
    return f"{value:.2f}"


def ratio(value, base):
    return f"{value / base:.1f}x" if base and value == value and base == base else "-"


def say(text):
    print(text, file=sys.stderr, flush=True)


class Run:
    """One benchmark run: the fakes, the servers started, the figures kept for the last table."""

    def __init__(self, exchanges, seconds, rounds, log_level, baseline, guide, robots):
        self.exchanges, self.seconds, self.rounds, self.log_level = exchanges, seconds, rounds, log_level
        self.baseline, self.guide, self.robots = baseline, guide, robots
        self.fakes = {}
        self.servers = []
        self.figures = []             # (figure, before, now): the before/after table

    def note(self, figure, before, now):
        self.figures.append((figure, before, now))

    def start(self, name, exchange, argv, cwd=ROOT, env=None):
        port = free_port()
        target = Target(name, exchange, port, self.fakes.get(exchange))
        target.process = Process(argv, port, target.path, target.bodies[TICKER], cwd, env)
        self.servers.append(target)
        return target

    def plugins(self, exchange, *flags):
        """This checkout's plugin (and the baseline's) for `exchange`, started with `flags`."""
        url = f"{registry()[exchange][0]}={self.fakes[exchange].url}"
        argv = ["--log-level", self.log_level, "--base-url", url, *flags]
        found = [self.start("plugin", exchange, [sys.executable, str(ROOT / "fmz_plugin.py"), *argv])]
        if self.baseline:
            found.insert(0, self.start("before", exchange, [sys.executable, str(self.baseline), *argv],
                                       cwd=self.baseline.parent))
        return found

    def stop(self, targets):
        for target in targets:
            target.process.stop()
            self.servers.remove(target)

    def close(self):
        for target in list(self.servers):
            target.process.stop()
        for fake in self.fakes.values():
            fake.stop()


def per_answer(run, exchange, directory):
    """Ticker at 0 ms (and 50 ms) through the plugin, beside bare, the exchange and the reference."""
    fake = run.fakes[exchange]
    fake.set_latency(0)
    bare = run.start("bare", None, [sys.executable, str(BARE)])
    plugins = run.plugins(exchange, "--no-throttle")
    direct = Target("exchange", exchange, fake.port, fake, "GET")
    streamed = streamed_plugin(run, exchange)
    reference = None
    if exchange == "okx" and run.guide is not None:
        code = extract_reference(run.guide, fake.url, directory)
        reference = run.start("reference", "okx", [sys.executable, str(code), "--address", "127.0.0.1"], directory)
    label = registry()[exchange][0]
    lines, bare_cpu_us = [], float("nan")
    for clients in CLIENTS:
        say(f"  per answer: {label} ticker, {clients} robot(s), 0 ms")
        targets = [bare, *plugins, direct] + ([streamed] if streamed else []) + ([reference] if reference else [])
        got = measure(targets, clients, run.seconds, run.rounds, TICKER)
        base = got[bare]
        if clients == 1:
            bare_cpu_us = base.cpu_us
        for target in targets:
            out = got[target]
            through = target.name not in ("bare", "exchange")
            lines.append([target.name, target.label, TICKER if target.name != "bare" else "constant JSON", clients,
                          "0 ms", f"{out.rps:,.0f}" + (f" ({out.errors} errors)" if out.errors else ""),
                          ms(out.p(0.5)), ms(out.p(0.99)),
                          f"{out.cpu_us:,.0f}" if target.process else "-",
                          ratio(out.p(0.5), base.p(0.5)), ratio(out.p(0.99), base.p(0.99)),
                          ratio(out.cpu_us, base.cpu_us) if target.process else "-",
                          f"{out.calls_per_answer:.2f}" if through else "-",
                          f"{100 * out.opened / max(out.count, 1):.2f}" if through else "-"])
        added = {t.name: (got[t].p(0.5) - got[direct].p(0.5), got[t].p(0.99) - got[direct].p(0.99))
                 for t in plugins}
        for target in plugins:
            lines.append([f"{target.name}: added to the exchange's own", target.label, TICKER, clients, "0 ms", "-",
                          ms(added[target.name][0]), ms(added[target.name][1]), "-", "-", "-", "-", "-", "-"])
        if run.baseline and exchange == run.exchanges[0]:
            before, now = got[plugins[0]], got[plugins[1]]
            run.note(f"{label} ticker, {clients} robot(s): CPU per answer, x bare", ratio(before.cpu_us, base.cpu_us),
                     ratio(now.cpu_us, base.cpu_us))
            run.note(f"{label} ticker, {clients} robot(s): CPU us per answer", f"{before.cpu_us:,.0f}",
                     f"{now.cpu_us:,.0f}")
            run.note(f"{label} ticker, {clients} robot(s): p50 / p99 ms, x bare",
                     f"{ratio(before.p(0.5), base.p(0.5))} / {ratio(before.p(0.99), base.p(0.99))}",
                     f"{ratio(now.p(0.5), base.p(0.5))} / {ratio(now.p(0.99), base.p(0.99))}")
            run.note(f"{label} ticker, {clients} robot(s): answers/s (bare {base.rps:,.0f})", f"{before.rps:,.0f}",
                     f"{now.rps:,.0f}")
    if reference:
        fake.set_latency(50)
        say(f"  per answer: {label} ticker, 8 robots, 50 ms, beside the reference")
        got = measure([*plugins, reference], 8, run.seconds, run.rounds, TICKER)
        for target, out in got.items():
            lines.append([target.name, target.label, TICKER, 8, "50 ms", f"{out.rps:,.0f}", ms(out.p(0.5)),
                          ms(out.p(0.99)), f"{out.cpu_us:,.0f}", "-", "-", "-", f"{out.calls_per_answer:.2f}",
                          f"{100 * out.opened / max(out.count, 1):.2f}"])
        fake.set_latency(0)
    depth = depth_rows(run, exchange, plugins, bare_cpu_us)
    run.stop([bare, *plugins] + ([streamed] if streamed else []) + ([reference] if reference else []))
    return lines, depth


def streamed_plugin(run, exchange):
    """This checkout's plugin answering the ticker from its stream of the fake's WebSocket (no
    exchange call per answer: what the plugin's own request path costs), or None for an
    exchange without a stream."""
    sys.path.insert(0, str(ROOT))
    from exchanges import EXCHANGES as MODULES
    if not MODULES[exchange].STREAM_URLS:
        return None
    label, _, direct = registry()[exchange]
    url = run.fakes[exchange].url
    target = run.start("plugin, from its stream", exchange,
                       [sys.executable, str(ROOT / "fmz_plugin.py"), "--log-level", run.log_level, "--no-throttle",
                        "--base-url", f"{label}={url}", "--base-url", f"{label}.ws={url.replace('http://', 'ws://')}"])
    warm_until_streamed(target, run.fakes[exchange], direct.split("?")[0])
    return target


def depth_rows(run, exchange, plugins, bare_cpu_us):
    """A 400-level depth's CPU per answer, also as a multiple of the bare server's per answer in
    this run (a figure of this machine's speed: the same code takes twice as long on a machine
    half as fast)."""
    label = registry()[exchange][0]
    say(f"  depth 400: {label}, 1 robot")
    got = measure(plugins, 1, run.seconds, run.rounds, DEPTH)
    if run.baseline and exchange == run.exchanges[0]:
        run.note(f"{label} depth of 400 levels: CPU ms per answer", f"{got[plugins[0]].cpu_us / 1000:.2f}",
                 f"{got[plugins[1]].cpu_us / 1000:.2f}")
        run.note(f"{label} depth of 400 levels: CPU per answer, x bare", ratio(got[plugins[0]].cpu_us, bare_cpu_us),
                 ratio(got[plugins[1]].cpu_us, bare_cpu_us))
    return [[t.name, t.label, f"{out.rps:,.0f}", ms(out.p(0.5)), ms(out.p(0.99)), f"{out.cpu_us / 1000:.2f}",
             ratio(out.cpu_us, bare_cpu_us)] for t, out in got.items()]


PER_ANSWER_HEADER = ["server", "exchange", "request", "robots", "exchange latency", "answers/s", "p50 ms", "p99 ms",
                     "CPU us / answer", "p50 x bare", "p99 x bare", "CPU x bare", "exchange calls / answer",
                     "new exchange connections / 100 answers"]


# ---------------------------------------------------------------------------- throttle on: the real limits

POLL_ROBOTS, POLL_SECONDS, POLL_LATENCY_MS = 8, 10.0, 50
BURST_ORDERS = 105
ONE_INSTRUMENT = {"symbol": "x", "market": "x"}     # a call's params naming one instrument (a weight may depend on it)


def documented(exchange, endpoint):
    """The tightest limit the exchange module documents for `endpoint` ("VERB /path")."""
    sys.path.insert(0, str(ROOT))
    from exchanges import EXCHANGES as MODULES
    try:                                     # a key may be a template ("GET /products/{product}/ticker")
        from exchanges._throttle import endpoint_limits
        limits = endpoint_limits(MODULES[exchange].RATE_LIMITS, *endpoint.split(" ", 1))[1]
    except ImportError:                      # a checkout before the throttle had a module of its own
        from exchanges._kit import limits_of
        limits = limits_of(MODULES[exchange].RATE_LIMITS.get(endpoint))
    calls_per_second = lambda limit: limit.requests / limit.seconds / (limit.units(ONE_INSTRUMENT) or 1)
    return min(limits, key=calls_per_second)


def trade_envelope(fake_type, n):
    """Order n of a grid: a small limit buy of the fake's SYMBOL (0.01 BTC, or a BloFin contract),
    one price step lower each time."""
    return envelope(fake_type, "trade", symbol=fake_type.SYMBOL, type="buy", price=str(40000 - n),
                    amount=fake_type.AMOUNT)


def poll_one_ticker(target, fake, exchange, seconds):
    """8 robots polling BTC_USDT at 50 ms exchange latency: what they got, and the most ticker
    calls the fake saw arrive in any window of the documented limit."""
    label, _, direct = registry()[exchange]
    path = direct.split("?")[0]
    limit = documented(exchange, f"GET {path}")
    fake.set_latency(POLL_LATENCY_MS)
    fake.ask("forget")
    out = load(target, POLL_ROBOTS, seconds, TICKER, count_calls=False)
    calls = fake.calls("GET", path)
    most = fake.most(limit.seconds, "GET", path) * limit.units(ONE_INSTRUMENT)   # in the limit's units
    fake.set_latency(0)
    return [target.name, label, f"{POLL_ROBOTS} robots, one ticker, {POLL_LATENCY_MS} ms, {seconds:g} s",
            f"{out.rps:,.0f}", ms(out.p(0.5)), ms(out.p(0.99)), str(out.errors), f"{calls} ({calls / out.elapsed:.1f}/s)",
            f"{out.count / max(calls, 1):.1f}", f"{most} of {limit.requests}", limit.describe()], out


def order_burst(target, fake, exchange):
    """One grid robot placing 105 limit orders in a loop, 0 ms exchange latency."""
    label = registry()[exchange][0]
    fake_type = fake_class(exchange)
    path = fake_type.ORDER_PATH
    limit = documented(exchange, f"POST {path}")
    fake.ask("forget")
    fake.ask("cancel-open")
    orders_before = fake.orders()
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
    started, refused = time.perf_counter(), 0
    for n in range(BURST_ORDERS):
        refused += b'"error"' in post(conn, target.path, trade_envelope(fake_type, n))[1]
    elapsed = time.perf_counter() - started
    conn.close()
    placed = fake.orders() - orders_before
    most = fake.most(limit.seconds, "POST", path)
    return [target.name, label, f"{BURST_ORDERS} limit orders in a loop, 0 ms", f"{elapsed:.2f}", str(placed),
            str(refused), f"{most} of {limit.requests}", limit.describe()]


def limit_rows(run, exchange):
    """The throttle-on rows: the plugin (and the baseline) started with the default throttle."""
    polls, bursts = [], []
    plugins = run.plugins(exchange)
    for _ in range(2):               # two runs each, taking turns
        for target in plugins:
            say(f"  throttle on: {target.name} {target.label}, polling and an order burst")
            line, out = poll_one_ticker(target, run.fakes[exchange], exchange, run.poll_seconds)
            polls.append((line, out))
            bursts.append(order_burst(target, run.fakes[exchange], exchange))
    run.stop(plugins)
    polls.sort(key=lambda taken: taken[0][0])
    bursts.sort(key=lambda line: line[0])
    if run.baseline and exchange == run.exchanges[0]:
        label = registry()[exchange][0]
        before = [out for line, out in polls if line[0] == "before"]
        now = [out for line, out in polls if line[0] == "plugin"]
        both = lambda outs, f: " / ".join(f(out) for out in outs)
        run.note(f"{label} throttle on, 8 robots polling at 50 ms: answers/s (two runs)",
                 both(before, lambda o: f"{o.rps:.0f}"), both(now, lambda o: f"{o.rps:.0f}"))
        run.note(f"{label} throttle on, 8 robots polling at 50 ms: p50 / p99 ms",
                 both(before, lambda o: f"{o.p(0.5):.0f}/{o.p(0.99):.0f}"),
                 both(now, lambda o: f"{o.p(0.5):.0f}/{o.p(0.99):.0f}"))
        run.note(f"{label} throttle on, {BURST_ORDERS} orders in a loop: seconds",
                 both([line for line in bursts if line[0] == "before"], lambda l: l[3]),
                 both([line for line in bursts if line[0] == "plugin"], lambda l: l[3]))
    return [line for line, _ in polls], bursts


# ---------------------------------------------------------------------------- streams: market data from the WebSocket

STREAM_ROBOTS = (8, 64)
STREAM_WARM_SECONDS = 5.0                # at most, until the stream answers (no more REST ticker calls)


def stream_rows(run, exchange):
    """Robots polling one ticker through a plugin with default flags (throttle on), its stream
    on the fake's WebSocket, and the same with --no-stream: answers/s, the robots' p50/p99, the
    plugin's own p50/p99 (its status), and REST ticker calls per minute in the steady state."""
    sys.path.insert(0, str(ROOT))
    from exchanges import EXCHANGES as MODULES
    if not MODULES[exchange].STREAM_URLS:
        return []
    label, _, direct = registry()[exchange]
    fake, path, rows = run.fakes[exchange], direct.split("?")[0], []
    fake.set_latency(POLL_LATENCY_MS)
    for robots in STREAM_ROBOTS:
        for flags in ([], ["--no-stream"]):
            plugin = run.start("plugin" + (", --no-stream" if flags else ", stream"), exchange,
                               [sys.executable, str(ROOT / "fmz_plugin.py"), "--log-level", run.log_level, *flags,
                                "--base-url", f"{label}={fake.url}",
                                "--base-url", f"{label}.ws={fake.url.replace('http://', 'ws://')}"])
            warm_until_streamed(plugin, fake, path)
            before = fake.calls("GET", path)
            out = load(plugin, robots, run.seconds, TICKER, count_calls=False)
            calls = fake.calls("GET", path) - before
            own = plugin_latency(plugin.port, "ticker")
            run.stop([plugin])
            rows.append([label, str(robots), "off (--no-stream)" if flags else "on", f"{out.rps:,.0f}",
                         ms(out.p(0.5)), ms(out.p(0.99)), own, str(out.errors), f"{calls * 60 / out.elapsed:,.0f}"])
            say(f"  stream {' | '.join(rows[-1])}")
    fake.set_latency(0)
    return rows


def warm_until_streamed(plugin, fake, path):
    """Ask for the ticker until ten answers in a row needed no REST call (the stream answers),
    or STREAM_WARM_SECONDS passed (--no-stream never gets there)."""
    conn = http.client.HTTPConnection("127.0.0.1", plugin.port, timeout=30)
    deadline, quiet = time.perf_counter() + STREAM_WARM_SECONDS, 0
    while quiet < 10 and time.perf_counter() < deadline:
        before = fake.calls("GET", path)
        post(conn, plugin.path, plugin.bodies[TICKER])
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


# ---------------------------------------------------------------------------- the pool, many robots, start

POOL_ROBOTS, POOL_SECONDS = 32, 5.0


def pool_rows(run, exchange):
    """32 robots making signed calls: new exchange connections per 5 s and per call."""
    plugins = run.plugins(exchange, "--no-throttle")
    lines = []
    for target in plugins:
        say(f"  pool: {target.name} {target.label}, {POOL_ROBOTS} robots, signed calls")
        out = load(target, POOL_ROBOTS, run.pool_seconds, BALANCES)
        per_5s = out.opened / out.elapsed * 5 if out.elapsed else float("nan")
        lines.append([target.name, target.label, f"{POOL_ROBOTS} robots, {BALANCES}, {run.pool_seconds:g} s",
                      f"{out.rps:,.0f}", str(out.errors), f"{out.calls:,}", f"{out.opened}",
                      f"{per_5s:.0f}", f"{100 * out.opened / max(out.calls, 1):.2f}"])
    run.stop(plugins)
    if run.baseline and exchange == run.exchanges[0]:
        run.note(f"{registry()[exchange][0]} pool, {POOL_ROBOTS} robots signing: new connections per 5 s "
                 f"(% of calls)", f"{lines[0][7]} ({lines[0][8]} %)", f"{lines[1][7]} ({lines[1][8]} %)")
    return lines


def robots_rows(run, exchange):
    """64, 256, 1,000 robots on one ticker, every default: answers/s, latency, 503s."""
    lines = []
    plugins = run.plugins(exchange)
    for robots in run.robots:
        for target in plugins:
            say(f"  many robots: {target.name} {target.label}, {robots} robots")
            out = load(target, robots, run.robots_seconds, TICKER)
            lines.append([target.name, target.label, robots, f"{out.rps:,.0f}", ms(out.p(0.5)), ms(out.p(0.99)),
                          f"{out.refused / out.elapsed:,.0f}", str(out.errors), f"{out.calls_per_answer:.3f}",
                          f"{out.cpu_us:,.0f}"])
        if run.baseline and exchange == run.exchanges[0]:
            before, now = (", ".join(line[i] for i in (3, 4, 6)) for line in lines[-2:])
            run.note(f"{registry()[exchange][0]} {robots} robots, defaults: answers/s, p50 ms, 503/s", before, now)
    run.stop(plugins)
    return lines


def start_rows(run, directory):
    """Cold start (process start to first answer) and peak memory: bare, repo, bundle. Python as
    a user runs it: writing bytecode (PYTHONDONTWRITEBYTECODE unset), so after a first start the
    repository's modules come from __pycache__ (and the bundle's from its own cache); that first
    start of each is left out."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    bundle = Path(directory) / "fmz_plugin_bundle.py"
    subprocess.run([sys.executable, str(ROOT / "fmz_plugin.py"), "bundle", "-o", str(bundle)], cwd=ROOT,
                   check=True, capture_output=True)
    exchange = run.exchanges[0]
    url = f"{registry()[exchange][0]}={run.fakes[exchange].url}"
    programs = [("bare", [sys.executable, str(BARE)], ROOT), ("plugin", [sys.executable, str(ROOT / "fmz_plugin.py")], ROOT),
                ("plugin, bundled", [sys.executable, str(bundle)], Path(directory))]
    if run.baseline:
        programs.append(("before", [sys.executable, str(run.baseline)], run.baseline.parent))
    times = {name: [] for name, _, _ in programs}
    cpu = {name: [] for name, _, _ in programs}
    rss = {}
    for round_ in range(max(3, run.rounds) + 1):
        for name, argv, cwd in programs:
            flags = [] if name == "bare" else ["--no-throttle", "--base-url", url]
            target = run.start(name, exchange if name != "bare" else None, argv + flags, cwd, env)
            if round_:                   # the first start of each writes its caches: left out
                times[name].append(target.process.cold_start_ms)
                cpu[name].append(target.process.start_cpu_ms)
            rss[name] = target.process.peak_rss_mb()
            run.stop([target])
    median = {name: statistics.median(values) for name, values in times.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    if run.baseline:
        run.note("start, process start to first answer: ms, and its CPU ms (repo)",
                 f"{median['before']:.0f}, {median_cpu['before']:.0f}", f"{median['plugin']:.0f}, {median_cpu['plugin']:.0f}")
        run.note("start: the bundle minus the repo, ms, and CPU ms", "-",
                 f"{median['plugin, bundled'] - median['plugin']:.0f}, "
                 f"{median_cpu['plugin, bundled'] - median_cpu['plugin']:.0f}")
    return [[name, f"{median[name]:.0f}", f"{median_cpu[name]:.0f}", f"{rss[name]:.1f}"] for name, _, _ in programs]


# ---------------------------------------------------------------------------- the risk guard's cost

GUARD_ORDERS = 20000                     # orders admitted per measurement
GUARD_TARGET_MS = 0.1                    # what the guard may cost an order that needs no exchange call


def guard_cost():
    """[(what, microseconds per order)]: the guard admitting a limit order and noting its answer,
    best of ROUNDS runs of GUARD_ORDERS, with rules that need no exchange call and with none."""
    sys.path.insert(0, str(ROOT))
    from decimal import Decimal
    from exchanges import EXCHANGES as MODULES
    from exchanges._kit import Api, parse_symbol
    from exchanges._risk import RiskGuard
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


# ---------------------------------------------------------------------------- the run

def run_all(run, limits_only, per_answer_only=False):
    with tempfile.TemporaryDirectory() as directory:
        run.fakes = {exchange: FakeExchangeProcess(exchange) for exchange in run.exchanges}
        try:
            if not limits_only:
                for exchange in run.exchanges:
                    lines, depth = per_answer(run, exchange, directory)
                    print(f"\nPer answer, {registry()[exchange][0]} (0 ms exchange, --no-throttle; median of "
                          f"{run.rounds} rounds of {run.seconds / run.rounds:g} s, servers taking turns):\n")
                    print(table(PER_ANSWER_HEADER, lines))
                    print(f"\nA depth of 400 levels a side, 1 robot ({registry()[exchange][0]}):\n")
                    print(table(["server", "exchange", "answers/s", "p50 ms", "p99 ms", "CPU ms / answer",
                                 "CPU x bare (1 robot)"], depth))
            if per_answer_only:
                return
            for exchange in run.exchanges:
                polls, bursts = limit_rows(run, exchange)
                print(f"\nThrottle on, {registry()[exchange][0]} (the documented limits, as the plugin runs by "
                      "default; two runs each, taking turns):\n")
                print(table(["server", "exchange", "run", "answers/s", "p50 ms", "p99 ms", "errors", "exchange calls",
                             "answers per call", "most in one window", "limit"], polls))
                print()
                print(table(["server", "exchange", "run", "time s", "placed", "refused", "most in one window",
                             "limit"], bursts))
            if limits_only:
                return
            exchange = run.exchanges[0]
            print(f"\nThe exchange connection pool, {registry()[exchange][0]} (0 ms, --no-throttle):\n")
            print(table(["server", "exchange", "run", "answers/s", "errors", "exchange calls", "new connections",
                         "new connections / 5 s", "% of calls"], pool_rows(run, exchange)))
            print(f"\nMany robots on one ticker, {registry()[exchange][0]} (0 ms; every default: throttle on, "
                  f"--max-connections as the plugin sets it; {run.robots_seconds:g} s each):\n")
            print(table(["server", "exchange", "robots", "answers/s", "p50 ms", "p99 ms", "HTTP 503 / s", "errors",
                         "exchange calls / answer", "CPU us / answer"], robots_rows(run, exchange)))
            streamed = [row for exchange in run.exchanges for row in stream_rows(run, exchange)]
            if streamed:
                print(f"\nStreams: robots polling one ticker, default flags (throttle on), {POLL_LATENCY_MS} ms "
                      "exchange latency:\n")
                print(table(["exchange", "robots", "stream", "answers/s", "p50 ms", "p99 ms", "plugin p50 / p99 ms",
                             "errors", "REST ticker calls/min"], streamed))
            print("\nStart (process start to first answer, median of 3; its CPU time, which load does not "
                  "stretch) and peak memory:\n")
            print(table(["server", "cold start ms", "CPU ms to the first answer", "peak RSS MB"], start_rows(run, directory)))
        finally:
            run.close()


def report_figures(run):
    if not run.figures:
        return
    print(f"\nBefore ({run.baseline}) and now (this checkout), measured in this one run:\n")
    print(table(["figure", "before", "now"], run.figures))


# ---------------------------------------------------------------------------- Coinbase's signing cost

SIGNS = 50                               # JWTs per round


def sign_cost():
    """[(key kind, ms per signed request)]: exchanges/coinbase.sign, a fresh JWT (ES256 or EdDSA,
    pure Python) added to one request, the best of ROUNDS rounds of SIGNS."""
    sys.path.insert(0, str(ROOT))
    from exchanges import coinbase
    from exchanges._kit import Request
    from tests.fakes.coinbase import EC_PEM, ED25519_NAME, ED25519_SECRET, KEY_NAME
    rows = []
    for kind, name, secret in (("EC P-256 (ES256)", KEY_NAME, EC_PEM), ("Ed25519 (EdDSA)", ED25519_NAME, ED25519_SECRET)):
        keys, best = coinbase.parse_keys(name, secret), float("inf")
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(SIGNS):
                coinbase.sign(Request("GET", "/api/v3/brokerage/accounts"), keys, int(time.time() * 1000))
            best = min(best, (time.perf_counter() - started) * 1000 / SIGNS)
        rows.append((kind, f"{best:.2f}"))
    return rows


def report_sign(rows):
    print(f"\nCoinbase JWT per signed request, pure Python (best of {ROUNDS} x {SIGNS}):\n")
    print(table(["key", "ms per request"], rows))


def main(argv):
    parser = argparse.ArgumentParser(description="Benchmark the plugin against a bare server, an earlier version "
                                                 "of itself and the guide's example.")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per per-answer row and server, split into rounds (default 3)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per row; the median is kept (default {ROUNDS})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="the plugin's --log-level (default info, the plugin's own default)")
    parser.add_argument("--exchange", default="okx", choices=[*DIRECT_TICKERS, "all"],
                        help="the exchange(s) whose fake the plugin is measured against (default okx); "
                             "the guide's reference program speaks OKX only")
    parser.add_argument("--baseline", metavar="PATH", type=Path,
                        help="another plugin program (an earlier version) measured beside this checkout's")
    parser.add_argument("--robots", default="64,256,1000",
                        help="robot counts of the many-robots rows (default 64,256,1000)")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s per row: a rough look")
    parser.add_argument("--limits", action="store_true",
                        help="only the throttle-on rows (the exchanges' real limits): polling robots, an order burst")
    parser.add_argument("--per-answer", action="store_true",
                        help="only the per-answer rows (ticker at 1 and 8 robots, depth 400) beside the bare server")
    parser.add_argument("--guard", action="store_true", help="only the risk guard's cost per order")
    parser.add_argument("--sign", action="store_true", help="only Coinbase's JWT signing cost per request")
    parser.add_argument("--guide", metavar="PATH", type=Path, default=None,
                        help="the FMZ guide's text, whose Python example is the reference program (default: "
                             f"{GUIDE} when it exists; without it the reference rows are skipped)")
    parser.add_argument("--serve-fake", choices=list(DIRECT_TICKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        return serve_fake(args.serve_fake)
    if args.guard:
        return report_guard(guard_cost())
    if args.sign:
        return report_sign(sign_cost())
    exchanges = list(DIRECT_TICKERS) if args.exchange == "all" else [args.exchange]
    guide = args.guide or (GUIDE if GUIDE.exists() else None)
    if args.guide is not None and not args.guide.is_file():
        raise SystemExit(f"--guide {args.guide}: no such file (give the FMZ guide's text, or leave --guide out)")
    if args.baseline is not None and not args.baseline.is_file():
        raise SystemExit(f"--baseline {args.baseline}: no such file (give an earlier fmz_plugin.py or its bundle)")
    if guide is None and "okx" in exchanges and not args.limits:
        print(f"Reference rows skipped: they run the FMZ guide's example, and the guide is not here "
              f"(give --guide PATH; looked for {GUIDE}).", flush=True)
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    run = Run(exchanges, args.seconds, args.rounds, args.log_level, args.baseline and args.baseline.resolve(),
              guide, [int(n) for n in args.robots.split(",") if n.strip()])
    short = args.seconds < 1
    run.poll_seconds = min(POLL_SECONDS, args.seconds) if short else POLL_SECONDS
    run.pool_seconds = min(POOL_SECONDS, args.seconds) if short else POOL_SECONDS
    run.robots_seconds = min(5.0, args.seconds) if short else 5.0
    print(f"\nfmz-plugin benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}; "
          f"plugin at --log-level {args.log_level}; exchanges: {', '.join(registry()[e][0] for e in exchanges)}")
    run_all(run, args.limits, args.per_answer)
    report_figures(run)
    if not args.limits and not args.per_answer:
        report_guard(guard_cost())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
