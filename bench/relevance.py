"""Relevance benchmark: graded nDCG@10 of the product beside plain baselines, in one run.

Run by a developer or `make bench`: `python bench/relevance.py` prints one JSON line per
(label set, system); `--per-profile` adds one per profile; `--sweep` tunes on dev and dev2 only.

Corpus: the bundled sample (337 real speech/audio/LLM papers), every paper a candidate.
Label sets (the protocols are written beside the data):
- `natural_dev`, `natural_dev2`, `natural_test`, `natural_test2`:
  bench/data/natural_profiles.json, 80 profiles written as researchers type them, judged blind
  0/1/2 from pools of several rankers (bench/data/PROTOCOL.md). Ranking choices are made on
  dev and dev2 (`natural_tuning`, the two together; dev2 was added when dev alone was too
  small to tell settings apart); test and test2 (a second held-out set, written after test
  had been looked at) are reported untouched, and `natural_held_out` is the two together.
- `seed`: weak labels from the seed page's per-keyword tables (tests/data/seed_sections.json):
  the section keyword is the profile, the papers listed under it are relevant (grade 1). The
  page was filled by arXiv keyword search, so these labels favour literal matching.
- `hand`: tests/data/relevance_judgments.json, 5 profiles graded 0/1/2 (rules beside it).
Systems:
- `product`: what a subscriber gets: digest.ranking.rank_keywords at the default floor, with the
  embeddings when the `semantic` extra is installed. `product_lexical`: the same without them.
- `tfidf`, `bm25`, `dense`, `substring`: the plain baselines of bench/baselines.py.
Metrics: nDCG@10 with linear gain (grade) and log2 discount, ideal from every judged paper of
the profile; P@10 = share of the top 10 graded >= 1 (an empty slot counts as a miss);
`empty` = profiles that got nothing; `empty_with_relevant` = of those, profiles with >= 3
judged-relevant papers. Unjudged papers count as 0; `judged_at_10` says how much was judged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from baselines import Dense, PlainBM25, TfIdf, substring_ranker  # noqa: E402

from digest import semantic  # noqa: E402
from digest.papers import PaperIn  # noqa: E402
from digest.ranking import RELEVANCE_FLOOR, PaperIndex, Weights, rank_keywords  # noqa: E402
from digest.sources.arxiv_feed import parse_feed  # noqa: E402

CORPUS = ROOT / "digest" / "data" / "sample_corpus.atom"
SEED_SECTIONS = ROOT / "tests" / "data" / "seed_sections.json"
JUDGMENTS = ROOT / "tests" / "data" / "relevance_judgments.json"
NATURAL_PROFILES = ROOT / "bench" / "data" / "natural_profiles.json"
NATURAL_JUDGMENTS = ROOT / "bench" / "data" / "natural_judgments.json"
K = 10
MIN_RELEVANT = 3

Ranking = list[str]
System = Callable[[Sequence[str]], Ranking]
Labels = list[tuple[list[str], dict[str, int]]]


def dcg(grades: Sequence[float]) -> float:
    """Discounted cumulative gain with linear gain: sum of grade / log2(rank + 1)."""
    return sum(grade / math.log2(rank + 2) for rank, grade in enumerate(grades))


def ndcg_at_k(ranking: Sequence[str], judgments: Mapping[str, int], k: int = K) -> float:
    """nDCG@k of a ranking against graded judgments; 0 when nothing is relevant."""
    ideal = dcg(sorted(judgments.values(), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([judgments.get(arxiv_id, 0) for arxiv_id in ranking[:k]]) / ideal


def precision_at_k(ranking: Sequence[str], judgments: Mapping[str, int], k: int = K) -> float:
    """Share of the k slots holding a paper graded >= 1; a short ranking's empty slots miss."""
    return sum(judgments.get(arxiv_id, 0) >= 1 for arxiv_id in ranking[:k]) / k


def load_papers() -> list[PaperIn]:
    """The bundled sample corpus, as the production parser reads it."""
    return parse_feed(CORPUS.read_bytes(), source="sample").papers


