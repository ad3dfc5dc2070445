"""Loads the bundled plugin once, then forks one fresh plugin process per request.

    python3 -I -S tests/bundle_forker.py dist/fmz_plugin.py      (see conftest.BundleForker)

Each line on stdin is a JSON list of command-line arguments; the forked child runs the
bundle's own `run(argv)` exactly as `python3 fmz_plugin.py ARGS` would after loading the file,
and this process answers one line "PID URL" once the child listens ("PID failed" if it did
not; the child's error is on stderr). Forking spares each test the interpreter start and the
bundle's compile (about 0.2 s of CPU); the cold start itself is tested in tests/test_bundle.py.
Standard library only, no threads, so fork is safe.
"""
import json
import os
import runpy
import signal
import sys


def start_child(plugin, argv):
    banner_read, banner_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(banner_read)
        os.dup2(banner_write, 1)
        try:
            plugin["run"](argv)
        finally:
            os._exit(0)
    os.close(banner_write)
    with os.fdopen(banner_read) as banner:
        first_line = banner.readline()       # "fmz-plugin 0.1.0 listening on http://127.0.0.1:PORT"
    _, found, url = first_line.partition(" listening on ")
    return pid, url.split()[0] if found else "failed"    # the child's error went to stderr


def main():
    plugin = runpy.run_path(sys.argv[1], run_name="fmz_plugin_bundle")   # not __main__: serve nothing yet
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)                        # children reap themselves
    for line in sys.stdin:
        pid, url = start_child(plugin, json.loads(line))
        print(pid, url, flush=True)


if __name__ == "__main__":
    main()
