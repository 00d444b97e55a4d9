"""The outbox as a subscriber's mailbox: run the real sender once, read back every .eml, and
check the rules every email keeps (both parts, RFC 8058 one-click, the postal address, size).
"""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from core.settings import Settings
from emails.transports import OutboxTransport
from workers.sending import send_due


def send(settings: Settings) -> list[EmailMessage]:
    """Run the sender once and return every message in the outbox, oldest first."""
    send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes())  # type: ignore[misc]
            for path in sorted(Path(settings.outbox_path).glob("*.eml"))]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "both parts"
    return text.get_content(), html.get_content()


def check_every_email_rule(message: EmailMessage, settings: Settings) -> None:
    text, html = parts(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<http://digest\.test/unsubscribe/[\w.-]+>", message["List-Unsubscribe"])
    assert settings.postal_address in text and settings.postal_address in html
    assert len(html.encode()) < 100_000
