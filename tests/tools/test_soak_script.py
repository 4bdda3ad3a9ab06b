"""``benchmarks/soak.py`` keeps working: a few seconds of it pass on the demo API."""

import os
import subprocess
import sys
from tests import data

ROOT = data.ROOT


def test_short_soak_passes(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--duration=3", "--warmup=1", "--connections=8",
         f"--data-dir={tmp_path / 'data'}"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Result: PASS" in result.stdout
    assert "| unexpected statuses | 0 |" in result.stdout
