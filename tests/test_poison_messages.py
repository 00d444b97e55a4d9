"""One unsendable address must not stall a send run (issue 14, item 2).

A real local SMTP server (aiosmtpd, no SMTPUTF8) takes the mail. Rows for addresses stored
before signup refused them (an internationalised local part, an RFC 2047 encoded word) fail
alone and the rest go out; a message that kills its sender outright is quarantined after the
attempt limit, and the rows claimed beside it still go out.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert
from sqlmodel import col, select

from core.db import session_scope
from core.settings import Settings
from emails.message import Message
from emails.transports.base import (
    PermanentSendError,
    TransientSendError,
    as_send_error,
)
from emails.transports.outbox import OutboxTransport
from emails.transports.sendgrid import SendGridTransport
from emails.transports.smtp import SMTPTransport
from subscribers import ledger
from subscribers.models import (
    AccountMail,
    Frequency,
    Status,
    Subscriber,
    SubscriberCreate,
    utcnow,
)
from subscribers.service import add_subscriber, plan_account_mail
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.subprocess_env import without_digest_settings
from workers import migrate, sending

# What the `digest.send_due` Celery task (and `digest send daily`, after planning) runs.
SENDER = """
from core.settings import get_settings
from emails.transports import make_transport
from workers.sending import send_due
settings = get_settings()
print(send_due(settings=settings, transport=make_transport(settings)))
"""
UNICODE_LOCAL = "用户@例子.广告"
ENCODED_WORD = "=?utf-8?q?x=40evil.example?=@example.org"
KILLER = "poison@example.org"  # the server kills the sending process when this comes up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """An aiosmtpd handler: records what it accepts; can kill the client on one recipient."""

    accepted: list[str] = field(default_factory=list)  # one recipient per message
    kill_pid: int | None = None
    kills: int = 0

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == KILLER and self.kill_pid is not None:
            # The sender dies on this message, as on a crash, an OOM kill or a segfault.
            os.kill(self.kill_pid, signal.SIGKILL)
            self.kills += 1
            return "451 4.3.0 gone"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.accepted.extend(envelope.rcpt_tos)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A plain SMTP server on 127.0.0.1 that does not offer SMTPUTF8 (aiosmtpd's default)."""
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def message(to: str) -> Message:
    return Message(
        to=to,
        subject="Your papers",
        html="<p>Three papers</p>",
        text="Three papers",
        sender="Paper Digest <digest@papers.example>",
    )


def test_smtp_refuses_what_it_cannot_carry_and_the_next_message_still_goes(
    smtp: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp
    with SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport:
        # Before: a UnicodeEncodeError escaped halfway through the transaction, and the next
        # message on the same session was refused with "503 nested MAIL command".
        with pytest.raises(PermanentSendError, match="SMTPUTF8"):
            transport.send(message(UNICODE_LOCAL))
        assert transport.send(message("ada@example.org"))
        # Python's parser decodes the encoded word: RCPT TO would have named evil.example.
        with pytest.raises(PermanentSendError, match="encoded word"):
            transport.send(message(ENCODED_WORD))
        assert transport.send(message("alan@example.org"))
    assert mailbox.accepted == ["ada@example.org", "alan@example.org"]


def test_any_exception_while_handing_over_is_a_send_outcome() -> None:
    encoding = UnicodeEncodeError("ascii", "用户", 0, 1, "ordinal not in range(128)")
    assert isinstance(as_send_error(encoding), PermanentSendError)
    assert isinstance(as_send_error(ValueError("header has a CR")), PermanentSendError)
    assert isinstance(as_send_error(ConnectionResetError()), TransientSendError)
    assert isinstance(as_send_error(smtplib.SMTPServerDisconnected()), TransientSendError)
    assert isinstance(as_send_error(RuntimeError("a bug")), TransientSendError)  # retried, capped
    refusal = PermanentSendError("550")
    assert as_send_error(refusal) is refusal


def _stock(settings: Settings, good: list[str], stored_before: list[str]) -> None:
    """Subscribers who signed up and ones an older signup let through (stored first, so they
    come up first), each with an email due: "you are already subscribed" needs no papers."""
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as session:
        for email in stored_before:  # today's signup refuses them (tests/test_addresses.py)
            session.execute(
                insert(Subscriber).values(
                    email=email, keywords=["TTS"], frequency=Frequency.daily, monthly=False,
                    timezone="UTC", send_hour=7, status=Status.active, created_at=now,
                    confirmed_at=now,
                )  # fmt: skip
            )
        for email in good:
            create = SubscriberCreate(email=email, keywords=["TTS"])
            add_subscriber(session=session, subscriber_create=create, confirmed=True)
        ids = session.exec(select(Subscriber.id).order_by(col(Subscriber.id)))
        for sid in list(ids):
            plan_account_mail(session=session, subscriber_id=sid or 0, kind=AccountMail.already)


def _rows(settings: Settings) -> dict[str, ledger.Delivery]:
    """Ledger rows by their subscriber's address."""
    with session_scope(settings.sqlalchemy_url) as session:
        query = select(ledger.Delivery, Subscriber.email).join(
            Subscriber, col(Subscriber.id) == col(ledger.Delivery.subscriber_id)
        )
        return {email: row for row, email in session.exec(query)}


def test_a_send_run_survives_addresses_it_cannot_send_to(
    migrated: Settings, smtp: tuple[Mailbox, int]
) -> None:
    settings = migrated
    mailbox, port = smtp
    good = ["ada@example.org", "alan@example.org"]
    # Before: the first of them to come up ended the run, every row of it left `sending`.
    _stock(settings, good, [UNICODE_LOCAL, ENCODED_WORD])
    with SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport:
        report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.failed, report.retried) == (2, 2, 0)
    rows = _rows(settings)
    assert {email: rows[email].status for email in rows} == {
        "ada@example.org": ledger.DeliveryStatus.sent,
        "alan@example.org": ledger.DeliveryStatus.sent,
        UNICODE_LOCAL: ledger.DeliveryStatus.failed,
        ENCODED_WORD: ledger.DeliveryStatus.failed,
    }
    assert "SMTPUTF8" in (rows[UNICODE_LOCAL].last_error or "")
    assert "encoded word" in (rows[ENCODED_WORD].last_error or "")
    assert sorted(mailbox.accepted) == good  # nothing went to evil.example