def natural_judgments() -> dict[str, dict[str, int]]:
    """Profile id -> {arXiv id: grade} of the natural profiles; {} before any judging."""
    if not NATURAL_JUDGMENTS.exists():
        return {}
    return json.loads(NATURAL_JUDGMENTS.read_text())["judgments"]


def natural_labels(*splits: str) -> Labels:
    """(keywords, judgments) of the natural profiles of some splits ('dev', 'test', 'test2').

    A profile with fewer than MIN_RELEVANT papers judged relevant is left out (a rule fixed
    before test2 was judged): its nDCG would only say how the few it has were ranked."""
    judged = natural_judgments()
    return [(entry["keywords"], judged[entry["id"]])
            for entry in json.loads(NATURAL_PROFILES.read_text())["profiles"]
            if entry["split"] in splits and entry["id"] in judged
            and sum(grade > 0 for grade in judged[entry["id"]].values()) >= MIN_RELEVANT]


def seed_labels(corpus_ids: Sequence[str]) -> Labels:
    """(profile, judgments) per seed section: listed papers 1, every other corpus paper 0."""
    sections: dict[str, list[str]] = json.loads(SEED_SECTIONS.read_text())
    return [([keyword], {i: int(i in set(ids)) for i in corpus_ids})
            for keyword, ids in sections.items()]


def hand_labels() -> Labels:
    """(profile, judgments) per hand-labelled profile."""
    data = json.loads(JUDGMENTS.read_text())
    return [(entry["keywords"], entry["judgments"]) for entry in data["profiles"]]


def embedder_or_none(cache_dir: Path) -> semantic.Embedder | None:
    """The embedder when the semantic extra is installed (and a JSON line saying how long the
    model took to load); None, and a line saying why, when it is not."""
    started = time.perf_counter()
    try:
        semantic.load_model()
    except semantic.SemanticUnavailable as error:
        print(json.dumps({"bench": "relevance", "semantic": "unavailable", "why": str(error)}))
        return None
    print(json.dumps({"bench": "semantic_speed", "what": "load model",
                      "seconds": round(time.perf_counter() - started, 2)}))
    return semantic.Embedder(cache_dir)


def product(papers: Sequence[PaperIn], embedder: semantic.Embedder | None,
            weights: Weights | None = None, floor: float = RELEVANCE_FLOOR) -> System:
    """The product's ranking of one profile, as daily planning computes it."""
    if embedder is None:
        index = PaperIndex(papers, weights=weights)
    else:
        index = PaperIndex(papers, weights=weights, embeddings=embedder.papers,
                           encoder=semantic.keyword_encoder(embedder))
    return lambda kws: [m.arxiv_id for m in rank_keywords(index, list(kws), limit=K,
                                                          floor=floor)]


def baselines(papers: Sequence[PaperIn], embedder: semantic.Embedder | None) -> dict[str, System]:
    """The plain baselines, each at its own defaults."""
    bm25, tfidf = PlainBM25(papers), TfIdf(papers)
    runs: dict[str, System] = {"tfidf": tfidf.rank, "bm25": bm25.rank,
                               "substring": substring_ranker(papers)}
    if embedder is not None:
        runs["dense"] = Dense(papers, embedder.papers(papers), embedder.phrases).rank
    return runs


def pooling_systems(papers: Sequence[PaperIn]) -> dict[str, Callable[[Sequence[str], int],
                                                                       Ranking]]:
    """Every system a judging pool draws from (bench/relevance_pool.py): (keywords, depth)."""
    embedder = semantic.Embedder(Path(tempfile.mkdtemp()))
    index = PaperIndex(papers, embeddings=embedder.papers,
                       encoder=semantic.keyword_encoder(embedder))
    lexical = PaperIndex(papers)
    dense = Dense(papers, embedder.papers(papers), embedder.phrases)
    return {
        "product": lambda kws, depth: [m.arxiv_id for m in rank_keywords(
            index, list(kws), limit=depth, floor=RELEVANCE_FLOOR)],
        "product_lexical": lambda kws, depth: [m.arxiv_id for m in rank_keywords(
            lexical, list(kws), limit=depth, floor=RELEVANCE_FLOOR)],
        "tfidf": TfIdf(papers).rank, "bm25": PlainBM25(papers).rank, "dense": dense.rank,
    }


