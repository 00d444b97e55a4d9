"""The daily email in a real headless Chromium at phone and desktop widths, with screenshots."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from digest.daily import TRENDING, DailyDigest, Pick, Section
from digest.papers import Paper
from emails.render import RecipientLinks, render_daily

pytestmark = pytest.mark.browser

SEED = Path(__file__).parent / "data" / "seeds" / "001_0a4e1afdd8f2084f.txt"
ARTIFACTS = Path(__file__).parent / "artifacts"
ROW = re.compile(
    r"^\| \*\*\[(?P<title>.+?)\]\((?P<url>https://arxiv\.org/abs/[^)]+)\)\*\* \|.*?"
    r"<p>(?P<abstract>.+?)</p>.*?\| (?P<day>\d{4}-\d{2}-\d{2}) \| (?P<comment>.*?) \|$"
)
# Three of the seed's keyword tables, and how many of each table's papers to show.
KEYWORDS = {"TTS": 3, "Speech language model": 3, "Audio Caption": 2}
AUTHORS = [
    "Mina Park", "Jonas Weber", "Priya Raman", "Luis Ortega", "Akira Sato", "Chen Wei",
    "Fatima Zahra", "Oskar Lind",
]  # fmt: skip
CATEGORIES = [["cs.SD", "eess.AS"], ["cs.CL", "cs.SD", "eess.AS"], ["eess.AS"]]
# The trending section: (seed table, row, upvotes); both rows give code/project/weights links.
TRENDING_ROWS = [("Speech language model", 4, 128), ("Audio Caption", 7, 57)]


def seed_rows() -> dict[str, list[dict[str, str]]]:
    """The seed's per-keyword tables: title, abs URL, abstract, date and comment of each row."""
    tables: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] | None = None
    for line in SEED.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = tables.setdefault(line[3:].strip(), [])
        elif current is not None and (match := ROW.match(line)):
            current.append(match.groupdict())
    return tables


def seed_comment(cell: str) -> str | None:
    """'<details><summary>Accep...</summary><p>Accepted to ICASSP 2026</p></details>' -> text."""
    inner = re.search(r"<p>(.*?)</p>", cell)
    text = (inner.group(1) if inner else cell).strip()
    return text or None


def seed_paper(row: dict[str, str], index: int) -> Paper:
    """A seed row as a paper, with made-up authors and categories (the seed has neither)."""
    return Paper(
        arxiv_id=row["url"].rsplit("/", 1)[1].split("v")[0],
        title=row["title"],
        abstract=row["abstract"],
        authors=AUTHORS[index : index + 1 + 2 * index] if index != 1 else [],
        categories=CATEGORIES[index % 3],
        primary_category=CATEGORIES[index % 3][0],
        comment=seed_comment(row["comment"]),
        announced_on=date.fromisoformat(row["day"]),
    )


def realistic_digest() -> DailyDigest:
    """8 real papers from 3 keyword tables of the seed, then 2 in a "Trending today" section,
    with made-up authors and categories."""
    tables = seed_rows()
    sections = []
    for keyword, count in KEYWORDS.items():
        picks = []
        for index, row in enumerate(tables[keyword][:count]):
            paper = seed_paper(row, index)
            matched = (keyword.lower(),) + (("speech synthesis",) if index % 2 else ())
            reasons: dict[str, Any] = {}
            if index == 0:
                reasons["upvotes"] = 42 + len(sections)
            if index == 2 and not sections:
                reasons["similar_to"] = "A paper this reader liked, with a rather long title"
            picks.append(Pick(paper=paper, score=6.0 - index, matched=matched, **reasons))
        sections.append(Section(keyword=keyword.lower(), picks=tuple(picks)))
    trending = tuple(
        Pick(paper=seed_paper(tables[table][row], index + 2), score=1.0, matched=(), upvotes=votes)
        for index, (table, row, votes) in enumerate(TRENDING_ROWS)
    )
    sections.append(Section(keyword=TRENDING, picks=trending, trending=True))
    keywords = tuple(k.lower() for k in KEYWORDS) + ("speech synthesis",)
    return DailyDigest(day=date(2026, 1, 29), keywords=keywords, sections=tuple(sections))


OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => { const r = e.getBoundingClientRect();
                 return r.width > 0 && (r.right > innerWidth + 0.5 || r.left < -0.5); })
  .map(e => e.tagName + '.' + e.className).slice(0, 5)"""
UPVOTE_STYLE = """e => { const s = getComputedStyle(e);
  return {size: parseFloat(s.fontSize), weight: parseInt(s.fontWeight), color: s.color}; }"""
GREY = "rgb(107, 114, 128)"  # the small print's colour (.au, .mt)
FONT_SIZES = """sel => [...document.querySelectorAll(sel)]
  .map(e => parseFloat(getComputedStyle(e).fontSize))"""


@pytest.mark.parametrize("width", [375, 800])
def test_daily_email_renders_well(browser: Any, width: int) -> None:
    digest = realistic_digest()
    assert digest.count == 10
    message = render_daily(
        digest,
        to="mina@example.org",
        sender="Paper Digest <digest@example.org>",
        links=RecipientLinks(
            manage_url="https://digest.example.org/manage/t0k3n",
            unsubscribe_url="https://digest.example.org/unsubscribe/t0k3n",
            one_click_url="https://digest.example.org/unsubscribe/t0k3n/one-click",
            feedback_url="https://digest.example.org/feedback/f33d",
        ),
        postal_address="Paper Digest, 12 Test Lane, 75000 Paris",
    )
    assert "▲ 42 upvotes" in message.text and "similar to A paper this" in message.text
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "daily.html").write_text(message.html, encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.set_content(message.html, wait_until="load")
        shot = ARTIFACTS / f"daily-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate(OVERFLOWING) == []
        for pick in digest.picks:
            title = page.get_by_role("link", name=pick.paper.title, exact=True)
            assert title.is_visible(), pick.paper.title
            box = title.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        # Readable on a phone: body copy at least 14 px, titles bigger than body copy.
        snippets = page.evaluate(FONT_SIZES, ".ab")
        titles = page.evaluate(FONT_SIZES, "a.pt")
        assert len(snippets) == len(titles) == 10
        assert min(snippets) >= 14 and min(titles) > max(snippets)
        assert page.get_by_role("heading", name="10 new papers for you today").is_visible()
        # The facts a researcher scans for (issue 16): authors, date, links, upvotes.
        assert page.get_by_text("Priya Raman, Luis Ortega, Akira Sato et al.").first.is_visible()
        assert page.get_by_text("Announced 29 Jan 2026").first.is_visible()
        for name in ("Code", "Project", "Weights"):
            assert page.get_by_role("link", name=name, exact=True).first.is_visible(), name
        badge = page.locator(".up", has_text="▲ 128 upvotes")
        assert badge.is_visible()
        style = badge.evaluate(UPVOTE_STYLE)
        assert style["size"] >= 13 and style["weight"] >= 700 and style["color"] != GREY
        assert page.get_by_text("Trending today · 2 papers").is_visible()
        assert page.get_by_text("Keyword · ", exact=False).count() == 3
        for name in ("Manage preferences", "Unsubscribe"):
            assert page.get_by_role("link", name=name, exact=True).is_visible()
        for name in ("More like this", "Less like this"):
            links = page.get_by_role("link", name=name, exact=True)
            assert links.count() == 10 and links.first.is_visible()
    finally:
        page.close()
