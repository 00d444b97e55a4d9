"""A local SendGrid v3 Mail Send server that validates every body against SendGrid's schema.

Tests use the `fake_sendgrid` fixture; benchmarks run it by hand:
    python tests/support/fake_sendgrid.py --port 8025 --delay-ms 20
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

HERE = Path(__file__).resolve().parents[1]  # tests/
SCHEMA_PATHS = (
    HERE / "data" / "sendgrid" / "tsg_mail_v3.json",  # a copy (MIT, twilio/sendgrid-oai)
    HERE.parents[1] / "shared" / "reference" / "sendgrid" / "tsg_mail_v3.json",
)
SCHEMA_URI = "urn:sendgrid:tsg_mail_v3"
BODY_POINTER = "/components/requestBodies/PostMailSend/content/application~1json/schema"
DEFAULT_API_KEY = "SG.fake-test-key.not-a-secret"
DENIED = "The provided authorization grant is invalid, expired, or revoked"  # the API's 401
# Headers the API refuses to let a sender set (listed in the schema's description of headers).
RESERVED_HEADERS = {
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}  # fmt: skip


@functools.cache
def load_validator() -> jsonschema_rs.Draft202012Validator:
    """A validator for the POST /v3/mail/send body, its $refs resolved inside the document."""
    path = next((p for p in SCHEMA_PATHS if p.exists()), SCHEMA_PATHS[0])
    document = json.loads(path.read_text(encoding="utf-8"))
    body = document["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
    # Known flaw of the published schema: it types the top-level `custom_args` as a string,
    # while the API and the `sendgrid` library send an object of string values.
    body["schema"]["properties"]["custom_args"] = {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"{SCHEMA_URI}#{BODY_POINTER}"},
        registry=jsonschema_rs.Registry([(SCHEMA_URI, document)]),
        validate_formats=True,  # "email" and the other formats are checked, as the API does
    )


def api_rule_errors(body: dict[str, Any]) -> list[dict[str, str | None]]:
    """Rules the live API enforces that the schema does not express."""
    errors: list[dict[str, str | None]] = []
    personalizations = body.get("personalizations") or []
    content = body.get("content") or []
    if not body.get("template_id"):
        if not content:
            errors.append({"field": "content", "message": "content is required"})
        if not body.get("subject") and not all(p.get("subject") for p in personalizations):
            errors.append({"field": "subject", "message": "The subject is required."})
    types = [item.get("type") for item in content]
    if "text/plain" in types and types[0] != "text/plain":
        errors.append({"field": "content", "message": "text/plain content must be first"})
    recipients = sum(
        len(p.get(kind) or []) for p in personalizations for kind in ("to", "cc", "bcc")
    )
    if recipients > 1000:
        errors.append({"field": "personalizations", "message": "Too many recipients (max 1000)"})
    scopes = [("", body)] + [(f"personalizations.{i}.", p) for i, p in enumerate(personalizations)]
    for prefix, scope in scopes:
        for key in ("custom_args", "headers"):
            values = scope.get(key) or {}
            if isinstance(values, dict) and not all(isinstance(v, str) for v in values.values()):
                errors.append({"field": prefix + key, "message": f"{key} values must be strings"})
        for name in scope.get("headers") or {}:
            if name.lower() in RESERVED_HEADERS:
                errors.append({"field": prefix + "headers", "message": f"{name} is reserved"})
        substitutions = scope.get("substitutions") or {}
        if len(json.dumps(substitutions).encode()) > 10_000:
            errors.append({"field": prefix + "substitutions", "message": "over 10,000 bytes"})
    return errors


def body_errors(validator: jsonschema_rs.Draft202012Validator, body: Any) -> list[dict[str, Any]]:
    """What the API answers a body with 400 for: schema errors first (field = dotted path),
    then its own rules; [] for a valid body."""
    if not isinstance(body, dict):
        return [{"field": None, "message": "Bad Request: body is not a JSON object"}]
    found = [
        {"field": ".".join(str(p) for p in e.instance_path) or None, "message": e.message}
        for e in validator.iter_errors(body)
    ]
    return found or api_rule_errors(body)


@dataclass(frozen=True)
class Accepted:
    """One request the fake answered 202 to."""

    message_id: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Delivered:
    """One recipient's message, filled in from an accepted request."""

    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    custom_args: dict[str, str]
    message_id: str


