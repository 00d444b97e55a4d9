"""Subscriber operations: keyword profiles, signup with double opt-in, and the lifecycle.

Every function takes the caller's session and leaves committing to it. Emails are never sent
from here: a function that needs one writes a ledger row, and the sender picks it up.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from core.db import is_postgres
from digest.query import QueryError, parse_query, parse_term
from subscribers import ledger
from subscribers.models import (
    AccountMail,
    AddressMail,
    AddressUse,
    ConsentAction,
    ConsentEvent,
    MailList,
    Status,
    Subscriber,
    SubscriberCreate,
    SubscriberUpdate,
    Suppression,
    address_key,
    consent_lists,
    email_hash,
    utcnow,
)

MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 100
MAILS_PER_DAY = 3  # confirmation-type emails one address can be sent per 24 hours
CHANGES_PER_DAY = 3  # address changes the subscriber at one address can ask for per 24 hours
ADDRESS_WINDOW = timedelta(days=1)  # what both caps count over; AddressMail rows live as long
# A second identical signup this soon after one that planned an email (a double-click on
# Subscribe, a reload) plans no second email.
REPEAT_WINDOW = timedelta(minutes=2)
PROFILE_FIELDS = ("keywords", "frequency", "monthly", "timezone", "send_hour", "trending_only")


class InvalidInput(ValueError):
    """Input a person typed that we refuse, with a message fit to show them."""


class SignupOutcome(StrEnum):
    """What a signup did; for logs and tests only, the visitor sees the same page for all."""

    created = "created"  # new pending subscriber, confirmation planned
    resent = "resent"  # known pending or unsubscribed address: a fresh confirmation
    already = "already"  # known active address: a "you're already subscribed" email
    limited = "limited"  # this address had its emails for today: nothing sent
    quiet = "quiet"  # bounced or complained: we never mail it on a stranger's say-so
    repeat = "repeat"  # the same signup again within REPEAT_WINDOW: the first email stands


def normalize_email(raw: str) -> str:
    """Validate and normalise an address; display names and CR/LF are refused.

    Every address kept is ASCII, so every transport can deliver it: an internationalised
    domain is kept in its IDNA form (xn--), and characters outside ASCII before the @ are
    refused (they need SMTPUTF8, which neither SendGrid nor most relays offer).
    """
    if any(char in raw for char in '\r\n<>"') or raw != raw.strip():
        raise InvalidInput("Enter a plain email address, like ada@example.org.")
    if "=?" in raw:
        # An RFC 2047 encoded word: mail software decodes it in a To header, so the stored
        # address would be delivered somewhere else (=?utf-8?q?x=40evil.example?=@...).
        raise InvalidInput("Enter a plain email address: '=?' (an encoded word) is not allowed.")
    if not raw.rpartition("@")[0].isascii():
        raise InvalidInput(
            "We can only deliver to addresses with plain ASCII letters before the @; "
            "please use another address."
        )
    # Imported here: email_validator (with its tables of rules) is needed only where an
    # address is typed in, not by every command that reads subscribers.
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise InvalidInput(f"That email address is not valid: {error}") from None
    return (result.ascii_email or result.normalized).lower()


def parse_keywords(raw: str | Sequence[str]) -> list[str]:
    """Split comma- or line-separated keywords into a clean, de-duplicated list."""
    parts = re.split(r"[,\n\r;]+", raw) if isinstance(raw, str) else list(raw)
    keywords: list[str] = []
    seen: set[str] = set()
    for part in parts:
        cleaned = "".join(ch for ch in part if unicodedata.category(ch)[0] != "C")
        keyword = " ".join(cleaned.split())
        if not keyword:
            continue
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise InvalidInput(f"Keep each keyword under {MAX_KEYWORD_LENGTH} characters.")
        try:
            parse_term(keyword)  # author:, cat:, -negative and "quotes" must be well formed
        except QueryError as error:
            raise InvalidInput(str(error)) from None
        if keyword.lower() not in seen:
            seen.add(keyword.lower())
            keywords.append(keyword)
    if len(keywords) > MAX_KEYWORDS:
        raise InvalidInput(f"Use at most {MAX_KEYWORDS} keywords.")
    return keywords


@cache
def time_zones() -> frozenset[str]:
    """IANA zone names this machine knows."""
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(name: str) -> str:
    """An IANA zone name such as Europe/Paris; anything else is refused."""
    if name not in time_zones():
        raise InvalidInput("Choose a time zone from the list, like Europe/Paris.")
    return name


def clean_profile(update: SubscriberUpdate) -> SubscriberUpdate:
    """Keywords parsed and required, zone and hour checked: what a profile must satisfy."""
    keywords = parse_keywords(update.keywords)
    if not keywords and not update.trending_only:
        raise InvalidInput("Give at least one keyword, or choose trending papers only.")
    if keywords and not update.trending_only and not parse_query(keywords).positive:
        raise InvalidInput("Give at least one keyword that is not a -negative.")
    if not 0 <= update.send_hour <= 23:
        raise InvalidInput("Choose a send hour between 00:00 and 23:00.")
    return update.model_copy(
        update={"keywords": keywords, "timezone": validate_timezone(update.timezone)}
    )


def record_consent(
    *, session: Session, subscriber_id: int, action: ConsentAction, channel: str,
    lists: Sequence[str] = (),
) -> None:
    """Append to the consent trail: what happened, how (channel), and to which lists."""
    session.add(ConsentEvent(subscriber_id=subscriber_id, action=action, channel=channel,
                             lists=",".join(lists)))


def plan_account_mail(
    *,
    session: Session,
    subscriber_id: int,
    kind: AccountMail,
    payload: dict[str, Any] | None = None,
) -> bool:
    """A ledger row for one account email; the same kind twice in one second is one email."""
    period = utcnow().strftime("%Y%m%dT%H%M%SZ")
    planned = ledger.PlannedDelivery(
        subscriber_id=subscriber_id, kind=kind.value, period=period, payload=payload or {}
    )
    return ledger.plan_deliveries(session=session, planned=[planned]) == 1


def mails_since(
    *, session: Session, subscriber_id: int, kinds: Sequence[str], since: datetime
) -> int:
    """How many of these kinds of email the ledger holds for a subscriber since `since`."""
    query = (
        select(func.count())
        .select_from(ledger.Delivery)
        .where(
            ledger.Delivery.subscriber_id == subscriber_id,
            col(ledger.Delivery.kind).in_(list(kinds)),
            col(ledger.Delivery.created_at) >= since,
        )
    )
    return session.exec(query).one()


def address_uses(*, session: Session, key: str, use: AddressUse,
                 window: timedelta = ADDRESS_WINDOW) -> int:
    """How often this address (by address_key) was mailed or asked for a change lately."""
    query = select(func.count()).select_from(AddressMail).where(
        AddressMail.address_key == key, AddressMail.kind == use.value,
        col(AddressMail.created_at) >= utcnow() - window)
    return session.exec(query).one()


def note_address_use(*, session: Session, key: str, use: AddressUse) -> None:
    session.add(AddressMail(address_key=key, kind=use.value))


def is_suppressed(*, session: Session, email: str) -> bool:
    """Whether this (normalised) address was erased at its owner's request."""
    return session.get(Suppression, email_hash(email)) is not None


