"""Sending: claim due ledger rows, re-check the subscriber, render, hand over, record."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from digest.daily import DailyDigest, compose_daily
from digest.db import session_scope
from digest.papers import Paper, papers_by_id
from digest.settings import Settings
from emails.message import Message
from emails.render import (
    RecipientLinks,
    link_substitutions,
    personalise,
    render_daily,
    shared_daily,
)
from emails.transports.base import (
    SendError,
    TransientSendError,
    Transport,
    as_send_error,
    can_batch,
)
from emails.transports.sendgrid import MAX_PERSONALIZATIONS, BatchSendError, Recipient
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.monthly import render_monthly_delivery
from subscribers.outgoing import render_account_delivery
from subscribers.tokens import Purpose, make_token, make_tokens
from workers.planning import match_from_json

Progress = Callable[[int], None]
log = logging.getLogger("digest.sending")
DIGEST_KINDS = ("daily", "weekly")
MAX_ATTEMPTS = ledger.MAX_ATTEMPTS  # transient failures past this become permanent
# The default claim lease; senders read DIGEST_SEND_LEASE_SECONDS (settings.send_lease_seconds).
LEASE = timedelta(minutes=10)


# A run that fails this many sends in a row stops claiming and says so: a provider outage or
# a revoked key should not burn through every row's retry budget in one go.
PAUSE_AFTER_FAILURES_IN_A_ROW = 20
PAUSE_FOR = timedelta(minutes=5)
# A wave carries at most `send_concurrency` requests, and, when equal digests share requests,
# at most this many recipients per request on average: it bounds what a killed worker may
# repeat (two waves on the wire) while letting a popular digest go out in few requests.
WAVE_RECIPIENTS_PER_REQUEST = 8
# Shared renders kept by one send run (about 30 KB each): equal digests are neighbours in id
# order, so a few hundred catch nearly every repeat; 2,000 cost 55 MB more per process.
MAX_RUN_RENDERS = 256
Renders = dict[tuple[str, tuple[str, ...]], Message]


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    paused: str | None = None  # why this run stopped early, if it did
    more: bool = False  # stopped at its time limit with rows perhaps still due

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.skipped


def recipient_links(settings: Settings, subscriber_id: int) -> RecipientLinks:
    """Signed manage and unsubscribe links for one subscriber (ids and purposes, no address)."""
    keys = settings.signing_keys()
    base = settings.public_url.rstrip("/")
    manage = make_token(keys=keys, purpose=Purpose.manage, subscriber_id=subscriber_id)
    leave = make_token(keys=keys, purpose=Purpose.unsubscribe, subscriber_id=subscriber_id)
    feedback = make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=subscriber_id)
    return RecipientLinks(
        manage_url=f"{base}/manage/{manage}",
        unsubscribe_url=f"{base}/unsubscribe/{leave}",
        one_click_url=f"{base}/unsubscribe/{leave}",
        feedback_url=f"{base}/feedback/{feedback}",
    )


def recipient_links_many(settings: Settings, subscriber_ids: Sequence[int]) -> list[RecipientLinks]:
    """`recipient_links` for a wave's subscribers, their tokens signed in one batch each."""
    keys = settings.signing_keys()
    base = settings.public_url.rstrip("/")
    signed = {
        purpose: make_tokens(keys=keys, purpose=purpose, subscriber_ids=subscriber_ids)
        for purpose in (Purpose.manage, Purpose.unsubscribe, Purpose.feedback)
    }
    return [
        RecipientLinks(
            manage_url=f"{base}/manage/{manage}",
            unsubscribe_url=f"{base}/unsubscribe/{leave}",
            one_click_url=f"{base}/unsubscribe/{leave}",
            feedback_url=f"{base}/feedback/{feedback}",
        )
        for manage, leave, feedback in zip(
            signed[Purpose.manage], signed[Purpose.unsubscribe], signed[Purpose.feedback],
            strict=True,
        )
    ]


