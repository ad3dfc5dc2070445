#!/usr/bin/env python3
"""The bare server of benchmarks/bench.py: the ceiling of the plugin's stack, importing nothing
of this repository (a separate script, so its start and memory are those of http.server alone).

Same stack as the plugin: ThreadingMixIn, HTTP/1.1 keep-alive, no Nagle, one write per answer.
It reads each request's body and answers one constant JSON, a ticker's size.

    python3 benchmarks/bare.py PORT
"""
import http.server
import json
import socketserver
import sys

ANSWER = json.dumps({"data": {"symbol": "BTC_USDT", "buy": 50000, "sell": 50000.1, "last": 50000, "high": 51000,
                              "low": 49000, "volume": 1234.5, "time": 1700000000000}}).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = -1

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
