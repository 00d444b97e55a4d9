"""Sending the monthly issue: 1,000 recipients per SendGrid request, one template per issue.

Who runs it: `digest monthly send --wait` on the embedded default, the `digest.send_due`
Celery task with a broker (it calls `send_all`). Transports without a batch call (outbox,
SMTP) get nothing from here: their monthly rows go one by one through `sending.send_due`,
which renders the same template with the links filled in.

Exactly once: rows are claimed under a lease (SKIP LOCKED on PostgreSQL), re-checked under a
row lock, and a failed request marks the rows of the chunks SendGrid accepted as sent and
only the rest for a retry. A batch's rows are marked sent only after its own request was
accepted; on PostgreSQL the next batch is claimed, built and put on the wire while the
current one is still in flight (each in its own transaction, holding its own row locks).

Rows are read and written with core SQL (one statement per step for a thousand rows), not
ORM objects: at 100,000 recipients the objects were a third of the time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import date, timedelta

from sqlalchemy.engine import make_url
from sqlmodel import Session

from digest.clippings.models import IssueStatus, MonthlyIssue
from digest.db import session_scope
from digest.settings import Settings
from emails.message import Message
from emails.monthly import fill_links
from emails.transports.base import (
    SendError,
    TransientSendError,
    Transport,
    address_problem,
    as_send_error,
    can_batch,
)
from emails.transports.sendgrid import MAX_PERSONALIZATIONS, BatchSendError, Recipient
from subscribers import ledger
from subscribers.ledger import DeliveryStatus, HeldRow
from subscribers.monthly import (
    KIND,
    issue_template,
    monthly_addresses,
    recipient_links,
    recipient_substitutions,
)
from workers import sending

log = logging.getLogger("digest.broadcast")
AHEAD = 2  # requests in flight beside the one being recorded (PostgreSQL, thread-safe transport)


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
    # Batches on the wire beside the one being settled: the provider's round trip and its
    # work on a 1,000-recipient body overlap ours. SQLite has one writer: one at a time.
    postgres = make_url(settings.sqlalchemy_url).get_backend_name() == "postgresql"
    ahead = AHEAD if postgres and getattr(transport, "thread_safe", False) else 0
    lease = timedelta(seconds=settings.send_lease_seconds)
    in_flight: deque[_Batch] = deque()
    drained = False
    with ThreadPoolExecutor(max_workers=ahead + 1, thread_name_prefix="broadcast") as pool:
        try:
            while True:
                if not drained and not report.paused:
                    batch = _start(settings, transport, pool, batch_size, lease, report)
                    drained = batch is None
                    if batch is not None:
                        in_flight.append(batch)
                        if len(in_flight) <= ahead:
                            continue
                if not in_flight:
                    return report
                _finish(settings, transport, in_flight.popleft(), report)
        finally:
            # After an error: what the provider accepted is still recorded as sent.
            while in_flight:
                _finish(settings, transport, in_flight.popleft(), report)


@dataclass
class _Send:
    """One issue's recipients of a batch, and their request on the wire."""

    template: Message
    rows: list[tuple[HeldRow, str]]  # row, address
    result: Future[list[str] | BatchSendError]


@dataclass
class _Batch:
    """A claim being sent: its open transaction (holding the row locks) and its requests."""

    scope: ExitStack
    session: Session
    sends: list[_Send]


def _start(
    settings: Settings,
    transport: Transport,
    pool: ThreadPoolExecutor,
    batch_size: int,
    lease: timedelta,
    report: sending.SendReport,
) -> _Batch | None:
    """Claim a batch, re-check it under row locks, build its requests and send them."""
    with session_scope(settings.sqlalchemy_url) as session:
        claims = ledger.claim(session=session, limit=batch_size, lease=lease, kind=KIND)
    if not claims:
        return None
    with ExitStack() as scope:
        session = scope.enter_context(session_scope(settings.sqlalchemy_url))
        rows = ledger.hold_claimed(session=session, claims=claims)
        addresses = monthly_addresses(
            session=session, ids={row.subscriber_id for row in rows}, today=date.today()
        )
        gone: list[int] = []
        refused: list[int] = []
        by_issue: dict[int, list[tuple[HeldRow, str]]] = {}
        for row in rows:
            address = addresses.get(row.subscriber_id)
            if address is None:
                gone.append(row.id)
            elif not _plausible(address):  # would break the whole request, not just this row
                refused.append(row.id)
            else:
                issue_id = int(row.payload.get("issue_id") or 0)
                by_issue.setdefault(issue_id, []).append((row, address))
        _settle(session, gone, DeliveryStatus.skipped, "no longer wants the issue", report)
        _settle(session, refused, DeliveryStatus.failed, "not an email address", report)
        built: list[tuple[Message, list[tuple[HeldRow, str]], list[Recipient]]] = []
        for issue_id, batch in by_issue.items():
            issue = session.get(MonthlyIssue, issue_id)
            if issue is None or issue.status != IssueStatus.sent:
                ids = [row.id for row, _ in batch]
                _settle(session, ids, DeliveryStatus.skipped, "issue not sent", report)
                continue
            template = issue_template(settings=settings, issue=issue)
            links = recipient_substitutions(settings, [row.subscriber_id for row, _ in batch])
            recipients = [
                Recipient(email=address, substitutions=values, tags=_tags(row.id))
                for (row, address), values in zip(batch, links, strict=True)
            ]
            built.append((template, batch, recipients))
        # Everything built before the first request: an error above sends nothing.
        sends = [
            _Send(template, batch, pool.submit(_hand_over, transport, template, recipients))
            for template, batch, recipients in built
        ]
        return _Batch(scope.pop_all(), session, sends)


