"""SendGrid v3 Mail Send: the JSON body built here, POSTed over kept-alive connections.

No `sendgrid` library. Its mail helpers build an object per address, header, substitution
and custom arg only to turn them back into these dicts (about 0.1 s per 1,000 recipients),
and its HTTP client (python_http_client) opens a fresh urllib connection per request with
`Connection: close`, so the transport had come to bypass both. The body is a small JSON
document with a public schema (twilio/sendgrid-oai `tsg_mail_v3.json`, a copy in
tests/data/sendgrid/); the test server validates every body this module sends against it.

One builder, `mail_body`, serves `send` (one personalization) and `send_batch` (up to 1,000
per request): the shared render once, then per recipient their address, substitutions
(SendGrid fills them literally into subject and content, see emails/links.py), the headers
their substitutions change (SendGrid does not fill headers, so they are filled here) and
custom_args.

The bodies go out through libcurl (pycurl): a handle per request in flight, each keeping its
connection alive, taken and given back by the sender's threads. libcurl does the HTTP exchange
in C without the GIL, so the threads no longer queue for it; with the body encoded by orjson
a request costs about a third of the client CPU it cost over urllib3's pool and the standard
json module, and urllib3 in turn a third of httpx (bench/http_client.py). At one request per
one or two digests, the hand-over is the largest part of a sender's CPU.

Retries belong to the ledger (back-off, attempts, a row's outcome), with one exception libcurl
makes and has no option to turn off: when a kept-alive connection it reused closes before any
byte of the answer, it sends the request once more on a fresh connection. That is the failure
the ledger would retry after its back-off, so it sends nothing twice that the ledger would not;
connections idle for more than `MAX_IDLE_SECONDS` are not reused, which keeps the race with a
server's idle timeout (its usual cause) rare. tests/test_sendgrid_connections.py pins it.
"""

from __future__ import annotations

import io
import json
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from email.utils import parseaddr, quote
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
import pycurl

from emails.message import Message
from emails.transports.base import (
    BatchSendError,
    PermanentSendError,
    Recipient,
    SendError,
    TransientSendError,
    address_problem,
    as_send_error,
)
from emails.transports.throttle import TokenBucket, make_bucket

DEFAULT_HOST = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000  # SendGrid's limit on recipients (and personalizations) per request
MAX_IDLE_SECONDS = 30  # seconds idle before a connection is dropped, not reused: under the
# idle timeouts of load balancers (60 s and more), so the server rarely closes one first

