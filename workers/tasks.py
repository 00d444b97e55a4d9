"""Thin Celery tasks around `workers.jobs`: nothing in, re-read the world from the database.

Every task is idempotent: planning writes ledger rows under a unique key, sending claims rows
under a lease, so a redelivered or duplicated task does no harm.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from typing import Any

from celery.signals import worker_process_init, worker_ready

from core.batch_gc import freeze_long_lived
from core.settings import get_settings
from emails.transports import Transport, make_transport
from workers import jobs, planning, sending
from workers.celery_app import app

log = logging.getLogger("digest.tasks")

# Parallel senders started per planning run; each drains the ledger until nothing is due.
SENDERS_PER_PLAN = 4
# A send task stops claiming after this long and queues its successor, so a worker asked to
# stop (deploys, compose's 60 s grace period) never has to kill a long drain mid-way.
SEND_RUN_SECONDS = 30.0


@worker_process_init.connect  # each pool process of a prefork worker, after the fork
@worker_ready.connect  # the worker's own process (the solo and threads pools run tasks there)
def _freeze_startup_heap(**_: Any) -> None:
    """What a worker loaded to start lives to its end: out of the collector's walks."""
    freeze_long_lived()


@functools.cache
def process_transport() -> Transport:
    """One transport per worker process (made after the fork), so connections are reused."""
    return make_transport(get_settings())


@app.task(name="digest.ingest_listings")
def ingest_listings() -> dict[str, Any]:
    """Fetch and store today's RSS listings, then plan whoever is due."""
    report = jobs.ingest_listings(settings=get_settings())
    plan_due.delay()
    return {"added": report.added, "updated": report.updated}


@app.task(name="digest.plan_due")
def plan_due() -> dict[str, Any]:
    """Plan digests for subscribers whose local send hour has come, then start senders."""
    report = planning.plan_due(settings=get_settings(), now=datetime.now(UTC))
    if report.planned:
        for _ in range(SENDERS_PER_PLAN):
            send_due.delay()
    return {"planned": report.planned, "due": report.due}


@app.task(name="digest.send_due")
def send_due() -> dict[str, Any]:
    """Drain due ledger rows (SKIP LOCKED keeps parallel senders apart).

    A run that pauses itself (too many failures in a row) has logged why; the sweeper starts
    sending again once the released rows are due.
    """
    # Every kind of mail; rows that render alike share a request where the transport can.
    report = sending.send_due(
        settings=get_settings(), transport=process_transport(), run_for=SEND_RUN_SECONDS
    )
    if report.more:
        send_due.delay()  # a fresh task carries on: a worker can stop within its grace period
    if report.handled:
        log.info(
            "sent %d, retrying %d, failed %d, skipped %d",
            report.sent, report.retried, report.failed, report.skipped,
        )  # fmt: skip
    return {
        "sent": report.sent,
        "retried": report.retried,
        "failed": report.failed,
        "skipped": report.skipped,
        "paused": report.paused,
    }


@app.task(name="digest.sweep")
def sweep() -> dict[str, int]:
    """Prune stale signups and restart sending if rows are due (expired leases, retries)."""
    settings = get_settings()
    swept = jobs.sweep(settings=settings, now=datetime.now(UTC))
    if swept.due:
        send_due.delay()
    return {"due": swept.due, "pruned": swept.pruned}


@app.task(name="digest.ingest_trending")
def ingest_trending() -> dict[str, int]:
    """Store today's trending papers and their upvotes (UTC day, as the API keys them)."""
    report = jobs.ingest_trending(settings=get_settings(), day=datetime.now(UTC).date())
    return {"papers_added": report.papers_added, "scores": report.total}
