"""The one-file bundle: `python fmz_plugin.py bundle` writes plain source that carries every
module's text, bundles the same bytes each time, keeps only the exchanges asked for, starts
cold from an empty directory with nothing but Python, and runs as an FMZ strategy.

(The whole end-to-end suite also runs against the bundle: see the "bundle" mode in conftest.py.)
"""
import json
import os
import re
import subprocess
import sys

import pytest

import fmz_plugin
from tests.conftest import ROOT, BundledPlugin, PluginClient
from tests.fakes.okx import FakeOKX
from tests.test_status import get, tables_of, refused


def bundle(tmp_path, *argv, name="fmz_plugin.py"):
    """Run the bundle sub-command (from the repository, as a user would) and return its text."""
    out = tmp_path / "out" / name
    done = subprocess.run([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), "bundle", "-o", str(out), *argv],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    return out.read_text(encoding="utf-8")


def repo_text(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        return file.read()


def exchange_paths():
    return [f"exchanges/{module.__name__.split('.')[-1]}.py" for module in fmz_plugin.EXCHANGES.values()]


def test_bundling_twice_gives_the_same_bytes(tmp_path, bundle_path):
    first = bundle(tmp_path, name="a.py")
    assert bundle(tmp_path, name="b.py") == first
    assert bundle_path.read_text(encoding="utf-8") == first     # the file the "bundle" test mode runs


def test_bundle_is_plain_source_carrying_each_module_verbatim(bundle_path):
    text = bundle_path.read_text(encoding="utf-8")
    compile(text, "fmz_plugin.py", "exec")
    assert text.endswith(repo_text("fmz_plugin.py"))             # the core comes last, verbatim
    shared = ["exchanges/_throttle.py", "exchanges/_kit.py", "exchanges/_orders.py"]
    for path in shared + ["exchanges/__init__.py"] + exchange_paths():
        assert f"_bundle_module({path[:-3].replace('/', '.').replace('.__init__', '')!r}, {path!r}, r'''\n" in text
        assert repo_text(path) in text.replace("''' \"'''\" r'''", "'''")
    starts = [text.index(f"{path!r}, r'''") for path in shared + exchange_paths() + ["exchanges/__init__.py"]]
    first = len(shared)
    assert starts[:first] == sorted(starts[:first])                     # _throttle, then _kit, then _orders
    assert starts[first - 1] < min(starts[first:-1]) and max(starts[first:-1]) < starts[-1]    # dependencies first


@pytest.mark.parametrize("text", ["plain", "a'''b", "'''", "ends in a backslash\\", "ends in a quote'",
                                  "''''", "tab\there, \\n and \\'''x"])
def test_module_text_survives_any_quotes_and_backslashes(text):
    assert eval(fmz_plugin._raw_literal(text)) == "\n" + text


def test_bundle_starts_cold_in_an_empty_directory(tmp_path, bundle_path):
    with FakeOKX() as fake:
        plugin = BundledPlugin(bundle_path, {"okx": fake.url}, tmp_path)
        try:
            okx = PluginClient(plugin.url, "OKX", fake.ACCESS_KEY, fake.SECRET_KEY)
            assert okx.error("ticker", symbol="NOPE_USDT").startswith("OKX 51001")
            # the next answer on this connection comes after the error's log line, which is
            # written once its answer is sent (stopped any sooner, the plugin never wrote it)
            assert okx.data("ticker", symbol="BTC_USDT")["buy"] == 50000
            report = json.loads(get(plugin.url)[2])
            assert [row["calls"] for row in report["methods"]] == [2]
        finally:
            plugin.stop()
    log = plugin.log_path.read_text()
    assert "OKX ticker NOPE_USDT" in log and fake.SECRET_KEY.split(",")[0] not in log     # an error's line
    assert os.listdir(tmp_path) == ["plugin.log"]                 # it wrote nothing else


def test_the_bundle_keeps_its_compiled_modules_beside_itself(tmp_path):
    """The first start compiles each carried module and keeps it in __pycache__ beside the file
    (as Python does for the repository); later starts read it back. Not when bytecode writing
    is off."""
    bundle(tmp_path)
    path = tmp_path / "out" / "fmz_plugin.py"
    writing = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run = lambda env: subprocess.run([sys.executable, str(path), "--help"], env=env, capture_output=True, timeout=60)
    assert run(dict(writing, PYTHONDONTWRITEBYTECODE="1")).returncode == 0
    assert not (tmp_path / "out" / "__pycache__").exists()
    assert run(writing).returncode == 0
    kept = sorted(os.listdir(tmp_path / "out" / "__pycache__"))
    assert any(name.startswith("fmz_plugin.py.exchanges._kit.py.") for name in kept)
    assert len(kept) == len(re.findall(r"^_bundle_module\(", path.read_text(), re.M))
    assert run(writing).returncode == 0 and sorted(os.listdir(tmp_path / "out" / "__pycache__")) == kept


def test_bundle_of_some_exchanges_serves_only_those(tmp_path):
    text = bundle(tmp_path, "--exchanges", "OKX, binance")
    assert "from exchanges import binance, okx\n" in text
    assert "'exchanges/bybit.py'" not in text and "    \"bybit\": bybit," not in text
    (tmp_path / "run").mkdir()
    with FakeOKX() as fake:
        plugin = BundledPlugin(tmp_path / "out" / "fmz_plugin.py", {"okx": fake.url}, tmp_path / "run")
        try:
            assert [e["name"] for e in json.loads(get(plugin.url)[2])["exchanges"]] == ["OKX", "Binance"]
            bybit = PluginClient(plugin.url, "Bybit", "k", "s")
            assert "serves /OKX, /Binance" in bybit.error("ticker", symbol="BTC_USDT")
            okx = PluginClient(plugin.url, "OKX", fake.ACCESS_KEY, fake.SECRET_KEY)
            assert okx.data("ticker", symbol="BTC_USDT")["symbol"] == "BTC_USDT"
        finally:
            plugin.stop()


def test_unknown_exchange_name_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), "bundle", "-o", str(tmp_path / "x.py"),
                           "--exchanges", "okx,kraken"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown kraken; there are okx" in done.stderr
    assert not (tmp_path / "x.py").exists()


