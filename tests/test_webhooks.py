"""POST /webhooks/sendgrid: signed batches applied once, in any order; bad ones change nothing."""

from __future__ import annotations

import json
import random
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from emails.events import SIGNATURE_HEADER, TIMESTAMP_HEADER
from subscribers import ledger
from subscribers.events import ProviderEventRecord, daily_stats
from subscribers.models import Status, Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from subscribers.web.app import create_app
from tests.support.sendgrid_events import NOW, public_b64, sign


def _world(settings: Settings) -> tuple[TestClient, ec.EllipticCurvePrivateKey, dict[str, int]]:
    key = ec.generate_private_key(ec.SECP256R1())
    settings = settings.model_copy(update={"sendgrid_webhook_public_key": public_b64(key)})
    ids = {}
    with session_scope(settings.sqlalchemy_url) as session:
        for name in ("ada", "bob", "cy", "dee"):
            create = SubscriberCreate(email=f"{name}@example.org", keywords=["tts"])
            ids[name] = add_subscriber(session=session, subscriber_create=create,
                                       confirmed=True).id or 0
        ledger.plan_deliveries(session=session, planned=[ledger.PlannedDelivery(
            subscriber_id=sid, kind="daily", period="2026-01-29", payload={})
            for sid in ids.values()])
        deliveries = {d.subscriber_id: d.id for d in session.exec(select(ledger.Delivery))}
    ids |= {f"{name}-delivery": deliveries[sid] or 0 for name, sid in list(ids.items())}
    return TestClient(create_app(settings)), key, ids


def _event(kind: str, n: int, email: str, delivery: int, **extra: object) -> dict[str, object]:
    return {"email": email, "timestamp": NOW + n, "event": kind, "sg_event_id": f"ev-{kind}-{n}",
            "sg_message_id": f"msg-{n}", "delivery_id": str(delivery), **extra}


def _post(client: TestClient, key: ec.EllipticCurvePrivateKey, events: list[dict[str, object]],
          **overrides: str) -> int:
    body = json.dumps(events).encode()
    headers = {SIGNATURE_HEADER: sign(key, body, "1769677200"), TIMESTAMP_HEADER: "1769677200"}
    headers.update(overrides)
    return client.post("/webhooks/sendgrid", content=body, headers=headers).status_code


def _statuses(settings: Settings) -> dict[str, Status]:
    with session_scope(settings.sqlalchemy_url) as session:
        return {s.email.split("@")[0]: s.status for s in session.exec(select(Subscriber))}


def test_a_batch_delivered_five_times_out_of_order_applies_once(migrated: Settings) -> None:
    client, key, ids = _world(migrated)
    batch = [
        _event("delivered", 1, "ada@example.org", ids["ada-delivery"]),
        _event("open", 2, "ada@example.org", ids["ada-delivery"]),
        _event("bounce", 3, "bob@example.org", ids["bob-delivery"], type="bounce"),
        _event("spamreport", 4, "cy@example.org", ids["cy-delivery"]),
        *[_event("bounce", 10 + n, "dee@example.org", ids["dee-delivery"], type="blocked")
          for n in range(2)],
    ]
    for attempt in range(5):
        shuffled = random.Random(attempt).sample(batch, len(batch))
        assert _post(client, key, shuffled) == 200
    assert _statuses(migrated) == {"ada": Status.active, "bob": Status.bounced,
                                   "cy": Status.complained, "dee": Status.active}
    with session_scope(migrated.sqlalchemy_url) as session:
        assert len(list(session.exec(select(ProviderEventRecord)))) == len(batch)
        stats = daily_stats(session=session, since=datetime(2026, 1, 1).date())
    assert stats[datetime(2026, 1, 29).date()] == {"delivered": 1, "open": 1, "bounce": 3,
                                                   "spamreport": 1}
    # A third soft bounce suppresses; a late "delivered" revives nobody.
    third = _event("bounce", 12, "dee@example.org", ids["dee-delivery"], type="blocked")
    late = _event("delivered", 13, "bob@example.org", ids["bob-delivery"])
    assert _post(client, key, [third, late]) == 200
    assert _statuses(migrated)["dee"] == Status.bounced
    assert _statuses(migrated)["bob"] == Status.bounced


def test_unsigned_forged_or_malformed_batches_change_nothing(migrated: Settings) -> None:
    client, key, ids = _world(migrated)
    unsubscribe = [_event("unsubscribe", 1, "ada@example.org", ids["ada-delivery"])]
    other = ec.generate_private_key(ec.SECP256R1())
    body = json.dumps(unsubscribe).encode()
    assert _post(client, key, unsubscribe, **{SIGNATURE_HEADER: ""}) == 403
    assert _post(client, key, unsubscribe, **{SIGNATURE_HEADER: "bm90IGEgc2ln"}) == 403
    assert _post(client, key, unsubscribe,
                 **{SIGNATURE_HEADER: sign(other, body, "1769677200")}) == 403
    assert _post(client, key, unsubscribe, **{TIMESTAMP_HEADER: "1769677201"}) == 403
    assert client.post("/webhooks/sendgrid", content=body).status_code == 403
    not_json = b"{oops"
    headers = {SIGNATURE_HEADER: sign(key, not_json, "1"), TIMESTAMP_HEADER: "1"}
    assert client.post("/webhooks/sendgrid", content=not_json, headers=headers).status_code == 400
    assert _statuses(migrated)["ada"] == Status.active
    assert _post(client, key, unsubscribe) == 200
    assert _statuses(migrated)["ada"] == Status.unsubscribed


def test_a_database_outage_answers_503_so_sendgrid_retries(settings: Settings) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    down = settings.model_copy(update={
        "sendgrid_webhook_public_key": public_b64(key),
        "database_url": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=2",
    })
    client = TestClient(create_app(down))
    assert _post(client, key, [_event("delivered", 1, "ada@example.org", 1)]) == 503


def test_without_a_configured_key_every_batch_is_refused(migrated: Settings) -> None:
    client = TestClient(create_app(migrated))
    key = ec.generate_private_key(ec.SECP256R1())
    assert _post(client, key, [_event("delivered", 1, "ada@example.org", 1)]) == 403
