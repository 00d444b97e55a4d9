"""What a keyword list would have brought in the last 7 days, and keyword suggestions.

Both come from the stored papers. The week's papers are indexed once and kept for a few
minutes, so typing in the signup form costs one ranking pass per request, not one index build.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup

from digest.analysis import Lexicon
from digest.db import session_scope
from digest.papers import Paper, latest_announcement, papers_since
from digest.query import parse_term
from digest.ranking import PaperIndex, rank_keywords, rank_profiles
from digest.settings import Settings
from emails.render import clean, emphasise, safe_url, short_authors, short_date, shorten

WINDOW_DAYS = 7
REFRESH_SECONDS = 300.0
PREVIEW_LIMIT = 10
SUGGESTIONS = 14
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z]")
SUGGESTION_DAYS = 30  # suggestions look further back than the preview: more to choose from
UNMATCHED_DAYS = SUGGESTION_DAYS  # a keyword matching nothing this long is likely a typo
_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "based", "be", "by", "can", "do", "does", "for",
    "from", "how", "in", "into", "is", "it", "its", "of", "on", "or", "our", "the", "their",
    "this", "to", "towards", "toward", "using", "via", "vs", "what", "when", "where", "which",
    "while", "with", "without", "new", "through", "study", "approach", "method", "methods",
    "framework", "analysis", "data", "dataset", "any", "all", "benchmark", "task", "tasks",
    "system", "systems", "beyond", "under", "more", "less", "better", "one", "two", "not", "we",
    "your", "you", "efficient", "improving", "improved", "enhancing", "leveraging",
    "rethinking", "revisiting",
))


@dataclass(frozen=True)
class PreviewItem:
    """One paper as the preview shows it, every string cleaned, the snippet escaped."""

    arxiv_id: str
    title: str
    url: str
    authors: str
    day: str
    snippet: Markup
    matched: tuple[str, ...]


@dataclass(frozen=True)
class Preview:
    since: date | None
    until: date | None
    papers_in_window: int
    items: tuple[PreviewItem, ...]
    unmatched: tuple[str, ...] = ()  # keywords no paper of the last UNMATCHED_DAYS matched


@dataclass(frozen=True)
class _Window:
    since: date | None
    until: date | None
    papers: dict[str, Paper]
    index: PaperIndex | None
    suggestions: tuple[str, ...]
    built: float
    month: PaperIndex | None = None  # the last UNMATCHED_DAYS: is a keyword dead or just quiet?


def _acronym(word: str) -> bool:
    upper = sum(ch.isupper() for ch in word)
    return upper >= 2 and 2 * upper >= len(word) and len(word) <= 8


def _display(words: Sequence[str]) -> str:
    """Lower case, except acronyms, also inside hyphenated words ('LLM-based TTS')."""
    return " ".join("-".join(part if _acronym(part) else part.lower() for part in word.split("-"))
                    for word in words)


def suggest_keywords(titles: Sequence[str], limit: int = SUGGESTIONS) -> tuple[str, ...]:
    """Phrases and acronyms that recur across titles, most frequent first."""
    counts: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    for title in titles:
        words = _WORD.findall(clean(title))
        seen: set[str] = set()
        for size in (2, 3):
            for start in range(len(words) - size + 1):
                gram = words[start:start + size]
                if not any(word.lower() in _STOP for word in gram):
                    seen.add(_display(gram))
        seen.update(word for word in words if _acronym(word))
        for phrase in seen:
            spelled.setdefault(phrase.lower(), phrase)
        counts.update({phrase.lower() for phrase in seen})
    frequent = {key: n for key, n in counts.items() if n >= 2}
    # A phrase that mostly occurs inside a longer frequent one gives way to it.
    kept = [
        key for key, n in frequent.items()
        if not any(key != longer and key in longer and m >= 0.6 * n
                   for longer, m in frequent.items())
    ]
    kept.sort(key=lambda key: (-frequent[key], key))
    return tuple(spelled.get(key, key) for key in kept[:limit])


class PreviewService:
    """Rank the week's stored papers for a keyword list; rebuilt every few minutes."""

    def __init__(self, settings: Settings, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self._window: _Window | None = None
        self._lock = threading.Lock()

    def _build(self) -> _Window:
        with session_scope(self.settings.sqlalchemy_url) as session:
            # Anchored on the newest listing stored: arXiv is quiet at weekends, and a store
            # that stopped ingesting still previews its last week rather than nothing.
            until = latest_announcement(session=session)
            since = until - timedelta(days=WINDOW_DAYS - 1) if until else None
            papers = papers_since(session=session, since=since, until=until) if until else []
            start = until - timedelta(days=SUGGESTION_DAYS - 1) if until else None
            month = papers_since(session=session, since=start, until=until) if until else []
            session.expunge_all()
        lexicon = Lexicon.shipped(self.settings.synonyms_file)
        index = PaperIndex(papers, lexicon=lexicon) if papers else None
        month_index = PaperIndex(month, lexicon=lexicon) if month else None
        return _Window(since, until, {p.arxiv_id: p for p in papers}, index,
                       suggest_keywords([p.title for p in month]), time.monotonic(), month_index)

    def window(self) -> _Window:
        current = self._window
        if current is not None and time.monotonic() - current.built < self.refresh_seconds:
            return current
        # While one request rebuilds, the others keep using last minutes' week.
        if not self._lock.acquire(blocking=current is None):
            assert current is not None
            return current
        try:
            latest = self._window
            if latest is None or time.monotonic() - latest.built >= self.refresh_seconds:
                latest = self._window = self._build()
            return latest
        finally:
            self._lock.release()

    def suggestions(self) -> tuple[str, ...]:
        return self.window().suggestions

    def preview(self, keywords: Sequence[str]) -> Preview:
        """The papers these keywords would have brought, best first, with what matched."""
        window = self.window()
        if not keywords or window.index is None:
            return Preview(window.since, window.until, len(window.papers), ())
        matches = rank_keywords(window.index, list(keywords), limit=PREVIEW_LIMIT,
                                floor=self.settings.relevance_floor)
        items = []
        for match in matches:
            paper = window.papers[match.arxiv_id]
            snippet = shorten(clean(paper.abstract), 260)
            items.append(PreviewItem(
                arxiv_id=clean(paper.arxiv_id),
                title=clean(paper.title) or paper.arxiv_id,
                url=safe_url(paper.abs_url, f"https://arxiv.org/abs/{clean(paper.arxiv_id)}"),
                authors=short_authors(paper.authors),
                day=short_date(paper.announced_on),
                snippet=emphasise(snippet, match.matched),
                matched=tuple(clean(k) for k in match.matched),
            ))
        return Preview(window.since, window.until, len(window.papers), tuple(items),
                       self.unmatched(window, keywords))

    def unmatched(self, window: _Window, keywords: Sequence[str]) -> tuple[str, ...]:
        """Positive keywords that no paper of the last month matches at all (no floor)."""
        if window.month is None:
            return ()
        positive = [k for k in keywords if not parse_term(k).negative]
        found = rank_profiles(window.month, [[k] for k in positive], limit=1)
        return tuple(clean(k) for k, hits in zip(positive, found, strict=True) if not hits)
