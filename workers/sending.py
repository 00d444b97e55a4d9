"""The one sender, for every kind of mail: claim due rows, render, hand over, record.

A run claims due ledger rows under a lease and sends them in waves. A wave locks its rows
(on PostgreSQL until its outcomes are committed: no sender reclaims them mid-send, even past
the lease), renders them (workers/compose.py: rows that render alike share one render and
one request), hands its requests to the transport and records every outcome in a few
statements (workers/outcomes.py). The next wave is claimed and rendered while one is on the
wire. Where waves overlap (PostgreSQL, a transport that takes concurrent requests) the pool
holds two (sized to 10 requests each, so that all of them failing would not pass the pause),
or three shared requests (a monthly issue), and the claim after a full one is taken in the
background (workers/claiming.py); elsewhere one at a time.

A crash before a wave's commit leaves its rows claimed, to go out again after the lease: a
killed worker repeats at most the waves it had handed over (2 x min(`send_concurrency`, 10)
requests, three shared requests, or one wave where waves do not overlap). A row whose claim
lapsed twice may be what kills its senders: it goes out alone, with nothing else in flight.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session

from core.batch_gc import fewer_collections
from core.db import is_postgres_url, session_scope
from core.settings import Settings
from emails.transports.base import (
    BatchSendError,
    SendError,
    TransientSendError,
    Transport,
    as_send_error,
)
from subscribers import ledger
from subscribers.ledger import Claim
from workers.claiming import Claims
from workers.compose import Request, RunCache, compose
from workers.outcomes import Outcome, Outcomes, SendReport
from workers.waves import take_wave

__all__ = ["SendReport", "send_due"]

Progress = Callable[[int], None]
log = logging.getLogger("digest.sending")
# A run that fails this many requests in a row stops claiming and says so: a provider outage
# or a revoked key should not burn through every row's retry budget in one go.
PAUSE_AFTER_FAILURES_IN_A_ROW = 20
PAUSE_FOR = timedelta(minutes=5)


@dataclass
class Wave:
    """Claimed rows on their way: their open transaction (holding the row locks), their
    rendered requests, and once launched what the transport made of each."""

    scope: ExitStack
    session: Session
    outcomes: Outcomes
    requests: list[Request]
    claims: list[Claim]  # what it was prepared from: given back if it is never launched
    sends: list[Future[list[str] | BatchSendError]] = field(default_factory=list)
    request_outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class Run:
    """One call of `send_due`: its transport, pool, queue of claims and what it learned."""

    settings: Settings
    transport: Transport
    pool: ThreadPoolExecutor
    claims: Claims
    report: SendReport = field(default_factory=SendReport)
    queue: deque[Claim] = field(default_factory=deque)
    cache: RunCache = field(default_factory=RunCache)
    failures: int = 0  # requests failed in a row
    progress: Progress | None = None

    @property
    def overlaps(self) -> bool:
        return _overlapping(self.settings, self.transport)

    @property
    def width(self) -> int:
        """Requests a wave may put on the wire at once."""
        return self.settings.send_concurrency if self.transport.thread_safe else 1


def _overlapping(settings: Settings, transport: Transport) -> bool:
    """Whether several waves may hold their row locks at once (and a claim be taken beside
    them): PostgreSQL (SQLite has one writer) and a transport that takes concurrent requests."""
    return transport.thread_safe and is_postgres_url(settings.sqlalchemy_url)


@fewer_collections()
def send_due(
    *,
    settings: Settings,
    transport: Transport,
    batch_size: int | None = None,
    progress: Progress | None = None,
    run_for: float | None = None,
) -> SendReport:
    """Claim due rows batch by batch and hand them over until none is due (or, given
    `run_for`, until that many seconds have passed: then `report.more` is set)."""
    deadline = None if run_for is None else time.monotonic() + max(run_for, 0.0)
    with ThreadPoolExecutor(max_workers=settings.send_concurrency,
                            thread_name_prefix="send") as pool:
        claims = Claims(settings, transport.batch_limit, _overlapping(settings, transport))
        run = Run(settings, transport, pool, claims, progress=progress)
        in_flight: deque[Wave] = deque()
        try:
            _send_waves(run, in_flight, batch_size or settings.send_batch_size, deadline)
        except Exception:
            # Whatever went out before the error (a render that raised, say) is recorded
            # first: left claimed, it would go out again after the lease.
            try:
                _settle_all(run, in_flight)
            finally:  # and if recording fails too, no wave keeps its row locks open
                while in_flight:
                    in_flight.popleft().scope.close()
            _give_back_after_error(run)
            raise
        finally:
            run.claims.close()
        return run.report


def _send_waves(run: Run, in_flight: deque[Wave], size: int, deadline: float | None) -> None:
    first = True
    while True:
        if not run.queue:
            # Time is checked between claims only: every run sends at least one batch.
            if not first and deadline is not None and time.monotonic() > deadline:
                if _settle_all(run, in_flight):
                    _pause(run)
                else:
                    run.report.more = True
                    run.claims.give_back(run.queue, timedelta(0))  # any claimed ahead
                return
            suspect = run.claims.take(run.queue, size)
            first = False
            if suspect is not None:
                if _send_alone(run, in_flight, suspect):
                    return
                continue
            if not run.queue:
                if not in_flight:
                    return
                if _settle_all(run, in_flight):  # the last requests met the pause
                    _pause(run)
                    return
                continue  # their retries are not due yet, but check once more
        # No more requests on the wire than it takes to reach the pause (checked at launch and
        # by _waves_beside); while nothing fails, size the next wave to the pool or its share.
        room = PAUSE_AFTER_FAILURES_IN_A_ROW - run.failures
        if run.failures:
            room -= sum(len(wave.requests) for wave in in_flight)
        elif run.overlaps:  # two waves may be on the wire and fail together: half each
            room //= 2
        # The next wave is rendered while the last is on the wire, and launched once the
        # waves it may not overlap are settled: what a crash repeats stays that small.
        wave = _prepare(run, take_wave(run.queue, requests=min(room, run.width), width=run.width,
                                       batch_limit=run.transport.batch_limit)) if room > 0 else None
        failures_before = run.failures
        with ExitStack() as unlaunched:
            if wave is not None:  # an error before its launch releases its row locks
                unlaunched.callback(wave.scope.close)
            while in_flight and (wave is None or len(in_flight) >= _waves_beside(
                    run, [*in_flight, wave])):
                _settle(run, in_flight.popleft())
            unlaunched.pop_all()
        on_wire = sum(len(waiting.requests) for waiting in in_flight)
        if wave is not None and run.failures > failures_before and (
            run.failures + on_wire + len(wave.requests) > PAUSE_AFTER_FAILURES_IN_A_ROW
        ):
            # What was settled just now failed and this wave could pass the pause: its claims
            # go back for a smaller wave (or the pause). Only then: a wave sized with the
            # failures known goes out even if a share key split into more requests (changed
            # keywords), or it would be taken and released again for ever.
            wave.scope.close()
            run.queue.extendleft(reversed(wave.claims))
            wave = None
        if wave is not None:
            in_flight.append(_launch(run, wave))
        if run.failures >= PAUSE_AFTER_FAILURES_IN_A_ROW:
            _settle_all(run, in_flight)
            _pause(run)
            return


def _waves_beside(run: Run, waves: Sequence[Wave]) -> int:
    """How many waves the pool may hold: two, so the wire is not empty while one is settled
    and the next launched (a third of a run at round trips of tens of ms); three shared
    requests, so the provider's work on two 1,000-recipient bodies overlaps ours on the next.
    One until mail was accepted, after a failure, and if all failing would pass the pause."""
    on_wire = sum(len(wave.requests) for wave in waves)
    if (not run.overlaps or run.failures or not run.report.sent
            or on_wire > PAUSE_AFTER_FAILURES_IN_A_ROW):
        return 1
    shared = all(len(wave.requests) == 1 and len(wave.requests[0].rows) > 1 for wave in waves)
    return 3 if shared else 2


def _send_alone(run: Run, in_flight: deque[Wave], suspect: Claim) -> bool:
    """A suspect goes out with nothing else in flight; whether the run paused after it."""
    # If what was on the wire met the pause, the suspect is not sent and stays claimed: its
    # lease runs out and it comes back as a suspect, to go out alone (released now, it would
    # be planned again and claimed beside other rows).
    if not _settle_all(run, in_flight):
        _settle(run, _launch(run, _prepare(run, [suspect])))
    if run.failures >= PAUSE_AFTER_FAILURES_IN_A_ROW:
        _pause(run)
        return True
    return False


def _settle_all(run: Run, in_flight: deque[Wave]) -> bool:
    """Settle every wave in flight; whether that brought the run to its pause."""
    while in_flight:
        _settle(run, in_flight.popleft())
    return run.failures >= PAUSE_AFTER_FAILURES_IN_A_ROW


def _prepare(run: Run, claims: Sequence[Claim]) -> Wave:
    """Lock these claimed rows and render them: everything before the first request, so an
    error here sends nothing. Nothing is written before `_settle`: on SQLite a write here
    would hold the one write lock while the previous wave waits to commit."""
    outcomes = Outcomes(run.settings.send_retry_seconds)
    with ExitStack() as scope:
        session = scope.enter_context(session_scope(run.settings.sqlalchemy_url))
        rows = ledger.hold_claimed(session=session, claims=claims)
        requests = compose(settings=run.settings, session=session, rows=rows, cache=run.cache,
                           outcomes=outcomes, batch_limit=run.transport.batch_limit)
        return Wave(scope.pop_all(), session, outcomes, requests, list(claims))


def _launch(run: Run, wave: Wave) -> Wave:
    """Put a prepared wave's requests on the wire (the pool's threads)."""
    wave.sends = [run.pool.submit(_hand_over, run.transport, r) for r in wave.requests]
    return wave


def _hand_over(transport: Transport, request: Request) -> list[str] | BatchSendError:
    """The provider's ids, or how far the request got (a pool thread: no database here).

    Whatever the transport raised is this request's outcome, never the run's end: an error
    escaping here would leave the wave's rows claimed, to crash the next sender too.
    """
    try:
        return transport.send_batch(request.template, request.recipients)
    except BatchSendError as failure:
        return failure
    except Exception as error:
        if not isinstance(error, SendError):
            log.exception("sending a request raised %r; recorded as its outcome", error)
        return BatchSendError(as_send_error(error), message_ids=[], accepted=0)


def _settle(run: Run, wave: Wave | None) -> None:
    """Wait for a wave's requests, record every outcome and commit (releasing the locks)."""
    if wave is None:
        return
    with wave.scope:
        for request, result in zip(wave.requests, wave.sends, strict=True):
            _record(run, wave, request, result.result())
        wave.outcomes.write(wave.session, run.report)
    run.failures = _failures_in_a_row(run, wave)
    if run.progress:
        run.progress(sum(len(request.rows) for request in wave.requests))


