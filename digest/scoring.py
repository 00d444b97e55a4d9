"""How well each keyword fits each paper: its words as terms, their closeness, and meaning.

A keyword's score in a paper (keyword_scores) fuses two signals, both on a 0-1 scale:
- lexical: the keyword's content words (stopwords dropped, stemmed, acronyms in either form)
  matched as terms with field-weighted BM25 saturation (a title hit counts more), weighted by
  idf, as the share of the keyword they cover; plus a bonus when its words stand within a few
  words of each other and a larger one for the whole phrase in the title;
- semantic (when the index has sentence embeddings): how far the cosine between the keyword's
  and the paper's embeddings rises above SEMANTIC_ZERO.
Fused = SCALE x (lexical + semantic weight x semantic) / (1 + semantic weight), or SCALE x
lexical without embeddings: one scale either way. Every weight was chosen on the dev half of
bench/data/natural_profiles.json (bench/relevance.py --sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from digest.analysis import MIN_SUPPORT, Lexicon, Terms, analyze, content_terms
from digest.analysis import mine_acronyms as mine_definitions
from digest.query import FILTER_MARK, FilterIndex

# A fused score of 1.0 (every word in the title, as a phrase, and close in meaning) is worth
# SCALE: the scale the rest of the product (floors, trending, author: and cat: scores) uses.
SCALE = 6.0
KeywordEncoder = Callable[[Sequence[str]], np.ndarray]  # texts -> L2-normalised rows


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
        words = self.stream >= 0
        self.counts = sp.csr_matrix(  # term x document occurrences
            (np.ones(int(words.sum())), (self.stream[words], self.document[words])),
            shape=(vocabulary_size, len(documents)),
        )

    def _positions(self, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner, position) of every occurrence of first[owner], grouped by owner."""
        lo = self.starts[first]
        counts = self.starts[first + 1] - lo
        owner = np.repeat(np.arange(len(first)), counts)
        firsts = np.repeat(lo - np.cumsum(counts) + counts, counts)
        return owner, self.order[firsts + np.arange(int(counts.sum()))]

    def count(self, forms: Sequence[tuple[int, ...]]) -> sp.csr_matrix:
        """How often each form occurs as a contiguous phrase in each document (form x doc)."""
        by_length: dict[int, list[int]] = {}
        for number, form in enumerate(forms):
            by_length.setdefault(len(form), []).append(number)
        rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for length, members in by_length.items():
            table = np.array([forms[number] for number in members], dtype=np.int64)
            owner, positions = self._positions(table[:, 0])
            for offset in range(1, length):
                # mode="clip" reads the final -1 past the end, which never equals a term id.
                follows = self.stream.take(positions + offset, mode="clip") == table[owner, offset]
                positions, owner = positions[follows], owner[follows]
            rows.append(np.asarray(members, dtype=np.int64)[owner])
            cols.append(self.document[positions])
        return self._matrix(np.concatenate(rows), np.concatenate(cols), len(forms))

    def near(self, pairs: np.ndarray, window: int) -> sp.csr_matrix:
        """Pair x doc: 1 where the pair's two terms stand within `window` words, either order."""
        owner, positions = self._positions(pairs[:, 0])
        found_rows, found_cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for offset in (*range(-window, 0), *range(1, window + 1)):
            at = np.clip(positions + offset, 0, len(self.stream) - 1)
            hit = (self.stream[at] == pairs[owner, 1]) & (
                self.document[at] == self.document[positions])
            found_rows.append(owner[hit])
            found_cols.append(self.document[positions[hit]])
        near = self._matrix(np.concatenate(found_rows), np.concatenate(found_cols), len(pairs))
        near.data[:] = 1.0
        return near

    def _matrix(self, rows: np.ndarray, cols: np.ndarray, height: int) -> sp.csr_matrix:
        shape = (height, len(self.lengths))
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)  # repeats summed


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
    """The knobs of keyword_scores; defaults chosen on the dev half of the natural profiles."""

    title: float = 3.0  # a title occurrence counts this many abstract ones before saturation
    abstract: float = 1.0
    title_b: float = 0.3  # titles are short and alike in length: little length normalisation
    abstract_b: float = 0.75
    k1: float = 1.2
    # A small bonus when neighbouring words of the keyword stand within `window` words (stop
    # words aside): "codec for music" for "music codec". Larger ones cost nDCG on dev.
    near: float = 0.1
    window: int = 2
    title_phrase: float = 0.3  # bonus share for the whole keyword, in order, in the title
    semantic: float = 1.0  # weight of closeness in meaning beside the lexical score
    semantic_zero: float = 0.1  # cosine below which a paper is not close at all