def compose_digest(
    delivery: ledger.Delivery, subscriber: Subscriber, papers: dict[str, Paper]
) -> DailyDigest | None:
    """The digest a ledger row stands for, from its planned picks; None when they vanished."""
    matches = [match_from_json(m) for m in delivery.payload.get("matches", [])]
    return compose_daily(
        day=date.fromisoformat(delivery.payload["day"]),
        keywords=subscriber.keywords,
        matches=matches,
        papers=papers,
        related=[str(k) for k in delivery.payload.get("related", [])],
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
    if papers is None:
        matches = delivery.payload.get("matches", [])
        ids = [str(m[key]) for m in matches for key in ("arxiv_id", "similar_to") if m.get(key)]
        papers = papers_by_id(session=session, ids=ids)
    digest = compose_digest(delivery, subscriber, papers)
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
    run_for: float | None = None,
) -> SendReport:
    """Claim due rows batch by batch and hand them to the transport until none is due (or,
    given `run_for`, until that many seconds have passed: then `report.more` is set).

    Rows go out in waves of up to `send_concurrency` requests (SendGrid; other transports one
    message at a time): a wave locks its rows, loads their subscribers and papers in one query
    each, renders, sends concurrently, and records every outcome in one commit. Equal digests
    (the planner's share key, neighbours in id order) share a request. The next wave is
    claimed, loaded and rendered while the current one is on the wire.
    """
    report = SendReport()
    lease = timedelta(seconds=settings.send_lease_seconds)
    width = settings.send_concurrency if getattr(transport, "thread_safe", False) else 1
    batching = can_batch(transport)
    queue: deque[tuple[int, int]] = deque()
    shares: dict[int, str] = {}  # claimed row -> its digest's share key (batching only)
    papers: dict[str, Paper] = {}  # this run's papers: a day's digests share a few hundred
    renders: Renders = {}  # this run's shared renders, by planned digest
    failures = 0
    in_flight: Wave | None = None

    def settle(wave: Wave) -> None:
        nonlocal failures
        for _ in finish_wave(wave, settings=settings, transport=transport, report=report):
            if progress:
                progress(1)
        # Failures are counted per request: one refused request of fifty recipients is one
        # sign of trouble, not fifty.
        for outcome in wave.request_outcomes:
            if outcome in (Outcome.retried, Outcome.failed):
                failures += 1
            elif outcome == Outcome.sent:
                failures = 0

    deadline = None if run_for is None else time.monotonic() + max(run_for, 0.0)
    first_batch = True
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="send") as pool:
        while True:
            # Time is checked between batches only: every run sends at least one batch.
            late = deadline is not None and time.monotonic() > deadline
            if not queue and late and not first_batch:
                if in_flight is not None:
                    settle(in_flight)
                report.more = True
                return report
            if not queue:
                with session_scope(settings.sqlalchemy_url) as session:
                    suspect = ledger.claim_suspect(session=session, lease=lease)
                    if suspect is None:
                        size = batch_size or settings.send_batch_size
                        claimed = ledger.claim(session=session, limit=size, lease=lease)
                        if batching:
                            ids = [did for did, _ in claimed]
                            shares.update(ledger.share_keys(session=session, ids=ids))
                        queue.extend(claimed)
                first_batch = False
                if suspect is not None:
                    # A row whose claim lapsed again goes out with nothing else in flight:
                    # should it kill this process, only its own attempt count moves.
                    if in_flight is not None:
                        settle(in_flight)
                        in_flight = None
                    alone = start_wave(
                        settings=settings, transport=transport, claims=[suspect], pool=pool,
                        papers=papers, renders=renders,
                    )  # fmt: skip
                    settle(alone)
                    continue
            if not queue:
                if in_flight is not None:
                    settle(in_flight)
                    in_flight = None
                    continue  # its retries are not due yet, but check once more
                return report
            # Never more requests on the wire than it takes to reach the pause threshold.
            room = PAUSE_AFTER_FAILURES_IN_A_ROW - failures - (
                len(in_flight.sends) if in_flight else 0
            )
            wave = None
            if room > 0:
                requests = min(width, room)
                per_request = WAVE_RECIPIENTS_PER_REQUEST if batching else 1
                # At most MAX_PERSONALIZATIONS rows, so a wave's share always fits one request.
                rows = min(requests * per_request, MAX_PERSONALIZATIONS)
                claims = take_wave(queue, shares, requests=requests, rows=rows)
                wave = start_wave(
                    settings=settings,
                    transport=transport,
                    claims=claims,
                    pool=pool,
                    papers=papers,
                    renders=renders,
                )
            if in_flight is not None:
                settle(in_flight)
            in_flight = wave
            if failures >= PAUSE_AFTER_FAILURES_IN_A_ROW:
                if in_flight is not None:
                    settle(in_flight)
                _pause(settings, report, list(queue), failures)
                return report


def take_wave(
    queue: deque[tuple[int, int]], shares: dict[int, str], *, requests: int, rows: int
) -> list[tuple[int, int]]:
    """The next claims of the queue that fit in `requests` requests and `rows` rows: rows
    with the same share key (equal digests, neighbours in id order) count as one request."""
    taken: list[tuple[int, int]] = []
    keys: set[str] = set()
    while queue and len(taken) < rows:
        did = queue[0][0]
        key = shares.get(did) or f"row {did}"  # no key: a request of its own
        if key not in keys and len(keys) == requests:
            break
        keys.add(key)
        shares.pop(did, None)
        taken.append(queue.popleft())
    return taken


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


