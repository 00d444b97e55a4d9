"""Each profile's best few papers out of the sparse pass's (profile, paper, score) entries.

The sparse pass (digest.ranker) hands over every entry that might make a profile's top `limit`,
grouped by profile: a few dozen a profile for ten picks. `shortlist` drops most of those with a
histogram per profile before anything is raised to 1/p or sorted, and `select_top` sorts what
is left exactly: score (to SCORE_RESOLUTION) descending, then newest, then smallest arXiv id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digest.scoring import PaperIndex

SCORE_RESOLUTION = 1e-6  # scores are compared, and reported, to this precision
BUCKETS = 32  # histogram buckets per profile in shortlist


@dataclass(frozen=True)
class Picks:
    """Picked (profile, paper, score) triples as parallel arrays, grouped by profile, best first."""

    profiles: np.ndarray
    papers: np.ndarray
    scores: np.ndarray


def select_top(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, *, limit: int, index: PaperIndex
) -> Picks:
    """Per row, the `limit` best entries: score desc, then newest, then smallest arXiv id."""
    if not len(rows):
        return Picks(rows, cols, scores)
    quantized = np.rint(scores * (1.0 / SCORE_RESOLUTION)).astype(np.int64)
    top = int(quantized.max())
    score_bits, tie_bits = max(1, top.bit_length()), max(1, (len(index) - 1).bit_length())
    packed = int(rows.max()).bit_length() + score_bits + tie_bits <= 62
    if packed:
        # One int64 key per entry, sorted in place: several times faster than argsort/lexsort.
        key = rows.astype(np.int64) << (score_bits + tie_bits)
        np.subtract(top, quantized, out=quantized)
        quantized <<= tie_bits
        key |= quantized
        key |= index.tie_rank[cols]
        key.sort()
        rows = key >> (score_bits + tie_bits)
    else:
        order = np.lexsort((index.tie_rank[cols], -quantized, rows))
        rows, cols, quantized = rows[order], cols[order], quantized[order]
    counts = np.bincount(rows)
    keep = np.flatnonzero(np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows] < limit)
    rows = rows[keep]
    if packed:
        key = key[keep]
        cols = index.newest_first[key & ((1 << tie_bits) - 1)]
        quantized = top - ((key >> tie_bits) & ((1 << score_bits) - 1))
    else:
        cols, quantized = cols[keep], quantized[keep]
    return Picks(rows, cols, quantized * SCORE_RESOLUTION)


def shortlist(rows: np.ndarray, powered: np.ndarray, *, limit: int, height: int,
              norm: float) -> np.ndarray:
    """Positions of the entries that can still be in their row's top `limit`, ascending.

    `rows` ascending in [0, height), `powered` >= 0 the scores to the power `norm`. Per row, a
    histogram of powered / row maximum finds `limit` entries at least some value m: the row's
    limit-th best is then >= m, and an entry whose score is more than 2 SCORE_RESOLUTION under
    m^(1/norm) can neither beat nor tie it. The top `limit` of what is kept is exactly the top
    `limit` of every entry (select_top orders both the same way).
    """
    counts = np.bincount(rows, minlength=height)
    filled = np.flatnonzero(counts)
    if len(rows) <= 2 * limit * len(filled):
        return np.arange(len(rows))
    best = np.ones(height)
    best[filled] = np.maximum.reduceat(powered, (np.cumsum(counts) - counts)[filled])
    best[best <= 0.0] = 1.0
    # Bucket 0 holds the row's best; bucket b, powered in (best (1 - (b + 1) / B), ...].
    bucket = (BUCKETS - powered * (BUCKETS / best)[rows]).astype(np.int64)
    np.minimum(bucket, BUCKETS - 1, out=bucket)
    bucket += rows * BUCKETS
    histogram = np.bincount(bucket, minlength=height * BUCKETS).reshape(height, BUCKETS)
    reached = np.cumsum(histogram, axis=1) >= limit
    deep = np.flatnonzero(reached[:, -1])  # rows with fewer than `limit` entries keep them all
    cut = reached[deep].argmax(axis=1)  # the bucket by which the row has `limit` entries
    # Every entry of buckets 0..cut is above this (rounding aside: the 1e-9 covers it).
    least = best[deep] * (1.0 - (cut + 1.0) / BUCKETS - 1e-9)
    score = np.maximum(least, 0.0) ** (1.0 / norm)
    threshold = np.full(height, -np.inf)
    threshold[deep] = np.maximum(score - 2 * SCORE_RESOLUTION, 0.0) ** norm
    return np.flatnonzero(powered >= threshold[rows])
