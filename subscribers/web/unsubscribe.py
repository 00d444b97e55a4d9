"""Leaving: a page with one button, and RFC 8058 one-click from the mail client.

The POST needs no cookie and no CSRF token (a mail provider sends it from its own servers);
the signed token in the URL is the only credential, exactly as in the List-Unsubscribe header.
It answers 200 with no redirect, after the change is committed, and repeats are harmless.
Unsubscribe links never expire and "sign out other links" leaves them alone (unlike manage
links): a mail client may send the one-click POST months after the email, and all a leaked
one can do is stop mail, which the owner undoes from their settings or by signing up again.

Lists are left separately, by what the signed token says besides the id: `list:monthly` (the
monthly issue's links) stops the monthly issue, nothing (the digest's links) the keyword
digest, `list:all` (account emails, the settings page) everything. The page offers "stop
everything" as a second button; leaving the only list someone still gets is leaving.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import delete
from sqlmodel import col

from subscribers.models import MailList, PendingEmail, Status, Subscriber
from subscribers.service import unsubscribe
from subscribers.tokens import InvalidToken, Purpose, make_token, read_token
from subscribers.web.forms import OneClickFields
from subscribers.web.pages import INVALID_DOC, invalid_link, message_page, page, state

router = APIRouter(tags=["account"])
EVERY_LIST = "list:all"
LISTS: dict[str, MailList | None] = {"": MailList.digest, "list:monthly": MailList.monthly,
                                     "list:digest": MailList.digest, EVERY_LIST: None}


def _change_id(extra: str) -> int | None:
    """Links in an address-change email stop that change, not the requester's subscription."""
    kind, _, number = extra.partition(":")
    return int(number) if kind == "email" and number.isdigit() else None


def _all_token(request: Request, subscriber_id: int) -> str:
    """The "stop everything" button's token, signed for the same subscriber."""
    return make_token(keys=state(request).keys, purpose=Purpose.unsubscribe,
                      subscriber_id=subscriber_id, extra=EVERY_LIST)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=INVALID_DOC,
            summary="Unsubscribe page (changes nothing)")
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    try:
        subscriber_id, extra = read_token(keys=state(request).keys, purpose=Purpose.unsubscribe,
                                          token=token)
    except InvalidToken:
        return invalid_link(request)
    with state(request).reading() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return invalid_link(request)
        lists = subscriber.lists() if subscriber.status == Status.active else []
    change = _change_id(extra) if extra else None
    if extra and change is None and extra not in LISTS:
        return invalid_link(request)
    mail_list = LISTS.get(extra) if change is None else None
    # One list of two: a button for that list, and "stop everything" as the second.
    only = mail_list.value if mail_list is not None and len(lists) > 1 else ""
    everything = token if mail_list is None else _all_token(request, subscriber_id)
    return page(request, "unsubscribe.html", {
        "action": f"/unsubscribe/{token}", "address_change": change is not None,
        "only": only, "all_action": f"/unsubscribe/{everything}"}, private=True)


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
    if extra and change is None and extra not in LISTS:
        return invalid_link(request)
    mail_list = LISTS.get(extra)
    still: list[str] = []
    with state(request).writing() as session:
        if session.get(Subscriber, subscriber_id) is None:
            return invalid_link(request)
        if change is not None:
            session.exec(delete(PendingEmail).where(
                col(PendingEmail.id) == change, col(PendingEmail.subscriber_id) == subscriber_id))
        else:
            left = unsubscribe(session=session, subscriber_id=subscriber_id,
                               channel="one-click", mail_list=mail_list)
            still = left.lists() if left is not None and left.status == Status.active else []
    # The session is committed here, before a single byte of the answer goes out.
    if change is not None:
        return message_page(request, title="Done", paragraphs=[
            "We cancelled the request to use this address and won't email it about it again.",
        ])
    if still:
        stopped = ("the monthly clippings" if mail_list == MailList.monthly
                   else "the keyword digest")
        kept = "the keyword digest" if mail_list == MailList.monthly else "the monthly clippings"
        return message_page(request, title="You're unsubscribed", paragraphs=[
            f"You won't get {stopped} any more. You still get {kept}.",
            "To stop that too, follow \"Stop everything\" below, or use the unsubscribe link "
            "in that email.",
        ], link=(f"/unsubscribe/{_all_token(request, subscriber_id)}", "Stop everything"))
    return message_page(request, title="You're unsubscribed", paragraphs=[
        "You won't get any more emails from us. Nothing else to do.",
        "Changed your mind? Sign up again on the home page with the same address and "
        "confirm from your inbox.",
    ], link=("/", "Go to the home page"))
