"""What keeps the pages safe to put on the internet: headers, CSRF, rate limits, body size.

Rate limits are per process and in memory (a sliding window of timestamps per key): enough
for one web process, and a restart forgets them. With several web processes behind a load
balancer each enforces its own window, so the effective limit is multiplied by their count;
the per-address limit on confirmation emails is counted in the database and holds globally.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "digest_csrf"
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 2 * 24 * 3600  # a form left open over a weekend still works on Monday
MAX_BODY_BYTES = 64 * 1024  # the largest honest form is 20 keywords of 100 characters

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Links carry secret tokens: never leak them to arXiv or anyone else in a Referer.
    # (same-origin rather than no-referrer: with no-referrer browsers send `Origin: null`.)
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class BodyTooLarge(Exception):
    """A request body over the cap."""


class SecurityHeaders:
    """Pure ASGI middleware: security headers on every response, and a cap on body size.

    `route_limits` gives a path its own cap (the provider webhook takes batches far larger
    than any form).
    """

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES,
                 route_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.route_limits = dict(route_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_body = self.route_limits.get(scope["path"], self.max_body)
        received = 0
        started = False

        async def capped_receive() -> Message:
            # A chunked body has no Content-Length: count as it arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise BodyTooLarge()
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length", b"0")
        try:
            if declared.isdigit() and int(declared) > max_body:
                raise BodyTooLarge()
            await self.app(scope, capped_receive, send_with_headers)
        except BodyTooLarge:
            if started:
                raise
            await Response("Request too large.", status_code=413,
                           headers={"Connection": "close"})(scope, receive, send_with_headers)


# --- CSRF: signed double-submit ---------------------------------------------------------------


class Csrf:
    """A random nonce in a cookie, and the same nonce signed in each form; both must agree.

    A page on another site can make a browser POST here but can neither read our cookie nor
    forge the signature; Origin and Sec-Fetch-Site, when the browser sends them, must say the
    request came from our own pages.
    """

    def __init__(self, keys: list[str], *, public_url: str) -> None:
        self._serializer = URLSafeTimedSerializer(list(reversed(keys)), salt="digest.csrf")
        parts = urlsplit(public_url)
        self.public_origin = f"{parts.scheme}://{parts.netloc}"
        self.secure = parts.scheme == "https"

    def nonce(self, request: Request) -> tuple[str, bool]:
        """The visitor's nonce and whether it is new (then the response must set the cookie)."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if 20 <= len(current) <= 100 and current.replace("-", "").replace("_", "").isalnum():
            return current, False
        return secrets.token_urlsafe(32), True

    def token(self, nonce: str) -> str:
        return str(self._serializer.dumps(nonce))

    def set_cookie(self, response: Response, nonce: str) -> None:
        response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="lax",
                            secure=self.secure, path="/")

    def _same_origin(self, request: Request) -> bool:
        """What the browser says about where the POST came from, when it says anything."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            # Older browsers send none, privacy settings send "null": the cookie and the
            # signature still have to match.
            return True
        own = f"{request.url.scheme}://{request.url.netloc}"
        return origin in (own, self.public_origin)

    def verify(self, request: Request, form_token: str) -> bool:
        """True when the form's token is ours, fresh, and matches the cookie."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not form_token or not self._same_origin(request):
            return False
        try:
            signed = self._serializer.loads(form_token, max_age=CSRF_MAX_AGE)
        except BadData:
            return False
        return isinstance(signed, str) and secrets.compare_digest(signed, cookie)


# --- rate limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float


class SlidingWindow:
    """At most `limit.count` hits per key in any `limit.seconds`; memory bounded by max_keys."""

    def __init__(self, limit: Limit, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> float:
        """Count one hit; 0.0 when allowed, else seconds until the next one would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.limit.seconds:
                hits.popleft()
            wait = 0.0
            if len(hits) >= self.limit.count:
                wait = hits[0] + self.limit.seconds - now
            else:
                hits.append(now)
            self._hits[key] = hits  # most recently used last
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return max(wait, 0.0)


def client_ip(request: Request) -> str:
    """The peer address (behind a proxy, run uvicorn with --proxy-headers so it is the real one)."""
    return request.client.host if request.client else "unknown"
