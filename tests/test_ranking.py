"""Ranking: keyword words as terms, the phrase first, acronyms both ways, the adaptive floor,
and the sparse pass against a naive loop."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from datetime import date

import numpy as np
import pytest

from digest import profile_product
from digest.analysis import Lexicon, analyze, analyze_keyword, mine_acronyms
from digest.ranking import (
    DAY_SHARE,
    KEEP_BEST,
    KEYWORD_NORM,
    LOOSE_SHARE,
    MIN_CONTRIBUTION,
    SCORE_RESOLUTION,
    Match,
    PaperIndex,
    ProfileSet,
    Ranker,
    rank_keywords,
    rank_profiles,
    select_top,
)
from digest.top_picks import shortlist
from tests.support.ranking_corpus import SimplePaper, load_corpus, load_seed

DAY = date(2026, 1, 28)
FILLER = [
    "Robust graph neural networks for molecule property prediction",
    "A survey of reinforcement learning for robotic manipulation",
    "Efficient attention kernels for long context transformers",
    "Federated optimisation under heterogeneous client data",
    "Contrastive pretraining of vision encoders at scale",
    "Calibrated uncertainty for medical image segmentation",
]


def paper(arxiv_id: str, title: str, abstract: str = "", day: date = DAY) -> SimplePaper:
    return SimplePaper(arxiv_id=arxiv_id, title=title, abstract=abstract, announced_on=day)


def with_filler(*papers: SimplePaper) -> list[SimplePaper]:
    """The papers under test plus unrelated ones, so that idf behaves as in a real day."""
    filler = [
        paper(f"9999.{n:05d}", title, f"{title}. We study this problem with new methods.")
        for n, title in enumerate(FILLER)
    ]
    return [*papers, *filler]


def ids(matches: Sequence[Match]) -> list[str]:
    return [match.arxiv_id for match in matches]


@pytest.fixture(scope="module")
def corpus() -> list[SimplePaper]:
    return load_corpus()


@pytest.fixture(scope="module")
def index(corpus: list[SimplePaper]) -> PaperIndex:
    return PaperIndex(corpus)


def test_the_corpus_is_real(corpus: list[SimplePaper]) -> None:
    assert len(corpus) >= 300
    assert len(load_seed()) >= 300
    assert all(p.title and p.abstract for p in corpus)


def test_a_keywords_words_are_matched_as_terms_the_phrase_first() -> None:
    papers = with_filler(
        paper(
            "1111.00001",
            "A speech tokenizer for spoken dialogue",
            "We train a speech tokenizer on conversational data.",
        ),
        paper(
            "1111.00002",
            "Listening to long recordings",
            "Our speech front end feeds a tokenizer that was built for text.",
        ),
    )
    matches = rank_keywords(PaperIndex(papers), ["speech tokenizer"], floor=0.0)
    assert ids(matches) == ["1111.00001", "1111.00002"]
    assert matches[0].score > 1.5 * matches[1].score
    assert matches[0].matched == ("speech tokenizer",)


def test_stopwords_word_order_and_hyphens_do_not_hide_a_match() -> None:
    papers = with_filler(
        paper("1212.00001", "A neural music codec at 1 kbps", "We compress music with a codec."),
        paper("1212.00002", "Voice conversion in a zero-shot setting", "Any speaker, no data."),
        paper("1212.00003", "Full duplex spoken dialogue", "Listening while speaking."),
        paper("1212.00004", "Text to audio generation with diffusion", "Sounds from prompts."),
    )
    index = PaperIndex(papers)
    for keyword, expected in (
        ("neural codecs for music", "1212.00001"),
        ("zero-shot voice conversion models", "1212.00002"),
        ("full-duplex", "1212.00003"),
        ("text-to-audio", "1212.00004"),
    ):
        assert ids(rank_keywords(index, [keyword]))[:1] == [expected], keyword


def test_in_the_corpus_the_phrase_comes_before_its_scattered_words(
    index: PaperIndex, corpus: list[SimplePaper]
) -> None:
    by_id = {p.arxiv_id: p for p in corpus}
    matches = rank_keywords(index, ["speech tokenizer"], limit=1000)
    assert len(matches) >= 10
    needle = ("speech", "token")

    def has_phrase(arxiv_id: str) -> bool:
        found = by_id[arxiv_id]
        words = analyze(found.title) + ["|"] + analyze(found.abstract)
        return any(tuple(words[i : i + 2]) == needle for i in range(len(words)))

    assert all(has_phrase(m.arxiv_id) for m in matches[:10])
    for match in matches:  # every match has at least the rarer of the two words
        found = by_id[match.arxiv_id]
        assert "token" in analyze(f"{found.title} {found.abstract}"), match.arxiv_id


def test_case_and_plurals_do_not_matter() -> None:
    papers = with_filler(
        paper("2222.00001", "Neural Audio Codecs at very low bitrates"),
        paper("2222.00002", "Evaluating an audio codec for music", "AUDIO CODECS are compared."),
    )
    index = PaperIndex(papers)
    for keyword in ("audio codec", "Audio Codecs", "AUDIO CODEC", "audio codecs"):
        assert set(ids(rank_keywords(index, [keyword]))) == {"2222.00001", "2222.00002"}, keyword
    assert analyze("LLMs") == analyze("LLM") == analyze("llms")
    assert analyze("VITS") != analyze("ViT")  # acronyms are not stemmed into each other


def test_acronyms_match_their_long_form_both_ways() -> None:
    papers = with_filler(
        paper("3333.00001", "Expressive TTS with prosody tokens"),
        paper("3333.00002", "Expressive text-to-speech with prosody tokens"),
        paper("3333.00003", "Speech recognition for children"),
    )
    index = PaperIndex(papers)
    expected = {"3333.00001", "3333.00002"}
    for keyword in ("TTS", "tts", "text-to-speech", "Text to Speech"):
        assert set(ids(rank_keywords(index, [keyword]))) == expected, keyword
    zero_shot = rank_keywords(index, ["expressive TTS"])
    assert set(ids(zero_shot)) == expected


def test_acronyms_are_mined_from_the_papers_themselves() -> None:
    assert mine_acronyms("Modern zero-shot text-to-speech (TTS) models") == [
        ("tts", ("text", "to", "speech"))
    ]
    assert mine_acronyms("speech large language models (LLMs) and (ours)") == [
        ("llm", tuple(analyze("large language models")))
    ]
    assert mine_acronyms("Non-Autoregressive (NAR) decoding") == [("nar", ("non", "autoregress"))]
    assert mine_acronyms("fine-tuned for speech recognition (ASR)") == []  # letters do not fit
    papers = with_filler(
        paper("4444.00001", "DCA for streaming recognition", "DCA cuts latency in half."),
        paper(
            "4444.00002",
            "Chunked attention",
            "We propose dynamic chunk attention (DCA), a streaming mechanism.",
        ),
        paper("4444.00003", "Zero-shot TTS in real time", "Our TTS is fast."),
        paper("4444.00004", "Speech synthesis", "A text-to-speech (TTS) system."),
        paper("4444.00005", "Streaming ASR", "Dynamic chunk attention (DCA) again."),
        paper("4444.00006", "Voices", "Expressive text-to-speech (TTS)."),
        paper("4444.00007", "Reasoning", "Test-time scaling (TTS) of language models."),
    )
    # An empty lexicon: everything below comes from the papers' own definitions, each made by
    # two papers (MIN_SUPPORT); the single "test-time scaling (TTS)" teaches nothing.
    index = PaperIndex(papers, lexicon=Lexicon())
    assert set(ids(rank_keywords(index, ["dynamic chunk attention"]))) == {
        "4444.00001",
        "4444.00002",
        "4444.00005",
    }
    # 4444.00007 defines its own "TTS" (test-time scaling): its TTS is not text-to-speech.
    assert set(ids(rank_keywords(index, ["text-to-speech"]))) == {
        "4444.00003", "4444.00004", "4444.00006"
    }
    assert "4444.00003" not in ids(rank_keywords(index, ["test-time scaling"]))
    once = PaperIndex(papers[:4] + papers[5:], lexicon=Lexicon())  # DCA defined by one paper
    assert ids(rank_keywords(once, ["dynamic chunk attention"]))[:1] == ["4444.00002"]
    assert "4444.00001" not in ids(rank_keywords(once, ["dynamic chunk attention"]))
    without_definition = PaperIndex(papers[:1] + papers[7:], lexicon=Lexicon())
    assert "4444.00001" not in ids(rank_keywords(without_definition, ["dynamic chunk attention"]))


def test_mined_meanings_never_override_curated_ones() -> None:
    papers = with_filler(
        paper("5555.00001", "Scaling reasoning", "We study test-time scaling (TTS) of LLMs."),
        paper("5555.00002", "Test-time scaling for math", "More compute at test time."),
        paper("5555.00003", "TTS for reasoning models",
              "Test-time scaling (TTS) spends compute at inference; TTS helps small models."),
        paper("5555.00004", "Fast TTS", "A TTS model for phones."),
    )
    index = PaperIndex(papers)
    assert "5555.00002" not in ids(rank_keywords(index, ["TTS"]))
    # A paper that defines TTS as something else: its own "TTS" is not text-to-speech.
    assert ids(rank_keywords(index, ["TTS"])) == ["5555.00004"]
    assert ids(rank_keywords(index, ["text to speech"])) == ["5555.00004"]


def test_the_title_counts_more_than_the_abstract() -> None:
    papers = with_filler(
        paper(
            "6666.00001",
            "Voice conversion with diffusion",
            "We present a method and evaluate it on three benchmarks carefully.",
        ),
        paper(
            "6666.00002",
            "Diffusion for speech with a new method",
            "We present voice conversion and evaluate it on three benchmarks.",
        ),
    )
    matches = rank_keywords(PaperIndex(papers), ["voice conversion"])
    assert ids(matches) == ["6666.00001", "6666.00002"]
    assert matches[0].score > 1.3 * matches[1].score


def test_picks_carry_the_keywords_that_matched_best_first(index: PaperIndex) -> None:
    profile = ["flow matching", "speech tokenizer", "zzqx unknown", "TTS"]
    matches = rank_keywords(index, profile, limit=30)
    assert matches
    keyword_terms = [analyze_keyword(k) for k in profile]
    scores = index.keyword_scores(keyword_terms, keep_above=MIN_CONTRIBUTION,
                                  keep_best=KEEP_BEST).fused.toarray()
    for match in matches:
        column = index.position[match.arxiv_id]
        contributions = {k: scores[n, column] for n, k in enumerate(profile) if scores[n, column]}
        best = max(contributions.values())
        carried = {k for k, c in contributions.items() if c >= 0.5 * best}  # the reasons shown
        assert set(match.matched) == carried
        assert list(match.matched) == sorted(carried, key=lambda k: -contributions[k])
        expected = sum(c ** KEYWORD_NORM for c in contributions.values()) ** (1 / KEYWORD_NORM)
        assert match.score == pytest.approx(expected, abs=2 * SCORE_RESOLUTION)
    assert any(len(match.matched) >= 2 for match in matches)
    assert all("zzqx unknown" not in match.matched for match in matches)


def test_exclude_and_candidates_are_honoured(index: PaperIndex) -> None:
    profile = ["TTS", "speech language model"]
    full = ids(rank_keywords(index, profile, limit=20))
    sent = set(full[:5])
    rest = ids(rank_keywords(index, profile, limit=15, exclude=sent))
    assert not sent & set(rest)
    assert rest == full[5:]
    window = set(full[::2]) | {"0000.00000"}  # an unknown id is just ignored
    assert ids(rank_keywords(index, profile, limit=20, candidates=window)) == full[::2]
    assert rank_keywords(index, profile, candidates=set()) == []


def test_the_floor_applies_to_the_best_keyword(index: PaperIndex) -> None:
    profile = ["speech", "prosody", "zero-shot"]
    everything = rank_keywords(index, profile, limit=1000, floor=0.0)
    scores = index.keyword_scores([analyze_keyword(k) for k in profile],
                                  keep_above=MIN_CONTRIBUTION, keep_best=KEEP_BEST).fused.toarray()
    best = {m.arxiv_id: scores[:, index.position[m.arxiv_id]].max() for m in everything}
    floor = 2.5  # every keyword's best paper scores above it: the floor does not move
    assert scores.max(axis=1).min() > floor
    kept = rank_keywords(index, profile, limit=1000, floor=floor)
    assert ids(kept) == [m.arxiv_id for m in everything if best[m.arxiv_id] >= floor]
    assert 0 < len(kept) < len(everything)
    assert rank_keywords(index, profile, floor=1e6) == []


def test_the_floor_adapts_to_a_keyword_whose_best_paper_today_is_under_it() -> None:
    papers = with_filler(
        paper("1313.00001", "Molecule graphs", "Graph neural networks meet molecules today."),
        paper("1313.00002", "A speech codec", "Low bitrate speech coding for phones."),
    )
    index = PaperIndex(papers)
    keyword = ["graph neural networks for molecules"]
    [scores] = index.keyword_scores([analyze_keyword(keyword[0])]).fused.toarray()
    best = float(scores.max())
    floor = best / 0.9  # the best paper today falls just under the floor...
    picked = rank_keywords(index, keyword, floor=floor)
    assert picked and picked[0].score == pytest.approx(best, abs=1e-5)  # ... and still comes
    assert all(m.score >= LOOSE_SHARE * floor - 1e-6 for m in picked)
    assert all(m.score >= DAY_SHARE * best - 1e-6 for m in picked)
    far = rank_keywords(index, keyword, floor=best / (LOOSE_SHARE * 0.99))
    assert far == []  # nothing near enough: "nothing relevant" is an empty list


@pytest.mark.parametrize("keyword", [".*", "(a+)+", "[", "\\", "^$", "((((", "a|b", "?"])
def test_keywords_are_literal_text_never_patterns(index: PaperIndex, keyword: str) -> None:
    matches = rank_keywords(index, [keyword], limit=5)
    if not analyze_keyword(keyword):
        assert matches == []  # nothing to match: the keyword is ignored
    for match in matches:
        assert match.matched == (keyword,)
    papers = with_filler(paper("7777.00001", "Why .* and (a+)+ hang regex engines"))
    assert rank_keywords(PaperIndex(papers), [".*"]) == []
    assert ids(rank_keywords(PaperIndex(papers), ["(a+)+ hang"])) == ["7777.00001"]


def test_a_pasted_paragraph_is_just_a_long_keyword(index: PaperIndex) -> None:
    pasted = " ".join(["text-to-speech (TTS)"] * 3000)
    matches = rank_keywords(index, [pasted], limit=5)
    assert len(matches) == 5  # its words are matched as any keyword's are
    assert all(m.matched == (pasted,) for m in matches)


def test_a_profile_is_a_list_of_keywords_not_a_string(index: PaperIndex) -> None:
    with pytest.raises(TypeError):
        rank_profiles(index, ["TTS"])


def test_ties_go_to_the_newer_paper_then_the_smaller_id() -> None:
    text = "Prosody transfer for expressive speech"
    papers = with_filler(
        paper("8888.00003", text, day=date(2026, 1, 27)),
        paper("8888.00002", text, day=date(2026, 1, 28)),
        paper("8888.00001", text, day=date(2026, 1, 27)),
    )
    assert ids(rank_keywords(PaperIndex(papers), ["prosody transfer"])) == [
        "8888.00002",
        "8888.00001",
        "8888.00003",
    ]


def test_empty_profiles_and_empty_keywords() -> None:
    index = PaperIndex(with_filler(paper("1212.00001", "Speech coding")))
    assert rank_profiles(index, [[], ["", "  ", "!!"], ["speech coding"]]) == [
        [],
        [],
        rank_keywords(index, ["speech coding"]),
    ]
    assert rank_profiles(PaperIndex([]), [["speech"]]) == [[]]


def vocabulary(corpus: Sequence[SimplePaper]) -> list[str]:
    """Keywords a subscriber might write: frequent title n-grams, acronyms, and misses."""
    counts: dict[str, int] = {}
    for p in corpus:
        words = [w for w in p.title.replace(":", " ").split() if w.isalpha() or "-" in w]
        for size in (1, 2, 3):
            for start in range(len(words) - size + 1):
                gram = " ".join(words[start : start + size]).lower()
                counts[gram] = counts.get(gram, 0) + 1
    frequent = sorted(gram for gram, count in counts.items() if count >= 3)
    return frequent + ["TTS", "ASR", "LLMs", "SLM", "AAC", "Audio Codecs", "qqq zzz", ".*"]


def naive_rank(
    index: PaperIndex, profile: Sequence[str], *, limit: int, floor: float, exclude: Collection[str]
) -> list[Match]:
    """The reference: one profile, one paper at a time, from the same keyword scores.

    The floor as documented: each keyword's is the floor, or under it DAY_SHARE of that
    keyword's best paper, never under LOOSE_SHARE of the floor; keywords under
    MIN_CONTRIBUTION, or past their KEEP_BEST best papers, do not count; a pick names the
    keywords giving half its best one's score.
    """
    terms: list[tuple[str, ...]] = []
    labels: list[str] = []
    for keyword in profile:
        analyzed = analyze_keyword(keyword)
        if analyzed and analyzed not in terms:
            terms.append(analyzed)
            labels.append(keyword.strip())
    if not terms:
        return []
    scores = index.keyword_scores(terms).fused.toarray()
    scores[scores <= MIN_CONTRIBUTION] = 0.0
    for row in scores:  # each keyword counts for its KEEP_BEST best papers (ties: lower column)
        ranked = sorted(range(len(row)), key=lambda column: (-row[column], column))
        row[ranked[KEEP_BEST:]] = 0.0
    floors = [max(LOOSE_SHARE * floor, min(floor, DAY_SHARE * row.max())) for row in scores]
    rows = []
    for column, arxiv_id in enumerate(index.ids):
        contributions = [(scores[k, column], k) for k in range(len(terms)) if scores[k, column]]
        if not contributions or arxiv_id in exclude:
            continue
        if not any(c >= floors[k] - SCORE_RESOLUTION for c, k in contributions):
            continue
        total = sum(c ** KEYWORD_NORM for c, _ in contributions) ** (1 / KEYWORD_NORM)
        best = max(c for c, _ in contributions)
        carried = [(c, k) for c, k in contributions if c >= 0.5 * best]
        matched = tuple(labels[k] for _, k in sorted(carried, key=lambda c: (-c[0], c[1])))
        rows.append(
            (round(total / SCORE_RESOLUTION), int(index.tie_rank[column]), arxiv_id, total, matched)
        )
    rows.sort(key=lambda row: (-row[0], row[1]))
    return [Match(arxiv_id=r[2], score=r[3], matched=r[4]) for r in rows[:limit]]


@pytest.mark.slow
def test_the_sparse_pass_equals_a_naive_loop(index: PaperIndex, corpus: list[SimplePaper]) -> None:
    rng = random.Random(7)
    words = vocabulary(corpus)
    profiles = [rng.sample(words, rng.randint(1, 6)) for _ in range(300)]
    excludes = [set(rng.sample(index.ids, rng.randint(0, 30))) for _ in profiles]
    for floor in (0.0, 0.7, 2.0):
        fast = rank_profiles(index, profiles, limit=7, floor=floor, exclude=excludes, chunk_size=64)
        assert sum(map(len, fast)) > 300
        for profile, sent, got in zip(profiles, excludes, fast, strict=True):
            want = naive_rank(index, profile, limit=7, floor=floor, exclude=sent)
            assert ids(got) == ids(want), profile
            assert [m.matched for m in got] == [m.matched for m in want], profile
            assert [m.score for m in got] == pytest.approx([m.score for m in want], abs=1e-6)


def test_one_profile_ranks_the_same_alone_or_among_many(
    index: PaperIndex, corpus: list[SimplePaper]
) -> None:
    rng = random.Random(11)
    words = vocabulary(corpus)
    crowd = [rng.sample(words, rng.randint(2, 6)) for _ in range(1000)]
    mine = ["speech tokenizer", "TTS", "audio captioning"]
    alone = rank_keywords(index, mine, floor=1.0)
    assert alone
    for position in (0, 517, 1000):
        profiles = crowd[:position] + [mine] + crowd[position:]
        among = rank_profiles(index, profiles, floor=1.0, chunk_size=300)
        assert among[position] == alone


def test_a_title_hit_beats_passing_mentions_of_several_keywords() -> None:
    papers = with_filler(
        paper("6666.00001", "Emotion control for speech synthesis", "We control it finely."),
        paper(
            "6666.00002",
            "A faster vocoder",
            "A vocoder. It keeps emotion and prosody of the input, and runs fast on phones.",
        ),
    )
    picks = ids(rank_keywords(PaperIndex(papers), ["emotion", "prosody"]))
    assert picks[:2] == ["6666.00001", "6666.00002"]


def test_the_dense_and_the_sparse_product_pick_alike(
    index: PaperIndex, corpus: list[SimplePaper], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(13)
    words = vocabulary(corpus)
    profiles = ProfileSet.compile([rng.sample(words, rng.randint(1, 6)) for _ in range(2000)])
    excludes = [set(rng.sample(index.ids, rng.randint(0, 5))) for _ in range(len(profiles))]
    monkeypatch.setattr(profile_product, "DENSE_WIDTH", 10**6)  # dense whatever the shape
    monkeypatch.setattr(profile_product, "DENSE_BLOCK", 4096)  # several blocks a chunk
    for floor, limit in ((1.5, 10), (0.5, 3), (3.0, 40)):
        dense = Ranker(index, profiles, floor=floor)
        sparse = Ranker(index, profiles, floor=floor)
        assert dense.product.dense is not None
        sparse.product.dense = None
        for start in range(0, len(profiles), 700):
            stop = min(start + 700, len(profiles))
            for exclude in (None, excludes):
                a = dense.picks(start, stop, limit=limit, exclude=exclude)
                b = sparse.picks(start, stop, limit=limit, exclude=exclude)
                assert len(a.profiles) > 0
                for name in ("profiles", "papers", "scores"):
                    assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_the_shortlist_keeps_every_row_s_top(limit: int) -> None:
    rng = np.random.default_rng(limit)
    papers = [paper(f"7777.{n:05d}", f"Paper {n}", day=date(2026, 1, 1 + n % 28))
              for n in range(300)]
    index = PaperIndex(papers)
    rows = np.sort(rng.integers(0, 400, 20000))
    cols = rng.integers(0, len(papers), len(rows))
    # Coarse scores, so that many tie to SCORE_RESOLUTION and the tie-break decides.
    scores = np.round(rng.gamma(2.0, 1.0, len(rows)), 5)
    scores[rng.random(len(rows)) < 0.1] = 0.0
    powered = scores ** KEYWORD_NORM
    keep = shortlist(rows, powered, limit=limit, height=400, norm=KEYWORD_NORM)
    assert len(keep) < len(rows) / 2
    full = select_top(rows, cols, scores, limit=limit, index=index)
    kept = select_top(rows[keep], cols[keep], scores[keep], limit=limit, index=index)
    for name in ("profiles", "papers", "scores"):
        assert np.array_equal(getattr(full, name), getattr(kept, name)), name
