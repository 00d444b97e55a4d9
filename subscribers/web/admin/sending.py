"""The one place the editor pages hand an approved issue to the delivery ledger."""

from __future__ import annotations

from sqlmodel import Session

from digest.clippings.issue import IssueError, get_issue
from digest.clippings.models import IssueStatus


def send_issue(*, session: Session, month: str) -> int:
    """Plan one ledger row per subscriber who opted in; returns how many were planned."""
    issue = get_issue(session=session, month=month)
    if issue is None or issue.status != IssueStatus.approved:
        raise IssueError(f"only an approved issue can be sent ({month} is "
                         f"{issue.status.value if issue else 'not drafted'})")
    raise IssueError("sending from the admin waits for subscribers/monthly.py (plan_monthly)")
