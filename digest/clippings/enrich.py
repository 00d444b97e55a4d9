"""Autofill then suggest, for the clips just saved or for a whole month (re-run suggestions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.settings import Settings
from digest.clippings.autofill import autofill_clips
from digest.clippings.config import load_clippings_config
from digest.clippings.models import AutofillState, Clip
from digest.clippings.sorting import Suggestion, apply_suggestion, suggest
from digest.trending import TrendingScore

AUTOFILL_BATCH = 100  # clips autofilled per step: one arXiv API request's worth of ids


@dataclass
class EnrichReport:
    """How autofill went and what was suggested, per clip id."""

    filled: int = 0
    failed: int = 0
    pending: int = 0
    errors: dict[int, str] = field(default_factory=dict)  # clip id -> why autofill failed
    suggestions: dict[int, Suggestion] = field(default_factory=dict)


def trending_upvotes(*, session: Session, ids: Sequence[str]) -> dict[str, int]:
    """The most upvotes each paper had on any day's trending list."""
    wanted = [arxiv_id for arxiv_id in dict.fromkeys(ids) if arxiv_id]
    votes: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        rows = session.exec(
            select(TrendingScore.arxiv_id, func.max(TrendingScore.upvotes))
            .where(col(TrendingScore.arxiv_id).in_(wanted[start:start + 500]))
            .group_by(col(TrendingScore.arxiv_id))
        )
        votes.update({arxiv_id: int(count or 0) for arxiv_id, count in rows})
    return votes


def suggest_clips(
    *, session: Session, settings: Settings, clips: Sequence[Clip]
) -> dict[int, Suggestion]:
    """Suggestions for the given clips, each scored among all clips of its month."""
    results = _apply_suggestions(session=session, settings=settings, clips=clips)
    session.flush()
    return results


def _apply_suggestions(
    *, session: Session, settings: Settings, clips: Sequence[Clip]
) -> dict[int, Suggestion]:
    """suggest_clips without its write: the suggestions are set on the clips, unflushed."""
    config = load_clippings_config(settings)
    wanted = {clip.id for clip in clips}
    results: dict[int, Suggestion] = {}
    for month in sorted({clip.month for clip in clips}):
        context = list(session.exec(select(Clip).where(Clip.month == month).order_by(col(Clip.id))))
        upvotes = trending_upvotes(session=session, ids=[c.arxiv_id or "" for c in context])
        for clip, suggestion in zip(context, suggest(context, config, upvotes=upvotes),
                                    strict=True):
            if clip.id in wanted and clip.id is not None:
                apply_suggestion(clip, suggestion)
                session.add(clip)
                results[clip.id] = suggestion
    return results


def enrich(
    *, session: Session, settings: Settings, clips: Sequence[Clip], fetch: bool = True,
    progress: Callable[[int], None] | None = None,
) -> EnrichReport:
    """Autofill the clips (network only when fetch), then suggest section, tags and highlight;
    `progress(n)` hears of every batch of n clips autofilled (an import of thousands)."""
    session.flush()  # new clips need their ids and must be visible to the month's query
    # One write at the end, none between batches nor before the suggestions: on SQLite a
    # write holds the database's one write lock until the commit, and the server's saves
    # would wait on the network and on scoring thousands of clips.
    report = EnrichReport()
    with session.no_autoflush:
        for start in range(0, len(clips), AUTOFILL_BATCH):
            batch = clips[start:start + AUTOFILL_BATCH]
            autofill_clips(
                session=session, clips=batch, api_url=settings.arxiv_api_url,
                timeout=settings.clip_fetch_timeout_seconds, fetch=fetch,
            )
            if progress is not None:
                progress(len(batch))
        report.suggestions = _apply_suggestions(session=session, settings=settings, clips=clips)
    session.flush()
    for clip in clips:
        if clip.autofill == AutofillState.done:
            report.filled += 1
        elif clip.autofill == AutofillState.failed:
            report.failed += 1
            if clip.id is not None:
                report.errors[clip.id] = clip.autofill_error or "unknown"
        else:
            report.pending += 1
    return report


def suggest_month(*, session: Session, settings: Settings, month: str) -> dict[int, Suggestion]:
    """Re-run suggestions for every clip of a month; overrides are left alone."""
    clips = list(session.exec(select(Clip).where(Clip.month == month)))
    return suggest_clips(session=session, settings=settings, clips=clips)
