"""Who gets the monthly issue: one ledger row per eligible subscriber, and each one's copy.

`plan_monthly` writes the rows (kind "monthly", period = the month) and marks the issue sent
in the same transaction; the unique ledger key makes every re-run harmless. The sender
(workers/sending.py) re-checks the recipients with `monthly_addresses` at send time and
renders the issue once (`issue_template`), every reader's links filled in per recipient.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_
from sqlmodel import Session, col, select

from core.db import one_of
from core.settings import Settings
from digest.clippings.issue import (
    IssueError,
    content_size,
    issue_content,
    mark_issue_sent,
    month_clips,
)
from digest.clippings.models import IssueStatus, MonthlyIssue
from emails.links import RecipientLinks
from emails.message import Message
from emails.monthly import monthly_template, render_monthly
from subscribers.ledger import PlannedDelivery, plan_deliveries
from subscribers.models import Subscriber, Suppression, email_hash, gets_mail_where
from subscribers.payloads import MONTHLY_KIND, MonthlyPayload

KIND = MONTHLY_KIND
# What an unsubscribe token of the monthly issue carries besides the id: it stops that list only.
MONTHLY_ONLY = "list:monthly"


def archive_url(settings: Settings, slug: str) -> str:
    """The issue's web version, the email's "view in browser" link."""
    return f"{settings.public_url.rstrip('/')}/archive/{slug}"


def suppressed_hashes(*, session: Session) -> set[str]:
    """Every address hash on the suppression list."""
    return set(session.exec(select(Suppression.email_hash)))


def _wants_monthly(today: date) -> ColumnElement[bool]:
    """Confirmed, not paused (the monthly list, whether or not they get the digest), opted
    in; the suppression list is checked beside it."""
    return and_(col(Subscriber.monthly).is_(True), gets_mail_where(today))


def monthly_addresses(*, session: Session, ids: Collection[int], today: date) -> dict[int, str]:
    """Of these subscribers, those who still want the issue now: id -> address.

    Two queries for a thousand recipients, not a thousand ORM objects and the whole
    suppression list.
    """
    query = select(Subscriber.id, Subscriber.email).where(
        one_of(session, Subscriber.id, ids), _wants_monthly(today)
    )
    found = {sid or 0: address for sid, address in session.exec(query)}
    hashes = {sid: email_hash(address) for sid, address in found.items()}
    listed = select(Suppression.email_hash).where(
        one_of(session, Suppression.email_hash, set(hashes.values()))
    )
    suppressed = set(session.exec(listed))
    return {sid: found[sid] for sid, digest in hashes.items() if digest not in suppressed}


def eligible_subscriber_ids(*, session: Session, today: date) -> list[int]:
    """Every subscriber the issue goes to, in id order."""
    query = (
        select(Subscriber.id, Subscriber.email)
        .where(_wants_monthly(today))
        .order_by(col(Subscriber.id))
    )
    suppressed = suppressed_hashes(session=session)
    rows = session.exec(query)
    return [sid or 0 for sid, address in rows if email_hash(address) not in suppressed]


def plan_monthly(*, session: Session, issue: MonthlyIssue, today: date | None = None) -> int:
    """Ledger rows for every eligible subscriber (bulk, idempotent); marks the issue sent.

    Returns the rows added. A sent issue is not planned again: someone who joins after an
    issue went out reads it in the archive.
    """
    if issue.status == IssueStatus.sent:
        return 0
    if issue.status != IssueStatus.approved:
        raise IssueError(f"the {issue.month} issue is {issue.status.value}: approve it first")
    payload = MonthlyPayload(issue_id=issue.id or 0, slug=issue.slug)
    planned = [
        PlannedDelivery(subscriber_id=sid, kind=KIND, period=issue.month,
                        payload=payload.to_json(), share=payload.share_key())
        for sid in eligible_subscriber_ids(session=session, today=today or date.today())
    ]
    added = plan_deliveries(session=session, planned=planned)
    mark_issue_sent(session=session, issue=issue)
    session.flush()
    return added


@lru_cache(maxsize=8)
def _template(
    issue_id: int, frozen_at: str, content_key: str, sender: str, postal: str, archive: str
) -> Message:
    """Rendered once per issue and process (the content of a sent issue never changes)."""
    content: dict[str, Any] = json.loads(content_key)
    return monthly_template(content, sender=sender, postal_address=postal, archive_url=archive)


def issue_template(*, settings: Settings, issue: MonthlyIssue) -> Message:
    """The issue's shared template, placeholders for each recipient's links."""
    return _template(
        issue.id or 0,
        str(issue.approved_at),
        json.dumps(issue.content, sort_keys=True),
        settings.from_email,
        settings.postal_address,
        archive_url(settings, issue.slug),
    )


def preview_content(*, session: Session, issue: MonthlyIssue) -> dict[str, Any]:
    """What the issue would show now: a draft from the clips as they are, else its frozen
    content. Changes nothing."""
    if issue.status != IssueStatus.draft:
        return dict(issue.content)
    clips = month_clips(session=session, month=issue.month)
    return issue_content(clips=clips, month=issue.month, title=issue.title, intro=issue.intro)


def preview_email(*, settings: Settings, session: Session, issue: MonthlyIssue) -> Message:
    """The issue as a reader would get it, with example links that are not real tokens."""
    content = preview_content(session=session, issue=issue)
    if content_size(content) == 0:
        raise IssueError(f"the {issue.month} issue is empty: nothing to preview")
    base = settings.public_url.rstrip("/")
    example = f"{base}/unsubscribe/preview"
    return render_monthly(
        content,
        to="preview@example.org",
        sender=settings.from_email,
        links=RecipientLinks(f"{base}/manage/preview", example, example),
        postal_address=settings.postal_address,
        archive_url=archive_url(settings, issue.slug),
    )
