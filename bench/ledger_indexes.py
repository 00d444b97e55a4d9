"""What the ledger's indexes cost a send run, on PostgreSQL.

    python bench/ledger_indexes.py --history 100000 --open 30000

Every claim and every outcome changes a row's status, so each writes a new entry into every
index of `delivery`. Migration 0016 dropped two that no query needed (`ix_delivery_subscriber_id`,
which `uq_delivery` covers, and `ix_delivery_next_attempt_at`). This drains the same day's open
rows, claim after claim, each recorded sent (bench/claims.py's `drain`), with today's indexes
and, as the baseline, with those two built again; the two alternate, twice each, on one
database. Prints JSON: seconds and PostgreSQL CPU for each run, then the ratios of the means.
Needs the local PostgreSQL (DIGEST_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from bench.claims import READERS, drain, fill  # noqa: E402
from bench.machine import MachineCpu  # noqa: E402
from core.db import get_engine, session_scope  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.support import celery_stack as stack  # noqa: E402
from workers import migrate  # noqa: E402

POSTGRES_ADMIN_URL = stack.POSTGRES_ADMIN_URL
DROPPED = {"ix_delivery_subscriber_id": "subscriber_id",
           "ix_delivery_next_attempt_at": "next_attempt_at"}  # migration 0016


def set_indexes(url: str, *, dropped_ones_too: bool) -> None:
    """Today's indexes, or today's and the two 0016 dropped, over an empty ledger (`fill`
    writes the next): TRUNCATE, so that every run starts from compact indexes, as the first
    does (a DELETE would leave each later run's indexes twice the size)."""
    with session_scope(url) as session:
        for name, column in DROPPED.items():
            session.execute(text(
                f"CREATE INDEX IF NOT EXISTS {name} ON delivery ({column})" if dropped_ones_too
                else f"DROP INDEX IF EXISTS {name}"))
        session.execute(text("TRUNCATE delivery"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=100_000, help="earlier days' sent rows")
    parser.add_argument("--open", type=int, default=30_000, help="today's planned rows")
    parser.add_argument("--batch", type=int, default=200, help="rows a claim takes")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args()
    url = stack.create_database(POSTGRES_ADMIN_URL)
    runs: dict[str, list[dict[str, float]]] = {"today": [], "with_the_two_dropped": []}
    try:
        settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
        migrate.upgrade(settings)
        stack.add_subscribers(settings, READERS)
        for _ in range(args.rounds):
            for mode, figures in runs.items():
                set_indexes(url, dropped_ones_too=mode != "today")
                fill(url, history=args.history, open_rows=args.open)
                before = MachineCpu.now()
                rows, seconds, _claiming = drain(url, args.batch)
                machine = MachineCpu.now().since(before)
                run = {"rows": rows, "seconds": round(seconds, 2),
                       "postgres_cpu_seconds": machine["postgres_cpu_seconds"]}
                figures.append(run)
                print(json.dumps({"bench": "ledger_indexes", "mode": mode, **run}), flush=True)
    finally:
        get_engine(url).dispose()
        stack.drop_database(POSTGRES_ADMIN_URL, url)

    def mean(mode: str, key: str) -> float:
        return statistics.mean(run[key] for run in runs[mode])

    print(json.dumps({
        "bench": "ledger_indexes",
        "run_speedup": round(mean("with_the_two_dropped", "seconds") / mean("today", "seconds"), 2),
        "postgres_cpu_ratio": round(mean("with_the_two_dropped", "postgres_cpu_seconds")
                                    / max(mean("today", "postgres_cpu_seconds"), 0.01), 2),
    }))


if __name__ == "__main__":
    main()