def _failures_in_a_row(run: Run, wave: Wave) -> int:
    """The run's failed requests in a row, with this wave's outcomes so far. Per request: one
    refused request of fifty recipients is one sign of trouble, not fifty."""
    count = run.failures
    for outcome in wave.request_outcomes:
        count = 0 if outcome == Outcome.sent else count + 1
    return count


def _record(run: Run, wave: Wave, request: Request, result: list[str] | BatchSendError) -> None:
    """One request's outcome: its accepted rows, and what became of the rest."""
    if not isinstance(result, BatchSendError):
        wave.outcomes.accepted(request.rows, result[0] if result else "")
        wave.request_outcomes.append(Outcome.sent)
        return
    limit = run.transport.batch_limit
    for n, start in enumerate(range(0, result.accepted, limit)):  # the chunks that went out
        message_id = result.message_ids[n] if n < len(result.message_ids) else ""
        wave.outcomes.accepted(request.rows[start : start + limit], message_id)
    rest = Request(request.template, request.rows[result.accepted :],
                   request.recipients[result.accepted :])
    if not isinstance(result.error, TransientSendError) and len(rest.rows) > 1:
        # A refusal names a field, not a recipient: one bad address must not fail the others
        # that share its render. They go one by one, each outcome its own.
        _each_alone(run, wave, rest)
        return
    wave.request_outcomes.append(wave.outcomes.refused(rest.rows, result.error))


