"""The bare hand-over's CPU: a sent day's real requests posted again, and nothing else done.

bench/deliver.py reports it beside the worker's CPU per message, as the part of that CPU no
change to claiming, rendering or recording can remove while each distinct digest is one
request. The first rows of the day are grouped as a sender groups them (`workers.compose`:
equal digests share one render and one request) and rendered outside the measured part; then
`send_concurrency` threads post every request through the SendGrid transport to the bench
provider, with the run's round trip. What is measured is what a pool thread does per request:
the body (personalizations), its JSON and the HTTP exchange.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlmodel import col

from bench.provider import ProviderProcess
from core.batch_gc import fewer_collections
from core.db import session_scope
from core.settings import Settings
from emails.transports.sendgrid import MAX_PERSONALIZATIONS, SendGridTransport
from subscribers.ledger import Delivery, HeldRow
from workers.compose import Request, RunCache, compose
from workers.outcomes import Outcomes


def day_requests(settings: Settings, rows: int) -> list[Request]:
    """The requests a sender makes of the day's first `rows` ledger rows (in id order)."""
    query = HeldRow.columns().order_by(col(Delivery.id)).limit(rows)
    with session_scope(settings.sqlalchemy_url) as session:
        held = [HeldRow(*row) for row in session.execute(query)]
        return compose(settings=settings, session=session, rows=held, cache=RunCache(),
                       outcomes=Outcomes(settings.send_retry_seconds),
                       batch_limit=MAX_PERSONALIZATIONS)


@fewer_collections()  # as the sender's run does: this process's heap is the seeder's, large
def hand_over_floor(
    settings: Settings, *, delay: float, rows: int = 1000, repeats: int = 3
) -> dict[str, Any]:
    """CPU per request and per message of posting the day's requests, `repeats` times over."""
    requests = day_requests(settings, rows)
    provider = ProviderProcess(delay).start()
    try:
        with (SendGridTransport(provider.api_key, host=provider.url) as transport,
              ThreadPoolExecutor(settings.send_concurrency) as pool):
            def post(request: Request) -> None:
                transport.send_batch(request.template, request.recipients)

            list(pool.map(post, requests[: settings.send_concurrency]))  # open the connections
            cpu = time.process_time()
            for _ in range(repeats):
                list(pool.map(post, requests))
            cpu = time.process_time() - cpu
    finally:
        provider.stop()
    messages = repeats * sum(len(request.rows) for request in requests)
    return {
        "hand_over_requests": repeats * len(requests),
        "hand_over_cpu_ms_per_request": round(cpu * 1000 / (repeats * len(requests)), 3),
        "hand_over_cpu_ms_per_message": round(cpu * 1000 / messages, 3),
    }
