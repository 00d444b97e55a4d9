"""Pure parse of the Hugging Face daily papers JSON, plus its fetch (one day per request)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from digest.papers import split_arxiv_id
from digest.sources.fetch import MAX_TRENDING_BYTES, read_document
from digest.text import clean_text


class TrendingError(ValueError):
    """The document is not a daily papers list we can read; the message is one line."""


@dataclass(frozen=True)
class TrendingItem:
    """One paper on one day's trending list."""

    arxiv_id: str  # version-free
    title: str
    summary: str = ""
    upvotes: int = 0
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None


@dataclass
class TrendingResult:
    items: list[TrendingItem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def _text(value: Any) -> str:
    """A string field as clean one-line text; anything else (None, numbers, lists) as ''."""
    return clean_text(value) if isinstance(value, str) else ""


def _upvotes(value: Any) -> int:
    """A non-negative int; bools, floats written as strings and garbage count as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and value == value:  # NaN is the one float unequal to itself
        return max(0, int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def _timestamp(value: Any) -> datetime | None:
    """ISO 8601 ('2026-01-27T13:05:11.000Z') -> aware UTC datetime; None when unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _authors(value: Any) -> list[str]:
    """Author names from [{'name': ...}, ...]; entries without a usable name are dropped."""
    if not isinstance(value, list):
        return []
    names = (_text(author.get("name")) for author in value if isinstance(author, dict))
    return [name for name in names if name]  # a long list is capped (and reported) by PaperIn


def parse_item(raw: Any) -> TrendingItem:
    """One list entry -> TrendingItem; ValueError naming what is missing."""
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    paper = raw.get("paper")
    if not isinstance(paper, dict):
        raise ValueError("no paper")
    raw_id = paper.get("id")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
        raise ValueError("no arXiv id")
    try:
        arxiv_id, _ = split_arxiv_id(str(raw_id))
    except ValueError:
        raise ValueError("bad arXiv id") from None
    title = _text(paper.get("title")) or _text(raw.get("title"))
    if not title:
        raise ValueError("no title")
    # The API has put upvotes and the date on the paper and on the item over time: read both.
    return TrendingItem(
        arxiv_id=arxiv_id,
        title=title,
        summary=_text(paper.get("summary")) or _text(raw.get("summary")),
        upvotes=_upvotes(paper.get("upvotes", raw.get("upvotes"))),
        authors=_authors(paper.get("authors")),
        published_at=_timestamp(raw.get("publishedAt") or paper.get("publishedAt")),
    )


def parse_trending(data: bytes) -> TrendingResult:
    """The daily papers JSON -> items, one per arXiv id (most upvotes wins); bad items skipped."""
    if not data.strip():
        raise TrendingError("not a daily papers list: the document is empty")
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise TrendingError("not a daily papers list: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise TrendingError(
            f"not a daily papers list: invalid JSON at line {error.lineno}: {error.msg}"
        ) from None
    if not isinstance(document, list):
        # The API answers an error as {"error": "..."}: say so rather than "no items".
        detail = document.get("error") if isinstance(document, dict) else None
        kind = type(document).__name__ if not isinstance(document, dict) else "object"
        reason = f"{kind}, not a list" + (f" ({_text(str(detail))[:200]})" if detail else "")
        raise TrendingError(f"not a daily papers list: a JSON {reason}")
    result = TrendingResult()
    best: dict[str, TrendingItem] = {}
    for raw in document:
        try:
            item = parse_item(raw)
        except ValueError as error:
            result.skipped[str(error)] = result.skipped.get(str(error), 0) + 1
            continue
        kept = best.get(item.arxiv_id)
        if kept is None or item.upvotes > kept.upvotes:
            best[item.arxiv_id] = item
        if kept is not None:
            result.skipped["duplicate"] = result.skipped.get("duplicate", 0) + 1
    result.items = list(best.values())
    return result


def trending_url(base_url: str, day: date) -> str:
    """https://huggingface.co/api/daily_papers?date=2026-01-27."""
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{urlencode({'date': day.isoformat()})}"


def fetch_trending(base_url: str, day: date, timeout: float = 30.0) -> TrendingResult:
    """The day's trending papers: FetchError when unreachable, TrendingError when unreadable."""
    url = trending_url(base_url, day)
    data = read_document(url, timeout=timeout, max_bytes=MAX_TRENDING_BYTES)
    try:
        return parse_trending(data)
    except TrendingError as error:
        raise TrendingError(f"{url}: {error}") from None
