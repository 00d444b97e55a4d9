"""One section order (issue 15, item 5): with DIGEST_CLIPPINGS_CONFIG naming a config of
one's own, the editor's clip list and the drafted issue show the sections in the same order."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db import session_scope
from core.settings import Settings, get_settings
from digest.clippings.issue import draft_issue
from digest.clippings.models import ClipKind
from digest.clippings.store import list_clips
from tests.support.admin_helpers import admin_settings, client_for, login
from tests.support.monthly_data import MONTH, clip

# Not the shipped order, a catch-all of another name, and an "also" section of its own.
CUSTOM = """
[sorting]
fallback_section = "Catch-all"
also_section = "Elsewhere"

[[sections]]
name = "Catch-all"
keywords = []

[[sections]]
name = "Multimodal"
keywords = ["vision"]

[[sections]]
name = "Speech & Audio"
keywords = ["speech"]

[[sections]]
name = "LLM & Training"
keywords = ["language model"]
"""


@pytest.fixture
def custom_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The setting names a TOML in tmp_path, for this process's settings too."""
    path = tmp_path / "clippings.toml"
    path.write_text(CUSTOM, encoding="utf-8")
    monkeypatch.setenv("DIGEST_CLIPPINGS_CONFIG", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_the_admin_list_and_the_issue_agree_on_a_custom_section_order(
    migrated: Settings, custom_config: Path
) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        session.add_all([
            clip(n=1, section="Speech & Audio"),
            clip(n=2, section="Robotics"),  # typed by the editor, in no config
            clip(n=3, suggested_section="Catch-all"),
            clip(n=4, suggested_section="Multimodal"),
            clip(n=5, section="LLM & Training"),
            clip(n=6, kind=ClipKind.link, suggested_section="Elsewhere", topic="Tools"),
        ])
        session.flush()
        issue = draft_issue(session=session, month=MONTH)
        in_issue = [section["name"] for section in issue.content["sections"]]
        listed = list(dict.fromkeys(c.effective_section for c in
                                    list_clips(session=session, month=MONTH)))
    client = client_for(admin_settings(migrated, clippings_config=custom_config))
    login(client)
    page = client.get(f"/admin/clips?month={MONTH}")
    assert page.status_code == 200
    on_page = [html.unescape(name) for name in
               re.findall(r'<h2 id="section-\d+">(.+?) <span class="muted">', page.text)]

    # The configured order, the editor's own section after it, the catch-all last; the
    # links ('Elsewhere') are the issue's "also" list, and the end of the editor's list.
    assert in_issue == ["Multimodal", "Speech & Audio", "LLM & Training", "Robotics",
                        "Catch-all"]
    assert on_page == [*in_issue, "Elsewhere"]
    assert listed == on_page
