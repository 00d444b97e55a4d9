"""`digest demo`: the daily flow end to end, offline, on the bundled corpus and trending list.

The trending list (digest/data/sample_trending.json) is a sample in the Hugging Face daily
papers format built from papers of the corpus, with illustrative upvotes; it was not recorded
from the API (sample_trending_NOTE.txt beside it says so).

Repeatable: subscribers already present are kept, and the ledger's unique key means a second
run plans and sends nothing twice.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.papers import latest_announcement
from digest.sources.trending import parse_trending
from digest.trending import store_trending
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
TRENDING_SUBSCRIBER = "katherine@example.org"  # the day's trending papers, no keywords
DEMO_LOOKBACK_DAYS = 14  # the sample corpus is a slice of past listings: look back two weeks


def sample_corpus_path() -> Path:
    """The bundled 337-paper arXiv Atom document."""
    return Path(str(resources.files("digest") / "data" / "sample_corpus.atom"))


def sample_trending_path() -> Path:
    """The bundled sample trending list (Hugging Face daily papers format; not recorded from
    the API: the upvotes are illustrative, see sample_trending_NOTE.txt)."""
    return Path(str(resources.files("digest") / "data" / "sample_trending.json"))


def _ensure_sample_subscribers(settings: Settings) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        known = set(session.exec(select(Subscriber.email)))
        for email, keywords in SAMPLE_SUBSCRIBERS:
            if email not in known:
                create = SubscriberCreate(email=email, keywords=keywords)
                add_subscriber(session=session, subscriber_create=create, confirmed=True)
        if TRENDING_SUBSCRIBER not in known:
            create = SubscriberCreate(email=TRENDING_SUBSCRIBER, keywords=[], trending_only=True)
            add_subscriber(session=session, subscriber_create=create, confirmed=True)


def _planned_before(settings: Settings, day: date) -> set[int]:
    """Subscribers who already have the day's digest in the ledger (from an earlier run)."""
    with session_scope(settings.sqlalchemy_url) as session:
        return set(session.exec(select(Delivery.subscriber_id).where(
            Delivery.kind == "daily", Delivery.period == day.isoformat())))


def _status_line(subscriber: Subscriber, delivery: Delivery | None, earlier: set[int]) -> str:
    """What happened to this subscriber's digest, in words: an earlier run's digest is
    "already sent", someone who is not an active reader is said to be so, and "nothing
    relevant" is kept for an active reader whose keywords matched nothing."""
    if delivery is not None:
        if subscriber.id in earlier:
            done = "already sent" if delivery.status.value == "sent" else (
                f"already {delivery.status.value}")
            return done if subscriber.status.value == "active" else (
                f"{done} (now {subscriber.status.value})")
        return delivery.status.value
    if subscriber.status.value == "pending":
        return "not confirmed yet"
    if subscriber.status.value != "active":
        return subscriber.status.value
    return "nothing relevant"


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
        # The sample list's upvotes count for the corpus's latest day, as a real day's would.
        trending = parse_trending(sample_trending_path().read_bytes())
        stored = store_trending(session=session, day=day, items=trending.items)
    console.print(
        f"sample trending list: {stored.total} papers with upvotes on {day} (a sample in the "
        "Hugging Face daily papers format, not recorded from the API; the upvotes are made up)"
    )
    earlier = _planned_before(settings, day)  # a repeat run says "already sent" for these
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
            status = _status_line(subscriber, delivery, earlier)
            wants = ", ".join(subscriber.keywords) or "(trending papers only)"
            table.add_row(subscriber.email, wants, str(papers), status)
    console.print(table)
    repeats = len(earlier)
    console.print(
        f"this run: {plan.planned} digests planned, {sent.sent} sent"
        + (f"; {repeats} already sent for {day} by an earlier run (no one is mailed twice)"
           if repeats else "")
    )
    if index is not None:
        console.print(f"open {index} to preview every email")
