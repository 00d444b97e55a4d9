"""A wave's held rows -> requests: rows that render alike share one render and one request.

Each kind says who still wants its email and renders it with placeholder links: digests (by
the planner's share key and the reader's keywords), the monthly issue (one render per
issue), account emails (each its own, links already in). A request is one render and its
recipients, each with their own link values and tags; it never carries more recipients
than the transport takes in one request. Rows that no longer apply, or that cannot be
rendered, are settled here and never reach the wire.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, partial
from typing import NamedTuple, TypeVar

from sqlalchemy import Date, bindparam
from sqlalchemy import select as core_select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Executable
from sqlmodel import Session, col, select

from core.db import is_postgres, one_of_param
from core.settings import Settings
from digest.clippings.models import IssueStatus, MonthlyIssue
from digest.daily import compose_daily
from digest.papers import Paper, papers_by_id
from emails.links import RecipientLinks, fill, substitutions
from emails.message import Message
from emails.render import shared_daily
from emails.transports.base import (
    PermanentSendError,
    Recipient,
    TransientSendError,
    address_problem,
)
from subscribers.ledger import Delivery, HeldRow
from subscribers.models import Subscriber, receives_mail_where
from subscribers.monthly import MONTHLY_ONLY, issue_template, monthly_addresses
from subscribers.outgoing import reader_links, render_account_delivery
from subscribers.payloads import DIGEST_KINDS, MONTHLY_KIND, DigestPayload, MonthlyPayload
from subscribers.saved_updates import update_views
from workers.outcomes import Outcomes

T = TypeVar("T")
log = logging.getLogger("digest.sending")
NO_LONGER_APPLIES = "no longer applies (subscriber left, paused or papers gone)"
# Papers and shared renders kept by one send run: a day's digests share a few hundred papers,
# and equal digests are neighbours in id order, so a few hundred renders catch nearly every
# repeat (about 30 KB each).
MAX_RUN_PAPERS = 20_000
MAX_RUN_RENDERS = 256


@dataclass
class Request:
    """One render and the rows it goes to; `recipients` in the order of `rows`."""

    template: Message
    rows: list[HeldRow] = field(default_factory=list)
    recipients: list[Recipient] = field(default_factory=list)


@dataclass
class RunCache:
    """What a send run remembers between waves: papers and shared digest renders."""

    papers: dict[str, Paper] = field(default_factory=dict)
    renders: dict[tuple[str, str, tuple[str, ...]], Message] = field(default_factory=dict)

    def trim(self) -> None:
        """Forget before a wave, never during one: a wave reads the payloads and papers of
        only the rows whose render is not remembered at its start."""
        if len(self.papers) > MAX_RUN_PAPERS:
            self.papers.clear()
            self.renders.clear()  # they were made from the papers just forgotten
        elif len(self.renders) >= MAX_RUN_RENDERS:
            self.renders.clear()


class DigestReader(NamedTuple):
    """A reader who gets the keyword digest today, as a sender reads them (no ORM object)."""

    id: int
    email: str
    keywords: tuple[str, ...]


def tags(row: HeldRow) -> dict[str, str]:
    """Carry the delivery id to the provider, so its events find their way back."""
    return {"delivery_id": str(row.id), "kind": row.kind}


_BREAKS_A_REQUEST = re.compile(r"[\s<>,;]")


def plausible(address: str) -> bool:
    """One address with a local part and a domain: nothing that breaks a shared request."""
    if address_problem(address):  # an encoded word would reach another mailbox
        return False
    local, _, domain = address.rpartition("@")
    return bool(local) and "." in domain and not _BREAKS_A_REQUEST.search(address)


def compose(
    *,
    settings: Settings,
    session: Session,
    rows: Sequence[HeldRow],
    cache: RunCache,
    outcomes: Outcomes,
    batch_limit: int,
) -> list[Request]:
    """The requests for these rows; rows that need none are recorded in `outcomes`."""
    today = date.today()
    requests: list[Request] = []
    digests = [r for r in rows if r.kind in DIGEST_KINDS]
    monthly = [r for r in rows if r.kind == MONTHLY_KIND]
    account = [r for r in rows if r.kind not in DIGEST_KINDS and r.kind != MONTHLY_KIND]
    if digests:
        requests += _digest_requests(settings, session, digests, cache, outcomes, today)
    if monthly:
        requests += _monthly_requests(settings, session, monthly, outcomes, today)
    readers = _subscribers(session, [r.subscriber_id for r in account])
    for row in account:
        reader = readers.get(row.subscriber_id)
        render = partial(_account_request, settings, session, row, reader)
        if (request := _guarded(outcomes, row, render)) is not None:
            requests.append(request)
    return [part for request in requests for part in _split(request, batch_limit)]


def render_row(settings: Settings, session: Session, delivery: Delivery) -> Message | None:
    """The email one ledger row stands for, as its reader gets it (links filled in); None
    when it no longer applies. For previews, tests and benchmarks; senders use `compose`."""
    row = HeldRow(delivery.id or 0, delivery.subscriber_id, delivery.kind, delivery.attempts,
                  json.dumps(delivery.payload), delivery.share, delivery.created_at)
    outcomes = Outcomes(settings.send_retry_seconds)
    requests = compose(settings=settings, session=session, rows=[row], cache=RunCache(),
                       outcomes=outcomes, batch_limit=1)
    if not requests:
        return None
    recipient = requests[0].recipients[0]
    return fill(requests[0].template, to=recipient.email, values=recipient.substitutions,
                tags=recipient.tags)


def _guarded(outcomes: Outcomes, row: HeldRow, render: Callable[[], T | None]) -> T | None:
    """Render one row; a row that cannot be rendered must not stop the rest of its wave."""
    try:
        rendered = render()
    except SQLAlchemyError:
        raise  # the wave's transaction is gone: its rows come back after their lease
    except Exception as error:
        log.exception("rendering delivery %s failed", row.id)
        outcomes.refused([row], TransientSendError(f"cannot render: {error!r}"))  # a fix may come
        return None
    if rendered is None:
        outcomes.skipped([row], NO_LONGER_APPLIES)
    return rendered


def _subscribers(session: Session, ids: Sequence[int]) -> dict[int, Subscriber]:
    if not ids:
        return {}
    query = select(Subscriber).where(col(Subscriber.id).in_(set(ids)))
    return {s.id or 0: s for s in session.exec(query)}


def _digest_readers(session: Session, ids: Sequence[int], today: date) -> dict[int, DigestReader]:
    """Of these subscribers, those who get the keyword digest today: one core query (ORM
    objects cost about four times as much, and a digest needs three columns)."""
    if not ids:
        return {}
    found = session.connection().execute(_readers_statement(is_postgres(session)),
                                         {"ids": list(set(ids)), "today": today})
    return {sid: DigestReader(sid, email, tuple(keywords or ())) for sid, email, keywords in found}


@cache
def _readers_statement(postgres: bool) -> Executable:
    """_digest_readers' statement, built once per dialect (`one_of_param`)."""
    return core_select(col(Subscriber.id), col(Subscriber.email), col(Subscriber.keywords)).where(
        one_of_param(Subscriber.id, "ids", postgres=postgres),
        receives_mail_where(bindparam("today", type_=Date)),
    )


