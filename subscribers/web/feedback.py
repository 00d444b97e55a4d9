""""More like this" / "less like this" links from the daily email.

One per-subscriber token (Purpose.feedback) and the paper id in the path, the vote in the query:
/feedback/<token>/<arxiv_id>?vote=more. The GET shows a one-button page and records nothing:
mail security gateways (Safe Links, Proofpoint) open every link of every email, so a GET says
nothing about the reader. Only the POST records the vote; repeating it changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from digest.papers import Paper
from subscribers.feedback import Vote, record_vote
from subscribers.models import Subscriber
from subscribers.tokens import InvalidToken, Purpose, read_token
from subscribers.web.pages import INVALID_DOC, invalid_link, message_page, page, state

router = APIRouter(tags=["feedback"])
VOTES = (Vote.more.value, Vote.less.value)


def _subscriber_and_paper(request: Request, token: str, arxiv_id: str, vote: str
                          ) -> tuple[int, Paper] | None:
    """The token's subscriber and the paper, or None for anything not right (one 404 page)."""
    if vote not in VOTES:
        return None
    return reader_and_paper(request, token, arxiv_id)


def reader_and_paper(request: Request, token: str, arxiv_id: str) -> tuple[int, Paper] | None:
    """A feedback link's subscriber and paper (the Save link uses it too); None for a forged
    or foreign token, an erased subscriber or an unknown paper."""
    try:
        subscriber_id, extra = read_token(keys=state(request).keys, purpose=Purpose.feedback,
                                          token=token)
    except InvalidToken:
        return None
    if extra:
        return None
    with state(request).reading() as session:
        paper = session.get(Paper, arxiv_id)
        if session.get(Subscriber, subscriber_id) is None or paper is None:
            return None
        session.expunge(paper)
    return subscriber_id, paper


@router.get("/feedback/{token}/{arxiv_id:path}", response_class=HTMLResponse,
            responses=INVALID_DOC, summary="Feedback page (one button; records no vote)")
def feedback_page(request: Request, token: str, arxiv_id: str,
                  vote: Annotated[str, Query(max_length=10)] = "more") -> HTMLResponse:
    found = _subscriber_and_paper(request, token, arxiv_id, vote)
    if found is None:
        return invalid_link(request)
    _, paper = found
    return page(request, "feedback.html", {
        "vote": vote, "title": paper.title or arxiv_id,
        "paper_url": paper.abs_url or f"https://arxiv.org/abs/{arxiv_id}",
        "action": f"/feedback/{token}/{arxiv_id}",
    }, private=True)


@router.post("/feedback/{token}/{arxiv_id:path}", response_class=HTMLResponse,
             responses=INVALID_DOC, summary="Record a vote (idempotent)")
def feedback_action(request: Request, token: str, arxiv_id: str,
                    vote: Annotated[str, Form(max_length=10)]) -> HTMLResponse:
    found = _subscriber_and_paper(request, token, arxiv_id, vote)
    if found is None:
        return invalid_link(request)
    subscriber_id, _ = found
    with state(request).writing() as session:
        record_vote(session=session, subscriber_id=subscriber_id, arxiv_id=arxiv_id,
                    vote=Vote(vote))
    more = vote == Vote.more
    return message_page(request, title="Thanks, noted", paragraphs=[
        "Your next digests will favour papers like this one." if more else
        "Your next digests will show fewer papers like this one.",
        "It takes a few votes before the ranking changes noticeably.",
    ])
