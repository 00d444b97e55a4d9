"""Ways a rendered Message leaves: one Transport interface, chosen by DIGEST_MAIL_BACKEND."""

from __future__ import annotations

from digest.settings import Settings
from emails.transports.base import (
    PermanentSendError,
    SendError,
    TransientSendError,
    Transport,
)
from emails.transports.outbox import OutboxTransport, write_index

__all__ = [
    "OutboxTransport",
    "PermanentSendError",
    "SendError",
    "TransientSendError",
    "Transport",
    "make_transport",
    "write_index",
]


def make_transport(settings: Settings) -> Transport:
    """The transport the settings ask for; only the outbox is wired in this build."""
    if settings.mail_backend == "outbox":
        return OutboxTransport(settings.outbox_path)
    raise ValueError(
        f"mail backend {settings.mail_backend!r} is not configured in this build; "
        "use DIGEST_MAIL_BACKEND=outbox"
    )
