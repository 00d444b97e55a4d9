"""The clip store: save, merge, edit, order and delete the links of a month.

Keyword-only functions taking the caller's session (the caller commits). A paper saved twice in
one month (abs, pdf, versioned url, Hugging Face page) is one clip: the second save merges its
note and tags into the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.settings import Settings
from digest.clippings.config import load_clippings_config, section_key
from digest.clippings.enrich import EnrichReport, enrich
from digest.clippings.models import AutofillState, Clip, ClipKind
from digest.clippings.urls import classify_url

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
EDITABLE = frozenset(
    ["title", "summary", "note", "explainer", "tags", "section", "kind", "links", "topic",
     "position"]
)
LINK_KINDS = frozenset(["code", "demo", "project", "weights", "paper", "docs", "data"])
MAX_TAGS = 20
MAX_TEXT = 20_000  # a note or summary longer than this is a paste gone wrong


@dataclass(frozen=True)
class AddResult:
    """The saved clip, and whether it is new (False: merged into the month's existing clip)."""

    clip: Clip
    created: bool


def current_month(now: datetime | None = None) -> str:
    """'YYYY-MM' of now in UTC."""
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def check_month(month: str) -> str:
    """A valid 'YYYY-MM' month, or a clear ValueError."""
    value = (month or "").strip()
    if not _MONTH.match(value):
        raise ValueError(f"month must look like 2026-04, got {month!r}")
    return value


def clean_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Tags stripped and deduplicated (case-insensitively, first spelling wins); 'a, b' splits."""
    if tags is None:
        return []
    raw = re.split(r"[,;|]", tags) if isinstance(tags, str) else list(tags)
    seen: dict[str, str] = {}
    for tag in raw:
        if not isinstance(tag, str):
            raise ValueError(f"a tag must be text, got {tag!r}")
        name = " ".join(tag.split())[:60]
        if name:
            seen.setdefault(name.casefold(), name)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per clip")
    return list(seen.values())


def _merge_note(old: str, new: str) -> str:
    """Both notes, the new one appended unless it is already there."""
    new = new.strip()
    if not new or new in old:
        return old
    return f"{old}\n\n{new}" if old.strip() else new


def _touch(clip: Clip) -> None:
    clip.updated_at = datetime.now(UTC)


def add_clip(
    *,
    session: Session,
    url: str,
    note: str = "",
    tags: Sequence[str] | str | None = None,
    highlight: bool = False,
    source: str = "cli",
    month: str | None = None,
    title: str | None = None,
    saved_at: datetime | None = None,
) -> AddResult:
    """Save a link in a month; the same thing saved again merges note and tags into one clip."""
    target = classify_url(url)
    month = check_month(month) if month is not None else current_month()
    if len(note) > MAX_TEXT:
        raise ValueError(f"note longer than {MAX_TEXT} characters")
    given_tags = clean_tags(tags) if tags else []
    title = " ".join((title or "").split())
    existing = session.exec(
        select(Clip).where(Clip.month == month, Clip.key == target.key)
    ).first()
    if existing is not None:
        return AddResult(clip=_merge(existing, note, given_tags, highlight, title), created=False)
    clip = Clip(
        month=month,
        key=target.key,
        url=target.url,
        source=(source or "cli")[:40],
        kind=ClipKind.highlight if highlight else target.kind,
        arxiv_id=target.arxiv_id,
        title=title,
        note=note.strip(),
        tags=given_tags or None,
        autofill=AutofillState.pending,
    )
    if saved_at is not None:
        clip.saved_at = saved_at
    try:
        with session.begin_nested():
            session.add(clip)
            session.flush()
    except IntegrityError:
        # Saved at the same moment elsewhere (a double-clicked bookmarklet): merge into it.
        existing = session.exec(
            select(Clip).where(Clip.month == month, Clip.key == target.key)
        ).first()
        if existing is None:
            raise
        return AddResult(clip=_merge(existing, note, given_tags, highlight, title), created=False)
    return AddResult(clip=clip, created=True)


def _merge(clip: Clip, note: str, tags: list[str], highlight: bool, title: str) -> Clip:
    """A second save of the same thing: its note and tags join the first; nothing is lost."""
    clip.note = _merge_note(clip.note, note)
    if tags:
        clip.tags = clean_tags([*(clip.tags or []), *tags])
    if highlight:
        clip.kind = ClipKind.highlight
    if title and (not clip.title or clip.title == clip.url):
        clip.title = title
    _touch(clip)
    clip_session = Session.object_session(clip)
    if clip_session is not None:
        clip_session.add(clip)
        clip_session.flush()
    return clip


def get_clip(*, session: Session, clip_id: int) -> Clip:
    """The clip with this id, or a ValueError saying there is none."""
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise ValueError(f"no clip with id {clip_id}")
    return clip


def _checked_change(name: str, value: Any) -> Any:
    """One edited field's value, validated; ValueError says what is wrong."""
    if name in ("title", "summary", "note", "explainer", "topic"):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be text")
        limit = 80 if name == "topic" else MAX_TEXT
        if len(value) > limit:
            raise ValueError(f"{name} longer than {limit} characters")
        return value.strip()
    if name == "tags":
        return None if value is None else clean_tags(value)
    if name == "section":
        if value is None or value == "":
            return None  # back to the suggestion (an emptied form field means the same)
        if not isinstance(value, str) or len(value.strip()) > 80:
            raise ValueError("section must be text of at most 80 characters")
        return value.strip()
    if name == "kind":
        try:
            return ClipKind(value)
        except ValueError:
            kinds = ", ".join(kind.value for kind in ClipKind)
            raise ValueError(f"kind must be one of {kinds}, got {value!r}") from None
    if name == "links":
        if not isinstance(value, dict):
            raise ValueError("links must map a kind (code, demo, ...) to a url")
        links: dict[str, str] = {}
        for kind, url in value.items():
            if kind not in LINK_KINDS:
                raise ValueError(f"unknown link kind {kind!r} (one of {sorted(LINK_KINDS)})")
            if url:
                classify_url(url)  # raises on a malformed url
                links[kind] = str(url).strip()
        return links
    if name == "position":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("position must be a whole number")
        return value
    raise ValueError(f"{name} cannot be edited")


def update_clip(*, session: Session, clip_id: int, changes: dict[str, Any]) -> Clip:
    """Apply the editor's changes; section and tags become overrides suggestions never touch."""
    unknown = sorted(set(changes) - EDITABLE)
    if unknown:
        editable = ", ".join(sorted(EDITABLE))
        raise ValueError(f"cannot edit {', '.join(unknown)} (editable: {editable})")
    clip = get_clip(session=session, clip_id=clip_id)
    checked = {name: _checked_change(name, value) for name, value in changes.items()}
    for name, value in checked.items():
        setattr(clip, name, value)
    _touch(clip)
    session.add(clip)
    session.flush()
    return clip


def list_clips(
    *, session: Session, month: str, sections: Sequence[str] | None = None
) -> list[Clip]:
    """A month's clips by effective section (in the issue's order: config.section_key), then
    position, then when they were saved."""
    by_section = section_key(load_clippings_config(), sections)
    clips = list(
        session.exec(
            select(Clip)
            .where(Clip.month == check_month(month))
            .order_by(col(Clip.position), col(Clip.saved_at), col(Clip.id))
        )
    )
    # Stable sort: within a section the position / saved_at order above is kept.
    clips.sort(key=lambda clip: by_section(clip.effective_section))
    return clips


def reorder_clips(*, session: Session, month: str, ordered_ids: Sequence[int]) -> list[Clip]:
    """Set positions 0, 1, 2 ... in the given order; ids not in the month are an error."""
    month = check_month(month)
    if len(set(ordered_ids)) != len(ordered_ids):
        raise ValueError("an id appears twice in the new order")
    clips = {clip.id: clip for clip in session.exec(select(Clip).where(Clip.month == month))}
    stray = [clip_id for clip_id in ordered_ids if clip_id not in clips]
    if stray:
        raise ValueError(f"not clips of {month}: {', '.join(map(str, stray))}")
    for position, clip_id in enumerate(ordered_ids):
        clip = clips[clip_id]
        clip.position = position
        session.add(clip)
    # Clips left out keep their relative order after the ones placed.
    rest = sorted(
        (clip for clip_id, clip in clips.items() if clip_id not in set(ordered_ids)),
        key=lambda clip: (clip.position, clip.saved_at, clip.id or 0),
    )
    for offset, clip in enumerate(rest):
        clip.position = len(ordered_ids) + offset
        session.add(clip)
    session.flush()
    return list_clips(session=session, month=month)


def delete_clip(*, session: Session, clip_id: int) -> None:
    """Remove a clip; a missing id is a ValueError."""
    session.delete(get_clip(session=session, clip_id=clip_id))
    session.flush()


def months_with_clips(*, session: Session) -> list[str]:
    """Every month that has clips, newest first."""
    months = session.exec(select(Clip.month).distinct())
    return sorted(months, reverse=True)


def enrich_clips(
    *, session: Session, settings: Settings, clips: Sequence[Clip], fetch: bool = True,
    progress: Callable[[int], None] | None = None,
) -> EnrichReport:
    """Autofill (store, arXiv API, page titles) then suggestions; failures recorded, not raised."""
    return enrich(session=session, settings=settings, clips=clips, fetch=fetch,
                  progress=progress)


def clip_json(clip: Clip) -> dict[str, Any]:
    """A clip as JSON (the CLI's --json, the admin API): the editor's values, the suggestions
    beside them, and the effective ones."""
    return {
        "id": clip.id, "month": clip.month, "url": clip.url, "key": clip.key,
        "kind": clip.kind.value, "source": clip.source, "title": clip.title,
        "authors": clip.authors, "summary": clip.summary, "note": clip.note,
        "explainer": clip.explainer, "links": clip.links, "topic": clip.topic,
        "position": clip.position, "section": clip.section,
        "suggested_section": clip.suggested_section,
        "effective_section": clip.effective_section, "tags": clip.tags,
        "suggested_tags": clip.suggested_tags, "effective_tags": clip.effective_tags,
        "suggested_highlight": clip.suggested_highlight, "autofill": clip.autofill.value,
        "autofill_error": clip.autofill_error, "saved_at": clip.saved_at.isoformat(),
    }  # fmt: skip
