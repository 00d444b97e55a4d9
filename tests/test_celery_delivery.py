"""Delivery at scale through real `celery worker` processes, PostgreSQL, Redis and a SendGrid.

Each test plans a day's digests for hundreds to thousands of subscribers, lets real workers
(prefork, 2 processes) drain the ledger into the local SendGrid server, breaks something on the
way (SIGKILL, a Redis restart, two beats, provider faults, an unsubscribe), and then checks what
the provider accepted (per-recipient `custom_args.delivery_id`) against the ledger.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import text

from core.db import get_engine, session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import Status, utcnow
from tests.conftest import IN_CI, POSTGRES_ADMIN_URL, REDIS_URL, require_service
from tests.support import celery_stack as stack
from tests.support.fake_sendgrid import FakeSendGrid
from workers.celery_app import make_celery
from workers.waves import WAVE_RECIPIENTS_PER_REQUEST

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TEMPLATE_SUBSCRIBERS = 2000
LEASE_SECONDS = 4.0  # short leases so a crashed worker's rows come back within the test
RETRY_SECONDS = 1.0  # the ledger's retry delays, shortened the same way


def in_flight_rows(send_concurrency: int) -> int:
    """Rows a sender may have handed over, accepted or not yet recorded: the two waves its
    pool holds (workers/sending.py), each of at most `send_concurrency` requests that carry,
    with equal digests sharing requests, WAVE_RECIPIENTS_PER_REQUEST rows each. The next wave,
    rendered meanwhile, adds as many again that have not gone out."""
    return 2 * send_concurrency * WAVE_RECIPIENTS_PER_REQUEST


IN_FLIGHT_PER_PROCESS = in_flight_rows(Settings(_env_file=None).send_concurrency)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def shared_broker() -> Iterator[str]:
    """A Redis database of this session's own on the shared server, emptied before each test."""
    require_service("Redis", "127.0.0.1", 6379)
    url = stack.claim_redis_db(REDIS_URL)
    yield url
    stack.release_redis_db(url)


