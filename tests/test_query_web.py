"""Query syntax in the signup form, the manage page's validation and the preview's feedback."""

from __future__ import annotations

from html import unescape

import pytest

from core.settings import Settings
from subscribers.models import Subscriber
from subscribers.service import InvalidInput, parse_keywords
from tests.support.web_app import client_for, form_token, rows, signup_form, web

__all__ = ["web"]  # the fixture, re-exported for pytest


@pytest.mark.parametrize(("keywords", "message"), [
    ("speech synthesis\nauthor:", "author: needs a name after it, like author:Hinton."),
    ("cat:speech synthesis", "is not an arXiv category; write it like cat:cs.SD."),
    ('"voice cloning', "Close the quote"),
    ("-survey", "Give at least one keyword that is not a -negative."),
])
def test_malformed_terms_are_explained_on_signup_and_nothing_is_stored(
    web: Settings, keywords: str, message: str
) -> None:
    client = client_for(web)
    response = client.post("/subscribe", data=signup_form(form_token(client), keywords=keywords))
    assert response.status_code == 400
    assert message in unescape(response.text)
    assert rows(web, Subscriber) == 0


def test_the_service_validation_the_manage_page_uses_refuses_malformed_terms() -> None:
    assert parse_keywords('"flow matching", -survey, author:Núñez, cat:cs.SD') == [
        '"flow matching"', "-survey", "author:Núñez", "cat:cs.SD"
    ]
    with pytest.raises(InvalidInput, match="author: needs a name"):
        parse_keywords(["TTS", "author: "])


def test_the_preview_says_which_keywords_matched_nothing_in_30_days(web: Settings) -> None:
    client = client_for(web)
    page = client.get("/preview/fragment",
                      params={"keywords": "voice cloning, zzqx widgetry, -survey"}).text
    assert "Voice cloning from three seconds of audio" in page
    assert "No paper in the last 30 days matched <strong>zzqx widgetry</strong>" in page
    assert "survey" not in page.split("matched", 1)[1].split(".", 1)[0]  # negatives not listed
    quiet = client.get("/preview/fragment", params={"keywords": "voice cloning"}).text
    assert "No paper in the last 30 days" not in quiet
    # A malformed term in the live preview is dropped, not a server error.
    broken = client.get("/preview/fragment", params={"keywords": "voice cloning, author:"})
    assert broken.status_code == 200 and "Voice cloning from three" in broken.text


def test_preview_applies_negatives_authors_and_categories(web: Settings) -> None:
    client = client_for(web)
    page = client.get("/preview/fragment", params={"keywords": "speech synthesis, -survey"}).text
    assert "Prosody control for expressive speech synthesis" in page
    assert "A survey of speech synthesis evaluation" not in page
    by_author = client.get("/preview/fragment", params={"keywords": "author:alan TURING"}).text
    assert "Voice cloning from three seconds of audio" in by_author


def test_the_manage_page_explains_malformed_terms_and_saves_trending_only(web: Settings) -> None:
    from core.db import session_scope
    from tests.support.web_app import confirmed_reader, csrf_of, manage_path

    sid = confirmed_reader(web, "ada@example.org", ["voice cloning"])
    client = client_for(web)
    manage = manage_path(web, sid)
    page = client.get(manage).text
    assert 'name="trending" value="yes"' in page
    form = {"csrf": csrf_of(page), "frequency": "daily", "monthly": "yes", "timezone": "UTC",
            "send_hour": "7"}
    bad = client.post(manage, data=form | {"keywords": "voice cloning\nauthor:"})
    assert bad.status_code == 400 and "author: needs a name" in unescape(bad.text)
    saved = client.post(manage, data=form | {"keywords": "", "trending": "yes"},
                        follow_redirects=False)
    assert saved.status_code == 303
    with session_scope(web.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, sid)
        assert subscriber is not None and subscriber.trending_only and subscriber.keywords == []
