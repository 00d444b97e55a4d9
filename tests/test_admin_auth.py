"""Admin authentication: no /admin page or action without a login, enumerated from the router.

Also: 404 everywhere when no password is set, forged / expired / revoked / old-password
session cookies refused, CSRF on every form, the login limit, cookie attributes, the API token.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from typer.testing import CliRunner

from core.settings import Settings
from subscribers.web.admin.auth import SESSION_COOKIE, safe_next
from subscribers.web.admin.passwords import (
    BadHash,
    check_password,
    configured_hash,
    hash_password,
    parse_hash,
)
from subscribers.web.app import create_app
from tests.support.admin_helpers import (
    API_TOKEN,
    PASSWORD,
    admin_settings,
    client_for,
    csrf_of,
    login,
)
from tests.support.schema import upgrade_from_template
from workers.cli import app as cli_app
from workers.migrate import upgrade

SAMPLE = {"clip_id": "1", "month": "2026-04", "subscriber_id": "1"}
PUBLIC = {("GET", "/admin/login"), ("POST", "/admin/login")}


@pytest.fixture
def admin_env(settings: Settings, sqlite_template: Path) -> Settings:
    upgrade_from_template(settings, sqlite_template)
    return admin_settings(settings)


def _flat(routes: list[Any]) -> list[Any]:
    """The app's routes with included routers opened (FastAPI keeps them nested; our admin
    routers carry their /admin prefix themselves and are included without another one)."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += _flat(list(included.routes)) if included is not None else [route]
    return flat


