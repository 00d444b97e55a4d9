"""Relevance benchmark: nDCG@10 and P@10 of our ranker beside plain BM25 and substring matching.

Run by a developer or `make bench`: `python bench/relevance.py` prints one JSON line per
(label set, system), then one per profile with --per-profile. `--pool` prints the judging pool
of each hand-labelled profile (top 10 of every system plus a seeded random fill up to 30).

Corpus: the bundled sample (337 real speech/audio papers), every paper a candidate.
Label sets:
- `seed`: weak labels from the seed page's per-keyword tables (tests/data/seed_sections.json):
  the section keyword is the profile, the papers listed under it are relevant (grade 1). The
  page was filled by arXiv keyword search, so these labels favour literal matching.
- `hand`: tests/data/relevance_judgments.json, graded 0/1/2 by reading title and abstract
  (rules in tests/data/relevance_judgments.md).
Systems:
- `ours`: digest.ranking.rank_keywords (BM25F over phrases, acronyms, title weight).
- `bm25`: textbook Okapi BM25 (k1 1.2, b 0.75, Lucene idf) over title + abstract as one field,
  the profile's words as a bag (no phrases, no acronym expansion), lower-cased and Snowball-
  stemmed. Implemented here with scipy (bm25s is not a dependency).
- `substring`: case-insensitive occurrences of each keyword in title + abstract, summed.
- `semantic` (only with the `semantic` extra installed; otherwise a JSON line says skipped):
  ours, its top digest.semantic.CANDIDATES re-ranked by digest.semantic.rerank (the function
  daily planning calls with DIGEST_SEMANTIC_RERANK on). `dense`: every paper by its best
  cosine with a keyword alone (no lexical match needed), a baseline for the embeddings.
  Embeddings are cached under a temporary directory; the timings line reports embedding the
  corpus once (papers/s) and a cached re-rank of every profile.
Metrics: nDCG@10 with linear gain (grade) and log2 discount, ideal from every judged paper of
the profile; P@10 = share of the top 10 with grade >= 1 (an empty slot counts as a miss).
Unjudged papers count as grade 0; `judged_at_10` says how much of the top 10 was judged.
`ndcg@10_judged`: nDCG@10 of the ranking with unjudged papers removed first (Sakai's
condensed lists), fairer to systems the judging pool did not come from (semantic, dense).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import Stemmer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest import semantic  # noqa: E402
from digest.analysis import Lexicon  # noqa: E402
from digest.papers import PaperIn  # noqa: E402
from digest.ranking import KEYWORD_NORM, PaperIndex, Weights, rank_keywords  # noqa: E402
from digest.sources.arxiv_feed import parse_feed  # noqa: E402

CORPUS = ROOT / "digest" / "data" / "sample_corpus.atom"
SEED_SECTIONS = ROOT / "tests" / "data" / "seed_sections.json"
JUDGMENTS = ROOT / "tests" / "data" / "relevance_judgments.json"
K = 10
POOL_SIZE = 30
WORD = re.compile(r"[^\W_]+")

Ranking = list[str]
System = Callable[[Sequence[str]], Ranking]


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


class PlainBM25:
    """Okapi BM25 over title + abstract as one bag of stemmed words."""

    def __init__(self, papers: Sequence[PaperIn], k1: float = 1.2, b: float = 0.75) -> None:
        self.ids = [paper.arxiv_id for paper in papers]
        self.stemmer = Stemmer.Stemmer("english")
        self.vocabulary: dict[str, int] = {}
        rows, cols = [], []
        for number, paper in enumerate(papers):
            for word in self.words(f"{paper.title} {paper.abstract}"):
                rows.append(number)
                cols.append(self.vocabulary.setdefault(word, len(self.vocabulary)))
        tf = sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(len(papers), len(self.vocabulary))
        )  # duplicates summed: term frequencies
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        df = np.bincount(tf.indices, minlength=len(self.vocabulary))
        self.idf = np.log1p((len(papers) - df + 0.5) / (df + 0.5))
        norm = k1 * (1 - b + b * lengths / lengths.mean())
        tf = tf.tocoo()
        weight = tf.data * (k1 + 1) / (tf.data + norm[tf.row])
        self.weights = sp.csc_matrix((weight, (tf.row, tf.col)), shape=tf.shape)
        # The newest (largest id) first on ties, as our ranker does.
        self.tie = np.argsort(np.argsort([paper.announced_on.toordinal() for paper in papers]))

    def words(self, text: str) -> list[str]:
        return [self.stemmer.stemWord(word) for word in WORD.findall(text.lower())]

    def rank(self, keywords: Sequence[str], limit: int = K) -> Ranking:
        """Top papers for the bag of the keywords' words (each distinct word once)."""
        words = {word for keyword in keywords for word in self.words(keyword)}
        query = {self.vocabulary[word] for word in words if word in self.vocabulary}
        if not query:
            return []
        terms = sorted(query)
        scores = np.asarray(self.weights[:, terms] @ self.idf[terms]).ravel()
        hits = np.flatnonzero(scores > 0)
        order = hits[np.lexsort((-self.tie[hits], -scores[hits]))]
        return [self.ids[number] for number in order[:limit]]