def _tags(delivery_id: int) -> dict[str, str]:
    return {"delivery_id": str(delivery_id), "kind": KIND}


def _settle(
    session: Session,
    ids: list[int],
    status: DeliveryStatus,
    reason: str,
    report: sending.SendReport,
) -> None:
    """Skip or fail rows that never went out."""
    ledger.set_outcome(session=session, ids=ids, status=status, error=reason)
    setattr(report, status.value, getattr(report, status.value) + len(ids))


def _hand_over(
    transport: Transport, template: Message, recipients: list[Recipient]
) -> list[str] | BatchSendError:
    """The message ids, or how far the batch got (in a pool thread: no database here)."""
    try:
        return transport.send_batch(template, recipients)  # type: ignore[attr-defined]
    except BatchSendError as failure:
        return failure
    except Exception as error:  # the request's outcome, never the end of the run
        log.exception("a monthly batch request raised %r", error)
        return BatchSendError(as_send_error(error), message_ids=[], accepted=0)


def _plausible(address: str) -> bool:
    """One address with a local part and a domain, nothing a provider library chokes on."""
    if address_problem(address):  # an encoded word would reach another mailbox
        return False
    local, _, domain = address.rpartition("@")
    return bool(local) and "." in domain and not any(c.isspace() or c in "<>,;" for c in address)


def _finish(
    settings: Settings, transport: Transport, batch: _Batch, report: sending.SendReport
) -> None:
    """Wait for a batch's requests, record every outcome and commit (releasing the locks)."""
    with batch.scope:
        for send in batch.sends:
            _record(settings, transport, batch.session, send, report)


def _record(
    settings: Settings,
    transport: Transport,
    session: Session,
    send: _Send,
    report: sending.SendReport,
) -> None:
    result = send.result.result()
    if isinstance(result, BatchSendError):
        message_ids, accepted, error = result.message_ids, result.accepted, result
    else:
        message_ids, accepted, error = result, len(send.rows), None
    for request, start in enumerate(range(0, accepted, MAX_PERSONALIZATIONS)):
        ids = [row.id for row, _ in send.rows[start : start + MAX_PERSONALIZATIONS]]
        message_id = message_ids[request] if request < len(message_ids) else ""
        ledger.set_outcome(
            session=session, ids=ids, status=DeliveryStatus.sent, provider_message_id=message_id
        )
    report.sent += accepted
    if error is None:
        return
    log.warning("monthly batch failed: %s", error)
    rest = send.rows[accepted:]
    if not error.transient and len(rest) > 1:
        # One refused address (a 400 names a field, not a recipient) must not fail a
        # thousand others: send the rest one by one and let each outcome stand alone.
        _send_singly(settings, transport, session, send.template, rest, report)
        return
    _record_failures(session, rest, error.error, report, settings.send_retry_seconds)
    if error.transient:
        report.paused = f"a monthly batch request failed, retrying later: {error.error}"


def _send_singly(
    settings: Settings,
    transport: Transport,
    session: Session,
    template: Message,
    rows: Sequence[tuple[HeldRow, str]],
    report: sending.SendReport,
) -> None:
    """After a refused batch: one message per row, outcomes as in sending.send_one."""
    failures: list[SendError] = []  # in a row
    for position, (row, address) in enumerate(rows):
        if len(failures) >= sending.PAUSE_AFTER_FAILURES_IN_A_ROW:
            # The same refusal every time: the request, not an address, is at fault.
            later = rows[position:]
            _record_failures(session, later, failures[-1], report, settings.send_retry_seconds)
            return
        links = recipient_links(settings, row.subscriber_id)
        message = fill_links(template, to=address, links=links)
        message = replace(message, tags={**message.tags, **_tags(row.id)})
        try:
            provider_id = transport.send(message)
        except Exception as error:  # whatever it was, this row's outcome alone
            failure = as_send_error(error)
            failures.append(failure)
            _record_failures(
                session, [(row, address)], failure, report, settings.send_retry_seconds
            )
            continue
        failures.clear()
        ledger.set_outcome(
            session=session,
            ids=[row.id],
            status=DeliveryStatus.sent,
            provider_message_id=provider_id,
        )
        report.sent += 1


def _record_failures(
    session: Session,
    rows: Sequence[tuple[HeldRow, str]],
    cause: SendError,
    report: sending.SendReport,
    retry_seconds: Sequence[float],
) -> None:
    """Transient: back to the queue with the usual back-off; permanent: failed for good."""
    transient = isinstance(cause, TransientSendError)
    given_up: list[int] = []
    retries: dict[timedelta, list[int]] = {}
    for row, _ in rows:
        if not transient or row.attempts >= sending.MAX_ATTEMPTS:
            given_up.append(row.id)
            continue
        delay = timedelta(seconds=retry_seconds[min(row.attempts, len(retry_seconds)) - 1])
        if isinstance(cause, TransientSendError) and cause.retry_after:
            delay = timedelta(seconds=cause.retry_after)
        retries.setdefault(delay, []).append(row.id)
    prefix = "gave up: " if transient else ""
    _settle(session, given_up, DeliveryStatus.failed, f"{prefix}{cause}", report)
    for delay, ids in retries.items():
        ledger.set_outcome(
            session=session,
            ids=ids,
            status=DeliveryStatus.planned,
            error=str(cause),
            retry_in=delay,
        )
        report.retried += len(ids)