def _each_alone(run: Run, wave: Wave, request: Request) -> None:
    """After a refused shared request, one request per recipient. PAUSE_AFTER_FAILURES_IN_A_ROW
    refusals in a row blame the request, not an address: the rest share that outcome. If the
    run's own failures reach the pause first, the rest go back untried, as the run pauses."""
    failures: list[SendError] = []  # this request's, in a row
    run_failures = _failures_in_a_row(run, wave)  # the run's, kept up as outcomes are added
    for position, (row, recipient) in enumerate(zip(request.rows, request.recipients,
                                                    strict=True)):
        if len(failures) >= PAUSE_AFTER_FAILURES_IN_A_ROW:
            later = request.rows[position:]
            wave.request_outcomes.append(wave.outcomes.refused(later, failures[-1]))
            return
        if run_failures >= PAUSE_AFTER_FAILURES_IN_A_ROW:
            wave.outcomes.untried(request.rows[position:], "not tried: the run paused", PAUSE_FOR)
            return
        result = _hand_over(run.transport, Request(request.template, [row], [recipient]))
        if isinstance(result, BatchSendError):
            failures.append(result.error)
            run_failures += 1
            wave.request_outcomes.append(wave.outcomes.refused([row], result.error))
        else:
            failures.clear()
            run_failures = 0
            wave.outcomes.accepted([row], result[0] if result else "")
            wave.request_outcomes.append(Outcome.sent)


def _give_back_after_error(run: Run) -> None:
    """Rows claimed and not yet in a wave go back untried: left to their lease, two errors
    would make them suspects. The wave that raised is not among them: its rows wait out
    their lease, and a crash or an error counts against them."""
    try:
        run.claims.give_back(run.queue, timedelta(0))
    except Exception:
        log.exception("could not hand back the run's untried rows; they wait out their lease")


def _pause(run: Run) -> None:
    released = run.claims.give_back(run.queue, PAUSE_FOR)
    run.report.paused = (
        f"paused after {run.failures} failed sends in a row; "
        f"{released} claimed rows released, sending resumes in "
        f"{int(PAUSE_FOR.total_seconds() // 60)} minutes (see `digest deliveries`)"
    )
    log.warning(run.report.paused)
