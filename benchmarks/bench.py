#!/usr/bin/env python3
"""Benchmark: this plugin beside a bare http.server and the FMZ guide's reference program.

    python3 benchmarks/bench.py              # about a minute and a half; prints Markdown tables
    python3 benchmarks/bench.py --seconds 1  # quicker, noisier
    python3 benchmarks/bench.py --log-level warning   # the plugin without its line per request

Everything runs on this machine: a fake OKX (tests/fakes/okx.py) in a process of its own, each
server under test in a process of its own, and the clients (threads, one keep-alive connection
each) in this process. Measured for 1 and 8 concurrent clients, with 0 and 50 ms of latency
added by the fake exchange to every answer:

  bare       a ThreadingMixIn http.server answering a constant JSON: the ceiling of this stack
  plugin     fmz_plugin.py: `ticker` through the fake, and a request refused before any
             exchange call (an invalid symbol), i.e. the plugin's own overhead
  reference  the guide's Python example (the code at the end of
             ../shared/seeds/000_2cf53884887e97c0.txt), extracted at run time into a temp dir
             with its hard-coded https://www.okx.com replaced by the fake's URL
  exchange   the fake exchange's ticker asked directly, for scale

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT.parent / "shared" / "seeds" / "000_2cf53884887e97c0.txt"
CLIENTS = (1, 8)
LATENCIES_MS = (0, 50)
WARMUP = 3                               # requests per client before measuring
ROUNDS = 3                               # rounds per row, interleaved across servers; the best is kept


# ---------------------------------------------------------------------------- the processes

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A server under test: started, timed to its first answer, measured, stopped."""

    def __init__(self, name, argv, port, probe, cwd=ROOT):
        self.name, self.port = name, port
        started = time.perf_counter()
        self.popen = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self.cold_start_ms = wait_for_answer(port, probe, self.popen) - started
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


def wait_for_answer(port, body, popen):
    """Poll until the server answers one request; returns the time of that answer."""
    deadline = time.perf_counter() + 20
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            raise SystemExit(f"a server exited at start (code {popen.returncode})")
        try:
            post(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "/OKX", body)
            return time.perf_counter()
        except OSError:
            time.sleep(0.002)
    raise SystemExit(f"no answer on port {port} within 20 s")


