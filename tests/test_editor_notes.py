"""The editor's note is private: readers get the summary, and the issue pages list every clip
whose public text is missing or copied from a note (issue 16, items 7 and 8)."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from core.db import session_scope
from core.settings import Settings
from digest.clippings.autofill import autofill_clips
from digest.clippings.issue import copied_from_note, draft_issue, issue_content, to_write
from digest.clippings.models import AutofillState, ClipKind
from emails.monthly import issue_view
from tests.support.admin_helpers import PASSWORD, admin_settings, client_for, login
from tests.support.live_server import free_port, serving
from tests.support.monthly_data import MONTH, clip
from workers.migrate import upgrade

PRIVATE = "must read; ask Kim why the baseline is so weak"


def month_of_notes() -> list:  # type: ignore[type-arg]
    return [
        clip(n=1, kind=ClipKind.highlight, title="Duplex talk", note=PRIVATE,
             summary="A full-duplex spoken dialogue model that listens while it talks."),
        clip(n=2, kind=ClipKind.highlight, title="Only a note", note=PRIVATE),
        clip(n=3, title="A paper", note=PRIVATE, summary="", suggested_section="Other"),
        clip(n=4, title="Pasted", note="Great codec paper", summary="Great codec paper.",
             suggested_section="Other"),
        clip(n=5, kind=ClipKind.link, title="A blog", url="https://example.org/blog",
             note=PRIVATE, summary="How one lab trains small TTS models.", topic="TTS"),
        clip(n=6, kind=ClipKind.link, title="", url="https://example.org/raw", topic="TTS"),
    ]


def test_the_note_never_reaches_the_content_or_the_email() -> None:
    content = issue_content(clips=month_of_notes(), month=MONTH, title="T", intro="")
    assert "must read" not in str(content) and "Kim" not in str(content)
    duplex, only_note = content["highlights"]
    # The autofilled-then-edited summary is the write-up, even though a note exists.
    assert duplex["write_up"].startswith("A full-duplex spoken dialogue model")
    assert only_note["write_up"] == ""
    blog = content["also"][0]["links"][0]
    assert blog["summary"] == "How one lab trains small TTS models."
    view = issue_view(content)
    assert "Kim" not in str(view)
    # An issue frozen before this change still shows its "also" text.
    old = {"also": [{"topic": "T", "links": [{"title": "x", "url": "https://e.org",
                                              "note": "Frozen text"}]}]}
    assert issue_view(old).also[0].items[0].paragraphs == ("Frozen text",)


def test_to_write_marks_empty_and_copied_public_text() -> None:
    todo = {item.title: item.problems for item in to_write(month_of_notes())}
    assert "Duplex talk" not in todo and "A blog" not in todo
    assert any("no public write-up" in p for p in todo["Only a note"])
    assert any("no public write-up" in p for p in todo["A paper"])
    assert any("repeats your private note" in p for p in todo["Pasted"])
    assert any("title guessed" in p for p in todo["https://example.org/raw"])
    assert copied_from_note(clip(note="  great   CODEC paper ", summary="Great codec paper!"))
    assert not copied_from_note(clip(note="ok", summary="An okay paper about codecs."))


def test_offline_autofill_titles_from_the_path_and_keeps_links(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        repo = clip(n=7, kind=ClipKind.link, title="", url="https://github.com/k2-fsa/OmniVoice",
                    key="github:k2-fsa/omnivoice")
        blog = clip(n=8, kind=ClipKind.link, title="", key="blog",
                    url="https://example.org/posts/how-we-train_small-tts-models.html")
        paper = clip(n=9, title="", key="arxiv:2604.00009", arxiv_id="2604.00009",
                     note="code https://github.com/lab/duplex project https://lab.github.io/dx")
        session.add_all([repo, blog, paper])
        session.flush()
        autofill_clips(session=session, clips=[repo, blog, paper], api_url="http://127.0.0.1:9",
                       timeout=1, fetch=False)
        assert repo.title == "k2-fsa/OmniVoice"
        assert repo.links == {"code": "https://github.com/k2-fsa/OmniVoice"}
        assert blog.title == "How we train small tts models"
        assert paper.title == "arXiv 2604.00009"
        assert paper.links == {"code": "https://github.com/lab/duplex",
                               "project": "https://lab.github.io/dx"}
        assert {repo.autofill, blog.autofill, paper.autofill} == {AutofillState.pending}
        todo = {item.title: item.problems for item in to_write([repo, blog, paper])}
        assert any("no public write-up" in p for p in todo["k2-fsa/OmniVoice"])
        assert any("title guessed" in p for p in todo["arXiv 2604.00009"])


def test_a_failed_autofill_keeps_the_links_of_the_note(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        paper = clip(n=10, title="", key="arxiv:2604.00010", arxiv_id="2604.00010",
                     url="https://arxiv.org/abs/2604.00010",
                     note="project page https://lab.github.io/ten")
        session.add(paper)
        session.flush()
        autofill_clips(session=session, clips=[paper], api_url="http://127.0.0.1:9/api/query",
                       timeout=1, fetch=True)
        assert paper.autofill == AutofillState.failed and paper.title == "arXiv 2604.00010"
        assert paper.links == {"project": "https://lab.github.io/ten"}


def _to_write_items(html: str) -> list[str]:
    items = re.findall(r'<li class="to-write-item"[^>]*>(.*?)</li>', html, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", item)) for item in items]


def test_issue_pages_list_what_is_left_to_write(settings: Settings) -> None:
    upgrade(settings)
    settings = admin_settings(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(month_of_notes())
    client = client_for(settings)
    token = login(client)
    assert client.post(f"/admin/issues/{MONTH}/draft", data={"csrf": token}).status_code == 303
    page = client.get(f"/admin/issues/{MONTH}").text
    items = _to_write_items(page)
    assert "Still to write: 4 clips" in page
    assert any(i.startswith("Only a note") and "no public write-up" in i for i in items)
    assert any(i.startswith("Pasted") and "repeats your private note" in i for i in items)
    assert "Kim" not in page  # the to-do names the problem, not the note itself
    preview = client.get(f"/admin/issues/{MONTH}/preview").text
    assert _to_write_items(preview) == items
    email = client.get(f"/admin/issues/{MONTH}/email").text
    assert "must read" not in email and "Kim" not in email
    assert "A full-duplex spoken dialogue model" in email
    # Approved content is frozen: nothing left to list.
    assert client.post(f"/admin/issues/{MONTH}/approve", data={"csrf": token}
                       ).status_code == 303
    assert _to_write_items(client.get(f"/admin/issues/{MONTH}").text) == []


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_the_to_write_list_in_a_browser(tmp_path: Path, browser: Any, width: int) -> None:
    port = free_port()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=tmp_path / "var", secret_keys=["notes-browser-key"],
        public_url=f"http://127.0.0.1:{port}", admin_password=PASSWORD,
    )
    upgrade(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(month_of_notes())
        draft_issue(session=session, month=MONTH)
    with serving(settings, port):
        page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
        page.goto(f"{settings.public_url}/admin/login?next=/admin/issues/{MONTH}")
        page.fill("#password", PASSWORD)
        with page.expect_navigation(wait_until="load"):  # not a read of the old page
            page.click("button[type=submit]")
        assert page.url.endswith(f"/admin/issues/{MONTH}")
        box = page.locator("#to-write")
        assert box.is_visible()
        items = box.locator("li").all_inner_texts()
        assert len(items) == 4 and any("repeats your private note" in i for i in items)
        assert "Kim" not in page.content()
        page.screenshot(path=str(shot_dir() / f"issue-to-write-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        with page.expect_navigation(wait_until="load"):
            box.locator("a", has_text="Only a note").click()
        assert "/admin/clips/" in page.url and page.locator("#summary").is_visible()


def shot_dir() -> Path:
    folder = Path(__file__).parent / "artifacts" / "admin"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
