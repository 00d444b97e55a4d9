"""Ways a rendered Message leaves: one Transport interface, chosen by DIGEST_MAIL_BACKEND."""

from __future__ import annotations

from core.settings import Settings
from emails.transports.base import (
    PermanentSendError,
    SendError,
    TransientSendError,
    Transport,
)
from emails.transports.outbox import OutboxTransport, write_index
from emails.transports.sendgrid import SendGridTransport
from emails.transports.smtp import SMTPTransport

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
    """The transport DIGEST_MAIL_BACKEND asks for, with its per-second ceiling."""
    ceiling = settings.max_messages_per_second or None
    if settings.mail_backend == "outbox":
        return OutboxTransport(settings.outbox_path)
    if settings.mail_backend == "smtp":
        if not settings.smtp_url:
            raise ValueError("DIGEST_MAIL_BACKEND=smtp needs DIGEST_SMTP_URL")
        return SMTPTransport.from_url(settings.smtp_url, max_per_second=ceiling)
    if not settings.sendgrid_api_key:
        raise ValueError("DIGEST_MAIL_BACKEND=sendgrid needs DIGEST_SENDGRID_API_KEY")
    return SendGridTransport(
        settings.sendgrid_api_key, settings.sendgrid_host, max_per_second=ceiling
    )
