"""SendGrid v3 Mail Send through the official `sendgrid` library, over kept-alive connections."""

from __future__ import annotations

import email.message
import io
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

import httpx
import python_http_client
from python_http_client.exceptions import HTTPError, handle_error
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    CustomArg,
    From,
    Header,
    Mail,
    Personalization,
    Substitution,
    To,
)

from emails.message import Message
from emails.transports.base import (
    PermanentSendError,
    SendError,
    TransientSendError,
    address_problem,
    as_send_error,
)
from emails.transports.throttle import TokenBucket, make_bucket

DEFAULT_HOST = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000  # SendGrid's limit on recipients (and personalizations) per request


@dataclass(frozen=True)
class Recipient:
    """One addressee of a batch: their own placeholder values and their own custom_args."""

    email: str
    substitutions: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None


class BatchSendError(SendError):
    """A batch stopped at a failed request; the recipients before it were accepted."""

    def __init__(self, error: SendError, *, message_ids: list[str], accepted: int) -> None:
        super().__init__(f"{error} (after {accepted} recipients in {len(message_ids)} requests)")
        self.error = error
        self.message_ids = message_ids
        self.accepted = accepted

    @property
    def transient(self) -> bool:
        """Whether retrying the rest later may succeed."""
        return isinstance(self.error, TransientSendError)


class _HttpxReply:
    """The slice of a urllib response that python_http_client.Response reads."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def getcode(self) -> int:
        return self._response.status_code

    def read(self) -> bytes:
        return self._response.content

    def info(self) -> httpx.Headers:
        return self._response.headers


class _KeepAliveClient(python_http_client.Client):
    """python_http_client.Client whose requests go through one shared httpx connection pool."""

    # python_http_client builds a fresh urllib opener per request, and urllib sends
    # `Connection: close`, so every mail would pay a new TCP + TLS handshake. `_make_request` is
    # the seam the library keeps for swapping the transport; everything above it (auth headers,
    # URL building, error classes) stays the library's.

    def __init__(self, *, pool: httpx.Client, **kwargs: Any) -> None:
        self._pool = pool
        super().__init__(**kwargs)

    def _build_client(self, name: str | None = None) -> _KeepAliveClient:
        url_path = self._url_path + [name] if name else self._url_path
        return _KeepAliveClient(
            pool=self._pool,
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
        )

    def _make_request(
        self, opener: object, request: urllib.request.Request, timeout: float | None = None
    ) -> _HttpxReply:
        response = self._pool.request(
            request.get_method(),
            request.full_url,
            headers=request.header_items(),
            content=request.data,  # type: ignore[arg-type]  # bytes, built by the library
            timeout=timeout or self.timeout,
        )
        _raise_for_status(request.full_url, response)
        return _HttpxReply(response)


def _raise_for_status(url: str, response: httpx.Response) -> None:
    """The library's own HTTPError subclasses for 4xx/5xx, as its urllib path would raise."""
    if response.status_code < 400:
        return
    headers = email.message.Message()
    for key, value in response.headers.multi_items():
        headers[key] = value
    error = urllib.error.HTTPError(
        url, response.status_code, response.reason_phrase, headers, io.BytesIO(response.content)
    )
    raise handle_error(error)


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


def _fill(text: str, substitutions: dict[str, str]) -> str:
    """Replace each placeholder the way SendGrid does: literally, no escaping."""
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def _personalization_body(person: Recipient, headers: dict[str, str]) -> dict[str, Any]:
    """The JSON `Personalization(...).get()` makes for a batch recipient, built directly.

    The library's helper objects (an object per address, header, substitution and custom
    arg, then `.get()`) cost about 0.1 s per 1,000 recipients; a plain address skips them.
    """
    if problem := address_problem(person.email):
        raise PermanentSendError(f"cannot send: {problem}")
    if not person.name and _PLAIN_ADDRESS.fullmatch(person.email):
        to = {"email": person.email}  # what parseaddr and To would make of it, 20x faster
    else:  # a display name or anything unusual: the library's own parsing and quoting
        display, addr = parseaddr(person.email)
        to = To(addr or person.email, person.name or display or None).get()
    body: dict[str, Any] = {"to": [to]}
    if headers:
        body["headers"] = {k: _fill(v, person.substitutions) for k, v in headers.items()}
    if person.substitutions:
        body["substitutions"] = dict(person.substitutions)
    if person.tags:  # SendGrid rejects non-string custom_args values.
        body["custom_args"] = {key: str(value) for key, value in person.tags.items()}
    return body


def chunks(
    recipients: Sequence[Recipient], size: int = MAX_PERSONALIZATIONS
) -> Iterator[Sequence[Recipient]]:
    """Consecutive slices of at most `size` recipients."""
    for start in range(0, len(recipients), size):
        yield recipients[start : start + size]


