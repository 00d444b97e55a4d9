"""Leaving: a page with one button, and RFC 8058 one-click from the mail client.

The POST needs no cookie and no CSRF token (a mail provider sends it from its own servers);
the signed token in the URL is the only credential, exactly as in the List-Unsubscribe header.
It answers 200 with no redirect, after the change is committed, and repeats are harmless.
Unsubscribe links never expire and "sign out other links" leaves them alone (unlike manage
links): a mail client may send the one-click POST months after the email, and all a leaked
one can do is stop mail, which the owner undoes from their settings or by signing up again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import delete
from sqlmodel import col

from subscribers.models import PendingEmail, Subscriber
from subscribers.service import unsubscribe
from subscribers.tokens import InvalidToken, Purpose, read_token
from subscribers.web.forms import OneClickFields
from subscribers.web.pages import INVALID_DOC, invalid_link, message_page, page, state

router = APIRouter(tags=["account"])


def _change_id(extra: str) -> int | None:
    """Links in an address-change email stop that change, not the requester's subscription."""
    kind, _, number = extra.partition(":")
    return int(number) if kind == "email" and number.isdigit() else None


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=INVALID_DOC,
            summary="Unsubscribe page (changes nothing)")
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    try:
        subscriber_id, extra = read_token(keys=state(request).keys, purpose=Purpose.unsubscribe,
                                          token=token)
    except InvalidToken:
        return invalid_link(request)
    with state(request).reading() as session:
        if session.get(Subscriber, subscriber_id) is None:
            return invalid_link(request)
    change = _change_id(extra) if extra else None
    if extra and change is None:
        return invalid_link(request)
    return page(request, "unsubscribe.html", {"action": f"/unsubscribe/{token}",
                                              "address_change": change is not None},
                private=True)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, responses=INVALID_DOC,
             summary="Unsubscribe (also RFC 8058 one-click: List-Unsubscribe=One-Click)")
def unsubscribe_action(request: Request, token: str,
                       fields: Annotated[OneClickFields, Form()]) -> HTMLResponse:
    """Works for the page's button and for a mail client's one-click POST alike."""
    del fields  # any POST here means "stop"; the field is what RFC 8058 clients send
    try:
        subscriber_id, extra = read_token(keys=state(request).keys, purpose=Purpose.unsubscribe,
                                          token=token)
    except InvalidToken:
        return invalid_link(request)
    change = _change_id(extra) if extra else None
    if extra and change is None:
        return invalid_link(request)
    with state(request).writing() as session:
        if session.get(Subscriber, subscriber_id) is None:
            return invalid_link(request)
        if change is not None:
            session.exec(delete(PendingEmail).where(
                col(PendingEmail.id) == change, col(PendingEmail.subscriber_id) == subscriber_id))
        else:
            unsubscribe(session=session, subscriber_id=subscriber_id, channel="one-click")
    # The session is committed here, before a single byte of the answer goes out.
    if change is not None:
        return message_page(request, title="Done", paragraphs=[
            "We cancelled the request to use this address and won't email it about it again.",
        ])
    return message_page(request, title="You're unsubscribed", paragraphs=[
        "You won't get any more digests from us. Nothing else to do.",
        "Changed your mind? Sign up again on the home page with the same address and "
        "confirm from your inbox: your old keywords will be waiting.",
    ], link=("/", "Go to the home page"))
