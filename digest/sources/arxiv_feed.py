"""Pure parse of arXiv listings: RSS 2.0 from rss.arxiv.org and Atom from the arXiv API."""

from __future__ import annotations

import io
import re
import xml.sax
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import feedparser

from digest.papers import PaperIn, split_arxiv_id
from digest.text import clean_text

KEEP_ANNOUNCE_TYPES = {"new", "cross"}
# A new version of a paper announced before: only news for a paper already stored (a reader
# may have saved it), never a paper of its own for today's digests.
REVISION_TYPES = {"replace", "replace-cross"}
# "arXiv:2609.09159v1 Announce Type: new \nAbstract: ..." (arXiv puts a space before the newline).
ANNOUNCE_PREFIX = re.compile(
    r"^\s*arXiv:\s*(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?",
    re.IGNORECASE,
)


class FeedError(ValueError):
    """The document is not an RSS or Atom feed we can read; the message is one line."""


@dataclass
class FeedResult:
    kind: Literal["rss", "atom"]
    papers: list[PaperIn] = field(default_factory=list)
    revisions: list[PaperIn] = field(default_factory=list)  # replace entries: new versions
    skipped: dict[str, int] = field(default_factory=dict)


def _syntax_error(data: bytes, error: xml.sax.SAXParseException) -> FeedError:
    """One line naming the first XML error, at the line of the caller's bytes."""
    # feedparser prepends an XML declaration line to documents that lack one.
    shift = 0 if data.lstrip(b"\xef\xbb\xbf").startswith(b"<?xml") else 1
    line = max(1, (error.getLineNumber() or 1) - shift)
    return FeedError(
        f"not an RSS or Atom document: XML syntax error at line {line}: {error.getMessage()}"
    )


def load_feed(data: bytes) -> Any:
    """feedparser's view of the bytes; FeedError unless it is a well-formed RSS or Atom feed."""
    if not data.strip():
        raise FeedError("not an RSS or Atom document: the document is empty")
    # A stream, never bytes: feedparser would treat bytes that look like a path as a file to open.
    # No sanitizing: arXiv abstracts are plain text, and feedparser's HTML sanitizer would eat
    # "<mask>" or "<think>"; clean_text drops real markup and renderers escape the rest.
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    error = parsed.get("bozo_exception")
    # bozo is also set for harmless things (CharacterEncodingOverride); only XML errors count.
    if parsed.get("bozo") and isinstance(error, xml.sax.SAXParseException):
        raise _syntax_error(data, error)
    version = parsed.get("version") or ""
    if not version.startswith(("rss", "atom")):
        raise FeedError("not an RSS or Atom document: no <rss> or <feed> root element")
    return parsed


def _when(entry: Any, key: str) -> datetime | None:
    """An entry date as an aware datetime in its own offset (the arXiv day stays the arXiv day)."""
    raw = entry.get(key)
    if raw:
        try:
            return datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        try:
            return parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            pass
    parsed = entry.get(f"{key}_parsed")
    if parsed:
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return None


