"""A reader's signed links, and account emails out of the ledger (a row -> a Message).

`reader_links` signs every link an email carries for its reader (manage, unsubscribe from one
list, feedback); every kind of mail gets its links from it. The sender (workers/sending.py)
calls `render_account_delivery` for every row that is neither a digest nor a monthly issue.
Whether the email still makes sense is decided at send time, from the database as it is
then (a confirmation for someone who has since confirmed or left is dropped), so a queued
row never acts on stale state.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from core.settings import Settings
from emails import account
from emails.links import RecipientLinks, substitutions
from emails.message import Message
from subscribers.ledger import HeldRow
from subscribers.models import AccountMail, Frequency, Status, Subscriber
from subscribers.privacy import export_data, pending_change
from subscribers.tokens import Purpose, make_token, make_tokens

SERVICE_NAME = "Paper Digest"
# What an unsubscribe token carries besides the id says which list it stops: nothing, the
# keyword digest (daily or weekly); "list:monthly" (subscribers.monthly), the monthly issue.
DIGEST_LIST = ""
EVERY_LIST = "list:all"


def link(settings: Settings, path: str, purpose: Purpose, subscriber_id: int,
         extra: str = "") -> str:
    """An absolute signed link such as https://host/manage/<token>."""
    token = make_token(keys=settings.signing_keys(), purpose=purpose,
                       subscriber_id=subscriber_id, extra=extra)
    return f"{settings.public_url.rstrip('/')}/{path}/{token}"


def reader_links(settings: Settings, subscriber_ids: Sequence[int], *, stops: str = DIGEST_LIST,
                 feedback: bool = False) -> list[RecipientLinks]:
    """Each reader's own links, in their order: manage, unsubscribe (and its one-click POST
    target) from the list `stops` names, and with `feedback` the "more/less like this" base.
    Tokens are signed in one batch per purpose (a thousand recipients a wave). The links are
    checked once, on their shared shape: tokens are URL-safe base64 and dots, so every link
    is safe when that one is (`emails.links.substitutions(..., checked=True)` relies on it)."""
    keys = settings.signing_keys()
    base = settings.public_url.rstrip("/")
    shape = f"{base}/manage/t.t"
    substitutions(RecipientLinks(shape, shape, shape, shape))  # raises when the base is unsafe
    manage = make_tokens(keys=keys, purpose=Purpose.manage, subscriber_ids=subscriber_ids)
    leave = make_tokens(keys=keys, purpose=Purpose.unsubscribe, subscriber_ids=subscriber_ids,
                        extra=stops)
    votes = (make_tokens(keys=keys, purpose=Purpose.feedback, subscriber_ids=subscriber_ids)
             if feedback else [""] * len(subscriber_ids))
    return [
        RecipientLinks(manage_url=f"{base}/manage/{m}", unsubscribe_url=f"{base}/unsubscribe/{u}",
                       one_click_url=f"{base}/unsubscribe/{u}",
                       feedback_url=f"{base}/feedback/{f}" if f else "")
        for m, u, f in zip(manage, leave, votes, strict=True)
    ]


def frequency_label(subscriber: Subscriber) -> str:
    """'Every day, plus the monthly clippings' and the like."""
    base = {Frequency.daily: "Every day", Frequency.weekly: "Once a week",
            Frequency.feed: "No email: your personal feed only"}[subscriber.frequency]
    return base + (", plus the monthly clippings" if subscriber.monthly else "")


def _confirm_still_wanted(delivery: HeldRow, subscriber: Subscriber) -> bool:
    """Not yet active, and nobody pressed unsubscribe after this confirmation was asked for."""
    if subscriber.status not in (Status.pending, Status.unsubscribed):
        return False
    left = subscriber.unsubscribed_at
    return left is None or left < delivery.created_at


def render_account_delivery(*, settings: Settings, delivery: HeldRow, subscriber: Subscriber,
                            session: Session) -> Message | None:
    """The account email a ledger row stands for; None when it no longer applies."""
    sid = subscriber.id or 0
    to = subscriber.email
    # An account email belongs to no list: its unsubscribe stops everything.
    own = reader_links(settings, [sid], stops=EVERY_LIST)[0]
    links = account.AccountLinks(unsubscribe_url=own.unsubscribe_url,
                                 one_click_url=own.one_click_url, manage_url=own.manage_url)
    if delivery.kind == AccountMail.confirm:
        if not _confirm_still_wanted(delivery, subscriber):
            return None
        email = account.confirm_signup(
            confirm_url=link(settings, "confirm", Purpose.confirm, sid),
            keywords=subscriber.keywords, frequency=frequency_label(subscriber),
            service_name=SERVICE_NAME)
    elif delivery.kind == AccountMail.already:
        if subscriber.status != Status.active:
            return None
        wanted = delivery.payload.get("proposal")
        use_url = ""
        if isinstance(wanted, dict):
            use_url = link(settings, "confirm", Purpose.confirm, sid, f"profile:{delivery.id}")
        email = account.already_subscribed(
            manage_url=links.manage_url, service_name=SERVICE_NAME, use_url=use_url,
            keywords=list(wanted.get("keywords") or []) if isinstance(wanted, dict) else [],
            frequency=frequency_label(Subscriber.model_validate(
                {"email": to} | wanted)) if isinstance(wanted, dict) else "")
    elif delivery.kind == AccountMail.confirm_email:
        change = pending_change(session=session, subscriber_id=sid,
                                change_id=int(delivery.payload.get("change_id", 0)))
        if change is None:
            return None
        extra = f"email:{change.id}"
        # The new address's owner has not agreed to anything yet: no manage link, and
        # "stop these emails" cancels this request instead of unsubscribing the requester.
        stop = link(settings, "unsubscribe", Purpose.unsubscribe, sid, extra)
        links = account.AccountLinks(unsubscribe_url=stop, one_click_url=stop,
                                     unsubscribe_label="Not you? Stop these emails")
        to = change.new_email
        email = account.confirm_new_address(
            confirm_url=link(settings, "confirm", Purpose.confirm, sid, extra),
            service_name=SERVICE_NAME)
    elif delivery.kind in (AccountMail.signed_out, AccountMail.fresh_link):
        # Signed now, so after any sign-out (links signed before it are refused). Never to an
        # address that bounced or reported us as spam.
        if subscriber.status in (Status.bounced, Status.complained):
            return None
        email = account.fresh_settings_link(
            manage_url=links.manage_url, signed_out=delivery.kind == AccountMail.signed_out,
            link_days=settings.manage_link_days, service_name=SERVICE_NAME)
    elif delivery.kind == AccountMail.export:
        email = account.data_export(data=export_data(session=session, subscriber=subscriber),
                                    service_name=SERVICE_NAME)
    else:
        raise ValueError(f"not an account email kind: {delivery.kind!r}")
    return account.render_account(email, to=to, sender=settings.from_email, links=links,
                                  postal_address=settings.postal_address,
                                  service_name=SERVICE_NAME)
