"""Delivery benchmark: a day's digests through the real stack, beside one task per email.

Run by hand or from `make bench`: `python bench/deliver.py --subscribers 10000`. Needs the local
PostgreSQL (DIGEST_TEST_POSTGRES_URL, default postgres@127.0.0.1:5432/test) and Redis
(DIGEST_TEST_REDIS_URL's server; this uses database 11 and flushes it). Prints JSON lines.

Both runs start from the same seeded database (the bundled corpus, N daily subscribers) and
send through real `celery worker` processes (prefork, --concurrency) into the local SendGrid
server, which validates every body against SendGrid's schema and answers after --delay-ms, like
a real provider's round trip. Wall time runs from the start of planning to the provider's last
accepted message.
- ledger: the product's path. Plan into the ledger, start 4 `digest.send_due` tasks; each
  claims batches of rows (SKIP LOCKED) and sends them over one kept-alive connection.
- one-task-per-email (the baseline): plan the same way, then publish one Celery task per
  ledger row; each task claims its row, loads, renders and sends one message.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from digest.db import get_engine, session_scope  # noqa: E402
from digest.settings import Settings, get_settings  # noqa: E402
from subscribers import ledger  # noqa: E402
from subscribers.models import utcnow  # noqa: E402
from tests import celery_stack as stack  # noqa: E402
from tests.fake_sendgrid import FakeSendGrid  # noqa: E402
from workers import sending  # noqa: E402
from workers.celery_app import app, make_celery  # noqa: E402
from workers.tasks import SENDERS_PER_PLAN, process_transport  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_BASE = os.environ.get("DIGEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)
BROKER_URL = f"{REDIS_BASE[0]}/11"


@app.task(name="bench.send_one")
def send_one_task(delivery_id: int) -> str:
    """The baseline's task: claim one row, load, render and send one message."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.get(ledger.Delivery, delivery_id, with_for_update=True)
        if row is None or row.status != ledger.DeliveryStatus.planned:
            return "not due"
        row.status = ledger.DeliveryStatus.sending
        row.attempts += 1
        row.lease_until = utcnow() + timedelta(minutes=10)
        attempt = row.attempts
    report = sending.SendReport()
    sending.send_one(
        settings=settings,
        transport=process_transport(),
        delivery_id=delivery_id,
        report=report,
        attempt=attempt,
    )
    return "sent" if report.sent else "not sent"


def emit(**figures: object) -> None:
    print(json.dumps({"bench": "deliver", **figures}), flush=True)


def group_usage(pgid: int) -> tuple[dict[str, float], float]:
    """Peak resident memory (VmHWM, MB) of every live process in a process group, and the
    CPU seconds the group has used."""
    found: dict[str, float] = {}
    cpu = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) != pgid:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        role = "worker-main" if int(entry.name) == pgid else f"pool-{entry.name}"
        found[role] = round(int(hwm.split()[1]) / 1024, 1)
    return dict(sorted(found.items())), cpu


def run_mode(mode: str, args: argparse.Namespace, template: str, workdir: Path) -> None:
    """One measured run on a fresh copy of the seeded database."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = stack.create_database(POSTGRES_ADMIN_URL, template=template.rsplit("/", 1)[1])

    redis.Redis.from_url(BROKER_URL).flushdb()
    settings = stack.stack_settings(var_dir=workdir, database_url=url, broker_url=BROKER_URL,
                                    label="bench")
    fake = FakeSendGrid(delay=args.delay_ms / 1000).start()
    env = stack.stack_env(settings, sendgrid_url=fake.url, sendgrid_key=fake.api_key)
    env["PYTHONPATH"] = f"{stack.ROOT}{os.pathsep}{Path(__file__).parent}"
    worker = stack.celery_worker(
        env, workdir, name=mode, concurrency=args.concurrency, extra=["--include", "deliver"]
    )
    client = make_celery(settings)
    try:
        worker.start().wait_ready()
        assert worker.process is not None
        _, worker_cpu_before = group_usage(worker.process.pid)
        own_cpu_before = time.process_time()
        started = time.perf_counter()
        planned = stack.plan_day(settings, args.day)
        plan_s = time.perf_counter() - started
        if mode == "ledger":
            for _ in range(SENDERS_PER_PLAN):
                client.send_task("digest.send_due")
        else:
            with session_scope(url) as session:
                ids = list(
                    session.exec(select(ledger.Delivery.id).order_by(col(ledger.Delivery.id)))
                )
            for delivery_id in ids:
                client.send_task("bench.send_one", args=(delivery_id,), queue="send")
        enqueued_s = time.perf_counter() - started
        while len(fake.accepted) < planned:
            if time.perf_counter() - started > args.timeout or not worker.alive:
                raise SystemExit(f"{mode}: {len(fake.accepted)}/{planned} after {args.timeout}s")
            time.sleep(0.02)
        wall_s = time.perf_counter() - started
        rss, worker_cpu = group_usage(worker.process.pid)
        # This process plans, publishes and hosts the provider (schema validation and all).
        own_cpu = time.process_time() - own_cpu_before
        accepted = stack.accepted_ids(fake.personalizations())
        emit(
            mode=mode,
            subscribers=args.subscribers,
            messages=planned,
            distinct_accepted=len(accepted),
            duplicates=sum(accepted.values()) - len(accepted),
            invalid_bodies=len(fake.invalid),
            concurrency=args.concurrency,
            delay_ms=args.delay_ms,
            plan_seconds=round(plan_s, 2),
            enqueue_seconds=round(enqueued_s - plan_s, 2),
            wall_seconds=round(wall_s, 2),
            messages_per_second=round(planned / wall_s, 1),
            send_messages_per_second=round(planned / (wall_s - plan_s), 1),
            provider_connections=fake.connections,
            worker_cpu_ms_per_message=round((worker_cpu - worker_cpu_before) * 1000 / planned, 2),
            planner_and_provider_cpu_seconds=round(own_cpu, 2),
            peak_rss_mb=rss,
        )
    finally:
        worker.stop()
        client.close()
        fake.stop()
        stack.drop_database(POSTGRES_ADMIN_URL, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--delay-ms", type=float, default=30.0, help="provider round trip")
    parser.add_argument("--concurrency", type=int, default=4, help="worker pool processes")
    parser.add_argument("--modes", default="ledger,one-task-per-email")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-deliver-"))
    template = stack.create_database(POSTGRES_ADMIN_URL)
    try:
        seeding = time.perf_counter()
        seed_settings = Settings(_env_file=None, database_url=template)  # type: ignore[call-arg]
        args.day = stack.seed_stack(seed_settings, args.subscribers)
        get_engine(template).dispose()
        emit(
            what="seed",
            subscribers=args.subscribers,
            seconds=round(time.perf_counter() - seeding, 2),
        )
        for mode in args.modes.split(","):
            run_mode(mode, args, template, workdir / mode)
    finally:
        stack.drop_database(POSTGRES_ADMIN_URL, template)
    emit(
        what="bench-process",
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


if __name__ == "__main__":
    main()
