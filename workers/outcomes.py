"""What happened to each row of a wave, and the one retry policy: written in a few statements.

Every kind of mail ends here. Sent rows carry their request's provider id; a transient
failure goes back to the queue after the row's back-off (or the provider's Retry-After),
until MAX_ATTEMPTS claims made it final; a permanent one is final at once; a skipped row
no longer applied when its turn came.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from sqlmodel import Session

from emails.transports.base import SendError, TransientSendError
from subscribers import ledger
from subscribers.ledger import DeliveryStatus, HeldRow

MAX_ATTEMPTS = ledger.MAX_ATTEMPTS  # transient failures past this become permanent


class Outcome(StrEnum):
    sent = "sent"
    retried = "retried"
    failed = "failed"
    skipped = "skipped"


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    paused: str | None = None  # why this run stopped early, if it did
    more: bool = False  # stopped at its time limit with rows perhaps still due

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.skipped

    def count(self, outcome: Outcome, rows: int = 1) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + rows)


@dataclass
class Outcomes:
    """A wave's outcomes, collected while its requests settle and written by `write`."""

    retry_seconds: Sequence[float]
    sent: list[tuple[int, str]] = field(default_factory=list)  # (row id, provider id)
    # (status, error, retry delay) -> row ids: one UPDATE each
    settled: dict[tuple[DeliveryStatus, str, timedelta | None], list[int]] = field(
        default_factory=dict
    )
    tally: dict[Outcome, int] = field(default_factory=dict)

    def accepted(self, rows: Sequence[HeldRow], message_id: str) -> None:
        self.sent.extend((row.id, message_id) for row in rows)
        self._count(Outcome.sent, len(rows))

    def untried(self, rows: Sequence[HeldRow], reason: str, delay: timedelta) -> None:
        """Rows given back without a try (the run paused): due again after `delay`, and never
        failed for it, whatever their attempts."""
        self._settle(DeliveryStatus.planned, reason, delay, [row.id for row in rows])
        self._count(Outcome.retried, len(rows))

    def skipped(self, rows: Sequence[HeldRow], reason: str) -> None:
        self._settle(DeliveryStatus.skipped, reason, None, [row.id for row in rows])
        self._count(Outcome.skipped, len(rows))

    def refused(self, rows: Sequence[HeldRow], error: SendError) -> Outcome:
        """A failed hand-over: retried with back-off while it may pass, else final.
        Returns the outcome of the last row (all share it unless attempts differ)."""
        outcome = Outcome.failed
        for row in rows:
            outcome = self._refused(row, error)
            self._count(outcome)
        return outcome

    def _refused(self, row: HeldRow, error: SendError) -> Outcome:
        if not isinstance(error, TransientSendError):
            self._settle(DeliveryStatus.failed, str(error), None, [row.id])
            return Outcome.failed
        if row.attempts >= MAX_ATTEMPTS:
            self._settle(DeliveryStatus.failed, f"gave up: {error}", None, [row.id])
            return Outcome.failed
        wait = self.retry_seconds[min(row.attempts, len(self.retry_seconds)) - 1]
        delay = timedelta(seconds=error.retry_after if error.retry_after else wait)
        self._settle(DeliveryStatus.planned, str(error), delay, [row.id])
        return Outcome.retried

    def _settle(
        self, status: DeliveryStatus, error: str, delay: timedelta | None, ids: list[int]
    ) -> None:
        if ids:
            self.settled.setdefault((status, error, delay), []).extend(ids)

    def _count(self, outcome: Outcome, rows: int = 1) -> None:
        self.tally[outcome] = self.tally.get(outcome, 0) + rows

    def write(self, session: Session, report: SendReport) -> None:
        """Record every outcome: one executemany for the sent, one UPDATE per other kind."""
        ledger.mark_sent(session=session, sent=self.sent)
        for (status, error, delay), ids in self.settled.items():
            ledger.set_outcome(session=session, ids=ids, status=status, error=error,
                               retry_in=delay)
        for outcome, rows in self.tally.items():
            report.count(outcome, rows)
