"""Sections, tag vocabulary and link topics of the monthly issue, each a keyword profile (TOML)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "data" / "clippings.toml"


@dataclass(frozen=True)
class Profile:
    """A named keyword profile: a section, a topic tag, or a group of 'Also worth a look'."""

    name: str
    keywords: tuple[str, ...]
    weight: float = 1.0  # multiplies the profile's score: a newsletter's own field can lead


@dataclass(frozen=True)
class ClippingsConfig:
    sections: tuple[Profile, ...]
    tags: tuple[Profile, ...]
    topics: tuple[Profile, ...]
    fallback_section: str = "Other"
    also_section: str = "Also worth a look"
    fallback_topic: str = "General ML & Engineering"
    min_section_score: float = 2.0
    min_tag_score: float = 3.0
    max_tags: int = 5
    min_upvotes: int = 40
    min_note_words: int = 40
    highlight_cues: tuple[str, ...] = ()

    @property
    def section_names(self) -> list[str]:
        return [profile.name for profile in self.sections]

    @property
    def tag_names(self) -> list[str]:
        return [profile.name for profile in self.tags]


def _profiles(raw: Any, what: str, where: str) -> tuple[Profile, ...]:
    """[[what]] tables with a name and a keyword list, names unique."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where}: [[{what}]] must be a list of tables")
    profiles: list[Profile] = []
    for number, entry in enumerate(raw, start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: {what} #{number} needs a name")
        keywords = entry.get("keywords", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise ValueError(f"{where}: {what} {name!r}: keywords must be a list of strings")
        if any(profile.name.casefold() == name.strip().casefold() for profile in profiles):
            raise ValueError(f"{where}: {what} {name!r} appears twice")
        weight = entry.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ValueError(f"{where}: {what} {name!r}: weight must be a positive number")
        keywords = tuple(k.strip() for k in keywords if k.strip())
        profiles.append(Profile(name.strip(), keywords, float(weight)))
    return tuple(profiles)


def parse_clippings_config(text: str, *, where: str = "clippings config") -> ClippingsConfig:
    """The config in a TOML document; ValueError naming the file and the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{where}: not valid TOML ({error})") from None
    sorting = data.get("sorting", {})
    highlight = data.get("highlight", {})
    sections = _profiles(data.get("sections"), "sections", where)
    if not sections:
        raise ValueError(f"{where}: at least one [[sections]] entry is needed")
    try:
        config = ClippingsConfig(
            sections=sections,
            tags=_profiles(data.get("tags"), "tags", where),
            topics=_profiles(data.get("topics"), "topics", where),
            fallback_section=str(sorting.get("fallback_section", sections[-1].name)),
            also_section=str(sorting.get("also_section", "Also worth a look")),
            fallback_topic=str(sorting.get("fallback_topic", "")),
            min_section_score=float(sorting.get("min_section_score", 2.0)),
            min_tag_score=float(sorting.get("min_tag_score", 3.0)),
            max_tags=int(sorting.get("max_tags", 5)),
            min_upvotes=int(highlight.get("min_upvotes", 40)),
            min_note_words=int(highlight.get("min_note_words", 40)),
            highlight_cues=tuple(str(cue).casefold() for cue in highlight.get("cues", [])),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: bad [sorting] or [highlight] value ({error})") from None
    return config


def load_clippings_config(settings: Settings | None = None) -> ClippingsConfig:
    """The file DIGEST_CLIPPINGS_CONFIG names (in `settings`, else the process's settings),
    or the shipped default."""
    if settings is None:
        from core.settings import get_settings

        settings = get_settings()
    path = getattr(settings, "clippings_config", None) or DEFAULT_CONFIG
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"clippings config {path}: {error.strerror or error}") from None
    return parse_clippings_config(text, where=str(path))


def section_order(config: ClippingsConfig) -> tuple[str, ...]:
    """The order sections are shown in, on the editor's pages and in the issue alike: the
    configured sections, then the catch-all (fallback) section, then 'Also worth a look'."""
    tail = tuple(dict.fromkeys((config.fallback_section, config.also_section)))
    return (*(name for name in config.section_names if name not in tail), *tail)


def section_key(
    config: ClippingsConfig, order: Sequence[str] | None = None
) -> Callable[[str], tuple[int, int, str]]:
    """A sort key for section names in `order` (default: section_order(config)). A section
    not in it (one the editor typed) comes after the configured ones, by name, but before
    the catch-all and 'Also worth a look'."""
    order = section_order(config) if order is None else order
    place = {name: rank for rank, name in enumerate(order)}
    tail = min((place[name] for name in (config.fallback_section, config.also_section)
                if name in place), default=len(order))

    def key(name: str) -> tuple[int, int, str]:
        if name in place:
            return (place[name], 1, "")
        return (tail, 0, name.casefold())

    return key
