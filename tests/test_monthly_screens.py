"""The monthly issue in a real headless Chromium: the email and the archive page at 375 and
800 px, screenshots in tests/artifacts/, a full-size issue under Gmail's clipping point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.db import session_scope
from core.settings import Settings
from digest.clippings.issue import approve_issue, draft_issue, get_issue
from digest.clippings.models import Clip, ClipKind
from emails.monthly import render_monthly
from emails.render import RecipientLinks
from subscribers.monthly import plan_monthly
from tests.support.live_server import free_port, live_settings, serving
from tests.support.monthly_data import MONTH, clip

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
SECTIONS = ("Speech & Audio", "LLM & Training", "Multimodal", "Other")
TAGS = ("TTS", "AR", "NAR", "Diffusion", "Discrete Tokens", "Full-Duplex", "Multilingual")
TOPICS = ("TTS & Speech", "General ML & Engineering", "Tools")
# Made-up text of realistic length (the seed issue is a format reference, not content).
SENTENCE = (
    "The model pairs a compact acoustic tokenizer with a bidirectional transformer and is "
    "trained on several hundred thousand hours of openly licensed speech in many languages. "
)


def full_issue() -> list[Clip]:
    """The size of a busy month: 9 highlights, 40 papers, 36 links, long write-ups."""
    clips = []
    for n in range(9):
        clips.append(clip(
            n=n, kind=ClipKind.highlight, title=f"Highlight {n + 1}: a very capable open model",
            summary="\n\n".join([SENTENCE * 3] * 3), explainer=SENTENCE * 2,
            suggested_tags=list(TAGS[n % 3 : n % 3 + 4]),
            links={"code": f"https://github.com/lab/model{n}", "demo": "https://example.org/d",
                   "weights": "https://huggingface.co/lab/m"}))  # fmt: skip
    for n in range(40):
        clips.append(clip(
            n=100 + n, title=f"Paper {n + 1}: scaling streaming speech models with fewer tokens",
            summary=SENTENCE * 3, suggested_section=SECTIONS[n % 4],
            links={"code": "https://github.com/x/y", "project": "https://x.org/p"}))  # fmt: skip
    for n in range(36):
        clips.append(clip(
            n=200 + n, kind=ClipKind.link, title=f"Resource {n + 1}",
            url=f"https://example.org/r{n}", summary=SENTENCE[:140],
            topic=TOPICS[n % 3]))  # fmt: skip
    return clips



@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A real uvicorn serving the app, with a full April issue sent."""
    port = free_port()
    settings = live_settings(
        tmp_path_factory.mktemp("monthly") / "var", port, secret_keys=["monthly-screens-key"],
    )
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(full_issue())
        draft_issue(session=session, month=MONTH, intro="\n\n".join([SENTENCE * 2] * 2))
        approve_issue(session=session, month=MONTH)
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None
        plan_monthly(session=session, issue=issue)
    with serving(settings, port):
        yield settings


def shot(page: Any, name: str, width: int, part: str) -> None:
    """The whole page, its first screen, and one part (a full page is too tall to read)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}-top.png"))
    page.locator(part).first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}-part.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= width, name


def issue_content(settings: Settings) -> dict[str, Any]:
    with session_scope(settings.sqlalchemy_url) as session:
        issue = get_issue(session=session, month=MONTH)
        assert issue is not None
        return dict(issue.content)


@pytest.mark.parametrize("width", [375, 800])
def test_email_at_phone_and_desktop_width(live: Settings, browser: Any, width: int) -> None:
    base = live.public_url
    message = render_monthly(
        issue_content(live),
        to="reader@example.org",
        sender=live.from_email,
        links=RecipientLinks(f"{base}/manage/t", f"{base}/unsubscribe/t", f"{base}/unsubscribe/t"),
        postal_address=live.postal_address,
        archive_url=f"{base}/archive/{MONTH}",
    )
    assert len(message.html.encode()) < 100_000  # Gmail clips at about 102 KB
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_content(message.html)
    assert page.locator("text=Also worth a look").count() == 1
    assert page.locator("a", has_text="View in browser").get_attribute("href") == (
        f"{base}/archive/{MONTH}"
    )
    shot(page, "monthly-email", width, "text=Research papers")
    page.close()


@pytest.mark.parametrize("width", [375, 800])
def test_archive_page_at_phone_and_desktop_width(live: Settings, browser: Any, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{live.public_url}/archive")
    page.get_by_role("link", name="Clippings - April 2026").click()
    page.wait_for_url(f"**/archive/{MONTH}")
    assert page.locator("h1").inner_text() == "Clippings - April 2026"
    assert page.locator(".ar-highlight").count() == 9
    assert page.locator("h3.ar-group").count() == 7  # four sections, three topics
    shot(page, "monthly-archive", width, "h2:text('Research papers')")
    page.close()
