"""Who gets the monthly issue: one ledger row per eligible subscriber, and each one's copy.

`plan_monthly` writes the rows (kind "monthly", period = the month) and marks the issue sent
in the same transaction; the unique ledger key makes every re-run harmless. The sender
(workers/broadcast.py, or workers/sending.py one row at a time) re-checks each subscriber
with `still_wants_monthly` at send time.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_
from sqlmodel import Session, col, or_, select

from digest.clippings.issue import (
    IssueError,
    content_size,
    issue_content,
    mark_issue_sent,
    month_clips,
)
from digest.clippings.models import IssueStatus, MonthlyIssue
from digest.settings import Settings
from emails.message import Message
from emails.monthly import (
    MANAGE_PLACEHOLDER,
    ONE_CLICK_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    fill_links,
    monthly_template,
    render_monthly,
    substitutions,
)
from emails.render import RecipientLinks
from subscribers.ledger import Delivery, PlannedDelivery, one_of, plan_deliveries
from subscribers.models import Status, Subscriber, Suppression, email_hash
from subscribers.outgoing import link, subscriber_links
from subscribers.tokens import Purpose, make_tokens

KIND = "monthly"
# What an unsubscribe token of the monthly issue carries besides the id: it stops that list only.
MONTHLY_ONLY = "list:monthly"


def archive_url(settings: Settings, slug: str) -> str:
    """The issue's web version, the email's "view in browser" link."""
    return f"{settings.public_url.rstrip('/')}/archive/{slug}"


def suppressed_hashes(*, session: Session) -> set[str]:
    """Every address hash on the suppression list."""
    return set(session.exec(select(Suppression.email_hash)))


def still_wants_monthly(subscriber: Subscriber, today: date, suppressed: set[str]) -> bool:
    """Confirmed, not paused, opted in, and not on the suppression list."""
    return (
        subscriber.gets_mail(today)  # the monthly list, whether or not they get the digest
        and subscriber.monthly
        and email_hash(subscriber.email) not in suppressed
    )


def _wants_monthly(today: date) -> ColumnElement[bool]:
    """`still_wants_monthly` in SQL, but for the suppression list."""
    return and_(
        col(Subscriber.status) == Status.active,
        col(Subscriber.monthly).is_(True),
        or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= today),
    )


def monthly_addresses(*, session: Session, ids: Collection[int], today: date) -> dict[int, str]:
    """Of these subscribers, those who still want the issue now: id -> address.

    The batch sender's `still_wants_monthly`: two queries for a thousand recipients instead of
    a thousand ORM objects and the whole suppression list.
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
    payload = {"issue_id": issue.id, "slug": issue.slug}
    planned = [
        PlannedDelivery(subscriber_id=sid, kind=KIND, period=issue.month, payload=payload)
        for sid in eligible_subscriber_ids(session=session, today=today or date.today())
    ]
    added = plan_deliveries(session=session, planned=planned)
    mark_issue_sent(session=session, issue=issue)
    session.flush()
    return added


def recipient_links(settings: Settings, subscriber_id: int) -> RecipientLinks:
    """The subscriber's own signed manage and unsubscribe links; unsubscribing (link and
    one-click) stops the monthly issue only."""
    links = subscriber_links(settings, subscriber_id)
    leave = link(settings, "unsubscribe", Purpose.unsubscribe, subscriber_id, MONTHLY_ONLY)
    return RecipientLinks(links.manage_url, leave, leave)


def recipient_substitutions(
    settings: Settings, subscriber_ids: Sequence[int]
) -> list[dict[str, str]]:
    """`substitutions(recipient_links(...))` for many subscribers, in their order.

    The links differ only in their tokens (URL-safe base64 and dots), so the safety check
    `substitutions` makes on every link is made once on the shape they share.
    """
    keys = settings.signing_keys()
    base = settings.public_url.rstrip("/")
    manage = make_tokens(keys=keys, purpose=Purpose.manage, subscriber_ids=subscriber_ids)
    leave = make_tokens(keys=keys, purpose=Purpose.unsubscribe, subscriber_ids=subscriber_ids,
                        extra=MONTHLY_ONLY)
    sample = f"{base}/unsubscribe/t"
    substitutions(RecipientLinks(f"{base}/manage/t", sample, sample))  # raises if unsafe
    values = []
    for manage_token, leave_token in zip(manage, leave, strict=True):
        leave_url = f"{base}/unsubscribe/{leave_token}"
        values.append({
            MANAGE_PLACEHOLDER: f"{base}/manage/{manage_token}",
            UNSUBSCRIBE_PLACEHOLDER: leave_url,
            ONE_CLICK_PLACEHOLDER: leave_url,
        })  # fmt: skip
    return values


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


def render_monthly_delivery(
    *, settings: Settings, session: Session, delivery: Delivery, subscriber: Subscriber
) -> Message | None:
    """One subscriber's copy of the issue a row stands for; None when it no longer applies."""
    issue = session.get(MonthlyIssue, int(delivery.payload.get("issue_id") or 0))
    if issue is None or issue.status != IssueStatus.sent:
        return None
    listed = session.get(Suppression, email_hash(subscriber.email))
    if not still_wants_monthly(subscriber, date.today(), {listed.email_hash} if listed else set()):
        return None
    template = issue_template(settings=settings, issue=issue)
    links = recipient_links(settings, subscriber.id or 0)
    return fill_links(template, to=subscriber.email, links=links)


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
