"""The editor's clip pages: the month by section, add (and the bookmarklet), edit, reorder."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException

from digest.clippings.config import load_clippings_config
from digest.clippings.imports import ImportReport, import_clips
from digest.clippings.models import Clip, ClipKind
from digest.clippings.store import (
    add_clip,
    check_month,
    current_month,
    delete_clip,
    enrich_clips,
    list_clips,
    months_with_clips,
    update_clip,
)
from subscribers.web.admin import clipdata
from subscribers.web.admin.auth import admin_page, check_csrf, require_admin
from subscribers.web.pages import state

MAX_IMPORT = 60 * 1024  # the app caps every request body at 64 KiB (security.py)
router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False,
                   dependencies=[Depends(require_admin)])
TEXT_FIELDS = ("url", "title", "note", "tags", "month", "summary", "explainer", "topic", "kind",
               "section", "tags_suggested", "direction", "csrf", "highlight",
               *(f"link_{kind}" for kind in clipdata.EDIT_LINKS))


def _month(raw: str) -> str:
    try:
        return check_month(raw) if raw else current_month()
    except ValueError:
        raise HTTPException(404) from None


async def _form(request: Request) -> dict[str, str]:
    """The posted fields we know, as text (an upload or an unknown field is ignored)."""
    form = await request.form()
    values = {name: form.get(name) for name in TEXT_FIELDS}
    return {name: value for name, value in values.items() if isinstance(value, str)}


def _bookmarklet(request: Request) -> str:
    base = state(request).settings.public_url.rstrip("/")
    target = json.dumps(f"{base}/admin/clips/new?url=")
    return ("javascript:(function(){location.href=" + target + "+encodeURIComponent("
            "location.href)+'&title='+encodeURIComponent(document.title);})();")


@router.get("/clips", response_class=HTMLResponse)
def clips_page(request: Request, month: str = "", saved: int = 0) -> Response:
    return _clips_page(request, _month(month), saved=saved)


def _clips_page(request: Request, month: str, *, saved: int = 0,
                report: ImportReport | None = None, status: int = 200) -> Response:
    config = load_clippings_config(state(request).settings)
    with state(request).reading() as session:
        clips = list_clips(session=session, month=month)
        months = months_with_clips(session=session)
        sections = clipdata.sections_of(clips, config)
    return admin_page(request, "admin/clips.html", {
        "month": month, "months": sorted({*months, month}, reverse=True), "sections": sections,
        "count": len(clips), "bookmarklet": _bookmarklet(request), "saved": saved,
        "report": report, "nav": "clips"}, status=status)


@router.post("/clips/import", response_class=HTMLResponse)
async def import_file(request: Request) -> Response:
    """A bookmarks export (Netscape HTML), a CSV with a url column, or one url per line."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    month = _month(str(form.get("month") or ""))
    upload = form.get("file")
    raw = await upload.read(MAX_IMPORT + 1) if isinstance(upload, StarletteUpload) else b""
    name = (upload.filename or "") if isinstance(upload, StarletteUpload) else ""
    error = ("choose a file first" if not raw else
             f"the file is over {MAX_IMPORT // 1024} KB: split it" if len(raw) > MAX_IMPORT
             else "")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        error = "the file is not UTF-8 text"
    if error:
        return _clips_page(request, month, report=ImportReport(format="?", errors=[(1, error)]),
                           status=400)
    with state(request).writing() as session:
        report = import_clips(session=session, text=text, filename=name, source="import",
                              month=month)
        enrich_clips(session=session, settings=state(request).settings, clips=report.clips,
                     fetch=False)
        report.clips = []  # the page lists the month's clips itself
    return _clips_page(request, month, report=report)


@router.get("/clips/new", response_class=HTMLResponse)
def new_clip(request: Request, url: str = "", title: str = "", month: str = "") -> Response:
    """The bookmarklet lands here: a prefilled form; nothing is saved until it is posted."""
    return _new_form(request, {"url": url[:2000], "title": title[:500], "note": "", "tags": "",
                               "month": _month(month), "highlight": ""}, "")


