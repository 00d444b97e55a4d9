"""The one shape a message has between rendering and a transport."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """A rendered email: both parts, the envelope, and extra headers (List-Unsubscribe...)."""

    to: str
    subject: str
    html: str
    text: str
    sender: str
    headers: dict[str, str] = field(default_factory=dict)
    # Opaque tags a transport may pass to the provider (SendGrid custom_args / categories).
    tags: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
