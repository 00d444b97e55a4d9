"""Auto-sort: section accuracy against the seed issue's sections, tags, topics, highlights,
and the clippings config file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.settings import Settings
from digest.clippings.config import load_clippings_config, parse_clippings_config
from digest.clippings.models import Clip, ClipKind
from digest.clippings.sorting import suggest

SEED = Path(__file__).parent / "data" / "clip_seed_sections.json"
SEED_HIGHLIGHTS = SEED.with_name("clip_seed_highlights.json")
SEED_ALSO = SEED.with_name("clip_seed_also.json")
ARTIFACTS = Path(__file__).parent / "artifacts"


def clip(number: int, title: str, body: str = "", *, kind: ClipKind = ClipKind.paper,
         note: str = "", arxiv_id: str | None = None) -> Clip:
    return Clip(month="2026-04", key=f"k{number}", url=f"https://example.org/{number}",
                title=title, abstract=body, note=note, kind=kind, arxiv_id=arxiv_id)


def test_section_suggestions_match_the_seed_issue() -> None:
    """The seed's 25 "Research Papers" entries (title + the editor's summary as the text)."""
    entries = json.loads(SEED.read_text(encoding="utf-8"))["entries"]
    clips = [clip(n, e["title"], e["summary"]) for n, e in enumerate(entries)]
    suggestions = suggest(clips, load_clippings_config())
    confusion = Counter((e["section"], s.section) for e, s in zip(entries, suggestions,
                                                                 strict=True))
    correct = sum(n for (truth, guess), n in confusion.items() if truth == guess)
    accuracy = correct / len(entries)
    misses = [
        {"title": e["title"], "seed": e["section"], "suggested": s.section,
         "scores": s.section_scores}
        for e, s in zip(entries, suggestions, strict=True) if e["section"] != s.section
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "clip_sorting.json").write_text(json.dumps({
        "entries": len(entries), "correct": correct, "accuracy": round(accuracy, 3),
        "confusion": [{"seed": t, "suggested": g, "count": n}
                      for (t, g), n in sorted(confusion.items())],
        "misses": misses,
    }, indent=2, ensure_ascii=False))
    print(f"section accuracy {correct}/{len(entries)} = {accuracy:.0%}; misses: {misses}")
    assert len(entries) == 25
    assert accuracy >= 0.88  # measured 23/25; a profile change that loses more is a regression
    # Every section of the seed is found, and no LLM paper is filed under Speech & Audio.
    assert {guess for (_, guess) in confusion} >= {"Speech & Audio", "LLM & Training",
                                                   "Multimodal"}
    assert confusion[("LLM & Training", "Speech & Audio")] == 0


def test_links_tags_topics_and_highlights() -> None:
    config = load_clippings_config()
    clips = [
        clip(0, "KittenTTS: a tiny text-to-speech model", kind=ClipKind.link),
        clip(1, "Bit manipulation tricks", "Fast GPU kernels in CUDA.", kind=ClipKind.link),
        clip(2, "A streaming full-duplex spoken dialogue model",
             "We propose a full-duplex speech language model with low latency turn-taking.",
             note="must read: the best duplex paper this month", arxiv_id="2604.00003"),
        clip(3, "Masked generative non-autoregressive TTS with an audio codec",
             "Discrete tokens from residual vector quantization (RVQ) codebooks.",
             arxiv_id="2604.00004"),
        clip(4, "An essay on gardening"),
        clip(5, "https://example.org/5"),  # autofill failed: the url is all there is
    ]
    clips[5].url = clips[5].title
    suggestions = suggest(clips, config, upvotes={"2604.00004": 80})
    kitten, bits, duplex, masked, garden, bare = suggestions
    assert (kitten.section, kitten.topic) == ("Also worth a look", "TTS & Speech")
    assert (bits.section, bits.topic) == ("Also worth a look", "General ML & Engineering")
    assert duplex.section == "Speech & Audio"
    assert {"Full-Duplex", "Streaming"} <= set(duplex.tags)
    assert duplex.highlight and duplex.highlight_reasons == ["note says 'must read'"]
    assert {"TTS", "NAR", "Discrete Tokens"} <= set(masked.tags)
    assert masked.highlight_reasons == ["80 upvotes on Hugging Face trending"]
    assert (garden.section, garden.tags, garden.highlight) == ("Other", [], False)
    assert bare.section == "Other"
    assert "TTS" in duplex.section_reasons or "full-duplex" in duplex.section_reasons


def test_config_file_setting_and_errors(tmp_path: Path, settings: Settings) -> None:
    custom = tmp_path / "clippings.toml"
    custom.write_text(
        '[sorting]\nfallback_section = "Misc"\n'
        '[[sections]]\nname = "Vision"\nkeywords = ["image", "video"]\n'
        '[[sections]]\nname = "Misc"\n[[tags]]\nname = "Video"\nkeywords = ["video"]\n',
        encoding="utf-8",
    )
    config = load_clippings_config(settings.model_copy(update={"clippings_config": custom}))
    assert config.section_names == ["Vision", "Misc"] and config.tag_names == ["Video"]
    video, other = suggest([clip(0, "Video generation with image priors"),
                            clip(1, "Speech")], config)
    assert (video.section, video.tags, other.section) == ("Vision", ["Video"], "Misc")
    for text, message in (
        ("[[sections]]\nname = 'A'\nkeywords = 'x'", "keywords must be a list"),
        ("[sorting]\nmax_tags = 3", "at least one \\[\\[sections\\]\\]"),
        ("[[sections]]\nname = 'A'\n[[sections]]\nname = 'a'", "'a' appears twice"),
        ("[[sections]]\nname = 'A'\nweight = -1", "weight must be a positive number"),
        ("[[sections]\n", "not valid TOML"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_clippings_config(text, where="x.toml")
    with pytest.raises(ValueError, match="clippings config .*missing.toml"):
        load_clippings_config(settings.model_copy(
            update={"clippings_config": tmp_path / "missing.toml"}))


def test_tag_suggestions_against_the_seed_highlights() -> None:
    """The seed's nine highlights: the editor's tag chips against tags suggested from the
    write-up, on the chips our vocabulary has (TTS, AR, NAR, Diffusion, Discrete Tokens ...)."""
    config = load_clippings_config()
    vocabulary = set(config.tag_names)
    entries = json.loads(SEED_HIGHLIGHTS.read_text(encoding="utf-8"))["entries"]
    clips = [clip(n, e["text"].split(". ")[0], e["text"]) for n, e in enumerate(entries)]
    found = wrong = missed = 0
    for entry, suggestion in zip(entries, suggest(clips, config), strict=True):
        truth, got = set(entry["tags"]) & vocabulary, set(suggestion.tags)
        found, wrong, missed = found + len(truth & got), wrong + len(got - truth), missed + len(
            truth - got)
    precision, recall = found / (found + wrong), found / (found + missed)
    print(f"tags: precision {precision:.2f}, recall {recall:.2f} ({found}/{wrong}/{missed})")
    # Measured 0.67 and 0.43 (max 5 tags per clip); 0.75 and 0.45 when keywords were matched as
    # contiguous phrases only, before the ranker matched their words (issue 13).
    assert recall >= 0.65 and precision >= 0.4


def test_also_worth_a_look_topics_against_the_seed() -> None:
    """The seed's 'Also Worth a Look' links: name as title, the editor's line as the note."""
    entries = json.loads(SEED_ALSO.read_text(encoding="utf-8"))["entries"]
    clips = [clip(n, e["title"], kind=ClipKind.link, note=e["description"])
             for n, e in enumerate(entries)]
    suggestions = suggest(clips, load_clippings_config())
    assert {s.section for s in suggestions} == {"Also worth a look"}
    correct = sum(e["topic"] == s.topic for e, s in zip(entries, suggestions, strict=True))
    print(f"topics {correct}/{len(entries)}")
    assert correct >= 11  # measured 11/12 (smol-audio: "fine-tuning" pulls it to LLMs)
