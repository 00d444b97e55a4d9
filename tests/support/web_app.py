"""The web app through FastAPI's TestClient: a client, the signup form and its CSRF token,
a few stored papers to suggest and preview, and the `web` / `both` fixtures built on them.

Shared by the test_web_* files and every test that signs someone up through the page. The
fixtures are registered for every test module by tests/conftest.py.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, cast, update
from sqlmodel import SQLModel, func, select

from core.db import session_scope
from core.settings import Settings
from digest.papers import PaperIn, upsert_papers
from subscribers import ledger
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from subscribers.tokens import Purpose, feed_token, make_token
from subscribers.web.app import create_app
from subscribers.web.pages import WebLimits
from tests.support.schema import upgrade_from_template

DAY = date(2026, 1, 29)
TITLES = [
    "Zero-shot speech synthesis with a neural codec language model",
    "Prosody control for expressive speech synthesis",
    "Voice cloning from three seconds of audio",
    "A survey of speech synthesis evaluation",
    "Speech tokenizer design for speech language models",
    "Sound event detection in the wild",
]


def store_papers(settings: Settings) -> None:
    papers = [PaperIn(arxiv_id=f"2601.{10000 + n}", title=title, source="test",
                      abstract=f"We study {title.lower()}. Results on public benchmarks.",
                      authors=["Ada Lovelace", "Alan Turing"], categories=["cs.SD"],
                      announced_on=DAY - timedelta(days=n % 3),
                      abs_url=f"https://arxiv.org/abs/2601.{10000 + n}")
              for n, title in enumerate(TITLES)]
    with session_scope(settings.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=papers)


def client_for(settings: Settings, limits: WebLimits | None = None) -> TestClient:
    return TestClient(create_app(settings, limits=limits), base_url="http://testserver")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


def form_token(client: TestClient, url: str = "/") -> str:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def signup_form(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf": csrf, "email": "ada@example.org", "keywords": "speech synthesis\nTTS",
            "frequency": "daily", "monthly": "yes", "timezone": "Europe/Paris",
            "send_hour": "7", "website": "", **fields}


def rows(settings: Settings, table: type[SQLModel]) -> int:
    with session_scope(settings.sqlalchemy_url) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def free_period_slots(settings: Settings) -> None:
    """Account emails are keyed per second; make earlier ones look older, as time would."""
    with session_scope(settings.sqlalchemy_url) as session:
        session.execute(update(ledger.Delivery).values(
            period=func.substr(ledger.Delivery.period, 1, 16) + "-"
            + cast(ledger.Delivery.id, String)))


@pytest.fixture
def web(settings: Settings, sqlite_template: Path) -> Settings:
    """SQLite-only settings with the schema migrated (a copy of the session's migrated file:
    tests/support/schema.py) and a few papers stored."""
    upgrade_from_template(settings, sqlite_template)
    store_papers(settings)
    return settings


@pytest.fixture
def both(migrated: Settings) -> Settings:
    """The same on SQLite and PostgreSQL, for tests whose point is the database state."""
    store_papers(migrated)
    return migrated


def confirmed_reader(settings: Settings, email: str, keywords: list[str]) -> int:
    """A confirmed subscriber, added as the service adds one; their id."""
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = add_subscriber(session=session, confirmed=True, subscriber_create=(
            SubscriberCreate(email=email, keywords=keywords)))
        return subscriber.id or 0


def manage_path(settings: Settings, subscriber_id: int) -> str:
    """The reader's signed manage page, as a path."""
    token = make_token(keys=settings.signing_keys(), purpose=Purpose.manage,
                       subscriber_id=subscriber_id)
    return f"/manage/{token}"


def feed_path(settings: Settings, subscriber_id: int) -> str:
    """The reader's personal feed address (its current generation), as a path."""
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        generation = subscriber.feed_generation
    token = feed_token(keys=settings.signing_keys(), subscriber_id=subscriber_id,
                       generation=generation)
    return f"/feed/{token}"
