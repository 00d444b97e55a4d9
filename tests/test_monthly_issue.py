"""Drafting, approving and reopening the monthly issue, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from core.db import session_scope
from core.settings import Settings
from digest.clippings.issue import (
    IssueError,
    approve_issue,
    draft_issue,
    get_issue,
    issue_title,
    list_issues,
    reopen_issue,
)
from digest.clippings.models import IssueStatus
from tests.support.monthly_data import MONTH, clip, sample_clips


def test_draft_shape(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        session.add(clip("2026-05", n=99, title="Next month"))
        issue = draft_issue(session=session, month=MONTH, intro="Hello April.")
        content = issue.content
    assert issue.title == content["title"] == "Clippings - April 2026"
    assert issue.slug == MONTH and issue.status == IssueStatus.draft
    assert content["intro"] == "Hello April."
    assert [h["title"] for h in content["highlights"]] == ["Codec Two", "VoiceOne: zero-shot TTS"]
    first = content["highlights"][1]
    assert first["tags"] == ["TTS", "NAR"]  # suggestions stand when the editor chose none
    assert content["highlights"][0]["tags"] == ["Discrete Tokens"]  # the editor's choice wins
    assert first["explainer"] == "NAR models predict tokens in parallel."
    assert [link["label"] for link in first["links"]] == ["Code", "Demo"]
    names = [section["name"] for section in content["sections"]]
    assert names == ["Speech & Audio", "LLM & Training", "Robotics", "Other"]
    speech = content["sections"][0]["papers"]
    assert [p["title"] for p in speech] == ["Streaming ASR", "Another speech paper"]
    assert [link["label"] for link in speech[0]["links"]] == ["Code", "Project"]
    assert [g["topic"] for g in content["also"]] == [
        "General ML & Engineering",
        "TTS & Speech",
        "More links",
    ]
    assert "Next month" not in str(content)


def test_refresh_keeps_intro_and_refuses_approved(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        draft_issue(session=session, month=MONTH, intro="Kept.", title="Clippings - Spring")
        session.add(clip(n=42, title="Late addition", suggested_section="Multimodal"))
        issue = draft_issue(session=session, month=MONTH)
        assert issue.intro == "Kept." and issue.title == "Clippings - Spring"
        assert "Late addition" in str(issue.content)
        approved = approve_issue(session=session, month=MONTH)
        frozen = dict(approved.content)
        with pytest.raises(IssueError, match="approved"):
            draft_issue(session=session, month=MONTH)
        with pytest.raises(IssueError, match="already approved"):
            approve_issue(session=session, month=MONTH)
        # Later clip edits never reach an approved issue.
        session.add(clip(n=43, title="After approval"))
        session.flush()
        assert get_issue(session=session, month=MONTH).content == frozen  # type: ignore[union-attr]
        reopened = reopen_issue(session=session, month=MONTH)
        assert reopened.status == IssueStatus.draft and reopened.approved_at is None
        assert "After approval" in str(draft_issue(session=session, month=MONTH).content)
        assert [i.month for i in list_issues(session=session)] == [MONTH]


def test_empty_issue_and_bad_month_refused(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        draft_issue(session=session, month="2026-03")
        with pytest.raises(IssueError, match="empty"):
            approve_issue(session=session, month="2026-03")
        with pytest.raises(IssueError, match="no issue"):
            approve_issue(session=session, month="2026-02")
        with pytest.raises(IssueError, match="2026-04"):
            draft_issue(session=session, month="2026-13")
    assert issue_title("2026-12") == "Clippings - December 2026"
