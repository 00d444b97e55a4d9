"""Mail as files: every message an RFC 5322 .eml plus an .html preview, for laptops and tests."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid, parseaddr
from html import escape
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlencode

from emails.message import Message
from emails.transports.base import (
    OneAtATime,
    PermanentSendError,
    TransientSendError,
    address_problem,
)

# Short on purpose: a Message-ID longer than 78 characters gets folded onto a second line.
MSGID_DOMAIN = "paper-digest.local"
_OWN_HEADERS = {"from", "to", "subject", "date", "message-id"}


class VerbatimHeader(UnstructuredHeader):
    """A URL-list header folded only after its commas, never cut or RFC 2047-encoded."""

    def fold(self, *, policy: EmailPolicy[EmailMessage]) -> str:
        """`Name: <a>,<CRLF> <b>`: clients read List-Unsubscribe literally, so URLs stay whole."""
        header = cast(BaseHeader, self)  # HeaderRegistry mixes BaseHeader in at runtime
        value = str(header)
        if not value.isascii():
            raise ValueError(f"{header.name} must be ASCII")
        return f"{header.name}: " + f",{policy.linesep} ".join(value.split(", ")) + policy.linesep


def mail_policy() -> EmailPolicy[EmailMessage]:
    """policy.SMTP, except that a long List-Unsubscribe URL is never mangled into encoded words."""
    registry = HeaderRegistry()
    verbatim = cast("type[BaseHeader]", VerbatimHeader)
    registry.map_to_type("list-unsubscribe", verbatim)
    registry.map_to_type("list-unsubscribe-post", verbatim)
    return policy.SMTP.clone(header_factory=registry)


MAIL_POLICY = mail_policy()


def build_email(message: Message, *, message_id: str, sent_at: datetime) -> EmailMessage:
    """The RFC 5322 form of a Message: multipart/alternative, plain text first, then HTML."""
    email = EmailMessage(policy=MAIL_POLICY)
    email["From"] = message.sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(sent_at)
    email["Message-ID"] = message_id
    for name, value in message.headers.items():
        if name.lower() not in _OWN_HEADERS:
            email[name] = value
    # Tags and categories ride along so a developer can see what a provider would have seen.
    if message.tags:
        email["X-Digest-Tags"] = urlencode(sorted(message.tags.items()))
    if message.categories:
        email["X-Digest-Categories"] = ", ".join(message.categories)
    # Quoted-printable keeps both parts 7-bit clean and still readable in a text editor.
    email.set_content(message.text, cte="quoted-printable")
    email.add_alternative(message.html, subtype="html", cte="quoted-printable")
    return email


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def slug(address: str) -> str:
    """'Ada <Ada.L@Example.org>' -> 'ada-l-example-org' (safe in any file system)."""
    text = (parseaddr(address)[1] or address).lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:48] or "unknown"


class OutboxTransport(OneAtATime):
    """Writes each message into `directory` instead of sending it anywhere, one file each."""

    name = "outbox"
    # No shared state: each send writes its own uniquely named files, atomically.
    thread_safe = True

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, message: Message) -> str:
        """Write `<UTC time>-<recipient>-<id>.eml` (+ .html); returns the Message-ID."""
        if problem := address_problem(message.to):  # as every transport: see base.py
            raise PermanentSendError(f"cannot send: {problem}")
        sent_at = datetime.now(UTC)
        short_id = secrets.token_hex(4)
        message_id = make_msgid(domain=MSGID_DOMAIN)
        try:
            data = bytes(build_email(message, message_id=message_id, sent_at=sent_at))
        except (ValueError, TypeError) as error:  # e.g. a CR/LF smuggled into a header
            raise PermanentSendError(f"message cannot be serialised: {error}") from error
        stem = f"{sent_at:%Y%m%dT%H%M%S%fZ}-{slug(message.to)}-{short_id}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # The .eml is written last: its presence is what marks a message as sent.
            write_atomic(self.directory / f"{stem}.html", message.html.encode("utf-8"))
            write_atomic(self.directory / f"{stem}.eml", data)
        except OSError as error:  # a full or read-only disk may well recover
            raise TransientSendError(f"cannot write to outbox {self.directory}: {error}") from error
        return message_id.strip("<>")


@dataclass(frozen=True)
class OutboxEntry:
    """What the index shows about one stored message."""

    eml: str
    html: str | None
    to: str
    subject: str
    date: str
    text: str


def read_entry(path: Path) -> OutboxEntry:
    """Parse one .eml back into what the index needs."""
    with path.open("rb") as handle:
        parsed = BytesParser(policy=policy.default).parse(handle)
    body = parsed.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    preview = path.with_suffix(".html")
    return OutboxEntry(
        eml=path.name,
        html=preview.name if preview.exists() else None,
        to=str(parsed.get("To", "")),
        subject=str(parsed.get("Subject", "")),
        date=str(parsed.get("Date", "")),
        text=text,
    )


_INDEX_STYLE = """
body{margin:0;background:#f3f4f6;color:#111827;font:15px/1.5 -apple-system,'Segoe UI',Roboto,
Helvetica,Arial,sans-serif}main{max-width:960px;margin:0 auto;padding:28px 16px 48px}
h1{font-size:24px;margin:0 0 4px}.lead{color:#6b7280;margin:0 0 24px}
article{background:#fff;border:1px solid #e5e7eb;border-radius:12px;margin:0 0 24px;
overflow:hidden}header{padding:16px 20px;border-bottom:1px solid #e5e7eb}
h2{font-size:17px;margin:0 0 6px;overflow-wrap:anywhere}dl{display:grid;
grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;font-size:14px;color:#374151}
dt{color:#6b7280}dd{margin:0;overflow-wrap:anywhere}.links{margin-top:10px;font-size:14px}
.links a{color:#4338ca;font-weight:600;margin-right:16px}iframe{display:block;width:100%;
height:640px;border:0;background:#f3f4f6}details{border-top:1px solid #e5e7eb;padding:12px 20px}
summary{cursor:pointer;color:#4338ca;font-weight:600}pre{white-space:pre-wrap;font-size:13px;
overflow-wrap:anywhere}.empty{color:#6b7280}
"""


def _entry_html(entry: OutboxEntry) -> str:
    """One message as an <article>; every value escaped, every file name URL-quoted."""
    eml_href = escape(quote(entry.eml))
    html_href = escape(quote(entry.html)) if entry.html else ""
    parts = [
        "<article><header>",
        f"<h2>{escape(entry.subject) or '(no subject)'}</h2>",
        f"<dl><dt>To</dt><dd>{escape(entry.to)}</dd><dt>Date</dt><dd>{escape(entry.date)}</dd>",
        f"<dt>File</dt><dd>{escape(entry.eml)}</dd></dl>",
        f'<div class="links"><a href="{eml_href}" download>Download .eml</a>',
    ]
    if entry.html:
        parts.append(f'<a href="{html_href}" target="_blank" rel="noopener">Open HTML</a>')
    parts.append("</div></header>")
    if entry.html:
        # sandbox: a preview can never run script or touch this page, whatever the mail holds.
        parts.append(
            f'<iframe src="{html_href}" title="Preview of {escape(entry.subject)}" '
            'loading="lazy" sandbox="allow-popups allow-popups-to-escape-sandbox"></iframe>'
        )
    parts.append(f"<details><summary>Plain-text part</summary><pre>{escape(entry.text)}</pre>")
    parts.append("</details></article>")
    return "".join(parts)


def write_index(directory: Path) -> Path:
    """(Re)build `index.html` listing every message in the outbox, newest first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # File names start with a UTC timestamp, so name order is time order.
    entries = [read_entry(path) for path in sorted(directory.glob("*.eml"), reverse=True)]
    count = f"{len(entries)} message" + ("" if len(entries) == 1 else "s")
    body = "".join(_entry_html(entry) for entry in entries) or (
        '<p class="empty">Nothing sent yet.</p>'
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Outbox · {count}</title><style>{_INDEX_STYLE}</style></head><body><main>"
        f'<h1>Outbox</h1><p class="lead">{count} in {escape(str(directory))}, newest first.</p>'
        f"{body}</main></body></html>\n"
    )
    index = directory / "index.html"
    write_atomic(index, page.encode("utf-8"))
    return index