class FakeExchangeProcess:
    """tests/fakes/okx.py in a process of its own, steered over its stdin: `latency S`, `connections`."""

    def __init__(self):
        self.popen = subprocess.Popen([sys.executable, __file__, "--serve-fake"], cwd=ROOT, text=True,
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

    def stop(self):
        self.popen.stdin.close()
        self.popen.wait(timeout=10)


def serve_fake():
    """The --serve-fake side of FakeExchangeProcess."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.okx import FakeOKX
    fake = FakeOKX().start()
    print(fake.url, flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "latency":
            fake.latency = float(value)
            print("ok", flush=True)
        elif command == "connections":
            print(fake.connections, flush=True)
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


def extract_reference(fake_url, directory):
    """The guide's Python example: the text from its last `import http.server` to the end,
    with the OKX host replaced by the fake's (in this temporary copy only)."""
    text = GUIDE.read_text(encoding="utf-8")
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


def envelope(symbol):
    from_fake = {"access_key": "okx-test-key", "secret_key": "okx-test-secret,okx-test-pass"}
    return json.dumps({**from_fake, "method": "ticker", "params": {"symbol": symbol},
                       "nonce": time.time_ns()}).encode()


TICKER = envelope("BTC_USDT")
REFUSED = envelope("BTCUSDT")          # an invalid symbol: refused before any exchange call
EXCHANGE_TICKER = "/api/v5/market/ticker?instId=BTC-USDT"


class Target:
    """Something the clients can ask: a server under test, or the fake exchange itself."""

    def __init__(self, name, port, path="/OKX", verb="POST", process=None):
        self.name, self.port, self.path, self.verb, self.process = name, port, path, verb, process
        self.upstream = 0                # exchange connections opened while it was measured


def load(target, clients, seconds, body, count_upstream):
    """`clients` threads, each on its own keep-alive connection (reopened when the server closes
    it), sending `body` for `seconds` after a short warm-up. Returns (latencies in seconds,
    errors, seconds actually taken, exchange connections opened after the warm-up)."""
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
            failed += b'"error"' in answer and body is TICKER
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
    def __init__(self, server, path, clients, latency_ms, latencies, errors, elapsed, upstream):
        latencies.sort()
        self.server, self.path, self.clients, self.latency_ms = server, path, clients, latency_ms
        self.count, self.errors, self.upstream = len(latencies), errors, upstream
        self.rps = len(latencies) / elapsed         # elapsed: until the last answer, not the nominal window
        self.p50 = percentile(latencies, 0.50) * 1000
        self.p99 = percentile(latencies, 0.99) * 1000

    def cells(self):
        upstream = "-" if self.upstream is None else f"{100 * self.upstream / self.count:.2f}"
        latency = "-" if self.latency_ms is None else f"{self.latency_ms} ms"
        errors = f" ({self.errors} errors)" if self.errors else ""
        return [self.server, self.path, str(self.clients), latency, f"{self.rps:,.0f}{errors}",
                f"{self.p50:.2f}", f"{self.p99:.2f}", upstream]


# ---------------------------------------------------------------------------- the run

REFUSED_PATH, CONSTANT_PATH, TICKER_PATH = "refused (no exchange call)", "constant JSON", "ticker"
DIRECT_PATH = "ticker (the fake, direct)"


def configurations(bare, plugin, reference, exchange):
    """(request name, body, exchange latency, clients, targets): targets compared side by side."""
    for clients in CLIENTS:
        yield REFUSED_PATH, REFUSED, None, clients, [bare, plugin, reference]
    for latency_ms in LATENCIES_MS:
        for clients in CLIENTS:
            yield TICKER_PATH, TICKER, latency_ms, clients, [plugin, reference] + ([exchange] if not latency_ms else [])


def measure(config, fake, seconds, rounds):
    """Each target of one configuration in turn, `rounds` times; the best round of each is kept,
    so a burst of outside load on the machine spoils one round, not the comparison."""
    path_name, body, latency_ms, clients, targets = config
    fake.set_latency(latency_ms or 0)
    best = {}
    for _ in range(rounds):
        for target in targets:
            latencies, errors, elapsed, upstream = load(target, clients, seconds / rounds, body, fake.connections)
            name = {"bare": CONSTANT_PATH, "exchange": DIRECT_PATH}.get(target.name, path_name)
            through_us = body is TICKER and target.verb == "POST"     # a server that asks the exchange
            row = Row(target.name, name, clients, latency_ms, latencies, errors, elapsed,
                      upstream if through_us else None)
            if target.name not in best or row.rps > best[target.name].rps:
                best[target.name] = row
    for row in best.values():
        print(f"  {row.server:<10} {row.path:<27} {clients} clients {latency_ms or 0:>2} ms: "
              f"{row.rps:,.0f} req/s", file=sys.stderr, flush=True)
    return list(best.values())


def run(seconds, rounds, log_level):
    fake = FakeExchangeProcess()
    python, processes = sys.executable, []
    with tempfile.TemporaryDirectory() as directory:
        try:
            port = free_port()
            processes.append(Process("bare", [python, __file__, "--serve-bare", str(port)], port, REFUSED))
            port = free_port()
            processes.append(Process("plugin", [python, str(ROOT / "fmz_plugin.py"), "--port", str(port),
                                                "--no-throttle", "--log-level", log_level,
                                                "--base-url", f"okx={fake.url}"], port, REFUSED))
            port = free_port()
            processes.append(Process("reference", [python, str(extract_reference(fake.url, directory)),
                                                   "--port", str(port), "--address", "127.0.0.1"],
                                     port, REFUSED, cwd=directory))
            targets = [Target(p.name, p.port, process=p) for p in processes]
            exchange = Target("exchange", fake.port, EXCHANGE_TICKER, "GET")
            rows = [row for config in configurations(*targets, exchange)
                    for row in measure(config, fake, seconds, rounds)]
            servers = [(t.name, t.process.cold_start_ms, t.process.peak_rss_mb(), t.upstream) for t in targets]
        finally:
            for process in processes:
                process.stop()
            fake.stop()
    return rows, servers


# ---------------------------------------------------------------------------- the report

def table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])