def test_the_bundle_cannot_bundle_itself(tmp_path, bundle_path):
    done = subprocess.run([sys.executable, "-I", "-S", str(bundle_path), "bundle", "-o", str(tmp_path / "x.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "run bundle from the repository" in done.stderr


# FMZ pastes the file into a Python strategy and runs it with its API and the strategy
# parameters as globals, then calls main(). This harness does the same in a fresh process;
# its Sleep waits for a line on stdin ("stop" raises, as FMZ's does when the robot stops).
FMZ_HARNESS = r'''
import json, sys

class Stopped(Exception):
    pass

def say(kind, text):
    print(kind, json.dumps(text), flush=True)

def Sleep(milliseconds):
    if sys.stdin.readline().strip() == "stop":
        raise Stopped()

strategy = {"__name__": "__main__", "Log": lambda *parts: say("LOG", " ".join(map(str, parts))),
            "LogStatus": lambda text: say("STATUS", text), "Sleep": Sleep, "Port": 0, "BaseUrls": sys.argv[2]}
exec(compile(open(sys.argv[1], encoding="utf-8").read(), "fmz_plugin.py", "exec"), strategy)
try:
    strategy["main"]()
except Stopped:
    say("STOPPED", "")
'''


def test_bundle_runs_as_an_fmz_strategy(tmp_path, bundle_path):
    with FakeOKX() as fake:
        fmz = subprocess.Popen([sys.executable, "-I", "-S", "-c", FMZ_HARNESS, str(bundle_path), f"okx={fake.url}"],
                               cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def next_line(kind):
            line = fmz.stdout.readline()
            assert line.startswith(kind + " "), line
            return json.loads(line[len(kind) + 1:])

        try:
            url = re.search(r"listening on (http://\S+)", next_line("LOG")).group(1)   # not the CLI: main() runs
            next_line("STATUS")
            okx = PluginClient(url, "OKX", fake.ACCESS_KEY, fake.SECRET_KEY)
            okx.data("ticker", symbol="BTC_USDT")
            fmz.stdin.write("tick\n")
            fmz.stdin.flush()
            rows = tables_of(next_line("STATUS"))[1]["Exchanges: methods"]["rows"]
            assert [row[:4] for row in rows] == [["OKX", "ticker", 1, 0]]
            fmz.stdin.write("stop\n")
            fmz.stdin.flush()
            next_line("STOPPED")
            assert fmz.wait(timeout=30) == 0
        finally:
            fmz.kill()
            fmz.stdout.close()
            fmz.stdin.close()
    assert refused(url)