def _utc(moment: datetime | None) -> datetime | None:
    """Stored datetimes are UTC, like the rest of the store."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _announce_type(entry: Any, prefix: re.Match[str] | None) -> str | None:
    """new | cross | replace | replace-cross from <arxiv:announce_type> or the abstract prefix."""
    declared = (entry.get("arxiv_announce_type") or "").strip().lower()
    if declared:
        return declared
    return prefix.group("type").lower() if prefix else None


def _raw_id(entry: Any, prefix: re.Match[str] | None) -> str:
    """The most specific id an entry carries: guid/id first, then the abstract prefix, then link."""
    candidates = [entry.get("id"), prefix.group("id") if prefix else None, entry.get("link")]
    for candidate in candidates:
        if candidate:
            try:
                split_arxiv_id(candidate)
            except ValueError:
                continue
            return str(candidate)
    return ""


def _authors(entry: Any, *, comma_separated: bool) -> list[str]:
    """Author names; RSS dc:creator packs them into one comma-separated string."""
    names: list[str] = []
    for author in entry.get("authors") or []:
        name = author.get("name") or ""
        parts = name.split(",") if comma_separated else [name]
        names += [cleaned for part in parts if (cleaned := clean_text(part))]
    return names


def _categories(entry: Any) -> list[str]:
    """Category terms in document order, without repeats."""
    terms = [(tag.get("term") or "").strip() for tag in entry.get("tags") or []]
    return list(dict.fromkeys(term for term in terms if term))


def entry_to_paper(
    entry: Any, *, kind: str, source: str, announced_on: date | None, fallback_day: date,
    prefix: re.Match[str] | None, announce_type: str | None,
) -> PaperIn | str:
    """One feed entry -> a PaperIn, or the reason it was skipped. `prefix` is its abstract's
    "arXiv:... Announce Type: ..." match and `announce_type` its type (None outside arXiv's
    listings), both read once by parse_feed."""
    summary = entry.get("summary") or ""
    if announce_type is not None and announce_type not in KEEP_ANNOUNCE_TYPES | REVISION_TYPES:
        return announce_type
    raw_id = _raw_id(entry, prefix)
    if not raw_id:
        return "no-id"
    title = clean_text(entry.get("title") or "")
    if not title:
        return "no-title"
    arxiv_id, version = split_arxiv_id(raw_id)
    categories = _categories(entry)
    primary = (entry.get("arxiv_primary_category") or {}).get("term")
    if kind == "rss":
        # RSS items carry one date, the day this version was announced; a v1 was first seen then.
        updated = _when(entry, "published")
        published = updated if version == 1 else None
        day = updated
    else:
        updated = _when(entry, "updated")
        published = _when(entry, "published")
        # API entries: `updated` is the day the listed version appeared. rss.arxiv.org's Atom
        # listings (they carry announce types) set `updated` to the build time, `published` to
        # the announcement day.
        day = published if announce_type else (updated or published)
    comment = clean_text(entry.get("arxiv_comment") or "")
    return PaperIn(
        arxiv_id=arxiv_id,
        version=version,
        title=title,
        abstract=clean_text(summary[prefix.end() :] if prefix else summary),
        # Listings by arXiv (RSS, Atom with announce types) pack authors into dc:creator.
        authors=_authors(entry, comma_separated=kind == "rss" or announce_type is not None),
        categories=categories,
        # arXiv lists the primary category first when it does not name it.
        primary_category=primary or (categories[0] if categories else None),
        comment=comment or None,
        published=_utc(published),
        updated=_utc(updated),
        announced_on=announced_on or (day.date() if day else fallback_day),
        abs_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}v{version}",
        source=source,
    )


def parse_feed(data: bytes, *, source: str, announced_on: date | None = None) -> FeedResult:
    """An arXiv RSS or Atom document -> the new and cross-listed papers, the new versions of
    earlier ones (`revisions`), and what was skipped."""
    parsed = load_feed(data)
    kind: Literal["rss", "atom"] = "atom" if parsed["version"].startswith("atom") else "rss"
    # An undated entry belongs to the channel's listing day, or to today when that is missing too.
    channel_day = _when(parsed.get("feed", {}), "published") or _when(
        parsed.get("feed", {}), "updated"
    )
    fallback_day = channel_day.date() if channel_day else datetime.now(UTC).date()
    result = FeedResult(kind=kind)
    skipped: Counter[str] = Counter()
    for entry in parsed.get("entries", []):
        if "arxiv.org/api/errors" in (entry.get("id") or ""):
            # The API reports a bad query as a one-entry feed whose summary says what is wrong.
            raise FeedError(f"arXiv API error: {clean_text(entry.get('summary') or '')}")
        prefix = ANNOUNCE_PREFIX.match(entry.get("summary") or "")
        announce_type = _announce_type(entry, prefix)
        outcome = entry_to_paper(
            entry, kind=kind, source=source, announced_on=announced_on,
            fallback_day=fallback_day, prefix=prefix, announce_type=announce_type,
        )
        if isinstance(outcome, str):
            skipped[outcome] += 1
        elif announce_type in REVISION_TYPES:
            result.revisions.append(outcome)
        else:
            result.papers.append(outcome)
    result.skipped = dict(sorted(skipped.items()))
    return result
