"""Keyword profiles compiled once for the sparse pass: a profile x keyword matrix in CSR parts.

Each distinct keyword is analysed once however many profiles use it (digest.query keyword_key),
so the score matrix has one row per distinct keyword, and a profile is a few indexes into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import scipy.sparse as sp

from digest.query import keyword_key


@dataclass(frozen=True)
class ProfileSet:
    """Profiles compiled once: each profile's distinct keywords and how the user wrote them."""

    indptr: np.ndarray  # profile i's entries are indptr[i]:indptr[i + 1]
    keyword_ids: np.ndarray  # per entry: index into `keywords`
    label_ids: np.ndarray  # per entry: index into `labels`
    keywords: list[tuple[str, ...]]  # analyzed (or filter keys, digest.query), distinct
    labels: list[str]  # keywords as written, distinct
    texts: list[str]  # per keyword, its words as first written (what the embeddings read)
    # Negative keywords (-survey, -cat:cs.CV): profile i's are neg_ids[neg_indptr[i]:...[i + 1]],
    # indexes into `keywords` too, so one score matrix serves both.
    neg_indptr: np.ndarray | None = None
    neg_ids: np.ndarray | None = None

    @classmethod
    def compile(cls, profiles: Sequence[Sequence[str]]) -> ProfileSet:
        """Analyze each distinct keyword once; repeats within a profile count once (first wins)."""
        if any(isinstance(profile, str) for profile in profiles):
            raise TypeError("a profile is a list of keywords, not one string")
        written = list(chain.from_iterable(profiles))
        labels = list(dict.fromkeys(written))  # each distinct keyword as written, analyzed once
        label_index = {raw: number for number, raw in enumerate(labels)}
        keyword_index: dict[tuple[str, ...], int] = {}
        label_keyword = []  # label id -> keyword id, -1 when it has no words
        negative_label = []
        texts: list[str] = []
        for label, (key, negative) in zip(labels, map(keyword_key, labels), strict=True):
            if key is not None and key not in keyword_index:
                keyword_index[key] = len(keyword_index)
                texts.append(label.strip().lstrip("-").strip().strip('"'))
            label_keyword.append(-1 if key is None else keyword_index[key])
            negative_label.append(negative)
        lengths = np.fromiter(map(len, profiles), dtype=np.int64, count=len(profiles))
        flat = np.fromiter(map(label_index.__getitem__, written), np.int64, count=len(written))
        rows = np.repeat(np.arange(len(profiles), dtype=np.int64), lengths)
        keyword_ids = np.asarray(label_keyword, dtype=np.int64)[flat]
        is_negative = np.asarray(negative_label, dtype=bool)[flat]
        neg_indptr = neg_ids = None
        if is_negative.any():
            negatives = np.flatnonzero(is_negative & (keyword_ids >= 0))
            neg_indptr = np.zeros(len(profiles) + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows[negatives], minlength=len(profiles)), out=neg_indptr[1:])
            neg_ids = keyword_ids[negatives]
        entries = np.flatnonzero((keyword_ids >= 0) & ~is_negative)
        _, first = np.unique(
            rows[entries] * max(1, len(keyword_index)) + keyword_ids[entries], return_index=True
        )
        entries = np.sort(entries[first])  # back in the order the user wrote them
        indptr = np.zeros(len(profiles) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[entries], minlength=len(profiles)), out=indptr[1:])
        return cls(
            indptr=indptr,
            keyword_ids=keyword_ids[entries].astype(np.int32),
            label_ids=flat[entries].astype(np.int32),
            keywords=list(keyword_index),
            labels=[label.strip() for label in labels],
            texts=texts,
            neg_indptr=neg_indptr,
            neg_ids=neg_ids,
        )

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def matrix(
        self, start: int, stop: int, row_weights: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """Profiles [start, stop) as a profile x keyword matrix: 1 (or the row's weight) per hit."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        sizes = np.diff(self.indptr[start:stop + 1])
        data = np.ones(hi - lo) if row_weights is None else np.repeat(row_weights, sizes)
        return sp.csr_matrix(
            (data, self.keyword_ids[lo:hi], self.indptr[start:stop + 1] - lo),
            shape=(stop - start, len(self.keywords)),
        )
