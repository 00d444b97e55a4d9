"""Trending: the daily papers JSON over a local HTTP server, parsed, stored, re-ingested."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pytest_httpserver import HTTPServer
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.papers import Paper, PaperIn, upsert_papers
from digest.ranking import PaperIndex, rank_keywords
from digest.sources.fetch import FetchError
from digest.sources.trending import (
    TrendingError,
    fetch_trending,
    parse_trending,
    trending_url,
)
from digest.trending import TrendingScore, store_trending, top_trending, trending_on
from tests.support.trending_data import DAILY, DAY, item


def serve(httpserver: HTTPServer, body: bytes | str, status: int = 200) -> str:
    httpserver.expect_request("/api/daily_papers", query_string=f"date={DAY}").respond_with_data(
        body, status=status, content_type="application/json"
    )
    return httpserver.url_for("/api/daily_papers")


def test_fetch_parses_a_realistic_day(httpserver: HTTPServer) -> None:
    base = serve(httpserver, json.dumps(DAILY))
    result = fetch_trending(base, DAY, timeout=5)
    assert [i.arxiv_id for i in result.items] == ["2601.20481", "2601.14417", "2601.99999"]
    first = result.items[0]
    assert first.title == "Streaming Speech Synthesis with Flow Matching"
    assert first.summary == (
        "We study streaming speech synthesis with flow matching. Results are strong."
    )
    assert first.upvotes == 87
    assert first.authors == ["Ada Lovelace", "Alan Turing"]
    assert first.published_at == datetime(2026, 1, 27, 2, 11, 5, 123000, tzinfo=UTC)
    assert result.items[2].title == "Trending Only: O(n) Attention & Friends"
    assert result.skipped == {}


def test_url_carries_the_day() -> None:
    assert trending_url("https://hf.test/api/daily_papers", DAY) == (
        "https://hf.test/api/daily_papers?date=2026-01-27"
    )
    assert trending_url("https://hf.test/x?limit=50", DAY).endswith("?limit=50&date=2026-01-27")


def test_empty_list_is_an_empty_day(httpserver: HTTPServer) -> None:
    assert fetch_trending(serve(httpserver, "[]"), DAY, timeout=5).items == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[{"paper": {"id": "2601.1', "invalid JSON at line 1"),
        ('{"error": "Invalid date"}', "a JSON object, not a list (Invalid date)"),
        ("42", "a JSON int, not a list"),
        ("   ", "the document is empty"),
        (b"\xff\xfe[", "not UTF-8"),
        ("<html><body>Bad gateway</body></html>", "invalid JSON"),
    ],
)
def test_malformed_documents_fail_clearly(
    httpserver: HTTPServer, body: str | bytes, message: str
) -> None:
    base = serve(httpserver, body)
    with pytest.raises(TrendingError) as caught:
        fetch_trending(base, DAY, timeout=5)
    text = str(caught.value)
    assert message in text and "date=2026-01-27" in text and "\n" not in text


def test_http_errors_are_fetch_errors(httpserver: HTTPServer) -> None:
    base = serve(httpserver, "upstream down", status=503)
    with pytest.raises(FetchError, match="HTTP 503 Service Unavailable"):
        fetch_trending(base, DAY, timeout=5)


def test_missing_fields_and_bad_items_are_tolerated() -> None:
    body = [
        {"paper": {"id": "2601.00001v3", "title": "Only a title"}},  # version dropped
        {"paper": {"id": "2601.00002", "title": "Odd values", "upvotes": "7",
                   "authors": [{"name": None}, "not an object", {"name": " Grace  Hopper "}],
                   "summary": None},
         "publishedAt": "yesterday"},
        {"paper": {"id": "2601.00003", "title": "Negative", "upvotes": -5}},
        {"paper": {"id": "not-an-id!", "title": "Bad id"}},
        {"paper": {"title": "No id"}},
        {"paper": {"id": "2601.00004", "title": "   "}},
        {"paper": None},
        "a string",
        None,
    ]
    result = parse_trending(json.dumps(body).encode())
    by_id = {i.arxiv_id: i for i in result.items}
    assert list(by_id) == ["2601.00001", "2601.00002", "2601.00003"]
    assert by_id["2601.00001"].upvotes == 0 and by_id["2601.00001"].authors == []
    assert by_id["2601.00002"].upvotes == 7
    assert by_id["2601.00002"].authors == ["Grace Hopper"]
    assert by_id["2601.00002"].summary == "" and by_id["2601.00002"].published_at is None
    assert by_id["2601.00003"].upvotes == 0
    assert result.skipped == {"bad arXiv id": 1, "no arXiv id": 1, "no title": 1,
                              "no paper": 1, "not an object": 2}


def test_duplicates_keep_the_highest_count() -> None:
    body = [item("2601.20481", "Same paper", 5), item("2601.20481v2", "Same paper", 9),
            item("2601.20481", "Same paper", 7)]
    result = parse_trending(json.dumps(body).encode())
    assert [(i.arxiv_id, i.upvotes) for i in result.items] == [("2601.20481", 9)]
    assert result.skipped == {"duplicate": 2}


def test_hostile_text_is_cleaned() -> None:
    hostile = "<script>alert(1)</script>Speech\u202e\u200b Tokens <b>bold</b> \x00&lt;img&gt;"
    body = [item("2601.00005", hostile, 3)]
    body[0]["paper"]["authors"] = [{"name": "<img src=x onerror=alert(1)>Eve\u0007"}]
    parsed = parse_trending(json.dumps(body).encode()).items[0]
    assert "<script" not in parsed.title and "\u202e" not in parsed.title
    assert "\x00" not in parsed.title and "Speech" in parsed.title and "Tokens" in parsed.title
    assert "<img" not in parsed.authors[0] and "\u0007" not in parsed.authors[0]


def stored_paper(arxiv_id: str, title: str, announced_on: date) -> PaperIn:
    return PaperIn(
        arxiv_id=arxiv_id, version=2, title=title, abstract="The arXiv abstract.",
        categories=["cs.SD"], announced_on=announced_on, source="rss",
    )


def test_store_and_reingest(migrated: Settings, httpserver: HTTPServer) -> None:
    url = migrated.sqlalchemy_url
    with session_scope(url) as session:
        arxiv_copy = stored_paper(
            "2601.20481", "Streaming Speech Synthesis (arXiv title)", date(2026, 1, 23)
        )
        upsert_papers(session=session, papers=[arxiv_copy])
    items = fetch_trending(serve(httpserver, json.dumps(DAILY)), DAY, timeout=5).items
    with session_scope(url) as session:
        report = store_trending(session=session, day=DAY, items=items)
    assert (report.scores_added, report.scores_updated, report.papers_added) == (3, 0, 2)
    with session_scope(url) as session:
        assert trending_on(session=session, day=DAY) == {
            "2601.20481": 87, "2601.14417": 41, "2601.99999": 12
        }
        known = session.get(Paper, "2601.20481")
        assert known is not None
        # The arXiv copy keeps its text, version and day; it only learns it was trending.
        assert known.title == "Streaming Speech Synthesis (arXiv title)"
        assert (known.version, known.announced_on) == (2, date(2026, 1, 23))
        assert known.sources == ["rss", "trending"]
        only = session.get(Paper, "2601.99999")
        assert only is not None and only.announced_on == DAY and only.sources == ["trending"]
        assert only.authors == ["Ada Lovelace", "Alan Turing"]
        assert only.abs_url == "https://arxiv.org/abs/2601.99999"
        top = top_trending(session=session, day=DAY, limit=2)
        assert [(t.paper.arxiv_id, t.upvotes) for t in top] == [
            ("2601.20481", 87), ("2601.14417", 41)
        ]
        assert top_trending(session=session, day=date(2026, 1, 28), limit=5) == []

    # Later the same day: counts grew, one paper is new, the list came back with a duplicate.
    later = [item("2601.20481", "Streaming Speech Synthesis with Flow Matching", 120),
             item("2601.14417", "A Neural Audio Codec at 1 kbps", 41),
             item("2601.14417", "A Neural Audio Codec at 1 kbps", 40),
             item("2601.55555", "Full-Duplex Spoken Dialogue", 200)]
    with session_scope(url) as session:
        report = store_trending(
            session=session, day=DAY, items=parse_trending(json.dumps(later).encode()).items
        )
    assert (report.scores_added, report.scores_updated, report.scores_unchanged) == (1, 1, 1)
    assert report.papers_added == 1
    with session_scope(url) as session:
        assert trending_on(session=session, day=DAY) == {
            "2601.55555": 200, "2601.20481": 120, "2601.14417": 41, "2601.99999": 12
        }
        assert len(session.exec(select(TrendingScore)).all()) == 4
        assert len(session.exec(select(Paper)).all()) == 4
        # The next day is its own row: a paper can trend on several days.
        store_trending(session=session, day=date(2026, 1, 28), items=items[:1])
    with session_scope(url) as session:
        assert trending_on(session=session, day=date(2026, 1, 28)) == {"2601.20481": 87}
        assert trending_on(session=session, day=DAY)["2601.20481"] == 120
        # A trending-only paper is in the store in a form the ranker reads.
        papers = session.exec(select(Paper)).all()
        picks = rank_keywords(PaperIndex(papers), ["spoken dialogue"], limit=3)
        assert [m.arxiv_id for m in picks] == ["2601.55555"]


def test_store_nothing(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        report = store_trending(session=session, day=DAY, items=[])
        assert report.total == 0 and report.papers_added == 0
        assert trending_on(session=session, day=DAY) == {}
