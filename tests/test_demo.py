"""`digest demo` from a fresh directory: real digests in the outbox, and a repeat sends nothing."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from digest.sources.arxiv_feed import parse_feed
from digest.sources.trending import parse_trending
from tests.support.cli import run
from workers.demo import sample_corpus_path, sample_trending_path


@pytest.mark.slow
def test_demo_mails_the_sample_subscribers_once(var_dir: Path) -> None:
    first = run(var_dir, "demo")
    assert first.returncode == 0, first.stderr
    outbox = var_dir / "outbox"
    messages = sorted(outbox.glob("*.eml"))
    assert len(messages) == 4, first.stdout
    trending_seen = False
    assert (outbox / "index.html").exists()
    for path in messages:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        parts = {part.get_content_type(): part for part in message.iter_parts()}
        assert set(parts) == {"text/plain", "text/html"}
        assert message["List-Unsubscribe"].startswith("<http://digest.test/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = parts["text/html"].get_content()
        assert "arxiv.org/abs/" in html and "/manage/" in html
        assert len(html.encode()) < 100_000
        assert "/manage/" in parts["text/plain"].get_content()
        # Every digest shows the facts a researcher scans for (issue 16).
        assert "Announced " in html and "▲ " in html  # the sample list's upvotes
        if "katherine-example-org" in path.name:  # the trending-only sample subscriber
            trending_seen = True
            assert "Trending today · 8 papers" in html and "Keyword ·" not in html
            assert "▲ 212 upvotes" in html and ">Code</a>" in html
            assert "TRENDING TODAY (8 papers)" in parts["text/plain"].get_content()
    assert trending_seen
    summary = " ".join(first.stdout.split())
    assert "4 digests planned" in summary
    assert "sample trending list: 8 papers" in summary and "not recorded from the API" in summary
    assert "(trending papers only)" in summary

    second = run(var_dir, "demo")
    assert second.returncode == 0, second.stderr
    assert len(list(outbox.glob("*.eml"))) == 4
    assert "0 digests planned" in second.stdout and "0 sent" in second.stdout


def test_sample_trending_list_is_the_api_format_built_from_the_corpus() -> None:
    """The shipped trending list reads as a real daily papers answer, every item a paper of the
    bundled corpus with its own title, and a note beside it says it was not recorded."""
    result = parse_trending(sample_trending_path().read_bytes())
    assert len(result.items) == 8 and result.skipped == {}
    papers = parse_feed(sample_corpus_path().read_bytes(), source="sample").papers
    corpus = {paper.arxiv_id: paper for paper in papers}
    for item in result.items:
        assert item.arxiv_id in corpus and item.title == corpus[item.arxiv_id].title
        assert item.upvotes > 0 and item.published_at is not None
    raw = json.loads(sample_trending_path().read_text(encoding="utf-8"))
    assert all({"id", "title", "summary", "upvotes", "authors"} <= set(i["paper"]) for i in raw)
    note = sample_trending_path().with_name("sample_trending_NOTE.txt").read_text()
    assert "NOT recorded from the public API" in note and "illustrative" in note
