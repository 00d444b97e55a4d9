"""The product P @ S^p of the sparse pass, for a run of profiles at a time: sparse or dense.

P is profile x keyword (digest.profile_set, each row weighted by the ranker's per-profile scale),
S^p keyword x paper (the keyword scores to the power p). Each entry of S^p gets `big` added where
the keyword reaches its floor, so one product gives a profile's sum and its count of strong hits,
and papers no keyword reaches the floor on are dropped outright.

On a typical day only a few hundred papers can be picked at all (the rest are off every
subscriber's topics), and a profile's few keywords touch a good share of those: then the product
is accumulated densely over those papers alone (scipy's sparse x dense product, summing the same
terms in the same order as the sparse product, so the values are the same to the last bit),
about three times faster than the sparse product. Otherwise it stays sparse.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from digest.profile_set import ProfileSet

# Dense when the keyword x reachable-paper array has at most DENSE_CELLS cells, and there are at
# most DENSE_WIDTH times as many reachable papers as a profile's keyword scores on average: in
# bench/rank.py one scored entry costs about as much in the sparse product as 16 cells of a dense
# row, so 8 leaves a margin.
DENSE_CELLS = 1 << 24
DENSE_WIDTH = 8
DENSE_BLOCK = 1 << 18  # cells in one dense block of profiles x papers, so that it stays in cache


class ProfileProduct:
    """S^p encoded once for a profile set; `entries` gives a run of profiles' surviving entries."""

    def __init__(self, profiles: ProfileSet, powered: sp.csr_matrix, strong: np.ndarray) -> None:
        """`powered`: S^p (keyword x paper); `strong`: per stored entry, s >= its floor."""
        self.profiles = profiles
        # A paper no keyword scores >= floor on can never be picked: drop its column outright.
        reachable = np.zeros(powered.shape[1], dtype=bool)
        reachable[powered.indices[strong]] = True
        widest = int(np.diff(profiles.indptr).max(initial=1))
        # A power of two above twice any profile's total: adding and removing it is exact enough.
        top = float(powered.data.max(initial=0.0))
        self.big = float(2.0 ** np.ceil(np.log2(2.0 * widest * top + 1.0)))
        encoded = powered.copy()
        encoded.data = np.where(reachable[encoded.indices], encoded.data + self.big * strong, 0.0)
        encoded.eliminate_zeros()
        self.encoded = encoded
        self.columns = np.unique(encoded.indices)  # the reachable papers
        self.dense = self._dense()

    def _dense(self) -> np.ndarray | None:
        """`encoded` over the reachable papers as a dense array, when that is the cheaper way."""
        encoded, width = self.encoded, len(self.columns)
        height = encoded.shape[0]
        if not width or height * width > DENSE_CELLS:
            return None
        uses = np.bincount(self.profiles.keyword_ids, minlength=height)
        entries = float(uses @ np.diff(encoded.indptr)) / max(1, int(uses.sum()))
        if width > DENSE_WIDTH * entries:
            return None
        dense = np.zeros((height, width))
        rows = np.repeat(np.arange(height), np.diff(encoded.indptr))
        dense[rows, np.searchsorted(self.columns, encoded.indices)] = encoded.data
        return dense

    def entries(
        self, start: int, stop: int, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row - start, paper, value / scale) of each entry >= 1 of profiles [start, stop) with
        row i weighted by scale[i], rows ascending."""
        if self.dense is None:
            product = self.profiles.matrix(start, stop, scale) @ self.encoded
            kept = np.flatnonzero(product.data >= 1.0)
            rows = np.repeat(np.arange(stop - start), np.diff(product.indptr))[kept]
            return rows, product.indices[kept], product.data[kept] / scale[rows]
        width = len(self.columns)
        step = max(1, DENSE_BLOCK // width)
        found_rows, found_cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        found_values = [np.zeros(0)]
        for lo in range(start, stop, step):
            hi = min(lo + step, stop)
            block = self.profiles.matrix(lo, hi, scale[lo - start:hi - start]) @ self.dense
            kept = np.flatnonzero(block >= 1.0)
            rows, local = np.divmod(kept, width)
            rows += lo - start
            found_rows.append(rows)
            found_cols.append(self.columns[local])
            found_values.append(block.ravel()[kept] / scale[rows])
        return np.concatenate(found_rows), np.concatenate(found_cols), np.concatenate(found_values)
