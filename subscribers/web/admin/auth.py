"""Who may use /admin: one password, a signed expiring session cookie, a Bearer token for the API.

No password configured means no admin at all: every /admin route answers 404, so a default
install exposes nothing. The session cookie is signed with DIGEST_SECRET_KEYS (itsdangerous),
expires after DIGEST_ADMIN_SESSION_HOURS, and carries a fingerprint of the password hash, so
changing the password ends every session; logout revokes the session id in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadData, URLSafeTimedSerializer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from core.settings import Settings
from subscribers.web.account import Stop
from subscribers.web.admin.passwords import (
    PasswordHash,
    check_password,
    check_token,
    configured_hash,
    token_digest,
)
from subscribers.web.pages import page, state, too_many
from subscribers.web.security import Limit, RateLimiter, client_ip

SESSION_COOKIE = "digest_admin"
LOGIN_LIMIT = Limit(10, 600)  # password attempts per IP (IPv6: per /64) per 10 minutes
MAX_REVOKED = 10_000


@dataclass
class AdminState:
    """Made once at startup by install(): the password is hashed here, the plain text dropped."""

    password: PasswordHash | None
    api_token: bytes | None
    sessions: URLSafeTimedSerializer
    max_age: int
    secure: bool
    # Names the configured password in session cookies, so a new password ends old sessions:
    # an HMAC under the secret key (the cookie is signed, not encrypted) that every web
    # process computes alike, unlike the hash of a plain password, whose salt is random.
    fingerprint: str = ""
    login_window: RateLimiter = field(default_factory=lambda: RateLimiter(LOGIN_LIMIT))
    _revoked: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke(self, session_id: str) -> None:
        with self._lock:
            self._revoked[session_id] = None
            while len(self._revoked) > MAX_REVOKED:
                self._revoked.popitem(last=False)

    def is_revoked(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._revoked


def admin_state_for(settings: Settings) -> AdminState:
    """The admin state for these settings (raises ValueError on a malformed scrypt string)."""
    keys = settings.signing_keys()
    return AdminState(
        password=configured_hash(settings.admin_password),
        api_token=token_digest(settings.admin_api_token) if settings.admin_api_token else None,
        sessions=URLSafeTimedSerializer(list(reversed(keys)), salt="digest.admin-session"),
        max_age=max(60, int(settings.admin_session_hours * 3600)),
        secure=urlsplit(settings.public_url).scheme == "https",
        fingerprint=hmac.new(keys[0].encode(), b"admin-session:" + settings.admin_password
                             .encode(), hashlib.sha256).hexdigest()[:16],
        login_window=RateLimiter(LOGIN_LIMIT, settings.rate_limit_redis_url),
    )


def admin(request: Request) -> AdminState:
    found: AdminState = request.app.state.admin
    return found


def new_session_cookie(st: AdminState) -> str:
    return str(st.sessions.dumps({"sid": secrets.token_urlsafe(16), "pw": st.fingerprint}))


def session_id(request: Request) -> str | None:
    """The session id of a valid, unexpired, unrevoked admin cookie, else None."""
    st = admin(request)
    raw = request.cookies.get(SESSION_COOKIE, "")
    if not raw or st.password is None or len(raw) > 500:
        return None
    try:
        data = st.sessions.loads(raw, max_age=st.max_age)
    except BadData:
        return None
    if not isinstance(data, dict):
        return None
    sid, fingerprint = data.get("sid"), data.get("pw")
    if not isinstance(sid, str) or not isinstance(fingerprint, str):
        return None
    if not secrets.compare_digest(fingerprint, st.fingerprint) or st.is_revoked(sid):
        return None
    return sid


def safe_next(target: str) -> str:
    """Only our own admin pages are valid places to go after login (no open redirect)."""
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or "\\" in target or not target.startswith("/admin")
            or target.startswith("/admin/login") or any(ord(c) < 32 for c in target)):
        return "/admin"
    return target


def require_admin(request: Request) -> None:
    """Dependency of every admin page: 404 without a password, else a valid session or login."""
    if admin(request).password is None:
        raise HTTPException(404)
    if session_id(request) is not None:
        return
    if request.method != "GET":
        raise Stop(RedirectResponse("/admin/login", status_code=303))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/admin/login?next={quote(target, safe='')}"
    if request.headers.get("sec-fetch-site") == "cross-site":
        # A bookmarklet's navigation from another site carries no SameSite=Strict cookie:
        # one same-site hop makes the browser send it, and only then do we ask for a login.
        raise Stop(page(request, "admin/hop.html", {"target": target}, private=True,
                        headers={"Refresh": f"0;url={target}"}))
    raise Stop(RedirectResponse(login, status_code=303))


def require_api_token(request: Request) -> None:
    """Dependency of the JSON API: 404 when no token is configured, 401 without the right one."""
    expected = admin(request).api_token
    if expected is None:
        raise Stop(JSONResponse({"error": "not found"}, status_code=404))
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip() or not check_token(expected, given.strip()):
        raise Stop(JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="digest-admin"'}))


Admin = Annotated[None, Depends(require_admin)]

login_router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False)


class LoginFields(BaseModel):
    csrf: str = Field("", max_length=500)
    password: str = Field("", max_length=1024)
    next: str = Field("/admin", max_length=2000)


def _login_page(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
    return page(request, "admin/login.html", {"next": safe_next(next_url), "error": error},
                status=status, with_form=True, private=True)


@login_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/admin") -> Response:  # noqa: A002
    if admin(request).password is None:
        raise HTTPException(404)
    if session_id(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next)


@login_router.post("/login", response_class=HTMLResponse)
def login(request: Request, fields: Annotated[LoginFields, Form()]) -> Response:
    st = admin(request)
    if st.password is None:
        raise HTTPException(404)
    wait = st.login_window.hit(f"admin-login:{client_ip(request)}")
    if wait:
        return too_many(request, wait)
    if not state(request).csrf.verify(request, fields.csrf):
        return _login_page(request, fields.next, "The form had expired. Please try again.", 400)
    if not check_password(st.password, fields.password):
        return _login_page(request, fields.next, "That password is not right.", 400)
    response = RedirectResponse(safe_next(fields.next), status_code=303)
    set_session_cookie(response, st)
    return response


def set_session_cookie(response: Response, st: AdminState) -> None:
    response.set_cookie(SESSION_COOKIE, new_session_cookie(st), max_age=st.max_age,
                        httponly=True, samesite="strict", secure=st.secure, path="/admin")


class CsrfOnly(BaseModel):
    csrf: str = Field("", max_length=500)


def check_csrf(request: Request, token: str) -> None:
    """Every admin form POST: the shared signed double-submit CSRF check."""
    if not state(request).csrf.verify(request, token):
        raise Stop(page(request, "admin/message.html", {
            "title": "Please try again", "text": "This form had expired, or your browser "
            "blocked the cookie it needs. Go back, reload the page and submit again.", "nav": ""},
            status=400, private=True))


def logout_response(request: Request, fields: CsrfOnly) -> Response:
    check_csrf(request, fields.csrf)
    sid = session_id(request)
    if sid:
        admin(request).revoke(sid)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin", secure=admin(request).secure,
                           httponly=True, samesite="strict")
    return response


def admin_page(request: Request, name: str, context: dict[str, Any], *,
               status: int = 200) -> HTMLResponse:
    """An admin page: always with a CSRF token (logout is a form on every page), never cached."""
    return page(request, name, context, status=status, with_form=True, private=True)
