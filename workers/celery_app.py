"""The Celery app and its beat schedule: when and where work runs.

Start a worker with `celery -A workers.celery_app worker -Q plan,send,events` and exactly one
`celery -A workers.celery_app beat`. A second beat is harmless: every scheduled task claims its
time slot in the database first (`workers.slots`), so a duplicate tick does nothing.
"""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab

from digest.settings import Settings, get_settings

# Long enough for any delay we schedule: retries live in the ledger, not in countdowns, so
# this only has to outlast one batch. A task unacked past it is redelivered.
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings (the broker and nothing else comes from them)."""
    app = Celery("digest", broker=settings.celery_broker_url, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,  # a task killed mid-way is redelivered, not lost
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a slow send must not hold other tasks hostage
        task_ignore_result=True,
        task_default_queue="plan",
        task_routes={
            "digest.send_due": {"queue": "send"},
            "digest.plan_due": {"queue": "plan"},
            "digest.ingest_listings": {"queue": "plan"},
            "digest.sweep": {"queue": "plan"},
        },
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        broker_connection_retry_on_startup=True,
        timezone="America/New_York",  # arXiv announces on US Eastern time
        beat_schedule={
            # arXiv's RSS updates around midnight Eastern, Sunday to Thursday nights.
            "ingest-listings": {
                "task": "digest.ingest_listings",
                "schedule": crontab(minute=15, hour="0,1,2", day_of_week="mon-fri"),
            },
            "plan-due": {"task": "digest.plan_due", "schedule": crontab(minute="*/15")},
            # Confirmation and account emails go out at once: a short tick drains the ledger.
            "send-due": {"task": "digest.send_due", "schedule": 10.0},
            "sweep": {"task": "digest.sweep", "schedule": crontab(minute="*/5")},
        },
    )
    return app


app = make_celery(get_settings())
