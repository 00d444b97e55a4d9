"""The public signup page: keywords with a live preview, delivery choices, double opt-in.

Whatever address is typed, a valid signup ends on the same "check your inbox" page: nothing
here tells whether an address is subscribed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from subscribers.models import SubscriberCreate
from subscribers.service import subscribe
from subscribers.web.forms import (
    Errors,
    SignupFields,
    default_values,
    parse_email,
    parse_profile,
    preview_keywords,
    profile_values,
    with_suggestion,
)
from subscribers.web.pages import ACTED_DOC, HTML_DOC, page, render, state, too_many
from subscribers.web.security import client_ip

router = APIRouter(tags=["signup"])


def signup_page(request: Request, values: dict[str, Any], *, errors: Errors | None = None,
                status: int = 200, show_preview: bool = False, notice: str = "") -> HTMLResponse:
    """The signup form, filled with `values`, with the preview when keywords are given."""
    web = state(request)
    keywords = preview_keywords(values["keywords"])
    return page(request, "signup.html", {
        "values": values,
        "errors": errors or {},
        "notice": notice,
        "suggestions": web.preview.suggestions(),
        "preview": web.preview.preview(keywords) if keywords else None,
        # Only on a fresh form: a re-rendered one shows the zone the visitor chose.
        "detect_timezone": not show_preview and not errors,
    }, status=status, with_form=True)


@router.get("/", response_class=HTMLResponse, summary="Signup page")
def home(request: Request,
         keywords: Annotated[str, Query(max_length=10_000)] = "",
         add: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    """The signup form; `?keywords=` prefills it and shows their preview (a shareable link)."""
    values = default_values() | {"keywords": with_suggestion(keywords, add)}
    return signup_page(request, values, show_preview=bool(keywords or add))


@router.post("/preview", response_class=HTMLResponse, summary="Preview without JavaScript")
def preview_page(request: Request, fields: Annotated[SignupFields, Form()]) -> HTMLResponse:
    """Re-render the form as typed, with the preview; stores nothing and sends nothing.

    A POST, so the address someone already typed never lands in a URL or an access log.
    """
    values = profile_values(fields) | {"email": fields.email}
    return signup_page(request, values, show_preview=True)


@router.get("/preview/fragment", response_class=HTMLResponse, summary="Live preview (HTML)",
            responses={429: {"description": "Slow down", **HTML_DOC}})
def preview_fragment(request: Request,
                     keywords: Annotated[str, Query(max_length=10_000)] = "") -> Response:
    """The preview list alone, for the page's script to swap in as someone types."""
    web = state(request)
    wait = web.preview_window.hit(f"preview:{client_ip(request)}")
    if wait:
        return Response(status_code=429, headers={"Retry-After": str(int(wait) + 1)})
    words = preview_keywords(keywords)
    body = render("_preview.html", {"preview": web.preview.preview(words) if words else None})
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/subscribe", response_class=HTMLResponse, status_code=303,
             summary="Sign up (double opt-in)",
             responses={303: {"description": "To /check-your-inbox, whoever the address "
                                             "belongs to"},
                        400: ACTED_DOC[400], 429: ACTED_DOC[429]})
def subscribe_form(request: Request, fields: Annotated[SignupFields, Form()]) -> Response:
    """Create a pending subscriber and plan the confirmation email; a known address is left
    untouched and answered exactly like a new one."""
    web = state(request)
    values = profile_values(fields) | {"email": fields.email}
    if not web.csrf.verify(request, fields.csrf):
        return signup_page(request, values, status=400,
                           notice="This form had expired. Please check it and press "
                                  "Subscribe again.")
    wait = web.signup_window.hit(f"signup:{client_ip(request)}")
    if wait:
        return too_many(request, wait)
    if fields.website:
        return RedirectResponse("/check-your-inbox", status_code=303)
    profile, errors = parse_profile(fields)
    email = parse_email(fields.email, errors)
    if profile is None or errors:
        return signup_page(request, values, errors=errors, status=400)
    create = SubscriberCreate.model_validate(profile.model_dump() | {"email": email})
    with web.writing() as session:
        subscribe(session=session, subscriber_create=create,
                  mails_per_day=web.limits.mails_per_day, secret=web.keys[0])
    return RedirectResponse("/check-your-inbox", status_code=303)


@router.get("/check-your-inbox", response_class=HTMLResponse, summary="After signing up")
def check_inbox(request: Request) -> HTMLResponse:
    return page(request, "inbox.html", {})
