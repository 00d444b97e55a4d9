"""The personal Atom feed, and the manage page's "New feed address" button.

GET /feed/<token> serves the picks of the reader's digests (subscribers/feed.py) as Atom. The
token is signed, carries no time stamp (a feed reader keeps one address for months) and carries
the subscriber's feed generation: "New feed address" (and "Sign out other links") raises it,
and the old address then answers 410 Gone, which feed readers take as "stop polling"; so does
every address of a reader who unsubscribed. A forged token, or one whose subscriber is gone,
gets the one invalid-link page (404), never data.

Conditional GET: an ETag and Last-Modified from one aggregate query over the ledger, and 304 on
If-None-Match (or, without it, If-Modified-Since) before a paper is loaded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from subscribers.feed import (
    FeedEntry,
    FeedUpdate,
    Validator,
    feed_ended,
    feed_entries,
    feed_validator,
)
from subscribers.models import Subscriber
from subscribers.tokens import InvalidToken, Purpose, read_feed_token
from subscribers.web.account import MANAGE_DOC, TokenFields, _guard, _subscriber
from subscribers.web.pages import (
    HTML_DOC,
    INVALID_DOC,
    SERVICE_NAME,
    Responses,
    invalid_link,
    message_page,
    render,
    state,
)

router = APIRouter(tags=["feed"])
ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
REVOKED_STATUS = 410
FEED_DOC: Responses = {
    200: {"content": {"application/atom+xml": {}}, "description": "The feed"},
    304: {"description": "Not modified since the reader's copy (ETag / Last-Modified)"},
    REVOKED_STATUS: {"description": "A feed address replaced by a newer one, or of a reader "
                                    "who unsubscribed", **HTML_DOC},
    **INVALID_DOC,
}


def _revoked(request: Request) -> Response:
    return message_page(request, status=REVOKED_STATUS, title="This feed address was replaced",
                        paragraphs=["Its owner asked for a new feed address, so this one shows "
                                    "nothing any more.",
                                    "The new address is on the settings page, reached from "
                                    "any of your digest emails."],
                        link=("/", "Go to the home page"))


def _ended(request: Request) -> Response:
    return message_page(request, status=REVOKED_STATUS, title="This subscription has ended",
                        paragraphs=["Its reader unsubscribed, so this feed shows nothing any "
                                    "more.",
                                    "Subscribed again? Then this address works again."],
                        link=("/", "Go to the home page"))


def not_modified(request: Request, validator: Validator) -> bool:
    """The reader's copy is current: If-None-Match wins over If-Modified-Since (RFC 9110)."""
    tags = request.headers.get("if-none-match")
    if tags is not None:
        wanted = {tag.strip().removeprefix("W/") for tag in tags.split(",")}
        return "*" in wanted or validator.etag in wanted
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        return False
    return validator.last_modified <= moment


@router.get("/feed/{token}", responses=FEED_DOC, response_class=Response,
            summary="A reader's personal Atom feed of their digests' picks")
def personal_feed(request: Request, token: str) -> Response:
    web = state(request)
    try:
        subscriber_id, generation = read_feed_token(keys=web.keys, token=token)
    except InvalidToken:
        return invalid_link(request)
    with web.reading() as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return invalid_link(request)
        if generation != subscriber.feed_generation:
            return _revoked(request)
        if feed_ended(subscriber):
            return _ended(request)
        validator = feed_validator(session=session, subscriber=subscriber)
        headers = {"ETag": validator.etag,
                   "Last-Modified": format_datetime(validator.last_modified, usegmt=True),
                   # One reader's address: no shared cache keeps it; ask again every time.
                   "Cache-Control": "private, no-cache", "X-Robots-Tag": "noindex"}
        if not_modified(request, validator):
            return Response(status_code=304, headers=headers)
        entries = feed_entries(session=session, subscriber=subscriber)
        body = atom(request, token=token, validator=validator, entries=entries)
    return Response(body, media_type=ATOM_TYPE, headers=headers)


