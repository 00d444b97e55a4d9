"""The final order of a subscriber's picks: relevance, feedback, recency and trending combined.

    score = relevance x feedback x 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
            + TRENDING_WEIGHT x ln(1 + upvotes)

- relevance: the BM25F keyword score (digest.ranking); the floor applies to it after feedback,
  so trending and recency can reorder matches but never bring in a paper that matches nothing.
- feedback: the subscriber's Rocchio factor (digest.feedback), 1 without enough ratings.
- recency: a paper loses half its weight per week since its announcement.
- trending: ln(1 + upvotes) x 0.5: 20 upvotes add 1.5 (a match at the floor), 100 add 2.3.
A "trending only" subscriber (or one without positive keywords) gets the day's most upvoted
papers not sent before. Candidates are the relevance top CANDIDATES_PER_PICK x limit.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import date

from digest.feedback import FeedbackModel, Rating, Vectorizer, text_of
from digest.query import QueryError, parse_term
from digest.ranking import Match, PaperIndex, PaperLike, rank_profiles

RECENCY_HALF_LIFE_DAYS = 7.0
TRENDING_WEIGHT = 0.5
CANDIDATES_PER_PICK = 3


def blended(relevance: float, age_days: int, upvotes: int) -> float:
    """The documented combination (module docstring)."""
    decay = 0.5 ** (max(age_days, 0) / RECENCY_HALF_LIFE_DAYS)
    return relevance * decay + TRENDING_WEIGHT * math.log1p(max(upvotes, 0))


def wants_trending(keywords: Sequence[str], trending_only: bool) -> bool:
    """Trending only when asked for, or when no keyword would match anything."""
    if trending_only:
        return True
    for keyword in keywords:
        try:
            if not parse_term(keyword).negative:
                return False
        except QueryError:
            continue
    return True


def top_trending_matches(
    upvotes: Mapping[str, int], *, limit: int, exclude: Collection[str], known: Collection[str]
) -> list[Match]:
    """The most upvoted papers not sent before, ties to the smaller arXiv id."""
    ranked = sorted(
        ((n, i) for i, n in upvotes.items() if n > 0 and i in known and i not in exclude),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return [Match(i, blended(0.0, 0, n), (), upvotes=n) for n, i in ranked[:limit]]


def personalise(
    papers: Sequence[PaperLike],
    profiles: Sequence[Sequence[str]],
    *,
    day: date,
    limit: int,
    floor: float,
    index: PaperIndex | None = None,
    exclude: Sequence[Collection[str]] | None = None,
    upvotes: Mapping[str, int] | None = None,
    trending_only: Sequence[bool] | None = None,
    ratings: Sequence[Sequence[Rating]] | None = None,
    rated_papers: Mapping[str, PaperLike] | None = None,
) -> list[list[Match]]:
    """Each profile's final picks, best first, with upvotes and "similar to" filled in."""
    upvotes = upvotes or {}
    by_id = {paper.arxiv_id: paper for paper in papers}
    index = index or PaperIndex(papers)
    excluded = exclude or [()] * len(profiles)
    trending = [wants_trending(p, bool(trending_only and trending_only[n]))
                for n, p in enumerate(profiles)]
    ranked = rank_profiles(
        index, [[] if t else list(p) for t, p in zip(trending, profiles, strict=True)],
        limit=limit * CANDIDATES_PER_PICK, floor=floor, exclude=exclude,
    )
    vectorizer = None
    if ratings and any(len(r) >= 3 for r in ratings):
        vectorizer = Vectorizer(text_of(paper) for paper in papers)
    known = {**(rated_papers or {}), **by_id}
    results = []
    for n in range(len(profiles)):
        if trending[n]:
            results.append(top_trending_matches(
                upvotes, limit=limit, exclude=excluded[n], known=by_id))
            continue
        candidates = ranked[n]
        model = (FeedbackModel.fit(ratings[n], known, vectorizer)
                 if vectorizer is not None and ratings else None)
        if model is not None and candidates:
            adjustment = model.adjust(vectorizer.vectors(  # type: ignore[union-attr]
                [text_of(by_id[m.arxiv_id]) for m in candidates]))
            candidates = [
                replace(m, score=m.score * float(factor), similar_to=similar)
                for m, factor, similar in zip(
                    candidates, adjustment.factors, adjustment.similar_to, strict=True)
                if m.score * factor >= floor
            ]
        final = [
            replace(m, upvotes=upvotes.get(m.arxiv_id, 0), score=blended(
                m.score, (day - by_id[m.arxiv_id].announced_on).days,
                upvotes.get(m.arxiv_id, 0)))
            for m in candidates
        ]
        final.sort(key=lambda m: (-round(m.score, 6),
                                  -by_id[m.arxiv_id].announced_on.toordinal(), m.arxiv_id))
        results.append(final[:limit])
    return results