@pytest.mark.slow
def test_a_message_that_kills_its_sender_is_quarantined_and_the_rest_go_out(
    tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    """Real sender processes, each SIGKILLed by the server when it reaches the killer's
    RCPT: the row is claimed, never finished, and comes back after its lease."""
    mailbox, port = smtp
    var_dir = tmp_path / "var"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=var_dir, secret_keys=["poison-secret"],
    )  # fmt: skip
    migrate.upgrade(settings)
    readers = ["ada@example.org", "alan@example.org", "grace@example.org"]
    _stock(settings, readers, [KILLER])
    env = without_digest_settings()
    env |= {
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "DIGEST_VAR_DIR": str(var_dir),
        "DIGEST_SECRET_KEYS": "poison-secret",
        "DIGEST_MAIL_BACKEND": "smtp",
        "DIGEST_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "DIGEST_SEND_LEASE_SECONDS": "2",
    }
    exits = []
    for _ in range(ledger.MAX_ATTEMPTS + 4):  # before: the killer came back forever
        run = subprocess.Popen(
            [sys.executable, "-c", SENDER],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        mailbox.kill_pid = run.pid
        out, err = run.communicate(timeout=120)
        exits.append(run.returncode)
        if run.returncode == 0:
            break
        assert run.returncode == -signal.SIGKILL, err
        time.sleep(2.1)  # the dead run's claims lapse
    assert exits[-1] == 0 and mailbox.kills == ledger.MAX_ATTEMPTS, (exits, out, err)
    rows = _rows(settings)
    killer = rows.pop(KILLER)
    assert killer.status == ledger.DeliveryStatus.failed
    assert killer.attempts == ledger.MAX_ATTEMPTS
    assert (killer.last_error or "").startswith("quarantined")
    # Claimed beside the killer and left claimed by every crash, yet not quarantined with it:
    # each went out once, as soon as a lapsed row was claimed alone.
    assert {email: row.status for email, row in rows.items()} == dict.fromkeys(
        readers, ledger.DeliveryStatus.sent
    )
    assert sorted(mailbox.accepted) == sorted(readers)
    assert max(row.attempts for row in rows.values()) <= 3, {e: r.attempts for e, r in rows.items()}


def test_sendgrid_and_the_outbox_refuse_an_encoded_word_too(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    _stock(migrated, ["ada@example.org"], [ENCODED_WORD])
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=migrated, transport=transport)
    assert (report.sent, report.failed) == (1, 1)
    rows = _rows(migrated)
    assert "encoded word" in (rows[ENCODED_WORD].last_error or "")
    assert [to["email"] for p in fake_sendgrid.personalizations() for to in p["to"]] == [
        "ada@example.org"
    ]
    with pytest.raises(PermanentSendError, match="encoded word"):
        OutboxTransport(migrated.outbox_path).send(message(ENCODED_WORD))
    assert not list(migrated.outbox_path.glob("*.eml"))


def test_rows_whose_claims_keep_lapsing_go_alone_and_the_killer_is_quarantined(
    migrated: Settings,
) -> None:
    """The ledger's side, on SQLite and PostgreSQL: claims that never end (lease 0)."""
    _stock(migrated, ["ada@example.org"], [KILLER])
    by_email = {email: row.id or 0 for email, row in _rows(migrated).items()}
    killer, ada = by_email[KILLER], by_email["ada@example.org"]
    gone = timedelta(0)  # a claim whose sender died at once: lapsed by the next claim

    def claim() -> list[tuple[int, int]]:
        with session_scope(migrated.sqlalchemy_url) as session:
            return [(c.id, c.attempt) for c in ledger.claim(session=session, limit=10, lease=gone)]

    def claim_suspect() -> tuple[int, int] | None:
        with session_scope(migrated.sqlalchemy_url) as session:
            suspect = ledger.claim_suspect(session=session, lease=gone)
            return (suspect.id, suspect.attempt) if suspect else None

    assert claim() == [(killer, 1), (ada, 1)]  # killed once: the batch comes back together
    assert claim_suspect() is None
    assert claim() == [(killer, 2), (ada, 2)]  # killed twice: now each goes alone
    assert claim() == []
    assert claim_suspect() == (killer, 3)
    assert claim_suspect() == (ada, 3)  # the least tried first
    with session_scope(migrated.sqlalchemy_url) as session:
        ledger.set_outcome(session=session, ids=[ada], status=ledger.DeliveryStatus.sent)
    assert [claim_suspect() for _ in range(5)] == [(killer, n) for n in range(4, 9)]
    assert claim_suspect() is None and claim() == []
    rows = _rows(migrated)
    assert rows[KILLER].status == ledger.DeliveryStatus.failed
    assert rows[KILLER].last_error == ledger.QUARANTINED
    assert rows["ada@example.org"].status == ledger.DeliveryStatus.sent
