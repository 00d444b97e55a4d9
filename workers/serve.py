"""`digest serve`: the web app and the embedded sender in one process, for a laptop.

uvicorn serves the app in the main thread (it owns Ctrl-C); a background thread sends
whatever the ledger has due every couple of seconds, so a confirmation email lands in the
outbox moments after a signup, plans the digests whose local send hour has come every few
minutes, and prunes week-old unconfirmed signups every hour. At scale the same work runs as
Celery tasks instead, and the web processes run only the app (background=False).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import uvicorn

from core.db import session_scope
from core.settings import Settings
from emails.transports import make_transport, write_index
from subscribers.models import utcnow
from subscribers.privacy import prune_unconfirmed
from subscribers.web.app import create_app
from workers import planning, sending

log = logging.getLogger("digest.serve")
SEND_EVERY_SECONDS = 2.0
PLAN_EVERY_SECONDS = 300.0
PRUNE_EVERY_SECONDS = 3600.0


def send_once(settings: Settings) -> int:
    """Send everything due now; refresh the outbox index when something went out there."""
    report = sending.send_due(settings=settings, transport=make_transport(settings))
    if report.handled and settings.mail_backend == "outbox":
        write_index(settings.outbox_path)
    return report.sent


def prune_once(settings: Settings) -> int:
    """Forget week-old unconfirmed signups (beat's sweep does the same at scale)."""
    with session_scope(settings.sqlalchemy_url) as session:
        return prune_unconfirmed(session=session)


def plan_once(settings: Settings) -> int:
    """Plan every digest whose subscriber's local send hour has come (idempotent)."""
    return planning.plan_due(settings=settings, now=utcnow()).planned


class SenderLoop(threading.Thread):
    """Sends due mail every `interval` seconds, plans every few minutes, prunes hourly."""

    def __init__(self, settings: Settings, *, interval: float = SEND_EVERY_SECONDS,
                 plan_interval: float = PLAN_EVERY_SECONDS,
                 prune_interval: float = PRUNE_EVERY_SECONDS) -> None:
        super().__init__(name="digest-sender", daemon=True)
        self.settings = settings
        self.interval = interval
        self.periodic = [("planned digests", plan_once, plan_interval),
                         ("pruned unconfirmed signups", prune_once, prune_interval)]
        self.stopping = threading.Event()

    def _guarded(self, what: str, step: Callable[[Settings], int]) -> None:
        # One bad row or a locked database must not end the loop; the next round retries.
        try:
            done = step(self.settings)
            if done:
                log.info("%s: %d", what, done)
        except Exception:
            log.exception("%s failed; trying again next round", what)

    def run(self) -> None:
        due = [0.0] * len(self.periodic)
        while not self.stopping.is_set():
            for index, (what, step, every) in enumerate(self.periodic):
                if time.monotonic() >= due[index]:
                    self._guarded(what, step)
                    due[index] = time.monotonic() + every
            self._guarded("sent", send_once)
            self.stopping.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self.join(timeout)


def run_server(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000,
               background: bool = True, forwarded_allow_ips: str | None = None) -> None:
    """Serve until Ctrl-C (with the sender loop unless `background` is off); stops cleanly.

    `forwarded_allow_ips`: the proxies whose X-Forwarded-For names the client (None:
    uvicorn's default, $FORWARDED_ALLOW_IPS or else 127.0.0.1 and ::1).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    sender = SenderLoop(settings) if background else None
    if sender:
        sender.start()
    try:
        # proxy_headers: behind a trusted proxy, rate limits see the real client IP.
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                    proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips,
                    server_header=False)
    finally:
        if sender:
            sender.stop()
