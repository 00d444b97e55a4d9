"""Every benchmark that needs no Celery stack still runs, at a toy size.

Timings are not checked (benchmarks measure, tests do not assert speed): this only keeps
`make bench` from rotting when the code it drives changes shape, as bench/render.py once did
when daily renders gained the saved-papers block. bench/deliver.py and bench/monthly.py run a
PostgreSQL + Redis + Celery stack for minutes and are left to `make bench`; bench/sender.py
needs PostgreSQL alone and runs here (skipped on a laptop without it, as the other
PostgreSQL tests are).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[1]
TOY_SIZES = {
    "render.py": ["--messages", "40", "--baseline", "5"],
    "rank.py": ["--profiles", "500", "--baseline", "50"],
    "http_client.py": ["--requests", "50"],
    "signup_load.py": ["--seconds", "1"],
    "clips.py": ["--clips", "10", "--pages", "3"],
    "admin.py": ["--subscribers", "50"],
    "monthly_send.py": ["--subscribers", "30"],
    "sender.py": ["--subscribers", "30", "--papers", "400", "--phases"],
}
NEEDS_POSTGRES = {"sender.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TOY_SIZES))
def test_the_benchmark_runs_and_prints_json_figures(script: str, tmp_path: Path) -> None:
    if script in NEEDS_POSTGRES:
        require_service("PostgreSQL", "127.0.0.1", 5432)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *TOY_SIZES[script]],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert rows, result.stdout
    assert not [row for row in rows if "error" in row], rows
