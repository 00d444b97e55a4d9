"""One sender in this process, for the CPU of its parts: a planned day sent by `send_due`
straight into the bench provider, with no Celery worker around it.

    python bench/sender.py --subscribers 10000

bench/deliver.py measures the whole stack, where Celery, planning and two pool processes move
a worker's CPU figure by 10-20% from run to run. Here one `send_due` runs alone after planning,
so the figures split cleanly: the main thread's CPU (lock, render, record, a claim not taken
ahead) and the other threads' (the hand-over pool, and on PostgreSQL the claims taken ahead),
per message, and with --phases the CPU in each part of a wave, in whichever thread ran it.
The bare hand-over of the same rows (bench/hand_over.py) is measured in the same run as the
reference: the part no change to claiming, rendering or recording can remove.
Papers get no vectors here (bench/deliver.py embeds them), so planning matches by words only
and a few readers get no digest. Needs the local PostgreSQL (DIGEST_TEST_POSTGRES_URL).
Prints JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/sender.py` works

from bench.hand_over import hand_over_floor  # noqa: E402
from bench.provider import ProviderProcess  # noqa: E402
from core.db import get_engine  # noqa: E402
from core.settings import Settings  # noqa: E402
from emails.transports.sendgrid import SendGridTransport  # noqa: E402
from tests.support import celery_stack as stack  # noqa: E402
from workers import claiming, compose, outcomes, sending  # noqa: E402
from workers.planning import plan_daily  # noqa: E402

POSTGRES_ADMIN_URL = stack.POSTGRES_ADMIN_URL
# The parts of a wave, as (module, function): the main thread's CPU in each is summed.
PHASES = [
    (claiming.Claims, "_claim"), (sending.ledger, "hold_claimed"), (compose, "_digest_readers"),
    (compose, "_payloads_to_render"), (compose, "_load_papers"), (compose, "compose_daily"),
    (compose, "shared_daily"), (compose, "reader_links"), (outcomes.Outcomes, "write"),
]


def time_phases(spent: dict[str, float]) -> None:
    """Wrap each phase to add its thread CPU to `spent` (outermost call in each thread)."""
    local = threading.local()

    def timed(owner: Any, name: str, function: Callable[..., Any]) -> None:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if getattr(local, "depth", 0):
                return function(*args, **kwargs)
            local.depth = 1
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    spent[name] = spent.get(name, 0.0) + time.thread_time() - start
                local.depth = 0

        setattr(owner, name, wrapper)

    lock = threading.Lock()
    for owner, name in PHASES:
        timed(owner, name, getattr(owner, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=1500, help="corpus padded to this size")
    parser.add_argument("--delay-ms", type=float, default=30.0, help="provider round trip")
    parser.add_argument("--send-concurrency", type=int, default=10, help="requests in flight")
    parser.add_argument("--phases", action="store_true", help="CPU per part of a wave")
    args = parser.parse_args()
    spent: dict[str, float] = {}
    if args.phases:
        time_phases(spent)
    url = stack.create_database(POSTGRES_ADMIN_URL)
    try:
        settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
        day = stack.seed_stack(settings, args.subscribers, papers=args.papers)
        settings = settings.model_copy(update={"send_concurrency": args.send_concurrency})
        planned = plan_daily(settings=settings, day=day).planned
        provider = ProviderProcess(args.delay_ms / 1000).start()
        try:
            with SendGridTransport(provider.api_key, host=provider.url) as transport:
                cpu, main_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
                report = sending.send_due(settings=settings, transport=transport)
                cpu = time.process_time() - cpu
                main_cpu = time.thread_time() - main_cpu
                wall = time.perf_counter() - wall
        finally:
            summary = provider.stop()
        floor = hand_over_floor(settings, delay=args.delay_ms / 1000)
    finally:
        get_engine(url).dispose()
        stack.drop_database(POSTGRES_ADMIN_URL, url)
    sent = max(report.sent, 1)
    print(json.dumps({
        "bench": "sender", "subscribers": args.subscribers, "planned": planned,
        "sent": report.sent, **summary, "send_concurrency": args.send_concurrency,
        "wall_seconds": round(wall, 2),
        "cpu_ms_per_message": round(cpu * 1000 / sent, 3),
        "main_thread_cpu_ms_per_message": round(main_cpu * 1000 / sent, 3),
        "other_threads_cpu_ms_per_message": round((cpu - main_cpu) * 1000 / sent, 3),
        **floor,
        **({"phases_cpu_ms_per_message": {name: round(seconds * 1000 / sent, 3)
                                          for name, seconds in sorted(
                                              spent.items(), key=lambda item: -item[1])}}
           if args.phases else {}),
    }), flush=True)


if __name__ == "__main__":
    main()
