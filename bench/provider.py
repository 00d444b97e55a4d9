"""The local SendGrid v3 server for benchmarks, in a process of its own.

The test fake (tests/support/fake_sendgrid.py) keeps every accepted body, which at 100,000
messages of about 40 KB would be gigabytes; here only each personalization's delivery id is
counted. Every body is still validated as the fake validates it (`body_errors`: SendGrid's
schema and API rules), and every answer waits the configured delay, like a real provider's
round trip. Running it in its own process keeps its CPU (JSON parsing, validation) from
sharing a GIL with the planner; its CPU seconds are reported, so a run bound by the provider
shows it.

It serves through uvicorn (httptools), on one asyncio loop: the fake's thread per connection
(`http.server`) cost about 1.4 times the CPU a request, on the cores the product is measured
on, where the real API costs them nothing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tests.support.fake_sendgrid import DEFAULT_API_KEY, DENIED, body_errors, load_validator

Asgi = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                 Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


@dataclass
class Tally:
    """What the provider saw; changed only on its event loop."""

    ids: Counter[int] = field(default_factory=Counter)  # accepted delivery ids
    recipients: int = 0
    requests: int = 0  # valid ones, as the fake counts them
    invalid: int = 0
    connections: int = 0  # accepted TCP connections, as the fake counts them


def mail_send(tally: Tally, delay: float, api_key: str = DEFAULT_API_KEY) -> Asgi:
    """POST /v3/mail/send as the fake answers it: 401, 400 with the errors, or 202 after
    `delay` with an X-Message-Id."""
    validator = load_validator()
    authorization = f"Bearer {api_key}".encode()

    async def reply(send: Callable[[dict[str, Any]], Awaitable[None]], status: int,
                    body: Any = None, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        data = b"" if body is None else orjson.dumps(body)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            *headers]})
        await send({"type": "http.response.body", "body": data})

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client died mid-request (a killed worker): no request at all
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["method"] != "POST":
            await reply(send, 501, {"errors": [{"field": None, "message": "unsupported method"}]})
            return
        if scope["path"].rstrip("/") != "/v3/mail/send":
            await reply(send, 404, {"errors": [{"field": None, "message": "not found"}]})
            return
        if dict(scope["headers"]).get(b"authorization") != authorization:
            await reply(send, 401, {"errors": [{"field": None, "message": DENIED, "help": None}]})
            return
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            body = None
        if errors := body_errors(validator, body):
            tally.invalid += 1
            await reply(send, 400, {"errors": errors})
            return
        tally.requests += 1
        await asyncio.sleep(delay)
        ids = [int(p["custom_args"]["delivery_id"]) for p in body["personalizations"]]
        tally.ids.update(ids)
        tally.recipients += len(ids)
        await reply(send, 202, headers=((b"x-message-id", secrets.token_urlsafe(16).encode()),))

    return app


def counting(tally: Tally) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, counting each connection as it opens."""

    class Counting(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            tally.connections += 1
            super().connection_made(transport)

    return Counting


def _serve(delay: float, pipe: Connection, accepted: Any) -> None:
    tally = Tally()
    listener = socket.create_server(("127.0.0.1", 0))
    # httptools and asyncio named, not left to what happens to be installed; connections stay
    # open a minute, as the real API's do (the sender reuses them for 30 s).
    config = uvicorn.Config(mail_send(tally, delay), http=counting(tally), loop="asyncio",
                            lifespan="off", access_log=False, log_level="warning",
                            timeout_keep_alive=60, server_header=False, date_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    started_by = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > started_by:
            raise RuntimeError("the bench provider did not start")
        time.sleep(0.01)
    host, port = listener.getsockname()[:2]
    pipe.send((f"http://{host}:{port}", DEFAULT_API_KEY))
    while True:
        if pipe.poll(0.05):
            pipe.recv()
            break
        accepted.value = tally.recipients
    server.should_exit = True  # finishes the requests in flight, then closes
    thread.join(timeout=10)
    if thread.is_alive():  # a request that never ends: stop without it, then count
        server.force_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError("the bench provider did not stop; its counts would be partial")
    pipe.send({
        "distinct_accepted": len(tally.ids),
        "duplicates": sum(tally.ids.values()) - len(tally.ids),
        "invalid_bodies": tally.invalid,
        "requests": tally.requests,
        "provider_connections": tally.connections,
        "provider_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "provider_cpu_seconds": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2),
    })  # fmt: skip


class ProviderProcess:
    """Start with `.start()`; `.accepted` is the live count; `.stop()` returns the summary."""

    def __init__(self, delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._accepted = context.Value("q", 0, lock=False)
        self._process = context.Process(
            target=_serve, args=(delay, child, self._accepted), daemon=True
        )
        self.url = ""
        self.api_key = ""

    def start(self) -> ProviderProcess:
        self._process.start()
        self.url, self.api_key = self._pipe.recv()
        return self

    @property
    def accepted(self) -> int:
        return int(self._accepted.value)

    def stop(self) -> dict[str, Any]:
        self._pipe.send("stop")
        summary: dict[str, Any] = self._pipe.recv()
        self._process.join(timeout=10)
        return summary
