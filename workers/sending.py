"""Sending: claim due ledger rows, re-check the subscriber, render, hand over, record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from sqlmodel import Session

from digest.daily import compose_daily
from digest.db import session_scope
from digest.papers import papers_by_id
from digest.settings import Settings
from emails.message import Message
from emails.render import RecipientLinks, render_daily
from emails.transports.base import PermanentSendError, TransientSendError, Transport
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.monthly import render_monthly_delivery
from subscribers.outgoing import render_account_delivery
from subscribers.tokens import Purpose, make_token
from workers.planning import match_from_json

Progress = Callable[[int], None]
log = logging.getLogger("digest.sending")
DIGEST_KINDS = ("daily", "weekly")
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8  # transient failures past this become permanent: no endless loop
RETRY_DELAYS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
]


# A run that fails this many sends in a row stops claiming and says so: a provider outage or
# a revoked key should not burn through every row's retry budget in one go.
PAUSE_AFTER_FAILURES_IN_A_ROW = 20
PAUSE_FOR = timedelta(minutes=5)


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    paused: str | None = None  # why this run stopped early, if it did

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.skipped


def recipient_links(settings: Settings, subscriber_id: int) -> RecipientLinks:
    """Signed manage and unsubscribe links for one subscriber (ids and purposes, no address)."""
    keys = settings.signing_keys()
    base = settings.public_url.rstrip("/")
    manage = make_token(keys=keys, purpose=Purpose.manage, subscriber_id=subscriber_id)
    leave = make_token(keys=keys, purpose=Purpose.unsubscribe, subscriber_id=subscriber_id)
    return RecipientLinks(
        manage_url=f"{base}/manage/{manage}",
        unsubscribe_url=f"{base}/unsubscribe/{leave}",
        one_click_url=f"{base}/unsubscribe/{leave}",
    )


def render_digest(
    *, settings: Settings, session: Session, delivery: ledger.Delivery, subscriber: Subscriber
) -> Message | None:
    """The digest a ledger row stands for; None when its papers have vanished."""
    matches = [match_from_json(m) for m in delivery.payload.get("matches", [])]
    papers = papers_by_id(session=session, ids=[m.arxiv_id for m in matches])
    digest = compose_daily(
        day=date.fromisoformat(delivery.payload["day"]),
        keywords=subscriber.keywords,
        matches=matches,
        papers=papers,
    )
    if digest is None:
        return None
    return render_daily(
        digest,
        to=subscriber.email,
        sender=settings.from_email,
        links=recipient_links(settings, subscriber.id or 0),
        postal_address=settings.postal_address,
    )


def send_due(
    *,
    settings: Settings,
    transport: Transport,
    batch_size: int = 50,
    progress: Progress | None = None,
) -> SendReport:
    """Claim due rows batch by batch and hand them to the transport until none is due."""
    report = SendReport()
    failures_in_a_row = 0
    while True:
        with session_scope(settings.sqlalchemy_url) as session:
            claimed = [
                (d.id or 0, d.attempts)
                for d in ledger.claim_batch(session=session, limit=batch_size, lease=LEASE)
            ]
        if not claimed:
            return report
        for position, (delivery_id, attempt) in enumerate(claimed):
            sent_before, errors_before = report.sent, report.retried + report.failed
            send_one(
                settings=settings,
                transport=transport,
                delivery_id=delivery_id,
                report=report,
                attempt=attempt,
            )
            if progress:
                progress(1)
            if report.retried + report.failed > errors_before:
                failures_in_a_row += 1
            elif report.sent > sent_before:
                failures_in_a_row = 0
            if failures_in_a_row >= PAUSE_AFTER_FAILURES_IN_A_ROW:
                rest = claimed[position + 1 :]
                with session_scope(settings.sqlalchemy_url) as session:
                    ledger.release(session=session, claims=rest, delay=PAUSE_FOR)
                report.paused = (
                    f"paused after {failures_in_a_row} failed sends in a row; "
                    f"{len(rest)} claimed rows released, sending resumes in "
                    f"{int(PAUSE_FOR.total_seconds() // 60)} minutes (see `digest deliveries`)"
                )
                log.warning(report.paused)
                return report


def _render(
    settings: Settings, session: Session, delivery: ledger.Delivery, subscriber: Subscriber
) -> Message | None:
    if delivery.kind in DIGEST_KINDS:
        if not subscriber.receives_mail(date.today()):
            return None
        return render_digest(
            settings=settings, session=session, delivery=delivery, subscriber=subscriber
        )
    if delivery.kind == "monthly":  # one by one; workers/broadcast.py batches them on SendGrid
        return render_monthly_delivery(
            settings=settings, session=session, delivery=delivery, subscriber=subscriber
        )
    return render_account_delivery(
        settings=settings, delivery=delivery, subscriber=subscriber, session=session
    )


def send_one(
    *,
    settings: Settings,
    transport: Transport,
    delivery_id: int,
    report: SendReport,
    attempt: int | None = None,
) -> None:
    """Re-read the row and its subscriber at send time, send, record the outcome.

    The row stays locked (PostgreSQL) until the outcome is recorded, so no other sender can
    reclaim it mid-send even when the lease runs out; `attempt` is the claim this sender made,
    and a row claimed again since (our lease ran out before we got to it) is left to its new
    holder.
    """
    with session_scope(settings.sqlalchemy_url) as session:
        delivery = session.get(ledger.Delivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.status != ledger.DeliveryStatus.sending:
            return
        if attempt is not None and delivery.attempts != attempt:
            return
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        message = _render(settings, session, delivery, subscriber) if subscriber else None
        if message is None:
            ledger.mark_skipped(
                session=session,
                delivery=delivery,
                reason="no longer applies (subscriber left, paused or papers gone)",
            )
            report.skipped += 1
            return
        message = _tagged(message, delivery)
        try:
            provider_id = transport.send(message)
        except TransientSendError as error:
            if delivery.attempts >= MAX_ATTEMPTS:
                ledger.mark_failed(session=session, delivery=delivery, error=f"gave up: {error}")
                report.failed += 1
                return
            delay = RETRY_DELAYS[min(delivery.attempts, len(RETRY_DELAYS)) - 1]
            if error.retry_after:
                delay = timedelta(seconds=error.retry_after)
            ledger.mark_retry(session=session, delivery=delivery, error=str(error), delay=delay)
            report.retried += 1
            return
        except PermanentSendError as error:
            ledger.mark_failed(session=session, delivery=delivery, error=str(error))
            report.failed += 1
            return
        ledger.mark_sent(session=session, delivery=delivery, provider_message_id=provider_id)
        report.sent += 1


def _tagged(message: Message, delivery: ledger.Delivery) -> Message:
    """Carry the delivery id to the provider, so its events find their way back."""
    tags = {**message.tags, "delivery_id": str(delivery.id), "kind": delivery.kind}
    return replace(message, tags=tags)
