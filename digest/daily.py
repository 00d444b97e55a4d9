"""Compose one subscriber's daily digest as plain data (no HTML, no database)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from digest.clippings.urls import related_links
from digest.papers import Paper
from digest.ranking import Match

TRENDING = "Trending today"  # the section of picks chosen by upvotes alone
MOST_UPVOTED_WEEK = "Most upvoted this week"  # a weekly digest's first section
WEEK_TOP = 3  # papers in it: the week's picks with the most upvotes
LINK_ORDER = ("code", "project", "demo", "weights")  # what a reader scans for first


@dataclass(frozen=True)
class Pick:
    """One paper in a digest and why it is there."""

    paper: Paper
    score: float
    matched: tuple[str, ...]  # the subscriber's keywords it matched, best first
    upvotes: int = 0  # on the day's trending list
    similar_to: str = ""  # title of a paper the subscriber liked that this one resembles
    close_to: tuple[str, ...] = ()  # of `matched`, the keywords it matched in meaning only

    @property
    def matched_by_words(self) -> tuple[str, ...]:
        """The matched keywords whose words the paper uses (what the email highlights)."""
        return tuple(keyword for keyword in self.matched if keyword not in self.close_to)


@dataclass(frozen=True)
class Section:
    """Papers grouped under the keyword that matched them best (or the day's trending list)."""

    keyword: str
    picks: tuple[Pick, ...]
    trending: bool = False  # the TRENDING section: picks chosen by upvotes, no keyword


def paper_links(paper: Paper) -> tuple[tuple[str, str], ...]:
    """(kind, url) of the code, project, demo and weights links its abstract and comment give,
    in LINK_ORDER; the clippings autofill's finder, so both products agree on what a link is."""
    found = related_links([paper.abstract or "", paper.comment or ""])
    return tuple((kind, found[kind]) for kind in LINK_ORDER if kind in found)


@dataclass(frozen=True)
class DailyDigest:
    day: date
    keywords: tuple[str, ...]
    sections: tuple[Section, ...]
    related: tuple[str, ...] = ()  # keywords to suggest when the week brought too little
    weekly: bool = False  # a week's digest: its most upvoted picks first, then by keyword

    @property
    def count(self) -> int:
        return sum(len(section.picks) for section in self.sections)

    @property
    def picks(self) -> list[Pick]:
        return [pick for section in self.sections for pick in section.picks]


def compose_daily(
    *, day: date, keywords: Sequence[str], matches: Sequence[Match], papers: dict[str, Paper],
    related: Sequence[str] = (), weekly: bool = False,
) -> DailyDigest | None:
    """Group ranked matches under their best keyword, in profile order; None when empty.

    Trending picks that matched no keyword (a trending-only digest) go under TRENDING, last.
    A weekly digest reads as a week: its WEEK_TOP most upvoted picks open it under
    MOST_UPVOTED_WEEK, the rest follow by keyword. `papers` should also hold the liked papers
    named by `similar_to`, for their titles.
    """
    picks: list[tuple[str, Pick]] = []
    for match in matches:
        paper = papers.get(match.arxiv_id)
        if paper is None or not (match.matched or match.upvotes):
            continue
        liked = papers.get(match.similar_to) if match.similar_to else None
        pick = Pick(paper=paper, score=match.score, matched=match.matched, upvotes=match.upvotes,
                    similar_to=liked.title if liked is not None else "", close_to=match.close_to)
        picks.append((match.matched[0] if match.matched else TRENDING, pick))
    if not picks:
        return None
    top: list[Pick] = []
    if weekly:
        upvoted = [pick for _, pick in picks if pick.upvotes]
        top = sorted(upvoted, key=lambda p: (-p.upvotes, p.paper.arxiv_id))[:WEEK_TOP]
    first = {id(pick) for pick in top}
    by_keyword: dict[str, list[Pick]] = {}
    for section, pick in picks:
        if id(pick) not in first:
            by_keyword.setdefault(section, []).append(pick)
    order = {keyword: position for position, keyword in enumerate(keywords)}
    sections = [Section(keyword=MOST_UPVOTED_WEEK, picks=tuple(top), trending=True)] if top else []
    for keyword in sorted(by_keyword, key=lambda k: order.get(k, len(order))):
        ranked = sorted(
            by_keyword[keyword],
            key=lambda p: (-round(p.score, 6), -p.paper.announced_on.toordinal(), p.paper.arxiv_id),
        )
        trending = keyword == TRENDING and keyword not in order
        sections.append(Section(keyword=keyword, picks=tuple(ranked), trending=trending))
    return DailyDigest(day=day, keywords=tuple(keywords), sections=tuple(sections),
                       related=tuple(related), weekly=weekly)
