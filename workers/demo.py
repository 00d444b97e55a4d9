"""`digest demo`: the daily flow end to end, offline, on the bundled corpus.

Repeatable: subscribers already present are kept, and the ledger's unique key means a second
run plans and sends nothing twice.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlmodel import select

from digest.db import session_scope
from digest.papers import latest_announcement
from digest.settings import Settings
from emails.transports import make_transport
from emails.transports.outbox import write_index
from subscribers.ledger import Delivery
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from workers import jobs, planning, sending

SAMPLE_SUBSCRIBERS = [
    ("ada@example.org", ["speech synthesis", "TTS", "voice cloning", "prosody"]),
    ("grace@example.org", ["audio captioning", "audio-language model", "sound event"]),
    ("alan@example.org", ["speech language model", "full-duplex", "speech tokenizer"]),
]
DEMO_LOOKBACK_DAYS = 14  # the sample corpus is a slice of past listings: look back two weeks


def sample_corpus_path() -> Path:
    """The bundled 337-paper arXiv Atom document."""
    return Path(str(resources.files("digest") / "data" / "sample_corpus.atom"))


def _ensure_sample_subscribers(settings: Settings) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        known = set(session.exec(select(Subscriber.email)))
        for email, keywords in SAMPLE_SUBSCRIBERS:
            if email not in known:
                create = SubscriberCreate(email=email, keywords=keywords)
                add_subscriber(session=session, subscriber_create=create, confirmed=True)


def run_demo(settings: Settings, console: Console) -> None:
    """Ingest, subscribe, plan, send to the outbox, and print what happened."""
    settings = settings.model_copy(update={"lookback_days": DEMO_LOOKBACK_DAYS})
    ingested = jobs.ingest_document(
        settings=settings, location=str(sample_corpus_path()), source="sample"
    )
    console.print(f"sample corpus: {ingested.seen} papers ({ingested.added} new)")
    _ensure_sample_subscribers(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None, "the sample corpus is never empty"
    plan = planning.plan_daily(settings=settings, day=day)
    sent = sending.send_due(settings=settings, transport=make_transport(settings))
    index = write_index(settings.outbox_path) if settings.mail_backend == "outbox" else None

    table = Table(title=f"Daily digests for {day}")
    for column in ("subscriber", "keywords", "papers", "status"):
        table.add_column(column)
    with session_scope(settings.sqlalchemy_url) as session:
        for subscriber in session.exec(select(Subscriber).order_by(Subscriber.id)):  # type: ignore[arg-type]
            delivery = session.exec(
                select(Delivery).where(
                    Delivery.subscriber_id == subscriber.id,
                    Delivery.kind == "daily",
                    Delivery.period == day.isoformat(),
                )
            ).first()
            papers = len(delivery.payload.get("matches", [])) if delivery else 0
            status = delivery.status.value if delivery else "nothing relevant"
            table.add_row(subscriber.email, ", ".join(subscriber.keywords), str(papers), status)
    console.print(table)
    console.print(
        f"this run: {plan.planned} digests planned, {plan.already_planned} already "
        f"planned before, {sent.sent} sent"
    )
    if index is not None:
        console.print(f"open {index} to preview every email")
