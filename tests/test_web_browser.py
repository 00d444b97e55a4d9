"""The whole journey in a real headless Chromium against a real uvicorn server.

Signup (live preview, a suggestion, the detected time zone) -> the sender writes the
confirmation to the outbox -> open the link -> confirm -> manage (change keywords) ->
unsubscribe from the email's link, at 375 px and 1280 px, with screenshots in
tests/artifacts/web/. Then the same signup with JavaScript off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from emails.transports import OutboxTransport
from subscribers.models import Status, Subscriber
from tests.support.browser import shot
from tests.support.live_server import free_port, live_settings, serving
from workers import jobs
from workers.demo import sample_corpus_path
from workers.sending import send_due

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real uvicorn serving the app on a free port, with the sample corpus stored."""
    port = free_port()
    settings = live_settings(tmp_path_factory.mktemp("web") / "var", port)
    jobs.ingest_document(settings=settings, location=str(sample_corpus_path()), source="sample")
    with serving(settings, port):
        yield settings


def outbox_message(settings: Settings, to: str) -> EmailMessage:
    """Run the sender as `digest serve` would, then read the newest .eml for `to`."""
    send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    parser = BytesParser(policy=policy.default)
    found = [parser.parsebytes(p.read_bytes()) for p in sorted(settings.outbox_path.glob("*.eml"))]
    mine = [m for m in found if m["To"] == to]
    assert mine, f"no email for {to} in the outbox"
    return mine[-1]  # type: ignore[return-value]


def text_part(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def stored(settings: Settings, email: str) -> Subscriber:
    with session_scope(settings.sqlalchemy_url) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).one()


@pytest.mark.parametrize("width", [375, 1280])
def test_signup_confirm_manage_unsubscribe(live: Settings, browser: Any, width: int) -> None:
    email = f"ada-{width}@example.org"
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  timezone_id="Asia/Tokyo")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    base = live.public_url

    # Signup: keywords with a live preview, a suggestion, the detected time zone.
    page.goto(base + "/")
    assert page.locator("#timezone").input_value() == "Asia/Tokyo"
    page.keyboard.press("Tab")  # keyboard users can skip straight to the form
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    shot(page, "1-signup", width)
    page.get_by_label("Topics, methods or names to watch for").fill("speech language model")
    page.locator(".paper").first.wait_for()
    assert page.locator("#preview-results").get_by_text("speech language model").count() >= 1
    suggestion = page.locator(".suggest button").first
    added = suggestion.get_attribute("data-keyword")
    with page.expect_response(lambda r: "/preview/fragment" in r.url) as refreshed:
        suggestion.click()  # with JavaScript: added in place, and the preview follows
    assert refreshed.value.ok
    assert page.locator("#keywords").input_value() == f"speech language model\n{added}"
    page.wait_for_function("!document.querySelector('.preview.loading')")
    page.locator(".paper").first.wait_for()
    page.get_by_label("Once a week").check()
    page.get_by_label("Your email address").fill(email)
    shot(page, "2-signup-filled", width)
    page.get_by_role("button", name="Subscribe", exact=True).click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    shot(page, "3-check-inbox", width)
    pending = stored(live, email)
    assert (pending.status, pending.keywords, pending.timezone, pending.frequency.value) == (
        Status.pending, ["speech language model", added], "Asia/Tokyo", "weekly")

    # The confirmation email, written to the outbox by the sender.
    message = outbox_message(live, email)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    reader = context.new_page()  # a blank page: our site's CSP must not apply to the email
    reader.set_content(str(html.get_content()))
    shot(reader, "4-confirm-email", width)
    reader.close()
    links = re.findall(re.escape(base) + r"/[a-z]+/[\w.-]+", text_part(message))
    confirm_link = next(link for link in links if "/confirm/" in link)
    unsubscribe_link = next(link for link in links if "/unsubscribe/" in link)

    # Confirm: the link shows a button; only pressing it confirms.
    page.goto(confirm_link)
    assert stored(live, email).status == Status.pending
    shot(page, "5-confirm-page", width)
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_text("You're subscribed.").wait_for()
    assert stored(live, email).status == Status.active
    shot(page, "6-manage", width)

    # Manage: change the keywords.
    page.get_by_label("Topics, methods or names to watch for").fill("prosody\nspeech tokenizer")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved. Your next digest uses these settings.").wait_for()
    assert stored(live, email).keywords == ["prosody", "speech tokenizer"]
    shot(page, "7-manage-saved", width)

    # Unsubscribe from the email's link: a page with one button, then done.
    page.goto(unsubscribe_link)
    assert stored(live, email).status == Status.active
    shot(page, "8-unsubscribe", width)
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You're unsubscribed").wait_for()
    assert stored(live, email).status == Status.unsubscribed
    shot(page, "9-unsubscribed", width)
    assert problems == []
    context.close()


def test_everything_works_with_javascript_off(live: Settings, browser: Any) -> None:
    email = "nojs@example.org"
    context = browser.new_context(viewport={"width": 375, "height": 800},
                                  java_script_enabled=False)
    page = context.new_page()
    page.goto(live.public_url + "/")
    page.get_by_label("Topics, methods or names to watch for").fill("speech language model")
    page.get_by_role("button", name="Preview matching papers").click()
    page.locator(".paper").first.wait_for()
    suggestion = page.locator(".suggest button").first
    added = suggestion.get_attribute("data-keyword")
    suggestion.click()  # without JavaScript: a submit that re-renders with it added
    page.locator(".paper").first.wait_for()
    assert page.locator("#keywords").input_value() == f"speech language model\n{added}"
    shot(page, "nojs-preview", 375)
    page.get_by_label("Your email address").fill(email)
    page.get_by_role("button", name="Subscribe", exact=True).click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert stored(live, email).timezone == "UTC"  # no script, no detection: the fallback

    confirm_link = next(link for link in re.findall(
        re.escape(live.public_url) + r"/confirm/[\w.-]+", text_part(outbox_message(live, email))))
    page.goto(confirm_link)
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_text("You're subscribed.").wait_for()
    # An empty box never leaves the browser (required); too many keywords is the server's call.
    page.get_by_label("Topics, methods or names to watch for").fill(
        ", ".join(f"topic {n}" for n in range(25)))
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name="Please fix this before continuing").wait_for()
    shot(page, "nojs-error", 375)
    assert stored(live, email).keywords == ["speech language model", added]
    context.close()
