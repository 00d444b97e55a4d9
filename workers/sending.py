"""Sending: claim due ledger rows, re-check the subscriber, render, hand over, record."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum

from sqlmodel import Session, col, select

from digest.daily import compose_daily
from digest.db import session_scope
from digest.papers import Paper, papers_by_id
from digest.settings import Settings
from emails.message import Message
from emails.render import RecipientLinks, render_daily
from emails.transports.base import SendError, TransientSendError, Transport
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.outgoing import render_account_delivery
from subscribers.tokens import Purpose, make_token
from workers.planning import match_from_json

Progress = Callable[[int], None]
log = logging.getLogger("digest.sending")
DIGEST_KINDS = ("daily", "weekly")
MAX_ATTEMPTS = 8  # transient failures past this become permanent: no endless loop


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
    *,
    settings: Settings,
    session: Session,
    delivery: ledger.Delivery,
    subscriber: Subscriber,
    papers: dict[str, Paper] | None = None,
) -> Message | None:
    """The digest a ledger row stands for; None when its papers have vanished.

    `papers` may hold them already (a wave loads every row's papers in one query).
    """
    matches = [match_from_json(m) for m in delivery.payload.get("matches", [])]
    if papers is None:
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
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> SendReport:
    """Claim due rows batch by batch and hand them to the transport until none is due.

    Each batch goes out in waves of up to `send_concurrency` messages (SendGrid only; other
    transports one at a time): a wave locks its rows, loads their subscribers and papers in one
    query each, renders, sends concurrently, and records every outcome in one commit.
    """
    report = SendReport()
    lease = timedelta(seconds=settings.send_lease_seconds)
    width = settings.send_concurrency if getattr(transport, "thread_safe", False) else 1
    failures_in_a_row = 0
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="send") as pool:
        while True:
            with session_scope(settings.sqlalchemy_url) as session:
                claimed = ledger.claim(
                    session=session, limit=batch_size or settings.send_batch_size, lease=lease
                )
            if not claimed:
                return report
            position = 0
            while position < len(claimed):
                # Never more in one wave than it takes to reach the pause threshold.
                size = min(width, PAUSE_AFTER_FAILURES_IN_A_ROW - failures_in_a_row)
                wave = claimed[position : position + size]
                position += len(wave)
                outcomes = send_wave(
                    settings=settings, transport=transport, claims=wave, report=report, pool=pool
                )
                for outcome in outcomes:
                    if progress:
                        progress(1)
                    if outcome in (Outcome.retried, Outcome.failed):
                        failures_in_a_row += 1
                    elif outcome == Outcome.sent:
                        failures_in_a_row = 0
                if failures_in_a_row >= PAUSE_AFTER_FAILURES_IN_A_ROW:
                    _pause(settings, report, claimed[position:], failures_in_a_row)
                    return report


def _pause(
    settings: Settings, report: SendReport, rest: list[tuple[int, int]], failures: int
) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        ledger.release(session=session, claims=rest, delay=PAUSE_FOR)
    report.paused = (
        f"paused after {failures} failed sends in a row; "
        f"{len(rest)} claimed rows released, sending resumes in "
        f"{int(PAUSE_FOR.total_seconds() // 60)} minutes (see `digest deliveries`)"
    )
    log.warning(report.paused)


class Outcome(StrEnum):
    sent = "sent"
    retried = "retried"
    failed = "failed"
    skipped = "skipped"
    not_ours = "not ours"  # reclaimed by another sender since we claimed it


def send_wave(
    *,
    settings: Settings,
    transport: Transport,
    claims: Sequence[tuple[int, int]],
    report: SendReport,
    pool: ThreadPoolExecutor,
) -> list[Outcome]:
    """Send these claimed rows (id, attempt) concurrently; one outcome per claim, in order.

    The rows stay locked (PostgreSQL) until their outcomes are committed, so no other sender
    can reclaim them mid-send even when the lease runs out. A crash before the commit leaves
    them claimed: after the lease they go out again, so a killed worker repeats at most one
    wave of messages (the ones the provider accepted before the kill).
    """
    with session_scope(settings.sqlalchemy_url) as session:
        rows = ledger.lock_claimed(session=session, claims=claims)
        subscribers = subscribers_by_id(session, [row.subscriber_id for row in rows.values()])
        wanted = [
            str(m["arxiv_id"])
            for row in rows.values()
            if row.kind in DIGEST_KINDS
            for m in row.payload.get("matches", [])
        ]
        papers = papers_by_id(session=session, ids=wanted) if wanted else {}
        outcomes = {did: Outcome.not_ours for did, _ in claims}
        ready: list[tuple[ledger.Delivery, Message]] = []
        for row in rows.values():
            subscriber = subscribers.get(row.subscriber_id)
            message = _render(settings, session, row, subscriber, papers) if subscriber else None
            if message is None:
                ledger.mark_skipped(
                    session=session,
                    delivery=row,
                    reason="no longer applies (subscriber left, paused or papers gone)",
                )
                outcomes[row.id or 0] = Outcome.skipped
            else:
                ready.append((row, _tagged(message, row)))
        results = list(pool.map(lambda item: _hand_over(transport, item[1]), ready))
        for (row, _), result in zip(ready, results, strict=True):
            outcomes[row.id or 0] = _record(session, row, result, settings.send_retry_seconds)
    for outcome in outcomes.values():
        if outcome != Outcome.not_ours:
            setattr(report, outcome.value, getattr(report, outcome.value) + 1)
    return [outcomes[did] for did, _ in claims]


def _hand_over(transport: Transport, message: Message) -> str | SendError:
    """The provider's message id, or the error (runs in a pool thread: no database here)."""
    try:
        return transport.send(message)
    except SendError as error:
        return error


def _record(
    session: Session,
    delivery: ledger.Delivery,
    result: str | SendError,
    retry_seconds: Sequence[float],
) -> Outcome:
    """Write one send's outcome into its ledger row."""
    if isinstance(result, TransientSendError):
        if delivery.attempts >= MAX_ATTEMPTS:
            ledger.mark_failed(session=session, delivery=delivery, error=f"gave up: {result}")
            return Outcome.failed
        wait = retry_seconds[min(delivery.attempts, len(retry_seconds)) - 1]
        delay = timedelta(seconds=wait)
        if result.retry_after:
            delay = timedelta(seconds=result.retry_after)
        ledger.mark_retry(session=session, delivery=delivery, error=str(result), delay=delay)
        return Outcome.retried
    if isinstance(result, SendError):
        ledger.mark_failed(session=session, delivery=delivery, error=str(result))
        return Outcome.failed
    ledger.mark_sent(session=session, delivery=delivery, provider_message_id=result)
    return Outcome.sent


def subscribers_by_id(session: Session, ids: Sequence[int]) -> dict[int, Subscriber]:
    """Subscribers by id, in one query."""
    query = select(Subscriber).where(col(Subscriber.id).in_(set(ids)))
    return {s.id or 0: s for s in session.exec(query)}


def _render(
    settings: Settings,
    session: Session,
    delivery: ledger.Delivery,
    subscriber: Subscriber,
    papers: dict[str, Paper] | None = None,
) -> Message | None:
    if delivery.kind in DIGEST_KINDS:
        if not subscriber.receives_mail(date.today()):
            return None
        return render_digest(
            settings=settings,
            session=session,
            delivery=delivery,
            subscriber=subscriber,
            papers=papers,
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
        result = _hand_over(transport, _tagged(message, delivery))
        outcome = _record(session, delivery, result, settings.send_retry_seconds)
        setattr(report, outcome.value, getattr(report, outcome.value) + 1)


def _tagged(message: Message, delivery: ledger.Delivery) -> Message:
    """Carry the delivery id to the provider, so its events find their way back."""
    tags = {**message.tags, "delivery_id": str(delivery.id), "kind": delivery.kind}
    return replace(message, tags=tags)
