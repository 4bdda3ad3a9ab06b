"""``benchmarks/probe_under_load.py`` keeps working: one short case on a small index."""

import os
import subprocess
import sys
from tests import data

ROOT = data.ROOT


def test_probe_script_reports_each_case(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/probe_under_load.py", "--copies=1", "--seconds=0.5", "--cases=none,refused", "--idle=0",
         f"--data-dir={tmp_path / 'data'}"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| none ", "| refused "))]
    assert len(rows) == 2 and "x 400" in rows[1]  # the over-budget batch is refused before searching