def add_subscriber(
    *, session: Session, subscriber_create: SubscriberCreate, confirmed: bool, channel: str = "cli"
) -> Subscriber:
    """Add a subscriber (an operator's import is pre-confirmed); refuses a known address."""
    email = normalize_email(subscriber_create.email)
    keywords = parse_keywords(subscriber_create.keywords)
    if not keywords and not subscriber_create.trending_only:
        raise InvalidInput("Give at least one keyword (or choose trending papers only).")
    if session.exec(select(Subscriber).where(Subscriber.email == email)).first():
        raise InvalidInput(f"{email} is already on the list.")
    if is_suppressed(session=session, email=email):
        raise InvalidInput(
            f"{email} asked to be erased; only they can sign up again, on the web page."
        )
    now: datetime = utcnow()
    subscriber = Subscriber.model_validate(
        subscriber_create,
        update={
            "email": email,
            "keywords": keywords,
            "status": Status.active if confirmed else Status.pending,
            "confirmed_at": now if confirmed else None,
        },
    )
    session.add(subscriber)
    session.flush()
    record_consent(
        session=session,
        subscriber_id=subscriber.id or 0,
        action=ConsentAction.imported if confirmed else ConsentAction.signup,
        channel=channel,
        lists=subscriber.lists(),
    )
    return subscriber


def list_subscribers(*, session: Session, status: Status | None = None) -> list[Subscriber]:
    """All subscribers, oldest first, optionally of one status."""
    query = select(Subscriber).order_by(col(Subscriber.id))
    if status is not None:
        query = query.where(Subscriber.status == status)
    return list(session.exec(query))


def _insert_pending(session: Session, create: SubscriberCreate, email: str) -> int | None:
    """Insert a pending subscriber unless the address exists (a racing signup may have won)."""
    # The dialects' INSERT ... ON CONFLICT builders are imported here, where they are used:
    # the PostgreSQL dialect package is a noticeable import for commands that only read.
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if is_postgres(session) else sqlite_insert
    values = create.model_dump() | {
        "email": email,
        "status": Status.pending,
        "created_at": utcnow(),
    }
    statement = (
        insert(Subscriber)
        .values(values)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(col(Subscriber.id))
    )
    return session.execute(statement).scalar_one_or_none()