def _new_form(request: Request, values: dict[str, str], error: str,
              status: int = 200) -> Response:
    return admin_page(request, "admin/clip_new.html", {"values": values, "error": error,
                                                       "nav": "clips"}, status=status)


@router.post("/clips/new")
async def create_clip(request: Request) -> Response:
    form = await _form(request)
    check_csrf(request, form.get("csrf", ""))
    values = {name: form.get(name, "") for name in ("url", "title", "note", "tags", "month",
                                                    "highlight")}
    try:
        month = check_month(values["month"] or current_month())
        with state(request).writing() as session:
            result = add_clip(session=session, url=values["url"].strip(), note=values["note"],
                              tags=values["tags"] or None, highlight=bool(values["highlight"]),
                              source="editor", month=month, title=values["title"])
            # Suggestions from what is stored; the network autofill is `digest clip enrich`,
            # so saving never waits on arXiv or a slow page.
            enrich_clips(session=session, settings=state(request).settings,
                         clips=[result.clip], fetch=False)
            clip_id = result.clip.id
    except ValueError as error:
        return _new_form(request, values, str(error), status=400)
    return RedirectResponse(f"/admin/clips/{clip_id}?saved=1", status_code=303)


def _clip(session: Any, clip_id: int) -> Clip:
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise HTTPException(404)
    return clip


def _edit_page(request: Request, clip: Clip, *, error: str = "", saved: bool = False,
               status: int = 200) -> Response:
    config = load_clippings_config(state(request).settings)
    return admin_page(request, "admin/clip_edit.html", {
        "clip": clip, "error": error, "saved": saved, "kinds": [k.value for k in ClipKind],
        "sections": clipdata.section_choices(config, [clip]), "link_kinds": clipdata.EDIT_LINKS,
        "tag_vocabulary": config.tag_names, "nav": "clips"}, status=status)


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
def edit_clip_page(request: Request, clip_id: int, saved: int = 0) -> Response:
    with state(request).reading() as session:
        clip = _clip(session, clip_id)
        session.expunge(clip)
    return _edit_page(request, clip, saved=bool(saved))


@router.post("/clips/{clip_id}")
async def edit_clip(request: Request, clip_id: int) -> Response:
    form = await _form(request)
    check_csrf(request, form.get("csrf", ""))
    with state(request).writing() as session:
        clip = _clip(session, clip_id)
        try:
            with session.begin_nested():
                update_clip(session=session, clip_id=clip_id,
                            changes=clipdata.form_changes(form, clip.suggested_tags))
        except ValueError as error:
            session.refresh(clip)
            session.expunge(clip)
            return _edit_page(request, clip, error=str(error), status=400)
        month = clip.month
    return RedirectResponse(f"/admin/clips?month={month}&saved={clip_id}#clip-{clip_id}",
                            status_code=303)


@router.post("/clips/{clip_id}/move")
async def move_clip(request: Request, clip_id: int) -> Response:
    form = await _form(request)
    check_csrf(request, form.get("csrf", ""))
    direction = form.get("direction", "")
    if direction not in ("up", "down"):
        raise HTTPException(400)
    with state(request).writing() as session:
        clip = _clip(session, clip_id)
        clipdata.move(session=session, clip=clip, direction=direction)
        month = clip.month
    return RedirectResponse(f"/admin/clips?month={month}#clip-{clip_id}", status_code=303)


@router.post("/clips/{clip_id}/delete")
async def remove_clip(request: Request, clip_id: int) -> Response:
    form = await _form(request)
    check_csrf(request, form.get("csrf", ""))
    with state(request).writing() as session:
        month = _clip(session, clip_id).month
        delete_clip(session=session, clip_id=clip_id)
    return RedirectResponse(f"/admin/clips?month={month}", status_code=303)
