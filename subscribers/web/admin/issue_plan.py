"""The one place the editor pages hand an approved issue to the delivery ledger: this plans
the issue's sending (one ledger row per reader); the sender (workers/sending.py) mails them."""

from __future__ import annotations

from sqlmodel import Session

from digest.clippings.issue import IssueError, get_issue
from digest.clippings.models import IssueStatus
from subscribers.monthly import plan_monthly


def plan_sending(*, session: Session, month: str) -> int:
    """Plan one ledger row per subscriber who opted in (marks the issue sent); the sender
    (`digest serve` or the Celery workers) mails them. Returns how many rows were planned."""
    issue = get_issue(session=session, month=month)
    if issue is None or issue.status != IssueStatus.approved:
        state = issue.status.value if issue else "not drafted yet"
        raise IssueError(f"only an approved issue can be sent (the {month} issue is {state})")
    return plan_monthly(session=session, issue=issue)
