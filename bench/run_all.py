"""`make bench`: run every benchmark in bench/, collect their JSON lines into
bench/results.json, and print a readable table. Each benchmark measures its own baseline.

Run by a developer or CI by hand (not part of `make test`: timings are not assertions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
# (name, arguments): the headline sizes; each script documents its own options.
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("rank.py", ["--profiles", "100000"]),
    ("render.py", ["--messages", "2000"]),
    ("signup_load.py", []),
    ("deliver.py", ["--subscribers", "3000"]),
    ("clips.py", ["--clips", "300", "--pages", "40"]),
    ("admin.py", ["--subscribers", "5000"]),
]


def run(script: str, args: list[str]) -> list[dict[str, object]]:
    """Run one benchmark script and parse the JSON lines it prints."""
    path = HERE / script
    if not path.exists():
        return [{"bench": script, "skipped": "script not present"}]
    result = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True)
    rows = []
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            row.setdefault("bench", script)
            rows.append(row)
    if result.returncode != 0:
        rows.append({"bench": script, "error": result.stderr.strip().splitlines()[-1:]})
    return rows


def main() -> None:
    results = [row for script, args in BENCHMARKS for row in run(script, args)]
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for row in results:
        bench = row.pop("bench")
        print(f"{bench:16} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"\nwrote {HERE / 'results.json'}")


if __name__ == "__main__":
    main()
