#!/usr/bin/env python3
"""Soak test: many keep-alive robots and a set of slow-loris clients against the plugin, for a
bounded time; prints the errors, the latency (p50, p99, max) and the plugin's memory.

    python3 benchmarks/soak.py                      # 256 robots + 32 slow clients, 40 s, OKX's fake
    python3 benchmarks/soak.py --seconds 60 --exchange bybit --latency-ms 50
    python3 benchmarks/soak.py --max-connections 200    # see the plugin refuse what is over its cap

Everything runs on this machine: the exchange's fake (tests/fakes/) in a process of its own, the
plugin (`fmz_plugin.py --no-throttle --log-level warning`) in a process of its own, and the
clients (threads) in this one:

  robots     each on one keep-alive connection, in a loop: ticker, depth, an order placed and
             canceled now and then, and a request the plugin refuses itself (an invalid symbol).
             Any answer that is not the expected one is an error: an `{"error"}` where data was
             due, a non-200 status, a dropped connection (the robot then reconnects).
  slow       slow-loris clients: half send a request one byte a second, half connect and send
             nothing. The plugin must cut each one off (a request must arrive whole within
             10 s of its first byte; an idle connection is closed after 30 s); each then
             reconnects and starts again. Reported: how many were cut off, and the longest any
             of them held its connection.
  plugin     resident memory (VmRSS) sampled every second, its peak (VmHWM), the open file
             descriptors and threads at the end, and what it logged (warnings and errors).

This is not part of the test suite and asserts nothing: numbers depend on the machine. A run
that prints `errors: 0` and a bounded slow-client hold time is what a server that holds looks like.
"""
import argparse
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fakes.binance import FakeBinance   # noqa: E402  (the fakes live in the repository's tests)
from tests.fakes.bybit import FakeBybit       # noqa: E402
from tests.fakes.okx import FakeOKX           # noqa: E402

FAKES = {"okx": FakeOKX, "binance": FakeBinance, "bybit": FakeBybit}
ORDER_EVERY = 20                 # a robot places (and cancels) an order every this many requests
SLOW_BYTE_EVERY = 1.0            # seconds between two bytes of a slow client
ERRORS_SHOWN = 8                 # distinct error texts printed


# ---------------------------------------------------------------------------- the processes

def serve_fake(name, latency):
    """`soak.py --serve-fake NAME`: the fake in this process until stdin closes."""
    fake = FAKES[name]()
    fake.latency = latency
    fake.start()
    print(fake.url, flush=True)
    sys.stdin.read()
    fake.stop()


class Plugin:
    """fmz_plugin.py in a process of its own, pointed at the fake."""

    def __init__(self, exchange, fake_url, max_connections):
        argv = [sys.executable, str(ROOT / "fmz_plugin.py"), "--port", "0", "--no-throttle", "--log-level",
                "warning", "--base-url", f"{exchange}={fake_url}"]
        if max_connections:
            argv += ["--max-connections", str(max_connections)]
        self.popen = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        banner = self.popen.stdout.readline()
        found = re.search(r"listening on http://([\d.]+):(\d+)", banner)
        if not found:
            raise SystemExit(f"the plugin did not start: {banner!r} {self.popen.stderr.read()}")
        self.host, self.port = found.group(1), int(found.group(2))
        self.log = []
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self):
        for line in self.popen.stderr:
            self.log.append(line.rstrip("\n"))

    def status(self, field):
        """A number from /proc/PID/status (VmRSS, VmHWM, Threads), in kB for memory."""
        try:
            text = Path(f"/proc/{self.popen.pid}/status").read_text()
            return int(re.search(rf"{field}:\s+(\d+)", text).group(1))
        except (OSError, AttributeError):
            return None

    def open_files(self):
        try:
            return len(list(Path(f"/proc/{self.popen.pid}/fd").iterdir()))
        except OSError:
            return None

    def stop(self):
        self.popen.terminate()
        self.popen.wait(timeout=10)


# ---------------------------------------------------------------------------- robots