_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')  # RFC 5322 specials: email.utils quotes on these
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def provider_errors(body: bytes | str | None) -> str:
    """SendGrid's `{"errors": [{"message", "field"}]}` as one line, else the raw body (short)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(text)["errors"]
        parts = []
        for item in errors:
            field_name = item.get("field")
            suffix = f" (field: {field_name})" if field_name not in (None, "", "null") else ""
            parts.append(f"{item.get('message', '?')}{suffix}")
        return "; ".join(parts) or text[:500]
    except (ValueError, KeyError, TypeError, AttributeError):
        return text[:500]


def mailbox(address: str, name: str | None = None, *, quote_name: bool = True) -> dict[str, str]:
    """`{"email", "name"}` from `Name <addr>` (or a bare address and a separate name).

    SendGrid writes a recipient's name into the To: header as given, so a name with a comma
    or another RFC 5322 special would read as more mailboxes: it goes quoted, as
    `email.utils.formataddr` would quote it (without RFC 2047-encoding: the API does that).
    The sender's name is left as it is: SendGrid quotes the From: header itself.
    """
    if problem := address_problem(address):
        raise PermanentSendError(f"cannot send: {problem}")
    if not name and _PLAIN_ADDRESS.fullmatch(address):
        return {"email": address}  # the common case, 20x faster than parsing
    if _CONTROL.search(address):  # parseaddr would pick some mailbox out of it
        raise PermanentSendError(f"cannot send: a control character in {address!r}")
    display, addr = parseaddr(address)
    found: dict[str, str] = {"email": addr or address}
    if text := " ".join((name or display).split()):  # no CR/LF reaches a header
        found["name"] = f'"{quote(text)}"' if quote_name and _SPECIALS.search(text) else text
    return found


@lru_cache(maxsize=16)
def _sender(address: str) -> dict[str, str]:
    """The From mailbox, parsed once per process: every request has it, and a sender with a
    name ("Paper Digest <digest@...>") goes through `parseaddr`, which costs more than the
    rest of a two-recipient body."""
    return mailbox(address, quote_name=False)


def _personalization(
    person: Recipient, headers: Mapping[str, str], tags: Mapping[str, str]
) -> dict[str, Any]:
    """One envelope: address, substitutions, the headers they change, custom_args."""
    entry: dict[str, Any] = {"to": [mailbox(person.email, person.name)]}
    values = person.substitutions
    if values:
        entry["substitutions"] = dict(values)
        own = {}
        for key, value in headers.items():
            filled = value
            for placeholder, replacement in values.items():
                filled = filled.replace(placeholder, replacement)
            if filled != value:
                own[key] = filled  # overrides the top-level header for this recipient
        if own:
            entry["headers"] = own
    args = {**tags, **person.tags}
    if args:  # SendGrid rejects values that are not strings
        entry["custom_args"] = {key: str(value) for key, value in args.items()}
    return entry


def mail_body(template: Message, recipients: Sequence[Recipient]) -> dict[str, Any]:
    """The POST /v3/mail/send body: the shared render once, one personalization each.

    `template.to` is ignored (each recipient brings their address); `template.tags` go to
    every recipient under their own tags, as `emails.links.fill` merges them. The top-level
    `custom_args` is never used (the published schema types it as a string). text/plain
    comes before text/html, as the API requires; an empty part is left out.
    """
    parts = (("text/plain", template.text), ("text/html", template.html))
    body: dict[str, Any] = {
        "personalizations": [
            _personalization(person, template.headers, template.tags) for person in recipients
        ],
        "from": dict(_sender(template.sender)),  # a copy: the body is the caller's to change
        "subject": template.subject,
        "content": [{"type": kind, "value": value} for kind, value in parts if value],
    }
    if template.headers:
        body["headers"] = dict(template.headers)
    if template.categories:  # the schema wants them unique
        body["categories"] = list(dict.fromkeys(template.categories))
    return body


def _proxy_for(host: str) -> str:
    """The proxy HTTPS_PROXY / HTTP_PROXY name for this API host, unless NO_PROXY exempts it
    (as the standard library reads them, either case); "" for none. Set on every handle, so
    libcurl's own reading of the environment (lower-case http_proxy only) never applies."""
    parts = urlsplit(host)
    proxy = urllib.request.getproxies().get(parts.scheme, "")
    return "" if not proxy or urllib.request.proxy_bypass(parts.hostname or "") else proxy


def _trusted_certificates() -> list[tuple[int, str]]:
    """The certificate authorities Python's ssl trusts here (SSL_CERT_FILE, the system
    store), so HTTPS to the API is verified as the standard library would verify it."""
    paths = ssl.get_default_verify_paths()
    found = [(pycurl.CAINFO, paths.cafile), (pycurl.CAPATH, paths.capath)]
    return [(option, path) for option, path in found if path]


class _Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Handles:
    """libcurl handles, each keeping its connection to the API alive between requests. A
    thread takes one for a request and gives it back; up to `keep` wait idle, the rest are
    closed (as many connections as requests were ever in flight at once, at most `keep`)."""

    def __init__(self, url: str, headers: list[str], timeout: float, keep: int = 32) -> None:
        self._options: list[tuple[int, Any]] = [
            (pycurl.URL, url),
            # HTTP/1.1 as the tests speak it (libcurl would offer HTTP/2 over TLS)
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.HTTPHEADER, headers),
            (pycurl.PROXY, _proxy_for(url)),
            (pycurl.NOPROXY, ""),  # the exemptions are read once, by `_proxy_for`
            (pycurl.MAXAGE_CONN, MAX_IDLE_SECONDS),
            (pycurl.CONNECTTIMEOUT_MS, int(timeout * 1000)),
            (pycurl.TIMEOUT_MS, int(timeout * 1000)),  # the whole request, answer included
            (pycurl.NOSIGNAL, 1),  # timeouts without SIGALRM: handles live in threads
            *_trusted_certificates(),
        ]
        self._idle: list[pycurl.Curl] = []
        self._keep = keep
        self._closed = False
        self._lock = threading.Lock()

    def take(self) -> pycurl.Curl:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        handle = pycurl.Curl()
        for option, value in self._options:
            handle.setopt(option, value)
        return handle

    def give_back(self, handle: pycurl.Curl) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._keep:
                self._idle.append(handle)
                return
        handle.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for handle in idle:
            handle.close()


