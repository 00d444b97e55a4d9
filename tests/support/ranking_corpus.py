"""Real papers for ranking tests and bench/rank.py, as plain dataclasses (no database).

The bundled sample corpus (digest/data/sample_corpus.atom) is read with the standard library so
the ranking tests do not depend on the feed parsers; the "Daily Papers" seed page it was built
from (a copy in tests/data/seeds, so no test reads outside the repository) is the fallback.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = ROOT / "digest" / "data" / "sample_corpus.atom"
SEED_PAGE = ROOT / "tests" / "data" / "seeds" / "001_0a4e1afdd8f2084f.txt"

_ATOM = "{http://www.w3.org/2005/Atom}"
_ID = re.compile(r"abs/(?P<id>[^\s/]+?)(?:v\d+)?$")
_SEED_ROW = re.compile(
    r"^\| \*\*\[(?P<title>.+?)\]\(https?://arxiv\.org/abs/(?P<id>[^)\s]+?)(?:v\d+)?\)\*\* \|"
    r".*?<p>(?P<abstract>.*?)</p></details> \| (?P<day>\d{4}-\d{2}-\d{2}) \|"
)


@dataclass(frozen=True)
class SimplePaper:
    """Just what the ranker reads."""

    arxiv_id: str
    title: str
    abstract: str
    announced_on: date


def _clean(text: str) -> str:
    return " ".join(html.unescape(text).split())


def load_atom(path: Path = SAMPLE_CORPUS) -> list[SimplePaper]:
    """Papers from an arXiv API Atom document, first occurrence of an id wins."""
    papers: dict[str, SimplePaper] = {}
    for entry in ET.parse(path).getroot().iter(f"{_ATOM}entry"):
        raw_id = entry.findtext(f"{_ATOM}id", "")
        match = _ID.search(raw_id)
        if not match:
            continue
        published = entry.findtext(f"{_ATOM}published", "")[:10]
        papers.setdefault(
            match["id"],
            SimplePaper(
                arxiv_id=match["id"],
                title=_clean(entry.findtext(f"{_ATOM}title", "")),
                abstract=_clean(entry.findtext(f"{_ATOM}summary", "")),
                announced_on=date.fromisoformat(published),
            ),
        )
    return list(papers.values())


def load_seed(path: Path = SEED_PAGE) -> list[SimplePaper]:
    """Papers from the 'Daily Papers' markdown tables, first occurrence of an id wins."""
    papers: dict[str, SimplePaper] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _SEED_ROW.match(line)
        if match:
            papers.setdefault(
                match["id"],
                SimplePaper(
                    arxiv_id=match["id"],
                    title=_clean(match["title"]),
                    abstract=_clean(match["abstract"]),
                    announced_on=date.fromisoformat(match["day"]),
                ),
            )
    return list(papers.values())


def load_corpus() -> list[SimplePaper]:
    """The sample corpus when it is bundled, else the seed page it was made from."""
    return load_atom() if SAMPLE_CORPUS.exists() else load_seed()
