"""Celery on the embedded default: real `digest worker` and `digest beat` processes on kombu's
SQLAlchemy transport over a SQLite file, the app's database a SQLite file too, mail in the
outbox. No Redis, no PostgreSQL: what a laptop user runs to watch the production path.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from core.db import session_scope
from core.settings import Settings
from digest.papers import latest_announcement
from subscribers.models import SubscriberCreate
from subscribers.service import add_subscriber
from tests.support import celery_stack as stack
from tests.support.subprocess_env import without_digest_settings
from workers import jobs, migrate, planning
from workers.demo import sample_corpus_path

DIGEST = str(stack.VENV_BIN / "digest")
SECRET = "sqlite-broker-secret"


def digest_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `digest` process on the embedded default (no DIGEST_BROKER_URL)."""
    env = without_digest_settings()
    env.update(
        {
            "PYTHONPATH": str(stack.ROOT),
            "PYTHONUNBUFFERED": "1",
            "DIGEST_VAR_DIR": str(var_dir),
            "DIGEST_MAIL_BACKEND": "outbox",
            "DIGEST_SECRET_KEYS": SECRET,
            "DIGEST_PUBLIC_URL": "http://digest.sqlite",
            "DIGEST_LOOKBACK_DAYS": str(stack.CORPUS_LOOKBACK_DAYS),
            **extra,
        }
    )
    return env


def subscribe(settings: Settings, email: str, keywords: list[str]) -> None:
    create = SubscriberCreate(email=email, keywords=keywords)
    with session_scope(settings.sqlalchemy_url) as session:
        add_subscriber(session=session, subscriber_create=create, confirmed=True)


def outbox(settings: Settings) -> list[str]:
    """The recipients' slugs of the messages in the outbox (an .eml is a message sent)."""
    names = [path.name for path in settings.outbox_path.glob("*.eml")]
    return sorted(name.split("-", 1)[1].rsplit("-", 1)[0] for name in names)


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Settings, date]:
    """A var/ with the bundled corpus and two daily subscribers; the newest announcement day."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=tmp_path / "var",
        secret_keys=[SECRET],
        lookback_days=stack.CORPUS_LOOKBACK_DAYS,
    )
    migrate.upgrade(settings)
    jobs.ingest_document(settings=settings, location=str(sample_corpus_path()), source="sample")
    subscribe(settings, "ada@example.org", ["TTS", "speech synthesis"])
    subscribe(settings, "alan@example.org", ["speech recognition"])
    with session_scope(settings.sqlalchemy_url) as session:
        day = latest_announcement(session=session)
    assert day is not None
    return settings, day


@pytest.fixture
def processes() -> Iterator[list[stack.CeleryProcess]]:
    started: list[stack.CeleryProcess] = []
    yield started
    for process in started:
        process.stop(timeout=20)


def terminate(process: stack.CeleryProcess, timeout: float = 60.0) -> int:
    """SIGTERM to the main process alone, as `docker stop` or `kill PID` sends it: a warm
    shutdown; its exit status. (A SIGTERM to the whole group also kills the pool's children,
    which can leave billiard waiting forever on a lock a dead child held.)"""
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    return process.process.wait(timeout=timeout)


def digest_process(env: dict[str, str], cwd: Path, name: str, *args: str) -> stack.CeleryProcess:
    return stack.CeleryProcess(list(args), env, cwd / f"{name}.log", cwd, program=(DIGEST,))


@pytest.mark.slow
def test_worker_and_beat_send_a_day_on_the_sqlite_broker(
    seeded: tuple[Settings, date], processes: list[stack.CeleryProcess], tmp_path: Path
) -> None:
    settings, day = seeded
    env = digest_env(settings.var_dir)
    worker = digest_process(
        env, tmp_path, "worker",
        "worker", "-Q", "plan,send", "-c", "2", "--without-mingle", "--without-gossip",
    )  # fmt: skip
    beat = digest_process(env, tmp_path, "beat", "beat")
    processes.extend([worker, beat])
    worker.start().wait_ready()
    beat.start().wait_ready("beat lock taken")

    # Planned in the ledger; beat's send tick (every 10 s) has the worker send them.
    assert planning.plan_daily(settings=settings, day=day).planned == 2
    stack.wait_until(lambda: len(outbox(settings)) == 2, timeout=90, what="two digests")
    assert outbox(settings) == ["ada-example-org", "alan-example-org"]
    # Beat publishes its 10 s send tick. (When the clock crosses a five-minute mark the
    # sweep may have started the sending first, so wait for the tick rather than assume it
    # came before the mail.)
    stack.wait_until(
        lambda: "Sending due task send-due" in beat.log(), timeout=30, what="beat's send tick"
    )

    # `send daily --wait` naming the SQLite broker: it plans the newcomer, enqueues senders
    # for the worker and returns once the day is done.
    subscribe(settings, "grace@example.org", ["speech language model"])
    broker = f"sqla+sqlite:///{settings.var_dir / 'broker.db'}"
    result = subprocess.run(
        [DIGEST, "send", "daily", "--date", day.isoformat(), "--wait"],
        env=digest_env(settings.var_dir, DIGEST_BROKER_URL=broker),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "planned 1 digests (2 already planned" in " ".join(result.stdout.split())
    assert outbox(settings) == ["ada-example-org", "alan-example-org", "grace-example-org"]
    assert stack.unfinished(settings) == 0

    for process in (beat, worker):
        assert terminate(process) == 0, process.log()[-3000:]


@pytest.mark.parametrize(
    "command", [["worker"], ["beat"], ["send", "daily", "--date", "2026-01-29"]]
)
@pytest.mark.slow
def test_a_broker_that_cannot_start_is_one_line_and_a_failure(
    tmp_path: Path, command: list[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the broker's folder should be")
    broker = f"sqla+sqlite:///{blocker / 'broker.db'}"
    result = subprocess.run(
        [DIGEST, *command],
        env=digest_env(tmp_path / "var", DIGEST_BROKER_URL=broker),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: broker {broker} cannot start:"), line