def _exchange(handle: pycurl.Curl, data: bytes) -> _Reply:
    """POST `data` on this handle (libcurl runs it without the GIL) and read the answer."""
    headers: dict[str, str] = {}

    def header(line: bytes) -> None:
        text = line.decode("latin-1").strip()
        if text.startswith("HTTP/"):  # a new answer: a proxy's reply to CONNECT came first
            headers.clear()
        elif ":" in text:
            name, _, value = text.partition(":")
            headers[name.strip().lower()] = value.strip()

    body = io.BytesIO()
    handle.setopt(pycurl.POSTFIELDS, data)
    handle.setopt(pycurl.WRITEDATA, body)
    handle.setopt(pycurl.HEADERFUNCTION, header)
    handle.perform()
    return _Reply(int(handle.getinfo(pycurl.RESPONSE_CODE)), headers, body.getvalue())


class SendGridTransport:
    """Sends through SendGrid's v3 API; one pool of kept-alive handles, thread-safe.
    `timeout`: the seconds one request may take, connecting and the answer included."""

    name = "sendgrid"
    batch_limit = MAX_PERSONALIZATIONS
    thread_safe = True  # each request has a handle of its own: several may be in flight

    def __init__(
        self,
        api_key: str,
        host: str = DEFAULT_HOST,
        timeout: float = 10.0,
        max_per_second: float | None = None,
        *,
        throttle: TokenBucket | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock  # wall clock: X-RateLimit-Reset is a Unix timestamp
        self._bucket = throttle or make_bucket(max_per_second)
        headers = [
            f"Authorization: Bearer {api_key}",
            "Content-Type: application/json",
            "User-Agent: paper-digest",
            "Expect:",  # no 100-continue round trip before a large body
        ]
        self._handles = _Handles(f"{host.rstrip('/')}/v3/mail/send", headers, timeout)

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._handles.close()

    def __enter__(self) -> SendGridTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, message: Message) -> str:
        """Send one message; returns SendGrid's X-Message-Id."""
        return self._post(mail_body(message, [Recipient(email=message.to)]), recipients=1)

    def send_batch(self, template: Message, recipients: Sequence[Recipient]) -> list[str]:
        """One shared render to many, 1,000 per request; one message id per request."""
        message_ids: list[str] = []
        accepted = 0
        for start in range(0, len(recipients), self.batch_limit):
            chunk = recipients[start : start + self.batch_limit]
            try:
                message_ids.append(self._post(mail_body(template, chunk), recipients=len(chunk)))
            except Exception as error:  # whatever it was, the requests before it were accepted
                failure = as_send_error(error)
                raise BatchSendError(failure, message_ids=message_ids, accepted=accepted) from error
            accepted += len(chunk)
        return message_ids

    def _post(self, body: dict[str, Any], *, recipients: int) -> str:
        """POST one body, mapping every failure onto Transient or Permanent."""
        if self._bucket is not None:
            self._bucket.acquire(recipients)
        data = orjson.dumps(body)
        handle = self._handles.take()
        try:
            reply = _exchange(handle, data)
        except BaseException as error:
            handle.close()  # never reuse a connection left in an unknown state
            if not isinstance(error, pycurl.error):
                raise
            code, reason = error.args
            if code == pycurl.E_OPERATION_TIMEDOUT:
                raise TransientSendError(f"SendGrid timed out: {reason}") from error
            # Refused, reset, DNS, TLS, a proxy that failed: retried after the back-off.
            raise TransientSendError(f"SendGrid unreachable: {reason}") from error
        self._handles.give_back(handle)
        if not 200 <= reply.status < 300:
            raise self._classify(reply)
        # A 2xx without the id still means accepted: raising would only cause a duplicate.
        return reply.headers.get("x-message-id", "")

    def _classify(self, reply: _Reply) -> SendError:
        """429 waits for the reset, 5xx/408 retry with backoff, anything else is final."""
        status = reply.status
        detail = f"SendGrid {status}: {provider_errors(reply.body)}"
        if status == 429:
            return TransientSendError(detail, retry_after=self._retry_after(reply.headers))
        if status >= 500 or status == 408:  # 408: the server gave up waiting, not a verdict
            return TransientSendError(detail)
        return PermanentSendError(detail)

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until X-RateLimit-Reset (a Unix timestamp), or None when it is absent."""
        try:
            reset = float(headers.get("x-ratelimit-reset") or "")
        except ValueError:
            return None
        return max(0.0, reset - self._clock())
