"""How long a link to the settings page lives: "sign out other links" and fresh links by email.

Manage links (and confirmation links, which lead to the settings page) signed before a
subscriber's `links_valid_from` are refused, as are manage links older than
DIGEST_MANAGE_LINK_DAYS; either way the reader may ask for a fresh one, which only ever goes
to the address on file. Unsubscribe links are left alone: they never expire and are never
signed out, so RFC 8058 one-click keeps working for as long as an email is kept.

Like service.py, every function takes the caller's session and leaves committing to it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, col

from subscribers.models import AccountMail, PendingEmail, Subscriber, utcnow
from subscribers.service import MAILS_PER_DAY, mails_since, plan_account_mail

LINK_MAIL_WINDOW = timedelta(days=1)


def _under_cap(session: Session, subscriber_id: int, kind: AccountMail, per_day: int) -> bool:
    since = utcnow() - LINK_MAIL_WINDOW
    return mails_since(session=session, subscriber_id=subscriber_id, kinds=[kind.value],
                       since=since) < per_day


def sign_out_links(*, session: Session, subscriber_id: int,
                   mails_per_day: int = MAILS_PER_DAY) -> bool:
    """Every manage and confirmation link signed so far stops working, the one in use
    included, the personal feed moves to a new address, and a fresh manage link is emailed
    to the address on file (signed when it is sent, so it works).

    Pending address changes are cancelled too: whoever held an old link may have asked to
    move the subscription to their own address. False (and nothing changed) when today's
    sign-out emails were sent already: signing out without a way back in would lock the
    reader out until tomorrow.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or not _under_cap(session, subscriber_id, AccountMail.signed_out,
                                            mails_per_day):
        return False
    # Whole seconds, like the stamps in the tokens: the fresh link, signed when the sender
    # gets to it (this second or later), is the first that works.
    subscriber.links_valid_from = utcnow().replace(microsecond=0)
    # The feed address is a link too: whoever held an old one loses it (a new one is on the
    # settings page).
    subscriber.feed_generation += 1
    session.add(subscriber)
    session.exec(delete(PendingEmail).where(col(PendingEmail.subscriber_id) == subscriber_id))
    session.flush()
    # False only when one was planned this very second already: that one carries the link.
    plan_account_mail(session=session, subscriber_id=subscriber_id, kind=AccountMail.signed_out)
    return True


def send_fresh_link(*, session: Session, subscriber_id: int,
                    mails_per_day: int = MAILS_PER_DAY) -> bool:
    """Email a fresh manage link to the address on file; False when over today's limit.

    Asked for from an expired or signed-out link, by whoever holds it: the link goes to the
    owner's inbox only, at most `mails_per_day` times a day (counted apart from sign-outs, so
    someone with an old link cannot use up the owner's way to sign them out).
    """
    if session.get(Subscriber, subscriber_id) is None or not _under_cap(
            session, subscriber_id, AccountMail.fresh_link, mails_per_day):
        return False
    return plan_account_mail(session=session, subscriber_id=subscriber_id,
                             kind=AccountMail.fresh_link)
