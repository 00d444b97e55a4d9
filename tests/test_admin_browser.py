"""The editor's flow in a real headless Chromium against uvicorn: log in, clip a page through
the bookmarklet's address, edit it (override a suggestion), reorder, draft, preview, approve.
Screenshots go to tests/artifacts/admin/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.clippings.models import Clip, MonthlyIssue
from tests.support.admin_helpers import PASSWORD
from tests.support.browser import A11Y, OVERFLOWING
from tests.support.live_server import free_port, live_settings, serving

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts" / "admin"
MONTH = "2026-04"
# Wide tables scroll inside their own box on a phone; nothing else may stick out.
ADMIN_OVERFLOWING = OVERFLOWING.replace("'.hp, .skip'", "'.hp, .skip, .table-wrap'")
PAPERS = [("2604.01111", "Zero-shot speech synthesis with discrete tokens"),
          ("2604.02222", "A full-duplex spoken dialogue model"),
          ("2604.03333", "Scaling laws for LLM pre-training data mixtures")]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    port = free_port()
    settings = live_settings(
        tmp_path_factory.mktemp("admin") / "var", port, secret_keys=["admin-browser-key"],
        admin_password=PASSWORD,
    )
    with serving(settings, port):
        yield settings


def shot(page: Any, name: str, width: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, name
    assert page.evaluate(ADMIN_OVERFLOWING) == [], name
    assert page.evaluate(A11Y) == [], name  # labelled fields, named buttons, one h1


def submit(page: Any, selector: str) -> None:
    """Click what sends a form and wait for the page it leads to (a click alone can return
    before the navigation starts, and the next look would read the old page)."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def clips(settings: Settings) -> dict[str, Clip]:
    with session_scope(settings.sqlalchemy_url) as session:
        found = session.exec(select(Clip).where(Clip.month == MONTH)).all()
        for clip in found:
            session.expunge(clip)
    return {clip.arxiv_id or "": clip for clip in found}


