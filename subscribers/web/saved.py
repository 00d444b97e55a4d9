"""Saved papers: the daily email's "Save" link, and the saved list's downloads and removal.

The Save link is the reader's feedback link with /save after the paper id
(/feedback/<token>/<arxiv_id>/save): the email derives it from the same per-reader placeholder
as "More like this", so shared renders stay shared. Like the feedback links, its GET shows one
button and changes nothing (mail gateways open every link); only the POST saves, idempotently.
This router is registered before the feedback one, whose /feedback/<token>/<path> would
otherwise take the whole "<arxiv_id>/save" for a paper id.

The list itself is behind the manage link: shown on the manage page, downloaded as BibTeX or
CSV (GET, read only), and a paper taken off it by a POST with the page's CSRF token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field

from digest.papers import Paper
from subscribers.saved import (
    SavedPaper,
    save_paper,
    saved_papers,
    to_bibtex,
    to_csv,
    unsave_paper,
)
from subscribers.tokens import Purpose
from subscribers.web.account import MANAGE_DOC, SHOW_DOC, TokenFields, _guard, _subscriber
from subscribers.web.feedback import reader_and_paper
from subscribers.web.pages import INVALID_DOC, invalid_link, message_page, page, state

router = APIRouter(tags=["saved papers"])
DOWNLOADS = {"bib": ("application/x-bibtex; charset=utf-8", to_bibtex),
             "csv": ("text/csv; charset=utf-8", to_csv)}


class UnsaveFields(TokenFields):
    arxiv_id: str = Field("", max_length=40)


def _reader_and_paper(request: Request, token: str, arxiv_id: str
                      ) -> tuple[int, Paper, bool] | None:
    """The feedback token's subscriber, the paper and whether it is saved; None for anything
    not right (the one invalid-link page)."""
    found = reader_and_paper(request, token, arxiv_id)
    if found is None:
        return None
    subscriber_id, paper = found
    with state(request).reading() as session:
        already = session.get(SavedPaper, (subscriber_id, arxiv_id)) is not None
    return subscriber_id, paper, already


@router.get("/feedback/{token}/{arxiv_id:path}/save", response_class=HTMLResponse,
            responses=INVALID_DOC, summary="Save page (one button; saves nothing)")
def save_page(request: Request, token: str, arxiv_id: str) -> HTMLResponse:
    found = _reader_and_paper(request, token, arxiv_id)
    if found is None:
        return invalid_link(request)
    _, paper, already = found
    return page(request, "save.html", {
        "title": paper.title or arxiv_id, "already": already,
        "paper_url": paper.abs_url or f"https://arxiv.org/abs/{arxiv_id}",
        "action": f"/feedback/{token}/{arxiv_id}/save",
    }, private=True)


@router.post("/feedback/{token}/{arxiv_id:path}/save", response_class=HTMLResponse,
             responses=INVALID_DOC, summary="Save a paper to the reader's list (idempotent)")
def save_action(request: Request, token: str, arxiv_id: str) -> HTMLResponse:
    found = _reader_and_paper(request, token, arxiv_id)
    if found is None:
        return invalid_link(request)
    subscriber_id, paper, _ = found
    with state(request).writing() as session:
        save_paper(session=session, subscriber_id=subscriber_id, arxiv_id=arxiv_id)
    return message_page(request, title="Saved", paragraphs=[
        f"“{paper.title or arxiv_id}” is on your saved list.",
        "Find the list on your settings page (the “Manage preferences” link at the foot of "
        "every digest), where it downloads as BibTeX or CSV. Your next digests will favour "
        "papers like this one.",
    ])


@router.get("/manage/{token}/saved.{kind}", response_class=Response, responses=SHOW_DOC,
            summary="Download the saved papers as BibTeX (saved.bib) or CSV (saved.csv)")
def saved_download(request: Request, token: str, kind: str) -> Response:
    if kind not in DOWNLOADS:
        return invalid_link(request)
    with state(request).reading() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        items = saved_papers(session=session, subscriber_id=subscriber.id or 0)
    media_type, write = DOWNLOADS[kind]
    return Response(write(items), media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="saved-papers.{kind}"',
        "Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


@router.post("/manage/{token}/saved/remove", response_class=HTMLResponse, status_code=303,
             responses=MANAGE_DOC, summary="Take a paper off the saved list")
def saved_remove(request: Request, token: str,
                 fields: Annotated[UnsaveFields, Form()]) -> Response:
    with state(request).writing() as session:
        subscriber = _subscriber(request, session, Purpose.manage, token)
        _guard(request, fields.csrf)
        unsave_paper(session=session, subscriber_id=subscriber.id or 0, arxiv_id=fields.arxiv_id)
    return RedirectResponse(f"/manage/{token}?done=unsaved#saved-heading", status_code=303)
