"""The admin and editor pages under /admin (see auth.py for who may see them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from digest.settings import Settings
from subscribers.web.admin import api, auth, editor, issues, people

pages = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False,
                  dependencies=[Depends(auth.require_admin)])
pages.include_router(people.router)
pages.include_router(editor.router)
pages.include_router(issues.router)


def install(app: FastAPI, settings: Settings) -> None:
    """Hash the admin password now (the plain text is not kept) and mount the admin routes."""
    app.state.admin = auth.admin_state_for(settings)
    app.include_router(auth.login_router)
    app.include_router(api.router)
    app.include_router(pages)