@dataclass
class Send:
    """One request on the wire: the rows it carries (several when they share a digest and the
    transport batches), and, for a shared render, what a one-by-one retry needs."""

    rows: list[ledger.Delivery]
    result: Future[list[str] | SendError]
    shared: Message | None = None
    recipients: list[tuple[str, RecipientLinks]] = field(default_factory=list)


@dataclass
class Wave:
    """Claimed rows on their way: their open transaction (holding the row locks) and sends."""

    claims: Sequence[tuple[int, int]]
    scope: ExitStack
    session: Session
    outcomes: dict[int, Outcome]
    sends: list[Send]
    request_outcomes: list[Outcome] = field(default_factory=list)  # one per request sent


def start_wave(
    *,
    settings: Settings,
    transport: Transport,
    claims: Sequence[tuple[int, int]],
    pool: ThreadPoolExecutor,
    papers: dict[str, Paper],
    renders: Renders,
) -> Wave:
    """Lock these claimed rows (id, attempt), render them, and put their sends on the wire.

    The rows stay locked (PostgreSQL) until `finish_wave` commits their outcomes, so no other
    sender can reclaim them mid-send even when the lease runs out. A crash before the commit
    leaves them claimed: after the lease they go out again, so a killed worker repeats at most
    the waves it had on the wire (the messages the provider accepted before the kill).

    On a transport that batches (SendGrid), the wave's digests that share a render go out as
    one request, each recipient's links filled in by the provider; planning writes equal
    digests next to each other, so waves find them.
    """
    with ExitStack() as scope:
        session = scope.enter_context(session_scope(settings.sqlalchemy_url))
        rows = ledger.lock_claimed(session=session, claims=claims)
        subscribers = subscribers_by_id(session, [row.subscriber_id for row in rows.values()])
        wanted = {
            str(m[key])
            for row in rows.values()
            if row.kind in DIGEST_KINDS
            for m in row.payload.get("matches", [])
            for key in ("arxiv_id", "similar_to")  # liked papers named in "similar to"
            if m.get(key)
        }
        missing = wanted - papers.keys()
        if missing:
            if len(papers) > 20_000:
                papers.clear()
                renders.clear()  # they were made from the papers just forgotten
            papers.update(papers_by_id(session=session, ids=missing))
        outcomes = {did: Outcome.not_ours for did, _ in claims}
        batching = can_batch(transport)
        singles: list[tuple[ledger.Delivery, Message]] = []
        shared: dict[int, tuple[Message, list[tuple[ledger.Delivery, Subscriber]]]] = {}
        for row in rows.values():
            subscriber = subscribers.get(row.subscriber_id)
            try:
                if subscriber is None:
                    message = None
                elif batching and row.kind in DIGEST_KINDS:
                    template = _shared_digest(settings, row, subscriber, papers, renders)
                    if template is not None:  # grouped by render: equal digests share one
                        group = shared.setdefault(id(template), (template, []))[1]
                        group.append((row, subscriber))
                        continue
                    message = None
                else:
                    message = _render(settings, session, row, subscriber, papers)
            except SQLAlchemyError:
                raise  # the wave's transaction is gone: its rows come back after their lease
            except Exception as error:  # one row that cannot be rendered must not stop the rest
                log.exception("rendering delivery %s failed", row.id)
                failure = TransientSendError(f"cannot render: {error!r}")  # a fix may come
                outcomes[row.id or 0] = _record(session, row, failure, settings.send_retry_seconds)
                continue
            if message is None:
                ledger.mark_skipped(
                    session=session,
                    delivery=row,
                    reason="no longer applies (subscriber left, paused or papers gone)",
                )
                outcomes[row.id or 0] = Outcome.skipped
            else:
                singles.append((row, _tagged(message, row)))
        groups = list(shared.values())
        ids = [subscriber.id or 0 for _, members in groups for _, subscriber in members]
        links = iter(recipient_links_many(settings, ids))
        batches = [
            (template, [(row, subscriber.email, next(links)) for row, subscriber in members])
            for template, members in groups
        ]
        # Everything rendered before the first send: an error above (a database one) sends nothing.
        sends = [
            Send([row], pool.submit(_hand_over, transport, message)) for row, message in singles
        ]
        for template, members in batches:
            recipients = [
                Recipient(email=to, substitutions=link_substitutions(own), tags=_tags(row))
                for row, to, own in members
            ]
            sends.append(
                Send(
                    [row for row, _, _ in members],
                    pool.submit(_hand_over_batch, transport, template, recipients),
                    shared=template,
                    recipients=[(to, own) for _, to, own in members],
                )
            )
        return Wave(claims, scope.pop_all(), session, outcomes, sends)


