"""The editor's view of clips: months, sections in order, and the JSON shape of the API.

The clip store itself lives in digest/clippings/store.py; this module only arranges its
results for the pages, so the pages stay thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from digest.clippings.config import ClippingsConfig, section_key, section_order
from digest.clippings.models import Clip, ClipKind
from digest.clippings.store import LINK_KINDS, clean_tags, list_clips, reorder_clips

EDIT_LINKS = ("code", "demo", "project", "weights")


def sections_of(clips: Sequence[Clip], config: ClippingsConfig) -> list[tuple[str, list[Clip]]]:
    """Clips grouped by effective section, the sections in the issue's order."""
    groups: dict[str, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(clip.effective_section or "Unsorted", []).append(clip)
    return [(name, groups[name]) for name in sorted(groups, key=section_key(config))]


def section_choices(config: ClippingsConfig, clips: Sequence[Clip] = ()) -> list[str]:
    names = list(section_order(config))
    for clip in clips:
        for name in (clip.section, clip.suggested_section):
            if name and name not in names:
                names.append(name)
    return list(dict.fromkeys(names))


def move(*, session: Session, clip: Clip, direction: str) -> None:
    """Swap a clip with its neighbour in its section (up or down), then renumber the month."""
    clips = list_clips(session=session, month=clip.month)
    section = [c for c in clips if c.effective_section == clip.effective_section]
    index = next(i for i, c in enumerate(section) if c.id == clip.id)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(section):
        return
    section[index], section[other] = section[other], section[index]
    swapped = iter(section)
    ordered = [next(swapped) if c.effective_section == clip.effective_section else c
               for c in clips]
    reorder_clips(session=session, month=clip.month, ordered_ids=[c.id or 0 for c in ordered])


def form_changes(form: dict[str, str], suggested_tags: Sequence[str] = ()) -> dict[str, Any]:
    """The edit form as update_clip changes; an empty section or 'suggested' tags mean 'take
    the suggestion' (None), so re-running suggestions keeps working for those fields.

    Tags typed into the box win over the "use the suggested tags" box when they differ from
    the suggestions: the editor's typing is never silently dropped."""
    changes: dict[str, Any] = {name: form.get(name, "") for name in
                               ("title", "summary", "note", "explainer", "topic")}
    changes["kind"] = form.get("kind", ClipKind.paper.value)
    changes["section"] = form.get("section") or None
    typed = clean_tags(form.get("tags", ""))
    keep_suggested = form.get("tags_suggested") and typed == clean_tags(list(suggested_tags))
    changes["tags"] = None if keep_suggested else typed
    changes["links"] = {kind: form.get(f"link_{kind}", "").strip() for kind in EDIT_LINKS}
    return changes


__all__ = ["EDIT_LINKS", "LINK_KINDS", "form_changes", "move", "section_choices",
           "sections_of"]
