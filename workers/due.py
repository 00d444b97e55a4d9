"""Who is due what: a digest period (Slot), the one a subscriber is due at a given time, and
the readers plan_daily reads for a day (columns, not ORM objects)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select as core_select
from sqlmodel import Session, col

from subscribers.models import Frequency, Subscriber, receives_mail_where
from subscribers.payloads import FEED_KIND


@dataclass(frozen=True)
class Slot:
    """One digest period: daily 2026-01-29 or weekly 2026-W05, ending on `day`."""

    kind: str
    period: str
    day: date
    lookback_days: int

    @property
    def since(self) -> date:
        """The window's first day: `lookback_days` days, ending on `day`."""
        return self.day - timedelta(days=self.lookback_days - 1)


def due_slot(subscriber: Subscriber, now: datetime, lookback_days: int) -> Slot | None:
    """The digest a subscriber is due at `now` in their own time zone, if their hour has come."""
    local = now.astimezone(ZoneInfo(subscriber.timezone))
    if subscriber.frequency in (Frequency.daily, Frequency.feed):
        if local.hour < subscriber.send_hour:
            return None
        kind = FEED_KIND if subscriber.frequency == Frequency.feed else "daily"
        return Slot(kind, local.date().isoformat(), local.date(), lookback_days)
    # Weekly goes out on Monday at the send hour, or later that week if planning was down.
    if local.weekday() == 0 and local.hour < subscriber.send_hour:
        return None
    year, week, _ = local.isocalendar()
    return Slot("weekly", f"{year}-W{week:02d}", local.date(), 7)


class Reader(Protocol):
    """What planning reads of a subscriber: an ORM Subscriber (beat's path) or the columns
    plan_daily reads (DueReader)."""

    @property
    def id(self) -> int | None: ...
    @property
    def email(self) -> str: ...
    @property
    def keywords(self) -> Sequence[str]: ...
    @property
    def trending_only(self) -> bool: ...


class DueReader(NamedTuple):
    """A subscriber who gets `day`'s digest, as plan_daily reads them: five columns, not an
    ORM object (loading 100k objects was about a fifth of the planner's CPU)."""

    id: int
    email: str
    keywords: list[str]
    trending_only: bool
    frequency: Frequency


def due_daily_chunk(session: Session, *, after: int, limit: int, day: date) -> list[DueReader]:
    """The next `limit` daily (or feed-only) subscribers by id who get `day`'s digest
    (`Subscriber.receives_mail`), after id `after` (keyset paging)."""
    query = (
        core_select(col(Subscriber.id), col(Subscriber.email), col(Subscriber.keywords),
                    col(Subscriber.trending_only), col(Subscriber.frequency))
        .where(
            receives_mail_where(day),
            col(Subscriber.frequency).in_([Frequency.daily, Frequency.feed]),
            col(Subscriber.id) > after,
        )
        .order_by(col(Subscriber.id))
        .limit(limit)
    )
    found = session.connection().execute(query)
    return [DueReader(sid or 0, email, keywords or [], trending_only, frequency)
            for sid, email, keywords, trending_only, frequency in found]
