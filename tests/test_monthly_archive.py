"""The public archive: list, web version and Atom feed (parsed back with feedparser)."""

from __future__ import annotations

import feedparser
from fastapi.testclient import TestClient

from core.db import session_scope
from core.settings import Settings
from digest.clippings.issue import approve_issue, draft_issue, get_issue
from digest.clippings.models import ClipKind
from subscribers.monthly import plan_monthly
from subscribers.web.app import create_app
from tests.support.monthly_data import HOSTILE, clip, sample_clips


def _issue(settings: Settings, month: str, *, send: bool, hostile: bool = False) -> None:
    with session_scope(settings.sqlalchemy_url) as session:
        clips = sample_clips(month)
        if hostile:
            clips.append(
                clip(month, n=77, kind=ClipKind.highlight, title=HOSTILE, summary=HOSTILE,
                     links={"code": "javascript:alert(1)", "demo": "https://ok.example/d"})
            )  # fmt: skip
        session.add_all(clips)
        draft_issue(session=session, month=month, intro=f"Intro of {month}. {HOSTILE}")
        if send:
            approve_issue(session=session, month=month)
            issue = get_issue(session=session, month=month)
            assert issue is not None
            plan_monthly(session=session, issue=issue)


def test_archive_pages_show_only_sent_issues(migrated: Settings) -> None:
    _issue(migrated, "2026-03", send=True)
    _issue(migrated, "2026-04", send=True, hostile=True)
    _issue(migrated, "2026-05", send=False)
    client = TestClient(create_app(migrated))
    index = client.get("/archive")
    assert index.status_code == 200
    assert index.text.index("Clippings - April 2026") < index.text.index("Clippings - March 2026")
    assert "May 2026" not in index.text
    page = client.get("/archive/2026-04")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)" in html
    assert "\u202e" not in html and "javascript:" not in html
    assert 'href="https://ok.example/d">[Demo]' in html
    for part in ("Highlights", "Research papers", "Speech &amp; Audio", "Also worth a look",
                 "NAR models predict tokens in parallel.", "[Code]", "[Project]"):  # fmt: skip
        assert part in html, part
    assert client.get("/archive/2026-05").status_code == 404  # a draft is not out yet
    assert client.get("/archive/nope").status_code == 404
    assert client.post("/archive/2026-04").status_code == 405


def test_feed_parses_back(migrated: Settings) -> None:
    _issue(migrated, "2026-03", send=True)
    _issue(migrated, "2026-04", send=True, hostile=True)
    _issue(migrated, "2026-05", send=False)
    response = TestClient(create_app(migrated)).get("/archive/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    assert "<script>" not in response.text  # the markup travels escaped
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.id == "http://digest.test/archive"
    assert [e.id for e in feed.entries] == [
        "http://digest.test/archive/2026-04",
        "http://digest.test/archive/2026-03",
    ]
    newest = feed.entries[0]
    assert newest.title == "Clippings - April 2026"
    assert newest.link == "http://digest.test/archive/2026-04"
    assert newest.updated_parsed is not None and feed.feed.updated_parsed is not None
    content = newest.content[0]
    assert content.type == "text/html"
    assert "&lt;script&gt;alert" in content.value and "<script" not in content.value
    assert "Research papers" in content.value and "VoiceOne" in content.value
    assert newest.summary.startswith("Intro of 2026-04.")
    self_links = [link.href for link in feed.feed.links if link.rel == "self"]
    assert self_links == ["http://digest.test/archive/feed.xml"]