def substring_ranker(papers: Sequence[PaperIn]) -> System:
    """Case-insensitive keyword occurrences in title + abstract, most first."""
    texts = [(paper.arxiv_id, f"{paper.title} {paper.abstract}".lower(), paper.announced_on)
             for paper in papers]

    def rank(keywords: Sequence[str]) -> Ranking:
        needles = [kw.strip().lower() for kw in keywords if kw.strip()]
        counted = [(sum(text.count(n) for n in needles), day, arxiv_id)
                   for arxiv_id, text, day in texts]
        counted = [row for row in counted if row[0] > 0]
        counted.sort(key=lambda row: (-row[0], -row[1].toordinal(), row[2]))
        return [arxiv_id for _, _, arxiv_id in counted[:K]]

    return rank


def ours(index: PaperIndex, norm: float = KEYWORD_NORM) -> System:
    """Our ranker, a profile's keywords combined with a given p-norm."""
    return lambda kws: [m.arxiv_id for m in rank_keywords(index, list(kws), limit=K, norm=norm)]


def systems(papers: Sequence[PaperIn], ablations: bool = False) -> dict[str, System]:
    """The three systems over the same papers (and variants of ours with --ablations)."""
    index = PaperIndex(papers)
    bm25 = PlainBM25(papers)
    runs = {"ours": ours(index), "bm25": bm25.rank, "substring": substring_ranker(papers)}
    if ablations:
        # The aggregation of a profile's keywords: p = 1 is the old sum, large p the max.
        for norm in (1.0, 2.0, 8.0, 32.0):
            runs[f"ours_norm_{norm:g}"] = ours(index, norm)
        # Mined acronyms accepted from a single defining paper (the old rule).
        single = PaperIndex(papers, lexicon=Lexicon.shipped(), min_support=1)
        runs["ours_mined_support_1"] = ours(single)
        runs["ours_no_mining"] = ours(PaperIndex(papers, mine_acronyms=False))
        runs["ours_k1_1.2"] = ours(PaperIndex(papers, weights=Weights(k1=1.2)))
    return runs


def semantic_systems(papers: Sequence[PaperIn], index: PaperIndex, cache_dir: Path,
                     ablations: bool = False) -> dict[str, System]:
    """`semantic` and `dense` when the extra is installed; {} (and a JSON line) otherwise."""
    started = time.perf_counter()
    try:
        semantic.load_model()
    except semantic.SemanticUnavailable as error:
        print(json.dumps({"bench": "relevance", "system": "semantic", "skipped": str(error)}))
        return {}
    print(json.dumps({"bench": "semantic_speed", "what": "load model",
                      "seconds": round(time.perf_counter() - started, 2)}))
    by_id = {paper.arxiv_id: paper for paper in papers}
    embedder = semantic.Embedder(cache_dir)
    started = time.perf_counter()
    PaperIndex(papers)  # the baseline: what the lexical ranker spends on the same corpus
    indexing = time.perf_counter() - started
    started = time.perf_counter()
    embedder.papers(papers)
    seconds = time.perf_counter() - started
    print(json.dumps({"bench": "semantic_speed", "what": "embed corpus once", "papers": len(papers),
                      "seconds": round(seconds, 2), "papers_per_s": round(len(papers) / seconds, 1),
                      "lexical_index_seconds": round(indexing, 3)}))

    def reranked(weight: float) -> System:
        def rank(keywords: Sequence[str]) -> Ranking:
            matches = rank_keywords(index, list(keywords), limit=semantic.CANDIDATES)
            return [m.arxiv_id for m in semantic.rerank(
                embedder, keywords, matches, by_id, weight=weight)][:K]
        return rank

    def dense(keywords: Sequence[str]) -> Ranking:
        cosines = semantic.similarities(embedder, keywords, papers)
        if cosines is None:
            return []
        return [papers[n].arxiv_id for n in np.argsort(-cosines, kind="stable")[:K]]

    runs = {"semantic": reranked(semantic.WEIGHT), "dense": dense}
    if ablations:  # the weight was set before measuring; these show how much it matters
        for weight in (1.0, 4.0, 8.0):
            runs[f"semantic_weight_{weight:g}"] = reranked(weight)
    return runs


