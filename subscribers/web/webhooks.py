"""`POST /webhooks/sendgrid`: SendGrid's signed Event Webhook.

A missing, malformed or wrong signature gets a 4xx and changes nothing; a database outage
gets a 503 so SendGrid retries the batch later (its events are applied once either way).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from emails.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events, verify_signature
from subscribers.events import apply_events
from subscribers.web.pages import WebState

router = APIRouter(tags=["webhooks"])
PATH = "/webhooks/sendgrid"
# SendGrid posts events in batches (a thousand events is about 1 MB) and retries a refused
# batch, so the app-wide 64 KiB form cap must not apply here (app.py); a few MB is no batch.
MAX_BODY_BYTES = 5 * 1024 * 1024


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


@router.post(
    PATH,
    summary="SendGrid Event Webhook (signed)",
    responses={
        200: {"description": "Events recorded (repeats are ignored; events that cannot be "
                             "applied are recorded as rejected)"},
        400: {"description": "Not a JSON list of events"},
        403: {"description": "Missing or wrong signature, or no verification key configured"},
        413: {"description": "Body too large"},
        503: {"description": "Database unavailable; SendGrid will retry"},
    },
)
async def sendgrid_events(request: Request) -> JSONResponse:
    """Verify the ECDSA signature over timestamp + raw body, then apply each new event once;
    an event that cannot be applied (say, an impossible timestamp) is recorded as rejected
    and the rest of the batch still applies."""
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
        with state.writing() as session:  # the whole batch in one transaction
            report = apply_events(session=session, events=events)
    except SQLAlchemyError:
        return _refuse(503, "database unavailable; retry later")
    return JSONResponse(report.__dict__)
