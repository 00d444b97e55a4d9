"""Profiles x papers -> scored top-k with the reasons: the entry points, and the names to import.

A profile is a list of keywords. Each keyword scores each paper (digest.scoring: its words as
terms, their closeness, and closeness in meaning); the profiles are compiled once
(digest.profile_set), every profile is scored in one sparse pass (digest.ranker), and each
profile's best few are picked exactly (digest.top_picks). See docs/ranking.md.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from digest.profile_set import ProfileSet
from digest.ranker import (
    DAY_SHARE,
    KEEP_BEST,
    KEYWORD_NORM,
    LEXICAL_EVIDENCE,
    LOOSE_SHARE,
    MIN_CONTRIBUTION,
    RELEVANCE_FLOOR,
    Match,
    Ranker,
    adaptive_floors,
)
from digest.scoring import PaperIndex, PaperLike, Weights
from digest.top_picks import SCORE_RESOLUTION, Picks, select_top

__all__ = [
    "DAY_SHARE", "KEEP_BEST", "KEYWORD_NORM", "LEXICAL_EVIDENCE", "LOOSE_SHARE",
    "MIN_CONTRIBUTION", "RELEVANCE_FLOOR", "SCORE_RESOLUTION", "Match", "PaperIndex",
    "PaperLike", "Picks", "ProfileSet", "Ranker", "Weights", "adaptive_floors", "rank_keywords",
    "rank_profiles", "select_top",
]


def rank_profiles(
    index: PaperIndex,
    profiles: Sequence[Sequence[str]] | ProfileSet,
    *,
    limit: int = 10,
    floor: float = RELEVANCE_FLOOR,
    exclude: Sequence[Collection[str]] | None = None,
    candidates: Collection[str] | None = None,
    chunk_size: int = 5000,
    norm: float = KEYWORD_NORM,
    paper_weights: np.ndarray | None = None,
) -> list[list[Match]]:
    """Per profile, up to `limit` papers best first that one of its keywords brings over that
    keyword's floor (`floor`, or lower on a quiet day: adaptive_floors).

    `exclude[i]` holds ids profile i was already sent; `candidates` limits the papers considered.
    Ties go to the newer paper, then the smaller arXiv id. A profile's result never depends on
    the other profiles, so shards of profiles can be ranked in separate processes. `profiles`
    may be compiled already, to rank the same profiles twice (digest.blend does).
    """
    results: list[list[Match]] = [[] for _ in range(len(profiles))]
    if not len(profiles) or limit <= 0 or not len(index):
        return results
    if exclude is not None and len(exclude) != len(profiles):
        raise ValueError("exclude needs one entry per profile")
    compiled = profiles if isinstance(profiles, ProfileSet) else ProfileSet.compile(profiles)
    ranker = Ranker(
        index, compiled, floor=floor, candidates=candidates, norm=norm,
        paper_weights=paper_weights,
    )
    # Chunks of a few thousand profiles keep each product in cache and its temporaries small.
    for start in range(0, len(profiles), chunk_size):
        picks = ranker.picks(start, min(start + chunk_size, len(profiles)), limit=limit,
                             exclude=exclude)
        if len(picks.profiles):
            first = int(picks.profiles[0])
            grouped = ranker.matches(picks)
            results[first:first + len(grouped)] = grouped
    return results


def rank_keywords(
    index: PaperIndex,
    keywords: Sequence[str],
    *,
    limit: int = 10,
    floor: float = RELEVANCE_FLOOR,
    exclude: Collection[str] | None = None,
    candidates: Collection[str] | None = None,
    norm: float = KEYWORD_NORM,
) -> list[Match]:
    """One profile's ranking; the same code path as rank_profiles."""
    return rank_profiles(
        index, [keywords], limit=limit, floor=floor,
        exclude=None if exclude is None else [exclude], candidates=candidates, norm=norm,
    )[0]

