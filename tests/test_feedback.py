"""Feedback end to end: signed links, one-button pages, votes, and the ranking they change."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.feedback import FeedbackVote
from subscribers.models import Subscriber
from subscribers.tokens import Purpose, make_token, read_token
from subscribers.web.app import create_app
from tests.support.feedback_data import (
    DAY,
    NEW_PAPERS,
    NEW_SURVEYS,
    RATED_FLOW,
    RATED_SURVEYS,
    stocked,  # noqa: F401  (the fixture)
)
from workers import planning
from workers.compose import render_row


def _picks(settings: Settings) -> dict[int, list[dict[str, object]]]:
    assert planning.plan_daily(settings=settings, day=DAY).planned == 3
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(ledger.Delivery).where(ledger.Delivery.kind == "daily")).all()
        return {row.subscriber_id: row.payload["matches"] for row in rows}


def test_less_like_this_on_three_surveys_stops_surveys(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, control) = stocked
    client = TestClient(create_app(settings), base_url="http://testserver")
    keys = settings.signing_keys()
    critic_token = make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=critic)
    fan_token = make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=fan)
    for arxiv_id, title, _ in RATED_SURVEYS:
        url = f"/feedback/{critic_token}/{arxiv_id}"
        shown = client.get(url, params={"vote": "less"})
        assert shown.status_code == 200 and title in shown.text and 'method="post"' in shown.text
        for _ in range(2):  # a double click records one vote
            assert client.post(url, data={"vote": "less"}).status_code == 200
    for arxiv_id, _, _ in RATED_FLOW:
        assert client.post(f"/feedback/{fan_token}/{arxiv_id}",
                           data={"vote": "more"}).status_code == 200
    with session_scope(settings.sqlalchemy_url) as session:
        votes = session.exec(select(FeedbackVote)).all()
    assert sorted((v.subscriber_id, v.vote) for v in votes) == sorted(
        [(critic, "less")] * 3 + [(fan, "more")] * 3)

    picks = _picks(settings)
    surveys = {i for i, _, _ in NEW_SURVEYS}
    assert surveys <= {m["arxiv_id"] for m in picks[control]}  # without votes: surveys come
    assert not surveys & {m["arxiv_id"] for m in picks[critic]}  # after 3 "less": none
    assert {i for i, _, _ in NEW_PAPERS} <= {m["arxiv_id"] for m in picks[critic]}
    # The fan's liked flow-matching papers promote the new one, and say so.
    top = picks[fan][0]
    assert top["arxiv_id"] == "2603.00011"
    assert top["similar_to"] in {i for i, _, _ in RATED_FLOW}
    with session_scope(settings.sqlalchemy_url) as session:
        row = session.exec(select(ledger.Delivery).where(
            ledger.Delivery.subscriber_id == fan)).one()
        message = render_row(settings, session, row)
    assert message is not None
    assert "similar to Flow matching speech synthesis Flow" in message.text
    # Timed tokens differ across a second boundary: read the link's token back instead.
    link = re.search(r"/feedback/([^/\s]+)/2603\.00011\?vote=less", message.text)
    assert link is not None
    assert read_token(keys=keys, purpose=Purpose.feedback, token=link.group(1)) == (fan, "")
    assert "vote=more" in message.html


def test_feedback_links_are_safe_against_scanners_and_forgery(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, _, _) = stocked
    client = TestClient(create_app(settings), base_url="http://testserver")
    keys = settings.signing_keys()
    token = make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=critic)
    manage = make_token(keys=keys, purpose=Purpose.manage, subscriber_id=critic)
    # A scanner's GETs record nothing at all (tests/test_feedback_scanners.py opens every link).
    client.get(f"/feedback/{token}/2603.00011", params={"vote": "less"})
    client.get(f"/feedback/{token}/2603.00012", params={"vote": "more"})
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.exec(select(FeedbackVote)).all() == []
    client.post(f"/feedback/{token}/2603.00012", data={"vote": "less"})
    client.get(f"/feedback/{token}/2603.00012", params={"vote": "more"})  # no downgrade
    with session_scope(settings.sqlalchemy_url) as session:
        assert [(v.arxiv_id, v.vote) for v in session.exec(select(FeedbackVote))] == [
            ("2603.00012", "less")]
    for url, data in [
        (f"/feedback/{manage}/2603.00011", {"vote": "less"}),  # wrong purpose
        (f"/feedback/{token}x/2603.00011", {"vote": "less"}),  # tampered
        (f"/feedback/{token}/9999.99999", {"vote": "less"}),  # unknown paper
        (f"/feedback/{token}/2603.00011", {"vote": "delete"}),  # no such vote
    ]:
        assert client.post(url, data=data).status_code == 404
        assert client.get(url, params=data).status_code == 404


def test_votes_are_exported_and_erased_with_the_subscriber(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    from subscribers.feedback import Vote, record_vote
    from subscribers.privacy import erase, export_data

    settings, (critic, _, _) = stocked
    with session_scope(settings.sqlalchemy_url) as session:
        assert record_vote(session=session, subscriber_id=critic, arxiv_id="2603.00011",
                           vote=Vote.less)
        assert not record_vote(session=session, subscriber_id=critic, arxiv_id="2603.00011",
                               vote=Vote.less)  # idempotent
        subscriber = session.get(Subscriber, critic)
        assert subscriber is not None
        exported = export_data(session=session, subscriber=subscriber)
        assert [(v["arxiv_id"], v["vote"]) for v in exported["feedback"]] == [
            ("2603.00011", "less")]
        assert erase(session=session, subscriber_id=critic)
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.exec(select(FeedbackVote)).all() == []
