"""Sending the monthly issue: 1,000 recipients per SendGrid request, one template per issue.

Who runs it: `digest monthly send --wait` on the embedded default, the `digest.send_due`
Celery task with a broker (it calls `send_all`). Transports without a batch call (outbox,
SMTP) get nothing from here: their monthly rows go one by one through `sending.send_due`,
which renders the same template with the links filled in.

Exactly once: rows are claimed under a lease (SKIP LOCKED on PostgreSQL), re-checked under a
row lock, and a failed request marks the rows of the chunks SendGrid accepted as sent and
only the rest for a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta

from sqlmodel import Session, col, select

from digest.clippings.models import IssueStatus, MonthlyIssue
from digest.db import is_postgres, session_scope
from digest.settings import Settings
from emails.message import Message
from emails.monthly import fill_links, substitutions
from emails.transports.base import SendError, TransientSendError, Transport
from emails.transports.sendgrid import MAX_PERSONALIZATIONS, BatchSendError, Recipient
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.monthly import (
    KIND,
    issue_template,
    recipient_links,
    still_wants_monthly,
    suppressed_hashes,
)
from workers import sending

log = logging.getLogger("digest.broadcast")


def can_batch(transport: Transport) -> bool:
    """Whether the transport sends one body to many (SendGrid's personalizations)."""
    return callable(getattr(transport, "send_batch", None))


def send_all(
    *,
    settings: Settings,
    transport: Transport,
    progress: sending.Progress | None = None,
    run_for: float | None = None,
) -> sending.SendReport:
    """Monthly rows in batches where the transport can, then everything else one by one
    (for about `run_for` seconds when given: `report.more` says the rest is left)."""
    report = send_monthly_batches(settings=settings, transport=transport)
    if report.paused:  # the provider is struggling: leave the rest to the next run
        return report
    rest = sending.send_due(
        settings=settings, transport=transport, progress=progress, run_for=run_for
    )
    for name in ("sent", "retried", "failed", "skipped"):
        setattr(report, name, getattr(report, name) + getattr(rest, name))
    report.paused = report.paused or rest.paused
    report.more = rest.more
    return report


def send_monthly_batches(
    *, settings: Settings, transport: Transport, batch_size: int = MAX_PERSONALIZATIONS
) -> sending.SendReport:
    """Claim due monthly rows `batch_size` at a time and send each claim as one request."""
    report = sending.SendReport()
    if not can_batch(transport):
        return report
    while True:
        with session_scope(settings.sqlalchemy_url) as session:
            claimed = {
                row.id or 0: row.attempts
                for row in ledger.claim_batch(
                    session=session,
                    kind=KIND,
                    limit=batch_size,
                    lease=timedelta(seconds=settings.send_lease_seconds),
                )
            }
        if not claimed:
            return report
        with session_scope(settings.sqlalchemy_url) as session:
            _send_claimed(settings, transport, session, claimed, report)
        if report.paused:
            return report


def _held_rows(session: Session, claimed: dict[int, int]) -> list[ledger.Delivery]:
    """The claimed rows still ours (locked on PostgreSQL until the outcome is recorded)."""
    query = select(ledger.Delivery).where(col(ledger.Delivery.id).in_(list(claimed)))
    if is_postgres(session):
        query = query.with_for_update()
    return [
        row
        for row in session.exec(query.order_by(col(ledger.Delivery.id)))
        if row.status == ledger.DeliveryStatus.sending and claimed.get(row.id or 0) == row.attempts
    ]


def _send_claimed(
    settings: Settings,
    transport: Transport,
    session: Session,
    claimed: dict[int, int],
    report: sending.SendReport,
) -> None:
    rows = _held_rows(session, claimed)
    people = {
        person.id: person
        for person in session.exec(
            select(Subscriber).where(col(Subscriber.id).in_([r.subscriber_id for r in rows]))
        )
    }
    suppressed = suppressed_hashes(session=session)
    today = date.today()
    by_issue: dict[int, list[tuple[ledger.Delivery, Subscriber]]] = {}
    for row in rows:
        person = people.get(row.subscriber_id)
        issue_id = int(row.payload.get("issue_id") or 0)
        if person is None or not still_wants_monthly(person, today, suppressed):
            ledger.mark_skipped(session=session, delivery=row, reason="no longer wants the issue")
            report.skipped += 1
            continue
        if not _plausible(person.email):  # would break the whole request, not just this row
            ledger.mark_failed(session=session, delivery=row, error="not an email address")
            report.failed += 1
            continue
        by_issue.setdefault(issue_id, []).append((row, person))
    for issue_id, batch in by_issue.items():
        issue = session.get(MonthlyIssue, issue_id)
        if issue is None or issue.status != IssueStatus.sent:
            for row, _ in batch:
                ledger.mark_skipped(session=session, delivery=row, reason="issue not sent")
                report.skipped += 1
            continue
        _send_one_issue(settings, transport, session, issue, batch, report)


def _plausible(address: str) -> bool:
    """One address with a local part and a domain, nothing a provider library chokes on."""
    local, _, domain = address.rpartition("@")
    return bool(local) and "." in domain and not any(c.isspace() or c in "<>,;" for c in address)


def _send_one_issue(
    settings: Settings,
    transport: Transport,
    session: Session,
    issue: MonthlyIssue,
    batch: Sequence[tuple[ledger.Delivery, Subscriber]],
    report: sending.SendReport,
) -> None:
    template = issue_template(settings=settings, issue=issue)
    recipients = [
        Recipient(
            email=person.email,
            substitutions=substitutions(recipient_links(settings, person.id or 0)),
            tags={"delivery_id": str(row.id), "kind": KIND},
        )
        for row, person in batch
    ]
    try:
        message_ids = transport.send_batch(template, recipients)  # type: ignore[attr-defined]
        accepted, error = len(batch), None
    except BatchSendError as failure:
        message_ids, accepted, error = failure.message_ids, failure.accepted, failure
    for index, (row, _) in enumerate(batch[:accepted]):
        message_id = message_ids[index // MAX_PERSONALIZATIONS] if message_ids else ""
        ledger.mark_sent(session=session, delivery=row, provider_message_id=message_id)
        report.sent += 1
    if error is None:
        return
    log.warning("monthly batch failed: %s", error)
    rest = batch[accepted:]
    if not error.transient and len(rest) > 1:
        # One refused address (a 400 names a field, not a recipient) must not fail a
        # thousand others: send the rest one by one and let each outcome stand alone.
        _send_singly(settings, transport, session, template, rest, report)
        return
    for row, _ in rest:
        _record_failure(session, row, error.error, report, settings.send_retry_seconds)
    if error.transient:
        report.paused = f"a monthly batch request failed, retrying later: {error.error}"


def _send_singly(
    settings: Settings,
    transport: Transport,
    session: Session,
    template: Message,
    rows: Sequence[tuple[ledger.Delivery, Subscriber]],
    report: sending.SendReport,
) -> None:
    """After a refused batch: one message per row, outcomes as in sending.send_one."""
    failures: list[SendError] = []  # in a row
    for position, (row, person) in enumerate(rows):
        if len(failures) >= sending.PAUSE_AFTER_FAILURES_IN_A_ROW:
            # The same refusal every time: the request, not an address, is at fault.
            for later, _ in rows[position:]:
                _record_failure(session, later, failures[-1], report, settings.send_retry_seconds)
            return
        links = recipient_links(settings, person.id or 0)
        message = fill_links(template, to=person.email, links=links)
        message = replace(message, tags={**message.tags, "delivery_id": str(row.id), "kind": KIND})
        try:
            provider_id = transport.send(message)
        except SendError as failure:
            failures.append(failure)
            _record_failure(session, row, failure, report, settings.send_retry_seconds)
            continue
        failures.clear()
        ledger.mark_sent(session=session, delivery=row, provider_message_id=provider_id)
        report.sent += 1


def _record_failure(
    session: Session,
    row: ledger.Delivery,
    cause: SendError,
    report: sending.SendReport,
    retry_seconds: Sequence[float],
) -> None:
    """Transient: back to the queue with the usual back-off; permanent: failed for good."""
    transient = isinstance(cause, TransientSendError)
    if not transient or row.attempts >= sending.MAX_ATTEMPTS:
        prefix = "gave up: " if transient else ""
        ledger.mark_failed(session=session, delivery=row, error=f"{prefix}{cause}")
        report.failed += 1
        return
    delay = timedelta(seconds=retry_seconds[min(row.attempts, len(retry_seconds)) - 1])
    if isinstance(cause, TransientSendError) and cause.retry_after:
        delay = timedelta(seconds=cause.retry_after)
    ledger.mark_retry(session=session, delivery=row, error=str(cause), delay=delay)
    report.retried += 1
