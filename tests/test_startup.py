"""The first ten minutes: a mistake at startup (a flag, a port taken, an address this machine
does not have) is one line naming the flag and the fix, exit status 2, never a traceback; in FMZ
strategy mode the same line goes to the robot's log and the robot stops. And the smaller
first-run items: the exchange is the last path segment, a timeout says the whole wait."""
import errno
import json
import os
import socket
import subprocess
import sys

import pytest

import fmz_plugin
from tests.conftest import ROOT, PluginClient, serving
from tests.test_status import FakeFMZ


def start(*argv):
    """`python3 fmz_plugin.py ARGV` from the repository, as a user types it: (exit status, stderr)."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), *argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


@pytest.fixture
def taken_port():
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def assert_one_line(status, stderr, *words):
    assert status == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr and "usage:" not in stderr
    for word in words:
        assert word in stderr, stderr


@pytest.mark.parametrize("argv, words", [
    (["--port", "99999"], ["--port", "1 to 65535", "'99999'"]),
    (["--port", "six"], ["--port", "1 to 65535", "'six'"]),
    (["--port", "-1"], ["--port", "1 to 65535"]),
    (["--timeout", "-5"], ["--timeout", "above 0", "'-5'"]),
    (["--timeout", "0"], ["--timeout", "above 0"]),
    (["--timeout", "nan"], ["--timeout", "above 0"]),
    (["--base-url", "okx=127.0.0.1:8080"], ["--base-url", "http:// or https://", "okx=https://127.0.0.1:8080"]),
    (["--base-url", "okx"], ["--base-url", "NAME=URL", "okx=https://www.okx.com"]),
    (["--base-url", "kraken=https://x"], ["--base-url", "'kraken'", "okx, binance, binance.futures"]),
    (["--allow", "10.0.0.300"], ["--allow", "'10.0.0.300'"]),
    (["--max-wait", "-1"], ["--max-wait", "0 to 3600"]),
    (["--max-wait", "soon"], ["--max-wait", "0 to 3600", "such as 10", "'soon'"]),
    (["--max-connections", "0"], ["--max-connections", "1 or more", "such as 512"]),
    (["--max-connections", "many"], ["--max-connections", "1 or more", "'many'"]),
    (["--log-level", "loud"], ["--log-level", "'loud'", "debug"]),
    (["--address", "192.0.2.1", "--port", "0"], ["--address 192.0.2.1", "not an address of this machine", "0.0.0.0"]),
    (["--address", "no-such-host.invalid", "--port", "0"], ["--address no-such-host.invalid", "127.0.0.1"]),
])
def test_a_startup_mistake_is_one_line_naming_the_flag_and_the_fix(argv, words):
    assert_one_line(*start(*argv), *words)


def test_a_port_taken_names_the_port_and_suggests_a_free_one(taken_port):
    status, stderr = start("--port", str(taken_port))
    assert_one_line(status, stderr, f"port {taken_port} is already in use", "--port ")
    suggested = int(stderr.rsplit("--port ", 1)[1].split()[0])
    assert suggested != taken_port and suggested not in fmz_plugin.BROWSER_REFUSED_PORTS
    assert suggested == 0 or suggested > taken_port    # free when suggested; a moment later is up to the machine


@pytest.mark.parametrize("code, words", [
    (errno.EAFNOSUPPORT, ["--address ::1", "no IPv6", "--address 127.0.0.1"]),
    (errno.EACCES, ["port 80", "above 1023", "--port 6666"]),
    (errno.EADDRNOTAVAIL, ["--address ::1", "not an address of this machine"]),
])
def test_bind_problems_say_what_to_do(code, words):
    message = fmz_plugin.bind_problem(OSError(code, os.strerror(code)), "::1", 80)
    assert "\n" not in message
    for word in words:
        assert word in message


# ---------------------------------------------------------------------------- FMZ strategy mode

def test_a_port_taken_is_said_in_the_robot_log_and_stops_it(monkeypatch, taken_port):
    fmz = FakeFMZ(monkeypatch, Port=taken_port)
    with pytest.raises(SystemExit) as stopped:
        fmz_plugin.main()
    assert stopped.value.code == 2
    line = fmz.logs.get_nowait()
    assert line.startswith(f"fmz-plugin cannot start: port {taken_port} is already in use")
    assert "choose a free port, e.g. Port " in line and "--port" not in line      # the parameter's name
    assert fmz.logs.empty() and fmz.statuses.empty()


@pytest.mark.parametrize("parameters, words", [
    ({"Port": 99999}, ["strategy parameter Port: wants a port from 1 to 65535", "'99999'"]),
    ({"Timeout": -5}, ["strategy parameter Timeout: wants seconds above 0", "'-5'"]),
    ({"BaseUrls": "okx=127.0.0.1:8080"}, ["BaseUrls okx=127.0.0.1:8080: the URL needs http:// or https://"]),
    ({"Address": "192.0.2.1", "Port": 0}, ["Address 192.0.2.1 is not an address of this machine"]),
])
def test_a_wrong_parameter_is_one_line_in_the_robot_log(monkeypatch, parameters, words):
    fmz = FakeFMZ(monkeypatch, **parameters)
    with pytest.raises(SystemExit):
        fmz_plugin.main()
    line = fmz.logs.get_nowait()
    assert line.startswith("fmz-plugin cannot start: ") and "\n" not in line and "--help" not in line
    for word in words:
        assert word in line, line
    assert fmz.logs.empty()


# ---------------------------------------------------------------------------- paths and messages

@pytest.mark.parametrize("path", ["/api/OKX", "/fmz/okx/", "/OKX?x=1", "//OKX"])
def test_the_exchange_is_the_last_path_segment(okx, path):
    answer = okx.post(json.dumps(okx.envelope("ticker", {"symbol": "BTC_USDT"})).encode(), path=path)
    assert answer["data"]["symbol"] == "BTC_USDT"


def test_an_unknown_exchange_path_names_the_served_ones_and_the_form(okx):
    answer = okx.post(json.dumps(okx.envelope("ticker", {"symbol": "BTC_USDT"})).encode(), path="/api/Kraken")
    assert answer["error"].startswith("unknown exchange path /Kraken: this plugin serves /OKX, /Binance")
    assert "last segment" in answer["error"]


def test_a_timeout_states_the_whole_wait_including_the_retry(okx_fake):
    okx_fake.inject("delay", seconds=1.0, times=2)
    with serving({"okx": okx_fake.url}, timeout=0.2) as (url, _):
        error = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY).error("ticker", symbol="BTC_USDT")
    okx_fake.wait_idle()
    assert error == "OKX: no answer within 0.2s for GET /api/v5/market/ticker (asked twice, up to 0.6s in all)"
