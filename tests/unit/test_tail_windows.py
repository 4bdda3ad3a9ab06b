"""``benchmarks/tail_windows.py``: its reading of the access log and its window analysis."""

import datetime
import os
import sys

from tests import data

ROOT = data.ROOT
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import pytest  # noqa: E402
import tail_windows  # noqa: E402


def test_reads_json_access_lines_in_the_time_range(tmp_path):
    log = tmp_path / "ours.log"
    log.write_text(
        "[I 261123 15:34:01 index_base:120] serving on port 8000\n"
        '{"time":"2026-11-23T15:34:05.572+00:00","method":"POST","path":"/v1/query","status":200,'
        '"duration_ms":2.667,"request_id":"a1","route":"/v1/query/?"}\n'
        '{"time":"2026-11-23T15:34:07.100+00:00","method":"GET","path":"/v1/metadata","status":200,'
        '"duration_ms":1.5,"request_id":"a2","route":"/v1/metadata/?"}\n'
        '{"message": "not an access line"}\n')
    since = datetime.datetime(2026, 11, 23, 15, 34, 5, tzinfo=datetime.timezone.utc).timestamp()
    rows = tail_windows.read_access_log(str(log), since, since + 1.0)
    assert rows == [(pytest.approx(since + 0.572), pytest.approx(0.002667))]


def test_tail_in_slow_windows_is_attributed_to_them():
    # 20 windows of 100 ms: 15 fast ones (40 requests of 10 ms), 5 slow ones (10 requests
    # of 40 ms); inside every window all requests take the same time
    rows = []
    for w in range(21):  # the 21st window is dropped as cut short
        slow = w % 4 == 0
        n, duration = (10, 0.040) if slow else (40, 0.010)
        rows += [(w * 0.1 + (i + 0.5) * 0.1 / n, duration) for i in range(n)]
    lines = tail_windows.analyse(rows, 0.1, 32, start=0.0)
    text = "\n".join(lines)
    assert "windows of 100 ms: 20" in text
    assert "slowest 100, median 400, fastest 400 (fastest/slowest 4.0)" in text
    assert "p90/median 1.00, max/median 1.00" in text
    assert "of which 50 (100%) in the slowest quarter" in text
    assert "p99 40.0 ms" in text
    assert "slowest-quarter median throughput = 320.0 ms; / median throughput = 80.0 ms" in text
