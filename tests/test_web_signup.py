"""The signup page through FastAPI's TestClient: headers, CSRF, honeypot, duplicate signups
that look identical, hostile keywords, the preview, per-IP and per-address limits, health.

The helpers the test_web_* files share live in tests/support/web_app.py.
"""

from __future__ import annotations

from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import Status, Subscriber
from subscribers.web.app import create_app
from subscribers.web.pages import WebLimits
from subscribers.web.security import CSRF_COOKIE, Limit
from tests.support.web_app import client_for, form_token, free_period_slots, rows, signup_form

# The `web` and `both` fixtures come from tests/conftest.py (defined in tests/support/web_app.py).


# --- tests -----------------------------------------------------------------------------------


def test_pages_carry_security_headers(web: Settings) -> None:
    client = client_for(web)
    for url in ("/", "/static/site.css", "/no-such-page", "/check-your-inbox"):
        response = client.get(url)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    page = client.get("/").text
    assert "<script>" not in page and " style=" not in page and "onclick" not in page


def test_the_form_offers_suggestions_from_stored_papers(web: Settings) -> None:
    page = client_for(web).get("/").text
    assert 'name="add" value="speech synthesis"' in page
    assert 'data-detect="1"' in page  # the script may replace UTC with the browser's zone
    assert '<option value="Europe/Paris"' in page


