"""Admin pages about people and mail: overview, subscribers (search, CSV), deliveries, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from subscribers.models import Status
from subscribers.service import list_subscribers, unsubscribe
from subscribers.web.admin import csvio, queries
from subscribers.web.admin.auth import (
    CsrfOnly,
    admin_page,
    check_csrf,
    logout_response,
    require_admin,
)
from subscribers.web.pages import state

router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False,
                   dependencies=[Depends(require_admin)])
MAX_UPLOAD = 60 * 1024  # the app caps every request body at 64 KiB (security.py)


@router.get("", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    with state(request).reading() as session:
        counts = queries.status_counts(session=session)
        days = queries.deliveries_per_day(session=session, days=7)
    return admin_page(request, "admin/overview.html", {"counts": counts, "days": days,
                                                       "nav": "overview"})


@router.post("/logout")
def logout(request: Request, fields: Annotated[CsrfOnly, Form()]) -> Response:
    return logout_response(request, fields)


def _status(raw: str) -> Status | None:
    return Status(raw) if raw in {s.value for s in Status} else None


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers_page(request: Request, q: str = "", status: str = "") -> Response:
    q = q[:200]
    with state(request).reading() as session:
        found, total = queries.search_subscribers(session=session, query=q,
                                                  status=_status(status))
        counts = queries.status_counts(session=session)
    return admin_page(request, "admin/subscribers.html", {
        "subscribers": found, "total": total, "q": q, "status": _status(status) or "",
        "statuses": [s.value for s in Status], "counts": counts, "report": None,
        "nav": "subscribers"})


@router.get("/subscribers.csv")
def subscribers_csv(request: Request, status: str = "") -> Response:
    with state(request).reading() as session:
        text = csvio.export_csv(list_subscribers(session=session, status=_status(status)))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"',
        "Cache-Control": "no-store"})



@router.post("/subscribers/import", response_class=HTMLResponse)
async def subscribers_import(request: Request, csrf: Annotated[str, Form(max_length=500)] = "",
                             text: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
                             file: Annotated[UploadFile | None, File()] = None) -> Response:
    check_csrf(request, csrf)
    if file is not None and file.filename:
        raw = await file.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            error = (1, f"the file is over {MAX_UPLOAD // 1024} KB: split it and import the parts")
            return _import_result(request, csvio.ImportReport(errors=[error]), 400)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
            error = (1, "the file is not UTF-8 text; save it as CSV UTF-8 and try again")
            return _import_result(request, csvio.ImportReport(errors=[error]), 400)
    if not text.strip():
        return _import_result(request, csvio.ImportReport(errors=[(1, "choose a CSV file or "
                                                                  "paste rows first")]), 400)
    with state(request).writing() as session:
        report = csvio.import_csv(session=session, text=text)
    return _import_result(request, report, 200)


def _import_result(request: Request, report: csvio.ImportReport, status: int) -> Response:
    with state(request).reading() as session:
        found, total = queries.search_subscribers(session=session, limit=50)
        counts = queries.status_counts(session=session)
    return admin_page(request, "admin/subscribers.html", {
        "subscribers": found, "total": total, "q": "", "status": "",
        "statuses": [s.value for s in Status], "counts": counts, "report": report,
        "nav": "subscribers"}, status=status)


@router.post("/subscribers/{subscriber_id}/unsubscribe")
def subscriber_unsubscribe(request: Request, subscriber_id: int,
                           fields: Annotated[CsrfOnly, Form()]) -> Response:
    """Stop mail to someone who asked by other means (a reply, a support email)."""
    check_csrf(request, fields.csrf)
    with state(request).writing() as session:
        done = unsubscribe(session=session, subscriber_id=subscriber_id, channel="admin")
        if done is None:
            raise HTTPException(404)
        email = done.email
    return RedirectResponse(f"/admin/subscribers?q={quote(email)}", status_code=303)


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries(request: Request, days: int = 30) -> Response:
    days = min(max(days, 1), 366)
    with state(request).reading() as session:
        rows = queries.deliveries_per_day(session=session, days=days)
    totals = {name: sum(getattr(row, name) for row in rows) for name in queries.DAY_COLUMNS}
    return admin_page(request, "admin/deliveries.html", {
        "rows": rows, "days": days, "totals": totals, "columns": queries.DAY_COLUMNS,
        "nav": "deliveries"})


@router.get("/events", response_class=HTMLResponse)
def events(request: Request) -> Response:
    with state(request).reading() as session:
        rows = queries.recent_events(session=session, limit=200)
    return admin_page(request, "admin/events.html", {"rows": rows, "nav": "events"})