def find(rows, server, path, clients, latency_ms):
    return next(r for r in rows if (r.server, r.path, r.clients, r.latency_ms) == (server, path, clients, latency_ms))


def verdicts(rows, servers):
    """The issue's targets, each with the figure measured and whether it was met."""
    refused, constant = REFUSED_PATH, CONSTANT_PATH
    overhead = find(rows, "plugin", refused, 1, None).p50 - find(rows, "bare", constant, 1, None).p50
    through = find(rows, "plugin", TICKER_PATH, 1, 0).p50 - find(rows, "exchange", DIRECT_PATH, 1, 0).p50
    share = [find(rows, "plugin", refused, n, None).rps / find(rows, "bare", constant, n, None).rps for n in CLIENTS]
    speedup = find(rows, "plugin", "ticker", 8, 50).rps / find(rows, "reference", "ticker", 8, 50).rps
    plugin_upstream = next(s[3] for s in servers if s[0] == "plugin")
    yes = lambda ok: "met" if ok else "MISSED"
    return [
        ["plugin overhead, p50 (refused request minus bare server, 1 client)", "<= 0.3 ms",
         f"{overhead:.3f} ms", yes(overhead <= 0.3)],
        ["  for reference: plugin ticker minus the exchange asked directly, 1 client, 0 ms", "-",
         f"{through:.3f} ms", "-"],
        ["throughput on the overhead path vs the bare server (1 / 8 clients)", ">= 80 %",
         " / ".join(f"{100 * s:.0f} %" for s in share), yes(min(share) >= 0.8)],
        ["ticker throughput vs the reference, 8 clients, 50 ms latency", ">= 5x", f"{speedup:.1f}x",
         yes(speedup >= 5)],
        ["upstream connections over the plugin's whole run (8 client threads at most)", "<= 8",
         str(plugin_upstream), yes(plugin_upstream <= max(CLIENTS))],
    ]


def report(rows, servers, seconds, rounds, log_level):
    print(f"\nfmz-plugin benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}; each row the best of {rounds} rounds of {seconds / rounds:g} s, "
          f"servers interleaved; plugin at --log-level {log_level}\n")
    print(table(["server", "request", "clients", "exchange latency", "req/s", "p50 ms", "p99 ms",
                 "upstream conns / 100 req"], [row.cells() for row in rows]))
    print()
    print(table(["server", "cold start ms", "peak RSS MB", "upstream connections, whole run"],
                [[name, f"{cold:.0f}", f"{rss:.1f}", str(upstream) if name != "bare" else "-"]
                 for name, cold, rss, upstream in servers]))
    print()
    print(table(["target", "wanted", "measured", ""], verdicts(rows, servers)))


def main(argv):
    parser = argparse.ArgumentParser(description="Benchmark the plugin against a bare server and the guide's example.")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="measuring time per row and server, split into rounds (default 3)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per row; the best is kept (default {ROUNDS})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="the plugin's --log-level (default info, the plugin's own default: a line per request)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        return serve_fake()
    if args.serve_bare:
        return serve_bare(args.serve_bare)
    if not GUIDE.exists():
        raise SystemExit(f"the guide is not at {GUIDE}: the reference program is extracted from it")
    rows, servers = run(args.seconds, args.rounds, args.log_level)
    report(rows, servers, args.seconds, args.rounds, args.log_level)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
