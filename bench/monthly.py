"""Monthly broadcast at scale: one issue to N recipients through batched personalizations
(1,000 per SendGrid request), on PostgreSQL, into the local SendGrid server in its own
process; beside one request per recipient on a smaller list, in the same run.

Run by hand or from `make bench`: `python bench/monthly.py --recipients 100000`. Needs the
local PostgreSQL (DIGEST_TEST_POSTGRES_URL). Prints JSON lines. The seeding and the issue come
from bench/monthly_send.py (the monthly engineer's SQLite-sized bench); this one adds the
100k PostgreSQL run, a provider that keeps only delivery ids (100k bodies would not fit in
memory), duplicates, and the hand-over time: from the first claim to the last accepted
recipient.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import MachineCpu  # noqa: E402
from bench.monthly_send import OnePerRequest, seeded  # noqa: E402
from bench.provider import ProviderProcess  # noqa: E402
from core.db import get_engine  # noqa: E402
from emails.transports.sendgrid import SendGridTransport  # noqa: E402
from tests.support import celery_stack as stack  # noqa: E402
from workers import sending  # noqa: E402

POSTGRES_ADMIN_URL = stack.POSTGRES_ADMIN_URL


def run(mode: str, recipients: int, delay: float) -> dict[str, object]:
    """Seed a fresh database with one approved, planned issue; time the hand-over."""
    url = stack.create_database(POSTGRES_ADMIN_URL)
    provider = ProviderProcess(delay).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seeding = time.perf_counter()
            settings = seeded(Path(tmp) / "var", recipients, url)
            seed_s = time.perf_counter() - seeding
            with SendGridTransport(provider.api_key, provider.url) as transport:
                started, cpu = time.perf_counter(), time.process_time()
                machine_before = MachineCpu.now()
                # The same sender either way; only what the transport can batch differs.
                chosen = transport if mode == "batched" else OnePerRequest(transport)
                report = sending.send_due(settings=settings, transport=chosen)
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu  # the sender's own CPU; the provider runs apart
                machine = MachineCpu.now().since(machine_before)
    finally:
        summary = provider.stop()
        get_engine(url).dispose()
        stack.drop_database(POSTGRES_ADMIN_URL, url)
    return {
        "bench": "monthly", "mode": mode, "recipients": recipients, "sent": report.sent,
        "seed_and_plan_seconds": round(seed_s, 2), "handover_seconds": round(seconds, 2),
        "sender_cpu_seconds": round(cpu, 2), **machine,
        "per_second": round(report.sent / seconds, 1), **summary,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--baseline-recipients", type=int, default=3000)
    parser.add_argument("--delay-ms", type=float, default=30.0, help="provider round trip")
    args = parser.parse_args()
    batched = run("batched", args.recipients, args.delay_ms / 1000)
    print(json.dumps(batched), flush=True)
    baseline = run("one-request-per-recipient", args.baseline_recipients, args.delay_ms / 1000)
    ratio = float(str(batched["per_second"])) / float(str(baseline["per_second"]))
    baseline["speedup_batched"] = round(ratio, 1)
    print(json.dumps(baseline), flush=True)


if __name__ == "__main__":
    main()
