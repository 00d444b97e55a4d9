"""A per-subscriber Rocchio model over TF-IDF: "more/less like this" votes re-weight candidates.

Like arxiv-sanity-lite's tags, but with a centroid instead of an SVM: with three to a few dozen
ratings a centroid is as good and needs no training. A candidate's relevance is multiplied by
exp(UP * cos(candidate, liked centroid) - DOWN * cos(candidate, disliked centroid)), so three
"less like this" on surveys push later surveys under the relevance floor, and papers close to
ones the subscriber liked rise, with "similar to <that paper>" as the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.analysis import analyze
from digest.scoring import PaperLike

MIN_RATINGS = 3  # fewer votes than this: too little to go on, the model stays off
UP = 1.5  # at most e^1.5 = 4.5x for a paper identical to the liked ones
DOWN = 4.0  # dislikes weigh more: an unwanted paper costs the reader more than a missed one
SIMILAR_TO = 0.2  # cosine to one liked paper from which a promoted pick names it as the reason
_STOP = frozenset(analyze(
    "a an and are as at be by for from has have in is it its of on or our that the their these "
    "this to we which with while using based results show propose proposed paper approach model "
    "models method methods new can also both than more such into"
))


@dataclass(frozen=True)
class Rating:
    """One vote: +1 more like this, -1 less like this, a fraction for a click, +2 saved."""

    arxiv_id: str
    weight: float


def text_of(paper: PaperLike) -> str:
    return f"{paper.title}. {paper.abstract}"


class Vectorizer:
    """Sublinear TF-IDF over the ranker's terms (stemmed, acronym-aware), idf from a pool."""

    def __init__(self, pool: Iterable[str]) -> None:
        documents = [set(analyze(text)) - _STOP for text in pool]
        self.vocabulary: dict[str, int] = {}
        for terms in documents:
            for term in terms:
                self.vocabulary.setdefault(term, len(self.vocabulary))
        df = np.zeros(len(self.vocabulary))
        for terms in documents:
            df[[self.vocabulary[t] for t in terms]] += 1
        self.idf = np.log((1 + len(documents)) / (1 + df)) + 1.0

    def vectors(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Rows of L2-normalised TF-IDF; terms the pool never saw are left out."""
        rows, cols, data = [], [], []
        for row, text in enumerate(texts):
            counts: dict[int, int] = {}
            for term in analyze(text):
                column = self.vocabulary.get(term)
                if column is not None and term not in _STOP:
                    counts[column] = counts.get(column, 0) + 1
            for column, count in counts.items():
                rows.append(row)
                cols.append(column)
                data.append((1.0 + math.log(count)) * self.idf[column])
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(texts), len(self.vocabulary)))
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix)


@dataclass(frozen=True)
class Adjustment:
    """Per candidate: the factor its relevance is multiplied by, and the liked paper it is like."""

    factors: np.ndarray
    similar_to: list[str]  # arXiv id of the closest liked paper, or "" when not promoted by one


class FeedbackModel:
    """One subscriber's liked and disliked centroids."""

    def __init__(self, liked: sp.csr_matrix, liked_ids: list[str], weights: np.ndarray,
                 disliked: sp.csr_matrix) -> None:
        self.liked, self.liked_ids, self.disliked = liked, liked_ids, disliked
        self.positive = _centroid(liked, weights)
        self.negative = _centroid(disliked, np.ones(disliked.shape[0]))

    @classmethod
    def fit(cls, ratings: Sequence[Rating], papers: dict[str, PaperLike],
            vectorizer: Vectorizer) -> FeedbackModel | None:
        """A model from the ratings whose papers are known; None below MIN_RATINGS of them."""
        known = [r for r in ratings if r.arxiv_id in papers and r.weight != 0]
        if len(known) < MIN_RATINGS:
            return None
        liked = [r for r in known if r.weight > 0]
        disliked = [r for r in known if r.weight < 0]
        return cls(
            vectorizer.vectors([text_of(papers[r.arxiv_id]) for r in liked]),
            [r.arxiv_id for r in liked],
            np.array([r.weight for r in liked]),
            vectorizer.vectors([text_of(papers[r.arxiv_id]) for r in disliked]),
        )

    def adjust(self, candidates: sp.csr_matrix) -> Adjustment:
        """Factors for candidate rows (vectors from the same Vectorizer)."""
        up = candidates @ self.positive if self.positive is not None else 0.0
        down = candidates @ self.negative if self.negative is not None else 0.0
        factors = np.exp(UP * np.asarray(up) - DOWN * np.asarray(down)) * np.ones(
            candidates.shape[0])
        similar = [""] * candidates.shape[0]
        if self.liked.shape[0]:
            closeness = (candidates @ self.liked.T).toarray()
            best = closeness.argmax(axis=1)
            for row in np.flatnonzero((closeness.max(axis=1) >= SIMILAR_TO) & (factors > 1.0)):
                similar[row] = self.liked_ids[best[row]]
        return Adjustment(factors, similar)


def _centroid(vectors: sp.csr_matrix, weights: np.ndarray) -> np.ndarray | None:
    """The normalised weighted mean of rows, None without rows."""
    if vectors.shape[0] == 0:
        return None
    mean = np.asarray(vectors.T @ weights).ravel() / max(float(weights.sum()), 1e-12)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm else None
