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


def as_send_error(error: Exception) -> SendError:
    """What any exception raised while handing one message over means for that message.

    Transports classify what they expect; this is the net under them, so one message's
    surprise is its own outcome and never the end of a whole send run. Encoding and value
    errors come from the message itself (an address a server cannot take) and would recur:
    permanent. Network trouble, and anything unknown (a bug may be fixed), is retried within
    the attempt limit.
    """
    if isinstance(error, SendError):
        return error
    if isinstance(error, ValueError):  # UnicodeEncodeError among them
        return PermanentSendError(f"message cannot be sent: {error!r}")
    if isinstance(error, OSError):
        return TransientSendError(f"connection failed: {error!r}")
    return TransientSendError(f"unexpected error: {error!r}")


def address_problem(address: str) -> str | None:
    """Why this address must never be handed over, or None.

    An RFC 2047 encoded word is not allowed in an address, yet mail software decodes it:
    Python's own parser reads `=?utf-8?q?x=40evil.example?=@example.org` as a mailbox at
    evil.example. Signup refuses such addresses; this catches any stored before it did.
    """
    if "=?" in address:
        return f"an encoded word (=?...?=) in the address {address!r}"
    return None


def can_batch(transport: object) -> bool:
    """Whether the transport sends one body to many recipients, each with their own
    placeholder values (`send_batch`: SendGrid's personalizations and substitutions)."""
    return callable(getattr(transport, "send_batch", None))