def subscribe(
    *, session: Session, subscriber_create: SubscriberCreate, mails_per_day: int = MAILS_PER_DAY,
    secret: str = "",
) -> SignupOutcome:
    """A web signup: a new address becomes pending with a confirmation email on its way.

    The newest signup's choices win for an address that gets no mail (pending, or gone):
    its confirmation lists them, and confirming keeps them. An active reader's profile is
    never changed on a stranger's say-so: their "already subscribed" email offers the new
    choices as a button instead. The same signup again within REPEAT_WINDOW (a double-click)
    plans no second email. Either way an address gets at most `mails_per_day` such emails a
    day, counted by address_key (under `secret`, the newest signing key), so erasing a
    subscriber does not reset the count.
    """
    email = normalize_email(subscriber_create.email)
    profile = clean_profile(SubscriberUpdate.model_validate(subscriber_create.model_dump()))
    create = SubscriberCreate.model_validate(profile.model_dump() | {"email": email})
    key = address_key(email, secret)
    spent = address_uses(session=session, key=key, use=AddressUse.confirm) >= mails_per_day
    new_id = _insert_pending(session, create, email)
    lists = consent_lists(digest=True, monthly=create.monthly)
    if new_id is not None:
        record_consent(session=session, subscriber_id=new_id, action=ConsentAction.signup,
                       channel="web", lists=lists)
        if spent:  # pending without an email: a signup tomorrow sends the confirmation
            return SignupOutcome.limited
        note_address_use(session=session, key=key, use=AddressUse.confirm)
        plan_account_mail(session=session, subscriber_id=new_id, kind=AccountMail.confirm)
        return SignupOutcome.created
    known = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
    if known.status in (Status.bounced, Status.complained):
        return SignupOutcome.quiet
    sid = known.id or 0
    wanted = _profile(create) | {"digest": True}
    changed = _profile(known) | {"digest": known.digest} != wanted
    if known.status == Status.active:
        kind = AccountMail.already
        payload: dict[str, Any] = {"proposal": wanted} if changed else {}
    else:
        kind, payload = AccountMail.confirm, {}
        for name, value in wanted.items():  # the newest signup wins for an address not in use
            setattr(known, name, value)
        session.add(known)
        record_consent(session=session, subscriber_id=sid, action=ConsentAction.signup,
                       channel="web", lists=lists)
        session.flush()
    # Again the same (a double-click, a reload): the email on its way stands. For an active
    # reader "the same" includes the offered choices, which the payload carries.
    if (kind == AccountMail.already or not changed) and _planned_lately(session, sid, kind,
                                                                          payload):
        return SignupOutcome.repeat
    if spent:
        return SignupOutcome.limited
    note_address_use(session=session, key=key, use=AddressUse.confirm)
    plan_account_mail(session=session, subscriber_id=sid, kind=kind, payload=payload)
    return SignupOutcome.already if kind == AccountMail.already else SignupOutcome.resent


def _profile(source: SubscriberCreate | Subscriber) -> dict[str, Any]:
    """The choices a signup makes, comparable and JSON-ready (a ledger payload)."""
    return {name: (value.value if isinstance(value, StrEnum) else value)
            for name in PROFILE_FIELDS for value in [getattr(source, name)]}


def _planned_lately(session: Session, subscriber_id: int, kind: AccountMail,
                    payload: dict[str, Any]) -> bool:
    """Whether this email, with this payload, was planned within REPEAT_WINDOW."""
    rows = session.exec(select(ledger.Delivery.payload).where(
        ledger.Delivery.subscriber_id == subscriber_id, ledger.Delivery.kind == kind.value,
        col(ledger.Delivery.created_at) >= utcnow() - REPEAT_WINDOW))
    return any((row or {}) == payload for row in rows)


def proposal(*, session: Session, subscriber_id: int, delivery_id: int) -> dict[str, Any] | None:
    """The choices a signup for an active address asked for, from the email that offers
    them ("use these new keywords?"); None when that email is not this subscriber's."""
    row = session.get(ledger.Delivery, delivery_id)
    if row is None or row.subscriber_id != subscriber_id or row.kind != AccountMail.already:
        return None
    wanted = (row.payload or {}).get("proposal")
    return dict(wanted) if isinstance(wanted, dict) else None


def accept_proposal(*, session: Session, subscriber_id: int,
                    delivery_id: int) -> Subscriber | None:
    """The owner pressed "use these new keywords": the signup's choices replace theirs."""
    wanted = proposal(session=session, subscriber_id=subscriber_id, delivery_id=delivery_id)
    subscriber = session.get(Subscriber, subscriber_id)
    if wanted is None or subscriber is None:
        return None
    update = clean_profile(SubscriberUpdate.model_validate(wanted))
    for name, value in update.model_dump().items():
        setattr(subscriber, name, value)
    subscriber.digest = True
    session.add(subscriber)
    record_consent(session=session, subscriber_id=subscriber_id, action=ConsentAction.confirm,
                   channel="email-link", lists=subscriber.lists())
    session.flush()
    return subscriber


