"""The local SendGrid v3 server for benchmarks, in a process of its own.

The test fake (tests/support/fake_sendgrid.py) keeps every accepted body, which at 100,000
messages of about 40 KB would be gigabytes; here only each personalization's delivery id is
counted. Every body is still validated against SendGrid's schema and API rules, and every
answer waits the configured delay, like a real provider's round trip. Running it in its own
process keeps its CPU (JSON parsing, validation) from sharing a GIL with the planner; its CPU
seconds are reported, so a run bound by the provider shows it.
"""

from __future__ import annotations

import multiprocessing
import resource
import secrets
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from tests.support.fake_sendgrid import FakeSendGrid


class CountingSendGrid(FakeSendGrid):
    """FakeSendGrid that counts accepted delivery ids instead of keeping bodies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ids: Counter[int] = Counter()
        self.recipients = 0

    def _accept(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        ids = [int(p["custom_args"]["delivery_id"]) for p in body["personalizations"]]
        with self._lock:
            self.ids.update(ids)
            self.recipients += len(ids)
        return secrets.token_urlsafe(16)


def _serve(delay: float, pipe: Connection, accepted: Any) -> None:
    fake = CountingSendGrid(delay=delay).start()
    pipe.send((fake.url, fake.api_key))
    while True:
        if pipe.poll(0.05):
            pipe.recv()
            break
        accepted.value = fake.recipients
    fake.stop()
    duplicates = sum(fake.ids.values()) - len(fake.ids)
    pipe.send({
        "distinct_accepted": len(fake.ids),
        "duplicates": duplicates,
        "invalid_bodies": len(fake.invalid),
        "requests": fake.requests,
        "provider_connections": fake.connections,
        "provider_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "provider_cpu_seconds": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2),
    })  # fmt: skip


class ProviderProcess:
    """Start with `.start()`; `.accepted` is the live count; `.stop()` returns the summary."""

    def __init__(self, delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._accepted = context.Value("q", 0, lock=False)
        self._process = context.Process(
            target=_serve, args=(delay, child, self._accepted), daemon=True
        )
        self.url = ""
        self.api_key = ""

    def start(self) -> ProviderProcess:
        self._process.start()
        self.url, self.api_key = self._pipe.recv()
        return self

    @property
    def accepted(self) -> int:
        return int(self._accepted.value)

    def stop(self) -> dict[str, Any]:
        self._pipe.send("stop")
        summary: dict[str, Any] = self._pipe.recv()
        self._process.join(timeout=10)
        return summary
