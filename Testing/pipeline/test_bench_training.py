"""benchmarks/bench_training.py, the GPU training benchmark, in its tiny setting on the
CPU: it prepares the cases with the chain's steps, trains the three networks, prints
the table and writes it into the README between its markers (once, however often)."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from uncertaintyseg.files.phantom import write_phantom_case

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_training.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_replaces_the_one_between_the_markers(tmp_path):
    bench = _module()
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nintro\n")
    bench.write_readme(readme, "first table\n")
    bench.write_readme(readme, "second table\n")
    text = readme.read_text()
    assert text.count(bench.MARKERS[0]) == 1 and "first table" not in text
    assert text.startswith("# title\n\nintro\n") and "second table\n" in text


@pytest.mark.slow
def test_the_tiny_benchmark_trains_the_three_networks_on_the_cpu(tmp_path):
    for seed in range(2):
        write_phantom_case(tmp_path / "cases", seed=seed)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "benchmarks" / "README.md", readme)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(tmp_path / "cases"), "--cases", "2",
         "--iterations", "3", "--tiny", "--device", "cpu", "--work", str(tmp_path / "work"),
         "--write-readme", "--readme", str(readme)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    for network in ("2d", "3d", "full3d"):
        # batch, iterations per second, no GPU memory off CUDA, a wait share
        assert re.search(rf"^\| {network} \| \d+ \| [\d.]+ \| - \| \d+% \|$", done.stdout,
                         re.M), done.stdout
    assert "setting: tiny preset's networks, 3 iterations each, 2 cases" in done.stdout
    table = readme.read_text().split("<!-- bench_training: start -->")[1]
    assert "| full3d | 1 |" in table.split("<!-- bench_training: end -->")[0]
