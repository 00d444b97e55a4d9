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

The bodies go out over one urllib3 connection pool, kept alive and shared by the sender's
threads. Not httpx (the project's client for fetching feeds): its pool, request models and
cookie handling cost about three times the client CPU per request (bench/http_client.py), and
at one request per one or two digests that was a quarter of a send run's CPU. No retries in
the client: a POST it retried could deliver twice; the ledger retries instead.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from email.utils import parseaddr, quote
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

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
        "from": mailbox(template.sender, quote_name=False),
        "subject": template.subject,
        "content": [{"type": kind, "value": value} for kind, value in parts if value],
    }
    if template.headers:
        body["headers"] = dict(template.headers)
    if template.categories:  # the schema wants them unique
        body["categories"] = list(dict.fromkeys(template.categories))
    return body


def _connection_pool(host: str, timeout: float) -> tuple[urllib3.HTTPConnectionPool, str]:
    """Kept-alive connections to the API and the target to POST to: a request in flight per
    sending thread, and a connection the server closed while idle noticed and replaced before
    use. Through the proxy that HTTPS_PROXY / HTTP_PROXY name, unless NO_PROXY exempts the
    host (as the standard library and other HTTP clients read them)."""
    options: dict[str, Any] = {"maxsize": 32, "block": False, "retries": False,
                               "timeout": urllib3.Timeout(timeout)}
    parts = urlsplit(host)
    path = f"{parts.path.rstrip('/')}/v3/mail/send"
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        pool = urllib3.ProxyManager(proxy, **options).connection_from_url(host)
        # A plain-HTTP request names its whole URL to the proxy; HTTPS goes through a tunnel.
        target = f"{parts.scheme}://{parts.netloc}{path}" if parts.scheme == "http" else path
        return pool, target
    return urllib3.connection_from_url(host, **options), path


class SendGridTransport:
    """Sends through SendGrid's v3 API; one pooled HTTP client per transport, thread-safe."""

    name = "sendgrid"
    batch_limit = MAX_PERSONALIZATIONS
    thread_safe = True  # the urllib3 pool is: senders may keep several requests in flight

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
        self._pool, self._target = _connection_pool(host, timeout)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": "paper-digest",
        }

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._pool.close()

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
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            # assert_same_host off: through a plain-HTTP proxy the target names the API's host.
            response = self._pool.urlopen("POST", self._target, body=data, redirect=False,
                                          headers=self._headers, assert_same_host=False)
        except (ReadTimeoutError, ConnectTimeoutError) as error:
            if isinstance(error, NewConnectionError):  # a refusal, not a timeout
                raise TransientSendError(f"SendGrid unreachable: {error!r}") from error
            raise TransientSendError(f"SendGrid timed out: {error!r}") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:  # reset, DNS, protocol errors
            raise TransientSendError(f"SendGrid unreachable: {error!r}") from error
        if not 200 <= response.status < 300:
            raise self._classify(response)
        # A 2xx without the id still means accepted: raising would only cause a duplicate.
        return str(response.headers.get("X-Message-Id") or "")

    def _classify(self, response: urllib3.BaseHTTPResponse) -> SendError:
        """429 waits for the reset, 5xx/408 retry with backoff, anything else is final."""
        status = response.status
        detail = f"SendGrid {status}: {provider_errors(response.data)}"
        if status == 429:
            return TransientSendError(detail, retry_after=self._retry_after(response.headers))
        if status >= 500 or status == 408:  # 408: the server gave up waiting, not a verdict
            return TransientSendError(detail)
        return PermanentSendError(detail)

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until X-RateLimit-Reset (a Unix timestamp), or None when it is absent."""
        try:
            reset = float(headers.get("X-RateLimit-Reset") or "")
        except ValueError:
            return None
        return max(0.0, reset - self._clock())