class Tally:
    """What every client thread reports, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.errors = Counter()
        self.refused = 0                  # HTTP 503 from --max-connections
        self.reconnects = 0
        self.slow_cut = 0
        self.slow_longest = 0.0

    def answered(self, seconds):
        with self.lock:
            self.latencies.append(seconds)

    def error(self, text):
        with self.lock:
            self.errors[text[:120]] += 1


def envelope(fake, method, **params):
    return json.dumps({"access_key": fake.ACCESS_KEY, "secret_key": fake.SECRET_KEY, "method": method,
                       "params": {k: str(v) for k, v in params.items()}, "nonce": time.time_ns()}).encode()


def robot(plugin, path, fake, deadline, tally):
    """One robot on one keep-alive connection until the deadline."""
    conn, n = None, 0
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(plugin.host, plugin.port, timeout=30)
        n += 1
        try:
            if n % ORDER_EVERY == 0:
                order = call(conn, path, envelope(fake, "trade", symbol="BTC_USDT", type="buy", price=40000,
                                                  amount="0.001"), tally, wants="data")
                if order is not None:
                    call(conn, path, envelope(fake, "cancel", id=order["id"], symbol="BTC_USDT"), tally, wants="data")
            elif n % 7 == 0:
                call(conn, path, envelope(fake, "ticker", symbol="NOSUCH_COIN"), tally, wants="error")
            elif n % 2:
                call(conn, path, envelope(fake, "depth", symbol="BTC_USDT", limit=5), tally, wants="data")
            else:
                call(conn, path, envelope(fake, "ticker", symbol="BTC_USDT"), tally, wants="data")
        except (OSError, http.client.HTTPException) as error:
            tally.error(f"connection: {type(error).__name__}: {error}")
            conn.close()
            conn = None
            with tally.lock:
                tally.reconnects += 1
    if conn is not None:
        conn.close()


def call(conn, path, body, tally, wants):
    """One POST; returns the data when `wants` data and it came, else None (an error is tallied)."""
    started = time.monotonic()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    tally.answered(time.monotonic() - started)
    if response.status == 503:
        with tally.lock:
            tally.refused += 1
        conn.close()
        return None
    answer = json.loads(raw) if response.status == 200 else {"error": f"HTTP {response.status}"}
    if response.getheader("Connection", "").lower() == "close":
        conn.close()
    if wants not in answer:
        tally.error(f"{wants} expected, got: {str(answer)[:100]}")
        return None
    return answer.get("data")


def slow_client(plugin, deadline, tally, sends):
    """Hold a connection as long as the plugin lets it, sending a byte a second (or nothing),
    then connect again; until the deadline."""
    while time.monotonic() < deadline:
        opened = time.monotonic()
        try:
            hold(plugin, deadline, sends)
        except OSError:
            pass                              # reset by the plugin: cut off too
        held = time.monotonic() - opened
        with tally.lock:
            tally.slow_longest = max(tally.slow_longest, held)
            tally.slow_cut += time.monotonic() < deadline      # not cut: the run ended


def hold(plugin, deadline, sends):
    """One slow connection: returns when the plugin closes it (or at the deadline)."""
    request = b"POST /OKX HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n" + b"{" * 100000
    with socket.create_connection((plugin.host, plugin.port), timeout=5) as sock:
        sock.settimeout(SLOW_BYTE_EVERY)
        for sent in range(len(request)):
            if time.monotonic() >= deadline:
                return
            if sends:
                sock.sendall(request[sent:sent + 1])
            try:
                if sock.recv(4096) == b"":
                    return                    # closed by the plugin (after an error answer, maybe)
            except socket.timeout:
                pass


def percentile(values, fraction):
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else float("nan")


def run(args):
    fake_class = FAKES[args.exchange]
    fake_process = subprocess.Popen([sys.executable, __file__, "--serve-fake", args.exchange,
                                     "--latency-ms", str(args.latency_ms)], cwd=ROOT, text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    fake_url = fake_process.stdout.readline().strip()
    plugin = Plugin(args.exchange, fake_url, args.max_connections)
    tally, path = Tally(), "/" + fake_class.NAME
    try:
        start_rss = plugin.status("VmRSS")
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=robot, args=(plugin, path, fake_class, deadline, tally), daemon=True)
                   for _ in range(args.robots)]
        threads += [threading.Thread(target=slow_client, args=(plugin, deadline, tally, i % 2 == 0), daemon=True)
                    for i in range(args.slow)]
        for thread in threads:
            thread.start()
            time.sleep(0.002)                 # a ramp, not one burst of connects
        samples = []
        while time.monotonic() < deadline:
            samples.append(plugin.status("VmRSS"))
            time.sleep(1)
        for thread in threads:
            thread.join(timeout=40)
        end = (plugin.status("VmRSS"), plugin.status("VmHWM"), plugin.open_files(), plugin.status("Threads"))
    finally:
        plugin.stop()
        fake_process.stdin.close()
        fake_process.wait(timeout=10)
    report(args, tally, start_rss, samples, end, plugin.log)


def report(args, tally, start_rss, samples, end, log):
    latencies = sorted(tally.latencies)
    errors = sum(tally.errors.values())
    mb = lambda kb: f"{kb / 1024:.1f} MB" if kb else "?"
    print(f"soak: {args.robots} keep-alive robots + {args.slow} slow clients, {args.seconds:g} s, "
          f"{args.exchange} fake at {args.latency_ms:g} ms")
    print(f"answers: {len(latencies)} ({len(latencies) / args.seconds:.0f}/s), "
          f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
          f"max {(latencies[-1] if latencies else 0) * 1000:.1f} ms")
    print(f"errors: {errors}, refused with 503 (--max-connections): {tally.refused}, "
          f"robot reconnects: {tally.reconnects}")
    for text, count in tally.errors.most_common(ERRORS_SHOWN):
        print(f"  {count:6d}  {text}")
    print(f"slow clients cut off: {tally.slow_cut}, longest hold {tally.slow_longest:.1f} s")
    rss, peak, files, threads = end
    print(f"plugin RSS: start {mb(start_rss)}, during max {mb(max(filter(None, samples), default=0))}, "
          f"end {mb(rss)}, peak (VmHWM) {mb(peak)}; open files at the end {files}, threads {threads}")
    shown = [line for line in log if " WARNING " in line or " ERROR " in line]
    print(f"plugin log: {len(shown)} warning/error lines" + (":" if shown else ""))
    for line in shown[:ERRORS_SHOWN]:
        print("  " + line[:160])


def main(argv):
    parser = argparse.ArgumentParser(description="Soak the plugin: robots and slow clients for a bounded time.")
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="how long the load runs (default 40: idle connections are closed after 30)")
    parser.add_argument("--robots", type=int, default=256, help="keep-alive robots (default 256)")
    parser.add_argument("--slow", type=int, default=32, help="slow-loris clients (default 32)")
    parser.add_argument("--exchange", choices=sorted(FAKES), default="okx", help="whose fake (default okx)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="latency the fake adds to every answer (default 20)")
    parser.add_argument("--max-connections", type=int, default=None,
                        help="passed to the plugin (default: the plugin's own)")
    parser.add_argument("--serve-fake", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        return serve_fake(args.serve_fake, args.latency_ms / 1000)
    run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
