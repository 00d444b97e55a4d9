"""What keeps parallel test processes apart: `make test` runs the suite in several pytest-xdist
workers (gw0, gw1, ...) on one machine, beside other developers' runs.

Each worker has its own PostgreSQL databases (named after the worker, see tests/conftest.py),
its own Redis database for `redis_url`, its own tmp_path tree (pytest-xdist gives each worker
a base folder of its own) and free ports from the kernel (port 0). Celery tests claim a Redis
database of their own among others (celery_stack.claim_redis_db). Run alone (`pytest
tests/test_x.py::test_y`), the process is "main" and takes the first of everything.
"""

from __future__ import annotations

import os

# "gw0", "gw1", ... inside a pytest-xdist worker; unset when pytest runs in one process.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_INDEX = int(WORKER.removeprefix("gw")) if WORKER.startswith("gw") else 0
WORKER_NAME = WORKER or "main"

# Redis databases for the `redis_url` fixture, one per worker: none of 1-5 (developers' own
# runs) nor 8-10 and 12-14 (celery_stack.claim_redis_db hands those to the Celery tests).
REDIS_TEST_DBS = (15, 11, 7, 6)


def worker_redis_url(url: str, index: int = WORKER_INDEX) -> str:
    """`url` (DIGEST_TEST_REDIS_URL) for worker `index`: worker 0 keeps its database, the
    others take the next of REDIS_TEST_DBS (shared again past four workers: the tests that use
    it write keys no other test writes)."""
    base, _, db = url.rpartition("/")
    if not base.startswith("redis") or not db.isdigit():  # no database named: db 0
        base, db = url.rstrip("/"), "0"
    dbs = [int(db)] + [n for n in REDIS_TEST_DBS if n != int(db)]
    return f"{base}/{dbs[index % len(dbs)]}"
