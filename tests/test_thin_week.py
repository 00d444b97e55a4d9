"""A reader whose keywords bring fewer than three papers a week is offered related keywords,
in the email's footer (the real outbox) and on the manage page."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.papers import latest_announcement
from emails.transports.outbox import OutboxTransport
from subscribers import ledger
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from subscribers.tokens import Purpose, make_token
from tests.support.web_app import client_for
from workers import jobs, planning
from workers.demo import sample_corpus_path
from workers.sending import send_due

THIN = ["singing voice"]  # two papers in the sample corpus's last week
BUSY = ["TTS"]


def stock(settings: Settings, *profiles: list[str]) -> list[int]:
    jobs.ingest_document(settings=settings, location=str(sample_corpus_path()), source="sample")
    ids = []
    with session_scope(settings.sqlalchemy_url) as session:
        for n, keywords in enumerate(profiles):
            create = SubscriberCreate(email=f"reader{n}@example.org", keywords=keywords)
            ids.append(add_subscriber(session=session, subscriber_create=create,
                                      confirmed=True).id or 0)
    return ids


def plan_newest_day(settings: Settings) -> dict[int, dict]:
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    planning.plan_daily(settings=settings, day=day)
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(ledger.Delivery).where(ledger.Delivery.kind == "daily"))
        return {row.subscriber_id: row.payload for row in rows}


def body(message: Message, kind: str) -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{kind}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{kind} part")


def test_a_thin_week_brings_related_keywords_in_the_footer(migrated: Settings) -> None:
    thin, busy = stock(migrated, THIN, BUSY)
    payloads = plan_newest_day(migrated)
    assert 0 < len(payloads[thin]["matches"]) < 3
    related = payloads[thin]["related"]
    assert related and all(k.lower() != "singing voice" for k in related)
    assert "related" not in payloads[busy]  # ten papers: nothing to suggest
    send_due(settings=migrated, transport=OutboxTransport(migrated.outbox_path))
    messages = [email.message_from_bytes(path.read_bytes())
                for path in sorted(Path(migrated.outbox_path).glob("*.eml"))]
    [mine] = [m for m in messages if m["To"] == "reader0@example.org"]
    [theirs] = [m for m in messages if m["To"] == "reader1@example.org"]
    for kind in ("plain", "html"):
        text = " ".join(body(mine, kind).split())
        assert "Few papers matched your keywords this week" in text
        assert related[0] in text
        assert "Few papers matched" not in body(theirs, kind)


def test_the_manage_page_offers_related_keywords_after_a_thin_week(migrated: Settings) -> None:
    [thin, busy] = stock(migrated, THIN, BUSY)
    with session_scope(migrated.sqlalchemy_url) as session:
        for reader in session.exec(select(Subscriber)):
            reader.confirmed_at = datetime.now(UTC) - timedelta(days=8)
            session.add(reader)
    client = client_for(migrated)

    def manage(subscriber_id: int) -> str:
        token = make_token(keys=migrated.secret_keys, purpose=Purpose.manage,
                           subscriber_id=subscriber_id)
        response = client.get(f"/manage/{token}")
        assert response.status_code == 200
        return " ".join(response.text.split())

    page = manage(thin)
    assert "Your keywords brought 0 papers in the last 7 days" in page
    assert 'name="add" value="voice cloning"' in page  # press to add, as on signup
    plan_newest_day(migrated)
    assert "Your keywords brought 2 papers in the last 7 days" in manage(thin)
    assert "Your keywords brought" not in manage(busy)
