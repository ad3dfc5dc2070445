"""The benchmark runs from a clone with nothing beside the repository: the guide's reference
program is measured only when the guide is given (--guide), skipped with one line otherwise.
(A benchmark, not a test of speed: nothing about its figures is asserted here.)"""
import shutil
import subprocess
import sys

from tests.conftest import ROOT

REPOSITORY = ["fmz_plugin.py", "exchanges", "tests", "benchmarks", "README.md", "LICENSE"]


def test_the_benchmark_runs_in_a_clone_without_the_guide(tmp_path):
    clone = tmp_path / "clone"                   # no ../shared beside it, as in a user's clone
    clone.mkdir()
    for name in REPOSITORY:
        source = ROOT + "/" + name
        if name.endswith((".py", ".md")) or name == "LICENSE":
            shutil.copy(source, clone / name)
        else:
            shutil.copytree(source, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "benchmarks/bench.py", "--seconds", "0.05", "--rounds", "1", "--robots", "4"],
                          cwd=clone,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Reference rows skipped: they run the FMZ guide's example, and the guide is not "
                               "here (give --guide PATH;")
    assert sum("skipped" in line for line in lines) == 1
    assert any(line.startswith("| plugin | OKX | ticker | 1 |") for line in lines)
    assert any(line.startswith("| plugin, from its stream | OKX | ticker | 1 |") for line in lines)
    assert not any(line.startswith("| reference |") for line in lines)


def test_a_guide_that_is_not_there_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, ROOT + "/benchmarks/bench.py", "--guide", str(tmp_path / "nope.txt")],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.strip() == \
        f"--guide {tmp_path / 'nope.txt'}: no such file (give the FMZ guide's text, or leave --guide out)"