def scores(labels: Labels, run: System) -> dict[str, float]:
    """Means over the profiles of one label set."""
    ndcgs, precisions, judged, empty, empty_relevant = [], [], [], 0, 0
    for keywords, judgments in labels:
        ranking = run(keywords)
        ndcgs.append(ndcg_at_k(ranking, judgments))
        precisions.append(precision_at_k(ranking, judgments))
        judged.append(sum(i in judgments for i in ranking[:K]) / max(1, len(ranking[:K])))
        if not ranking:
            empty += 1
            empty_relevant += sum(grade > 0 for grade in judgments.values()) >= 3
    return {"profiles": len(labels), "ndcg@10": round(float(np.mean(ndcgs)), 3),
            "p@10": round(float(np.mean(precisions)), 3),
            "judged_at_10": round(float(np.mean(judged)), 3), "empty": empty,
            "empty_with_relevant": empty_relevant}


def evaluate(label_sets: dict[str, Labels], runs: dict[str, System], per_profile: bool) -> None:
    """One JSON line per (label set, system), and per profile when asked."""
    for label_set, labels in label_sets.items():
        for name, run in runs.items():
            if per_profile:
                for keywords, judgments in labels:
                    print(json.dumps({"bench": "relevance", "labels": label_set, "system": name,
                                      "profile": keywords,
                                      "ndcg@10": round(ndcg_at_k(run(keywords), judgments), 3)}))
            print(json.dumps({"bench": "relevance", "labels": label_set, "system": name,
                              **scores(labels, run)}), flush=True)


def sweep(papers: Sequence[PaperIn], embedder: semantic.Embedder | None) -> None:
    """Weights and floors on the tuning profiles only (dev and dev2), one JSON line per
    setting, best last."""
    dev = natural_labels("dev", "dev2")
    results = []
    grid = {"semantic": (1.0, 2.0, 3.0), "semantic_zero": (0.1, 0.2),
            "near": (0.0, 0.3), "title_phrase": (0.0, 0.3), "k1": (1.2, 2.0)}
    for values in itertools.product(*grid.values()):
        weights = replace(Weights(), **dict(zip(grid, values, strict=True)))
        for floor in (1.0, 1.5, 2.0):
            result = scores(dev, product(papers, embedder, weights, floor))
            results.append((result["ndcg@10"], -result["empty"], repr(weights), floor))
            print(json.dumps({"bench": "relevance_sweep", "labels": "natural_tuning",
                              "weights": repr(weights), "floor": floor, **result}), flush=True)
    print(json.dumps({"bench": "relevance_sweep", "best": max(results)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-profile", action="store_true", help="also one line per profile")
    parser.add_argument("--sweep", action="store_true", help="tune on dev and dev2 and stop")
    args = parser.parse_args()
    papers = load_papers()
    with tempfile.TemporaryDirectory() as cache_dir:
        embedder = embedder_or_none(Path(cache_dir))
        if embedder is not None:
            started = time.perf_counter()
            embedder.papers(papers)
            seconds = time.perf_counter() - started
            print(json.dumps({"bench": "semantic_speed", "what": "embed corpus once",
                              "papers": len(papers), "seconds": round(seconds, 2),
                              "papers_per_s": round(len(papers) / seconds, 1)}))
        if args.sweep:
            sweep(papers, embedder)
            return
        runs = {"product": product(papers, embedder)}
        if embedder is not None:
            runs["product_lexical"] = product(papers, None)
        runs.update(baselines(papers, embedder))
        evaluate({"natural_dev": natural_labels("dev"), "natural_dev2": natural_labels("dev2"),
                  "natural_tuning": natural_labels("dev", "dev2"),
                  "natural_test": natural_labels("test"),
                  "natural_test2": natural_labels("test2"),
                  "natural_held_out": natural_labels("test", "test2"),
                  "seed": seed_labels([p.arxiv_id for p in papers]), "hand": hand_labels()},
                 runs, args.per_profile)


if __name__ == "__main__":
    main()
