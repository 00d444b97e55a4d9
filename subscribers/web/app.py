"""The subscriber web app: signup, confirm, manage, unsubscribe, and a health check.

Run by `digest serve` (workers/serve.py) together with the sender; tests drive it with
FastAPI's TestClient and, for the whole journey, a real uvicorn and Chromium.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from core.db import get_engine
from core.settings import Settings
from digest.semantic import warm_up
from subscribers.web import (
    account,
    admin,
    archive,
    feed,
    feedback,
    saved,
    signup,
    unsubscribe,
    webhooks,
)
from subscribers.web.pages import STATIC, WebLimits, WebState, message_page
from subscribers.web.preview import PreviewService
from subscribers.web.security import Csrf, Limit, RateLimiter, SecurityHeaders


def limits_from(settings: Settings) -> WebLimits:
    """Limits from settings when they define them (DIGEST_SIGNUP_LIMIT_PER_IP...), else defaults."""
    default = WebLimits()
    per_ip = settings.signup_limit_per_ip
    mails = settings.confirmations_per_address_per_day
    return WebLimits(
        signup=Limit(int(per_ip), default.signup.seconds) if per_ip else default.signup,
        actions=default.actions,
        preview=default.preview,
        mails_per_day=int(mails) if mails else default.mails_per_day,
    )


def create_app(settings: Settings, *, limits: WebLimits | None = None) -> FastAPI:
    """The app for these settings (the schema must already be migrated)."""
    limits = limits or limits_from(settings)
    counted_in = settings.rate_limit_redis_url  # "": each process counts in its memory
    warm_up(settings.semantic)
    app = FastAPI(
        title="Paper Digest subscriptions",
        summary="Sign up for arXiv paper digests, confirm, manage, unsubscribe.",
        version="1",
        # The interactive docs load scripts from a CDN, which the CSP forbids; the schema
        # itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.web = WebState(
        settings=settings,
        csrf=Csrf(settings.signing_keys(), public_url=settings.public_url),
        preview=PreviewService(settings),  # matches by words until the model has loaded
        limits=limits,
        signup_window=RateLimiter(limits.signup, counted_in),
        actions_window=RateLimiter(limits.actions, counted_in),
        preview_window=RateLimiter(limits.preview, counted_in),
    )
    app.add_middleware(SecurityHeaders, route_limits={webhooks.PATH: webhooks.MAX_BODY_BYTES})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(signup.router)
    app.include_router(account.router)
    app.include_router(unsubscribe.router)
    app.include_router(webhooks.router)
    admin.install(app, settings)
    app.include_router(archive.router)
    # Before feedback: its /feedback/{token}/{path} would take ".../save" for a paper id.
    app.include_router(saved.router)
    app.include_router(feedback.router)
    app.include_router(feed.router)

    @app.get("/healthz", tags=["health"], summary="Health check for load balancers",
             responses={503: {"description": "The database does not answer"}})
    def healthz() -> JSONResponse:
        """200 when the database answers a query, 503 when it does not."""
        try:
            with get_engine(settings.sqlalchemy_url).connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"},
                            headers={"Cache-Control": "no-store"})

    @app.exception_handler(account.Stop)
    def stopped(_request: Request, stop: Any) -> Response:
        response: Response = stop.response
        return response

    @app.exception_handler(HTTPException)
    def http_error(request: Request, error: Any) -> Response:
        titles = {404: "Page not found", 405: "Not allowed"}
        title = titles.get(error.status_code, "Something went wrong")
        return message_page(request, title=title, status=error.status_code,
                            paragraphs=["There is nothing here. The home page has the "
                                        "signup form."],
                            link=("/", "Go to the home page"), headers=error.headers)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, _error: Any) -> Response:
        return message_page(request, title="That request didn't make sense", status=400,
                            paragraphs=["Something in the form was too long or malformed. "
                                        "Go back and try again."],
                            link=("/", "Go to the home page"))

    return app
