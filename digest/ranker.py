"""The sparse pass: one index and one profile set, every profile's picks and their reasons.

Score matrix S (keyword x paper, digest.scoring) is computed once per index and profile set;
the profiles become a sparse matrix P (profile x keyword, digest.profile_set), and P @ S is taken
a chunk of profiles at a time, top-k selected per row (digest.top_picks), never on a dense
profile x paper matrix (digest.profile_product takes the product).

The floor adapts to the day: a keyword whose best paper today is under the floor still brings
the papers within DAY_SHARE of that best, down to LOOSE_SHARE of the floor, so a narrow or
oddly worded interest gets its few clearly closest papers instead of an empty digest, and
"nothing relevant" means nothing came near.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.profile_product import ProfileProduct
from digest.profile_set import ProfileSet
from digest.query import FILTER_MARK
from digest.scoring import SCALE, PaperIndex
from digest.top_picks import SCORE_RESOLUTION, Picks, select_top, shortlist

# The recommended floor on a keyword's fused score (0 to SCALE): about half its words in the
# abstract, or clearly close in meaning. Chosen on the dev profiles (bench/relevance.py).
RELEVANCE_FLOOR = 1.5
LOOSE_SHARE = 0.8  # the adaptive floor never goes under this share of the floor
DAY_SHARE = 0.8  # ... and keeps the papers within this share of the keyword's best today
# A keyword counts for a paper from this score on (a tenth of SCALE): under it is one common
# word of several, or a faint likeness in meaning. Dropping those entries keeps S sparse, so
# a million profiles stay one sparse pass, and a profile's score never depends on the floor.
MIN_CONTRIBUTION = 0.1 * SCALE
# ... and for its KEEP_BEST best papers of the window at most: every entry kept costs time in the
# sparse product, and broad keywords ("speech") have hundreds. A week of ten-paper digests can
# have taken 70 of a keyword's best already, so a keyword still has 58 fresh ones to offer.
KEEP_BEST = 128
# A keyword is shown as matched by meaning ("close to: ...") when its words cover less than
# this of the lexical scale in the paper: the pick came from the embeddings.
LEXICAL_EVIDENCE = 0.25
# A profile's score for a paper is the p-norm of its keywords' scores, (sum s_k^p)^(1/p): the
# best keyword plus a bonus for the others (at p = 1.5 a second keyword as strong as the first
# adds 59%, one at half of it adds 16%). A paper on two of a profile's interests at once
# ("preference optimization" for "speech generation") is the most central one. Unlike "max +
# bonus" it is still one sparse product (of S^p), so every profile stays in one pass. p = 1.5
# was chosen on the dev profiles (1: 0.919, 1.5: 0.920, 2: 0.912, 4: 0.902, 8: 0.885 nDCG@10).
KEYWORD_NORM = 1.5


@dataclass(frozen=True)
class Match:
    """One paper picked for one profile, and the profile's keywords that matched it, best first."""

    arxiv_id: str
    score: float
    matched: tuple[str, ...]
    upvotes: int = 0  # on the day's trending list; 0 when not trending (digest.blend)
    similar_to: str = ""  # arXiv id of a paper the subscriber liked that promoted this one
    close_to: tuple[str, ...] = ()  # the matched keywords found by meaning, not by their words


