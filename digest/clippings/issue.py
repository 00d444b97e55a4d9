"""The monthly issue: drafted from the month's clips, approved (content frozen), then sent.

The editor (CLI `digest monthly ...` or the admin pages) calls these; the sender and the
archive only ever read `MonthlyIssue.content`, so what readers got never changes afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from digest.clippings.config import load_clippings_config, section_key
from digest.clippings.models import AutofillState, Clip, ClipKind, IssueStatus, MonthlyIssue
from digest.clippings.titles import guessed_title

FALLBACK_TOPIC = "More links"
LINK_ORDER = ("code", "demo", "project", "weights", "paper")
CONTENT_VERSION = 1
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class IssueError(ValueError):
    """The issue cannot do what was asked (wrong status, empty, bad month): one clear line."""


def _now() -> datetime:
    return datetime.now(UTC)


def check_month(month: str) -> str:
    """'2026-04' as given, or IssueError for anything else."""
    if not _MONTH.match(month or ""):
        raise IssueError(f"month must look like 2026-04, not {month!r}")
    return month


def issue_title(month: str) -> str:
    """'Clippings - April 2026'."""
    year, number = check_month(month).split("-")
    return f"Clippings - {_MONTHS[int(number) - 1]} {year}"


def issue_slug(month: str) -> str:
    """The archive address of the month's issue: /archive/2026-04."""
    return check_month(month)


def month_clips(*, session: Session, month: str) -> list[Clip]:
    """The month's clips in the editor's order (position, then when they were saved)."""
    query = (
        select(Clip)
        .where(Clip.month == check_month(month))
        .order_by(col(Clip.position), col(Clip.saved_at), col(Clip.id))
    )
    return list(session.exec(query))


def _links(clip: Clip) -> list[dict[str, str]]:
    """Related links as [{'label': 'Code', 'url': ...}], Code/Demo/Project first."""
    known = [k for k in LINK_ORDER if clip.links.get(k)]
    rest = sorted(k for k in clip.links if k not in LINK_ORDER and clip.links[k])
    return [{"label": key.capitalize(), "url": clip.links[key]} for key in known + rest]


def _title(clip: Clip) -> str:
    return clip.title.strip() or clip.url


# The note is the editor's private aside ("...; must read"): it never reaches readers. The
# public write-up of every kind of clip is its summary (autofilled, then edited).
def public_text(clip: Clip) -> str:
    """What readers see of a clip: its summary, never its note."""
    return clip.summary.strip()


@dataclass(frozen=True)
class ToWrite:
    """A clip the editor still has to write for: what is missing, in the editor's words."""

    clip_id: int | None
    title: str
    url: str
    problems: tuple[str, ...]


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold().strip(" .;:!")


def copied_from_note(clip: Clip) -> bool:
    """The public write-up repeats the private note (pasted in, or the note is all it says)."""
    note, summary = _squash(clip.note), _squash(clip.summary)
    return bool(note and summary and (note == summary or len(note) >= 12 and note in summary))


def to_write(clips: list[Clip]) -> list[ToWrite]:
    """What the editor still has to write before the issue reads well, clip by clip."""
    todo = []
    for clip in clips:
        problems = []
        if guessed_title(clip):
            problems.append("title guessed from the address: check it")
        if not public_text(clip):
            problems.append("no public write-up: write its summary (the note stays private)")
        elif copied_from_note(clip):
            problems.append("the summary repeats your private note: rewrite it for readers")
        if clip.autofill == AutofillState.failed and clip.autofill_error:
            problems.append(f"autofill failed ({clip.autofill_error[:120]})")
        if problems:
            todo.append(ToWrite(clip.id, _title(clip), clip.url, tuple(problems)))
    return todo


def _highlight(clip: Clip) -> dict[str, Any]:
    return {
        "title": _title(clip),
        "url": clip.url,
        "tags": clip.effective_tags,
        "write_up": public_text(clip),
        "explainer": clip.explainer.strip(),
        "links": _links(clip),
    }


def _paper(clip: Clip) -> dict[str, Any]:
    return {
        "title": _title(clip),
        "url": clip.url,
        "tags": clip.effective_tags,
        "summary": public_text(clip),
        "links": _links(clip),
    }


def _also(clip: Clip) -> dict[str, Any]:
    return {"title": _title(clip), "url": clip.url, "summary": public_text(clip)}


