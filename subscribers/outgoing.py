"""Account emails out of the ledger: a non-digest Delivery row -> a Message, links signed here.

The sender (workers) calls `render_account_delivery` for every row whose kind is in
ACCOUNT_KINDS. The decision whether the email still makes sense is made at send time, from
the database as it is then (a confirmation for someone who has since confirmed or left is
dropped), so a queued row never acts on stale state.
"""

from __future__ import annotations

from dataclasses import replace

from sqlmodel import Session

from digest.settings import Settings
from emails import account
from emails.message import Message
from subscribers.ledger import Delivery
from subscribers.models import AccountMail, Frequency, Status, Subscriber
from subscribers.privacy import export_data, pending_change
from subscribers.tokens import Purpose, make_token

ACCOUNT_KINDS = frozenset(kind.value for kind in AccountMail)
SERVICE_NAME = "Paper Digest"
EVERY_LIST = "list:all"  # an unsubscribe token's extra: stop every list


def link(settings: Settings, path: str, purpose: Purpose, subscriber_id: int,
         extra: str = "") -> str:
    """An absolute signed link such as https://host/manage/<token>."""
    token = make_token(keys=settings.signing_keys(), purpose=purpose,
                       subscriber_id=subscriber_id, extra=extra)
    return f"{settings.public_url.rstrip('/')}/{path}/{token}"


def subscriber_links(settings: Settings, subscriber_id: int) -> account.AccountLinks:
    """The footer of an email to the subscriber's own address."""
    leave = link(settings, "unsubscribe", Purpose.unsubscribe, subscriber_id)
    return account.AccountLinks(
        unsubscribe_url=leave, one_click_url=leave,
        manage_url=link(settings, "manage", Purpose.manage, subscriber_id),
    )


def frequency_label(subscriber: Subscriber) -> str:
    """'Every day, plus the monthly clippings' and the like."""
    base = "Every day" if subscriber.frequency == Frequency.daily else "Once a week"
    return base + (", plus the monthly clippings" if subscriber.monthly else "")


def _confirm_still_wanted(delivery: Delivery, subscriber: Subscriber) -> bool:
    """Not yet active, and nobody pressed unsubscribe after this confirmation was asked for."""
    if subscriber.status not in (Status.pending, Status.unsubscribed):
        return False
    left = subscriber.unsubscribed_at
    return left is None or left < delivery.created_at


def render_account_delivery(*, settings: Settings, delivery: Delivery, subscriber: Subscriber,
                            session: Session) -> Message | None:
    """The account email a ledger row stands for; None when it no longer applies."""
    sid = subscriber.id or 0
    to = subscriber.email
    links = subscriber_links(settings, sid)
    # An account email belongs to no list: its unsubscribe stops everything. (A token with
    # no list, the digest's, stops the digest only; the monthly issue's says list:monthly.)
    leave_all = link(settings, "unsubscribe", Purpose.unsubscribe, sid, EVERY_LIST)
    links = replace(links, unsubscribe_url=leave_all, one_click_url=leave_all)
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
