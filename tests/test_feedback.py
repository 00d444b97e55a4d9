"""Feedback end to end: signed links, one-button pages, votes, and the ranking they change."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from digest.db import session_scope
from digest.papers import PaperIn, upsert_papers
from digest.settings import Settings
from subscribers import ledger
from subscribers.feedback import FeedbackVote
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from subscribers.tokens import Purpose, make_token, read_token
from subscribers.web.app import create_app
from workers import planning, sending

DAY = date(2026, 3, 2)
OLD = DAY - timedelta(days=30)  # rated long ago: outside the digest window, still in the store

RATED_SURVEYS = [
    ("2601.00001", "A survey of neural speech synthesis",
     "This survey reviews neural speech synthesis. We present a taxonomy of existing methods, "
     "compare representative systems, and discuss open challenges and future directions."),
    ("2601.00002", "Voice conversion: a comprehensive review",
     "We review voice conversion research of the last decade, categorize existing approaches "
     "into a taxonomy, summarize datasets and metrics, and outline open challenges."),
    ("2601.00003", "Neural audio codecs: a survey",
     "This survey covers neural audio codecs for speech. We organize prior work into a "
     "taxonomy, compare reported results, and identify open challenges and future directions."),
]
RATED_FLOW = [
    (f"2601.0001{n}", f"Flow matching speech synthesis {name}",
     f"We propose {name}, a flow matching model for speech synthesis with optimal transport "
     "paths and few sampling steps; it beats diffusion baselines in naturalness.")
    for n, name in enumerate(["FlowA", "FlowB", "FlowC"])
]
NEW_SURVEYS = [
    ("2603.00001", "Expressive speech synthesis: a comprehensive survey",
     "We survey expressive speech synthesis, organise prior work into a taxonomy, review "
     "datasets and metrics, and outline open challenges and future directions."),
    ("2603.00002", "A review of zero-shot speech synthesis",
     "This review categorizes zero-shot speech synthesis methods into a taxonomy, compares "
     "existing systems, and discusses open challenges and future research directions."),
]
NEW_PAPERS = [
    ("2603.00011", "Flow matching speech synthesis in four steps",
     "We propose QuickFlow, a flow matching model for speech synthesis with optimal transport "
     "paths that needs four sampling steps and beats diffusion baselines."),
    ("2603.00012", "Prosody transfer for speech synthesis",
     "We propose a prosody encoder for speech synthesis that transfers rhythm from a "
     "reference utterance; listening tests show gains in naturalness."),
    ("2603.00013", "Multilingual speech synthesis with shared phonemes",
     "We train one speech synthesis model for twelve languages with a shared phoneme set and "
     "language adapters, and report intelligibility and naturalness."),
    ("2603.00014", "Speech synthesis for low-resource languages",
     "We adapt a pretrained speech synthesis model to three low-resource languages with one "
     "hour of data each, using data augmentation and self-training."),
]

# The rest of the day's listing, so that "speech synthesis" is as rare as on a real day.
FILLER = [
    (f"2603.001{n:02d}", title, f"{title}. We study this problem with new methods.")
    for n, title in enumerate([
        "Robust graph neural networks for molecule property prediction",
        "Reinforcement learning for robotic manipulation",
        "Efficient attention kernels for long context transformers",
        "Federated optimisation under heterogeneous client data",
        "Contrastive pretraining of vision encoders at scale",
        "Calibrated uncertainty for medical image segmentation",
        "Sparse mixture of experts for machine translation",
        "Retrieval augmented question answering over tables",
        "Sound event detection with weak labels",
        "Speaker verification under channel mismatch",
        "Automatic speech recognition for children",
        "Music source separation with band-split networks",
    ])
]


def _papers(rows: list[tuple[str, str, str]], day: date) -> list[PaperIn]:
    return [PaperIn(arxiv_id=i, title=t, abstract=a, announced_on=day, source="test",
                    abs_url=f"https://arxiv.org/abs/{i}") for i, t, a in rows]


@pytest.fixture
def stocked(migrated: Settings) -> tuple[Settings, list[int]]:
    with session_scope(migrated.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=_papers(RATED_SURVEYS + RATED_FLOW, OLD)
                      + _papers(NEW_SURVEYS + NEW_PAPERS + FILLER, DAY))
        ids = [add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email=f"{name}@example.org", keywords=["speech synthesis"])).id or 0
            for name in ("critic", "fan", "control")]
    return migrated, ids


def _picks(settings: Settings) -> dict[int, list[dict[str, object]]]:
    assert planning.plan_daily(settings=settings, day=DAY).planned == 3
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(ledger.Delivery).where(ledger.Delivery.kind == "daily")).all()
        return {row.subscriber_id: row.payload["matches"] for row in rows}


def test_less_like_this_on_three_surveys_stops_surveys(stocked: tuple[Settings, list[int]]
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
        message = sending.render_digest(settings=settings, session=session, delivery=row,
                                        subscriber=session.get(Subscriber, fan))
    assert message is not None
    assert "similar to Flow matching speech synthesis Flow" in message.text
    # Timed tokens differ across a second boundary: read the link's token back instead.
    link = re.search(r"/feedback/([^/\s]+)/2603\.00011\?vote=less", message.text)
    assert link is not None
    assert read_token(keys=keys, purpose=Purpose.feedback, token=link.group(1)) == (fan, "")
    assert "vote=more" in message.html


def test_feedback_links_are_safe_against_scanners_and_forgery(
    stocked: tuple[Settings, list[int]]
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
    stocked: tuple[Settings, list[int]]
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
