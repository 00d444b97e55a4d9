"""What a keyword list would have brought in the last 7 days, and keyword suggestions.

Both come from the stored papers. The week's papers are indexed once and kept for a few
minutes, so typing in the signup form costs one ranking pass per request, not one index build.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup

from core.db import session_scope
from core.settings import Settings
from digest.analysis import Lexicon
from digest.papers import Paper, latest_announcement, papers_since
from digest.query import parse_term
from digest.ranking import PaperIndex, rank_keywords, rank_profiles
from digest.semantic import index_options
from digest.suggestions import related_keywords, suggest_keywords
from emails.render import clean, emphasise, safe_url, short_authors, short_date, shorten

WINDOW_DAYS = 7
REFRESH_SECONDS = 300.0
PREVIEW_LIMIT = 10
SUGGESTIONS = 14
SUGGESTION_DAYS = 30  # suggestions look further back than the preview: more to choose from
UNMATCHED_DAYS = SUGGESTION_DAYS  # a keyword matching nothing this long is likely a typo


@dataclass(frozen=True)
class PreviewItem:
    """One paper as the preview shows it, every string cleaned, the snippet escaped."""

    arxiv_id: str
    title: str
    url: str
    authors: str
    day: str
    snippet: Markup
    matched: tuple[str, ...]  # keywords whose words the paper uses
    close_to: tuple[str, ...] = ()  # keywords it matched in meaning only


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
    month_titles: dict[str, str] | None = None


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
        meaning = index_options(self.settings.semantic, self.settings.sqlalchemy_url,
                                waiting=False)
        index = PaperIndex(papers, lexicon=lexicon, **meaning) if papers else None
        month_index = PaperIndex(month, lexicon=lexicon, **meaning) if month else None
        return _Window(since, until, {p.arxiv_id: p for p in papers}, index,
                       suggest_keywords([p.title for p in month]), time.monotonic(), month_index,
                       {p.arxiv_id: p.title for p in month})

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

    def related(self, keywords: Sequence[str]) -> tuple[str, ...]:
        """Keywords related to these, from the month's papers nearest to them."""
        window = self.window()
        if window.month is None or not window.month_titles or not keywords:
            return ()
        return tuple(clean(k) for k in related_keywords(window.month, window.month_titles,
                                                         keywords))

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
            by_words = [k for k in match.matched if k not in match.close_to]
            items.append(PreviewItem(
                arxiv_id=clean(paper.arxiv_id),
                title=clean(paper.title) or paper.arxiv_id,
                url=safe_url(paper.abs_url, f"https://arxiv.org/abs/{clean(paper.arxiv_id)}"),
                authors=short_authors(paper.authors),
                day=short_date(paper.announced_on),
                snippet=emphasise(snippet, by_words),
                matched=tuple(clean(k) for k in by_words),
                close_to=tuple(clean(k) for k in match.close_to),
            ))
        return Preview(window.since, window.until, len(window.papers), tuple(items),
                       self.unmatched(window, keywords))

    def unmatched(self, window: _Window, keywords: Sequence[str]) -> tuple[str, ...]:
        """Positive keywords that no paper of the last month came near (the floor's lowest)."""
        if window.month is None:
            return ()
        positive = [k for k in keywords if not parse_term(k).negative]
        found = rank_profiles(window.month, [[k] for k in positive], limit=1,
                              floor=self.settings.relevance_floor)
        return tuple(clean(k) for k, hits in zip(positive, found, strict=True) if not hits)
