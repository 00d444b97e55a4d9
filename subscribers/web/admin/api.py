"""POST /admin/api/clips: save a clip from a script, with `Authorization: Bearer <token>`.

JSON in: {"url": ..., "note"?, "tags"? (list or "a, b"), "highlight"?, "title"?, "month"?};
the saved clip's JSON out (201 when new, 200 when merged into the month's existing clip).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from digest.clippings.store import add_clip, clip_json, enrich_clips
from subscribers.web.admin.auth import require_api_token
from subscribers.web.pages import state

router = APIRouter(prefix="/admin/api", tags=["admin"],
                   dependencies=[Depends(require_api_token)])
FIELDS: dict[str, type | tuple[type, ...]] = {
    "url": str, "note": str, "title": str, "month": str, "highlight": bool, "tags": (list, str)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _checked(payload: Any) -> dict[str, Any]:
    """The request's fields, type-checked; ValueError names the first bad one."""
    if not isinstance(payload, dict):
        raise ValueError("send a JSON object, like {\"url\": \"https://arxiv.org/abs/...\"}")
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    if not isinstance(payload.get("url"), str) or not payload["url"].strip():
        raise ValueError("url is required")
    for name, kind in FIELDS.items():
        if name in payload and payload[name] is not None and not isinstance(payload[name], kind):
            raise ValueError(f"{name} has the wrong type")
    return {name: value for name, value in payload.items() if value is not None}


@router.post("/clips", summary="Save a clip (Bearer token)",
             responses={201: {"description": "Created"}, 200: {"description": "Merged"},
                        400: {"description": "Bad JSON or field"},
                        401: {"description": "Missing or wrong token"}})
async def api_add_clip(request: Request) -> JSONResponse:
    if "json" not in request.headers.get("content-type", ""):
        return _error(415, "send Content-Type: application/json")
    try:
        fields = _checked(json.loads(await request.body()))
    except json.JSONDecodeError as error:
        return _error(400, f"the body is not valid JSON: {error.msg} at {error.pos}")
    except ValueError as error:
        return _error(400, str(error))
    try:
        with state(request).writing() as session:
            result = add_clip(session=session, url=fields["url"].strip(),
                              note=fields.get("note", ""), tags=fields.get("tags"),
                              highlight=fields.get("highlight", False), source="api",
                              month=fields.get("month"), title=fields.get("title"))
            enrich_clips(session=session, settings=state(request).settings,
                         clips=[result.clip], fetch=False)
            body = clip_json(result.clip)
    except ValueError as error:
        return _error(400, str(error))
    return JSONResponse(body, status_code=201 if result.created else 200)