def test_preview_shows_matches_and_why_without_javascript(web: Settings) -> None:
    client = client_for(web)
    by_link = client.get("/", params={"keywords": "voice cloning"}).text
    assert "Voice cloning from three seconds of audio" in by_link
    assert '<span class="chip">voice cloning</span>' in by_link
    # The no-JS Preview button posts, so a typed address never ends up in a URL.
    posted = client.post("/preview", data=signup_form(form_token(client), keywords="prosody",
                                                      add="voice cloning"))
    assert posted.status_code == 200
    assert "Prosody control for expressive speech synthesis" in posted.text
    assert "Voice cloning from three seconds" in posted.text
    assert 'value="ada@example.org"' in posted.text
    assert rows(web, Subscriber) == 0
    fragment = client.get("/preview/fragment", params={"keywords": "voice cloning"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Voice cloning from three seconds" in fragment.text


def test_signup_stores_a_pending_subscriber_and_plans_the_confirmation(both: Settings) -> None:
    client = client_for(both)
    response = client.post("/subscribe", data=signup_form(form_token(client)),
                           follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/check-your-inbox")
    with session_scope(both.sqlalchemy_url) as session:
        ada = session.exec(select(Subscriber)).one()
        assert (ada.email, ada.status, ada.keywords, ada.timezone, ada.monthly) == (
            "ada@example.org", Status.pending, ["speech synthesis", "TTS"], "Europe/Paris", True)
        [mail] = session.exec(select(ledger.Delivery)).all()
        assert (mail.kind, mail.status) == ("confirm", ledger.DeliveryStatus.planned)
    assert "Check your inbox" in client.get("/check-your-inbox").text


def test_a_duplicate_signup_looks_exactly_like_a_new_one(both: Settings) -> None:
    def attempt(email: str, keywords: str) -> tuple[int, str, dict[str, str], str]:
        client = client_for(both)
        response = client.post("/subscribe", data=signup_form(
            form_token(client), email=email, keywords=keywords), follow_redirects=False)
        headers = {k: v for k, v in response.headers.items() if k not in ("date",)}
        landing = client.get(response.headers["location"]).text
        return response.status_code, response.text, headers, landing

    first = attempt("ada@example.org", "speech synthesis")
    stranger = attempt("grace@example.org", "sound event")
    again = attempt("ada@example.org", "attacker keywords")
    assert first == again == stranger
    with session_scope(both.sqlalchemy_url) as session:
        ada = session.exec(select(Subscriber).where(Subscriber.email == "ada@example.org")).one()
        # Still unconfirmed, so the newest signup's choices win (issue 16): the confirmation
        # shows them before anything is sent. An active reader's profile is never changed
        # this way (tests/test_resignup.py).
        assert ada.status == Status.pending
        assert ada.keywords == ["attacker keywords"]


def test_csrf_is_required_and_checked(web: Settings) -> None:
    client = client_for(web)
    token = form_token(client)
    missing = client.post("/subscribe", data=signup_form(""))
    assert missing.status_code == 400 and "expired" in missing.text
    stranger = client_for(web)
    stolen = stranger.post("/subscribe", data=signup_form(token))  # another visitor's cookie
    assert stolen.status_code == 400
    cross_site = client.post("/subscribe", data=signup_form(token),
                             headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 400
    fetch_meta = client.post("/subscribe", data=signup_form(token),
                             headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"})
    assert fetch_meta.status_code == 400
    assert rows(web, Subscriber) == 0
    ok = client.post("/subscribe", data=signup_form(token), follow_redirects=False,
                     headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 303
    assert rows(web, Subscriber) == 1
    assert client.cookies.get(CSRF_COOKIE)


def test_the_honeypot_answers_like_success_and_stores_nothing(web: Settings) -> None:
    client = client_for(web)
    response = client.post("/subscribe", data=signup_form(form_token(client),
                                                          website="http://spam.example"),
                           follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/check-your-inbox")
    assert rows(web, Subscriber) == 0 and rows(web, ledger.Delivery) == 0


@pytest.mark.parametrize(("fields", "message"), [
    ({"email": "Ada <ada@example.org>"}, "plain email address"),
    ({"email": "ada@example.org\r\nBcc: eve@example.org"}, "plain email address"),
    ({"email": "not-an-address"}, "not valid"),
    ({"email": ""}, "Enter your email"),
    ({"keywords": ""}, "at least one keyword"),
    ({"keywords": "x" * 200}, "under 100 characters"),
    ({"keywords": ",".join(f"topic {n}" for n in range(25))}, "at most 20"),
    ({"timezone": "Mars/Olympus_Mons"}, "time zone"),
    ({"send_hour": "25"}, "hour"),
    ({"frequency": "hourly"}, "daily or weekly"),
])
def test_invalid_input_is_explained_and_nothing_is_stored(
    web: Settings, fields: dict[str, str], message: str
) -> None:
    client = client_for(web)
    response = client.post("/subscribe", data=signup_form(form_token(client), **fields))
    assert response.status_code == 400
    assert message in unescape(response.text)
    assert 'role="alert"' in response.text and 'aria-invalid="true"' in response.text
    assert rows(web, Subscriber) == 0


def test_hostile_keywords_are_plain_text_everywhere(web: Settings) -> None:
    client = client_for(web)
    hostile = ["<script>alert(1)</script>", "(a+)+$", ".*", "[speech", "synthesis\\", "x" * 100]
    response = client.post("/subscribe", data=signup_form(form_token(client),
                                                          keywords="\n".join(hostile)),
                           follow_redirects=False)
    assert response.status_code == 303
    with session_scope(web.sqlalchemy_url) as session:
        assert session.exec(select(Subscriber)).one().keywords == hostile
    for text in ("\n".join(hostile), ",".join(["(a+)+$"] * 3 + ["x" * 200] * 2 + ["k"] * 30)):
        preview = client.get("/preview/fragment", params={"keywords": text})
        assert preview.status_code == 200
        assert "<script>alert" not in preview.text
        echoed = client.get("/", params={"keywords": text})
        assert echoed.status_code == 200
        assert "<script>alert" not in echoed.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(
        "/", params={"keywords": hostile[0]}).text
    # ".*" is not a regex: it matches no paper, where a regex would match them all.
    assert "None of the" in client.get("/preview/fragment", params={"keywords": ".*"}).text


def test_signups_are_rate_limited_per_ip(web: Settings) -> None:
    client = client_for(web, WebLimits(signup=Limit(3, 600)))
    token = form_token(client)
    statuses = [client.post("/subscribe", data=signup_form(token, email=f"u{n}@example.org"),
                            follow_redirects=False).status_code for n in range(5)]
    assert statuses == [303, 303, 303, 429, 429]
    limited = client.post("/subscribe", data=signup_form(token, email="late@example.org"))
    assert int(limited.headers["retry-after"]) > 0
    assert rows(web, Subscriber) == 3


def test_an_address_gets_at_most_three_confirmations_a_day(both: Settings) -> None:
    client = client_for(both)
    token = form_token(client)
    for n in range(6):
        # Each with other keywords: the same signup twice in a row is one email anyway.
        response = client.post("/subscribe", data=signup_form(token, keywords=f"topic {n}"),
                               follow_redirects=False)
        assert response.status_code == 303  # the answer never changes
        free_period_slots(both)
    with session_scope(both.sqlalchemy_url) as session:
        kinds = list(session.exec(select(ledger.Delivery.kind)))
    assert kinds == ["confirm"] * 3


def test_oversized_bodies_are_refused(web: Settings) -> None:
    client = client_for(web)
    response = client.post("/subscribe", data=signup_form(form_token(client),
                                                          keywords="k," * 40_000))
    assert response.status_code == 413


def test_healthz_checks_the_database(web: Settings) -> None:
    response = client_for(web).get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == "ok"
    broken = web.model_copy(update={"database_url": "postgresql+psycopg://127.0.0.1:9/nowhere"})
    down = TestClient(create_app(broken)).get("/healthz")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"


def test_openapi_describes_the_real_routes(web: Settings) -> None:
    schema = client_for(web).get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/", "/subscribe", "/confirm/{token}", "/manage/{token}",
                 "/unsubscribe/{token}", "/healthz", "/preview/fragment"):
        assert path in paths, path
    one_click = paths["/unsubscribe/{token}"]["post"]
    body = one_click["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    assert "List-Unsubscribe" in schema["components"]["schemas"][ref]["properties"]
    assert "404" in paths["/manage/{token}"]["get"]["responses"]
    assert set(paths["/subscribe"]["post"]["responses"]) >= {"303", "400", "429"}
