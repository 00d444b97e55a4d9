"""A send run's claims: the due rows it takes next, and on PostgreSQL the claim after them.

A claim is a database round trip or three (quarantine, suspect, claim) in which the sender
would otherwise wait: on a monthly issue, about a third of a run. Where waves overlap
(`Run.overlaps`: PostgreSQL, a transport that takes concurrent requests), the claim after a
full one is taken in a thread of its own while the sender renders and sends the last. Rows
claimed ahead and never sent (the run paused, ran out of time or failed) are handed back by
`give_back`. Suspects and the quarantine are left to the claims taken in line (a run's first,
and any after a claim that was not full): a suspect claimed ahead would sit claimed beside
other rows' waves, charged with their crashes and with a lapse when the run ends.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.ledger import Claim

log = logging.getLogger("digest.sending")


@dataclass
class Claimed:
    """One claim's outcome: its rows, or the one suspect, and the size it was asked for."""

    rows: list[Claim]
    suspect: Claim | None
    limit: int


@dataclass
class Claims:
    """Takes the run's claims into its queue, one ahead where `ahead` (see the module)."""

    settings: Settings
    batch_limit: int  # the transport's: a claim of one render grows up to one full request
    ahead: bool
    size: int = 0  # grows while claims come back full and of one render
    _next: Future[Claimed] | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def take(self, queue: deque[Claim], size: int) -> Claim | None:
        """Fill the queue; a suspect (a row whose claim lapsed again) is returned instead.
        Claims are `size` rows, so parallel senders share a day's digests; while they come
        back full and of one render (a monthly issue), each takes twice as many."""
        if self._next is not None:
            claimed, self._next = self._next.result(), None
        else:
            claimed = self._claim(max(size, self.size), suspects=True)
        if claimed.suspect is not None:
            return claimed.suspect
        queue.extend(claimed.rows)
        full = len(claimed.rows) == claimed.limit
        one_render = full and len({c.share for c in claimed.rows}) == 1
        self.size = min(2 * claimed.limit, self.batch_limit) if one_render else size
        if full and self.ahead:  # more is likely due: claim it while this is sent
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim")
            self._next = self._pool.submit(self._claim, max(size, self.size), suspects=False)
        return None

    def _claim(self, limit: int, *, suspects: bool) -> Claimed:
        lease = timedelta(seconds=self.settings.send_lease_seconds)
        with session_scope(self.settings.sqlalchemy_url) as session:
            suspect = ledger.claim_suspect(session=session, lease=lease) if suspects else None
            if suspect is not None:
                return Claimed([], suspect, limit)
            return Claimed(ledger.claim(session=session, limit=limit, lease=lease), None, limit)

    def ahead_of_queue(self) -> list[Claim]:
        """Rows claimed ahead and not yet in the queue (waits for that claim to finish)."""
        if self._next is None:
            return []
        future, self._next = self._next, None
        try:
            claimed = future.result()
        except Exception:  # nothing was claimed, or the rows wait out their lease
            log.exception("claiming ahead failed; any rows it took wait out their lease")
            return []
        return claimed.rows

    def give_back(self, queue: deque[Claim], delay: timedelta) -> int:
        """Hand the queue's rows and those claimed ahead back untried, due after `delay`;
        how many."""
        rest = [*queue, *self.ahead_of_queue()]
        queue.clear()
        if rest:
            with session_scope(self.settings.sqlalchemy_url) as session:
                ledger.release(session=session, claims=rest, delay=delay)
        return len(rest)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
