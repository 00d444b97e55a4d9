"""SMTPTransport against a real local SMTP server (aiosmtpd): plain, STARTTLS, TLS, auth."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from emails.message import Message
from emails.transports.base import (
    BatchSendError,
    PermanentSendError,
    Recipient,
    TransientSendError,
)
from emails.transports.smtp import SMTPTransport
from tests.support.tls import self_signed

USER, PASSWORD = "digest", "s3cret/pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(to: str = "Ada <ada@example.org>") -> Message:
    return Message(
        to=to,
        subject="Your papers for Tuesday",
        html="<p>Three papers on <b>speech synthesis</b></p>",
        text="Three papers on speech synthesis",
        sender="Paper Digest <digest@papers.example>",
        headers={
            "List-Unsubscribe": "<https://digest.test/u/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        tags={"delivery_id": "42"},
    )


@dataclass
class Received:
    peer: Any
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class Recorder:
    """An aiosmtpd handler: refuses some local parts, records the rest."""

    messages: list[Received] = field(default_factory=list)
    close_after_data: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, _: Any
    ) -> str:  # noqa: N802, E501
        local = address.split("@")[0]
        if local == "nobody":
            return "550 5.1.1 No such user here"
        if local == "later":
            return "451 4.3.0 Mailbox busy, try again later"
        if local == "busy":
            return "421 4.7.0 Too many connections, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _hang_up(self, server: Any) -> None:
        server.transport.close()
        self.closed.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            Received(
                session.peer,
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.content,
                session.ssl is not None,
                bool(session.authenticated),
            )
        )
        if self.close_after_data:
            self.close_after_data = False
            # Runs after the 250 reply is queued: the server hangs up on an idle session.
            asyncio.get_running_loop().call_soon(self._hang_up, server)
        return "250 Message accepted"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:  # noqa: E501
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers 535 itself instead of leaving the client waiting.
    return AuthResult(success=ok, handled=False)


@dataclass
class TLSFiles:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A self-signed certificate for 127.0.0.1, and contexts that serve and trust it."""
    cert_path, key_path = self_signed(tmp_path_factory.mktemp("tls"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return TLSFiles(server=server, client=ssl.create_default_context(cafile=str(cert_path)))


ServerFactory = Callable[..., tuple[Recorder, int]]


@pytest.fixture
def smtp_server() -> Iterator[ServerFactory]:
    """Start aiosmtpd servers with the given Controller options; all stopped afterwards."""
    controllers: list[Controller] = []

    def start(**options: Any) -> tuple[Recorder, int]:
        recorder, port = Recorder(), free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return recorder, port

    yield start
    for controller in controllers:
        controller.stop()


def test_plain_sends_reuse_one_connection(smtp_server: ServerFactory) -> None:
    server, port = smtp_server()
    with SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport:
        ids = [transport.send(message(f"reader{i}@example.org")) for i in range(3)]
        assert transport.connections_opened == 1
    assert len(server.messages) == 3
    assert len({received.peer for received in server.messages}) == 1
    first = server.messages[0]
    assert first.mail_from == "digest@papers.example"
    assert first.rcpt_tos == ["reader0@example.org"]
    parsed = message_from_bytes(first.content, policy=policy.default)
    assert parsed["Message-ID"] == f"<{ids[0]}>"
    assert ids[0].endswith("@papers.example") and len(set(ids)) == 3
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain",
        "text/html",
    ]


def test_reconnects_when_the_server_dropped_the_idle_session(smtp_server: ServerFactory) -> None:
    server, port = smtp_server()
    server.close_after_data = True
    with SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport:
        transport.send(message())
        assert server.closed.wait(5)
        transport.send(message())
        assert transport.connections_opened == 2
    assert len(server.messages) == 2
    assert server.messages[0].peer != server.messages[1].peer


def test_starttls_with_auth(smtp_server: ServerFactory, tls: TLSFiles) -> None:
    server, port = smtp_server(
        tls_context=tls.server,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    url = f"smtp://{USER}:s3cret%2Fpw@127.0.0.1:{port}?starttls=1"
    with SMTPTransport.from_url(url, ssl_context=tls.client) as transport:
        assert transport.security == "starttls"
        transport.send(message())
    assert len(server.messages) == 1
    assert server.messages[0].tls and server.messages[0].authenticated


def test_wrong_password_is_permanent(smtp_server: ServerFactory, tls: TLSFiles) -> None:
    server, port = smtp_server(
        tls_context=tls.server, require_starttls=True, authenticator=authenticator
    )
    url = f"smtp://{USER}:wrong@127.0.0.1:{port}?starttls=1"
    with (
        SMTPTransport.from_url(url, ssl_context=tls.client) as transport,
        pytest.raises(PermanentSendError, match="535"),
    ):
        transport.send(message())
    assert server.messages == []


def test_implicit_tls(smtp_server: ServerFactory, tls: TLSFiles) -> None:
    server, port = smtp_server(ssl_context=tls.server)
    with SMTPTransport.from_url(f"smtps://127.0.0.1:{port}", ssl_context=tls.client) as transport:
        assert transport.security == "tls"
        transport.send(message())
    assert len(server.messages) == 1


def test_untrusted_certificate_sends_nothing(smtp_server: ServerFactory, tls: TLSFiles) -> None:
    server, port = smtp_server(tls_context=tls.server, require_starttls=True)
    with (
        SMTPTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=1") as transport,
        pytest.raises(TransientSendError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        transport.send(message())
    assert server.messages == []


def test_starttls_asked_but_not_offered_never_downgrades(smtp_server: ServerFactory) -> None:
    server, port = smtp_server()
    with (
        SMTPTransport.from_url(f"smtp://127.0.0.1:{port}?starttls=1") as transport,
        pytest.raises(PermanentSendError, match="extension"),
    ):
        transport.send(message())
    assert server.messages == []


@pytest.mark.parametrize("local", ["later", "busy"])
def test_4xx_replies_are_transient_and_keep_the_session(
    smtp_server: ServerFactory, local: str
) -> None:
    server, port = smtp_server()
    with SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport:
        with pytest.raises(TransientSendError, match=r"SMTP 4\d\d"):
            transport.send(message(f"{local}@example.org"))
        transport.send(message())
        assert transport.connections_opened == 1
    assert [received.rcpt_tos for received in server.messages] == [["ada@example.org"]]


def test_5xx_reply_is_permanent(smtp_server: ServerFactory) -> None:
    server, port = smtp_server()
    with (
        SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport,
        pytest.raises(PermanentSendError, match=r"550.*5\.1\.1"),
    ):
        transport.send(message("nobody@example.org"))
    assert server.messages == []


def test_a_batch_goes_one_filled_message_at_a_time_and_stops_at_a_refusal(
    smtp_server: ServerFactory,
) -> None:
    server, port = smtp_server()
    template = Message(
        to="",
        subject="Clippings, April",
        html='<a href="-manage_url-">Edit</a>',
        text="Edit: -manage_url-",
        sender="Paper Digest <digest@papers.example>",
        headers={"List-Unsubscribe": "<-unsubscribe_url->"},
        tags={"kind": "monthly"},
    )

    def reader(local: str) -> Recipient:
        links = {"-manage_url-": f"https://digest.test/m/{local}",
                 "-unsubscribe_url-": f"https://digest.test/u/{local}"}
        return Recipient(f"{local}@example.org", substitutions=links)

    with SMTPTransport.from_url(f"smtp://127.0.0.1:{port}") as transport:
        assert (transport.batch_limit, transport.thread_safe) == (1, False)
        ids = transport.send_batch(template, [reader("ada"), reader("alan")])
        assert len(set(ids)) == 2
        with pytest.raises(BatchSendError, match="550") as raised:
            transport.send_batch(template, [reader("grace"), reader("nobody"), reader("karen")])
        assert transport.connections_opened == 1
    assert raised.value.accepted == 1 and len(raised.value.message_ids) == 1
    assert isinstance(raised.value.error, PermanentSendError)
    assert [r.rcpt_tos for r in server.messages] == [
        ["ada@example.org"], ["alan@example.org"], ["grace@example.org"]
    ]
    parsed = message_from_bytes(server.messages[1].content, policy=policy.default)
    assert parsed["To"] == "alan@example.org"
    assert parsed["List-Unsubscribe"] == "<https://digest.test/u/alan>"
    assert parsed["Message-ID"] == f"<{ids[1]}>"
    plain = parsed.get_body(preferencelist=("plain",))
    assert plain is not None and plain.get_content().strip() == "Edit: https://digest.test/m/alan"


def test_unreachable_server_is_transient() -> None:
    transport = SMTPTransport.from_url(f"smtp://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(TransientSendError, match="refused"):
        transport.send(message())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mailpit:1025", ("mailpit", 1025, "plain", None, None)),
        ("smtp://relay.example", ("relay.example", 25, "plain", None, None)),
        ("smtp://u:p%40ss@smtp.example:587", ("smtp.example", 587, "starttls", "u", "p@ss")),
        ("smtp://smtp.example:587?starttls=0", ("smtp.example", 587, "plain", None, None)),
        ("smtp://smtp.example?starttls=1", ("smtp.example", 587, "starttls", None, None)),
        ("smtp://smtp.example:2525?starttls=true", ("smtp.example", 2525, "starttls", None, None)),
        (
            "smtps://apikey:SG.x@smtp.sendgrid.net",
            ("smtp.sendgrid.net", 465, "tls", "apikey", "SG.x"),
        ),  # noqa: E501
    ],
)
def test_url_conventions(url: str, expected: tuple[object, ...]) -> None:
    transport = SMTPTransport.from_url(url)
    got = (
        transport.host,
        transport.port,
        transport.security,
        transport.username,
        transport.password,
    )  # noqa: E501
    assert got == expected


@pytest.mark.parametrize("url", ["http://host", "smtp://", "smtp://host?starttls=maybe"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        SMTPTransport.from_url(url)
