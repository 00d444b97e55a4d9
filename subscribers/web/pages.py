"""Server-rendered pages: one Jinja environment, and the responses every route shares."""

from __future__ import annotations

import threading
import zoneinfo
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import make_url
from sqlmodel import Session

from core.db import session_scope
from core.settings import Settings
from emails.render import short_date
from subscribers.service import time_zones
from subscribers.web.preview import PreviewService
from subscribers.web.security import Csrf, Limit, RateLimiter

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SERVICE_NAME = "Paper Digest"
COMMON_ZONES = ("UTC", "America/Los_Angeles", "America/New_York", "Europe/London",
                "Europe/Paris", "Asia/Shanghai", "Asia/Tokyo")


@dataclass(frozen=True)
class WebLimits:
    """Per-client limits: per IPv4 address or IPv6 /64, shared through Redis when one is
    configured, else per process (security.py)."""

    signup: Limit = Limit(20, 600)  # signups per IP per 10 minutes: a lab behind one NAT fits
    actions: Limit = Limit(60, 600)  # confirm / manage form posts per IP per 10 minutes
    preview: Limit = Limit(120, 60)  # live-preview requests per IP per minute
    mails_per_day: int = 3  # confirmation emails per address per day (counted in the DB)


@dataclass
class WebState:
    """What every route needs, made once by create_app."""

    settings: Settings
    csrf: Csrf
    preview: PreviewService
    limits: WebLimits
    signup_window: RateLimiter
    actions_window: RateLimiter
    preview_window: RateLimiter
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def keys(self) -> list[str]:
        return self.settings.signing_keys()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session for a request that writes, committed before the response is built.

        SQLite takes one writer at a time and makes the others sleep and retry with growing
        back-off; taking turns on a lock in this process instead keeps the slowest signup
        under load at a fraction of a second instead of seconds (bench/signup_load.py).
        """
        url = self.settings.sqlalchemy_url
        if make_url(url).get_backend_name() != "sqlite":
            with session_scope(url) as session:
                yield session
            return
        with self._write_lock, session_scope(url) as session:
            yield session

    def reading(self) -> AbstractContextManager[Session]:
        """A session for a request that only reads."""
        return session_scope(self.settings.sqlalchemy_url)


def state(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


@cache
def zone_choices() -> tuple[str, ...]:
    """Common zones first, then every IANA zone alphabetically."""
    rest = sorted(zone for zone in time_zones() if zone not in COMMON_ZONES and "/" in zone)
    return (*COMMON_ZONES, *rest)


def local_today(zone: str) -> date:
    """Today in the subscriber's own time zone (a pause starts on their calendar)."""
    try:
        return datetime.now(zoneinfo.ZoneInfo(zone)).date()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return datetime.now(zoneinfo.ZoneInfo("UTC")).date()


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
_env.globals.update(service_name=SERVICE_NAME, human_date=short_date, zone_choices=zone_choices,
                    hours=[(h, f"{h:02d}:00") for h in range(24)])


def render(name: str, context: dict[str, Any]) -> str:
    return _env.get_template(name).render(**context)


def page(request: Request, name: str, context: dict[str, Any], *, status: int = 200,
         with_form: bool = False, private: bool = False,
         headers: dict[str, str] | None = None) -> HTMLResponse:
    """A full page; forms get a CSRF token (and the cookie when the visitor has none yet)."""
    web = state(request)
    nonce, new_nonce = web.csrf.nonce(request) if with_form else ("", False)
    context = {"csrf_token": web.csrf.token(nonce) if with_form else "",
               "postal_address": web.settings.postal_address, **context}
    response = HTMLResponse(render(name, context), status_code=status, headers=headers)
    if new_nonce:
        web.csrf.set_cookie(response, nonce)
    if with_form or private:
        # Pages with a token in the URL or a CSRF token in the body belong to one person.
        response.headers["Cache-Control"] = "no-store"
    if private:
        response.headers["X-Robots-Tag"] = "noindex"
    return response


def message_page(request: Request, *, title: str, paragraphs: list[str], status: int = 200,
                 link: tuple[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> HTMLResponse:
    """A short page that only says something (errors, done, gone)."""
    return page(request, "message.html", {"title": title, "paragraphs": paragraphs,
                                          "link": link}, status=status, private=True,
                headers=headers)


INVALID_LINK_STATUS = 404
# What the OpenAPI schema says about the HTML answers, so it stays truthful.
Responses = dict[int | str, dict[str, Any]]
HTML_DOC: dict[str, Any] = {"content": {"text/html": {}}}
INVALID_DOC: Responses = {INVALID_LINK_STATUS: {
    "description": "Invalid, expired or orphaned link (one page for every case)", **HTML_DOC}}
ACTED_DOC: Responses = {
    303: {"description": "Done: on to the next page"},
    400: {"description": "Fix the form (re-rendered with messages)", **HTML_DOC},
    429: {"description": "Too many requests from this network", **HTML_DOC},
    **INVALID_DOC,
}


def invalid_link(request: Request) -> HTMLResponse:
    """The one answer to a tampered, truncated, wrong-purpose, expired or orphaned token.

    Byte for byte the same whatever went wrong, so it tells nobody which it was.
    """
    return message_page(
        request, status=INVALID_LINK_STATUS, title="This link doesn't work",
        paragraphs=["It may have been cut short when it was copied, or it has expired "
                    "(confirmation links last 7 days).",
                    "Your latest email from us has links that work. To sign up again, start "
                    "from the home page."],
        link=("/", "Go to the home page"),
    )


def too_many(request: Request, wait: float) -> HTMLResponse:
    seconds = max(1, int(wait + 0.999))
    return message_page(
        request, status=429, title="Too many requests",
        paragraphs=["That was a lot of requests from your network in a short time. "
                    f"Please wait {seconds} seconds and try again."],
        headers={"Retry-After": str(seconds)},
    )
