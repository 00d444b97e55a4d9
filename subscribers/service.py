"""Subscriber operations: keyword profiles, adding and listing subscribers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, col, select

from subscribers.models import Frequency, Status, Subscriber, SubscriberCreate, utcnow

MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 100


class InvalidInput(ValueError):
    """Input a person typed that we refuse, with a message fit to show them."""


def normalize_email(raw: str) -> str:
    """Validate and normalise an address; display names and CR/LF are refused."""
    if any(char in raw for char in "\r\n<>\"") or raw != raw.strip():
        raise InvalidInput("Enter a plain email address, like ada@example.org.")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(f"That email address is not valid: {error}") from None
    return result.normalized.lower()


def parse_keywords(raw: str | Sequence[str]) -> list[str]:
    """Split comma- or line-separated keywords into a clean, de-duplicated list."""
    parts = re.split(r"[,\n\r;]+", raw) if isinstance(raw, str) else list(raw)
    keywords: list[str] = []
    seen: set[str] = set()
    for part in parts:
        cleaned = "".join(ch for ch in part if unicodedata.category(ch)[0] != "C")
        keyword = " ".join(cleaned.split())
        if not keyword:
            continue
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise InvalidInput(f"Keep each keyword under {MAX_KEYWORD_LENGTH} characters.")
        if keyword.lower() not in seen:
            seen.add(keyword.lower())
            keywords.append(keyword)
    if len(keywords) > MAX_KEYWORDS:
        raise InvalidInput(f"Use at most {MAX_KEYWORDS} keywords.")
    return keywords


def add_subscriber(
    *, session: Session, subscriber_create: SubscriberCreate, confirmed: bool
) -> Subscriber:
    """Add a subscriber (an operator's import is pre-confirmed); refuses a known address."""
    email = normalize_email(subscriber_create.email)
    keywords = parse_keywords(subscriber_create.keywords)
    if not keywords:
        raise InvalidInput("Give at least one keyword.")
    if session.exec(select(Subscriber).where(Subscriber.email == email)).first():
        raise InvalidInput(f"{email} is already on the list.")
    now: datetime = utcnow()
    subscriber = Subscriber.model_validate(
        subscriber_create,
        update={
            "email": email,
            "keywords": keywords,
            "status": Status.active if confirmed else Status.pending,
            "confirmed_at": now if confirmed else None,
        },
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def list_subscribers(*, session: Session, status: Status | None = None) -> list[Subscriber]:
    """All subscribers, oldest first, optionally of one status."""
    query = select(Subscriber).order_by(col(Subscriber.id))
    if status is not None:
        query = query.where(Subscriber.status == status)
    return list(session.exec(query))


def due_daily(*, session: Session) -> list[Subscriber]:
    """Active subscribers who chose the daily digest (weekly ones are planned on their day)."""
    query = select(Subscriber).where(
        Subscriber.status == Status.active, Subscriber.frequency == Frequency.daily
    )
    return list(session.exec(query.order_by(col(Subscriber.id))))
