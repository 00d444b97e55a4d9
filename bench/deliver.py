"""End-to-end delivery benchmark: a day's digests through the real stack, beside one Celery
task per email, in the same run.

Run by hand or from `make bench`:
    python bench/deliver.py --subscribers 10000           # CI-sized
    python bench/deliver.py --subscribers 100000          # the headline
Needs the local PostgreSQL (DIGEST_TEST_POSTGRES_URL, default postgres@127.0.0.1:5432/test)
and Redis (DIGEST_TEST_REDIS_URL's server; it claims a free database the way the Celery tests
do, and flushes it). Prints JSON.

Both modes start from the same seeded database: the bundled corpus padded to --papers with
reworded copies, N daily subscribers with 1-4 keywords each from a realistic speech/audio
vocabulary. Mail goes through real `celery worker` processes (prefork) into a local SendGrid v3
server in its own process, which validates every body against SendGrid's schema and answers
after --delay-ms. Wall time runs from the start of planning to the provider's last accepted
message.
- ledger (the product): plan_daily streams subscribers in chunks; after each committed chunk
  `digest.send_due` tasks start, and each claims batches, sends them in concurrent waves over
  kept-alive connections, with one render per distinct digest.
- one-task-per-email (the baseline): plan the same way, then publish one task per ledger row;
  each claims its row, loads, renders and sends one message. It runs on --baseline-subscribers
  (its rate does not change with N, and 100k would take most of an hour).
Database round trips are counted in every process (statements + BEGIN/COMMIT through
SQLAlchemy; the planner's COPY adds 4 per 1,000 digests, counted by hand).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import col, select  # noqa: E402

from bench.machine import MachineCpu  # noqa: E402
from core.db import get_engine, session_scope  # noqa: E402
from core.settings import Settings, get_settings  # noqa: E402
from digest.papers import papers_since  # noqa: E402
from digest.semantic import embed_papers  # noqa: E402
from subscribers import ledger  # noqa: E402
from subscribers.models import utcnow  # noqa: E402
from tests.support import celery_stack as stack  # noqa: E402
from workers.celery_app import app, make_celery  # noqa: E402
from workers.compose import render_row  # noqa: E402
from workers.tasks import SENDERS_PER_PLAN, process_transport  # noqa: E402

POSTGRES_ADMIN_URL = stack.POSTGRES_ADMIN_URL
REDIS_SERVER = os.environ.get("DIGEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
COUNT_DIR_ENV = "DIGEST_BENCH_COUNT_DIR"

# --- database round trips, counted in whichever process imports this module -----------------

_trips = {"pid": 0, "n": 0}


def _count(*_: Any) -> None:
    if _trips["pid"] != os.getpid():  # a forked pool process starts its own count
        _trips.update(pid=os.getpid(), n=0)
        if os.environ.get(COUNT_DIR_ENV):
            threading.Thread(target=_dump_trips, daemon=True).start()
    _trips["n"] += 1


def _dump_trips() -> None:
    path = Path(os.environ[COUNT_DIR_ENV]) / f"{os.getpid()}.count"
    while True:
        path.write_text(str(_trips["n"]))
        time.sleep(0.2)


for _name in ("before_cursor_execute", "begin", "commit", "rollback"):
    event.listen(Engine, _name, _count)


def worker_trips(directory: Path) -> int:
    return sum(int(p.read_text() or 0) for p in directory.glob("*.count"))


# --- the baseline's task ---------------------------------------------------------------------


@app.task(name="bench.send_one")
def send_one_task(delivery_id: int) -> str:
    """The baseline's task: claim one row, load and render it, send one message, record."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.get(ledger.Delivery, delivery_id, with_for_update=True)
        if row is None or row.status != ledger.DeliveryStatus.planned:
            return "not due"
        row.status = ledger.DeliveryStatus.sending
        row.attempts += 1
        row.lease_until = utcnow() + timedelta(minutes=10)
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.get(ledger.Delivery, delivery_id, with_for_update=True)
        message = render_row(settings, session, row) if row else None
        if message is None:
            ledger.set_outcome(session=session, ids=[delivery_id],
                               status=ledger.DeliveryStatus.skipped, error="no longer applies")
            return "not sent"
        message_id = process_transport().send(message)
        ledger.mark_sent(session=session, sent=[(delivery_id, message_id)])
    return "sent"


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
    from bench.hand_over import hand_over_floor
    from bench.provider import ProviderProcess
    from workers.planning import plan_daily

    subscribers = args.subscribers if mode == "ledger" else args.baseline_subscribers
    processes = args.concurrency if mode == "ledger" else args.baseline_concurrency
    workdir.mkdir(parents=True, exist_ok=True)
    counts = workdir / "counts"
    counts.mkdir()
    url = stack.create_database(POSTGRES_ADMIN_URL, template=template.rsplit("/", 1)[1])
    with session_scope(url) as session:
        session.execute(text("DELETE FROM subscriber WHERE id > :n"), {"n": subscribers})
    get_engine(url).dispose()

    broker_url = args.broker_url
    stack.flush_keeping_claim(broker_url)
    settings = stack.stack_settings(
        var_dir=workdir, database_url=url, broker_url=broker_url, label="bench"
    ).model_copy(update={"send_concurrency": args.send_concurrency})
    provider = ProviderProcess(args.delay_ms / 1000).start()
    env = stack.stack_env(settings, sendgrid_url=provider.url, sendgrid_key=provider.api_key)
    env["PYTHONPATH"] = f"{stack.ROOT}{os.pathsep}{Path(__file__).parent}"
    env["DIGEST_SEND_CONCURRENCY"] = str(args.send_concurrency)
    env[COUNT_DIR_ENV] = str(counts)
    worker = stack.celery_worker(
        env, workdir, name=mode, concurrency=processes, extra=["--include", "deliver"]
    )
    client = make_celery(settings)
    summary: dict[str, Any] = {}
    try:
        worker.start().wait_ready()
        assert worker.process is not None
        _, worker_cpu_before = group_usage(worker.process.pid)
        own_cpu_before = time.process_time()
        machine_before = MachineCpu.now()
        trips_before = _trips["n"]
        started = time.perf_counter()

        def start_senders(_: object) -> None:
            for _ in range(SENDERS_PER_PLAN):
                client.send_task("digest.send_due")

        report = plan_daily(
            settings=settings, day=args.day, on_chunk=start_senders if mode == "ledger" else None
        )
        planned = report.planned
        plan_s = time.perf_counter() - started
        plan_trips = _trips["n"] - trips_before + 4 * -(-planned // 1000)
        if mode != "ledger":
            with session_scope(url) as session:
                query = select(ledger.Delivery.id).order_by(col(ledger.Delivery.id))
                ids = list(session.exec(query))
            for delivery_id in ids:
                client.send_task("bench.send_one", args=(delivery_id,), queue="send")
        enqueued_s = time.perf_counter() - started
        peak: dict[str, float] = {}
        while provider.accepted < planned:
            if time.perf_counter() - started > args.timeout or not worker.alive:
                raise SystemExit(f"{mode}: {provider.accepted}/{planned} after {args.timeout}s")
            rss, _ = group_usage(worker.process.pid)  # pool processes may be replaced: track
            for role, mb in rss.items():
                peak[role] = max(peak.get(role, 0.0), mb)
            time.sleep(0.05)
        wall_s = time.perf_counter() - started
        rss, worker_cpu = group_usage(worker.process.pid)
        for role, mb in rss.items():
            peak[role] = max(peak.get(role, 0.0), mb)
        own_cpu = time.process_time() - own_cpu_before
        machine = MachineCpu.now().since(machine_before)
        time.sleep(0.5)  # the workers' round-trip counters are written every 0.2 s
        send_trips = worker_trips(counts)
        # The part of the worker's CPU per message that is the bare hand-over (bench/hand_over.py).
        floor = hand_over_floor(settings, delay=args.delay_ms / 1000) if mode == "ledger" else {}
    finally:
        worker.stop()
        client.close()
        summary = provider.stop()
        stack.drop_database(POSTGRES_ADMIN_URL, url)
    emit(
        mode=mode,
        subscribers=subscribers,
        papers=args.papers,
        messages=planned,
        **summary,
        worker_processes=processes,
        send_concurrency=args.send_concurrency if mode == "ledger" else 1,
        delay_ms=args.delay_ms,
        plan_seconds=round(plan_s, 2),
        enqueue_seconds=round(enqueued_s - plan_s, 2),
        wall_seconds=round(wall_s, 2),
        messages_per_second=round(planned / wall_s, 1),
        plan_round_trips_per_message=round(plan_trips / planned, 3),
        send_round_trips_per_message=round(send_trips / planned, 3),
        worker_cpu_ms_per_message=round((worker_cpu - worker_cpu_before) * 1000 / planned, 2),
        **floor,
        planner_cpu_seconds=round(own_cpu, 2),
        **machine,
        peak_rss_mb=peak,
        load_average_1m=round(os.getloadavg()[0], 2),
    )


def main() -> None:
    # Killed with SIGTERM, unwind like an exception: the `finally` blocks stop the Celery
    # workers and the provider and drop the databases, which would otherwise outlive the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=1500, help="corpus padded to this size")
    parser.add_argument("--delay-ms", type=float, default=30.0, help="provider round trip")
    # 4, as docker-compose.yml runs the worker and as the baseline runs: a sender waits on the
    # provider part of the time, so two processes per core keep a 2-core machine busier.
    parser.add_argument("--concurrency", type=int, default=4, help="worker pool processes")
    # 10: where waves overlap, a wave has at most 10 requests, so that two failing together
    # stay within the sender's pause of 20 (workers/sending.py); more threads add little.
    parser.add_argument("--send-concurrency", type=int, default=10, help="requests in flight")
    parser.add_argument("--baseline-subscribers", type=int, default=3000)
    parser.add_argument("--baseline-concurrency", type=int, default=4)
    parser.add_argument("--modes", default="ledger,one-task-per-email")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-deliver-"))
    with contextlib.ExitStack() as cleanup:
        # A broker database no test run or other bench is using (the Celery tests' claim),
        # given back at the end, or six runs in half an hour would leave none free.
        args.broker_url = stack.claim_redis_db(REDIS_SERVER)
        cleanup.callback(stack.release_redis_db, args.broker_url)
        template = stack.create_database(POSTGRES_ADMIN_URL)
        cleanup.callback(stack.drop_database, POSTGRES_ADMIN_URL, template)
        seed_and_run(args, template, workdir)
    emit(
        what="bench-process",
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


def seed_and_run(args: argparse.Namespace, template: str, workdir: Path) -> None:
    """Seed the template database (outside the timed part), then run each mode on copies."""
    seeding = time.perf_counter()
    seed_settings = Settings(_env_file=None, database_url=template)  # type: ignore[call-arg]
    args.day = stack.seed_stack(seed_settings, args.subscribers, papers=args.papers)
    # Ingest stores every paper's vector (semantic matching on); the padded copies were
    # written straight to the table, so they get theirs here, outside the timed part.
    with session_scope(template) as session:
        papers = papers_since(session=session)
    embedded = embed_papers(seed_settings.semantic, template, papers)
    get_engine(template).dispose()
    emit(
        what="seed",
        subscribers=args.subscribers,
        papers=args.papers,
        seconds=round(time.perf_counter() - seeding, 2),
        papers_embedded=embedded,
    )
    for mode in args.modes.split(","):
        run_mode(mode, args, template, workdir / mode)


if __name__ == "__main__":
    main()