class SendGridTransport:
    """Sends through SendGrid's v3 API; one pooled HTTP client per transport, thread-safe."""

    name = "sendgrid"
    thread_safe = True  # senders may keep several requests in flight through one transport

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
        self._pool = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.api = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        self.api.client = _KeepAliveClient(
            pool=self._pool, host=self.api.host, version=3, timeout=timeout
        )
        self.api.reset_request_headers()  # the library's own Authorization and User-Agent
        self._send_url = f"{self.api.host}/v3/mail/send"
        self._send_headers = {**self.api.client.request_headers, "Content-Type": "application/json"}

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._pool.close()

    def __enter__(self) -> SendGridTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, message: Message) -> str:
        """Send one message; returns SendGrid's X-Message-Id."""
        if problem := address_problem(message.to):
            raise PermanentSendError(f"cannot send: {problem}")
        personalization = self._personalization(
            message.to, None, message.tags, headers=None, substitutions=None
        )
        mail = self._mail(message, [personalization], top_level_headers=True)
        return self._post(mail, recipients=1)

    def send_batch(self, template: Message, recipients: Sequence[Recipient]) -> list[str]:
        """Identical content to many, 1,000 per request; returns one message id per request."""
        # SendGrid fills placeholders (`-unsubscribe_url-`) into subject, text and html from each
        # personalization's substitutions, but not into headers: those are filled in here.
        # `template.to` and `template.tags` are ignored; each recipient brings their own.
        message_ids: list[str] = []
        accepted = 0
        shared = self._mail(template, [], top_level_headers=False).get()
        for chunk in chunks(recipients):
            try:
                personalizations = [_personalization_body(p, template.headers) for p in chunk]
                body = {**shared, "personalizations": personalizations}
                message_ids.append(self._post(body, recipients=len(chunk)))
            except Exception as error:  # whatever it was, the chunks before it were accepted
                failure = as_send_error(error)
                raise BatchSendError(failure, message_ids=message_ids, accepted=accepted) from error
            accepted += len(chunk)
        return message_ids

    @staticmethod
    def _personalization(
        address: str,
        name: str | None,
        tags: dict[str, str],
        *,
        headers: dict[str, str] | None,
        substitutions: dict[str, str] | None,
    ) -> Personalization:
        """One envelope: recipient, custom_args (an object here, unlike the top level)."""
        personalization = Personalization()
        display, addr = parseaddr(address)
        personalization.add_to(To(addr or address, name or display or None))
        for key, value in tags.items():
            # SendGrid rejects non-string custom_args values.
            personalization.add_custom_arg(CustomArg(key, str(value)))
        for key, value in (headers or {}).items():
            personalization.add_header(Header(key, value))
        for key, value in (substitutions or {}).items():
            personalization.add_substitution(Substitution(key, value))
        return personalization

    @staticmethod
    def _mail(
        message: Message, personalizations: list[Personalization], *, top_level_headers: bool
    ) -> Mail:
        """The request body around the given personalizations: text/plain first, then html."""
        name, addr = parseaddr(message.sender)
        mail = Mail(
            from_email=From(addr or message.sender, name or None),
            subject=message.subject,
            plain_text_content=message.text,
            html_content=message.html,
        )
        for index, personalization in enumerate(personalizations):
            # add_personalization inserts at index 0 by default, which would reverse the order.
            mail.add_personalization(personalization, index)
        if top_level_headers:
            for key, value in message.headers.items():
                mail.add_header(Header(key, value))
        for category in message.categories:
            mail.add_category(Category(category))
        return mail

    def _post(self, mail: Mail | dict[str, Any], *, recipients: int) -> str:
        """POST one request body, mapping every failure onto Transient or Permanent."""
        if self._bucket is not None:
            self._bucket.acquire(recipients)
        try:
            response = self._send_body(mail if isinstance(mail, dict) else mail.get())
        except HTTPError as error:
            raise self._classify(error) from error
        except httpx.TimeoutException as error:
            raise TransientSendError(f"SendGrid timed out: {error!r}") from error
        except httpx.TransportError as error:  # refused, reset, DNS, protocol errors
            raise TransientSendError(f"SendGrid unreachable: {error!r}") from error
        # A 2xx without the id still means accepted: raising would only cause a duplicate.
        return str(response.headers.get("X-Message-Id") or "")

    def _send_body(self, body: dict[str, Any]) -> httpx.Response:
        """POST a body the library built, with the library's headers, over the kept-alive pool.

        python_http_client's request path builds a urllib opener per call (scanning the whole
        environment for proxies) and formats the payload into a debug string even with debug
        logging off: about 1 ms of CPU per message, the largest single cost of a send. The
        body, the headers and the error classes stay the library's.
        """
        response = self._pool.post(
            self._send_url, content=json.dumps(body).encode(), headers=self._send_headers
        )
        _raise_for_status(self._send_url, response)
        return response

    def _classify(self, error: HTTPError) -> SendError:
        """429 waits for the reset, 5xx/408 retry with backoff, other 4xx are final."""
        status = int(error.status_code)
        detail = f"SendGrid {status}: {provider_errors(error.body)}"
        if status == 429:
            return TransientSendError(detail, retry_after=self._retry_after(error.headers))
        if status >= 500 or status == 408:  # 408: the server gave up waiting, not a verdict
            return TransientSendError(detail)
        return PermanentSendError(detail)

    def _retry_after(self, headers: Any) -> float | None:
        """Seconds until X-RateLimit-Reset (a Unix timestamp), or None when it is absent."""
        try:
            reset = float(headers.get("X-RateLimit-Reset"))
        except (TypeError, ValueError, AttributeError):
            return None
        return max(0.0, reset - self._clock())
