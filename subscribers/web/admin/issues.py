"""The editor's issue pages: draft (with intro), preview (web + email at 375/800 px), approve,
reopen, send. The issue logic is digest/clippings/issue.py; "send" plans the issue's delivery
(issue_plan.py) and the one sender, workers/sending.py, mails it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.exceptions import HTTPException

from digest.clippings.issue import (
    IssueError,
    ToWrite,
    approve_issue,
    draft_issue,
    get_issue,
    list_issues,
    month_clips,
    reopen_issue,
    to_write,
)
from digest.clippings.models import IssueStatus, MonthlyIssue
from digest.clippings.store import check_month, current_month, months_with_clips
from emails.monthly import issue_view
from subscribers.monthly import preview_content, preview_email
from subscribers.web.admin import issue_plan
from subscribers.web.admin.auth import CsrfOnly, admin_page, check_csrf, require_admin
from subscribers.web.pages import state

router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False,
                   dependencies=[Depends(require_admin)])
# The rendered email is shown inside our own preview page: it may be framed by us only, and
# keeps its inline styles (email HTML has no other way to be styled).
EMAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
             "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
PREVIEW_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _month(raw: str) -> str:
    try:
        return check_month(raw)
    except ValueError:
        raise HTTPException(404) from None


@router.get("/issues", response_class=HTMLResponse)
def issues_page(request: Request) -> Response:
    with state(request).reading() as session:
        issues = list_issues(session=session)
        months = months_with_clips(session=session)
    drafted = {issue.month for issue in issues}
    return admin_page(request, "admin/issues.html", {
        "issues": issues, "undrafted": [m for m in sorted({*months, current_month()},
                                                          reverse=True) if m not in drafted],
        "nav": "issues"})


def _issue_page(request: Request, month: str, *, error: str = "", status: int = 200,
                done: str = "") -> Response:
    with state(request).reading() as session:
        issue = get_issue(session=session, month=month)
        todo = _todo(session, month, issue)
        if issue is not None:
            session.expunge(issue)
    return admin_page(request, "admin/issue.html", {
        "month": month, "issue": issue, "error": error, "done": done, "nav": "issues",
        "statuses": IssueStatus, "todo": todo}, status=status)


def _todo(session: Session, month: str, issue: MonthlyIssue | None) -> list[ToWrite]:
    """What the editor still has to write; nothing once the content is frozen."""
    if issue is not None and issue.status != IssueStatus.draft:
        return []
    return to_write(month_clips(session=session, month=month))


DONE = {"drafted": "Draft updated from the clips.", "approved": "Approved: the content is "
        "frozen.", "reopened": "Reopened for editing."}


def _done_text(done: str) -> str:
    """The notice after an action (a fixed text; only the planned count comes from the URL)."""
    kind, _, count = done.partition("-")
    if kind == "sent" and count.isdigit():
        return (f"Sent: {int(count)} deliveries planned. The sender (digest serve or the "
                "Celery workers) mails them; the issue is now in the archive.")
    return DONE.get(done, "")


@router.get("/issues/{month}", response_class=HTMLResponse)
def issue_page(request: Request, month: str, done: str = "") -> Response:
    return _issue_page(request, _month(month), done=_done_text(done[:20]))


class DraftFields(BaseModel):
    csrf: str = Field("", max_length=500)
    intro: str = Field("", max_length=20_000)
    title: str = Field("", max_length=200)


def _act(request: Request, month: str, done: str, action: str) -> Response:
    """Run one issue action in a transaction; an IssueError is shown on the issue page."""
    try:
        with state(request).writing() as session:
            if action == "approve":
                approve_issue(session=session, month=month)
            elif action == "reopen":
                reopen_issue(session=session, month=month)
            else:
                done = f"sent-{issue_plan.plan_sending(session=session, month=month)}"
    except (IssueError, ValueError) as error:
        return _issue_page(request, month, error=str(error), status=400)
    return RedirectResponse(f"/admin/issues/{month}?done={done}", status_code=303)


@router.post("/issues/{month}/draft")
def draft(request: Request, month: str, fields: Annotated[DraftFields, Form()]) -> Response:
    month = _month(month)
    check_csrf(request, fields.csrf)
    try:
        with state(request).writing() as session:
            draft_issue(session=session, month=month, intro=fields.intro,
                        title=fields.title or None)
    except (IssueError, ValueError) as error:
        return _issue_page(request, month, error=str(error), status=400)
    return RedirectResponse(f"/admin/issues/{month}?done=drafted", status_code=303)


@router.post("/issues/{month}/approve")
def approve(request: Request, month: str, fields: Annotated[CsrfOnly, Form()]) -> Response:
    month = _month(month)
    check_csrf(request, fields.csrf)
    return _act(request, month, "approved", "approve")


@router.post("/issues/{month}/reopen")
def reopen(request: Request, month: str, fields: Annotated[CsrfOnly, Form()]) -> Response:
    month = _month(month)
    check_csrf(request, fields.csrf)
    return _act(request, month, "reopened", "reopen")


@router.post("/issues/{month}/send")
def send(request: Request, month: str, fields: Annotated[CsrfOnly, Form()]) -> Response:
    month = _month(month)
    check_csrf(request, fields.csrf)
    return _act(request, month, "sent", "send")


@router.get("/issues/{month}/preview", response_class=HTMLResponse)
def preview(request: Request, month: str) -> Response:
    """The email at 375 and 800 px side by side, each in a frame of that width."""
    month = _month(month)
    with state(request).reading() as session:
        issue = get_issue(session=session, month=month)
        if issue is None:
            raise HTTPException(404)
        todo = _todo(session, month, issue)
        session.expunge(issue)
    response = admin_page(request, "admin/issue_preview.html", {"issue": issue, "todo": todo,
                                                                "nav": "issues"})
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response


@router.get("/issues/{month}/web", response_class=HTMLResponse)
def web_preview(request: Request, month: str) -> Response:
    """The issue as its archive page will show it (a draft: from the clips as they are now)."""
    month = _month(month)
    with state(request).reading() as session:
        issue = get_issue(session=session, month=month)
        if issue is None:
            raise HTTPException(404)
        view = issue_view(preview_content(session=session, issue=issue))
        session.expunge(issue)
    return admin_page(request, "admin/issue_web.html", {"issue": issue, "view": view,
                                                        "nav": "issues"})


@router.get("/issues/{month}/email", response_class=HTMLResponse)
def email_html(request: Request, month: str) -> Response:
    """The email as a reader would get it: a draft shows the clips as they are now, an
    approved or sent issue its frozen content; links are examples, not real tokens."""
    month = _month(month)
    try:
        with state(request).reading() as session:
            issue = get_issue(session=session, month=month)
            if issue is None:
                raise HTTPException(404)
            message = preview_email(settings=state(request).settings, session=session,
                                    issue=issue)
    except IssueError as error:
        return _issue_page(request, month, error=str(error), status=400)
    return HTMLResponse(message.html, headers={
        "Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store"})
