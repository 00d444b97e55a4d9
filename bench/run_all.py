"""`make bench`: run every benchmark in bench/, collect their JSON lines into
bench/results.json, and write a readable table to bench/RESULTS.md (also printed).

Run by a developer or CI by hand (not part of `make test`: timings are not assertions):
    python bench/run_all.py --quick      # CI-sized: 10k subscribers end to end, a few minutes
    python bench/run_all.py              # the headline sizes: 100k subscribers, 1M profiles
    python bench/run_all.py --only render,deliver
Each benchmark measures its own baseline in the same run: trust the ratios on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
# name -> (quick arguments, headline arguments); each script documents its own options.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "rank": (["--profiles", "20000"], ["--profiles", "100000"]),
    "rank-1m": (["--profiles", "100000", "--baseline", "500"],
                ["--profiles", "1000000", "--baseline", "2000"]),
    "render": (["--messages", "2000"], ["--messages", "20000"]),
    "signup_load": (["--seconds", "3"], []),
    "deliver": (["--subscribers", "10000"], ["--subscribers", "100000"]),
    # One sender in-process, its CPU by part (bench/deliver.py's worker figure, split).
    "sender": (["--subscribers", "10000", "--phases"], ["--subscribers", "100000", "--phases"]),
    "http_client": (["--requests", "1000"], ["--requests", "5000"]),
    # Monthly broadcast at 100k on PostgreSQL (bench/monthly.py), and the monthly engineer's
    # SQLite-sized bench (its baseline keeps every body in memory: keep it small).
    "monthly": (["--recipients", "10000"], ["--recipients", "100000"]),
    "monthly_send": (["--subscribers", "2000"], ["--subscribers", "5000"]),
    # Claiming a day's digests beside a sent history, with and without the open-rows index.
    "claims": (["--history", "100000", "--open", "10000"], []),
    # The same drain with today's ledger indexes and with the two migration 0016 dropped.
    "ledger_indexes": (["--history", "50000", "--open", "10000"], []),
    "clips": (["--clips", "300", "--pages", "40"], ["--clips", "300", "--pages", "40"]),
    "admin": (["--subscribers", "5000"], ["--subscribers", "5000"]),
}  # fmt: skip


def script_for(name: str) -> Path:
    return HERE / f"{name.split('-')[0]}.py"


def run(name: str, args: list[str]) -> list[dict[str, object]]:
    """Run one benchmark script and parse the JSON lines it prints."""
    path = script_for(name)
    if not path.exists():
        return [{"bench": name, "skipped": "script not present"}]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, env=env
    )
    rows = []
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            row["bench"] = name
            rows.append(row)
    if result.returncode != 0:
        rows.append({"bench": name, "error": (result.stderr.strip().splitlines() or ["?"])[-1]})
    seconds = round(time.perf_counter() - started, 1)
    rows.append({"bench": name, "what": "runner", "seconds": seconds})
    return rows


def machine() -> dict[str, object]:
    """Where the figures came from, and how busy it was when they were taken."""
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "load_average_1m_at_start": round(load[0], 2),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(mode: str, host: dict[str, object], results: list[dict[str, object]]) -> str:
    """One table per benchmark: a row per JSON line, a column per figure."""
    lines = [f"# Benchmark results ({mode})", ""]
    lines.append(", ".join(f"{k}: {v}" for k, v in host.items()))
    lines.append("")
    for name in dict.fromkeys(str(row["bench"]) for row in results):
        rows = [{k: v for k, v in row.items() if k != "bench"} for row in results
                if row["bench"] == name]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        lines += [f"## {name}", "", "| " + " | ".join(columns) + " |",
                  "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text.replace("|", "\\|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized runs")
    parser.add_argument("--only", default="", help="comma-separated names: " + ",".join(BENCHMARKS))
    args = parser.parse_args()
    wanted = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(wanted) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    mode = "quick" if args.quick else "headline"
    host = machine()
    results: list[dict[str, object]] = []
    for name in wanted:
        print(f"running {name} ({mode}) ...", file=sys.stderr, flush=True)
        results += run(name, BENCHMARKS[name][0 if args.quick else 1])
    (HERE / "results.json").write_text(
        json.dumps({"mode": mode, "machine": host, "results": results}, indent=2) + "\n"
    )
    table = markdown(mode, host, results)
    (HERE / "RESULTS.md").write_text(table + "\n")
    print(table)
    print(f"wrote {HERE / 'results.json'} and {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
