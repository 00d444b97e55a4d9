"""The public archive of sent issues: a list, each issue's web version, and an Atom feed.

Only sent issues are public (a draft or an approved issue is not out yet). Each page is the
issue's frozen content, the same the email showed, so the email's "view in browser" link
(public_url + /archive/<slug>) always shows what the reader got.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from digest.clippings.issue import get_issue_by_slug, list_issues
from digest.clippings.models import IssueStatus, MonthlyIssue
from emails.monthly import issue_view
from subscribers.web.pages import HTML_DOC, SERVICE_NAME, message_page, page, render, state

router = APIRouter(tags=["archive"])
ATOM = "http://www.w3.org/2005/Atom"
FEED_SIZE = 24
CACHE = {"Cache-Control": "public, max-age=300"}


def _utc(moment: datetime | None) -> datetime:
    """Stored datetimes come back naive from SQLite: they are UTC."""
    moment = moment or datetime(1970, 1, 1, tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sent(request: Request) -> list[MonthlyIssue]:
    with state(request).reading() as session:
        return list_issues(session=session, status=IssueStatus.sent, limit=240)


def _base(request: Request) -> str:
    return state(request).settings.public_url.rstrip("/")


@router.get("/archive", response_class=HTMLResponse, summary="Past issues, newest first")
def archive_index(request: Request) -> HTMLResponse:
    issues = [
        {"slug": i.slug, "title": i.title, "sent": _utc(i.sent_at).date(),
         "count": issue_view(i.content).count}
        for i in _sent(request)
    ]  # fmt: skip
    return page(request, "archive/index.html", {"issues": issues}, headers=CACHE)


@router.get(
    "/archive/feed.xml",
    summary="Atom feed of sent issues",
    responses={200: {"content": {"application/atom+xml": {}}}},
)
def archive_feed(request: Request) -> Response:
    issues = _sent(request)[:FEED_SIZE]
    base = _base(request)
    feed = ET.Element("feed", xmlns=ATOM)
    ET.SubElement(feed, "id").text = f"{base}/archive"
    ET.SubElement(feed, "title").text = f"{SERVICE_NAME} · Monthly clippings"
    newest = max((_utc(i.sent_at) for i in issues), default=_utc(None))
    ET.SubElement(feed, "updated").text = newest.isoformat()
    ET.SubElement(
        feed, "link", rel="self", href=f"{base}/archive/feed.xml", type="application/atom+xml"
    )
    ET.SubElement(feed, "link", rel="alternate", href=f"{base}/archive", type="text/html")
    for issue in issues:
        url = f"{base}/archive/{issue.slug}"
        view = issue_view(issue.content)
        entry = ET.SubElement(feed, "entry")
        ET.SubElement(entry, "id").text = url
        ET.SubElement(entry, "title").text = view.title
        ET.SubElement(entry, "updated").text = _utc(issue.sent_at).isoformat()
        ET.SubElement(entry, "published").text = _utc(issue.sent_at).isoformat()
        ET.SubElement(entry, "link", rel="alternate", href=url, type="text/html")
        ET.SubElement(entry, "author").append(_name("The editor"))
        if view.intro:
            ET.SubElement(entry, "summary").text = " ".join(view.intro)
        # type="html": the markup travels escaped, and ElementTree escapes it once more.
        ET.SubElement(entry, "content", type="html").text = render(
            "archive/_issue_body.html", {"issue": view}
        )
    body = ET.tostring(feed, encoding="unicode", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers=CACHE)


def _name(text: str) -> ET.Element:
    element = ET.Element("name")
    element.text = text
    return element


@router.get(
    "/archive/{slug}",
    response_class=HTMLResponse,
    responses={404: {"description": "No such sent issue", **HTML_DOC}},
    summary="The web version of one sent issue",
)
def archive_issue(request: Request, slug: str) -> HTMLResponse:
    with state(request).reading() as session:
        issue = get_issue_by_slug(session=session, slug=slug[:80])
    if issue is None or issue.status != IssueStatus.sent:
        return message_page(
            request,
            title="No such issue",
            status=404,
            paragraphs=["That issue is not in the archive (yet)."],
            link=("/archive", "See all issues"),
        )
    context = {
        "issue": issue_view(issue.content),
        "sent": _utc(issue.sent_at).date(),
        "feed_url": "/archive/feed.xml",
    }
    return page(request, "archive/issue.html", context, headers=CACHE)
