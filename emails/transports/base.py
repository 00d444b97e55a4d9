"""The one interface every way of sending mail implements, and the two ways a send can fail."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from emails.links import fill
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


@dataclass(frozen=True)
class Recipient:
    """One addressee of a shared render: their placeholder values and their own tags."""

    email: str
    substitutions: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None


class BatchSendError(SendError):
    """A batch stopped at a failed request; the recipients before it were accepted."""

    def __init__(self, error: SendError, *, message_ids: list[str], accepted: int) -> None:
        super().__init__(f"{error} (after {accepted} recipients in {len(message_ids)} requests)")
        self.error = error
        self.message_ids = message_ids
        self.accepted = accepted


class Transport(Protocol):
    """Every way of sending mail: one rendered Message, or one shared render to many.

    `batch_limit` says how many recipients one request may carry (SendGrid: 1,000
    personalizations; SMTP and the outbox: one). `send_batch` returns one provider id per
    request and raises BatchSendError saying how many recipients were accepted before the
    failing request. `thread_safe`: senders may keep several requests in flight at once.
    """

    name: str
    batch_limit: int
    thread_safe: bool

    def send(self, message: Message) -> str: ...

    def send_batch(self, template: Message, recipients: Sequence[Recipient]) -> list[str]: ...


class OneAtATime(ABC):
    """`send_batch` for a transport whose requests carry one message: fill, send, repeat."""

    batch_limit = 1
    thread_safe = False

    @abstractmethod
    def send(self, message: Message) -> str: ...

    def send_batch(self, template: Message, recipients: Sequence[Recipient]) -> list[str]:
        ids: list[str] = []
        for recipient in recipients:
            message = fill(template, to=recipient.email, values=recipient.substitutions,
                           tags=recipient.tags)
            try:
                ids.append(self.send(message))
            except Exception as error:  # those before it went out
                raise BatchSendError(as_send_error(error), message_ids=ids,
                                     accepted=len(ids)) from error
        return ids


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
