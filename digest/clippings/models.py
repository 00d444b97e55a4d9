"""The clippings tables: clips saved through a month, and the monthly issues made from them.

Every machine suggestion (section, tags, highlight) is stored beside the editor's choice, so
the editor sees what was suggested and an override is never lost when suggestions are re-run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class ClipKind(StrEnum):
    paper = "paper"  # a research paper: arXiv, OpenReview, a Hugging Face paper page
    highlight = "highlight"  # one of the issue's highlights, with the editor's write-up
    link = "link"  # anything else (repo, blog post, model card): "Also worth a look"


class AutofillState(StrEnum):
    pending = "pending"
    done = "done"
    failed = "failed"  # the reason is in autofill_error; the url stands in for the title


class Clip(SQLModel, table=True):
    # One clip per thing per month: the abs, pdf and versioned urls of a paper share one key.
    __table_args__ = (UniqueConstraint("month", "key", name="uq_clip_month_key"),)

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, index=True)  # "2026-04": the issue it belongs to
    key: str = Field(max_length=400)  # "arxiv:2604.01234", "openreview:<id>", or the clean url
    url: str = Field(max_length=2000)  # the canonical url readers follow
    source: str = Field(default="cli", max_length=40)  # cli, import, bookmarklet, api, editor
    kind: ClipKind = ClipKind.paper
    arxiv_id: str | None = Field(default=None, max_length=40, index=True)

    title: str = ""
    authors: list[str] = Field(default_factory=list, sa_type=JSON)
    abstract: str = ""
    summary: str = ""  # a draft made from the abstract, then whatever the editor rewrote
    note: str = ""  # the editor's own note; a highlight's write-up
    explainer: str = ""  # a highlight's optional explainer box
    links: dict[str, str] = Field(default_factory=dict, sa_type=JSON)  # code, demo, project ...

    tags: list[str] | None = Field(default=None, sa_type=JSON)  # None: take the suggestions
    section: str | None = Field(default=None, max_length=80)  # None: take the suggestion
    suggested_tags: list[str] = Field(default_factory=list, sa_type=JSON)
    suggested_section: str = Field(default="", max_length=80)
    suggested_highlight: bool = False
    topic: str = Field(default="", max_length=80)  # the group in "Also worth a look"
    position: int = 0  # the editor's order within a section; ties by saved_at

    autofill: AutofillState = AutofillState.pending
    autofill_error: str | None = None
    saved_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    @property
    def effective_tags(self) -> list[str]:
        return list(self.suggested_tags if self.tags is None else self.tags)

    @property
    def effective_section(self) -> str:
        return self.section if self.section is not None else self.suggested_section


class IssueStatus(StrEnum):
    draft = "draft"  # being edited; regenerating the draft keeps the editor's intro
    approved = "approved"  # frozen content, ready to send
    sent = "sent"  # handed to the ledger for every subscriber who opted in


class MonthlyIssue(SQLModel, table=True):
    __tablename__ = "monthly_issue"

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, unique=True)  # "2026-04"
    slug: str = Field(max_length=80, unique=True, index=True)  # archive address: /archive/<slug>
    title: str = Field(max_length=200)  # "Clippings - April 2026"
    intro: str = ""
    status: IssueStatus = Field(default=IssueStatus.draft, index=True)
    # The issue as it is rendered, sent and archived, frozen at approval (JSON of sections and
    # clips), so later edits to clips never change what readers already received.
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    approved_at: datetime | None = None
    sent_at: datetime | None = None
