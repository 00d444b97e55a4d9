"""The admin and editor pages under /admin (see auth.py for who may see them)."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from subscribers.web.admin import api, auth, editor, issues, people


def install(app: FastAPI, settings: Settings) -> None:
    """Hash the admin password now (the plain text is not kept) and mount the admin routes.

    Every router but the login one depends on auth.require_admin (the API on the token).
    """
    app.state.admin = auth.admin_state_for(settings)
    app.include_router(auth.login_router)
    app.include_router(api.router)
    for module in (people, editor, issues):
        app.include_router(module.router)
