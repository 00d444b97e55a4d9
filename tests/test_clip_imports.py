"""Importing real-format bookmark exports (Firefox, Chrome), CSV and url lists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.db import session_scope
from core.settings import Settings
from digest.clippings.imports import import_clips, sniff_format
from digest.clippings.models import ClipKind
from digest.clippings.store import list_clips

DATA = Path(__file__).parent / "data" / "clips"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_sniffing() -> None:
    assert sniff_format(read("bookmarks_firefox.html")) == "bookmarks"
    assert sniff_format(read("bookmarks_chrome.html")) == "bookmarks"
    assert sniff_format(read("clips.csv")) == "csv"
    assert sniff_format("link\nhttps://x.org", "links.csv") == "csv"
    assert sniff_format(read("urls.txt")) == "urls"


def test_firefox_bookmarks_export(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        report = import_clips(session=session, text=read("bookmarks_firefox.html"),
                              filename="bookmarks.html")
        assert report.format == "bookmarks"
        # Bad rows by line: the javascript: bookmarklet, Firefox's place: query, an FTP link.
        assert [line for line, _ in report.errors] == [24, 25, 32]
        assert all("not an http(s) url" in why for _, why in report.errors)
        assert (report.added, report.merged) == (8, 1)  # the pdf of the first paper merged
        april = list_clips(session=session, month="2026-04")
        march = list_clips(session=session, month="2026-03")  # each bookmark's own month
    assert [clip.url for clip in march] == ["https://www.example.org/march-post"]
    by_url = {clip.url: clip for clip in april}
    assert len(april) == 7
    paper = by_url["https://arxiv.org/abs/2601.20481"]
    assert paper.note == (
        "Speaker unlearning without retraining & no quality loss; code at "
        "https://github.com/example/trus\n\nv2 fixes typos"
    )
    assert paper.tags == ["TTS", "unlearning"] and paper.source == "import"
    assert paper.saved_at.replace(tzinfo=UTC) == datetime(2026, 4, 3, 9, tzinfo=UTC)
    assert paper.title.startswith("[2601.20481] Erasing Your Voice Before It's Heard")
    hf = by_url["https://arxiv.org/abs/2512.04720"]  # a Hugging Face paper page is a paper
    assert hf.kind == ClipKind.paper and hf.tags == ["Diffusion"]
    assert by_url["https://openreview.net/forum?id=FihSkzyxdv"].kind == ClipKind.paper
    space = by_url["https://huggingface.co/spaces/k2-fsa/OmniVoice"]  # utm_source dropped
    assert space.kind == ClipKind.link
    blog = by_url["https://blog.example.com/posts/bit-manipulation"]
    assert blog.title == "Bit Manipulation <tricks>"
    assert blog.note == "A fun read on bit tricks for GPU kernels"


def test_chrome_export_csv_and_url_list_into_one_month(migrated: Settings) -> None:
    month = "2026-04"
    with session_scope(migrated.sqlalchemy_url) as session:
        chrome = import_clips(session=session, text=read("bookmarks_chrome.html"), month=month)
        table = import_clips(session=session, text=read("clips.csv"), filename="clips.csv",
                             month=month)  # wins over the CSV's month column
        urls = import_clips(session=session, text=read("urls.txt"), month=month)
        empty = import_clips(session=session, text="", month=month)
        headless = import_clips(session=session, text="link,title\nhttps://x.org,X\n",
                                filename="x.csv", month=month)
        clips = {clip.url: clip for clip in list_clips(session=session, month=month)}
    assert (chrome.added, chrome.merged, chrome.errors) == (2, 0, [])
    assert (table.added, table.merged) == (4, 2)
    assert table.errors == [(4, "url contains whitespace: 'not a url'")]
    assert (urls.added, urls.merged) == (2, 1)
    assert urls.errors == [(5, "not an http(s) url: 'mailto:someone@example.org'")]
    assert (empty.format, empty.total, empty.errors) == ("urls", 0, [])
    assert headless.errors == [(1, "the CSV header has no 'url' column")]
    paper = clips["https://arxiv.org/abs/2601.20481"]
    assert paper.kind == ClipKind.highlight and paper.note == "A note, with a comma"
    assert paper.tags == ["TTS", "AR"]
    example = clips["https://example.com/a?id=3"]
    assert example.note == "multi\nline note\n\nsecond save" and example.tags == ["Benchmark"]
    openreview = clips["https://openreview.net/forum?id=FihSkzyxdv"]
    assert openreview.title == "VibeVoice" and openreview.section == "Speech & Audio"
    assert clips["https://github.com/k2-fsa/OmniVoice"].title == "OmniVoice repo"
    assert len(clips) == 8


def test_csv_month_column(migrated: Settings) -> None:
    text = "url,month\nhttps://example.com/may,2026-05\nhttps://example.com/x,May\n"
    with session_scope(migrated.sqlalchemy_url) as session:
        report = import_clips(session=session, text=text)
        assert [clip.month for clip in report.clips] == ["2026-05"]
    assert report.errors == [(3, "month must look like 2026-04, got 'May'")]
