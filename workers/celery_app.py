"""The Celery app and its beat schedule: when and where work runs.

Start workers with `celery -A workers.celery_app worker -Q plan,send` (as many as you like, on
as many machines) and one `celery -A workers.celery_app beat`. A second beat is harmless: the
scheduler below only publishes while it holds the beat lock (a key with a 30 s lease in the
broker's Redis, or a file lock in DIGEST_VAR_DIR on the embedded default), so an extra beat
stands by and takes over within seconds when the first one stops or dies. Every task is
idempotent besides, so even a duplicate tick would only repeat a no-op.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import uuid
from pathlib import Path
from typing import IO, Any, Protocol

import redis
from celery import Celery
from celery.beat import PersistentScheduler
from celery.schedules import crontab
from kombu.utils.url import maybe_sanitize_url
from sqlalchemy.engine import make_url

from core.settings import Settings, get_settings

log = logging.getLogger("digest.beat")
# httpx logs every request at INFO: one line per email would drown the worker's own log.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Long enough for any delay we schedule: retries live in the ledger, not in countdowns, so
# this only has to outlast one batch. A task unacked past it is redelivered.
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600
BEAT_LOCK_KEY = "digest:beat-lock"
BEAT_LOCK_TTL_SECONDS = 30.0
STANDBY_CHECK_SECONDS = 5.0  # how often a standby beat asks for the lock
SEND_TICK_SECONDS = 10.0
# Task name -> queue. Sends get their own queue so a long planning run never delays mail.
ROUTES = {
    "digest.ingest_listings": "plan",
    "digest.ingest_trending": "plan",
    "digest.plan_due": "plan",
    "digest.sweep": "plan",
    "digest.send_due": "send",
}
QUEUES = sorted(set(ROUTES.values()))


def beat_schedule() -> dict[str, dict[str, Any]]:
    """What beat publishes, and when (crontabs are US Eastern: arXiv's clock)."""
    return {
        # arXiv's RSS updates around midnight Eastern, Sunday to Thursday nights.
        "ingest-listings": {
            "task": "digest.ingest_listings",
            "schedule": crontab(minute=15, hour="0,1,2", day_of_week="mon-fri"),
        },
        # The day's trending papers fill in through the day: refresh their upvotes hourly.
        "ingest-trending": {"task": "digest.ingest_trending", "schedule": crontab(minute=40)},
        # Subscribers whose local send hour has come, daily or weekly.
        "plan-due": {"task": "digest.plan_due", "schedule": crontab(minute="*/15")},
        # Confirmation and account emails go out at once: a short tick drains the ledger. A
        # tick no worker took within its interval is dropped: the next one does the same job.
        "send-due": {
            "task": "digest.send_due",
            "schedule": SEND_TICK_SECONDS,
            "options": {"expires": SEND_TICK_SECONDS * 3},
        },
        # Expired leases and due retries back to the senders; prunes stale signups.
        "sweep": {"task": "digest.sweep", "schedule": crontab(minute="*/5")},
    }


def transport_options(broker_url: str) -> dict[str, Any]:
    """Broker transport options for this kind of broker.

    kombu's SQLAlchemy transport hands every option it does not know to `create_engine()`,
    which refuses `visibility_timeout` (a Redis and SQS notion): the SQL transport gets none
    of it. On SQLite it gets a long busy timeout instead, so the worker's processes and beat
    wait for each other's writes rather than fail with "database is locked".
    """
    if broker_url.startswith(("sqla+", "sqlalchemy+")):
        return {"connect_args": {"timeout": 30}} if "+sqlite:" in broker_url else {}
    return {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS}


def make_broker_folder(broker_url: str) -> None:
    """A SQLite broker's folder, made before anything opens the file (a fresh var/)."""
    scheme, _, rest = broker_url.partition("+")
    if scheme in ("sqla", "sqlalchemy") and rest.startswith("sqlite:"):
        database = make_url(rest).database
        if database and database != ":memory:":
            # A folder that cannot be made is reported when the broker is opened.
            with contextlib.suppress(OSError):
                Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings (the broker and nothing else comes from them)."""
    broker_url = settings.celery_broker_url
    make_broker_folder(broker_url)
    app = Celery("digest", broker=broker_url, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,  # a task killed mid-way is redelivered, not lost
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a slow send must not hold other tasks hostage
        task_ignore_result=True,
        task_default_queue="plan",
        task_routes={name: {"queue": queue} for name, queue in ROUTES.items()},
        broker_transport_options=transport_options(broker_url),
        broker_connection_retry_on_startup=True,
        timezone="America/New_York",  # arXiv announces on US Eastern time
        beat_schedule=beat_schedule(),
        beat_scheduler="workers.celery_app:SingleBeatScheduler",
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
        digest_beat_lock_file=str(settings.var_dir / "beat.lock"),
    )
    return app


class BrokerUnavailable(ConnectionError):
    """The broker cannot be opened: a command says so in one line and exits non-zero."""


def check_broker(app: Celery, *, retries: int = 3) -> None:
    """Open the broker and declare the queues once, before a worker, beat or sender starts.

    Celery logs a broker that fails at startup and then exits 0 (or retries for minutes); a
    check up front turns a missing Redis or a broken broker URL into one clear error.
    """
    url = str(app.conf.broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=retries, interval_start=1, interval_max=3)
            channel = connection.default_channel
            for queue in QUEUES:  # the first real use: kombu's SQL transport connects lazily
                app.amqp.queues[queue](channel).declare()  # as the worker will declare them
    except Exception as error:  # kombu raises whatever its transport's driver raised
        reason = (str(error).strip().splitlines() or [repr(error)])[0]
        where = maybe_sanitize_url(url)  # no password in the message
        raise BrokerUnavailable(f"broker {where} cannot start: {reason}") from None


class BeatLock(Protocol):
    def hold(self) -> bool:
        """Take or renew the lock; True while this process holds it."""
        ...

    def release(self) -> None: ...


class RedisBeatLock:
    """A key with a lease in the broker's Redis: taken with SET NX, renewed while ticking."""

    # Renew and release only our own token: a beat that lost the key must not take it back.
    _RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then "
    _RENEW += "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then "
    _RELEASE += "return redis.call('del', KEYS[1]) else return 0 end"

    def __init__(self, url: str, *, key: str = BEAT_LOCK_KEY, ttl: float = BEAT_LOCK_TTL_SECONDS):
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.token = uuid.uuid4().hex

    def hold(self) -> bool:
        try:
            if self.client.eval(self._RENEW, 1, self.key, self.token, self.ttl_ms):
                return True
            return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except redis.RedisError as error:
            # No Redis, no broker either: nothing could be published until it is back.
            log.warning("beat lock unavailable (%s); standing by", error)
            return False

    def release(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.eval(self._RELEASE, 1, self.key, self.token)


class FileBeatLock:
    """An flock on a file in var/: the embedded default runs on one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def hold(self) -> bool:
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None


def beat_lock_for(broker_url: str, lock_file: Path) -> BeatLock:
    """The Redis lock on a Redis broker, a file lock otherwise (a single machine)."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisBeatLock(broker_url)
    return FileBeatLock(lock_file)


class SingleBeatScheduler(PersistentScheduler):
    """Beat's persistent scheduler, publishing only while it holds the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("schedule_filename"):  # var/ may not exist yet on a fresh machine
            Path(kwargs["schedule_filename"]).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)
        conf = self.app.conf
        self.lock = beat_lock_for(str(conf.broker_url), Path(conf.digest_beat_lock_file))
        self.leading: bool | None = None  # unknown until the first tick

    def tick(self, *args: Any, **kwargs: Any) -> float:
        leading = self.lock.hold()
        if leading != self.leading:
            if leading:
                log.info("beat lock taken: this beat publishes the schedule")
            else:
                log.warning("another beat holds the lock: standing by")
            self.leading = leading
        if not leading:
            return STANDBY_CHECK_SECONDS
        # Wake up often enough to renew the lock well before it lapses.
        return min(float(super().tick(*args, **kwargs)), BEAT_LOCK_TTL_SECONDS / 3)

    def close(self) -> None:
        super().close()
        self.lock.release()


app = make_celery(get_settings())
