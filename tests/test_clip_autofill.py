"""Autofill against local servers: an arXiv API speaking Atom, and web pages (slow, broken)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import HandlerType
from sqlmodel import select
from werkzeug import Request, Response

from core.db import session_scope
from core.settings import Settings
from digest.clippings.models import AutofillState, Clip
from digest.clippings.store import add_clip, enrich_clips
from digest.papers import PaperIn, upsert_papers
from digest.sources.pages import parse_page
from digest.trending import TrendingScore
from tests.support.fake_arxiv import arxiv_api


@pytest.fixture
def api(httpserver: HTTPServer, migrated: Settings) -> Settings:
    httpserver.expect_request("/api/query", handler_type=HandlerType.PERMANENT
                              ).respond_with_handler(arxiv_api)
    return migrated.model_copy(update={"arxiv_api_url": httpserver.url_for("/api/query"),
                                       "clip_fetch_timeout_seconds": 0.5})


def test_arxiv_paper_from_the_api_then_from_the_store(api: Settings,
                                                      httpserver: HTTPServer) -> None:
    with session_scope(api.sqlalchemy_url) as session:
        clip = add_clip(session=session, url="https://arxiv.org/pdf/2604.00001v1",
                        month="2026-04", note="see also https://huggingface.co/k2-fsa/OmniVoice",
                        title="2604.00001v1.pdf").clip
        missing = add_clip(session=session, url="https://arxiv.org/abs/2604.99999",
                           month="2026-04").clip
        report = enrich_clips(session=session, settings=api, clips=[clip, missing])
    queries = [parse_qs(entry[0].query_string.decode()) for entry in httpserver.log]
    assert len(queries) == 1 and queries[0]["id_list"] == ["2604.00001,2604.99999"]
    assert clip.title == "OmniVoice: Massively Multilingual Zero-Shot TTS"
    assert clip.authors == ["Ada Lovelace", "Alan Turing"]
    assert clip.abstract.startswith("Zero-shot text-to-speech (TTS) still struggles")
    assert clip.summary == (
        "Zero-shot text-to-speech (TTS) still struggles with hundreds of languages. We present "
        "OmniVoice, a non-autoregressive diffusion TTS model trained on 581k hours of speech. "
        "OmniVoice outperforms prior systems by 20% in speaker similarity across 600 languages."
    )
    assert clip.links == {
        "code": "https://github.com/k2-fsa/OmniVoice",
        "demo": "https://huggingface.co/spaces/k2-fsa/OmniVoice",
        "project": "https://omnivoice.github.io",
        "weights": "https://huggingface.co/k2-fsa/OmniVoice",
    }
    assert clip.autofill == AutofillState.done and clip.autofill_error is None
    assert clip.suggested_section == "Speech & Audio"
    assert {"TTS", "NAR", "Diffusion"} <= set(clip.suggested_tags)
    assert missing.autofill == AutofillState.failed
    assert missing.title == "arXiv 2604.99999"  # from the address, not the raw url
    assert missing.autofill_error == "arXiv has no paper 2604.99999"
    assert (report.filled, report.failed) == (1, 1)

    # A paper already in the store is filled from it: no request at all.
    httpserver.clear_log()
    with session_scope(api.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=[PaperIn(
            arxiv_id="2604.00002", title="Stored paper on speech tokenizers",
            abstract="We propose a speech tokenizer. It is robust.", authors=["B"],
            announced_on=date(2026, 4, 2), source="rss")])
        session.add(TrendingScore(arxiv_id="2604.00002", day=date(2026, 4, 3), upvotes=120))
        stored = add_clip(session=session, url="https://huggingface.co/papers/2604.00002",
                          month="2026-04").clip
        enrich_clips(session=session, settings=api, clips=[stored])
        assert stored.title == "Stored paper on speech tokenizers"
        assert stored.suggested_highlight  # 120 upvotes on the trending list
    assert httpserver.log == []


def test_arxiv_api_failure_is_recorded_not_raised(migrated: Settings,
                                                  httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data("busy", status=503)
    settings = migrated.model_copy(update={"arxiv_api_url": httpserver.url_for("/api/query")})
    with session_scope(settings.sqlalchemy_url) as session:
        clip = add_clip(session=session, url="https://arxiv.org/abs/2604.00001",
                        month="2026-04").clip
        enrich_clips(session=session, settings=settings, clips=[clip])
    with session_scope(settings.sqlalchemy_url) as session:
        saved = session.exec(select(Clip)).one()
    assert saved.autofill == AutofillState.failed
    assert saved.autofill_error == "arXiv API: HTTP 503"
    assert saved.title == "arXiv 2604.00001"


@pytest.fixture
def pages() -> Iterator[HTTPServer]:
    """A threaded server: pages are fetched concurrently, and one of them hangs."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_page_titles_and_failures(api: Settings, pages: HTTPServer) -> None:
    httpserver = pages
    release = threading.Event()

    def slow(_request: Request) -> Response:
        release.wait(5)
        return Response("<title>late</title>", content_type="text/html")

    httpserver.expect_request("/og").respond_with_data(
        '<html><head><title>Fallback</title><meta property="og:title" '
        'content="KittenTTS: a 25MB TTS model &amp; more"></head></html>',
        content_type="text/html; charset=utf-8")
    httpserver.expect_request("/plain").respond_with_data(
        "<html><head><title>\n  A blog post\n about <b>GPU</b> kernels</title></head></html>",
        content_type="text/html")
    httpserver.expect_request("/gone").respond_with_data("nope", status=404)
    httpserver.expect_request("/paper.pdf").respond_with_data(
        b"%PDF-1.7", content_type="application/pdf")
    httpserver.expect_request("/slow").respond_with_handler(slow)
    urls = {name: httpserver.url_for(f"/{name}") for name in
            ("og", "plain", "gone", "paper.pdf", "slow")}
    try:
        with session_scope(api.sqlalchemy_url) as session:
            clips = {name: add_clip(session=session, url=url, month="2026-04").clip
                     for name, url in urls.items()}
            enrich_clips(session=session, settings=api, clips=list(clips.values()))
    finally:
        release.set()
    assert clips["og"].title == "KittenTTS: a 25MB TTS model & more"
    assert clips["og"].autofill == AutofillState.done
    assert clips["og"].topic == "TTS & Speech"
    assert clips["plain"].title == "A blog post about GPU kernels"
    assert clips["plain"].suggested_section == "Also worth a look"
    for name, reason in (("gone", "HTTP 404 Not Found"),
                         ("paper.pdf", "not an HTML page (application/pdf)"),
                         ("slow", "timed out after 0.5 s")):
        clip = clips[name]
        assert clip.autofill == AutofillState.failed, name
        assert clip.autofill_error == f"{urls[name]}: {reason}"
        assert clip.title == name.removesuffix(".pdf").capitalize()  # from the path


def test_parse_page_prefers_og_title_and_reads_links() -> None:
    page = parse_page(
        '<head><meta name="twitter:title" content="T"><title>Page</title>'
        '<meta name="description" content="About &lt;it&gt;"></head>'
        '<body><a href="https://github.com/a/b">code</a><a href="/local">x</a></body>',
        url="https://example.org",
    )
    assert (page.title, page.description, page.links) == (
        "T", "About <it>", ["https://github.com/a/b"]
    )
