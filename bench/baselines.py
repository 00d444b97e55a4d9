"""Plain baseline rankers the relevance bench compares the product with, and pools from.

Imported by bench/relevance.py and bench/relevance_pool.py (scripts, run by a developer or
`make bench`). Each baseline is the textbook method with its common defaults, nothing tuned:
- `tfidf`: scikit-learn TfidfVectorizer, word uni+bigrams, English stopwords, sublinear tf,
  fitted on title + abstract; the profile's keywords joined into one query; cosine.
- `bm25`: Okapi BM25 (k1 1.2, b 0.75, Lucene idf) over title + abstract as one bag of
  Snowball-stemmed words, the profile's words as a bag (no phrases, no acronym expansion).
- `dense`: all-MiniLM-L6-v2 (the `semantic` extra), each paper by its best cosine with any of
  the profile's keywords; no lexical match needed.
- `substring`: case-insensitive occurrences of each keyword in title + abstract, summed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import Stemmer

K = 10
WORD = re.compile(r"[^\W_]+")

Ranking = list[str]
System = Callable[[Sequence[str]], Ranking]


def _order(ids: Sequence[str], scores: np.ndarray, tie: np.ndarray, limit: int) -> Ranking:
    """Ids of the positive scores, best first, the newer paper first on ties."""
    hits = np.flatnonzero(scores > 0)
    order = hits[np.lexsort((-tie[hits], -scores[hits]))]
    return [ids[number] for number in order[:limit]]


def _newness(papers: Sequence[Any]) -> np.ndarray:
    return np.argsort(np.argsort([paper.announced_on.toordinal() for paper in papers]))


class PlainBM25:
    """Okapi BM25 over title + abstract as one bag of stemmed words."""

    def __init__(self, papers: Sequence[Any], k1: float = 1.2, b: float = 0.75) -> None:
        self.ids = [paper.arxiv_id for paper in papers]
        self.stemmer = Stemmer.Stemmer("english")
        self.vocabulary: dict[str, int] = {}
        rows, cols = [], []
        for number, paper in enumerate(papers):
            for word in self.words(f"{paper.title} {paper.abstract}"):
                rows.append(number)
                cols.append(self.vocabulary.setdefault(word, len(self.vocabulary)))
        tf = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(papers), len(self.vocabulary))
        )  # duplicates summed: term frequencies
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        df = np.bincount(tf.indices, minlength=len(self.vocabulary))
        self.idf = np.log1p((len(papers) - df + 0.5) / (df + 0.5))
        norm = k1 * (1 - b + b * lengths / lengths.mean())
        tf = tf.tocoo()
        weight = tf.data * (k1 + 1) / (tf.data + norm[tf.row])
        self.weights = sp.csc_matrix((weight, (tf.row, tf.col)), shape=tf.shape)
        self.tie = _newness(papers)

    def words(self, text: str) -> list[str]:
        return [self.stemmer.stemWord(word) for word in WORD.findall(text.lower())]

    def rank(self, keywords: Sequence[str], limit: int = K) -> Ranking:
        """Top papers for the bag of the keywords' words (each distinct word once)."""
        words = {word for keyword in keywords for word in self.words(keyword)}
        terms = sorted(self.vocabulary[word] for word in words if word in self.vocabulary)
        if not terms:
            return []
        scores = np.asarray(self.weights[:, terms] @ self.idf[terms]).ravel()
        return _order(self.ids, scores, self.tie, limit)


class TfIdf:
    """scikit-learn's TfidfVectorizer (uni+bigrams, English stopwords), cosine to the query."""

    def __init__(self, papers: Sequence[Any]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.ids = [paper.arxiv_id for paper in papers]
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), stop_words="english",
                                          sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(
            [f"{paper.title}. {paper.abstract}" for paper in papers])
        self.tie = _newness(papers)

    def rank(self, keywords: Sequence[str], limit: int = K) -> Ranking:
        query = self.vectorizer.transform([", ".join(keywords)])
        scores = np.asarray((self.matrix @ query.T).todense()).ravel()
        return _order(self.ids, scores, self.tie, limit)


class Dense:
    """Each paper by its best cosine with any keyword (all-MiniLM-L6-v2, the semantic extra)."""

    def __init__(self, papers: Sequence[Any], vectors: np.ndarray, embed: Callable) -> None:
        self.ids = [paper.arxiv_id for paper in papers]
        self.vectors = vectors
        self.embed = embed  # list[str] -> normalised rows
        self.tie = _newness(papers)

    def rank(self, keywords: Sequence[str], limit: int = K) -> Ranking:
        wanted = [keyword.strip() for keyword in keywords if keyword.strip()]
        if not wanted:
            return []
        cosines = (self.vectors @ self.embed(wanted).T).max(axis=1)
        return _order(self.ids, cosines + 1.0, self.tie, limit)  # +1: every paper is ranked


def substring_ranker(papers: Sequence[Any]) -> System:
    """Case-insensitive keyword occurrences in title + abstract, most first."""
    texts = [(paper.arxiv_id, f"{paper.title} {paper.abstract}".lower(), paper.announced_on)
             for paper in papers]

    def rank(keywords: Sequence[str]) -> Ranking:
        needles = [kw.strip().lower() for kw in keywords if kw.strip()]
        counted = [(sum(text.count(n) for n in needles), day, arxiv_id)
                   for arxiv_id, text, day in texts]
        counted = [row for row in counted if row[0] > 0]
        counted.sort(key=lambda row: (-row[0], -row[1].toordinal(), row[2]))
        return [arxiv_id for _, _, arxiv_id in counted[:K]]

    return rank
