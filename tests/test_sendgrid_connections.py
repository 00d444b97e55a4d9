"""The SendGrid transport's kept-alive connections against a real server that closes idle
connections without saying so, as providers' load balancers do."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from emails.message import Message
from emails.transports.base import TransientSendError
from emails.transports.sendgrid import SendGridTransport

RESPONSE = (b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nX-Message-Id: m1\r\n"
            b"Connection: keep-alive\r\n\r\nok")


class ClosesWhenIdle:
    """Answers one request per connection as if keeping it alive, then closes it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            conn.sendall(RESPONSE)
            conn.close()  # the idle timeout, with no "Connection: close" said
            self.closed.set()


@pytest.fixture
def server() -> Iterator[ClosesWhenIdle]:
    server = ClosesWhenIdle()
    yield server
    server.listener.close()


def message() -> Message:
    return Message(to="reader@example.org", subject="Digest", html="<p>hi</p>", text="hi",
                   sender="Paper Digest <digest@example.org>")


def test_a_connection_the_server_closed_while_idle_is_not_reused(server: ClosesWhenIdle) -> None:
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
