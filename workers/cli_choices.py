"""The choices `digest` options offer (--status, --frequency), as light copies of the models'
enums: typer reads every command's options to print `digest --help`, and importing the models
for that would load SQLModel and SQLAlchemy first (about half a second). A test keeps these
equal to subscribers/models.py and subscribers/ledger.py; commands pass the plain value on.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """subscribers.models.Status."""

    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class Frequency(StrEnum):
    """subscribers.models.Frequency."""

    daily = "daily"
    weekly = "weekly"
    feed = "feed"


class DeliveryStatus(StrEnum):
    """subscribers.ledger.DeliveryStatus."""

    planned = "planned"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"