def _render_key(row: HeldRow, reader: DigestReader) -> tuple[str, str, tuple[str, ...]] | None:
    """Rows with one share key and keywords render alike (the key covers the payload)."""
    return (row.kind, row.share, reader.keywords) if row.share else None


def _payloads_to_render(
    rows: Sequence[HeldRow], readers: dict[int, DigestReader], cache: RunCache
) -> dict[int, DigestPayload]:
    """The payloads of the rows whose render is not remembered: decoded once per share key
    (equal keys carry equal payloads), and not at all for readers who no longer get it."""
    decoded: dict[str, DigestPayload] = {}
    found: dict[int, DigestPayload] = {}
    for row in rows:
        reader = readers.get(row.subscriber_id)
        if reader is None or _render_key(row, reader) in cache.renders:
            continue
        memo = row.share or f"row {row.id}"
        if memo not in decoded:
            decoded[memo] = DigestPayload.from_json(row.payload)
        found[row.id] = decoded[memo]
    return found


def _load_papers(session: Session, payloads: Iterable[DigestPayload], cache: RunCache) -> None:
    wanted = {i for payload in payloads for i in payload.paper_ids()}
    missing = wanted - cache.papers.keys()
    if missing:
        cache.papers.update(papers_by_id(session=session, ids=missing))


