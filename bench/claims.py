"""Claiming a day's digests from a ledger that holds earlier days' history, on PostgreSQL.

    python bench/claims.py --history 300000 --open 20000

A sender claims the oldest due rows in id order (`ledger.claim`: ORDER BY id LIMIT n, FOR
UPDATE SKIP LOCKED) and records them sent, batch after batch, until none is due. Earlier
days' rows, all sent, sit before today's in id order. The run is timed twice on the same
database: with the partial index of open rows (`ix_delivery_open`, migration 0015) and, as
the baseline, without it. Prints JSON: seconds and PostgreSQL CPU for each, and their ratio.
Needs the local PostgreSQL (DIGEST_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from bench.machine import MachineCpu  # noqa: E402
from core.db import get_engine, session_scope  # noqa: E402
from core.settings import Settings  # noqa: E402
from subscribers import ledger  # noqa: E402
from tests.support import celery_stack as stack  # noqa: E402
from workers import migrate  # noqa: E402

POSTGRES_ADMIN_URL = stack.POSTGRES_ADMIN_URL
READERS = 1000  # deliveries spread over this many subscribers, one row per reader and day


def fill(url: str, *, history: int, open_rows: int) -> None:
    """`history` sent rows, then `open_rows` planned ones (later ids), and fresh statistics."""
    with session_scope(url) as session:
        for first, count, status in ((0, history, "sent"), (history, open_rows, "planned")):
            session.execute(
                text(
                    "INSERT INTO delivery (subscriber_id, kind, period, status, payload, attempts,"
                    " next_attempt_at, created_at, share)"
                    " SELECT 1 + n % :readers, 'daily', 'day ' || (n / :readers), "
                    " CAST(:status AS deliverystatus), CAST('{\"matches\": []}' AS json), 0,"
                    " now() - interval '1 minute', now(), md5(n::text)"
                    " FROM generate_series(:first, :last) AS n"
                ),
                {"readers": READERS, "status": status, "first": first,
                 "last": first + count - 1},
            )  # fmt: skip
    with get_engine(url).connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE delivery")
        )


def drain(url: str, batch: int) -> tuple[int, float, float]:
    """Claim and record sent until nothing is due: (rows, seconds, seconds in the claims)."""
    started = time.perf_counter()
    rows, claiming = 0, 0.0
    while True:
        with session_scope(url) as session:
            before = time.perf_counter()
            claims = ledger.claim(session=session, limit=batch, lease=timedelta(minutes=5))
            claiming += time.perf_counter() - before
            ledger.set_outcome(session=session, ids=[c.id for c in claims],
                               status=ledger.DeliveryStatus.sent, provider_message_id="bench")
        if not claims:
            return rows, time.perf_counter() - started, claiming
        rows += len(claims)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=300_000, help="earlier days' sent rows")
    parser.add_argument("--open", type=int, default=20_000, help="today's planned rows")
    parser.add_argument("--batch", type=int, default=200, help="rows a claim takes")
    args = parser.parse_args()
    url = stack.create_database(POSTGRES_ADMIN_URL)
    figures: dict[str, dict[str, float]] = {}
    try:
        settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
        migrate.upgrade(settings)
        stack.add_subscribers(settings, READERS)
        for mode in ("open_index", "without_open_index"):
            if mode == "without_open_index":
                with session_scope(url) as session:
                    session.execute(text("DROP INDEX ix_delivery_open"))
                    # TRUNCATE: compact indexes, as the first run has (a DELETE leaves them bloated)
                    session.execute(text("TRUNCATE delivery"))
            fill(url, history=args.history, open_rows=args.open)
            before = MachineCpu.now()
            rows, seconds, claiming = drain(url, args.batch)
            machine = MachineCpu.now().since(before)
            figures[mode] = {"rows": rows, "seconds": round(seconds, 2),
                             "ms_per_claim": round(claiming * 1000 / -(-rows // args.batch), 2),
                             "postgres_cpu_seconds": machine["postgres_cpu_seconds"]}  # fmt: skip
            print(json.dumps({"bench": "claims", "mode": mode, "history": args.history,
                              "batch": args.batch, **figures[mode]}), flush=True)  # fmt: skip
    finally:
        get_engine(url).dispose()
        stack.drop_database(POSTGRES_ADMIN_URL, url)
    with_index, without = figures["open_index"], figures["without_open_index"]
    ratio = {
        "bench": "claims",
        "claim_speedup": round(without["ms_per_claim"] / with_index["ms_per_claim"], 2),
        "run_speedup": round(without["seconds"] / with_index["seconds"], 2),
        "postgres_cpu_ratio": round(
            without["postgres_cpu_seconds"] / max(with_index["postgres_cpu_seconds"], 0.01), 2
        ),
    }
    print(json.dumps(ratio))


if __name__ == "__main__":
    main()