def _activate(
    session: Session, subscriber: Subscriber, action: ConsentAction, channel: str
) -> Subscriber:
    """Active from now on; an erased address that came back by itself leaves suppression."""
    subscriber.status = Status.active
    subscriber.confirmed_at = utcnow()
    subscriber.unsubscribed_at = None
    session.add(subscriber)
    session.exec(
        delete(Suppression).where(col(Suppression.email_hash) == email_hash(subscriber.email))
    )
    record_consent(
        session=session, subscriber_id=subscriber.id or 0, action=action, channel=channel,
        lists=subscriber.lists(),
    )
    session.flush()
    return subscriber


def confirm(*, session: Session, subscriber_id: int) -> Subscriber | None:
    """The owner confirmed from their inbox: active from now on (repeats change nothing)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == Status.active:
        return subscriber
    return _activate(session, subscriber, ConsentAction.confirm, "email-link")


def resubscribe(*, session: Session, subscriber_id: int) -> Subscriber | None:
    """Back on the list from a manage link (which proves the address): no new opt-in needed."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == Status.active:
        return subscriber
    action = ConsentAction.resubscribe if subscriber.confirmed_at else ConsentAction.confirm
    return _activate(session, subscriber, action, "manage-link")


def unsubscribe(*, session: Session, subscriber_id: int, channel: str = "web",
                mail_list: MailList | None = None) -> Subscriber | None:
    """No more mail of `mail_list` (None: none at all). Repeats are no-ops.

    Leaving the one list a reader still gets, or leaving while not active, is leaving
    altogether: the profile stays so a change of mind is one click, and every confirmation
    link sent before this moment is dead.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == Status.unsubscribed:
        return subscriber
    other = {MailList.digest: subscriber.monthly, MailList.monthly: subscriber.digest}
    on = {MailList.digest: subscriber.digest, MailList.monthly: subscriber.monthly}
    if mail_list is not None and subscriber.status == Status.active and not on[mail_list]:
        return subscriber  # already off that list
    if mail_list is not None and subscriber.status == Status.active and other[mail_list]:
        if mail_list == MailList.digest:
            subscriber.digest = False
        else:
            subscriber.monthly = False
        left = [mail_list.value]
    else:
        left = subscriber.lists()
        subscriber.status = Status.unsubscribed
        subscriber.unsubscribed_at = utcnow()
    session.add(subscriber)
    record_consent(
        session=session,
        subscriber_id=subscriber_id,
        action=ConsentAction.unsubscribe,
        channel=channel,
        lists=left,
    )
    session.flush()
    return subscriber


def resume_digest(*, session: Session, subscriber_id: int,
                  channel: str = "manage-link") -> Subscriber | None:
    """Back on the keyword digest after stopping it alone (the monthly issue went on).

    Only for an active reader who is off the digest; anyone else is left as they are (a
    reader who left altogether comes back through resubscribe). Repeats are no-ops.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != Status.active or subscriber.digest:
        return subscriber
    subscriber.digest = True
    session.add(subscriber)
    record_consent(session=session, subscriber_id=subscriber_id,
                   action=ConsentAction.resubscribe, channel=channel,
                   lists=[MailList.digest.value])
    session.flush()
    return subscriber


def digest_stopped_at(*, session: Session, subscriber_id: int) -> datetime | None:
    """When the reader last stopped the keyword digest alone, from the consent trail."""
    query = select(ConsentEvent.created_at).where(
        ConsentEvent.subscriber_id == subscriber_id,
        ConsentEvent.action == ConsentAction.unsubscribe,
        ConsentEvent.lists == MailList.digest.value,
    ).order_by(col(ConsentEvent.id).desc())
    return session.exec(query).first()


def update_profile(
    *, session: Session, subscriber_id: int, subscriber_update: SubscriberUpdate
) -> Subscriber | None:
    """Replace keywords, frequency, monthly opt-in, time zone and send hour."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    for name, value in clean_profile(subscriber_update).model_dump().items():
        setattr(subscriber, name, value)
    session.add(subscriber)
    session.flush()
    return subscriber


def pause(*, session: Session, subscriber_id: int, weeks: int, today: date) -> Subscriber | None:
    """No digests for `weeks` weeks from `today` (the subscriber's local date); 0 resumes."""
    if not 0 <= weeks <= 52:
        raise InvalidInput("Pause for between 1 and 52 weeks.")
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    subscriber.paused_until = today + timedelta(weeks=weeks) if weeks else None
    session.add(subscriber)
    session.flush()
    return subscriber
