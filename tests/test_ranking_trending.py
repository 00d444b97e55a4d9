"""Trending in the daily digest: the documented blend, "trending only", upvotes in the email."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.blend import TRENDING_WEIGHT, blended, rank_for_each_reader, wants_trending
from digest.papers import upsert_papers
from digest.ranking import PaperIndex, rank_keywords
from digest.sources.trending import TrendingItem
from digest.trending import store_trending
from subscribers import ledger
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from tests.support.feedback_data import FILLER, NEW_PAPERS
from tests.support.feedback_data import papers_in as _papers
from tests.support.web_app import client_for, form_token, signup_form, web
from workers import planning
from workers.compose import render_row

__all__ = ["web"]
DAY = date(2026, 3, 2)


def test_the_blend_is_what_the_docs_say() -> None:
    assert blended(3.0, 0, 0) == 3.0
    assert blended(3.0, 7, 0) == 1.5  # a week old: half the relevance
    assert math.isclose(blended(2.0, 0, 20), 2.0 + TRENDING_WEIGHT * math.log(21))
    assert wants_trending([], False) and wants_trending(["-survey"], False)
    assert wants_trending(["TTS"], True) and not wants_trending(["TTS"], False)


def test_trending_reorders_matches_but_never_adds_non_matches() -> None:
    papers = _papers(NEW_PAPERS + FILLER, DAY)
    upvotes = {"2603.00014": 80, "2603.00100": 500}  # a match, and a filler paper
    [plain] = rank_for_each_reader(papers, [["speech synthesis"]], day=DAY, limit=10, floor=1.5)
    [hot] = rank_for_each_reader(papers, [["speech synthesis"]], day=DAY, limit=10, floor=1.5,
                        upvotes=upvotes)
    assert {m.arxiv_id for m in hot} == {m.arxiv_id for m in plain}
    assert hot[0].arxiv_id == "2603.00014" and hot[0].upvotes == 80
    assert plain[0].arxiv_id != "2603.00014"
    older = _papers(NEW_PAPERS[:1], DAY - timedelta(days=14)) + papers[1:]
    [aged] = rank_for_each_reader(older, [["speech synthesis"]], day=DAY, limit=10, floor=1.5)
    assert aged[-1].arxiv_id == NEW_PAPERS[0][0]  # two weeks old: a quarter of its relevance


def test_trending_only_subscribers_get_the_days_top_papers_with_upvotes(
    migrated: Settings
) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=_papers(NEW_PAPERS + FILLER, DAY))
        store_trending(session=session, day=DAY, items=[
            TrendingItem("2603.00100", "Robust graph neural networks", upvotes=120),
            TrendingItem("2603.00013", "Multilingual speech synthesis", upvotes=45),
            TrendingItem("2603.00999", "A trending-only paper", "New to the store.", 7),
        ])
        ids = [add_subscriber(session=session, confirmed=True, subscriber_create=create).id
               for create in (
                   SubscriberCreate(email="hot@example.org", keywords=[], trending_only=True),
                   SubscriberCreate(email="kw@example.org", keywords=["speech synthesis"]))]
    assert planning.plan_daily(settings=migrated, day=DAY).planned == 2
    with session_scope(migrated.sqlalchemy_url) as session:
        rows = {r.subscriber_id: r for r in session.exec(select(ledger.Delivery))}
        hot = rows[ids[0] or 0]
        assert [m["arxiv_id"] for m in hot.payload["matches"]] == [
            "2603.00100", "2603.00013", "2603.00999"]
        message = render_row(migrated, session, hot)
        assert message is not None
        assert "Trending today" in message.html and "▲ 120 upvotes" in message.html
        assert "▲ 120 upvotes on Hugging Face" in message.text
        kw = rows[ids[1] or 0]
        assert "2603.00100" not in [m["arxiv_id"] for m in kw.payload["matches"]]
        mail = render_row(migrated, session, kw)
        assert mail is not None and "▲ 45 upvotes on Hugging Face" in mail.text


def test_the_signup_form_offers_trending_only_without_keywords(web: Settings) -> None:
    client = client_for(web)
    page = client.get("/").text
    assert 'name="trending" value="yes"' in page
    empty = client.post("/subscribe", data=signup_form(form_token(client), keywords=""))
    assert empty.status_code == 400 and "or choose trending papers only" in empty.text
    done = client.post("/subscribe", data=signup_form(form_token(client), keywords="",
                                                      trending="yes"))
    assert done.status_code == 200
    with session_scope(web.sqlalchemy_url) as session:
        [subscriber] = session.exec(select(Subscriber)).all()
    assert subscriber.trending_only and subscriber.keywords == []


def test_the_fast_blend_equals_blending_every_match() -> None:
    from tests.support.ranking_corpus import load_corpus

    corpus = load_corpus()
    day = max(p.announced_on for p in corpus)
    index = PaperIndex(corpus)
    rng = random.Random(5)
    upvotes = {p.arxiv_id: rng.choice([3, 15, 60, 250]) for p in rng.sample(corpus, 25)}
    profiles = [["TTS", "speech language model"], ["audio codec"], ["emotion", "prosody"],
                ["voice conversion", "-survey"], ["LLM"]]
    fast = rank_for_each_reader(corpus, profiles, day=day, limit=10, floor=1.5, index=index,
                       upvotes=upvotes)
    by_id = {p.arxiv_id: p for p in corpus}
    for profile, got in zip(profiles, fast, strict=True):
        every = rank_keywords(index, profile, limit=len(corpus), floor=1.5)
        want = sorted(
            ((blended(m.score, (day - by_id[m.arxiv_id].announced_on).days,
                      upvotes.get(m.arxiv_id, 0)), m.arxiv_id) for m in every),
            key=lambda pair: (-round(pair[0], 6), -by_id[pair[1]].announced_on.toordinal(),
                              pair[1]))[:10]
        assert [m.arxiv_id for m in got] == [i for _, i in want], profile
        assert [m.score for m in got] == pytest.approx([s for s, _ in want], abs=1e-5)