@pytest.fixture(scope="module")
def template_db() -> Iterator[tuple[str, date]]:
    """A database seeded once (corpus + 2,000 daily subscribers); each test gets a copy."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    url = stack.create_database(POSTGRES_ADMIN_URL)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    day = stack.seed_stack(settings, TEMPLATE_SUBSCRIBERS)
    get_engine(url).dispose()  # a template database must have no open connections
    yield url, day
    stack.drop_database(POSTGRES_ADMIN_URL, url)


@dataclass
class Stack:
    """One test's world: its database, broker, provider, and the processes it started."""

    settings: Settings
    day: date
    fake: FakeSendGrid
    workdir: Path
    env: dict[str, str]
    client: Celery
    processes: list[stack.CeleryProcess] = field(default_factory=list)

    def worker(self, name: str = "w1") -> stack.CeleryProcess:
        process = stack.celery_worker(self.env, self.workdir, name=name).start().wait_ready()
        self.processes.append(process)
        return process

    def beat(self, name: str) -> stack.CeleryProcess:
        process = stack.celery_beat(self.env, self.workdir, name=name).start()
        self.processes.append(process)
        return process

    def plan(self) -> int:
        return stack.plan_day(self.settings, self.day)

    def send_due(self, n: int = 4) -> list[str]:
        return [self.client.send_task("digest.send_due").id for _ in range(n)]

    def wait_finished(self, task_ids: list[str], timeout: float = 60.0) -> None:
        """Until every one of these tasks has logged its end in some worker."""
        stack.wait_until(
            lambda: all(
                any(f"{tid}] succeeded" in p.log() for p in self.processes) for tid in task_ids
            ),
            timeout=timeout,
            what=f"tasks {task_ids} to finish",
        )

    def sweep(self) -> None:
        self.client.send_task("digest.sweep")

    def drain(self, timeout: float = 120.0, *, sweep_every: float | None = 3.0) -> None:
        """Sweep now and then (as beat does; None: never) until no row is planned or claimed."""
        deadline = time.monotonic() + timeout
        next_sweep = 0.0
        while stack.unfinished(self.settings):
            if time.monotonic() > deadline:
                logs = "\n".join(p.log()[-2000:] for p in self.processes)
                raise TimeoutError(f"ledger not drained: {self.ledger().statuses}\n{logs}")
            if sweep_every is not None and time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + sweep_every
            time.sleep(0.2)

    def accepted(self) -> Counter[int]:
        return stack.accepted_ids(self.fake.personalizations())

    def ledger(self) -> stack.LedgerState:
        return stack.ledger_state(self.settings)

    def wait_accepted(self, n: int, timeout: float = 60.0) -> None:
        stack.wait_until(
            lambda: sum(self.accepted().values()) >= n, timeout=timeout, what=f"{n} sends"
        )


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(
    template_db: tuple[str, date], shared_broker: str, tmp_path: Path
) -> Iterator[StackFactory]:
    """Build a Stack on a copy of the template database; stops everything it started."""
    stacks: list[Stack] = []
    databases: list[str] = []
    fakes: list[FakeSendGrid] = []
    brokers: set[str] = set()

    def build(
        *,
        subscribers: int = TEMPLATE_SUBSCRIBERS,
        broker_url: str = shared_broker,
        delay: float = 0.0,
    ) -> Stack:
        template, day = template_db
        url = stack.create_database(POSTGRES_ADMIN_URL, template=template.rsplit("/", 1)[1])
        databases.append(url)
        stack.flush_keeping_claim(broker_url)
        brokers.add(broker_url)
        workdir = tmp_path / f"stack{len(stacks)}"
        workdir.mkdir()
        settings = stack.stack_settings(var_dir=workdir, database_url=url,
                                        broker_url=broker_url, label="test")
        with session_scope(url) as session:
            session.execute(text("DELETE FROM subscriber WHERE id > :n"), {"n": subscribers})
        fake = FakeSendGrid(delay=delay).start()
        fakes.append(fake)
        env = stack.stack_env(
            settings,
            sendgrid_url=fake.url,
            sendgrid_key=fake.api_key,
            lease_seconds=LEASE_SECONDS,
            retry_seconds=RETRY_SECONDS,
        )
        built = Stack(settings, day, fake, workdir, env, make_celery(settings))
        stacks.append(built)
        return built

    yield build
    for built in stacks:
        for process in built.processes:
            process.stop(timeout=10)
        built.client.close()
    for fake in fakes:
        fake.stop()
    for url in databases:
        stack.drop_database(POSTGRES_ADMIN_URL, url)
    for url in brokers:
        with contextlib.suppress(redis.RedisError):  # a private Redis may be gone already
            stack.flush_keeping_claim(url)


def assert_exactly_once(world: Stack, *, allowed_duplicates: set[int] | None = None) -> None:
    """Every sent row accepted once, to its own subscriber; nothing accepted that wasn't sent."""
    allowed_duplicates = allowed_duplicates or set()
    state = world.ledger()
    accepted = world.accepted()
    sent = state.with_status(ledger.DeliveryStatus.sent)
    assert world.fake.invalid == []
    assert set(accepted) == sent, "accepted messages and sent ledger rows differ"
    duplicated = {did for did, n in accepted.items() if n > 1}
    assert duplicated <= allowed_duplicates, f"sent twice: {sorted(duplicated)}"
    assert all(accepted[did] <= 2 for did in allowed_duplicates)
    addressed = stack.accepted_by_delivery(world.fake.personalizations())
    assert all(set(addressed[did]) == {state.emails[did]} for did in sent)


def test_sigkilled_worker_loses_nothing_and_duplicates_only_what_was_in_flight(
    make_stack: StackFactory,
) -> None:
    world = make_stack()
    planned = world.plan()
    assert planned > TEMPLATE_SUBSCRIBERS * 0.8  # most profiles have something relevant
    worker = world.worker()
    world.send_due(4)
    world.wait_accepted(300)

    worker.kill()
    time.sleep(0.5)  # let the provider finish any request the dead process had written
    state = world.ledger()
    accepted_at_kill = world.accepted()
    claimed = state.with_status(ledger.DeliveryStatus.sending)
    # Accepted by the provider but never recorded: the only messages that may go out twice.
    in_flight = claimed & set(accepted_at_kill)
    assert claimed, "the kill should have left claimed rows behind"
    # At most two waves per pool process (two processes) were accepted but not yet recorded.
    assert len(in_flight) <= 2 * IN_FLIGHT_PER_PROCESS
    assert state.statuses["planned"] > 0  # the kill came mid-run

    world.worker()
    # The dead worker's leases run out; the sweeper hands their rows to the new worker.
    stack.wait_until(
        lambda: all(
            row.lease_until is not None and row.lease_until < utcnow()
            for did, row in world.ledger().rows.items()
            if did in claimed and row.status == ledger.DeliveryStatus.sending
        ),
        timeout=LEASE_SECONDS + 10,
        what="the dead worker's leases to expire",
    )
    world.drain()

    state = world.ledger()
    assert state.statuses == Counter({"sent": planned})
    assert len(set(world.accepted())) == planned
    assert_exactly_once(world, allowed_duplicates=in_flight)
    duplicates = sum(world.accepted().values()) - planned
    print(f"killed with {len(claimed)} rows claimed, {len(in_flight)} in flight; {duplicates} dup")
    # The rows the dead worker held were sent again, on a later attempt.
    assert all(state.rows[did].attempts >= 2 for did in claimed - in_flight)


