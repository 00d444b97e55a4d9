"""Who gets mail and what they asked for, the consent trail, and who must never be re-added."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import JSON, ColumnElement, and_, or_
from sqlmodel import Field, SQLModel, col


def utcnow() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    pending = "pending"  # signed up, not yet confirmed
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class Frequency(StrEnum):
    daily = "daily"
    weekly = "weekly"
    # No email: the daily picks are planned and recorded for the personal feed only.
    feed = "feed"


class SubscriberBase(SQLModel):
    email: str = Field(max_length=320, unique=True, index=True)  # normalised
    keywords: list[str] = Field(default_factory=list, sa_type=JSON)
    frequency: Frequency = Frequency.daily
    # Wants the monthly clippings issue: only ever on because the reader said so (no pre-ticked
    # box, no operator default).
    monthly: bool = False
    timezone: str = Field(default="UTC", max_length=64)
    send_hour: int = Field(default=7, ge=0, le=23)  # local hour
    # The day's top trending papers instead of keyword matches (also what no keywords means).
    trending_only: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class SubscriberCreate(SubscriberBase):
    pass


class SubscriberUpdate(SQLModel):
    """What a subscriber may change on the manage page (the address has its own flow)."""

    keywords: list[str]
    frequency: Frequency
    monthly: bool
    timezone: str
    send_hour: int = Field(ge=0, le=23)
    trending_only: bool = False


class Subscriber(SubscriberBase, table=True):
    # Tokens carry only the id and unsubscribe links never expire: an erased subscriber's id
    # must never be handed to someone else, which SQLite does for a deleted highest rowid
    # without this.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    status: Status = Field(default=Status.pending, index=True)
    paused_until: date | None = None
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    # "Sign out other links": manage and confirmation links signed before this second no
    # longer open anything (unsubscribe links still work). None: never signed out.
    links_valid_from: datetime | None = None
    # Wants the keyword digest (daily or weekly). False after "stop the daily digest" from a
    # digest's unsubscribe link while the monthly issue goes on; a new signup turns it back on.
    digest: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})
    # The personal feed's address carries this number; "New feed address" on the manage page
    # raises it, and addresses made for an older one answer 410 Gone.
    feed_generation: int = Field(default=0, sa_column_kwargs={"server_default": "0"})

    def gets_mail(self, today: date) -> bool:
        """Active and not paused on that day (any list; `gets_mail_where` in SQL)."""
        if self.status != Status.active:
            return False
        return self.paused_until is None or self.paused_until <= today

    def receives_mail(self, today: date) -> bool:
        """Gets the keyword digest on that day: active, not paused, and on the digest list
        (`receives_mail_where` says the same in SQL)."""
        return self.digest and self.gets_mail(today)

    def lists(self) -> list[str]:
        """The lists this subscriber asked for, as the consent trail names them."""
        return consent_lists(digest=self.digest, monthly=self.monthly)


def gets_mail_where(today: date | ColumnElement[date]) -> ColumnElement[bool]:
    """`Subscriber.gets_mail(today)` as a WHERE clause, for reads that need no objects."""
    return and_(
        col(Subscriber.status) == Status.active,
        or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= today),
    )


def receives_mail_where(today: date | ColumnElement[date]) -> ColumnElement[bool]:
    """`Subscriber.receives_mail(today)` as a WHERE clause (a sender's readers): the two are
    kept alike by a test."""
    return and_(col(Subscriber.digest).is_(True), gets_mail_where(today))


class MailList(StrEnum):
    """The lists a reader joins and leaves separately."""

    digest = "digest"  # the keyword digest, daily or weekly
    monthly = "monthly"  # the editor's monthly clippings issue


def consent_lists(*, digest: bool, monthly: bool) -> list[str]:
    return [name for name, on in ((MailList.digest.value, digest),
                                  (MailList.monthly.value, monthly)) if on]


class AccountMail(StrEnum):
    """Ledger kinds of the account emails (digests use daily, weekly, monthly)."""

    confirm = "confirm"  # double opt-in after a signup (or a re-signup of a left address)
    already = "already"  # a signup for an address that is already active: here is your link
    # (with a "use these new keywords?" button when the signup asked for other choices)
    confirm_email = "confirm-email"  # sent to a new address before it replaces the old one
    export = "export"  # a copy of everything we hold, to the address on file
    signed_out = "signed-out"  # "sign out other links" was pressed: the one link that works
    fresh_link = "fresh-link"  # asked for from an expired manage link: a new one


class ConsentAction(StrEnum):
    signup = "signup"  # asked on the web form (not yet consent: that is the confirmation)
    confirm = "confirm"
    imported = "imported"  # added by an operator, who vouches for consent
    unsubscribe = "unsubscribe"
    resubscribe = "resubscribe"
    email_change = "email_change"


class ConsentEvent(SQLModel, table=True):
    """The consent trail: when someone joined, confirmed, left, and how (kept for the export)."""

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    action: ConsentAction
    channel: str = Field(default="web", max_length=20)  # web, one-click, email-link, cli, csv
    # Which lists it was about, comma-separated (digest, monthly); "" on rows older than that.
    lists: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    created_at: datetime = Field(default_factory=utcnow)


class PendingEmail(SQLModel, table=True):
    """A new address waiting for its owner to confirm it; the old one stays until then."""

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    new_email: str = Field(max_length=320, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Suppression(SQLModel, table=True):
    """An erased address, kept only as a hash, so an import can't silently re-add it."""

    email_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(default="erased", max_length=20)
    created_at: datetime = Field(default_factory=utcnow)


class AddressMail(SQLModel, table=True):
    """One confirmation-type email sent to an address, or one address change asked from it,
    kept a day under a keyed hash of the address: the per-address caps count these rows, and
    erasing a subscriber (which deletes their ledger rows) must not reset them."""

    __tablename__ = "address_mail"

    id: int | None = Field(default=None, primary_key=True)
    address_key: str = Field(max_length=64, index=True)  # address_key(): HMAC, not the address
    kind: str = Field(max_length=20)  # AddressUse
    created_at: datetime = Field(default_factory=utcnow, index=True)


class AddressUse(StrEnum):
    confirm = "confirm"  # a confirmation-type email went to the address
    change = "change"  # the subscriber at the address asked to move to another one


def address_key(email: str, secret: str) -> str:
    """HMAC-SHA256 of a normalised address under our secret key: countable, not reversible by
    hashing a list of addresses (unlike email_hash, it is only kept for a day)."""
    return hmac.new(secret.encode(), f"paper-digest address:{email}".encode(),
                    hashlib.sha256).hexdigest()


def email_hash(email: str) -> str:
    """SHA-256 of a normalised address; unkeyed, so rotating secret keys never loses one."""
    return hashlib.sha256(f"paper-digest suppression:{email}".encode()).hexdigest()