@dataclass(frozen=True)
class KeywordScores:
    """Keyword x paper matrices: the fused score, and its lexical part (for explanations)."""

    fused: sp.csr_matrix
    lexical: sp.csr_matrix
    complete: sp.csr_matrix  # 1 where a form of the keyword has every one of its words


class PaperIndex:
    """Papers prepared for ranking once: per-field postings, lengths, acronyms, embeddings."""

    def __init__(
        self,
        papers: Iterable[PaperLike],
        *,
        lexicon: Lexicon | None = None,
        weights: Weights | None = None,
        mine_acronyms: bool = True,
        min_support: int = MIN_SUPPORT,
        embeddings: Callable[[Sequence[PaperLike]], np.ndarray] | None = None,
        encoder: KeywordEncoder | None = None,
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
            terms = content_terms(tuple(analyze(text)))
            if foreign:
                terms = tuple(t + FILTER_MARK if t in foreign else t for t in terms)
            return [self.vocabulary.setdefault(t, len(self.vocabulary)) for t in terms]

        foreign = [lexicon.foreign(found) for found in definitions]
        titles = [term_ids(paper.title, f) for paper, f in zip(docs, foreign, strict=True)]
        abstracts = [term_ids(paper.abstract, f) for paper, f in zip(docs, foreign, strict=True)]
        self.title = FieldIndex(titles, len(self.vocabulary))
        self.abstract = FieldIndex(abstracts, len(self.vocabulary))
        self.saturation, self.idf = self._saturation()
        # Sentence embeddings (digest.semantic): one row per paper, and the keyword encoder.
        self.vectors = embeddings(docs) if embeddings is not None and docs else None
        self.encoder = encoder if self.vectors is not None else None
        newest_first = sorted(
            range(len(docs)), key=lambda n: (-docs[n].announced_on.toordinal(), self.ids[n])
        )
        self.newest_first = np.asarray(newest_first, dtype=np.int64)  # tie order: rank -> paper
        self.tie_rank = np.empty(len(docs), dtype=np.int64)  # paper -> rank; 0 wins a tie
        self.tie_rank[self.newest_first] = np.arange(len(docs))

    def __len__(self) -> int:
        return len(self.ids)

    def _saturation(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """Term x paper BM25F saturation tf/(k1 + tf) in [0, 1), and each term's idf."""
        w = self.weights
        combined = sp.csr_matrix((len(self.vocabulary), len(self)))
        for field, weight, b in (
            (self.title, w.title, w.title_b), (self.abstract, w.abstract, w.abstract_b)
        ):
            average = max(float(field.lengths.mean()) if len(self) else 0.0, 1.0)
            scale = weight / (1.0 - b + b * field.lengths / average)
            combined = combined + field.counts @ sp.diags(scale)
        combined = sp.csr_matrix(combined)
        combined.data = combined.data / (w.k1 + combined.data)
        # ln(1 + N/df): a word in most of today's papers still counts (>= ln 2), just less.
        papers_with = np.diff(combined.indptr)
        return combined, np.log1p(len(self) / np.maximum(papers_with, 1))

    def keyword_scores(
        self, keywords: Sequence[Terms], texts: Sequence[str] | None = None,
        *, keep_above: float = 0.0, keep_best: int | None = None,
    ) -> KeywordScores:
        """Each keyword's fused score in each paper (best of its surface forms): keyword x paper.

        `texts` are the keywords as written, for the embeddings; entries at or under
        `keep_above`, and past a keyword's `keep_best` best papers, are dropped, so a keyword
        keeps only the papers it could matter for.
        """
        forms, owners = self._forms(keywords)
        form_scores, form_complete = self._form_scores(forms)
        lexical = _best_per_owner(form_scores, owners, len(keywords))
        complete = _best_per_owner(form_complete, owners, len(keywords))
        if self.vectors is not None and self.encoder is not None and texts is not None:
            fused = self._fuse(lexical, keywords, texts, keep_above)
        else:
            fused = lexical * SCALE
            fused.data[fused.data <= keep_above] = 0.0
            fused.eliminate_zeros()
        if any(keyword and keyword[0].startswith(FILTER_MARK) for keyword in keywords):
            filtered = self.filters.scores(keywords)
            fused = sp.csr_matrix(fused + filtered)
            filtered.data[:] = 1.0  # an author: or cat: filter matches wholly or not at all
            complete = sp.csr_matrix(complete + filtered)
        if keep_best is not None:
            fused = _best_of_each_row(fused, keep_best)
        fused.sort_indices()
        return KeywordScores(fused, lexical, complete)

    def _forms(self, keywords: Sequence[Terms]) -> tuple[list[Terms], np.ndarray]:
        """Every keyword's surface forms as content terms, and the keyword each belongs to."""
        forms: list[Terms] = []
        owners: list[int] = []
        for row, keyword in enumerate(keywords):
            if not keyword or keyword[0].startswith(FILTER_MARK):
                continue
            for form in dict.fromkeys(content_terms(f) for f in self.lexicon.forms(keyword)):
                forms.append(form)
                owners.append(row)
        return forms, np.asarray(owners, dtype=np.int64)

    def _form_scores(self, forms: Sequence[Terms]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Lexical score in [0, 1) of each form in each paper, and where it is complete."""
        w = self.weights
        unknown_idf = float(np.log1p(len(self)))  # a word no paper uses: as rare as can be
        rows, cols, data, each = [], [], [], []
        for row, form in enumerate(forms):
            distinct = list(dict.fromkeys(form))
            idf = [float(self.idf[self.vocabulary[t]]) if t in self.vocabulary else unknown_idf
                   for t in distinct]
            total = sum(idf)
            for word, weight in zip(distinct, idf, strict=True):
                if word in self.vocabulary:
                    rows.append(row)
                    cols.append(self.vocabulary[word])
                    data.append(weight / total)
                    each.append(1.0 / len(distinct))
        shape = (len(forms), len(self.vocabulary))
        share = sp.csr_matrix((data, (rows, cols)), shape=shape)
        coverage = share @ self.saturation  # idf-weighted share of the words, saturated
        present = self.saturation.copy()
        present.data[:] = 1.0
        found = sp.csr_matrix(sp.csr_matrix((each, (rows, cols)), shape=shape) @ present)
        complete = found.copy()
        complete.data = (complete.data >= 1.0 - 1e-9).astype(np.float64)
        complete.eliminate_zeros()
        bonus = w.near * self._nearness(forms) + w.title_phrase * self._in_title(forms)
        scores = sp.csr_matrix(coverage + bonus.multiply(coverage > 0)) / (
            1.0 + w.near + w.title_phrase)
        return sp.csr_matrix(scores), complete

    def _ids(self, form: Terms) -> tuple[int, ...] | None:
        ids = tuple(self.vocabulary.get(word, -1) for word in form)
        return None if -1 in ids else ids

    def _in_title(self, forms: Sequence[Terms]) -> sp.csr_matrix:
        """Form x paper: 1 where the whole form stands in the title, in order."""
        known = [(row, ids) for row, form in enumerate(forms) if (ids := self._ids(form))]
        found = sp.csr_matrix((len(forms), len(self)))
        if known:
            counts = self.title.count([ids for _, ids in known])
            found = _rows_into(counts, [row for row, _ in known], len(forms))
        found.data[:] = 1.0
        return found

    def _nearness(self, forms: Sequence[Terms]) -> sp.csr_matrix:
        """Form x paper: share of the form's neighbouring word pairs found near each other.

        A one-word form counts as near wherever it occurs, so that one- and many-word keywords
        stay on one scale.
        """
        pair_ids: dict[tuple[int, int], int] = {}
        rows, cols, data = [], [], []
        singles = []
        for row, form in enumerate(forms):
            ids = [self.vocabulary.get(word, -1) for word in dict.fromkeys(form)]
            if len(ids) == 1:
                if ids[0] >= 0:
                    singles.append((row, ids[0]))
                continue
            pairs = list(zip(ids, ids[1:], strict=False))
            for pair in pairs:
                if -1 not in pair:
                    rows.append(row)
                    cols.append(pair_ids.setdefault(pair, len(pair_ids)))
                    data.append(1.0 / len(pairs))
        near = sp.csr_matrix((len(forms), len(self)))
        if pair_ids:
            table = np.asarray(list(pair_ids), dtype=np.int64)
            found = self.title.near(table, self.weights.window) + self.abstract.near(
                table, self.weights.window)
            found.data[:] = 1.0
            weights = sp.csr_matrix((data, (rows, cols)), shape=(len(forms), len(pair_ids)))
            near = sp.csr_matrix(weights @ found)
        if singles:
            present = self.saturation[[term for _, term in singles]]
            present.data[:] = 1.0
            near = near + _rows_into(present, [row for row, _ in singles], len(forms))
        return sp.csr_matrix(near)

    def _fuse(self, lexical: sp.csr_matrix, keywords: Sequence[Terms], texts: Sequence[str],
              keep_above: float) -> sp.csr_matrix:
        """SCALE x (lexical + w x closeness) / (1 + w), chunk by chunk, kept sparse."""
        assert self.vectors is not None and self.encoder is not None
        w = self.weights
        phrase_rows = [row for row, keyword in enumerate(keywords)
                       if keyword and not keyword[0].startswith(FILTER_MARK) and texts[row]]
        closeness = sp.csr_matrix(lexical.shape)
        if phrase_rows:
            encoded = self.encoder([texts[row] for row in phrase_rows])
            parts = []
            for start in range(0, len(phrase_rows), 2048):  # bounded dense temporaries
                cosine = encoded[start:start + 2048] @ self.vectors.T
                close = np.maximum(cosine - w.semantic_zero, 0.0) / (1.0 - w.semantic_zero)
                parts.append(sp.csr_matrix(close))
            closeness = _rows_into(sp.vstack(parts).tocsr(), phrase_rows, len(keywords))
        fused = sp.csr_matrix(lexical + w.semantic * closeness) * (SCALE / (1.0 + w.semantic))
        fused.data[fused.data <= keep_above] = 0.0
        fused.eliminate_zeros()
        return fused


def _rows_into(matrix: sp.csr_matrix, rows: Sequence[int], height: int) -> sp.csr_matrix:
    """A matrix whose row i is `matrix` row j where rows[j] == i (other rows empty)."""
    placed = sp.csr_matrix(
        (np.ones(len(rows)), (np.asarray(rows, dtype=np.int64), np.arange(len(rows)))),
        shape=(height, matrix.shape[0]),
    )
    return sp.csr_matrix(placed @ matrix)


def _best_of_each_row(matrix: sp.csr_matrix, count: int) -> sp.csr_matrix:
    """The matrix with only each row's `count` largest entries (ties: the lower column)."""
    sizes = np.diff(matrix.indptr)
    if not len(sizes) or sizes.max(initial=0) <= count:
        return matrix
    rows = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], sizes)
    keep = order[rank < count]
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])),
                         shape=matrix.shape)


def _best_per_owner(scores: sp.csr_matrix, owners: np.ndarray, height: int) -> sp.csr_matrix:
    """Keyword x paper: the best of the keyword's forms' rows (elementwise max)."""
    coo = scores.tocoo()
    if not coo.nnz:
        return sp.csr_matrix((height, scores.shape[1]))
    keys = owners[coo.row] * scores.shape[1] + coo.col
    order = np.lexsort((-coo.data, keys))
    keys, values = keys[order], coo.data[order]
    first = np.concatenate(([True], keys[1:] != keys[:-1]))
    keys, values = keys[first], values[first]
    return sp.csr_matrix((values, (keys // scores.shape[1], keys % scores.shape[1])),
                         shape=(height, scores.shape[1]))
