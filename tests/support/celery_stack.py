"""The real delivery stack for tests and `bench/deliver.py`: databases, subscribers, processes.

Seeds a PostgreSQL database with the bundled corpus and thousands of daily subscribers, and
starts real `celery worker` / `celery beat` processes (and, when a test needs one to kill, a
private `redis-server`) in their own process groups, so a test can SIGKILL a whole worker.

Leases and retry delays are settings (DIGEST_SEND_LEASE_SECONDS, DIGEST_SEND_RETRY_SECONDS):
tests shorten them so a crashed worker's rows come back within the test.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlmodel import col, select

from core.db import get_engine, is_postgres_url, session_scope
from core.settings import Settings
from digest.papers import latest_announcement
from subscribers import ledger
from subscribers.models import Frequency, Status, Subscriber, utcnow
from tests.support.subprocess_env import without_digest_settings

ROOT = Path(__file__).resolve().parents[2]
# The local PostgreSQL the tests and benchmarks make their databases next to.
POSTGRES_ADMIN_URL = os.environ.get(
    "DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
VENV_BIN = Path(sys.executable).parent
# Lookback for the bundled corpus (about three papers a day over two months): long enough that
# most profiles have something relevant, as on a real announcement day with hundreds of papers.
CORPUS_LOOKBACK_DAYS = 60

# Realistic speech/audio profiles: what people type on the signup page.
KEYWORDS = [
    "TTS", "speech synthesis", "audio captioning", "speech language model", "voice cloning",
    "speech tokenizer", "speech recognition", "ASR", "voice conversion", "audio codec",
    "speaker verification", "emotion recognition", "spoken dialogue", "full-duplex",
    "singing voice synthesis", "prosody", "speech enhancement", "audio language model",
    "sound event detection", "speech translation", "zero-shot TTS", "neural codec",
    "music generation", "speech quality assessment", "streaming ASR", "diffusion",
]  # fmt: skip

# Run as `python -c` in place of the `celery` script (the venv's interpreter, whatever PATH is).
_WORKER_SHIM = """
import sys
from celery.bin.celery import main
sys.argv[0] = "celery"
sys.exit(main())
"""


def stack_settings(*, var_dir: Path, database_url: str, broker_url: str, label: str) -> Settings:
    """Settings for one test or bench stack: its own database, broker and var/ folder."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=var_dir,
        database_url=database_url,
        broker_url=broker_url,
        secret_keys=[f"{label}-secret"],
        public_url=f"http://digest.{label}",
        lookback_days=CORPUS_LOOKBACK_DAYS,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = ""
) -> None:
    """Poll until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or condition}")
        time.sleep(interval)


# --- databases -------------------------------------------------------------------------------


def create_database(admin_url: str, *, template: str | None = None) -> str:
    """A fresh PostgreSQL database next to `admin_url` (a copy of `template` when given)."""
    name = f"digest_stack_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    get_engine(url).dispose()
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_profiles(n: int, seed: int = 7) -> list[list[str]]:
    """`n` keyword profiles of 1-4 keywords each, drawn from KEYWORDS."""
    rng = random.Random(seed)
    return [rng.sample(KEYWORDS, rng.randint(1, 4)) for _ in range(n)]


def add_subscribers(settings: Settings, n: int, *, seed: int = 7) -> None:
    """Bulk-insert `n` active, confirmed, daily subscribers (an operator's import)."""
    now = utcnow()
    rows = [
        {
            "email": f"reader{i:06d}@example.org",
            "keywords": keywords,
            "frequency": Frequency.daily,
            "monthly": False,
            "timezone": "UTC",
            "send_hour": 7,
            "status": Status.active,
            "created_at": now,
            "confirmed_at": now,
        }
        for i, keywords in enumerate(make_profiles(n, seed))
    ]
    with session_scope(settings.sqlalchemy_url) as session:
        for start in range(0, len(rows), 2000):
            session.execute(insert(Subscriber).values(rows[start : start + 2000]))


def pad_papers(settings: Settings, total: int, *, seed: int = 7) -> int:
    """Grow the stored corpus to `total` papers with reworded copies of the real ones.

    Each copy keeps its source's categories and listing day, drops a title word and keeps a
    shuffled 60-100% of the abstract's sentences: as many on-topic papers as a busy stretch of
    speech and audio listings, with the real corpus's vocabulary. Returns papers added.
    """
    import re

    from digest.papers import Paper, PaperIn, upsert_papers

    rng = random.Random(seed)
    with session_scope(settings.sqlalchemy_url) as session:
        real = list(session.exec(select(Paper).order_by(col(Paper.arxiv_id))))
        copies = []
        for number in range(max(0, total - len(real))):
            source = real[number % len(real)]
            sentences = re.split(r"(?<=[.!?])\s+", source.abstract)
            rng.shuffle(sentences)
            keep = max(1, int(len(sentences) * rng.uniform(0.6, 1.0)))
            words = source.title.split()
            if len(words) > 3:
                del words[rng.randrange(len(words))]
            arxiv_id = f"9{number // 100000:03d}.{number % 100000:05d}"
            data = source.model_dump(exclude={"sources", "first_seen_at"})
            data.update(
                arxiv_id=arxiv_id,
                title=" ".join(words),
                abstract=" ".join(sentences[:keep]),
                abs_url=f"https://arxiv.org/abs/{arxiv_id}",
                pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
                source="padding",
            )
            copies.append(PaperIn(**data))
        upsert_papers(session=session, papers=copies)
    return len(copies)


def seed_stack(settings: Settings, subscribers: int, *, papers: int | None = None) -> date:
    """Migrate, ingest the bundled corpus (padded to `papers`), add subscribers; returns the
    newest announcement day."""
    from workers import jobs, migrate
    from workers.demo import sample_corpus_path

    migrate.upgrade(settings)
    jobs.ingest_document(settings=settings, location=str(sample_corpus_path()), source="sample")
    if papers:
        pad_papers(settings, papers)
    add_subscribers(settings, subscribers)
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    analyze(settings.sqlalchemy_url)
    return day


def analyze(url: str) -> None:
    """Statistics after a bulk seed, as a database in service has them (autovacuum's work, a
    minute later; this machine's PostgreSQL runs with autovacuum off). Without them PostgreSQL
    takes 20 subscribers for 20,000, and once psycopg prepares a statement the generic plan
    filters `id = ANY($1)` through every subscriber instead of looking each id up."""
    if is_postgres_url(url):
        with get_engine(url).connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


_CLAIM_KEY = "digest-test-claim"  # its value: who holds the database (expires after 30 min)
_CLAIMS: dict[str, str] = {}  # the databases this process claimed, and its marker on each


def claim_redis_db(server_url: str, candidates: Sequence[int] = (13, 12, 14, 10, 9, 8)) -> str:
    """A Redis database on the shared server that no other test run is using, flushed.

    Two test sessions on one machine must not share a broker (their workers would take each
    other's tasks and their beats each other's lock): each claims a database with a marker key.
    """
    import redis

    base = server_url.rsplit("/", 1)[0]
    marker = f"{_CLAIM_KEY}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    for db in candidates:
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.set(_CLAIM_KEY, marker, nx=True, ex=1800):
            client.flushdb()
            client.set(_CLAIM_KEY, marker, ex=1800)
            _CLAIMS[f"{base}/{db}"] = marker
            return f"{base}/{db}"
    raise RuntimeError(f"no free Redis database among {list(candidates)} on {base}")


def release_redis_db(url: str) -> None:
    """Give a database this process claimed back, emptied, unless its claim ran out and
    another run holds it now."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    marker = _CLAIMS.pop(url, None)
    if marker is not None and client.get(_CLAIM_KEY) == marker.encode():
        client.flushdb()


def flush_keeping_claim(url: str) -> None:
    """Empty a claimed database for the next test, keeping our claim on it."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    marker = client.get(_CLAIM_KEY)
    client.flushdb()
    if marker is not None:
        client.set(_CLAIM_KEY, marker, ex=1800)


# --- the ledger and the provider, as the assertions see them ----------------------------------


@dataclass
class LedgerState:
    rows: dict[int, ledger.Delivery]  # delivery id -> row
    emails: dict[int, str]  # delivery id -> the subscriber's address

    @property
    def statuses(self) -> Counter[str]:
        return Counter(str(row.status) for row in self.rows.values())

    def with_status(self, status: ledger.DeliveryStatus) -> set[int]:
        return {did for did, row in self.rows.items() if row.status == status}


def ledger_state(settings: Settings) -> LedgerState:
    with session_scope(settings.sqlalchemy_url) as session:
        query = select(ledger.Delivery, Subscriber.email).join(
            Subscriber, col(Subscriber.id) == col(ledger.Delivery.subscriber_id)
        )
        found = list(session.exec(query))
    return LedgerState(
        rows={row.id or 0: row for row, _ in found},
        emails={row.id or 0: email for row, email in found},
    )


def unfinished(settings: Settings) -> int:
    """Rows still waiting or claimed."""
    with session_scope(settings.sqlalchemy_url) as session:
        statuses = [ledger.DeliveryStatus.planned, ledger.DeliveryStatus.sending]
        query = select(ledger.Delivery.id).where(col(ledger.Delivery.status).in_(statuses))
        return len(list(session.exec(query)))


def accepted_ids(personalizations: Iterable[dict[str, Any]]) -> Counter[int]:
    """How often the provider accepted each delivery id (from per-recipient custom_args)."""
    return Counter(int(p["custom_args"]["delivery_id"]) for p in personalizations)


def accepted_by_delivery(personalizations: Iterable[dict[str, Any]]) -> dict[int, list[str]]:
    """Delivery id -> the addresses the provider accepted it for."""
    found: dict[int, list[str]] = {}
    for p in personalizations:
        found.setdefault(int(p["custom_args"]["delivery_id"]), []).extend(
            to["email"] for to in p["to"]
        )
    return found


# --- processes -------------------------------------------------------------------------------


def stack_env(
    settings: Settings,
    *,
    sendgrid_url: str,
    sendgrid_key: str,
    lease_seconds: float | None = None,
    retry_seconds: float | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment a worker or beat of this stack runs with (no `.env`: cwd is var_dir)."""
    env = without_digest_settings()
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "DIGEST_DATABASE_URL": settings.sqlalchemy_url,
            "DIGEST_BROKER_URL": settings.broker_url,
            "DIGEST_MAIL_BACKEND": "sendgrid",
            "DIGEST_SENDGRID_HOST": sendgrid_url,
            "DIGEST_SENDGRID_API_KEY": sendgrid_key,
            "DIGEST_VAR_DIR": str(settings.var_dir),
            "DIGEST_SECRET_KEYS": ",".join(settings.signing_keys()),
            "DIGEST_PUBLIC_URL": settings.public_url,
            "DIGEST_LOOKBACK_DAYS": str(settings.lookback_days),
        }
    )
    if lease_seconds is not None:
        env["DIGEST_SEND_LEASE_SECONDS"] = str(lease_seconds)
    if retry_seconds is not None:
        env["DIGEST_SEND_RETRY_SECONDS"] = str(retry_seconds)
    env.update(extra or {})
    return env


@dataclass
class CeleryProcess:
    """One `celery` command (worker or beat) in its own process group, logging to a file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_offsets: list[int] = field(default_factory=list)
    # What runs `args`: the `celery` script, or e.g. the `digest` command (`digest worker`).
    program: tuple[str, ...] = (str(VENV_BIN / "python"), "-c", _WORKER_SHIM)

    def start(self) -> CeleryProcess:
        self.starts += 1
        self._log_offsets.append(self.log_path.stat().st_size if self.log_path.exists() else 0)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.program, *self.args],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg takes the pool too
            )
        return self

    def log(self, *, current_run: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes().decode("utf-8", "replace")
        return data[self._log_offsets[-1] :] if current_run and self._log_offsets else data

    def wait_ready(self, marker: str = "ready.", timeout: float = 60.0) -> CeleryProcess:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"celery exited early:\n{self.log()[-3000:]}")
            return marker in self.log(current_run=True)

        wait_until(ready, timeout=timeout, what=f"{self.log_path.stem} to log {marker!r}")
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acks, no cleanup."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL whatever is left of the group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def celery_worker(
    env: dict[str, str],
    workdir: Path,
    *,
    name: str = "w1",
    concurrency: int = 2,
    extra: Sequence[str] = (),
) -> CeleryProcess:
    args = [
        "-A", "workers.celery_app", "worker", "-Q", "plan,send", "-c", str(concurrency),
        "--pool", "prefork", "-n", f"{name}@%h", "-l", "info", "--without-mingle",
        "--without-gossip", *extra,
    ]  # fmt: skip
    return CeleryProcess(args, env, workdir / f"{name}.log", workdir)


def celery_beat(env: dict[str, str], workdir: Path, *, name: str) -> CeleryProcess:
    args = [
        "-A", "workers.celery_app", "beat", "-l", "info",
        "--schedule", str(workdir / f"{name}-schedule"), "--pidfile", "",
    ]  # fmt: skip
    return CeleryProcess(args, env, workdir / f"{name}.log", workdir)


@dataclass
class RedisServer:
    """A private, non-persistent redis-server a test may kill and restart at will."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def plan_day(settings: Settings, day: date) -> int:
    from workers.planning import plan_daily

    return plan_daily(settings=settings, day=day).planned


def minutes_ago(minutes: float) -> datetime:
    return utcnow() - timedelta(minutes=minutes)
