"""Issue 5's "done means", as an editor would: a month of bookmarks in, two suggestions fixed,
approved, sent once to everyone who opted in, then readable in the archive and its feed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from html import escape

import feedparser
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.clippings.imports import import_clips
from digest.clippings.issue import approve_issue, draft_issue, get_issue
from digest.clippings.models import Clip, ClipKind
from digest.clippings.store import enrich_clips, list_clips, update_clip
from digest.papers import Paper
from emails.transports.sendgrid import SendGridTransport
from subscribers.models import Status
from subscribers.monthly import plan_monthly
from subscribers.web.app import create_app
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.monthly_data import add_subscribers
from workers import jobs, sending
from workers.demo import sample_corpus_path

MONTH = "2026-04"
LINKS = [
    ("https://github.com/k2-fsa/OmniVoice", "GitHub - k2-fsa/OmniVoice: multilingual TTS"),
    ("https://huggingface.co/KittenML/kitten-tts-nano-0.1", "KittenML/kitten-tts-nano-0.1"),
    ("https://blog.example.com/posts/kv-cache?utm_source=x", "Notes on KV caches"),
]


def bookmarks_file(papers: list[Paper]) -> str:
    """A Firefox-style export: a month of arXiv papers (one saved twice, as a PDF) and links."""
    saved = int(datetime(2026, 4, 2, 9, tzinfo=UTC).timestamp())
    rows = [
        f'<DT><A HREF="https://arxiv.org/abs/{p.arxiv_id}" ADD_DATE="{saved + i * 86000}">'
        f"[{p.arxiv_id}] {escape(p.title)}</A>"
        for i, p in enumerate(papers)
    ]
    pdf = f"https://arxiv.org/pdf/{papers[0].arxiv_id}v2"
    rows.append(f'<DT><A HREF="{pdf}" ADD_DATE="{saved}">pdf</A>\n<DD>read this one again')
    rows += [f'<DT><A HREF="{url}" ADD_DATE="{saved}">{escape(title)}</A>' for url, title in LINKS]
    body = "\n        ".join(rows)
    return ("<!DOCTYPE NETSCAPE-Bookmark-file-1>\n<TITLE>Bookmarks</TITLE>\n<H1>Bookmarks</H1>\n"
            f'<DL><p>\n    <DT><H3 ADD_DATE="{saved}">April</H3>\n    <DL><p>\n        {body}\n'
            "    </DL><p>\n</DL><p>\n")


def test_an_editors_month(migrated: Settings, fake_sendgrid: FakeSendGrid) -> None:
    settings = migrated
    jobs.ingest_document(settings=settings, location=str(sample_corpus_path()))
    with session_scope(settings.sqlalchemy_url) as session:
        papers = list(session.exec(select(Paper).order_by(Paper.arxiv_id).limit(24)))
        for paper in papers:
            session.expunge(paper)

    # 1. Import the month's bookmarks; the store fills in the papers, suggestions follow.
    with session_scope(settings.sqlalchemy_url) as session:
        report = import_clips(session=session, text=bookmarks_file(papers),
                              filename="bookmarks.html")
        assert (report.added, report.merged, report.errors) == (27, 1, [])
        clips = list_clips(session=session, month=MONTH)  # ADD_DATE put them all in April
        enrich_clips(session=session, settings=settings, clips=clips, fetch=False)
    with session_scope(settings.sqlalchemy_url) as session:
        clips = list_clips(session=session, month=MONTH)
        by_paper = {c.arxiv_id: c for c in clips if c.arxiv_id}
        assert len(by_paper) == 24 and len(clips) == 27
        for paper in papers:
            clip = by_paper[paper.arxiv_id]
            assert clip.title == paper.title and clip.abstract == paper.abstract
            assert clip.summary and clip.suggested_section
        assert "read this one again" in by_paper[papers[0].arxiv_id].note
        links = [c for c in clips if c.kind == ClipKind.link]
        assert len(links) == 3 and all(c.topic for c in links)

        # 2. Fix two suggestions: one paper's section, another's tags.
        first, second = by_paper[papers[1].arxiv_id], by_paper[papers[2].arxiv_id]
        moved_to = next(s for s in ("Multimodal", "Other") if s != first.suggested_section)
        update_clip(session=session, clip_id=first.id or 0, changes={"section": moved_to})
        update_clip(session=session, clip_id=second.id or 0,
                    changes={"tags": ["Speech Tokenization"], "kind": ClipKind.highlight,
                             "summary": "Written up by the editor."})
        # Re-sorting later never undoes the editor.
        enrich_clips(session=session, settings=settings, clips=clips, fetch=False)
    with session_scope(settings.sqlalchemy_url) as session:
        first_clip = session.get(Clip, first.id)
        second_clip = session.get(Clip, second.id)
        assert first_clip and first_clip.effective_section == moved_to
        assert second_clip and second_clip.effective_tags == ["Speech Tokenization"]

        # 3. Draft and approve.
        draft_issue(session=session, month=MONTH, intro="April: speech that talks back.")
        issue = approve_issue(session=session, month=MONTH)
        content = issue.content
        assert content["title"] == "Clippings - April 2026"
        section = next(s for s in content["sections"] if s["name"] == moved_to)
        assert papers[1].title in [p["title"] for p in section["papers"]]
        assert [h["title"] for h in content["highlights"]] == [papers[2].title]
        assert sum(len(g["links"]) for g in content["also"]) == 3

        # 4. The audience: three who opted in, and three who must not get it.
        wanted = {p.email for p in add_subscribers(session, 3)}
        add_subscribers(session, 1, prefix="optout", monthly=False)
        add_subscribers(session, 1, prefix="pending", status=Status.pending)
        add_subscribers(session, 1, prefix="left", status=Status.unsubscribed)

    # 5. Send through the ledger to the local SendGrid, twice: the second run sends nothing.
    with session_scope(settings.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None
        assert plan_monthly(session=session, issue=issue) == 3
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url) as transport:
        assert sending.send_due(settings=settings, transport=transport).sent == 3
        assert sending.send_due(settings=settings, transport=transport).handled == 0
    with session_scope(settings.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None
        assert plan_monthly(session=session, issue=issue) == 0
    assert fake_sendgrid.invalid == []
    received = Counter(p["to"][0]["email"] for p in fake_sendgrid.personalizations())
    assert received == Counter(wanted)

    # 6. The archive and its feed show the issue, with the editor's choices.
    client = TestClient(create_app(settings))
    listing = client.get("/archive")
    assert listing.status_code == 200 and "Clippings - April 2026" in listing.text
    page = client.get(f"/archive/{issue.slug}")
    assert page.status_code == 200
    assert escape(papers[1].title, quote=False) in page.text
    assert escape("Written up by the editor.") in page.text
    feed = feedparser.parse(client.get("/archive/feed.xml").content)
    assert not feed.bozo and [e.title for e in feed.entries] == ["Clippings - April 2026"]
    assert feed.entries[0].link == f"{settings.public_url}/archive/{issue.slug}"
