"""Consent is given, never assumed (issue 16, item 1).

The monthly clippings box is unticked until the reader ticks it (a pre-ticked box is not
consent: CJEU Planet49), `digest subscribers add` opts nobody into the monthly issue without
--monthly, and every consent record says which lists and how (form, CLI).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from core.db import session_scope
from core.settings import Settings
from subscribers.models import ConsentEvent, Subscriber
from tests.support.cli import run
from tests.support.live_server import free_port, live_settings, serving
from tests.support.web_app import client_for, form_token, signup_form


def consent(settings: Settings, email: str) -> list[tuple[str, str, str]]:
    with session_scope(settings.sqlalchemy_url) as session:
        sid = session.exec(select(Subscriber.id).where(Subscriber.email == email)).one()
        events = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == sid)
                              .order_by(col(ConsentEvent.id)))
        return [(e.action.value, e.channel, e.lists) for e in events]


def stored(settings: Settings, email: str) -> Subscriber:
    with session_scope(settings.sqlalchemy_url) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).one()


def test_the_monthly_box_is_not_ticked_on_the_signup_page(web: Settings) -> None:
    html = client_for(web).get("/").text
    box = html[html.index('name="monthly"'):]
    box = box[:box.index(">")]
    assert "checked" not in box


def test_an_unticked_box_means_the_digest_only_and_the_record_says_so(
        web: Settings) -> None:
    client = client_for(web)
    # A browser sends nothing at all for an unticked checkbox.
    form = {k: v for k, v in signup_form(form_token(client)).items() if k != "monthly"}
    assert client.post("/subscribe", data=form, follow_redirects=False).status_code == 303
    assert stored(web, "ada@example.org").monthly is False
    assert consent(web, "ada@example.org") == [("signup", "web", "digest")]

    client.post("/subscribe", data=signup_form(form_token(client), email="bo@example.org",
                                               monthly="yes"))
    assert stored(web, "bo@example.org").monthly is True
    assert consent(web, "bo@example.org") == [("signup", "web", "digest,monthly")]


@pytest.mark.slow  # starts `digest` processes
def test_cli_add_needs_an_explicit_monthly_flag(var_dir: Path) -> None:
    plain = run(var_dir, "subscribers", "add", "ada@example.org", "--keywords", "tts", "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["monthly"] is False
    opted = run(var_dir, "subscribers", "add", "bo@example.org", "--keywords", "tts",
                "--monthly", "--json")
    assert opted.returncode == 0, opted.stderr
    assert json.loads(opted.stdout)["monthly"] is True
    assert "--no-monthly" in run(var_dir, "subscribers", "add", "--help").stdout
    settings = Settings(_env_file=None, var_dir=var_dir)  # type: ignore[call-arg]
    assert consent(settings, "ada@example.org") == [("imported", "cli", "digest")]
    assert consent(settings, "bo@example.org") == [("imported", "cli", "digest,monthly")]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    port = free_port()
    settings = live_settings(
        tmp_path_factory.mktemp("consent") / "var", port, secret_keys=["consent-test-key"],
    )
    with serving(settings, port):
        yield settings


@pytest.mark.browser
def test_in_a_browser_the_box_starts_unticked_and_ticking_it_opts_in(
        live: Settings, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    page.goto(live.public_url + "/")
    box = page.get_by_label("Also send the monthly clippings")
    assert not box.is_checked()
    page.get_by_label("Topics, methods or names to watch for").fill("speech synthesis")
    page.get_by_label("Your email address").fill("unticked@example.org")
    page.get_by_role("button", name="Subscribe", exact=True).click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert stored(live, "unticked@example.org").monthly is False

    page.goto(live.public_url + "/")
    page.get_by_label("Topics, methods or names to watch for").fill("speech synthesis")
    page.get_by_label("Also send the monthly clippings").check()
    page.get_by_label("Your email address").fill("ticked@example.org")
    page.get_by_role("button", name="Subscribe", exact=True).click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert stored(live, "ticked@example.org").monthly is True
    assert consent(live, "ticked@example.org") == [("signup", "web", "digest,monthly")]
    context.close()