def atom(request: Request, *, token: str, validator: Validator,
         entries: list[FeedEntry | FeedUpdate]) -> str:
    """The Atom document (RFC 4287)."""
    base = state(request).settings.public_url.rstrip("/")
    host = urlsplit(base).hostname or "localhost"
    feed = ET.Element("feed", xmlns=ATOM)
    ET.SubElement(feed, "id").text = f"{base}/feed/{token}"
    ET.SubElement(feed, "title").text = f"{SERVICE_NAME} · your papers"
    ET.SubElement(feed, "subtitle").text = ("The papers of your digests, each with the reason "
                                            "it was picked, and news of papers you saved.")
    ET.SubElement(feed, "updated").text = validator.last_modified.isoformat()
    ET.SubElement(feed, "author").append(_text("name", SERVICE_NAME))
    ET.SubElement(feed, "link", rel="self", href=f"{base}/feed/{token}",
                  type="application/atom+xml")
    for entry in entries:
        if isinstance(entry, FeedUpdate):
            _update_entry(feed, entry, host)
        else:
            _entry(feed, entry, host)
    return ET.tostring(feed, encoding="unicode", xml_declaration=True)


def _entry(feed: ET.Element, entry: FeedEntry, host: str) -> None:
    view = entry.view
    element = ET.SubElement(feed, "entry")
    # The same id under every feed address of the reader: a new address shows nothing twice.
    ET.SubElement(element, "id").text = f"tag:{host},2026:paper/{view.arxiv_id}"
    ET.SubElement(element, "title").text = view.title
    ET.SubElement(element, "updated").text = _iso(entry.sent_at)
    ET.SubElement(element, "published").text = _iso(entry.sent_at)
    for name in entry.authors[:20] or ("arXiv",):
        ET.SubElement(element, "author").append(_text("name", name))
    for term in entry.categories:
        ET.SubElement(element, "category", term=term)
    ET.SubElement(element, "link", rel="alternate", href=view.abs_url, type="text/html")
    ET.SubElement(element, "link", rel="related", href=view.pdf_url, type="application/pdf",
                  title="PDF")
    for label, url in view.links:
        ET.SubElement(element, "link", rel="related", href=url, title=label)
    if entry.why:
        ET.SubElement(element, "summary").text = entry.why
    # type="html": the markup travels escaped (ElementTree escapes the rendered HTML once more).
    ET.SubElement(element, "content", type="html").text = render(
        "feed_entry.html", {"paper": view, "abstract": entry.abstract, "why": entry.why})


def _update_entry(feed: ET.Element, update: FeedUpdate, host: str) -> None:
    view = update.view
    element = ET.SubElement(feed, "entry")
    # One entry per digest that told the news: a later version of the paper is a new entry.
    ET.SubElement(element, "id").text = f"tag:{host},2026:update/{view.arxiv_id}/{update.day}"
    ET.SubElement(element, "title").text = f"Update: {view.title}"
    ET.SubElement(element, "updated").text = _iso(update.sent_at)
    ET.SubElement(element, "published").text = _iso(update.sent_at)
    ET.SubElement(element, "link", rel="alternate", href=view.abs_url, type="text/html")
    for what, _, url in view.changes:
        if url:
            ET.SubElement(element, "link", rel="related", href=url, title=what)
    ET.SubElement(element, "summary").text = update.what
    ET.SubElement(element, "content", type="html").text = render(
        "feed_update.html", {"update": view})


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _text(tag: str, text: str) -> ET.Element:
    element = ET.Element(tag)
    element.text = text
    return element


@router.post("/manage/{token}/feed", response_class=Response, status_code=303,
             responses=MANAGE_DOC, summary="New feed address: the old one stops working")
def new_feed_address(request: Request, token: str,
                     fields: Annotated[TokenFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        subscriber.feed_generation += 1
        session.add(subscriber)
    return RedirectResponse(f"/manage/{token}?done=feed-new", status_code=303)