class Ranker:
    """One index and one profile set: S computed once, then any run of profiles scored."""

    def __init__(
        self,
        index: PaperIndex,
        profiles: ProfileSet,
        *,
        floor: float = RELEVANCE_FLOOR,
        candidates: Collection[str] | None = None,
        norm: float = KEYWORD_NORM,
        paper_weights: np.ndarray | None = None,
    ) -> None:
        self.index = index
        self.profiles = profiles
        self.norm = norm
        scored = index.keyword_scores(profiles.keywords, profiles.texts,
                                      keep_above=MIN_CONTRIBUTION, keep_best=KEEP_BEST)
        scores = scored.fused
        self.floors = adaptive_floors(scores, floor)  # per keyword, before any paper is held back
        if candidates is not None:
            allowed = np.zeros(len(index), dtype=bool)
            allowed[[index.position[i] for i in candidates if i in index.position]] = True
            scores.data[~allowed[scores.indices]] = 0.0
            scores.eliminate_zeros()
        self.scores = scores  # as scoring gives them: explanations and contributions read these
        self.lexical = scored.lexical
        self.lexical.sort_indices()
        self._lexical_keys = _entry_keys(self.lexical)
        self.complete = scored.complete
        counts = np.diff(scores.indptr)
        self._keys = _entry_keys(scores)
        self._filters = np.array(  # author: and cat: keywords, never "close to" anything
            [bool(k) and k[0].startswith(FILTER_MARK) for k in profiles.keywords], dtype=bool)
        # The product runs on S^p, so a row's sum is the p-norm to the p-th power.
        powered = scores.copy()
        if paper_weights is not None:
            # A per-paper factor (recency, digest.blend) scales the p-norm exactly, since
            # (sum (w s_k)^p)^(1/p) = w (sum s_k^p)^(1/p); the floor still reads raw scores.
            powered.data = powered.data * paper_weights[powered.indices]
        powered.data = powered.data ** norm
        top = float(scores.data.max(initial=0.0))
        # Scores equal to SCORE_RESOLUTION may be up to p * top^(p-1) times further apart in S^p.
        self._slack = 2 * SCORE_RESOLUTION * norm * max(top, 1.0) ** (norm - 1.0)
        strong_hit = scores.data >= np.repeat(self.floors, counts) - SCORE_RESOLUTION
        self.product = ProfileProduct(profiles, powered, strong_hit)
        # Each keyword's scores >= floor, best first: the k-th of them bounds a profile's k-th.
        strong = np.flatnonzero(strong_hit)
        strong_rows = np.repeat(np.arange(len(counts)), counts)[strong]
        order = np.lexsort((-powered.data[strong], strong_rows))
        self._strong = np.append(powered.data[strong][order], 0.0)  # never empty
        self._strong_count = np.bincount(strong_rows, minlength=len(counts))
        self._strong_start = np.cumsum(self._strong_count) - self._strong_count

    def picks(
        self, start: int, stop: int, *, limit: int, exclude: Sequence[Collection[str]] | None = None
    ) -> Picks:
        """Top `limit` papers for profiles [start, stop), grouped by profile, best first."""
        sent, sent_per_row = self._excluded(exclude, start, stop)
        negated = self._negated(start, stop)
        if negated:
            # Papers a -keyword matches are handled as if already sent: out, and counted in the
            # depth of the lower bound so that it stays a bound.
            extra = [row * len(self.index) + papers for row, papers in negated.items()]
            sent = np.union1d(sent, np.concatenate(extra))
            sent_per_row = np.bincount(sent // len(self.index), minlength=stop - start)
        # Most entries are far below their row's limit-th best. Each profile's row is scaled by
        # 1 / (big + its lower bound), so one comparison with 1 drops them (and, through big,
        # papers no keyword scores >= floor on) before anything is gathered or sorted.
        big = self.product.big
        scale = 1.0 / (self._lower_bounds(start, stop, limit, sent_per_row) + big)
        rows, cols, values = self.product.entries(start, stop, scale)
        values -= big * np.floor(values * (1.0 / big))  # the big terms, off again
        if len(sent):
            keep = ~np.isin(rows * len(self.index) + cols, sent)
            rows, cols, values = rows[keep], cols[keep], values[keep]
        np.maximum(values, 0.0, out=values)
        # A few dozen entries a profile are left; about `limit` of them can make its top.
        keep = shortlist(rows, values, limit=limit, height=stop - start, norm=self.norm)
        rows, cols = rows[keep], cols[keep]
        values = values[keep] ** (1.0 / self.norm)  # from S^p back to scores
        picked = select_top(rows, cols, values, limit=limit, index=self.index)
        return Picks(picked.profiles + start, picked.papers, picked.scores)

    def _lower_bounds(
        self, start: int, stop: int, limit: int, sent_per_row: np.ndarray
    ) -> np.ndarray:
        """Per profile, a score its limit-th pick is sure to reach, minus the tie resolution."""
        indptr = self.profiles.indptr
        keywords = self.profiles.keyword_ids[indptr[start]:indptr[stop]]
        rows = np.repeat(np.arange(stop - start), np.diff(indptr[start:stop + 1]))
        # The (limit + already sent)-th best strong score of any one of the profile's keywords:
        # at least `limit` unsent qualifying papers score that much from this keyword alone.
        depth = limit - 1 + sent_per_row[rows]
        deep_enough = depth < self._strong_count[keywords]
        at = self._strong_start[keywords] + np.where(deep_enough, depth, 0)
        reach = np.where(deep_enough, self._strong[np.minimum(at, len(self._strong) - 1)], 0.0)
        bounds = np.zeros(stop - start)
        np.maximum.at(bounds, rows, reach)
        # Slack: an entry that rounds to the same score still competes on the tie-break.
        return bounds - self._slack

    def _excluded(
        self, exclude: Sequence[Collection[str]] | None, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keys (local row * papers + paper) of papers already sent, and how many per row."""
        per_row = np.zeros(stop - start, dtype=np.int64)
        if exclude is None:
            return np.zeros(0, dtype=np.int64), per_row
        position, columns = self.index.position, len(self.index)
        keys = []
        for row in range(stop - start):
            for arxiv_id in exclude[start + row]:
                if arxiv_id in position:
                    keys.append(row * columns + position[arxiv_id])
                    per_row[row] += 1
        return np.asarray(keys, dtype=np.int64), per_row

    def _negated(self, start: int, stop: int) -> dict[int, np.ndarray]:
        """Local row -> papers a negative keyword of that profile matches (any score > 0)."""
        neg_indptr, neg_ids = self.profiles.neg_indptr, self.profiles.neg_ids
        if neg_indptr is None or neg_ids is None:
            return {}
        found = {}
        # Only a keyword whose every word is in the paper excludes it: "-speech recognition"
        # must not drop every paper that says "speech".
        indptr, indices = self.complete.indptr, self.complete.indices
        for row in np.flatnonzero(np.diff(neg_indptr[start:stop + 1])).tolist():
            ids = neg_ids[neg_indptr[start + row]:neg_indptr[start + row + 1]]
            found[row] = np.unique(np.concatenate(
                [indices[indptr[k]:indptr[k + 1]] for k in ids.tolist()]
            ))
        return found

    def contributions(self, keyword_ids: np.ndarray, papers: np.ndarray) -> np.ndarray:
        """S[keyword, paper] for paired arrays, 0 where the keyword misses the paper."""
        return _lookup(self.scores, keyword_ids, papers, keys=self._keys)

    def matched(self, picks: Picks) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Per pick, (keywords that carried it, largest first; those of them found by meaning).

        A keyword carries a pick when it gave at least half what the pick's best keyword gave:
        with embeddings every keyword is a little close to every paper, and "Matched:" should
        name the reasons, not every faint one.
        """
        indptr = self.profiles.indptr
        lo = indptr[picks.profiles]
        counts = indptr[picks.profiles + 1] - lo
        owner = np.repeat(np.arange(len(picks.profiles)), counts)
        entry = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        keyword_ids = self.profiles.keyword_ids[entry]
        contribution = self.contributions(keyword_ids, picks.papers[owner])
        best = np.zeros(len(picks.profiles))
        np.maximum.at(best, owner, contribution)
        hit = (contribution > 0) & (contribution >= 0.5 * best[owner])
        owner, entry, contribution = owner[hit], entry[hit], contribution[hit]
        lexical = _lookup(self.lexical, keyword_ids[hit], picks.papers[owner],
                          keys=self._lexical_keys)
        by_meaning = (lexical < LEXICAL_EVIDENCE) & ~self._filters[keyword_ids[hit]]
        order = np.lexsort((entry, -contribution, owner))
        labels = self.profiles.labels
        written = [labels[label] for label in self.profiles.label_ids[entry[order]].tolist()]
        meaning = by_meaning[order].tolist()
        bounds = np.searchsorted(owner[order], np.arange(len(picks.profiles) + 1)).tolist()
        return [(tuple(written[a:b]), tuple(w for w, m in zip(written[a:b], meaning[a:b],
                                                              strict=True) if m))
                for a, b in zip(bounds, bounds[1:], strict=False)]

    def matches(self, picks: Picks) -> list[list[Match]]:
        """Picks as Match lists, one list per profile from the first to the last pick's."""
        if not len(picks.profiles):
            return []
        ids = self.index.ids
        flat = [
            Match(ids[paper], score, matched, close_to=close_to)
            for paper, score, (matched, close_to) in zip(
                picks.papers.tolist(), picks.scores.tolist(), self.matched(picks), strict=True
            )
        ]
        first, last = int(picks.profiles[0]), int(picks.profiles[-1])
        bounds = np.searchsorted(picks.profiles, np.arange(first, last + 2)).tolist()
        return [flat[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _entry_keys(matrix: sp.csr_matrix) -> np.ndarray:
    """row * columns + column of each stored entry, ascending (indices must be sorted)."""
    counts = np.diff(matrix.indptr)
    keys = np.repeat(np.arange(len(counts), dtype=np.int64), counts) * matrix.shape[1]
    return keys + matrix.indices


def _lookup(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray,
            keys: np.ndarray | None = None) -> np.ndarray:
    """matrix[rows[i], cols[i]] for paired arrays (0 where absent), by binary search."""
    keys = _entry_keys(matrix) if keys is None else keys
    wanted = rows.astype(np.int64) * matrix.shape[1] + cols
    if not len(keys):
        return np.zeros(len(wanted))
    found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[found] == wanted, matrix.data[found], 0.0)


def adaptive_floors(scores: sp.csr_matrix, floor: float) -> np.ndarray:
    """Per keyword: the floor, or under it DAY_SHARE of its best today, never under LOOSE_SHARE."""
    best = np.zeros(scores.shape[0])
    counts = np.diff(scores.indptr)
    rows = np.flatnonzero(counts)
    if len(rows):
        best[rows] = np.maximum.reduceat(scores.data, scores.indptr[rows])
    return np.maximum(floor * LOOSE_SHARE, np.minimum(floor, DAY_SHARE * best))

