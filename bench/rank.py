"""Ranking benchmark: all profiles x all papers in one sparse pass, beside a per-profile loop.

Run by hand or from `make bench`: `python bench/rank.py --profiles 100000 [--calibrate]`.
Prints one JSON line per measurement.

Papers: the bundled sample corpus (337 real speech/audio papers) padded to --papers. With
--on-topic 1.0 (the default) every extra paper is a perturbed copy of a real one (new id and day,
sentences shuffled and dropped, a title word dropped): a topically uniform day in which broad
keywords ("TTS", "large language model") hit a third of all papers, the pessimistic load. With
--on-topic 0.25 only a quarter of the papers are on topic and the rest are ciphered copies (every
word replaced by a pseudo-word: same lengths, no shared vocabulary), closer to a real week of
cs.CL + cs.SD + eess.AS in which speech and audio are a minority.
Profiles: 2-6 keywords drawn uniformly from the corpus's frequent 1-3 word n-grams (those in at
most half the papers) plus the acronyms the index knows.
Baseline: the same scores ranked one profile at a time with numpy (dense keyword rows, lexsort).
With --semantic the papers are embedded first (timed, beside the lexical index of the same
papers) and every keyword's closeness in meaning is fused in; keyword vectors are computed once
per distinct keyword (the `cold` figure) and cached for the next plan.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import resource
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digest.analysis import analyze, analyze_keyword  # noqa: E402
from digest.ranking import (  # noqa: E402
    RELEVANCE_FLOOR,
    SCORE_RESOLUTION,
    PaperIndex,
    Picks,
    ProfileSet,
    Ranker,
    rank_profiles,
)
from tests.support.ranking_corpus import SimplePaper, load_corpus  # noqa: E402

STOP = {
    "a", "an", "the", "of", "for", "and", "to", "in", "on", "with", "from", "by", "via", "at", "as",
    "is", "are", "we", "our", "this", "that",
}
SENTENCE = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[A-Za-z]+")
_SHARED: dict[str, Ranker] = {}  # the forked shard workers read the parent's ranker from here


def emit(**figures: object) -> None:
    load = round(os.getloadavg()[0], 2)  # on a shared machine, trust ratios over seconds
    print(json.dumps({"bench": "rank", **figures, "load": load}), flush=True)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> int:
    return round(resource.getrusage(who).ru_maxrss / 1024)


def _cipher(text: str) -> str:
    """Every word swapped for a pseudo-word: an off-topic text of the same shape."""
    return WORD.sub(lambda m: f"q{zlib.crc32(m.group().lower().encode()) % 60000:x}", text)


def padded_corpus(papers: list[SimplePaper], size: int, on_topic: float,
                  rng: random.Random) -> list[SimplePaper]:
    """The real papers, then perturbed (on topic) or ciphered (off topic) copies up to `size`."""
    out = list(papers)
    topical = max(len(papers), round(size * on_topic))
    copy = 0
    while len(out) < size:
        source = papers[copy % len(papers)]
        sentences = SENTENCE.split(source.abstract)
        rng.shuffle(sentences)
        abstract = " ".join(sentences[: max(1, int(len(sentences) * rng.uniform(0.6, 1.0)))])
        words = source.title.split()
        if len(words) > 3:
            del words[rng.randrange(len(words))]
        title = " ".join(words)
        if len(out) >= topical:
            title, abstract = _cipher(title), _cipher(abstract)
        out.append(replace(
            source,
            arxiv_id=f"99{copy // 100000:02d}.{copy % 100000:05d}",
            title=title,
            abstract=abstract,
            announced_on=source.announced_on - timedelta(days=rng.randrange(7)),
        ))
        copy += 1
    return out


def keyword_vocabulary(papers: Sequence[SimplePaper], index: PaperIndex, size: int) -> list[str]:
    """Frequent 1-3 word n-grams (no edge stopwords, in at most half the papers) + acronyms."""
    counts: Counter[str] = Counter()
    for paper in papers:
        words = re.findall(r"[A-Za-z][A-Za-z\-]+", f"{paper.title} {paper.abstract}".lower())
        for n in (1, 2, 3):
            for start in range(len(words) - n + 1):
                gram = words[start:start + n]
                if gram[0] not in STOP and gram[-1] not in STOP:
                    counts[" ".join(gram)] += 1
    grams = [gram for gram, count in counts.most_common(size * 2) if count >= 3]
    scores = index.keyword_scores([analyze_keyword(g) for g in grams]).lexical
    share = np.diff(scores.indptr) / max(1, len(index))
    general = [g for g, part in zip(grams, share, strict=True) if part <= 0.5][:size]
    acronyms = sorted(a.upper() for a in index.lexicon.expansions if len(a) > 2)
    return general + acronyms


def make_profiles(words: list[str], count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 7, size=count)
    picks = rng.integers(0, len(words), size=int(sizes.sum())).tolist()
    profiles, at = [], 0
    for size in sizes.tolist():
        profiles.append([words[i] for i in picks[at:at + size]])
        at += size
    return profiles


def sparse_pass(ranker: Ranker, start: int, stop: int, chunk: int, limit: int) -> Picks:
    """Profiles [start, stop) chunk by chunk, picks concatenated."""
    parts = [ranker.picks(a, min(a + chunk, stop), limit=limit) for a in range(start, stop, chunk)]
    return Picks(*(np.concatenate([getattr(p, name) for p in parts])
                   for name in ("profiles", "papers", "scores")))


def _shard(job: tuple[int, int, int, int]) -> tuple[Picks, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    picks = sparse_pass(_SHARED["ranker"], *job)
    return picks, time.perf_counter() - started, time.process_time() - cpu


def loop_baseline(ranker: Ranker, count: int, limit: int, floor: float) -> tuple[float, float]:
    """Seconds (wall, CPU) for `count` profiles ranked one at a time with numpy (dense S rows
    per profile)."""
    dense = ranker.scores.toarray()
    tie = ranker.index.tie_rank
    profiles = ranker.profiles
    started, cpu = time.perf_counter(), time.process_time()
    floors = ranker.floors[:, None]  # the adaptive floor of each keyword
    for row in range(count):
        keyword_ids = profiles.keyword_ids[profiles.indptr[row]:profiles.indptr[row + 1]]
        rows = dense[keyword_ids]
        total = rows.sum(axis=0)
        strong = (rows >= floors[keyword_ids]).any(axis=0)
        hits = np.flatnonzero((total > 0) & strong)
        norm = (rows[:, hits] ** ranker.norm).sum(axis=0) ** (1 / ranker.norm)  # as Ranker
        quantized = np.rint(norm / SCORE_RESOLUTION)
        hits[np.lexsort((tie[hits], -quantized))][:limit].tolist()
    return time.perf_counter() - started, time.process_time() - cpu


def _occurrences(form: tuple[str, ...], words: tuple[str, ...]) -> int:
    size = len(form)
    return sum(words[i:i + size] == form for i in range(len(words) - size + 1))


SEED_KEYWORDS = [  # the seed page's own headings, and a few more a subscriber would write
    "Speech Synthesis", "TTS", "Audio Caption", "Speech language model", "speech tokenizer",
    "voice conversion", "audio codec", "emotional speech",
]


def calibrate_window(name: str, papers: Sequence[SimplePaper], words: list[str]) -> None:
    """How each floor treats keyword-in-title pairs and single passing mentions in abstracts."""
    index = PaperIndex(papers)
    keywords = [analyze_keyword(w) for w in words]
    scores = index.keyword_scores(keywords).fused.tocoo()
    forms = [index.lexicon.forms(k) for k in keywords]
    analyzed = {p.arxiv_id: (tuple(analyze(p.title)), tuple(analyze(p.abstract))) for p in papers}
    in_title, passing = [], []
    for k, column, score in zip(scores.row, scores.col, scores.data, strict=True):
        title, abstract = analyzed[index.ids[column]]
        if any(_occurrences(form, title) for form in forms[k]):
            in_title.append(score)
        elif sum(_occurrences(form, abstract) for form in forms[k]) == 1:
            passing.append(score)
    profiles = make_profiles(words, 2000, seed=3)
    for floor in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
        ranked = rank_profiles(index, profiles, limit=10, floor=floor)
        seeds = rank_profiles(index, [[k] for k in SEED_KEYWORDS], limit=10, floor=floor)
        emit(
            what="calibration", window=name, papers=len(index), floor=floor,
            title_pairs_kept=round(float(np.mean(np.asarray(in_title) >= floor)), 3),
            passing_mentions_kept=round(float(np.mean(np.asarray(passing) >= floor)), 3),
            seed_keywords_with_picks=f"{sum(1 for r in seeds if r)}/{len(seeds)}",
            seed_keyword_picks=sum(map(len, seeds)),
            synthetic_mean_picks=round(sum(map(len, ranked)) / len(ranked), 2),
        )


def calibrate(real: list[SimplePaper], words: list[str]) -> None:
    """The floor on the whole sample corpus, on its last week (the daily job's lookback
    window: few papers, nearly all on one topic) and on a mixed 1,500-paper week."""
    last = max(paper.announced_on for paper in real)
    week = [paper for paper in real if paper.announced_on > last - timedelta(days=7)]
    calibrate_window("sample_corpus", real, words)
    calibrate_window("sample_last_week", week, words)
    mixed = padded_corpus(real, 1500, 0.25, random.Random(1))
    calibrate_window("mixed_1500_on_topic_0.25", mixed, words)


def semantic_index(papers: Sequence[SimplePaper], lexical_index_s: float) -> PaperIndex:
    """The index with embeddings: the model loaded and the whole day embedded, both timed."""
    from digest import semantic

    started = time.perf_counter()
    semantic.load_model()
    load_s = time.perf_counter() - started
    embedder = semantic.Embedder(Path(tempfile.mkdtemp()))
    started = time.perf_counter()
    embedder.papers(papers)
    embed_s = time.perf_counter() - started
    emit(what="embed_day", papers=len(papers), seconds=round(embed_s, 2),
         papers_per_s=round(len(papers) / embed_s, 1), model_load_seconds=round(load_s, 2),
         lexical_index_seconds=round(lexical_index_s, 3))
    return PaperIndex(papers, embeddings=embedder.papers,
                      encoder=semantic.keyword_encoder(embedder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=20000)
    parser.add_argument("--papers", type=int, default=1500)
    parser.add_argument("--on-topic", type=float, default=1.0, help="share of on-topic papers")
    parser.add_argument("--vocabulary", type=int, default=3000, help="n-grams to draw from")
    parser.add_argument("--baseline", type=int, default=2000, help="profiles in the loop")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--floor", type=float, default=RELEVANCE_FLOOR)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2, help="shards for the parallel run")
    parser.add_argument("--calibrate", action="store_true", help="also print floor calibration")
    parser.add_argument("--semantic", action="store_true",
                        help="with the embeddings (needs the semantic extra)")
    args = parser.parse_args()
    common = {"profiles": args.profiles, "papers": args.papers, "on_topic": args.on_topic,
              "semantic": args.semantic}

    real = load_corpus()
    papers = padded_corpus(real, args.papers, args.on_topic, random.Random(1))
    started = time.perf_counter()
    index = PaperIndex(papers)
    lexical_index_s = time.perf_counter() - started
    emit(what="index", **common, real_papers=len(real), seconds=round(lexical_index_s, 3))
    if args.semantic:
        index = semantic_index(papers, lexical_index_s)
    words = keyword_vocabulary(real, index, args.vocabulary)
    profiles = make_profiles(words, args.profiles, seed=2)

    started = time.perf_counter()
    compiled = ProfileSet.compile(profiles)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    Ranker(index, compiled, floor=args.floor)  # cold: every distinct keyword embedded once
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    ranker = Ranker(index, compiled, floor=args.floor)  # as the next plan: vectors cached
    scores_s = time.perf_counter() - started
    sample = min(len(compiled), args.chunk_size)
    product = compiled.matrix(0, sample) @ ranker.scores
    emit(what="prepare", **common, keywords=len(compiled.keywords),
         dense_product=ranker.product.dense is not None,
         reachable_papers=len(ranker.product.columns),
         compile_seconds=round(compile_s, 3), keyword_scores_seconds=round(scores_s, 3),
         keyword_scores_seconds_cold=round(cold_s, 3),
         score_nnz=int(ranker.scores.nnz), product_entries_per_profile=round(product.nnz / sample))
    del product

    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    picks = sparse_pass(ranker, 0, len(compiled), args.chunk_size, args.limit)
    single, single_cpu = time.perf_counter() - started, time.process_time() - cpu
    emit(what="sparse_pass", **common, processes=1, chunk_size=args.chunk_size, floor=args.floor,
         seconds=round(single, 3), cpu_seconds=round(single_cpu, 3),
         profiles_per_s=round(len(compiled) / single),
         picks=len(picks.profiles), peak_rss_mb=peak_rss_mb(), rss_before_mb=rss_before)

    # scipy's sparse product holds the GIL, so two cores means two processes, each ranking a
    # shard of the profiles (as two Celery workers would); fork shares the ranker copy-on-write,
    # so a child's peak RSS counts the parent's pages it touched, profile lists included.
    _SHARED["ranker"] = ranker
    edges = np.linspace(0, len(compiled), args.processes + 1).astype(int).tolist()
    jobs = [(a, b, args.chunk_size, args.limit) for a, b in zip(edges, edges[1:], strict=False)]
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(args.processes, mp_context=context) as pool:
        shards = list(pool.map(_shard, jobs))
    with_transfer = time.perf_counter() - started
    assert sum(len(shard.profiles) for shard, _, _ in shards) == len(picks.profiles)
    # A worker would store its own shard's picks; shipping them to this process is extra.
    parallel = max(seconds for _, seconds, _ in shards)
    parallel_cpu = max(cpu for _, _, cpu in shards)
    emit(what="sparse_pass", **common, processes=args.processes, chunk_size=args.chunk_size,
         floor=args.floor, seconds=round(parallel, 3), cpu_seconds=round(parallel_cpu, 3),
         profiles_per_s=round(len(compiled) / parallel), picks=len(picks.profiles),
         seconds_with_fork_and_transfer=round(with_transfer, 3),
         peak_rss_mb_largest_child=peak_rss_mb(resource.RUSAGE_CHILDREN))

    count = min(args.baseline, len(compiled))
    baseline, baseline_cpu = (seconds / count * len(compiled) for seconds in
                              loop_baseline(ranker, count, args.limit, args.floor))
    emit(what="loop_baseline", **common, measured_profiles=count,
         extrapolated_seconds=round(baseline, 3), extrapolated_cpu_seconds=round(baseline_cpu, 3),
         speedup_1_process=round(baseline / single, 1),
         speedup_parallel=round(baseline / parallel, 1),
         cpu_speedup_1_process=round(baseline_cpu / single_cpu, 1),
         cpu_speedup_parallel=round(baseline_cpu / parallel_cpu, 1))

    started = time.perf_counter()
    grouped = ranker.matches(sparse_pass(ranker, 0, count, args.chunk_size, args.limit))
    explained = sum(map(len, grouped))
    emit(what="explain_and_build_matches", profiles=count, picks=explained,
         us_per_pick=round((time.perf_counter() - started) / max(1, explained) * 1e6, 2))

    if len(profiles) <= 200000:
        started = time.perf_counter()
        ranked = rank_profiles(index, profiles, limit=args.limit, floor=args.floor,
                               chunk_size=args.chunk_size)
        emit(what="rank_profiles_end_to_end", **common,
             seconds=round(time.perf_counter() - started, 3),
             matches=sum(map(len, ranked)), peak_rss_mb=peak_rss_mb())
    if args.calibrate:
        calibrate(real, words)


if __name__ == "__main__":
    main()
