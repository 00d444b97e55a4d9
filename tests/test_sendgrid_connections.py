"""The SendGrid transport's connections against real servers: one that closes idle
connections without saying so, as providers' load balancers do, one that stands in for an
egress proxy named by HTTP_PROXY, and one that speaks HTTPS."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import pytest

from emails.message import Message
from emails.transports.base import TransientSendError
from emails.transports.sendgrid import SendGridTransport
from tests.support.tls import self_signed

RESPONSE = (b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-Message-Id: m1\r\n"
            b"Connection: keep-alive\r\n\r\nok")


class RawServer:
    """A socket on a free port, each connection served by `handle` in a thread of its own."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError


def read_request(reader: BinaryIO) -> str | None:
    """One HTTP request off the connection, body included: its request line (None at EOF)."""
    first = reader.readline()
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length"):
            length = int(line.split(b":")[1])
    if not line:
        return None
    reader.read(length)
    return first.decode().strip()


class ClosesWhenIdle(RawServer):
    """Answers one request per connection as if keeping it alive, then closes it."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.request_lines: list[str] = []
        self.closed = threading.Event()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.connections += 1
        with conn, conn.makefile("rb") as reader:
            if (request_line := read_request(reader)) is None:
                return
            self.requests += 1
            self.request_lines.append(request_line)
            conn.sendall(RESPONSE)
        self.closed.set()  # closed: the idle timeout, with no "Connection: close" said


@pytest.fixture
def server() -> Iterator[ClosesWhenIdle]:
    server = ClosesWhenIdle()
    yield server
    server.listener.close()


def message() -> Message:
    return Message(to="reader@example.org", subject="Digest", html="<p>hi</p>", text="hi",
                   sender="Paper Digest <digest@example.org>")


def test_a_connection_the_server_closed_while_idle_costs_no_failure(
    server: ClosesWhenIdle,
) -> None:
    with SendGridTransport("SG.key", f"http://127.0.0.1:{server.port}", timeout=5) as transport:
        assert transport.send(message()) == "m1"
        assert server.closed.wait(5)
        assert transport.send(message()) == "m1"  # no error: a fresh connection was made
    assert (server.requests, server.connections) == (2, 2)


def test_a_refused_connection_is_transient_and_unreachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with (
        SendGridTransport("SG.key", f"http://127.0.0.1:{port}", timeout=2) as transport,
        pytest.raises(TransientSendError, match="unreachable"),
    ):
        transport.send(message())


class HangsUpOnTheSecondRequest(RawServer):
    """Keeps each connection alive after its first answer; reads the second request on it
    and closes without a word, as a server that fell over mid-request would."""

    def __init__(self) -> None:
        self.read = 0
        self.answered = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            for number in (1, 2):
                if read_request(reader) is None:
                    return
                self.read += 1
                if number == 1:
                    self.answered += 1  # before the answer: the test reads it once answered
                    conn.sendall(RESPONSE)


def test_libcurl_sends_again_once_when_a_reused_connection_dies_before_the_answer() -> None:
    """The one retry outside the ledger (see emails/transports/sendgrid.py): the request
    goes once more, on a fresh connection. A server that read it, as this one did, may
    have acted on it; the ledger's own retry of the same failure would send it again too."""
    server = HangsUpOnTheSecondRequest()
    with SendGridTransport("SG.key", f"http://127.0.0.1:{server.port}", timeout=5) as transport:
        assert transport.send(message()) == "m1"
        assert transport.send(message()) == "m1"
    assert (server.read, server.answered) == (3, 2)
    server.listener.close()


def test_no_proxy_is_read_once_as_python_reads_it(
    server: ClosesWhenIdle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libcurl would read no_proxy again by rules of its own (CIDR ranges, for one), and
    could go around the proxy the transport chose: it is told there are no exemptions."""
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        closed_port = placeholder.getsockname()[1]
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.0/8")  # not an exemption to Python
    monkeypatch.delenv("NO_PROXY", raising=False)
    with SendGridTransport("SG.key", f"http://127.0.0.1:{closed_port}", timeout=5) as transport:
        assert transport.send(message()) == "m1"
    assert server.request_lines == [f"POST http://127.0.0.1:{closed_port}/v3/mail/send HTTP/1.1"]


def test_the_proxy_named_by_http_proxy_carries_the_requests(
    server: ClosesWhenIdle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator behind an egress proxy sets HTTPS_PROXY (HTTP_PROXY for an http:// API
    host); the request goes to the proxy in absolute form, and NO_PROXY exempts a host."""
    proxy = f"http://127.0.0.1:{server.port}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SendGridTransport("SG.key", "http://api.sendgrid.test", timeout=5) as transport:
        assert transport.send(message()) == "m1"
    assert server.request_lines == ["POST http://api.sendgrid.test/v3/mail/send HTTP/1.1"]

    monkeypatch.setenv("NO_PROXY", "api.sendgrid.test")
    monkeypatch.setenv("no_proxy", "api.sendgrid.test")
    with (
        SendGridTransport("SG.key", "http://api.sendgrid.test", timeout=2) as transport,
        pytest.raises(TransientSendError, match="unreachable"),  # straight to a host that
    ):                                                          # does not exist
        transport.send(message())
    assert server.requests == 1


class AcceptsOverTLS(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(202)
        self.send_header("X-Message-Id", "tls-1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS API on 127.0.0.1 with a certificate no system store trusts; its URL and the
    certificate (its own authority)."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), AcceptsOverTLS)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_https_is_verified_against_the_authorities_python_trusts(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's certificate is checked: refused while its authority is unknown, accepted once
    SSL_CERT_FILE names it (as Python's ssl reads it)."""
    url, cert = https_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with (
        SendGridTransport("SG.key", url, timeout=5) as transport,
        pytest.raises(TransientSendError, match="unreachable.*certificate"),
    ):
        transport.send(message())
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with SendGridTransport("SG.key", url, timeout=5) as transport:
        assert transport.send(message()) == "tls-1"
