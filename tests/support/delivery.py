"""A day of daily digests to deliver: the bundled sample corpus stored with confirmed
subscribers, and the latest announcement day planned. For the sending and rendering tests.
"""

from __future__ import annotations

from core.db import session_scope
from core.settings import Settings
from digest.papers import latest_announcement
from subscribers.models import SubscriberCreate
from subscribers.service import add_subscriber
from workers import jobs, planning
from workers.demo import sample_corpus_path


def stock(settings: Settings, *profiles: tuple[str, list[str], str, int]) -> list[int]:
    """Ingest the sample corpus and add one confirmed subscriber per (email, keywords, time
    zone, send hour); their ids."""
    jobs.ingest_document(settings=settings, location=str(sample_corpus_path()), source="sample")
    ids = []
    with session_scope(settings.sqlalchemy_url) as session:
        for email, keywords, tz, hour in profiles:
            create = SubscriberCreate(email=email, keywords=keywords, timezone=tz, send_hour=hour)
            ids.append(add_subscriber(session=session, subscriber_create=create, confirmed=True).id)
    return [i or 0 for i in ids]


def plan_latest_day(settings: Settings) -> int:
    """Plan the stored corpus's newest announcement day; the rows planned."""
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    return planning.plan_daily(settings=settings, day=day).planned
