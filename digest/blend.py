"""The final order of a subscriber's picks: relevance, feedback, recency and trending combined.

    score = relevance x feedback x 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
            + TRENDING_WEIGHT x ln(1 + upvotes)

- relevance: the keyword score (digest.scoring: words and, with embeddings, meaning); the floor
  applies to it after feedback, so trending and recency can reorder matches but never bring in
  a paper that matches nothing.
- feedback: the subscriber's Rocchio factor (digest.feedback), 1 without enough ratings;
  applied to the relevance top CANDIDATES_PER_PICK x limit of subscribers with ratings.
- recency: a paper loses half its weight per week since its announcement (at most 4 halvings).
- trending: ln(1 + upvotes) x 0.5: 20 upvotes add 1.5 (a match at the floor), 100 add 2.3.
A "trending only" subscriber (or one without positive keywords) gets the day's most upvoted
papers not sent before.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import date

import numpy as np

from digest.feedback import MIN_RATINGS, FeedbackModel, Rating, Vectorizer, text_of
from digest.query import QueryError, parse_term
from digest.ranking import (
    LOOSE_SHARE,
    Match,
    PaperIndex,
    PaperLike,
    ProfileSet,
    rank_profiles,
)

RECENCY_HALF_LIFE_DAYS = 7.0
# Older than four half-lives counts as four half-lives: keeps decayed scores far above the
# sparse pass's float resolution when an operator looks back months (DIGEST_LOOKBACK_DAYS).
MIN_RECENCY = 1 / 16
TRENDING_WEIGHT = 0.5
CANDIDATES_PER_PICK = 3


def blended(relevance: float, age_days: int, upvotes: int) -> float:
    """The documented combination (module docstring)."""
    return relevance * recency(age_days) + TRENDING_WEIGHT * math.log1p(max(upvotes, 0))


def recency(age_days: int) -> float:
    """Half the weight per RECENCY_HALF_LIFE_DAYS of age, never under MIN_RECENCY."""
    return max(0.5 ** (max(age_days, 0) / RECENCY_HALF_LIFE_DAYS), MIN_RECENCY)


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


def rank_for_each_reader(
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
    """Each reader's final picks (one list per profile, in order), best first, with upvotes
    and "similar to" filled in.

    Exact for recency and trending: recency scales each paper's column inside the sparse pass,
    and a second pass over the trending papers alone finds every trending match a profile has,
    so the blend picks from (top `limit` by relevance x recency) + (its trending matches).
    Profiles with ratings re-rank their top CANDIDATES_PER_PICK x limit.
    """
    upvotes = upvotes or {}
    index = index or PaperIndex(papers)
    by_id = {paper.arxiv_id: paper for paper in papers}
    decay = np.array([recency((day - by_id[i].announced_on).days) for i in index.ids])
    excluded = exclude or [()] * len(profiles)
    trending = [wants_trending(p, bool(trending_only and trending_only[n]))
                for n, p in enumerate(profiles)]
    keyword_profiles = [[] if t else list(p) for t, p in zip(trending, profiles, strict=True)]

    def ranked(rows: list[int] | ProfileSet, depth: int,
               candidates: Collection[str] | None = None) -> list[list[Match]]:
        subset = rows if isinstance(rows, ProfileSet) else [keyword_profiles[n] for n in rows]
        return rank_profiles(
            index, subset, limit=depth, floor=floor, candidates=candidates, paper_weights=decay,
            exclude=exclude if isinstance(rows, ProfileSet) or exclude is None
            else [exclude[n] for n in rows],
        )

    everyone = list(range(len(profiles)))
    compiled = ProfileSet.compile(keyword_profiles)  # once for both passes
    results = ranked(compiled, limit)
    hot = {i for i, n in upvotes.items() if n > 0 and i in by_id}
    # Every trending match of every profile (few: a day's trending list is a few dozen papers).
    hot_matches = ranked(compiled, len(hot), hot) if hot else [[] for _ in profiles]
    rated = [n for n in everyone if ratings and len(ratings[n]) >= MIN_RATINGS
             and not trending[n]]
    models: dict[int, FeedbackModel] = {}
    vectorizer = None
    if rated and ratings:
        vectorizer = Vectorizer(text_of(paper) for paper in papers)
        known = {**(rated_papers or {}), **by_id}
        for n in rated:
            model = FeedbackModel.fit(ratings[n], known, vectorizer)
            if model is not None:
                models[n] = model
    deepened = sorted(models)
    if deepened:
        deeper = ranked(deepened, limit * CANDIDATES_PER_PICK)
        for n, matches in zip(deepened, deeper, strict=True):
            results[n] = matches
    for n in everyone:
        if trending[n]:
            results[n] = top_trending_matches(upvotes, limit=limit, exclude=excluded[n],
                                              known=by_id)
            continue
        if not hot_matches[n] and n not in models:
            continue  # the common case: relevance x recency is already the final order
        seen = {m.arxiv_id for m in results[n]}
        candidates = results[n] + [m for m in hot_matches[n] if m.arxiv_id not in seen]
        if n in models and vectorizer is not None and candidates:
            adjustment = models[n].adjust(vectorizer.vectors(
                [text_of(by_id[m.arxiv_id]) for m in candidates]))
            # The floor is on relevance (before recency): compare with the undecayed score, and
            # with the adaptive floor's lowest point, which the pick may have come in on.
            candidates = [
                replace(m, score=m.score * float(factor), similar_to=similar)
                for m, factor, similar in zip(
                    candidates, adjustment.factors, adjustment.similar_to, strict=True)
                if m.score * factor / decay[index.position[m.arxiv_id]] >= floor * LOOSE_SHARE
            ]
        final = [
            replace(m, upvotes=upvotes.get(m.arxiv_id, 0),
                    score=m.score + TRENDING_WEIGHT * math.log1p(upvotes.get(m.arxiv_id, 0)))
            for m in candidates
        ]
        final.sort(key=lambda m: (-round(m.score, 6),
                                  -by_id[m.arxiv_id].announced_on.toordinal(), m.arxiv_id))
        results[n] = final[:limit]
    return results

