"""Mail through any SMTP server (Mailpit, Postfix, a provider's relay), one kept connection.

DIGEST_SMTP_URL forms:
    smtp://host:1025                   plain (Mailpit, a local relay); default port 25
    smtp://user:pass@host:587          STARTTLS: port 587 always upgrades ("submission")
    smtp://user:pass@host:2525?starttls=1   STARTTLS on any other port (starttls=0 forbids it)
    smtps://user:pass@host             implicit TLS from the first byte; default port 465
User and password are percent-decoded; with them the transport logs in (after TLS when used).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from datetime import UTC, datetime
from email.utils import make_msgid, parseaddr
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from emails.message import Message
from emails.transports.base import (
    OneAtATime,
    PermanentSendError,
    SendError,
    TransientSendError,
    address_problem,
    as_send_error,
)
from emails.transports.outbox import build_email
from emails.transports.throttle import TokenBucket, make_bucket

Security = Literal["plain", "starttls", "tls"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _security(scheme: str, port: int | None, query: dict[str, list[str]]) -> Security:
    """Which kind of connection a URL asks for (see the module docstring)."""
    if scheme == "smtps":
        return "tls"
    if scheme != "smtp":
        raise ValueError(f"SMTP URL must start with smtp:// or smtps://, not {scheme}://")
    flag = (query.get("starttls") or [""])[-1].lower()
    if flag in _TRUE:
        return "starttls"
    if flag in _FALSE:
        return "plain"
    if flag:
        raise ValueError(f"starttls must be 1 or 0, not {flag!r}")
    return "starttls" if port == 587 else "plain"


def classify_smtp_error(error: Exception) -> SendError:
    """4xx replies, drops and network trouble are worth a retry; 5xx replies are final."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, refusal = next(iter(error.recipients.values()), (550, b"recipient refused"))
        detail = f"SMTP {code}: {refusal.decode('utf-8', 'replace')}"
        return TransientSendError(detail) if 400 <= code < 500 else PermanentSendError(detail)
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        detail = f"SMTP {error.smtp_code}: {text}"
        if 400 <= error.smtp_code < 500 or error.smtp_code < 0:
            return TransientSendError(detail)
        return PermanentSendError(detail)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return PermanentSendError(f"SMTP server lacks a needed extension: {error}")
    if isinstance(error, OSError):
        # SMTPServerDisconnected, refused connections, timeouts, TLS handshakes.
        return TransientSendError(f"SMTP connection failed: {error!r}")
    return as_send_error(error)  # e.g. a UnicodeEncodeError: permanent


def _needs_smtputf8(*addresses: str) -> str | None:
    """Why these addresses cannot go over plain SMTP, or None.

    smtplib writes commands in ASCII: a non-ASCII address raised UnicodeEncodeError halfway
    through a transaction. The transport does not speak SMTPUTF8, and signup keeps addresses
    ASCII (domains in their xn-- form), so only rows stored before that can be refused here.
    """
    for address in addresses:
        if not address.isascii():
            return f"{address!r} needs SMTPUTF8 (characters outside ASCII)"
    return None


class SMTPTransport(OneAtATime):
    """Sends over one reused SMTP connection, reconnecting when the server has dropped it.

    A batch goes one message per transaction (`OneAtATime`). Not `thread_safe`: the lock
    keeps concurrent callers from interleaving commands, but they would only queue on the
    one session, so senders keep one message in flight.
    """

    name = "smtp"
    thread_safe = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "plain",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        max_per_second: float | None = None,
        throttle: TokenBucket | None = None,
        msgid_domain: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ssl_context = ssl_context  # the system's trust store unless given (made on use)
        self.msgid_domain = msgid_domain
        self.connections_opened = 0
        self._bucket = throttle or make_bucket(max_per_second)
        self._lock = threading.Lock()  # an SMTP session is one conversation at a time
        self._conn: smtplib.SMTP | None = None

    @classmethod
    def from_url(cls, url: str, **options: object) -> SMTPTransport:
        """Build from `smtp://` / `smtps://` URLs as described in the module docstring."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        query = parse_qs(parts.query)
        security = _security(scheme, parts.port, query)
        if not parts.hostname:
            raise ValueError(f"SMTP URL has no host: {url!r}")
        default_port = {"tls": 465, "starttls": 587, "plain": 25}[security]
        return cls(
            parts.hostname,
            parts.port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            **options,  # type: ignore[arg-type]
        )

    def send(self, message: Message) -> str:
        """Send one message; returns its Message-ID (without angle brackets)."""
        sender = parseaddr(message.sender)[1] or message.sender
        recipient = parseaddr(message.to)[1] or message.to
        problem = address_problem(message.to) or _needs_smtputf8(sender, recipient)
        if problem:  # refused before connecting: nothing half-said to the server
            raise PermanentSendError(f"cannot send over SMTP: {problem}")
        domain = self.msgid_domain or sender.rpartition("@")[2] or None
        message_id = make_msgid(domain=domain)
        try:
            data = bytes(build_email(message, message_id=message_id, sent_at=datetime.now(UTC)))
        except (ValueError, TypeError) as error:  # e.g. CR/LF smuggled into a header
            raise PermanentSendError(f"message cannot be serialised: {error}") from error
        if self._bucket is not None:
            self._bucket.acquire()
        with self._lock:
            try:
                self._transaction(sender, recipient, data)
            except Exception as error:  # any of it: never reuse a session left mid-message
                self._drop_after(error)
                raise classify_smtp_error(error) from error
        return message_id.strip("<>")

    def close(self) -> None:
        """QUIT politely if the connection is still there."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def __enter__(self) -> SMTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        """Open, secure and authenticate a new session."""
        conn: smtplib.SMTP
        if self.ssl_context is None and self.security != "plain":
            self.ssl_context = ssl.create_default_context()
        if self.security == "tls":
            conn = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        self.connections_opened += 1
        try:
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self.ssl_context)
                conn.ehlo()  # capabilities (AUTH among them) change once encrypted
            if self.username:
                conn.login(self.username, self.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def _transaction(self, sender: str, recipient: str, data: bytes) -> None:
        """MAIL, RCPT, DATA on the kept connection; a stale one is replaced once, before MAIL."""
        conn = self._conn
        if conn is not None:
            try:
                code, reply = conn.mail(sender)
            except smtplib.SMTPServerDisconnected:
                # Servers close idle sessions. Nothing was sent yet, so a fresh try is safe.
                conn.close()
                conn = self._conn = None
        if conn is None:
            conn = self._conn = self._connect()
            code, reply = conn.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = conn.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = conn.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def _drop_after(self, error: BaseException) -> None:
        """Keep the session after a refused message (RSET), drop it after anything else."""
        conn = self._conn
        if conn is None:
            return
        if isinstance(error, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
            try:
                conn.rset()
                return
            except (smtplib.SMTPException, OSError):
                pass
        conn.close()
        self._conn = None
