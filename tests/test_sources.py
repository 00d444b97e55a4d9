"""Ingestion: text cleaning, arXiv RSS/Atom parsing, fetching, API search, the sample corpus."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import pytest
from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import HandlerType
from werkzeug import Request, Response

from core.db import session_scope
from core.settings import Settings
from digest.papers import Paper, PaperIn, papers_by_id, upsert_papers
from digest.sources.arxiv_api import search_papers
from digest.sources.arxiv_feed import FeedError, parse_feed
from digest.sources.fetch import FetchError, read_document, rss_url
from digest.text import clean_text, shorten_authors

ROOT = Path(__file__).resolve().parent.parent
FEEDS = Path(__file__).parent / "data" / "feeds"
CORPUS = ROOT / "digest" / "data" / "sample_corpus.atom"
SECTIONS = Path(__file__).parent / "data" / "seed_sections.json"
# A copy of ../shared/seeds, so the suite reads nothing outside the repository.
SEED = Path(__file__).parent / "data" / "seeds" / "001_0a4e1afdd8f2084f.txt"


def feed(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def by_id(papers: list[PaperIn]) -> dict[tuple[str, int], PaperIn]:
    return {(paper.arxiv_id, paper.version): paper for paper in papers}


# --- clean_text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"Fast $\mathcal{O}(n)$ TTS", "Fast O(n) TTS"),
        (r"latency ($97\,\mathrm{ms}$) here", "latency (97 ms) here"),
        (r"\emph{x} and \textbf{ES4R}", "x and ES4R"),
        (r"12$\times$ faster at $3.2\%$ and 50% fewer", "12× faster at 3.2% and 50% fewer"),
        ("<script>alert(1)</script> Title", "alert(1) Title"),
        (
            "Tom &amp; Jerry &eacute;t&eacute; &#x2014; &lt;b&gt;bold&lt;/b&gt;",
            "Tom & Jerry été — bold",
        ),
        ("Predicting the <mask> token", "Predicting the <mask> token"),
        (
            "a\u202eevil\u202c \u2066iso\u2069 zero\u200bwidth\ufeff \x07bell",
            "aevil iso zerowidth bell",
        ),
        ("  many\n   lines\tand\u00a0spaces  ", "many lines and spaces"),
        (r"Models~(\textbf{LSLMs}) use ~50% less", "Models (LSLMs) use ~50% less"),
        (
            r"see \href{https://a.io/x_y}{the page} or \url{https://b.io/50%}",
            "see the page (https://a.io/x_y) or https://b.io/50%",
        ),
        (
            r"The demo page is at \href{https://tts.ch.dev}",
            "The demo page is at https://tts.ch.dev",
        ),
        (r"G\"odel and \'Ecole", "Gödel and École"),
        (r"so-called ``dark data,'' here", "so-called \u201cdark data,\u201d here"),
        (r"$\mathbf{x}$ in $\mathbb{R}^N$", "x in ℝ^N"),
        (r"$\boldsymbol{\theta}$ and $\bm{x}_t$ in \LaTeX", "θ and x_t in LaTeX"),
    ],
)
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    "broken",
    [
        r"$x^{",
        r"\textbf{unclosed",
        "$",
        "\\",
        r"\href{}{",
        r"$\frac{1}{$",
        r"\begin{tabular}",
        "}{",
    ],
)
def test_clean_text_never_raises_on_malformed_latex(broken: str) -> None:
    result = clean_text(f"before {broken} after")
    assert result.startswith("before") and result.endswith("after")


def test_shorten_authors() -> None:
    assert shorten_authors(["A", "B", "C", "D"]) == "A, B, C et al."
    assert shorten_authors(["A", "B", "C"]) == "A, B, C"
    assert shorten_authors(["A", "B"], limit=1) == "A et al."
    assert shorten_authors([]) == ""


# --- parse_feed: RSS --------------------------------------------------------------------------


def test_rss_keeps_new_and_cross_and_counts_the_rest() -> None:
    result = parse_feed(feed("rss_listing.xml"), source="rss")
    assert result.kind == "rss"
    assert sorted(by_id(result.papers)) == [
        ("2602.01234", 1),
        ("2602.01234", 2),
        ("2602.01500", 1),
        ("hep-th/9901001", 1),
    ]
    assert result.skipped == {"no-id": 1}
    # Replacements are new versions of earlier papers: kept apart, never papers of the day.
    assert sorted(by_id(result.revisions)) == [("2509.00077", 3), ("2510.00088", 2)]


def test_rss_item_fields() -> None:
    papers = by_id(parse_feed(feed("rss_listing.xml"), source="rss").papers)
    paper = papers[("2602.01234", 1)]
    assert paper.title == "alert(1) Streaming TTS in O(n) Time"
    assert paper.abstract == (
        "We reach a first-packet latency of 97 ms with chunked decoding & a 12.5 Hz codec; "
        "50% fewer tokens."
    )
    assert paper.authors == ["Ada Lovelace", "Kurt Gödel", "Grace Hopper", "Alan Turing"]
    assert paper.categories == ["cs.SD", "cs.CL", "eess.AS"]
    assert paper.primary_category == "cs.SD"
    assert paper.announced_on == date(2026, 2, 3)
    assert paper.updated == datetime(2026, 2, 3, 5, 0, tzinfo=UTC)
    assert paper.abs_url == "https://arxiv.org/abs/2602.01234"
    assert paper.pdf_url == "https://arxiv.org/pdf/2602.01234v1"
    assert paper.source == "rss"
    legacy = papers[("hep-th/9901001", 1)]
    assert legacy.pdf_url == "https://arxiv.org/pdf/hep-th/9901001v1"


def test_rss_untrusted_title_is_plain_text() -> None:
    papers = by_id(parse_feed(feed("rss_listing.xml"), source="rss").papers)
    paper = papers[("2602.01500", 1)]
    assert paper.title == "Speech Language Models & Café Talk: A evil Benchmark"
    assert "\u202e" not in paper.title and "<" not in paper.title
    assert paper.abstract == (
        "Spoken dialogue benchmarks for <mask> prediction, "
        "see the project page (https://example.org/bench)."
    )
    assert paper.primary_category == "cs.LG"  # a cross-list: its primary is elsewhere


def test_announced_on_given_by_the_caller_wins() -> None:
    papers = parse_feed(feed("rss_listing.xml"), source="rss", announced_on=date(2026, 2, 4)).papers
    assert {paper.announced_on for paper in papers} == {date(2026, 2, 4)}


# --- parse_feed: Atom -------------------------------------------------------------------------


def test_api_atom_entries() -> None:
    result = parse_feed(feed("api_entries.atom"), source="api")
    assert result.kind == "atom" and result.skipped == {}
    papers = by_id(result.papers)
    first, second = papers[("2601.20481", 1)], papers[("2601.20481", 2)]
    assert first.title == (
        "Erasing Your Voice Before It's Heard: Training-free Speaker Unlearning for "
        "Zero-shot Text-to-Speech"
    )
    assert first.abstract.endswith("We present TruS, which runs in O(n).")
    assert first.authors == ["Myungjin Lee", "Eunji Shin"]
    assert first.comment == "ICASSP'2026"
    assert first.primary_category == "eess.AS"
    assert first.categories == ["eess.AS", "cs.SD"]
    assert first.published == datetime(2026, 1, 28, 17, 42, 10, tzinfo=UTC)
    # The day the listed version appeared: v2's `updated`, not v1's `published`.
    assert second.announced_on == date(2026, 1, 30)
    assert second.pdf_url == "https://arxiv.org/pdf/2601.20481v2"
    m3 = papers[("2512.04720", 2)]
    assert (
        m3.title == "M3-TTS: Multi-modal DiT Alignment & Mel-latent for alert(1) Zero-shot Speech"
    )
    assert m3.abstract == "We propose M3-TTS, reaching 12× faster decoding at 3.2% lower WER."
    assert m3.authors == ["José García"]
    assert m3.comment is None


def test_arxiv_atom_listing_uses_announcement_day_and_skips_replacements() -> None:
    result = parse_feed(feed("atom_listing.atom"), source="rss")
    assert result.kind == "atom"
    assert result.skipped == {}
    assert len(result.revisions) == 1
    (paper,) = result.papers
    assert paper.announced_on == date(2026, 2, 2)  # `published`, not the build time in `updated`
    assert paper.authors == ["Ada Lovelace", "Alan Turing"]
    assert paper.abstract == "We caption audio with a codec language model."


@pytest.mark.parametrize("name", ["rss_empty.xml", "api_empty.atom"])
def test_valid_empty_feed_is_not_an_error(name: str) -> None:
    result = parse_feed(feed(name), source="rss")
    assert result.papers == [] and result.skipped == {}


def test_harmless_bozo_is_not_an_error() -> None:
    # Declared UTF-8, really Latin-1: feedparser sets bozo (CharacterEncodingOverride) and copes.
    data = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Caf\xe9</title>'
        "<item><title>Caf\xe9 TTS</title><guid>oai:arXiv.org:2601.00001v1</guid>"
        "<pubDate>Mon, 02 Feb 2026 00:00:00 -0500</pubDate></item></channel></rss>"
    ).encode("latin-1")
    (paper,) = parse_feed(data, source="rss").papers
    assert paper.title == "Café TTS"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((FEEDS / "truncated.xml").read_bytes(), "XML syntax error at line 27"),
        ((FEEDS / "not_a_feed.html").read_bytes(), "not an RSS or Atom document"),
        (b"<html><body><p>Service unavailable</p></body></html>", "no <rss> or <feed> root"),
        (b"", "the document is empty"),
        (b"  \n ", "the document is empty"),
        (b'{"papers": []}', "XML syntax error at line 1"),
        (b'<?xml version="1.0"?><sitemap/>', "no <rss> or <feed> root"),
        ((FEEDS / "api_error.atom").read_bytes(), "incorrect id format for 1234.12345"),
    ],
)
def test_malformed_documents_raise_one_line(data: bytes, message: str) -> None:
    with pytest.raises(FeedError) as raised:
        parse_feed(data, source="rss")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


# --- the sample corpus ------------------------------------------------------------------------


def test_sample_corpus_parses_to_the_seed_papers() -> None:
    result = parse_feed(CORPUS.read_bytes(), source="sample")
    assert len(result.papers) == 337 and result.skipped == {}
    sections: dict[str, list[str]] = json.loads(SECTIONS.read_text())
    assert list(sections) == ["Speech Synthesis", "TTS", "Audio Caption", "Speech language model"]
    assert sum(len(ids) for ids in sections.values()) == 353
    seed_ids = list(dict.fromkeys(i for ids in sections.values() for i in ids))
    assert [paper.arxiv_id for paper in result.papers] == seed_ids
    for paper in result.papers:
        assert paper.title and paper.abstract
        assert "$" not in paper.title + paper.abstract
        assert "\\" not in paper.title + paper.abstract
        assert paper.primary_category == paper.categories[0]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_sample_corpus", ROOT / "scripts" / "build_sample_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_sample_corpus_is_what_the_script_builds_from_the_seed() -> None:
    if not SEED.exists():
        pytest.skip(f"seed page not found at {SEED}")
    script = load_script()
    papers, sections, rows = script.read_seed(SEED.read_text(encoding="utf-8"))
    assert rows == 353 and len(papers) == 337
    assert script.build_atom(papers) == CORPUS.read_bytes()
    assert json.dumps(sections, indent=2, ensure_ascii=False) + "\n" == SECTIONS.read_text()


# --- storing ----------------------------------------------------------------------------------


def test_parsed_feeds_upsert_once_keeping_the_newest_version(migrated: Settings) -> None:
    listing = parse_feed(feed("rss_listing.xml"), source="rss").papers
    api = parse_feed(feed("api_entries.atom"), source="api").papers
    with session_scope(migrated.sqlalchemy_url) as session:
        assert upsert_papers(session=session, papers=listing).added == 3
        assert upsert_papers(session=session, papers=api).added == 2
    with session_scope(migrated.sqlalchemy_url) as session:
        again = upsert_papers(session=session, papers=listing + api)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 5)
        stored = papers_by_id(session=session, ids=["2602.01234", "2601.20481"])
    streaming: Paper = stored["2602.01234"]
    assert streaming.version == 2
    assert streaming.announced_on == date(2026, 2, 3)
    assert stored["2601.20481"].version == 2
    assert stored["2601.20481"].comment == "ICASSP'2026; v2: typo fixes"


def test_a_later_version_keeps_the_first_announcement_day(migrated: Settings) -> None:
    first, second, _other = parse_feed(feed("api_entries.atom"), source="api").papers
    with session_scope(migrated.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=[first])
    with session_scope(migrated.sqlalchemy_url) as session:
        assert upsert_papers(session=session, papers=[second]).updated == 1
        stored = papers_by_id(session=session, ids=["2601.20481"])["2601.20481"]
    assert (stored.version, stored.announced_on) == (2, date(2026, 1, 28))


# --- fetch ------------------------------------------------------------------------------------


def test_read_document_from_a_local_file(tmp_path: Path) -> None:
    assert read_document(str(FEEDS / "rss_empty.xml"), timeout=5) == feed("rss_empty.xml")
    with pytest.raises(FetchError, match="no such file"):
        read_document(str(tmp_path / "missing.xml"), timeout=5)
    with pytest.raises(FetchError, match="is a directory"):
        read_document(str(tmp_path), timeout=5)


def test_read_document_over_http(httpserver: HTTPServer) -> None:
    body = feed("rss_listing.xml")
    httpserver.expect_request("/rss/cs.CL+cs.SD").respond_with_data(
        body, content_type="application/rss+xml"
    )
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/rss/cs.CL+cs.SD")}
    )
    httpserver.expect_request("/missing").respond_with_data("not found", status=404)
    httpserver.expect_request("/broken").respond_with_data("oops", status=500)
    url = rss_url(httpserver.url_for("/rss/"), ["cs.CL", "cs.SD"])
    assert read_document(url, timeout=5) == body
    assert read_document(httpserver.url_for("/old"), timeout=5) == body
    with pytest.raises(FetchError, match="HTTP 404 Not Found$"):
        read_document(httpserver.url_for("/missing"), timeout=5)
    with pytest.raises(FetchError, match="HTTP 500 Internal Server Error$"):
        read_document(httpserver.url_for("/broken"), timeout=5)


def answer_late(httpserver: HTTPServer, body: bytes) -> threading.Event:
    """Serve every request only once the returned event is set (or after 5 s)."""
    release = threading.Event()

    def late(_request: Request) -> Response:
        release.wait(5)
        return Response(body)

    httpserver.expect_request("/", handler_type=HandlerType.PERMANENT).respond_with_handler(late)
    return release


def settle(httpserver: HTTPServer, release: threading.Event) -> None:
    """Let the late handler finish so its log entry cannot leak into the next test."""
    release.set()
    deadline = time.monotonic() + 5
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.01)


def test_read_document_timeout_and_refused_connection(httpserver: HTTPServer) -> None:
    release = answer_late(httpserver, b"late")
    with pytest.raises(FetchError, match="timed out after 0.2 s"):
        read_document(httpserver.url_for("/"), timeout=0.2)
    settle(httpserver, release)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as raised:
        read_document(f"http://127.0.0.1:{port}/rss/cs.CL", timeout=2)
    assert f"127.0.0.1:{port}" in str(raised.value) and "\n" not in str(raised.value)


def test_rss_url() -> None:
    assert rss_url("https://rss.arxiv.org/rss/", ["cs.CL", "cs.SD"]) == (
        "https://rss.arxiv.org/rss/cs.CL+cs.SD"
    )
    assert rss_url("https://rss.arxiv.org/rss", [" eess.AS ", "eess.AS"]) == (
        "https://rss.arxiv.org/rss/eess.AS"
    )
    with pytest.raises(ValueError):
        rss_url("https://rss.arxiv.org/rss/", [])


# --- arXiv API search -------------------------------------------------------------------------


def test_search_papers_against_a_local_api(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data(
        feed("api_entries.atom"), content_type="application/atom+xml"
    )
    papers = search_papers(
        'all:"speech synthesis"', api_url=httpserver.url_for("/api/query"), delay_seconds=0
    )
    assert [(p.arxiv_id, p.version) for p in papers] == [
        ("2601.20481", 1),
        ("2601.20481", 2),
        ("2512.04720", 2),
    ]
    assert {paper.source for paper in papers} == {"api"}
    newest = papers[1]
    assert newest.announced_on == date(2026, 1, 30)
    assert newest.comment == "ICASSP'2026; v2: typo fixes"
    assert papers[0].abstract.endswith("which runs in O(n).")
    assert papers[2].authors == ["José García"]
    ((request, _response),) = httpserver.log
    assert request.args["search_query"] == 'all:"speech synthesis"'
    assert request.args["sortBy"] == "submittedDate"
    assert request.args["max_results"] == "50"


def test_search_papers_stops_at_max_results(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data(CORPUS.read_bytes())
    papers = search_papers(
        "all:tts", api_url=httpserver.url_for("/api/query"), max_results=5, delay_seconds=0
    )
    assert len(papers) == 5 and len(httpserver.log) == 1


def test_consecutive_searches_keep_arxivs_pace(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data(feed("api_empty.atom"))
    url = httpserver.url_for("/api/query")
    started = time.monotonic()
    for _ in range(3):
        assert search_papers("all:tts", api_url=url, delay_seconds=0.2) == []
    assert len(httpserver.log) == 3
    assert time.monotonic() - started >= 0.4  # two gaps of at least the delay


def test_search_papers_empty_feed_is_empty(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data(feed("api_empty.atom"))
    assert (
        search_papers("all:nothing", api_url=httpserver.url_for("/api/query"), delay_seconds=0)
        == []
    )
    assert len(httpserver.log) == 1  # an empty first page is an answer, not a reason to retry


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b"oops", "HTTP 500"),
        (200, (FEEDS / "not_a_feed.html").read_bytes(), "not an RSS or Atom document"),
        (200, b"", "the document is empty"),
        (200, (FEEDS / "api_error.atom").read_bytes(), "incorrect id format for 1234.12345"),
    ],
)
def test_search_papers_errors_are_fetch_errors(
    httpserver: HTTPServer, status: int, body: bytes, message: str
) -> None:
    httpserver.expect_request("/api/query").respond_with_data(body, status=status)
    with pytest.raises(FetchError) as raised:
        search_papers(
            "all:tts", api_url=httpserver.url_for("/api/query"), delay_seconds=0, num_retries=1
        )
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_search_papers_timeout(httpserver: HTTPServer) -> None:
    release = answer_late(httpserver, feed("api_empty.atom"))
    with pytest.raises(FetchError, match="timed out after 0.2 s"):
        search_papers("all:tts", api_url=httpserver.url_for("/"), delay_seconds=0, timeout=0.2)
    settle(httpserver, release)
