"""The one interface every way of sending mail implements, and the two ways a send can fail."""

from __future__ import annotations

from typing import Protocol

from emails.message import Message


class SendError(Exception):
    """A message did not leave."""


class TransientSendError(SendError):
    """Worth retrying later (rate limit, timeout, 5xx); `retry_after` in seconds when known."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying cannot help (rejected address, malformed message, bad credentials)."""


class Transport(Protocol):
    """Hands one rendered Message to a provider and returns the provider's message id."""

    name: str

    def send(self, message: Message) -> str: ...


def can_batch(transport: object) -> bool:
    """Whether the transport sends one body to many recipients, each with their own
    placeholder values (`send_batch`: SendGrid's personalizations and substitutions)."""
    return callable(getattr(transport, "send_batch", None))
