"""Signed links as the emails carry them: a subscriber to sign for, their tokens, forged
ones of every kind, the manage page's URL and form token, and a snapshot of everything a
request could change.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from itsdangerous.timed import TimestampSigner
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import (
    ConsentEvent,
    PendingEmail,
    Subscriber,
    SubscriberCreate,
    Suppression,
)
from subscribers.service import confirm, subscribe
from subscribers.tokens import Purpose, make_token
from tests.support.web_app import csrf_of

ADA = "ada@example.org"


def signed_up(settings: Settings, *, active: bool = True, email: str = ADA) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        subscribe(session=session, subscriber_create=SubscriberCreate(
            email=email, keywords=["speech synthesis", "TTS"], timezone="Europe/Paris"))
        sid = session.exec(select(Subscriber.id).where(Subscriber.email == email)).one() or 0
        if active:
            confirm(session=session, subscriber_id=sid)
    return sid


def token(settings: Settings, purpose: Purpose, sid: int, extra: str = "") -> str:
    return make_token(keys=settings.signing_keys(), purpose=purpose, subscriber_id=sid,
                      extra=extra)


def snapshot(settings: Settings) -> list[Any]:
    """Everything a request could change, to compare before and after."""
    with session_scope(settings.sqlalchemy_url) as session:
        return [[row.model_dump() for row in session.exec(select(table))]
                for table in (Subscriber, ConsentEvent, PendingEmail, Suppression,
                              ledger.Delivery)]


def forged_tokens(settings: Settings, sid: int, purpose: Purpose,
                  monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    good = token(settings, purpose, sid)
    other = {Purpose.confirm: Purpose.manage, Purpose.manage: Purpose.unsubscribe,
             Purpose.unsubscribe: Purpose.confirm}[purpose]
    forged = {
        # A character inside the signature (the last one may only hold padding bits).
        "tampered": good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:],
        "truncated": good[: len(good) // 2],
        "wrong purpose": token(settings, other, sid),
        "feedback purpose": token(settings, Purpose.feedback, sid),
        "unknown key": make_token(keys=["someone-elses-key"], purpose=purpose, subscriber_id=sid),
        "orphaned": token(settings, purpose, sid + 1000),
        "garbage": "not-a-token",
        "long garbage": "x" * 300,
        "other subscriber's id in the payload": good.replace(good.split(".")[0], "WzJd", 1),
    }
    if purpose == Purpose.manage:
        forged["extra data"] = token(settings, purpose, sid, extra="email:1")
    forged["unknown extra data"] = token(settings, purpose, sid, extra="admin:1")
    # An expired confirmation: signed eight days ago.
    if purpose == Purpose.confirm:
        monkeypatch.setattr(TimestampSigner, "get_timestamp",
                            lambda self: int(time.time()) - 8 * 24 * 3600)
        forged["expired"] = token(settings, purpose, sid)
        monkeypatch.undo()
    return forged


def manage(client: Any, settings: Settings, sid: int) -> tuple[str, str]:
    url = f"/manage/{token(settings, Purpose.manage, sid)}"
    page = client.get(url)
    assert page.status_code == 200
    return url, csrf_of(page.text)
