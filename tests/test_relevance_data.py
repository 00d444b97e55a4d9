"""The hand relevance judgments' shape, and the bench's metrics on hand-computed examples."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from digest.sources.arxiv_feed import parse_feed

ROOT = Path(__file__).resolve().parents[1]
JUDGMENTS = ROOT / "tests" / "data" / "relevance_judgments.json"


def load_bench() -> ModuleType:
    """bench/ is scripts, not a package: load relevance.py by path."""
    path = ROOT / "bench" / "relevance.py"
    spec = importlib.util.spec_from_file_location("bench_relevance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_judgments_shape() -> None:
    corpus = parse_feed((ROOT / "digest/data/sample_corpus.atom").read_bytes(), source="sample")
    known = {paper.arxiv_id for paper in corpus.papers}
    profiles = json.loads(JUDGMENTS.read_text())["profiles"]
    assert len(profiles) >= 5
    seen = set()
    for profile in profiles:
        keywords = profile["keywords"]
        assert keywords and all(isinstance(k, str) and k.strip() for k in keywords)
        assert tuple(keywords) not in seen
        seen.add(tuple(keywords))
        judgments = profile["judgments"]
        assert len(judgments) >= 30  # the pool, plus papers a later ranker surfaced (.md)
        assert set(judgments) <= known
        assert set(judgments.values()) <= {0, 1, 2}
        # A profile with nothing relevant, or everything, would measure nothing.
        assert any(g == 2 for g in judgments.values()) and any(g == 0 for g in judgments.values())


def test_seed_labels_cover_the_corpus() -> None:
    ids = [p.arxiv_id for p in bench.load_papers()]
    labels = bench.seed_labels(ids)
    assert [keywords for keywords, _ in labels] == [
        ["Speech Synthesis"], ["TTS"], ["Audio Caption"], ["Speech language model"]
    ]
    assert [sum(grades.values()) for _, grades in labels] == [85, 79, 97, 92]
    assert all(set(grades) == set(ids) for _, grades in labels)


def test_ndcg_by_hand() -> None:
    judgments = {"a": 2, "b": 1, "c": 0, "d": 2}
    ideal = 2 + 2 / math.log2(3) + 1 / 2  # grades 2, 2, 1 at ranks 1, 2, 3
    got = 2 / math.log2(3) + 2 / math.log2(4)  # c (0) at rank 1, a (2) at 2, d (2) at 3
    assert bench.ndcg_at_k(["c", "a", "d", "x"], judgments, k=3) == pytest.approx(got / ideal)
    assert bench.ndcg_at_k(["a", "d", "b"], judgments, k=3) == pytest.approx(1.0)
    assert bench.ndcg_at_k([], judgments) == 0.0
    assert bench.ndcg_at_k(["a"], {"a": 0}) == 0.0  # nothing relevant: 0, not a division error
    # Only the first k count.
    assert bench.ndcg_at_k(["c", "x", "a"], judgments, k=2) == 0.0


def test_precision_by_hand() -> None:
    judgments = {"a": 2, "b": 1, "c": 0}
    assert bench.precision_at_k(["a", "b", "c", "x"], judgments, k=4) == 0.5
    # A ranking shorter than k: the empty slots are misses.
    assert bench.precision_at_k(["a"], judgments, k=10) == 0.1
    assert bench.precision_at_k(["c", "a", "b"], judgments, k=2) == 0.5


def test_baselines_on_a_tiny_corpus() -> None:
    papers = parse_feed((ROOT / "digest/data/sample_corpus.atom").read_bytes(),
                        source="sample").papers[:40]
    runs = {"product": bench.product(papers, None), **bench.baselines(papers, None)}
    for name in ("product", "tfidf", "bm25", "substring"):
        ranking = runs[name](["speech"])
        assert 0 < len(ranking) <= 10 and len(set(ranking)) == len(ranking), name
    assert runs["substring"](["zzzz no such phrase"]) == []
    assert runs["bm25"](["zzzz"]) == []


def test_natural_profiles_are_split_and_judged() -> None:
    profiles = json.loads(bench.NATURAL_PROFILES.read_text())["profiles"]
    judged = bench.natural_judgments()
    splits = ("dev", "test", "dev2", "test2")
    assert len(profiles) >= 24
    assert {p["split"] for p in profiles} == set(splits)
    first = [p for p in profiles if p["split"] in ("dev", "test")]  # dev and test alternate
    assert abs(sum(p["split"] == "dev" for p in first) * 2 - len(first)) <= 1
    known = {paper.arxiv_id for paper in bench.load_papers()}
    kept = 0
    for profile in profiles:
        grades = judged[profile["id"]]
        assert set(grades) <= known and set(grades.values()) <= {0, 1, 2}
        enough = sum(g > 0 for g in grades.values()) >= bench.MIN_RELEVANT
        # The first 32 were written to have relevant papers; later sets keep the rule instead.
        assert enough or profile["split"] in ("dev2", "test2"), profile["id"]
        kept += enough
    counted = sum(len(bench.natural_labels(split)) for split in splits)
    assert counted == kept == len(bench.natural_labels(*splits))
    tuning = bench.natural_labels("dev", "dev2")
    assert len(tuning) == len(bench.natural_labels("dev")) + len(bench.natural_labels("dev2"))
    assert len(bench.natural_labels("test", "test2")) == counted - len(tuning)