def _shared_digest(
    settings: Settings,
    row: ledger.Delivery,
    subscriber: Subscriber,
    papers: dict[str, Paper],
    renders: Renders,
) -> Message | None:
    """The shared render of the digest a row stands for; None when it no longer applies.

    Rows with the same planned picks (share key) and the same keywords now have the same
    digest over this run's papers: it is composed and rendered once, not once per row.
    """
    if not subscriber.receives_mail(date.today()):
        return None
    share = row.payload.get("share")
    key = (str(share), tuple(subscriber.keywords)) if share else None
    if key is not None and key in renders:
        return renders[key]
    digest = compose_digest(row, subscriber, papers)
    if digest is None:
        return None
    template = shared_daily(
        digest, sender=settings.from_email, postal_address=settings.postal_address, feedback=True
    )
    if key is not None:
        if len(renders) >= MAX_RUN_RENDERS:
            renders.clear()
        renders[key] = template
    return template


def finish_wave(
    wave: Wave, *, settings: Settings, transport: Transport, report: SendReport
) -> list[Outcome]:
    """Wait for a wave's sends, record each outcome and commit; one outcome per claim."""
    with wave.scope:
        sent: list[tuple[int, str]] = []  # the usual outcome, written in one statement
        for send in wave.sends:
            result = send.result.result()
            if isinstance(result, list):
                message_id = result[0] if result else ""  # one id for the whole request
                for row in send.rows:
                    sent.append((row.id or 0, message_id))
                    wave.outcomes[row.id or 0] = Outcome.sent
                wave.request_outcomes.append(Outcome.sent)
                continue
            if (
                send.shared is not None
                and len(send.rows) > 1
                and isinstance(result, SendError)
                and not isinstance(result, TransientSendError)
            ):
                # A refusal names a field, not a recipient: one bad address must not fail the
                # others that share its digest. They go one by one, each outcome its own.
                for row, (to, own) in zip(send.rows, send.recipients, strict=True):
                    message = _tagged(personalise(send.shared, to=to, links=own), row)
                    wave.outcomes[row.id or 0] = _record(
                        wave.session, row, _hand_over(transport, message),
                        settings.send_retry_seconds,
                    )  # fmt: skip
                    wave.request_outcomes.append(wave.outcomes[row.id or 0])
                continue
            for row in send.rows:
                wave.outcomes[row.id or 0] = _record(
                    wave.session, row, result, settings.send_retry_seconds
                )
            wave.request_outcomes.append(wave.outcomes[send.rows[0].id or 0])
        ledger.mark_all_sent(session=wave.session, sent=sent)
    for outcome in wave.outcomes.values():
        if outcome != Outcome.not_ours:
            setattr(report, outcome.value, getattr(report, outcome.value) + 1)
    return [wave.outcomes[did] for did, _ in wave.claims]


def _hand_over(transport: Transport, message: Message) -> list[str] | SendError:
    """[the provider's message id], or the error (runs in a pool thread: no database here).

    Whatever the transport raised is this message's outcome, never the run's end: an error
    escaping here left the wave's rows claimed, to be claimed first again and crash again.
    """
    try:
        return [transport.send(message)]
    except Exception as error:
        return _outcome_of(error, f"delivery {message.tags.get('delivery_id', '?')}")


def _hand_over_batch(
    transport: Transport, template: Message, recipients: list[Recipient]
) -> list[str] | SendError:
    """One request for everyone sharing `template`; a wave's share never needs two (SendGrid
    takes 1,000 recipients a request), so a failure means none of them was accepted."""
    try:
        return transport.send_batch(template, recipients)  # type: ignore[attr-defined]
    except BatchSendError as failure:
        return failure.error
    except Exception as error:  # as in _hand_over: the request's outcome, not the run's end
        return _outcome_of(error, "a shared digest")


def _outcome_of(error: Exception, what: str | None) -> SendError:
    """An exception from a transport as a send's outcome; a surprise is logged in full."""
    if not isinstance(error, SendError):
        log.exception("sending %s raised %r; recorded as its outcome", what or "a message", error)
    return as_send_error(error)


def _record(
    session: Session,
    delivery: ledger.Delivery,
    result: list[str] | SendError,
    retry_seconds: Sequence[float],
) -> Outcome:
    """Write one send's outcome (the request's message ids, or its error) into its row."""
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
    message_id = result[0] if result else ""  # a 2xx without an id still means accepted
    ledger.mark_sent(session=session, delivery=delivery, provider_message_id=message_id)
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
        result = _hand_over(transport, _tagged(message, delivery))
        outcome = _record(session, delivery, result, settings.send_retry_seconds)
        setattr(report, outcome.value, getattr(report, outcome.value) + 1)


def _tags(delivery: ledger.Delivery) -> dict[str, str]:
    """Carry the delivery id to the provider, so its events find their way back."""
    return {"delivery_id": str(delivery.id), "kind": delivery.kind}


def _tagged(message: Message, delivery: ledger.Delivery) -> Message:
    return replace(message, tags={**message.tags, **_tags(delivery)})
