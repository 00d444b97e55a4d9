"""Who gets mail and what they asked for."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel


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


class SubscriberBase(SQLModel):
    email: str = Field(max_length=320, unique=True, index=True)  # normalised
    keywords: list[str] = Field(default_factory=list, sa_type=JSON)
    frequency: Frequency = Frequency.daily
    monthly: bool = True  # wants the monthly clippings issue
    timezone: str = Field(default="UTC", max_length=64)
    send_hour: int = Field(default=7, ge=0, le=23)  # local hour


class SubscriberCreate(SubscriberBase):
    pass


class Subscriber(SubscriberBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    status: Status = Field(default=Status.pending, index=True)
    paused_until: date | None = None
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None

    def receives_mail(self, today: date) -> bool:
        """Active and not paused on that day."""
        if self.status != Status.active:
            return False
        return self.paused_until is None or self.paused_until <= today