def test_redis_restart_mid_run_still_delivers_once(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    if shutil.which("redis-server") is None:  # a laptop may run Redis in a container
        if IN_CI:
            pytest.fail("redis-server is not installed; .ci/run should have installed it")
        pytest.skip("redis-server binary not installed (this test runs a private one)")
    broker = stack.RedisServer(stack.free_port(), tmp_path).start()
    try:
        # A slow provider and one request at a time per process, so the run outlasts the
        # outage and the sweep has to resume it.
        world = make_stack(subscribers=600, broker_url=broker.url, delay=0.05)
        world.env["DIGEST_SEND_CONCURRENCY"] = "1"
        planned = world.plan()
        worker = world.worker()
        world.send_due(4)
        world.wait_accepted(150)

        broker.kill()  # every queued and unacked message is gone with it (no persistence)
        time.sleep(2)
        assert worker.alive
        broker.start()
        stack.wait_until(
            lambda: worker.log(current_run=True).count("Connected to redis://") >= 2,
            timeout=60,
            what="the worker to reconnect",
        )
        world.drain()

        assert world.ledger().statuses == Counter({"sent": planned})
        assert_exactly_once(world)
        assert "digest.sweep" in worker.log().split("Connection to broker lost")[-1]
    finally:
        broker.kill()


def test_planning_twice_and_two_beats_still_send_once(make_stack: StackFactory) -> None:
    world = make_stack(subscribers=600)
    results: list[int] = []
    racers = [threading.Thread(target=lambda: results.append(world.plan())) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    results.append(world.plan())
    planned = sum(results)
    assert results[-1] == 0
    state = world.ledger()
    assert len(state.rows) == planned
    assert len({row.subscriber_id for row in state.rows.values()}) == planned

    world.worker()
    first = world.beat("beat1").wait_ready("beat lock taken")
    second = world.beat("beat2").wait_ready("standing by")
    # No task sent by hand: beat's send tick (every 10 s) starts the senders.
    world.drain(sweep_every=None)
    assert world.ledger().statuses == Counter({"sent": planned})
    assert_exactly_once(world)
    assert "Sending due task" in first.log()
    assert "Sending due task" not in second.log()

    # The standby takes over once the first beat stops.
    first.stop()
    second.wait_ready("beat lock taken", timeout=30)
    stack.wait_until(
        lambda: "Sending due task" in second.log(), timeout=30, what="the second beat to publish"
    )


def test_provider_faults_end_delivered_and_a_400_fails_once(make_stack: StackFactory) -> None:
    world = make_stack(subscribers=800)
    world.fake.hang_seconds = 12.0  # longer than the transport's 10 s timeout
    faults: list[tuple[int | str, int]] = [(429, 15), (500, 15), ("hang", 2), (400, 1)]
    for status, n in faults:
        world.fake.fail_next(status, n, after=40, reset_in=1.0)
    planned = world.plan()
    world.worker()
    world.send_due(4)
    world.drain(timeout=150)

    assert_exactly_once(world)
    state = world.ledger()
    failed = state.with_status(ledger.DeliveryStatus.failed)
    # Every request the provider saw was either accepted or one of the faults we asked for.
    assert world.fake.requests == len(world.fake.accepted) + sum(n for _, n in faults)
    # Each transient fault sent its row back to the ledger for another claim.
    assert sum(r.attempts - 1 for r in state.rows.values()) >= 15 + 15 + 2
    (refused_body,) = [body for status, body in world.fake.refused if status == 400]
    recipients = stack.accepted_ids(refused_body["personalizations"])
    if len(recipients) > 1:
        # The 400 met a request shared by equal digests: it names no recipient, so each went
        # again on its own, and each was accepted once.
        assert state.statuses == Counter({"sent": planned})
        assert not failed
        assert all(world.accepted()[did] == 1 for did in recipients)
        return
    assert state.statuses == Counter({"sent": planned - 1, "failed": 1})
    assert failed == set(recipients)
    (refused,) = failed
    row = state.rows[refused]
    # Faults go to requests in arrival order, so the refused row may have met a 429 or 500
    # first (attempts > 1); what matters is that the 400 ended it: failed, never tried again.
    assert row.last_error is not None
    assert row.last_error.startswith("SendGrid 400: simulated 400")
    assert refused not in world.accepted()


def test_a_send_outliving_its_lease_is_not_repeated(make_stack: StackFactory) -> None:
    # The first request hangs past the transport's timeout, far beyond the 4 s lease: the other
    # pool process runs out of work meanwhile and finds the stalled batch's leases expired.
    world = make_stack(subscribers=300)
    world.fake.hang_seconds = 12.0
    world.fake.fail_next("hang", 1)
    planned = world.plan()
    world.worker()
    senders = world.send_due(2)
    world.drain(timeout=90)
    world.wait_finished(senders)  # the stalled sender has come back from its timeout...
    world.drain(timeout=30)  # ...and whatever it handed back is sent

    assert world.ledger().statuses == Counter({"sent": planned})
    assert_exactly_once(world)


def test_unsubscribe_while_a_batch_is_in_flight_stops_their_mail(
    make_stack: StackFactory,
) -> None:
    world = make_stack(subscribers=600, delay=0.03)
    # Small waves, so that a claimed batch (200 rows) has rows far from the wire.
    world.env["DIGEST_SEND_CONCURRENCY"] = "2"
    planned = world.plan()
    world.worker()
    world.send_due(2)
    world.wait_accepted(60)

    with session_scope(world.settings.sqlalchemy_url) as session:
        accepted = set(world.accepted())
        rows = list(
            session.exec(  # type: ignore[call-overload]
                text("SELECT id, subscriber_id, status, lease_until FROM delivery ORDER BY id")
            )
        )
        batches: dict[object, list[tuple[int, int]]] = {}
        waiting: list[tuple[int, int]] = []
        for did, sid, status, lease in rows:
            if status == "sending" and did not in accepted:
                batches.setdefault(lease, []).append((did, sid))
            elif status == "planned":
                waiting.append((did, sid))
        # Claimed in a batch but not sent yet. Waves keep leaving while this runs, so take the
        # tail of each batch, past twice what may be handed over or rendered next (the two
        # waves of in_flight_rows(2) and the next one, 1.5 x in_flight_rows(2)): that mail
        # may legitimately go out before the unsubscribe commits.
        head = 3 * in_flight_rows(2)
        chosen = [pair for batch in batches.values() if len(batch) > head for pair in batch[-5:]]
        chosen += waiting[:5]
        assert len(chosen) >= 10
        session.execute(
            text(
                "UPDATE subscriber SET status = :left, unsubscribed_at = now() WHERE id = ANY(:ids)"
            ),
            {"left": Status.unsubscribed.value, "ids": [sid for _, sid in chosen]},
        )

    world.send_due(2)
    world.drain()
    state = world.ledger()
    left = {did for did, _ in chosen}
    assert state.with_status(ledger.DeliveryStatus.skipped) == left
    assert not left & set(world.accepted())
    assert state.statuses == Counter({"sent": planned - len(left), "skipped": len(left)})
    assert_exactly_once(world)


def test_on_the_embedded_broker_a_second_beat_stands_by_until_the_first_stops(
    tmp_path: Path,
) -> None:
    from workers.celery_app import FileBeatLock, beat_lock_for

    first = beat_lock_for("sqla+sqlite:///var/broker.db", tmp_path / "beat.lock")
    second = beat_lock_for("sqla+sqlite:///var/broker.db", tmp_path / "beat.lock")
    assert isinstance(first, FileBeatLock)
    assert first.hold() and first.hold()  # renewing is holding
    assert not second.hold()
    first.release()
    assert second.hold()