def issue_content(
    *,
    clips: list[Clip],
    month: str,
    title: str,
    intro: str,
    sections: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The issue as rendered and archived: highlights, papers by section, links by topic.
    Sections come in the order the editor's pages show them (config.section_key)."""
    config = load_clippings_config()
    by_section: dict[str, list[dict[str, Any]]] = {}
    by_topic: dict[str, list[dict[str, Any]]] = {}
    highlights = []
    for clip in clips:
        if clip.kind == ClipKind.highlight:
            highlights.append(_highlight(clip))
        elif clip.kind == ClipKind.link:
            by_topic.setdefault(clip.topic.strip() or FALLBACK_TOPIC, []).append(_also(clip))
        else:
            name = clip.effective_section.strip() or config.fallback_section
            by_section.setdefault(name, []).append(_paper(clip))
    names = sorted(by_section, key=section_key(config, sections or None))
    topics = sorted(by_topic, key=lambda topic: (topic == FALLBACK_TOPIC, topic.casefold()))
    return {
        "version": CONTENT_VERSION,
        "month": month,
        "title": title,
        "intro": intro,
        "highlights": highlights,
        "sections": [{"name": name, "papers": by_section[name]} for name in names],
        "also": [{"topic": topic, "links": by_topic[topic]} for topic in topics],
    }


def content_size(content: dict[str, Any]) -> int:
    """How many items an issue's content holds (an issue of none is never approved)."""
    return (
        len(content.get("highlights", []))
        + sum(len(section["papers"]) for section in content.get("sections", []))
        + sum(len(group["links"]) for group in content.get("also", []))
    )


def get_issue(*, session: Session, month: str) -> MonthlyIssue | None:
    return session.exec(
        select(MonthlyIssue).where(MonthlyIssue.month == check_month(month))
    ).first()


def get_issue_by_slug(*, session: Session, slug: str) -> MonthlyIssue | None:
    return session.exec(select(MonthlyIssue).where(MonthlyIssue.slug == slug)).first()


def list_issues(
    *, session: Session, status: IssueStatus | None = None, limit: int = 240
) -> list[MonthlyIssue]:
    """Newest month first, optionally of one status."""
    query = select(MonthlyIssue).order_by(col(MonthlyIssue.month).desc()).limit(limit)
    if status is not None:
        query = query.where(MonthlyIssue.status == status)
    return list(session.exec(query))


def _require(session: Session, month: str) -> MonthlyIssue:
    issue = get_issue(session=session, month=month)
    if issue is None:
        raise IssueError(f"no issue for {month}: run `digest monthly draft --month {month}`")
    return issue


def draft_issue(
    *, session: Session, month: str, intro: str | None = None, title: str | None = None
) -> MonthlyIssue:
    """Create or refresh the month's draft from its clips; the editor's intro and title stay
    unless new ones are given. Approved and sent issues are never touched."""
    issue = get_issue(session=session, month=month)
    if issue is None:
        issue = MonthlyIssue(month=month, slug=issue_slug(month), title=issue_title(month))
    elif issue.status != IssueStatus.draft:
        raise IssueError(
            f"the {month} issue is {issue.status.value}: "
            + ("reopen it first" if issue.status == IssueStatus.approved else "it went out")
        )
    if intro is not None:
        issue.intro = intro.strip()
    if title is not None and title.strip():
        issue.title = title.strip()[:200]
    issue.content = issue_content(
        clips=month_clips(session=session, month=month),
        month=month,
        title=issue.title,
        intro=issue.intro,
    )
    issue.updated_at = _now()
    session.add(issue)
    session.flush()
    return issue


def approve_issue(*, session: Session, month: str) -> MonthlyIssue:
    """Freeze the content from the clips as they are now; an empty issue is refused."""
    issue = _require(session, month)
    if issue.status != IssueStatus.draft:
        raise IssueError(f"the {month} issue is already {issue.status.value}")
    content = issue_content(
        clips=month_clips(session=session, month=month),
        month=month,
        title=issue.title,
        intro=issue.intro,
    )
    if content_size(content) == 0:
        raise IssueError(f"the {month} issue is empty: clip something for {month} first")
    issue.content = content
    issue.status = IssueStatus.approved
    issue.approved_at = issue.updated_at = _now()
    session.add(issue)
    session.flush()
    return issue


def reopen_issue(*, session: Session, month: str) -> MonthlyIssue:
    """Approved back to draft (to edit again); a sent issue stays as it went out."""
    issue = _require(session, month)
    if issue.status == IssueStatus.sent:
        raise IssueError(f"the {month} issue was sent and cannot be reopened")
    issue.status = IssueStatus.draft
    issue.approved_at = None
    issue.updated_at = _now()
    session.add(issue)
    session.flush()
    return issue


def mark_issue_sent(*, session: Session, issue: MonthlyIssue) -> None:
    """Approved -> sent (the ledger rows were written in the same transaction)."""
    issue.status = IssueStatus.sent
    issue.sent_at = issue.updated_at = _now()
    session.add(issue)
