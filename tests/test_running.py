"""Running for days (#26): --version says which version runs, --log-file writes the log to a file
the standard library rotates, and a log file that cannot be written is one line at startup."""
import logging
import os
import re
import subprocess
import sys

import fmz_plugin
from tests.conftest import ROOT, PluginClient
from tests.test_startup import assert_one_line, start


def test_version_prints_the_version_and_exits():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), "--version"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"fmz-plugin {fmz_plugin.__version__}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+", fmz_plugin.__version__)


def test_the_log_file_gets_the_log_and_is_rotated(tmp_path, okx_fake):
    path = tmp_path / "plugin.log"
    plugin = subprocess.Popen([sys.executable, os.path.join(ROOT, "fmz_plugin.py"), "--port", "0", "--status-port", "0",
                               "--log-file", str(path), "--base-url", f"okx={okx_fake.url}", "--no-throttle"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path)
    try:
        url = re.search(r"listening on (http://\S+)", plugin.stdout.readline()).group(1)
        client = PluginClient(url, "OKX", okx_fake.ACCESS_KEY, okx_fake.SECRET_KEY)
        assert client.data("ticker", symbol="BTC_USDT")
        client.error("tiker", symbol="BTC_USDT")
    finally:
        plugin.terminate()
        plugin.wait(timeout=30)
    out, err = plugin.stdout.read(), plugin.stderr.read()         # read() keeps what readline() buffered
    plugin.stdout.close(), plugin.stderr.close()
    assert f"Log: {path}" in out and err == ""                       # nothing on stderr: all in the file
    text = path.read_text()                 # lines logged before each answer was sent (new request shapes)
    assert " INFO the docker sent a new request shape: OKX method ticker, " in text
    assert " INFO the docker sent a new request shape: OKX method tiker, " in text
    assert okx_fake.SECRET_KEY.split(",")[0] not in text and okx_fake.ACCESS_KEY not in text


def test_the_log_file_handler_rotates_at_its_size(tmp_path):
    args = fmz_plugin.parse_args(["--log-file", str(tmp_path / "p.log")])
    [handler] = fmz_plugin.log_handlers(args)
    try:
        assert isinstance(handler, logging.handlers.RotatingFileHandler)
        assert handler.maxBytes == fmz_plugin.LOG_FILE_MB * 1024 * 1024 and handler.backupCount == fmz_plugin.LOG_FILES_KEPT
    finally:
        handler.close()
    assert [type(h) for h in fmz_plugin.log_handlers(fmz_plugin.parse_args([]))] == [logging.StreamHandler]


def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path):
    assert_one_line(*start("--port", "0", "--log-file", str(tmp_path / "no-such-folder" / "p.log")),
                    "--log-file", "cannot be written: No such file or directory")
