"""Field-weighted BM25 (BM25F) of keywords in papers: phrase postings per field, built once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from digest.analysis import MIN_SUPPORT, Lexicon, Terms, analyze
from digest.analysis import mine_acronyms as mine_definitions
from digest.query import FILTER_MARK, FilterIndex


class FieldIndex:
    """One text field of many documents as a flat term-id stream with positional postings."""

    def __init__(self, documents: Sequence[Sequence[int]], vocabulary_size: int) -> None:
        lengths = np.fromiter(map(len, documents), dtype=np.int64, count=len(documents))
        self.lengths = lengths.astype(np.float64)
        # A -1 after every document, so that no phrase runs from one paper into the next.
        self.stream = np.fromiter(
            (term_id for document in documents for term_id in (*document, -1)),
            dtype=np.int32, count=int(lengths.sum()) + len(documents),
        )
        self.document = np.repeat(np.arange(len(documents), dtype=np.int64), lengths + 1)
        self.order = np.argsort(self.stream, kind="stable")  # positions grouped by term id
        self.starts = np.searchsorted(self.stream[self.order], np.arange(vocabulary_size + 1))

    def count(self, forms: Sequence[tuple[int, ...]]) -> sp.csr_matrix:
        """How often each form occurs as a contiguous phrase in each document (form x doc)."""
        by_length: dict[int, list[int]] = {}
        for number, form in enumerate(forms):
            by_length.setdefault(len(form), []).append(number)
        rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for length, members in by_length.items():
            table = np.array([forms[number] for number in members], dtype=np.int64)
            lo = self.starts[table[:, 0]]
            counts = self.starts[table[:, 0] + 1] - lo
            owner = np.repeat(np.arange(len(members)), counts)
            # Every position of every form's first term, then keep those the rest follows.
            firsts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            positions = self.order[firsts + np.arange(int(counts.sum()))]
            for offset in range(1, length):
                # mode="clip" reads the final -1 past the end, which never equals a term id.
                follows = self.stream.take(positions + offset, mode="clip") == table[owner, offset]
                positions, owner = positions[follows], owner[follows]
            rows.append(np.asarray(members, dtype=np.int64)[owner])
            cols.append(self.document[positions])
        row, col = np.concatenate(rows), np.concatenate(cols)
        shape = (len(forms), len(self.lengths))
        return sp.csr_matrix((np.ones(len(row)), (row, col)), shape=shape)  # repeats summed


class PaperLike(Protocol):
    """What ranking reads from a paper: a stored Paper, a parsed PaperIn, a test dataclass."""

    @property
    def arxiv_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def abstract(self) -> str: ...
    @property
    def announced_on(self) -> date: ...


@dataclass(frozen=True)
class Weights:
    """BM25F knobs: a title occurrence counts `title` times an abstract one before saturation."""

    title: float = 3.0
    abstract: float = 1.0
    title_b: float = 0.3  # titles are short and alike in length: little length normalisation
    abstract_b: float = 0.75
    # Upper end of the usual 1.2-2.0: an abstract that keeps using the keyword is on topic.
    # Picked from a 6-cell sweep on bench/relevance.py (--ablations prints k1 1.2 beside it).
    k1: float = 2.0


class PaperIndex:
    """Papers prepared for ranking once: per-field phrase postings, lengths, defined acronyms."""

    def __init__(
        self,
        papers: Iterable[PaperLike],
        *,
        lexicon: Lexicon | None = None,
        weights: Weights | None = None,
        mine_acronyms: bool = True,
        min_support: int = MIN_SUPPORT,
    ) -> None:
        kept: dict[str, PaperLike] = {}
        for paper in papers:
            kept.setdefault(paper.arxiv_id, paper)
        docs = list(kept.values())
        self.ids = list(kept)
        self.position = {arxiv_id: number for number, arxiv_id in enumerate(self.ids)}
        self.weights = weights or Weights()
        lexicon = lexicon or Lexicon.shipped()
        definitions = [mine_definitions(f"{paper.title}. {paper.abstract}") for paper in docs]
        if mine_acronyms:
            lexicon = lexicon.with_definitions(definitions, min_support=min_support)
        self.lexicon = lexicon
        self.vocabulary: dict[str, int] = {}
        self.filters = FilterIndex(docs)  # author: and cat: terms

        def term_ids(text: str, foreign: set[str]) -> list[int]:
            # An acronym the paper defines otherwise gets a private term no keyword reaches.
            terms = analyze(text)
            if foreign:
                terms = [t + FILTER_MARK if t in foreign else t for t in terms]
            return [self.vocabulary.setdefault(t, len(self.vocabulary)) for t in terms]

        foreign = [lexicon.foreign(found) for found in definitions]
        titles = [term_ids(paper.title, f) for paper, f in zip(docs, foreign, strict=True)]
        abstracts = [term_ids(paper.abstract, f) for paper, f in zip(docs, foreign, strict=True)]
        self.title = FieldIndex(titles, len(self.vocabulary))
        self.abstract = FieldIndex(abstracts, len(self.vocabulary))
        newest_first = sorted(
            range(len(docs)), key=lambda n: (-docs[n].announced_on.toordinal(), self.ids[n])
        )
        self.newest_first = np.asarray(newest_first, dtype=np.int64)  # tie order: rank -> paper
        self.tie_rank = np.empty(len(docs), dtype=np.int64)  # paper -> rank; 0 wins a tie
        self.tie_rank[self.newest_first] = np.arange(len(docs))

    def __len__(self) -> int:
        return len(self.ids)

    def keyword_scores(self, keywords: Sequence[Terms]) -> sp.csr_matrix:
        """BM25F score of each keyword (any of its surface forms) in each paper: keyword x paper."""
        form_ids: dict[tuple[int, ...], int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for row, keyword in enumerate(keywords):
            for form in self.lexicon.forms(keyword):
                ids = tuple(self.vocabulary.get(word, -1) for word in form)
                if -1 not in ids:  # a word no paper uses: this form cannot occur
                    rows.append(row)
                    cols.append(form_ids.setdefault(ids, len(form_ids)))
        forms = list(form_ids)
        membership = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(keywords), len(forms))
        )
        w = self.weights
        frequency = sp.csr_matrix((len(keywords), len(self)))
        for field, weight, b in (
            (self.title, w.title, w.title_b), (self.abstract, w.abstract, w.abstract_b)
        ):
            average = max(float(field.lengths.mean()) if len(self) else 0.0, 1.0)
            scale = weight / (1.0 - b + b * field.lengths / average)
            frequency = frequency + membership @ field.count(forms) @ sp.diags(scale)
        scores = sp.csr_matrix(frequency)
        scores.eliminate_zeros()
        scores.sort_indices()
        papers_with = np.diff(scores.indptr)
        # ln(1 + N/df), not Robertson-Sparck Jones: a keyword is the user's choice, so one that
        # is in most of today's papers still counts (>= ln 2), it just counts less.
        idf = np.log1p(len(self) / np.maximum(papers_with, 1))
        tf = scores.data
        scores.data = np.repeat(idf, papers_with) * tf * (w.k1 + 1.0) / (w.k1 + tf)
        if any(keyword and keyword[0].startswith(FILTER_MARK) for keyword in keywords):
            scores = sp.csr_matrix(scores + self.filters.scores(keywords))
            scores.sort_indices()
        return scores
