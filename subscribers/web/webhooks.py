"""`POST /webhooks/sendgrid`: SendGrid's signed Event Webhook.

A missing, malformed or wrong signature gets a 4xx and changes nothing; a database outage
gets a 503 so SendGrid retries the batch later (its events are applied once either way).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from digest.db import session_scope
from emails.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events, verify_signature
from subscribers.events import apply_events
from subscribers.web.pages import WebState

router = APIRouter(tags=["webhooks"])
MAX_BODY_BYTES = 5 * 1024 * 1024  # SendGrid batches are far smaller; refuse anything absurd


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


@router.post(
    "/webhooks/sendgrid",
    summary="SendGrid Event Webhook (signed)",
    responses={
        200: {"description": "Events recorded (repeats are ignored)"},
        400: {"description": "Not a JSON list of events"},
        403: {"description": "Missing or wrong signature, or no verification key configured"},
        413: {"description": "Body too large"},
        503: {"description": "Database unavailable; SendGrid will retry"},
    },
)
async def sendgrid_events(request: Request) -> JSONResponse:
    """Verify the ECDSA signature over timestamp + raw body, then apply each new event once."""
    state: WebState = request.app.state.web
    settings = state.settings
    if not settings.sendgrid_webhook_public_key:
        return _refuse(403, "event webhook verification key is not configured")
    payload = await request.body()
    if len(payload) > MAX_BODY_BYTES:
        return _refuse(413, "body too large")
    signed = verify_signature(
        settings.sendgrid_webhook_public_key,
        payload,
        request.headers.get(SIGNATURE_HEADER),
        request.headers.get(TIMESTAMP_HEADER),
    )
    if not signed:
        return _refuse(403, "bad or missing signature")
    try:
        events = parse_events(payload)
    except ValueError as error:
        return _refuse(400, str(error))
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            report = apply_events(session=session, events=events)
    except SQLAlchemyError:
        return _refuse(503, "database unavailable; retry later")
    return JSONResponse(report.__dict__)
