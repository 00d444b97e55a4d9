"""What keeps the pages safe to put on the internet: headers, CSRF, rate limits, body size.

Rate limits count per client network: an IPv4 address, or the /64 of an IPv6 address (one
home or one host gets a whole /64, so per-address buckets would be free to multiply). They
count in Redis when one is configured (DIGEST_RATE_LIMIT_STORAGE_URL, else a redis:// broker
URL), so every web process shares one budget; otherwise, and while that Redis does not answer,
each process counts in its own memory (a sliding window of timestamps per key, bounded). The
per-address limit on confirmation emails is counted in the database and holds globally.

Behind a reverse proxy the client is the proxy unless uvicorn trusts its X-Forwarded-For:
`digest serve --forwarded-allow-ips` (or FORWARDED_ALLOW_IPS) names the proxy's addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
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

log = logging.getLogger("digest.ratelimits")
REDIS_KEY_PREFIX = "digest-ratelimit"
REDIS_RETRY_SECONDS = 15.0  # after Redis fails, count in memory this long before asking again
# A dead Redis must not hold requests up: fail fast, and retry a dropped connection once.
REDIS_CONNECT_TIMEOUT = 0.5
REDIS_TIMEOUT = 1.0


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float


class SlidingWindow:
    """At most `limit.count` hits per key in any `limit.seconds`, in this process's memory;
    memory bounded by max_keys."""

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


def _redacted(url: str) -> str:
    """The URL without its password, for the log."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


class RedisCounters:
    """Sliding windows kept in Redis (the `limits` library's moving window: one list of
    timestamps per key, trimmed and expired by a Lua script), shared by every process that
    names this Redis.

    While Redis does not answer, `hit` answers None and the caller counts in memory: one
    warning when Redis goes, one line when it answers again (asked every
    REDIS_RETRY_SECONDS, so a dead Redis slows no request).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        pool = redis.ConnectionPool.from_url(
            url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1), health_check_interval=30)
        storage = RedisStorage(url, connection_pool=pool, key_prefix=REDIS_KEY_PREFIX,
                               wrap_exceptions=True)
        self._limiter = MovingWindowRateLimiter(storage)
        self._lock = threading.Lock()
        self._down_until: float | None = None  # monotonic; None while Redis answers

    def hit(self, limit: Limit, key: str) -> float | None:
        """0.0 when allowed, seconds to wait when not, None when Redis did not answer."""
        down_until = self._down_until
        if down_until is not None and time.monotonic() < down_until:
            return None
        item = RateLimitItemPerSecond(limit.count, max(1, math.ceil(limit.seconds)))
        try:
            if self._limiter.hit(item, key):
                wait = 0.0
            else:
                reset, _remaining = self._limiter.get_window_stats(item, key)
                wait = max(reset - time.time(), 0.001)  # refused: never 0.0
        except (StorageError, redis.RedisError, OSError) as error:
            self._failed(error)
            return None
        if down_until is not None:
            self._answered()
        return wait

    def _failed(self, error: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
        if first:
            cause = error.storage_error if isinstance(error, StorageError) else error
            reason = (str(cause).splitlines() or [""])[0]
            log.warning("rate limits: Redis at %s does not answer (%s: %s); counting in this "
                        "process's memory until it does", _redacted(self.url),
                        type(cause).__name__, reason)

    def _answered(self) -> None:
        with self._lock:
            back = self._down_until is not None
            self._down_until = None
        if back:
            log.info("rate limits: Redis at %s answers again; counting there",
                     _redacted(self.url))


_counters: dict[str, RedisCounters] = {}
_counters_lock = threading.Lock()


def redis_counters(url: str) -> RedisCounters:
    """One set of counters (one connection pool, one outage warning) per Redis URL and process."""
    with _counters_lock:
        found = _counters.get(url)
        if found is None:
            found = _counters[url] = RedisCounters(url)
        return found


class RateLimiter:
    """At most `limit.count` hits per key in any `limit.seconds`: counted in Redis when
    there is one (shared by every web process), else, or while it is down, in memory."""

    def __init__(self, limit: Limit, redis_url: str = "", *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.shared = redis_counters(redis_url) if redis_url else None
        self.memory = SlidingWindow(limit, max_keys=max_keys)

    def hit(self, key: str) -> float:
        """Count one hit; 0.0 when allowed, else seconds until the next one would be."""
        if self.shared is not None:
            wait = self.shared.hit(self.limit, key)
            if wait is not None:
                return wait
        return self.memory.hit(key)


def network_of(host: str) -> str:
    """Whose bucket an address counts in: an IPv4 address is its own; an IPv6 address counts
    for its /64 (the smallest network a home or a host is given); an IPv4-mapped IPv6 address
    is the IPv4 address. Anything else (a test client's name) is itself."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # without a zone (fe80::1%eth0)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_ip(request: Request) -> str:
    """The client's rate-limit bucket: its IPv4 address or its IPv6 /64 (network_of).

    Behind a proxy the peer is the proxy: uvicorn puts the client from X-Forwarded-For in its
    place only for the proxies it trusts (`digest serve --forwarded-allow-ips`).
    """
    return network_of(request.client.host) if request.client else "unknown"