def admin_routes(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /admin, path parameters filled in."""
    found = []
    for route in _flat(list(create_app(settings).routes)):
        if isinstance(route, APIRoute) and route.path.startswith("/admin"):
            path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], route.path)
            found += [(method, path) for method in sorted(route.methods)]
    return found


def test_no_admin_page_or_action_without_login(admin_env: Settings) -> None:
    routes = admin_routes(admin_env)
    # The enumeration is real: the pages, the actions and the API are all in it.
    assert len(routes) >= 20
    for expected in [("GET", "/admin/subscribers"), ("POST", "/admin/subscribers/import"),
                     ("POST", "/admin/clips/1/move"), ("POST", "/admin/issues/2026-04/send"),
                     ("POST", "/admin/api/clips"), ("GET", "/admin/subscribers.csv")]:
        assert expected in routes
    client = client_for(admin_env)
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        answer = client.request(method, path, data={"csrf": "x", "url": "https://a.example"})
        assert answer.status_code in (303, 401, 404), (method, path, answer.status_code)
        if answer.status_code == 303:
            assert answer.headers["location"].startswith("/admin/login"), (method, path)
        if path.startswith("/admin/api"):
            assert answer.status_code == 401, path
    # Every path with the other method too: never anything but a refusal.
    for path in {path for _, path in routes}:
        for method in ("GET", "POST", "PUT", "DELETE"):
            if (method, path) in PUBLIC:
                continue
            answer = client.request(method, path, data={"csrf": "x"})
            assert answer.status_code in (303, 401, 404, 405), (method, path)
    # A cross-site arrival (the bookmarklet) hops once, then meets the login.
    hop = client.get("/admin/clips/new?url=https://a.example", headers={
        "sec-fetch-site": "cross-site"})
    assert hop.status_code == 200 and "Log in" not in hop.text
    assert hop.headers["refresh"] == "0;url=/admin/clips/new?url=https://a.example"


def test_everything_is_404_without_a_password(settings: Settings) -> None:
    upgrade(settings)
    client = client_for(settings)
    for method, path in admin_routes(settings):
        answer = client.request(method, path, data={"csrf": "x"},
                                headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 404, (method, path)


def test_login_sets_a_strict_httponly_cookie_and_logout_revokes_it(admin_env: Settings) -> None:
    client = client_for(admin_env)
    token = csrf_of(client.get("/admin/login").text)
    wrong = client.post("/admin/login", data={"csrf": token, "password": "nope", "next": "/"})
    assert wrong.status_code == 400 and "not right" in wrong.text
    assert SESSION_COOKIE not in client.cookies
    answer = client.post("/admin/login", data={"csrf": token, "password": PASSWORD,
                                               "next": "/admin/clips?month=2026-04"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/clips?month=2026-04"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # http public url
    session = client.cookies[SESSION_COOKIE]
    assert client.get("/admin/subscribers").status_code == 200
    page_token = csrf_of(client.get("/admin").text)
    assert client.post("/admin/logout", data={"csrf": page_token}).status_code == 303
    client.cookies.set(SESSION_COOKIE, session, path="/admin")  # a copy kept by a thief
    assert client.get("/admin/subscribers").status_code == 303


def test_secure_cookie_on_https(settings: Settings) -> None:
    upgrade(settings)
    https = admin_settings(settings, public_url="https://digest.example")
    client = client_for(https)
    token = csrf_of(client.get("/admin/login").text)
    answer = client.post("/admin/login", data={"csrf": token, "password": PASSWORD})
    assert "Secure" in answer.headers["set-cookie"]


class OldSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 13 * 3600


def _cookie(settings: Settings, data: Any, *, signer: type = TimestampSigner,
            keys: list[str] | None = None) -> str:
    serializer = URLSafeTimedSerializer(keys or settings.signing_keys(),
                                        salt="digest.admin-session", signer=signer)
    return str(serializer.dumps(data))


def test_forged_expired_and_old_password_cookies_are_refused(admin_env: Settings) -> None:
    client = client_for(admin_env)
    login(client)
    good = client.cookies[SESSION_COOKIE]
    fingerprint = create_app(admin_env).state.admin.fingerprint
    bad = {
        "forged": _cookie(admin_env, {"sid": "x", "pw": fingerprint}, keys=["another-key"]),
        "expired": _cookie(admin_env, {"sid": "x", "pw": fingerprint}, signer=OldSigner),
        "old password": _cookie(admin_env, {"sid": "x", "pw": "0" * 16}),
        "not a dict": _cookie(admin_env, ["x"]),
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "garbage": "not-a-cookie",
    }
    fresh = client_for(admin_env)
    for why, value in bad.items():
        fresh.cookies.set(SESSION_COOKIE, value, path="/admin")
        answer = fresh.get("/admin/subscribers")
        assert answer.status_code == 303, why
    # The same valid structure signed properly, with an unexpired timestamp, is accepted.
    fresh.cookies.set(SESSION_COOKIE, _cookie(admin_env, {"sid": "y", "pw": fingerprint}),
                      path="/admin")
    assert fresh.get("/admin/subscribers").status_code == 200
    # Changing the password ends every session.
    changed = client_for(admin_settings(admin_env, admin_password="a different password!"))
    changed.cookies.set(SESSION_COOKIE, good, path="/admin")
    assert changed.get("/admin/subscribers").status_code == 303


def test_csrf_is_required_on_every_admin_form(admin_env: Settings) -> None:
    client = client_for(admin_env)
    token = login(client)
    posts = [("/admin/clips/new", {"url": "https://arxiv.org/abs/2604.01234", "month": "2026-04"}),
             ("/admin/subscribers/import", {"text": "email,keywords\na@b.example,tts\n"}),
             ("/admin/issues/2026-04/draft", {"intro": "hi"}), ("/admin/logout", {})]
    for path, data in posts:
        for csrf in ("", "forged." + token[7:], token + "x"):
            answer = client.post(path, data={**data, "csrf": csrf})
            assert answer.status_code == 400, (path, csrf)
    # Nothing happened: no clip, no subscriber, still logged in.
    assert "No clips for 2026-04" in client.get("/admin/clips?month=2026-04").text
    assert "a@b.example" not in client.get("/admin/subscribers").text
    # A cross-site POST with a valid token is refused too (Origin checked).
    answer = client.post("/admin/clips/new", data={"csrf": token, "url": "https://x.example"},
                         headers={"origin": "https://evil.example"})
    assert answer.status_code == 400
    login_token = csrf_of(client_for(admin_env).get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": "", "password": PASSWORD}).status_code == 400
    assert login_token


def test_login_attempts_are_limited_per_ip(admin_env: Settings) -> None:
    client = client_for(admin_env)
    token = csrf_of(client.get("/admin/login").text)
    codes = [client.post("/admin/login", data={"csrf": token, "password": f"guess {n}"})
             .status_code for n in range(11)]
    assert codes[:10] == [400] * 10 and codes[10] == 429
    # Even the right password waits now.
    assert client.post("/admin/login", data={"csrf": token, "password": PASSWORD}
                       ).status_code == 429


def test_api_token(admin_env: Settings) -> None:
    client = client_for(admin_env)
    body = {"url": "https://arxiv.org/abs/2604.01234"}
    assert client.post("/admin/api/clips", json=body).status_code == 401
    wrong = client.post("/admin/api/clips", json=body,
                        headers={"Authorization": "Bearer " + API_TOKEN[:-1]})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    basic = client.post("/admin/api/clips", json=body,
                        headers={"Authorization": "Basic " + API_TOKEN})
    assert basic.status_code == 401
    # A browser session is not an API credential.
    login(client)
    assert client.post("/admin/api/clips", json=body).status_code == 401
    off = client_for(admin_settings(admin_env, admin_api_token=""))
    assert off.post("/admin/api/clips", json=body,
                    headers={"Authorization": "Bearer "}).status_code == 404


def test_password_hashes() -> None:
    stored = hash_password(PASSWORD)
    encoded = stored.encode()
    assert encoded.startswith("scrypt$16384$8$1$") and PASSWORD not in encoded
    parsed = parse_hash(encoded)
    assert check_password(parsed, PASSWORD)
    assert not check_password(parsed, PASSWORD + " ")
    assert not check_password(parsed, "")
    assert configured_hash("") is None
    assert check_password(configured_hash(PASSWORD) or parsed, PASSWORD)
    for bad in ["scrypt$1$8$1$abc$def", "scrypt$x$8$1$abc$def", "bcrypt$...", "scrypt$16384$8$1"]:
        with pytest.raises(BadHash):
            parse_hash(bad)


def test_precomputed_hash_logs_in_and_a_bad_one_fails_at_startup(settings: Settings) -> None:
    upgrade(settings)
    result = CliRunner().invoke(cli_app, ["admin", "hash-password", "--stdin"],
                                input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    encoded = result.output.strip()
    client = client_for(admin_settings(settings, admin_password=encoded))
    login(client)
    assert client.get("/admin/subscribers").status_code == 200
    with pytest.raises(BadHash):
        create_app(admin_settings(settings, admin_password="scrypt$broken"))
    short = CliRunner().invoke(cli_app, ["admin", "hash-password", "--stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    help_text = CliRunner().invoke(cli_app, ["admin", "hash-password", "--help"]).output
    assert "Example: digest admin hash-password" in help_text


def test_no_open_redirect_after_login() -> None:
    for target in ["https://evil.example/admin", "//evil.example/admin", "/\\evil.example",
                   "/admin/login?next=/x", "/elsewhere", "admin", "/admin\r\nSet-Cookie: x=1"]:
        assert safe_next(target) == "/admin", target
    assert safe_next("/admin/clips/new?url=x") == "/admin/clips/new?url=x"
