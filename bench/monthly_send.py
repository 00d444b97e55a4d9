"""Monthly issue benchmark: N subscribers through the ledger to a local SendGrid, batched
(1,000 recipients per request, the product's path) beside one request per subscriber (the
baseline, what outbox/SMTP-style sending does), measured in the same run.

Run by hand: `python bench/monthly_send.py --subscribers 5000 --delay-ms 20`. Uses a temporary
SQLite database (or --database-url) and the local SendGrid fake, which validates every body
against SendGrid's schema and answers after --delay-ms, like a provider's round trip.
Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.db import session_scope  # noqa: E402
from core.settings import Settings  # noqa: E402
from digest.clippings.issue import approve_issue, draft_issue  # noqa: E402
from emails.message import Message  # noqa: E402
from emails.transports.base import OneAtATime  # noqa: E402
from emails.transports.sendgrid import SendGridTransport  # noqa: E402
from subscribers.monthly import plan_monthly  # noqa: E402
from tests.support.celery_stack import analyze  # noqa: E402
from tests.support.fake_sendgrid import FakeSendGrid  # noqa: E402
from tests.support.monthly_data import MONTH, add_subscribers, sample_clips  # noqa: E402
from workers import sending  # noqa: E402
from workers.migrate import upgrade  # noqa: E402


def seeded(var_dir: Path, subscribers: int, database_url: str) -> Settings:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=var_dir, database_url=database_url, secret_keys=["bench-key"],
        public_url="https://digest.example",
    )  # fmt: skip
    upgrade(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        draft_issue(session=session, month=MONTH, intro="Benchmark issue.")
        issue = approve_issue(session=session, month=MONTH)
        add_subscribers(session, subscribers)
        plan_monthly(session=session, issue=issue)
    analyze(settings.sqlalchemy_url)
    return settings


class OnePerRequest(OneAtATime):
    """The baseline: the same SendGrid client, one message per request."""

    name = "sendgrid-one-by-one"
    thread_safe = True

    def __init__(self, transport: SendGridTransport) -> None:
        self.transport = transport

    def send(self, message: Message) -> str:
        return self.transport.send(message)


def run(mode: str, subscribers: int, delay: float, database_url: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, FakeSendGrid(delay=delay) as fake:
        settings = seeded(Path(tmp) / "var", subscribers, database_url)
        with SendGridTransport(fake.api_key, fake.url) as transport:
            started = time.perf_counter()
            # The same sender either way; only what the transport can batch differs.
            chosen = transport if mode == "batched" else OnePerRequest(transport)
            report = sending.send_due(settings=settings, transport=chosen)
            seconds = time.perf_counter() - started
        return {
            "bench": "monthly_send", "mode": mode, "subscribers": subscribers,
            "sent": report.sent, "requests": len(fake.accepted), "invalid": len(fake.invalid),
            "seconds": round(seconds, 2), "per_second": round(report.sent / seconds, 1),
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    rows = [
        run(mode, args.subscribers, args.delay_ms / 1000, args.database_url)
        for mode in ("batched", "one-per-request")
    ]
    for row in rows:
        print(json.dumps(row), flush=True)
    speedup = float(rows[1]["seconds"]) / max(float(rows[0]["seconds"]), 1e-9)  # type: ignore[arg-type]
    print(json.dumps({"bench": "monthly_send", "speedup_batched": round(speedup, 1)}))


if __name__ == "__main__":
    main()