def _digest_requests(
    settings: Settings,
    session: Session,
    rows: Sequence[HeldRow],
    cache: RunCache,
    outcomes: Outcomes,
    today: date,
) -> list[Request]:
    """Equal digests (same share key, same keywords) share one render and one request."""
    cache.trim()
    readers = _digest_readers(session, [r.subscriber_id for r in rows], today)
    payloads = _payloads_to_render(rows, readers, cache)
    _load_papers(session, payloads.values(), cache)
    groups: dict[int, Request] = {}
    members: list[tuple[HeldRow, DigestReader, Request]] = []
    for row in rows:
        reader = readers.get(row.subscriber_id)
        render = partial(_digest_template, settings, row, payloads.get(row.id), reader, cache)
        template = _guarded(outcomes, row, render)
        if template is None or reader is None:
            continue
        request = groups.setdefault(id(template), Request(template))
        members.append((row, reader, request))
    links = reader_links(settings, [reader.id for _, reader, _ in members], feedback=True)
    for (row, reader, request), own in zip(members, links, strict=True):
        _add(outcomes, request, row, reader.email, own)
    return [request for request in groups.values() if request.rows]


def _digest_template(
    settings: Settings,
    row: HeldRow,
    payload: DigestPayload | None,
    reader: DigestReader | None,
    cache: RunCache,
) -> Message | None:
    """The shared render of the digest a row stands for; None when it no longer applies."""
    if reader is None:  # left, paused, or off the digest list since planning
        return None
    key = _render_key(row, reader)
    if key is not None and key in cache.renders:
        return cache.renders[key]
    if payload is None:  # _payloads_to_render decodes every row whose render is not kept
        raise RuntimeError(f"delivery {row.id}: its payload was not read for rendering")
    digest = compose_daily(day=payload.day, keywords=reader.keywords,
                           matches=payload.matches, papers=cache.papers,
                           related=payload.related, weekly=row.kind == "weekly")
    if digest is None:
        return None
    template = shared_daily(  # remembered below, by share key, for the run
        digest, sender=settings.from_email, postal_address=settings.postal_address, feedback=True,
        updates=update_views(payload.updates, cache.papers), remember=False,
    )
    if key is not None:
        cache.renders[key] = template
    return template


def _monthly_requests(
    settings: Settings,
    session: Session,
    rows: Sequence[HeldRow],
    outcomes: Outcomes,
    today: date,
) -> list[Request]:
    """Every copy of an issue shares its render; readers who left or paused are skipped."""
    addresses = monthly_addresses(session=session, ids={r.subscriber_id for r in rows},
                                  today=today)
    wanted = [r for r in rows if r.subscriber_id in addresses]
    outcomes.skipped([r for r in rows if r.subscriber_id not in addresses],
                     "no longer wants the issue")
    links = reader_links(settings, [r.subscriber_id for r in wanted], stops=MONTHLY_ONLY)
    requests: dict[int, Request | None] = {}
    for row, own in zip(wanted, links, strict=True):
        issue_id = MonthlyPayload.from_json(row.payload).issue_id
        if issue_id not in requests:
            issue = session.get(MonthlyIssue, issue_id)
            sent = issue is not None and issue.status == IssueStatus.sent
            requests[issue_id] = (
                Request(issue_template(settings=settings, issue=issue)) if sent and issue else None
            )
        request = requests[issue_id]
        if request is None:
            outcomes.skipped([row], "issue not sent")
        else:
            _add(outcomes, request, row, addresses[row.subscriber_id], own)
    return [r for r in requests.values() if r is not None and r.rows]


def _account_request(
    settings: Settings, session: Session, row: HeldRow, reader: Subscriber | None
) -> Request | None:
    """An account email is rendered whole, its links in place: a request of its own."""
    if reader is None:
        return None
    message = render_account_delivery(
        settings=settings, delivery=row, subscriber=reader, session=session
    )
    if message is None:
        return None
    return Request(message, [row], [Recipient(email=message.to, tags=tags(row))])


def _add(
    outcomes: Outcomes, request: Request, row: HeldRow, address: str, links: RecipientLinks
) -> None:
    """One more recipient for a shared render; an address that would break the whole
    request fails this row alone."""
    if not plausible(address):
        outcomes.refused([row], PermanentSendError("not an email address"))
        return
    values = substitutions(links, checked=True)  # reader_links checked their shape
    request.rows.append(row)
    request.recipients.append(Recipient(email=address, substitutions=values, tags=tags(row)))


def _split(request: Request, batch_limit: int) -> list[Request]:
    """Requests of at most `batch_limit` recipients each, sharing the render."""
    if len(request.rows) <= batch_limit:
        return [request]
    return [
        Request(request.template, request.rows[i : i + batch_limit],
                request.recipients[i : i + batch_limit])
        for i in range(0, len(request.rows), batch_limit)
    ]
