"""SendGrid-sized batches on a real uvicorn: accepted past the form cap, applied in bulk, and
an event that cannot be applied is recorded as rejected while the rest of the batch applies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event
from sqlmodel import select

from core.db import get_engine, session_scope
from core.settings import Settings
from emails.events import SIGNATURE_HEADER, TIMESTAMP_HEADER
from subscribers import ledger
from subscribers.events import ProviderEventRecord
from subscribers.models import Status, Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from subscribers.web.webhooks import MAX_BODY_BYTES
from tests.support.live_server import free_port, serving
from tests.support.sendgrid_events import NOW, public_b64, sign

NAMES = ("ada", "bob", "cy", "dee")


@dataclass
class Hook:
    """A live server that knows the webhook key, and four subscribers with a delivery each."""

    client: httpx.Client
    settings: Settings
    key: ec.EllipticCurvePrivateKey
    deliveries: dict[str, int]

    def post(self, events: list[Any] | bytes) -> httpx.Response:
        body = events if isinstance(events, bytes) else json.dumps(events).encode()
        headers = {SIGNATURE_HEADER: sign(self.key, body, "1769677200"),
                   TIMESTAMP_HEADER: "1769677200", "Content-Type": "application/json"}
        return self.client.post("/webhooks/sendgrid", content=body, headers=headers)


@contextmanager
def webhook_server(settings: Settings) -> Iterator[Hook]:
    key = ec.generate_private_key(ec.SECP256R1())
    settings = settings.model_copy(update={"sendgrid_webhook_public_key": public_b64(key)})
    with session_scope(settings.sqlalchemy_url) as session:
        ids = {name: add_subscriber(session=session, confirmed=True, subscriber_create=(
            SubscriberCreate(email=f"{name}@example.org", keywords=["tts"]))).id or 0
            for name in NAMES}
        ledger.plan_deliveries(session=session, planned=[ledger.PlannedDelivery(
            subscriber_id=sid, kind="daily", period="2026-01-29", payload={})
            for sid in ids.values()])
        by_subscriber = {d.subscriber_id: d.id or 0 for d in session.exec(select(ledger.Delivery))}
    deliveries = {name: by_subscriber[sid] for name, sid in ids.items()}
    port = free_port()
    with serving(settings, port), httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                               timeout=60) as client:
        yield Hook(client, settings, key, deliveries)


def sendgrid_event(kind: str, n: int, name: str, delivery: int, **extra: Any) -> dict[str, Any]:
    """An event as SendGrid posts it, with the fields that make a real one ~400 bytes."""
    return {"email": f"{name}@example.org", "timestamp": NOW + n, "event": kind,
            "sg_event_id": f"ZGVsaXZlcmVkLTAtMjQ0NjY5MzUtb3JuZ0hqR3ZRbWFqR3VvZ2Zl-{kind}-{n}",
            "sg_message_id": f"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.{n}",
            "smtp-id": f"<14c5d75ce93.dfd.64b469@ismtpd-{n}>", "category": ["daily"],
            "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
            "ip": "203.0.113.7", "delivery_id": str(delivery), **extra}


def statuses(settings: Settings) -> dict[str, Status]:
    with session_scope(settings.sqlalchemy_url) as session:
        return {s.email.split("@")[0]: s.status for s in session.exec(select(Subscriber))}


def records(settings: Settings) -> dict[str, ProviderEventRecord]:
    with session_scope(settings.sqlalchemy_url) as session:
        return {r.sg_event_id: r for r in session.exec(select(ProviderEventRecord))}


@contextmanager
def counting_statements(settings: Settings) -> Iterator[list[str]]:
    """Every SQL statement the app runs meanwhile (the live server shares this process)."""
    statements: list[str] = []
    engine = get_engine(settings.sqlalchemy_url)

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_full_sendgrid_batch_is_accepted_and_applied_in_bulk(migrated: Settings) -> None:
    with webhook_server(migrated) as hook:
        settings, deliveries = hook.settings, hook.deliveries
        batch = [sendgrid_event(kind, n, name, deliveries[name])
                 for n in range(300) for kind in ("processed", "delivered", "open", "click")
                 for name in NAMES[:1]]
        batch += [sendgrid_event("delivered", 1000 + n, name, deliveries[name])
                  for n, name in enumerate(NAMES * 100)]
        batch += [sendgrid_event("bounce", 5000, "bob", deliveries["bob"], type="bounce"),
                  sendgrid_event("spamreport", 5001, "cy", deliveries["cy"])]
        batch += [sendgrid_event("bounce", 6000 + n, "dee", deliveries["dee"], type="blocked")
                  for n in range(3)]  # the third soft bounce in a row suppresses
        body = json.dumps(batch).encode()
        assert len(batch) == 1605 and len(body) > 10 * 64 * 1024
        with counting_statements(settings) as statements:
            response = hook.post(body)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 1605, "new": 1605, "duplicates": 0,
                                   "suppressed": 3, "unmatched": 0, "rejected": 0}
        assert len(statements) < 40, "a batch is a few statements, not a few per event"
        assert statuses(settings) == {"ada": Status.active, "bob": Status.bounced,
                                      "cy": Status.complained, "dee": Status.bounced}
        assert len(records(settings)) == 1605
        again = hook.post(body)  # SendGrid retrying the batch changes nothing
        assert again.json()["duplicates"] == 1605


def test_the_webhook_has_its_own_cap_and_forms_keep_theirs(migrated: Settings) -> None:
    with webhook_server(migrated) as hook:
        deliveries = hook.deliveries
        padding = "x" * 1000
        too_big = [sendgrid_event("open", n, "ada", deliveries["ada"], note=padding)
                   for n in range(MAX_BODY_BYTES // 1000)]
        assert hook.post(too_big).status_code == 413
        form = hook.client.post("/subscribe", content=b"email=" + b"a" * (65 * 1024),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 413


@pytest.mark.parametrize("impossible", [1e20, -1e12, float("nan"), float("inf"), 4102444800])
def test_an_impossible_timestamp_is_rejected_and_the_rest_applies(
    migrated: Settings, impossible: float
) -> None:
    with webhook_server(migrated) as hook:
        settings, deliveries = hook.settings, hook.deliveries
        odd = sendgrid_event("spamreport", 1, "ada", deliveries["ada"], timestamp=impossible)
        batch = [odd, sendgrid_event("bounce", 2, "bob", deliveries["bob"], type="bounce"),
                 sendgrid_event("delivered", 3, "cy", deliveries["cy"]),
                 {"event": "open"}, "not an event"]
        response = hook.post(batch)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 5, "new": 5, "duplicates": 0, "suppressed": 1,
                                   "unmatched": 0, "rejected": 3}
        assert statuses(settings) == {"ada": Status.active, "bob": Status.bounced,
                                      "cy": Status.active, "dee": Status.active}
        rejected = records(settings)[str(odd["sg_event_id"])]
        assert rejected.effect == "rejected" and rejected.subscriber_id is None
        assert "impossible 'timestamp'" in (rejected.reason or "")
        assert hook.post(batch).json()["duplicates"] == 5  # recorded once, like the rest
