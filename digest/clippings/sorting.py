"""Suggest a section, topic tags, a link topic and highlight candidates for each clip.

Each section, tag and topic is a keyword profile scored with the daily digest's ranker
(digest.ranking: BM25F over title and abstract, phrases, stemming, acronyms), with the clips of
the month as the collection. Suggestions are written to the suggested_* columns only; the
editor's `section` and `tags` are never touched, so re-running never undoes an override.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources

from digest.clippings.config import ClippingsConfig, Profile, load_clippings_config
from digest.clippings.models import Clip, ClipKind
from digest.ranking import PaperIndex, PaperLike, rank_profiles
from digest.sources.arxiv_feed import parse_feed

__all__ = [
    "ClipDoc", "Suggestion", "apply_suggestion", "load_clippings_config", "score_profiles",
    "suggest", "suggest_for_clips",
]


@dataclass(frozen=True)
class ClipDoc:
    """What the ranker reads of a clip (the PaperLike protocol): a key, a title, a body."""

    arxiv_id: str  # the clip's key; the ranker only needs a unique id
    title: str
    abstract: str
    announced_on: date = date(2000, 1, 1)


@dataclass
class Suggestion:
    """The machine's suggestions for one clip, with the keywords behind each one."""

    section: str
    section_scores: dict[str, float] = field(default_factory=dict)
    section_reasons: tuple[str, ...] = ()
    tags: list[str] = field(default_factory=list)
    topic: str = ""
    highlight: bool = False
    highlight_reasons: list[str] = field(default_factory=list)


def clip_doc(clip: Clip) -> ClipDoc:
    """A clip as a ranker document: the title, then abstract (or summary) and note as body."""
    body = " ".join(part for part in (clip.abstract or clip.summary, clip.note) if part)
    title = "" if clip.title == clip.url else clip.title  # an unfetched title is just the url
    return ClipDoc(arxiv_id=clip.key, title=title, abstract=body)


@cache
def background_docs() -> tuple[PaperLike, ...]:
    """The bundled sample corpus (337 arXiv papers): steady word statistics for scoring."""
    data = (resources.files("digest") / "data" / "sample_corpus.atom").read_bytes()
    return tuple(parse_feed(data, source="sample").papers)


def score_profiles(
    docs: Sequence[ClipDoc],
    profiles: Sequence[Profile],
    *,
    background: Sequence[PaperLike] = (),
    index: PaperIndex | None = None,
) -> list[dict[str, tuple[float, tuple[str, ...]]]]:
    """Per document: profile name -> (summed keyword score, matched keywords best first).

    `background` papers join the collection only for its statistics (document frequencies,
    lengths), so a score means the same with 3 clips in a month as with 300. An `index` built
    over docs + background can be passed in to score several profile sets with one index.
    """
    results: list[dict[str, tuple[float, tuple[str, ...]]]] = [{} for _ in docs]
    usable = [profile for profile in profiles if profile.keywords]
    if not docs or not usable:
        return results
    index = index or PaperIndex([*docs, *background])
    position = {doc.arxiv_id: number for number, doc in enumerate(docs)}
    # Summed (norm 1), not the digest's near-max: a section or tag is one concept whose
    # keywords are its synonyms, so each synonym that appears is more evidence for it.
    ranked = rank_profiles(index, [list(p.keywords) for p in usable], limit=len(docs),
                           candidates=set(position), norm=1.0, floor=0.0)
    for profile, matches in zip(usable, ranked, strict=True):
        for match in matches:
            score = match.score * profile.weight
            results[position[match.arxiv_id]][profile.name] = (score, match.matched)
    return results


def _best(
    scores: Mapping[str, tuple[float, tuple[str, ...]]], order: Sequence[str], minimum: float
) -> tuple[str, tuple[str, ...]] | None:
    """The best-scoring name at or above minimum; ties go to the earlier name in the config."""
    ranked = sorted(
        ((value[0], -order.index(name), name) for name, value in scores.items()), reverse=True
    )
    if not ranked or ranked[0][0] < minimum:
        return None
    name = ranked[0][2]
    return name, scores[name][1]


