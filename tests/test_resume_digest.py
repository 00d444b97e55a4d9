"""The manage page says which lists a reader gets, and turns the keyword digest back on.

A reader who stopped the digest alone (from a real digest's one-click unsubscribe) sees
"You get: the monthly issue. You stopped the keyword digest on ..." and a "Resume the
keyword digest" button: a CSRF-guarded, rate-limited POST that sets the digest back on and
records the consent event; GET changes nothing, forged links and tokens change nothing, and
the next daily plan includes the reader again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import unescape

import pytest

from core.settings import Settings
from emails.render import short_date
from subscribers.models import ConsentEvent, Status
from subscribers.tokens import Purpose
from subscribers.web.pages import WebLimits
from subscribers.web.security import Limit
from tests.support.lists import daily_email, last_consent, one_click, stored, subscribed
from tests.support.tokens import forged_tokens, manage, snapshot, token
from tests.support.web_app import DAY, client_for, csrf_of, rows
from workers import planning

RESUME = "Resume the keyword digest"


def digest_stopped(settings: Settings) -> int:
    """Ada gets both lists, then stops the digest alone from a real digest email."""
    sid = subscribed(settings)
    assert one_click(settings, daily_email(settings)) == 200
    ada = stored(settings)
    assert (ada.status, ada.digest, ada.monthly) == (Status.active, False, True)
    return sid


def test_the_page_says_which_lists_the_reader_gets(web: Settings) -> None:
    sid = subscribed(web)
    text = unescape(client_for(web).get(f"/manage/{token(web, Purpose.manage, sid)}").text)
    assert "You get: the keyword digest and the monthly issue." in text
    assert RESUME not in text and "You stopped" not in text
    assert one_click(web, daily_email(web)) == 200
    text = unescape(client_for(web).get(f"/manage/{token(web, Purpose.manage, sid)}").text)
    today = short_date(datetime.now(UTC).date())
    assert (f"You get: the monthly issue. You stopped the keyword digest on {today}."
            in " ".join(text.split()))
    assert RESUME in text


def test_the_button_resumes_the_digest_and_the_next_plan_includes_the_reader(
        web: Settings) -> None:
    sid = digest_stopped(web)
    assert planning.plan_daily(settings=web, day=DAY, dry_run=True).due == 0
    client = client_for(web)
    url, csrf = manage(client, web, sid)
    events = rows(web, ConsentEvent)
    done = client.post(f"{url}/resume-digest", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{url}?done=digest-resumed"
    ada = stored(web)
    assert (ada.status, ada.digest, ada.monthly) == (Status.active, True, True)
    assert last_consent(web) == ("resubscribe", "manage-link", "digest")
    assert rows(web, ConsentEvent) == events + 1
    text = unescape(client.get(done.headers["location"]).text)
    assert "The keyword digest is back on" in text
    assert "You get: the keyword digest and the monthly issue." in text
    assert RESUME not in text
    # A repeat (a double-click) changes nothing more.
    client.post(f"{url}/resume-digest", data={"csrf": csrf})
    assert rows(web, ConsentEvent) == events + 1
    # The planner counts Ada again (today's digest is already in the ledger).
    report = planning.plan_daily(settings=web, day=DAY)
    assert (report.due, report.already_planned) == (1, 1)


def test_get_changes_nothing(web: Settings) -> None:
    sid = digest_stopped(web)
    client = client_for(web)
    before = snapshot(web)
    url, _ = manage(client, web, sid)
    assert client.get(f"{url}/resume-digest").status_code in (404, 405)
    assert client.get(url).status_code == 200
    assert snapshot(web) == before


def test_forged_tokens_and_missing_csrf_are_refused(
        web: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = digest_stopped(web)
    client = client_for(web)
    url, csrf = manage(client, web, sid)
    before = snapshot(web)
    for name, bad in forged_tokens(web, sid, Purpose.manage, monkeypatch).items():
        response = client.post(f"/manage/{bad}/resume-digest", data={"csrf": csrf})
        assert response.status_code == 404, name
    for forged_csrf in ("", "forged", csrf[:-2] + "xx"):
        response = client.post(f"{url}/resume-digest", data={"csrf": forged_csrf})
        assert response.status_code == 400, forged_csrf
        assert "Please try again" in response.text
    # A CSRF token from another browser (without its cookie) is refused too.
    assert client_for(web).post(f"{url}/resume-digest", data={"csrf": csrf}).status_code == 400
    assert snapshot(web) == before
    assert stored(web).digest is False


def test_the_post_is_rate_limited_like_the_other_manage_posts(web: Settings) -> None:
    sid = digest_stopped(web)
    client = client_for(web, limits=WebLimits(actions=Limit(1, 600)))
    url = f"/manage/{token(web, Purpose.manage, sid)}"
    csrf = csrf_of(client.get(url).text)
    assert client.post(f"{url}/pause", data={"csrf": csrf, "weeks": "1"}).status_code == 200
    before = snapshot(web)
    limited = client.post(f"{url}/resume-digest", data={"csrf": csrf})
    assert limited.status_code == 429
    assert snapshot(web) == before