@pytest.mark.parametrize("width", [375, 1280])
def test_editor_flow(live: Settings, browser: Any, width: int) -> None:
    base = live.public_url
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  java_script_enabled=False)  # everything works without JS
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    # The bookmarklet opens this address; without a session it asks for the password first.
    arxiv_id, title = PAPERS[0] if width == 375 else PAPERS[1]
    target = (f"{base}/admin/clips/new?url={quote(f'https://arxiv.org/abs/{arxiv_id}v2')}"
              f"&title={quote(title)}&month={MONTH}")
    page.goto(target)
    assert "/admin/login" in page.url
    page.fill("#password", "wrong password")
    submit(page, "button[type=submit]")
    assert page.locator("#login-error").inner_text() == "That password is not right."
    shot(page, "login-error", width)
    page.fill("#password", PASSWORD)
    submit(page, "button[type=submit]")
    assert page.url == target  # back where the bookmarklet pointed, form prefilled
    assert page.input_value("#title") == title
    shot(page, "clip-new", width)
    page.fill("#note", "Strong zero-shot results; worth a highlight?")
    submit(page, "text=Save clip")
    assert "/admin/clips/" in page.url and "saved=1" in page.url
    saved = clips(live)[arxiv_id]
    assert saved.source == "editor" and saved.title == title
    # Edit: override the suggested section and tags.
    page.select_option("#section", "Multimodal")
    page.uncheck("input[name=tags_suggested]")
    page.fill("#tags", "TTS, Discrete Tokens")
    page.fill("#summary", "A short summary <em>with markup</em> kept as text.")
    page.fill("#link_code", "https://github.com/example/tts")
    shot(page, "clip-edit", width)
    submit(page, "#save")
    edited = clips(live)[arxiv_id]
    assert edited.section == "Multimodal" and edited.tags == ["TTS", "Discrete Tokens"]
    assert edited.links == {"code": "https://github.com/example/tts"}
    # A second clip in the same section, then move it up with the button (a POST).
    other_id, other_title = PAPERS[2]
    page.goto(f"{base}/admin/clips/new?month={MONTH}&url="
              f"{quote(f'https://arxiv.org/abs/{other_id}')}&title={quote(other_title)}")
    submit(page, "text=Save clip")
    page.select_option("#section", "Multimodal")
    submit(page, "#save")
    page.goto(f"{base}/admin/clips?month={MONTH}")
    before = [c.arxiv_id for c in sorted(clips(live).values(), key=lambda c: c.position)
              if c.effective_section == "Multimodal"]
    mover = clips(live)[before[-1] or ""]
    submit(page, f"#clip-{mover.id} button[value=up]")
    after = [c.arxiv_id for c in sorted(clips(live).values(), key=lambda c: c.position)
             if c.effective_section == "Multimodal"]
    assert after[before.index(mover.arxiv_id) - 1] == mover.arxiv_id
    assert page.locator(".suggest").count() == len(clips(live))  # every suggestion shown
    shot(page, "clips", width)
    if width == 375:
        context.close()
        return
    # The bookmarklet from another site: a SameSite=Strict cookie is not sent on that first
    # navigation; one same-site refresh later the logged-in editor sees the form.
    page.set_content(f'<a id="clip" href="{target}">clip</a>')  # an opaque, foreign origin
    page.click("#clip")
    page.wait_for_url(target)
    assert page.input_value("#title") == title
    # Draft, preview, approve (the 1280 px run, after both clips exist).
    page.goto(f"{base}/admin/issues/{MONTH}")
    page.fill("#intro", "This month: speech that talks back.")
    submit(page, "text=Draft the issue")
    assert "done=drafted" in page.url
    shot(page, "issue-draft", width)
    submit(page, "text=Preview the web page")
    assert "speech that talks back" in page.locator("article.ar-issue").inner_text()
    shot(page, "issue-web", width)
    page.go_back()
    submit(page, "text=Preview the email (375 / 800 px)")
    page.wait_for_load_state("load")
    frames = [f for f in page.frames if f.url.endswith("/email")]
    assert len(frames) == 2 and all(title in f.content() or PAPERS[0][1] in f.content()
                                    for f in frames)
    widths = page.evaluate("[...document.querySelectorAll('iframe')].map(f => f.clientWidth)")
    assert widths == [375, 800]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "issue-preview-1280.png"), full_page=True)
    page.goto(f"{base}/admin/issues/{MONTH}")
    submit(page, "text=Approve")
    assert page.locator("#issue-status").inner_text() == "approved"
    shot(page, "issue-approved", width)
    submit(page, "text=Send to subscribers")
    assert page.locator("#issue-status").inner_text() == "sent"
    assert "deliveries planned" in page.locator("#issue-done").inner_text()
    shot(page, "issue-sent", width)
    with session_scope(live.sqlalchemy_url) as session:
        issue = session.exec(select(MonthlyIssue)).one()
        assert issue.status.value == "sent" and "speech that talks back" in issue.intro
    # Log out: the pages are closed again.
    submit(page, "text=Log out")
    page.goto(f"{base}/admin/subscribers")
    assert "/admin/login" in page.url
    assert [p for p in problems if "400 (Bad Request)" not in p] == []  # the wrong password
    context.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_subscribers_import_and_reports(live: Settings, browser: Any, width: int) -> None:
    base = live.public_url
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/admin/subscribers")
    page.fill("#password", PASSWORD)
    submit(page, "button[type=submit]")
    assert page.url == f"{base}/admin/subscribers"
    rows = (f"email,keywords,frequency\nw{width}@example.org,speech synthesis; TTS,weekly\n"
            "broken-address,tts,daily\nnobody@example.org,,daily\n")
    page.fill("#text", rows)
    submit(page, "#import")
    report = page.locator("#import-report").inner_text()
    assert "Imported 1 subscriber." in report and "Line 3:" in report and "Line 4:" in report
    shot(page, "subscribers-import", width)
    page.fill("#q", "tts")
    submit(page, "form.filters button[type=submit]")
    assert f"w{width}@example.org" in page.locator("table.data").inner_text()
    for name in ("deliveries", "events"):
        page.goto(f"{base}/admin/{name}")
        shot(page, name, width)
    page.goto(f"{base}/admin")
    shot(page, "overview", width)
    context.close()
