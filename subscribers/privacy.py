"""A subscriber's rights over their data: change the address, get a copy, be forgotten.

Plus the housekeeping that keeps us from holding what nobody consented to: signups never
confirmed are pruned after a week.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from core.db import is_postgres
from subscribers import ledger
from subscribers.feedback import FeedbackVote
from subscribers.models import (
    AccountMail,
    AddressMail,
    AddressUse,
    ConsentAction,
    ConsentEvent,
    PendingEmail,
    Status,
    Subscriber,
    Suppression,
    address_key,
    email_hash,
    utcnow,
)
from subscribers.saved import SavedPaper
from subscribers.service import (
    ADDRESS_WINDOW,
    CHANGES_PER_DAY,
    MAILS_PER_DAY,
    InvalidInput,
    address_uses,
    mails_since,
    normalize_email,
    note_address_use,
    plan_account_mail,
    record_consent,
)

CONFIRM_WINDOW = timedelta(days=7)  # confirmation links live this long, and so do signups


class AddressTaken(InvalidInput):
    """The new address already has its own subscription (told only to that address's owner)."""


def request_email_change(*, session: Session, subscriber_id: int, new_email: str,
                         mails_per_day: int = MAILS_PER_DAY,
                         changes_per_day: int = CHANGES_PER_DAY,
                         secret: str = "") -> PendingEmail | None:
    """Ask the new address to confirm; the old one stays in use until it does.

    Returns None (and sends nothing) when the new address had its confirmation emails for
    today or the subscriber asked for enough changes. Both are counted by address_key (under
    `secret`): erasing the asking subscriber and starting over resets neither.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    email = normalize_email(new_email)
    if subscriber is None:
        return None
    if email == subscriber.email:
        raise InvalidInput("That is already the address we send to.")
    new_key, own_key = address_key(email, secret), address_key(subscriber.email, secret)
    if (address_uses(session=session, key=new_key, use=AddressUse.confirm) >= mails_per_day
            or address_uses(session=session, key=own_key, use=AddressUse.change)
            >= changes_per_day):
        return None
    note_address_use(session=session, key=new_key, use=AddressUse.confirm)
    note_address_use(session=session, key=own_key, use=AddressUse.change)
    change = PendingEmail(subscriber_id=subscriber_id, new_email=email)
    session.add(change)
    session.flush()
    plan_account_mail(session=session, subscriber_id=subscriber_id,
                      kind=AccountMail.confirm_email, payload={"change_id": change.id})
    return change


def pending_change(*, session: Session, subscriber_id: int, change_id: int) -> PendingEmail | None:
    """The change request, if it belongs to this subscriber and has not expired."""
    change = session.get(PendingEmail, change_id)
    if change is None or change.subscriber_id != subscriber_id:
        return None
    if change.created_at < utcnow() - CONFIRM_WINDOW:
        return None
    return change


def confirm_email_change(*, session: Session, subscriber_id: int,
                         change_id: int) -> Subscriber | None:
    """The new address's owner confirmed: it replaces the old one. None when nothing to do."""
    change = pending_change(session=session, subscriber_id=subscriber_id, change_id=change_id)
    subscriber = session.get(Subscriber, subscriber_id)
    if change is None or subscriber is None:
        return None
    other = session.exec(select(Subscriber.id).where(Subscriber.email == change.new_email)).first()
    if other is not None and other != subscriber_id:
        raise AddressTaken("This address already has its own subscription; use the manage "
                           "link in its emails to change it.")
    subscriber.email = change.new_email
    session.add(subscriber)
    session.exec(delete(PendingEmail).where(
        col(PendingEmail.subscriber_id) == subscriber_id))
    session.exec(delete(Suppression).where(
        col(Suppression.email_hash) == email_hash(change.new_email)))
    record_consent(session=session, subscriber_id=subscriber_id,
                   action=ConsentAction.email_change, channel="email-link")
    session.flush()
    return subscriber


def request_export(*, session: Session, subscriber_id: int,
                   mails_per_day: int = MAILS_PER_DAY) -> bool:
    """Plan an email with a copy of the subscriber's data; False when over today's limit."""
    since = utcnow() - timedelta(days=1)
    if mails_since(session=session, subscriber_id=subscriber_id,
                   kinds=[AccountMail.export.value], since=since) >= mails_per_day:
        return False
    return plan_account_mail(session=session, subscriber_id=subscriber_id,
                             kind=AccountMail.export)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_data(*, session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything we hold about one subscriber, as JSON-ready data (read at send time)."""
    sid = subscriber.id or 0
    consent = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == sid)
                           .order_by(col(ConsentEvent.id)))
    deliveries = session.exec(select(ledger.Delivery).where(ledger.Delivery.subscriber_id == sid)
                              .order_by(col(ledger.Delivery.id)))
    papers = sorted(ledger.sent_paper_ids(session=session, subscriber_ids=[sid])[sid])
    changes = session.exec(select(PendingEmail).where(PendingEmail.subscriber_id == sid))
    votes = session.exec(select(FeedbackVote).where(FeedbackVote.subscriber_id == sid)
                         .order_by(col(FeedbackVote.created_at)))
    saved = session.exec(select(SavedPaper).where(SavedPaper.subscriber_id == sid)
                         .order_by(col(SavedPaper.created_at)))
    return {
        "subscriber": subscriber.model_dump(mode="json"),
        "consent": [{"action": e.action.value, "channel": e.channel, "lists": e.lists,
                     "at": _iso(e.created_at)}
                    for e in consent],
        "pending_address_changes": [{"new_email": c.new_email, "requested_at": _iso(c.created_at)}
                                    for c in changes],
        "emails": [{"kind": d.kind, "period": d.period, "status": d.status.value,
                    "planned_at": _iso(d.created_at), "sent_at": _iso(d.sent_at)}
                   for d in deliveries],
        "papers_sent": list(papers),
        "feedback": [{"arxiv_id": v.arxiv_id, "vote": v.vote, "at": _iso(v.created_at)}
                     for v in votes],
        "saved_papers": [{"arxiv_id": p.arxiv_id, "saved_at": _iso(p.created_at)}
                         for p in saved],
        "exported_at": utcnow().isoformat(),
    }


def erase(*, session: Session, subscriber_id: int) -> bool:
    """Delete the subscriber and everything hanging off them; keep only the address's hash."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return False
    insert = pg_insert if is_postgres(session) else sqlite_insert
    session.execute(insert(Suppression).values(
        email_hash=email_hash(subscriber.email), reason="erased", created_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["email_hash"]))
    # Ledger rows, sent papers, consent and pending changes go with it (ON DELETE CASCADE).
    session.exec(delete(Subscriber).where(col(Subscriber.id) == subscriber_id))
    session.expunge(subscriber)
    session.flush()
    return True


def prune_unconfirmed(*, session: Session, older_than: timedelta = CONFIRM_WINDOW,
                      now: datetime | None = None) -> int:
    """Forget signups nobody confirmed within the window, and expired address changes."""
    cutoff = (now or utcnow()) - older_than
    recent_mail = exists().where(
        col(ledger.Delivery.subscriber_id) == col(Subscriber.id),
        col(ledger.Delivery.created_at) >= cutoff,
    )
    stale = select(Subscriber.id).where(
        col(Subscriber.confirmed_at).is_(None),
        col(Subscriber.status).in_([Status.pending, Status.unsubscribed]),
        col(Subscriber.created_at) < cutoff,
        ~recent_mail,
    )
    ids = [sid for sid in session.exec(stale) if sid is not None]
    if ids:
        session.exec(delete(Subscriber).where(col(Subscriber.id).in_(ids)))
    session.exec(delete(PendingEmail).where(
        col(PendingEmail.created_at) < cutoff))
    session.exec(delete(AddressMail).where(  # the caps only look back this far
        col(AddressMail.created_at) < (now or utcnow()) - ADDRESS_WINDOW))
    session.flush()
    return len(ids)