def _highlight(
    clip: Clip, upvotes: int, config: ClippingsConfig
) -> tuple[bool, list[str]]:
    """A highlight candidate: many trending upvotes, or a long or emphatic editor's note."""
    reasons: list[str] = []
    if clip.kind == ClipKind.highlight:
        reasons.append("saved as a highlight")
    if config.min_upvotes > 0 and upvotes >= config.min_upvotes:
        reasons.append(f"{upvotes} upvotes on Hugging Face trending")
    note = clip.note.casefold()
    words = len(note.split())
    if config.min_note_words > 0 and words >= config.min_note_words:
        reasons.append(f"a {words}-word note")
    cues = [cue for cue in config.highlight_cues if cue in note]
    if cues:
        reasons.append(f"note says {cues[0]!r}")
    return bool(reasons), reasons


def suggest(
    clips: Sequence[Clip],
    config: ClippingsConfig,
    *,
    upvotes: Mapping[str, int] | None = None,
) -> list[Suggestion]:
    """One Suggestion per clip, scored together (the month's clips are the collection)."""
    docs = [clip_doc(clip) for clip in clips]
    index = PaperIndex([*docs, *background_docs()]) if docs else None
    section_scores = score_profiles(docs, config.sections, index=index)
    tag_scores = score_profiles(docs, config.tags, index=index)
    topic_scores = score_profiles(docs, config.topics, index=index)
    section_order = config.section_names
    tag_order = config.tag_names
    topic_order = [profile.name for profile in config.topics]
    suggestions = []
    for number, clip in enumerate(clips):
        tags = sorted(
            (name for name, (score, _) in tag_scores[number].items()
             if score >= config.min_tag_score),
            key=lambda name: (-tag_scores[number][name][0], tag_order.index(name)),
        )[: config.max_tags]
        best_section = _best(section_scores[number], section_order, config.min_section_score)
        section, reasons = best_section or (config.fallback_section, ())
        topic = ""
        if clip.kind == ClipKind.link:
            best_topic = _best(topic_scores[number], topic_order, config.min_section_score / 2)
            topic = best_topic[0] if best_topic else config.fallback_topic
            section, reasons = config.also_section, ()
        votes = (upvotes or {}).get(clip.arxiv_id or "", 0)
        highlight, why = _highlight(clip, votes, config)
        suggestions.append(
            Suggestion(
                section=section,
                section_scores={
                    name: round(value[0], 3) for name, value in section_scores[number].items()
                },
                section_reasons=reasons,
                tags=tags,
                topic=topic,
                highlight=highlight,
                highlight_reasons=why,
            )
        )
    return suggestions


def apply_suggestion(clip: Clip, suggestion: Suggestion) -> bool:
    """Write the suggestions into the clip's suggested_* fields; True when anything changed.

    The editor's section and tags stay as they are; a topic is filled only while it is empty
    (the clip has no separate suggested topic, and the editor's topic must survive a re-run).
    """
    before = (clip.suggested_section, list(clip.suggested_tags), clip.suggested_highlight,
              clip.topic)
    clip.suggested_section = suggestion.section[:80]
    clip.suggested_tags = list(suggestion.tags)
    clip.suggested_highlight = suggestion.highlight
    # Not from the url alone: a title or note fetched later would be stuck behind a guess.
    if not clip.topic and suggestion.topic and (clip.title not in ("", clip.url) or clip.note):
        clip.topic = suggestion.topic[:80]
    return before != (clip.suggested_section, clip.suggested_tags, clip.suggested_highlight,
                      clip.topic)


def suggest_for_clips(
    clips: Sequence[Clip],
    config: ClippingsConfig,
    *,
    upvotes: Mapping[str, int] | None = None,
) -> list[Suggestion]:
    """Suggest and store the suggestions on the clips (the caller adds them to its session)."""
    suggestions = suggest(clips, config, upvotes=upvotes)
    for clip, suggestion in zip(clips, suggestions, strict=True):
        apply_suggestion(clip, suggestion)
    return suggestions