@dataclass
class Fault:
    """How to answer instead of 202: a status code, or "hang"."""

    status: int | str
    errors: list[dict[str, Any]] = field(default_factory=list)
    reset_in: float = 1.0  # 429: X-RateLimit-Reset is now + reset_in...
    reset_at: int | None = None  # ...or exactly this Unix time
    accept: bool = False  # a hang after which the message was delivered anyway


class FakeSendGrid:
    """The server's state and its controls; thread-safe."""

    def __init__(
        self, api_key: str = DEFAULT_API_KEY, *, delay: float | Sequence[float] = 0.0,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.delay = delay  # seconds before each answer; a sequence is taken in turn by arrival
        self.hang_seconds = 30.0
        self.validator = load_validator()
        self.invalid: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
        self.refused: list[tuple[int, dict[str, Any]]] = []  # (status, body) of simulated errors
        self.requests = 0
        self.connections = 0
        self.in_flight = 0  # valid requests being answered now
        # For each valid request, in arrival order: how many others were being answered as it
        # arrived (0: the sender's wire was empty; see test_planning_and_sending's waves).
        self.in_flight_at_arrival: list[int] = []
        self._accepted: list[Accepted] = []
        self._plan: deque[Fault | None] = deque()  # None: answer normally
        self._random_fault: tuple[Fault, float, random.Random] | None = None
        self._lock = threading.RLock()  # _arrive takes the next fault inside its own hold
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to give SendGridTransport as `host`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def accepted(self) -> list[Accepted]:
        """A snapshot of every accepted request, in arrival order."""
        with self._lock:
            return list(self._accepted)

    def personalizations(self) -> list[dict[str, Any]]:
        """Every accepted personalization (one per recipient as our transport sends them)."""
        return [p for item in self.accepted for p in item.body["personalizations"]]

    def delivered(self) -> list[Delivered]:
        """Every recipient's message as SendGrid would deliver it: each personalization's
        substitutions filled into subject and content (literally, as SendGrid does), its
        own headers over the request's."""
        found = []
        for item in self.accepted:
            body = item.body
            for person in body["personalizations"]:
                values = person.get("substitutions") or {}

                def fill(text: str, values: dict[str, str] = values) -> str:
                    for placeholder, value in values.items():
                        text = text.replace(placeholder, value)
                    return text

                parts = {part["type"]: fill(part["value"]) for part in body.get("content", [])}
                args = {**body.get("custom_args", {}), **person.get("custom_args", {})}
                found.append(
                    Delivered(
                        to=person["to"][0]["email"],
                        subject=fill(person.get("subject") or body.get("subject", "")),
                        text=parts.get("text/plain", ""),
                        html=parts.get("text/html", ""),
                        headers={**body.get("headers", {}), **person.get("headers", {})},
                        custom_args=args,
                        message_id=item.message_id,
                    )
                )
        return found

    def fail_next(self, status: int | str, n: int = 1, *, after: int = 0, **fault: Any) -> None:
        """Answer `n` valid requests with `status` (400, 429, 500, "hang"...) after `after` 202s."""
        with self._lock:
            self._plan.extend([None] * after)
            self._plan.extend(Fault(status, **fault) for _ in range(n))

    def fail_fraction(
        self, status: int | str, fraction: float, seed: int = 0, **fault: Any
    ) -> None:
        """Answer about `fraction` of later valid requests with `status` (0 turns it off)."""
        with self._lock:
            self._random_fault = (Fault(status, **fault), fraction, random.Random(seed))

    def _arrive(self) -> tuple[Fault | None, float]:
        """A valid request arrives: its answer (a fault, or None for 202) and its delay, both
        taken in arrival order."""
        with self._lock:
            arrival = self.requests
            self.in_flight_at_arrival.append(self.in_flight)
            self.in_flight += 1
            delays = self.delay if isinstance(self.delay, Sequence) else [self.delay]
            return self._next_fault(), delays[arrival % len(delays)]

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            if self._plan:
                return self._plan.popleft()
            if self._random_fault is not None:
                fault, fraction, rng = self._random_fault
                if rng.random() < fraction:
                    return fault
            return None

    def _accept(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        message_id = secrets.token_urlsafe(16)
        with self._lock:
            self._accepted.append(Accepted(message_id, body, headers))
        return message_id

    def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        self._stopping.wait(seconds)

    def start(self) -> FakeSendGrid:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSendGrid:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # The real API's listen queue is deep; the default of 5 overflows when a send run opens its
    # 16-32 connections at once, and the kernel then resets some of them mid-request.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    """POST /v3/mail/send over HTTP/1.1 keep-alive, like the real API."""

    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer
    _on_wire = False  # this request counts in fake.in_flight until its answer is written

    @property
    def fake(self) -> FakeSendGrid:
        return self.server.fake  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake.connections += 1

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests read state, not logs."""

    def _off_wire(self) -> None:
        if self._on_wire:
            self._on_wire = False
            self.fake._leave()

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self._off_wire()  # off the count before the client can read the answer
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:  # the client died mid-request (a killed worker): no request at all
            self.close_connection = True
            return
        fake = self.fake
        if self.path.rstrip("/") != "/v3/mail/send":
            self._reply(404, {"errors": [{"field": None, "message": "not found"}]})
            return
        if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self._reply(401, {"errors": [{"field": None, "message": DENIED, "help": None}]})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        errors = self._validate(body)
        if errors:
            with fake._lock:
                fake.invalid.append((body, errors))
            self._reply(400, {"errors": errors})
            return
        assert isinstance(body, dict)
        fault, delay = fake._arrive()
        self._on_wire = True
        try:
            if delay:
                fake.pause(delay)
            self._answer(fake, body, fault)
        finally:
            self._off_wire()  # no answer written (a dropped connection)

    def _answer(self, fake: FakeSendGrid, body: dict[str, Any], fault: Fault | None) -> None:
        if fault is None:
            message_id = fake._accept(body, dict(self.headers.items()))
            self._reply(202, headers={"X-Message-Id": message_id})
        elif fault.status == "hang":
            fake.pause(fake.hang_seconds)
            if fault.accept:
                fake._accept(body, dict(self.headers.items()))
            self.close_connection = True
        elif fault.status == 429:
            reset = str(fault.reset_at or int(time.time() + fault.reset_in))
            limits = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
            errors = fault.errors or [{"field": None, "message": "too many requests"}]
            self._reply(429, {"errors": errors}, {**limits, "X-RateLimit-Reset": reset})
        else:
            status = int(fault.status)
            with fake._lock:
                fake.refused.append((status, body))
            errors = fault.errors or [{"field": None, "message": f"simulated {status}"}]
            self._reply(status, {"errors": errors})

    def _validate(self, body: Any) -> list[dict[str, Any]]:
        return body_errors(self.fake.validator, body)


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    """A running fake SendGrid; `.url` is the host, `.api_key` the key it accepts."""
    with FakeSendGrid() as fake:
        yield fake


def main() -> None:
    """Serve until interrupted, for benchmarks and manual runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args()
    fake = FakeSendGrid(args.api_key, delay=args.delay_ms / 1000, port=args.port)
    print(f"fake SendGrid on {fake.url} (api key {fake.api_key!r}); Ctrl-C stops", flush=True)
    with fake, contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