def time_reranks(runs: dict[str, System], profiles: Sequence[Sequence[str]]) -> None:
    """Per profile: ours alone, and ours + cached semantic re-rank, in the same run."""
    if "semantic" not in runs:
        return
    for keywords in profiles:
        runs["semantic"](keywords)  # warm: phrase embeddings are made once per process
    timings = {}
    for name in ("ours", "semantic"):
        started = time.perf_counter()
        for _ in range(20):
            for keywords in profiles:
                runs[name](keywords)
        timings[name] = (time.perf_counter() - started) / (20 * len(profiles)) * 1000
    print(json.dumps({"bench": "semantic_speed", "what": "rank one profile, cached embeddings",
                      "ours_ms": round(timings["ours"], 2),
                      "ours_plus_rerank_ms": round(timings["semantic"], 2)}))


def seed_labels(corpus_ids: Sequence[str]) -> list[tuple[list[str], dict[str, int]]]:
    """(profile, judgments) per seed section: listed papers 1, every other corpus paper 0."""
    sections: dict[str, list[str]] = json.loads(SEED_SECTIONS.read_text())
    return [
        ([keyword], {i: int(i in listed) for i in corpus_ids})
        for keyword, ids in sections.items()
        for listed in [set(ids)]
    ]


def hand_labels() -> list[tuple[list[str], dict[str, int]]]:
    """(profile, judgments) per hand-labelled profile."""
    data = json.loads(JUDGMENTS.read_text())
    return [(entry["keywords"], entry["judgments"]) for entry in data["profiles"]]


def evaluate(label_set: str, labels: list[tuple[list[str], dict[str, int]]],
             runs: dict[str, System], per_profile: bool) -> None:
    """One JSON line per system (mean over profiles), and per profile when asked."""
    for name, run in runs.items():
        ndcgs, precisions, judged, condensed = [], [], [], []
        for keywords, judgments in labels:
            ranking = run(keywords)
            ndcgs.append(ndcg_at_k(ranking, judgments))
            precisions.append(precision_at_k(ranking, judgments))
            judged.append(sum(i in judgments for i in ranking[:K]) / max(1, len(ranking[:K])))
            condensed.append(ndcg_at_k([i for i in ranking if i in judgments], judgments))
            if per_profile:
                print(json.dumps({"bench": "relevance", "labels": label_set, "system": name,
                                  "profile": keywords, "ndcg@10": round(ndcgs[-1], 3),
                                  "p@10": round(precisions[-1], 3)}))
        print(json.dumps({
            "bench": "relevance", "labels": label_set, "system": name, "profiles": len(labels),
            "ndcg@10": round(float(np.mean(ndcgs)), 3),
            "p@10": round(float(np.mean(precisions)), 3),
            "judged_at_10": round(float(np.mean(judged)), 3),
            "ndcg@10_judged": round(float(np.mean(condensed)), 3),
        }), flush=True)


def print_pool(papers: Sequence[PaperIn], runs: dict[str, System], seed: int) -> None:
    """Each hand profile's judging pool as JSON lines: top 10 of every system, random fill."""
    by_id = {paper.arxiv_id: paper for paper in papers}
    rng = random.Random(seed)
    for entry in json.loads(JUDGMENTS.read_text())["profiles"]:
        pool = list(dict.fromkeys(i for run in runs.values() for i in run(entry["keywords"])[:K]))
        rest = [i for i in by_id if i not in pool]
        pool += rng.sample(rest, POOL_SIZE - len(pool))
        for arxiv_id in sorted(pool):
            paper = by_id[arxiv_id]
            print(json.dumps({"profile": entry["keywords"], "id": arxiv_id, "title": paper.title,
                              "abstract": paper.abstract}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-profile", action="store_true", help="also one line per profile")
    parser.add_argument("--pool", action="store_true", help="print the judging pools and stop")
    parser.add_argument("--seed", type=int, default=6, help="random fill of the judging pools")
    parser.add_argument("--ablations", action="store_true", help="also variants of our ranker")
    args = parser.parse_args()
    papers = load_papers()
    runs = systems(papers, args.ablations and not args.pool)
    with tempfile.TemporaryDirectory() as cache_dir:
        if not args.pool:
            runs.update(semantic_systems(papers, PaperIndex(papers), Path(cache_dir),
                                         args.ablations))
        run(args, papers, runs)


def run(args: argparse.Namespace, papers: list[PaperIn], runs: dict[str, System]) -> None:
    """Pools, or both label sets and the re-rank timings."""
    if args.pool:
        print_pool(papers, runs, args.seed)
        return
    evaluate("seed", seed_labels([p.arxiv_id for p in papers]), runs, args.per_profile)
    evaluate("hand", hand_labels(), runs, args.per_profile)
    time_reranks(runs, [keywords for keywords, _ in hand_labels()] + [
        keywords for keywords, _ in seed_labels([])])


if __name__ == "__main__":
    main()
