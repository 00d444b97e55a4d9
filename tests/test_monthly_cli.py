"""`digest monthly ...` run as an editor would: a real process on a fresh var/ directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.db import session_scope
from core.settings import Settings
from tests.support.cli import run
from tests.support.monthly_data import MONTH, add_subscribers, sample_clips
from workers.cli import app
from workers.migrate import upgrade

KEYS = {"DIGEST_SECRET_KEYS": "test-secret-newest,test-secret-older"}


@pytest.mark.slow
def test_draft_preview_approve_send(settings: Settings, var_dir: Path, tmp_path: Path) -> None:
    upgrade(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        session.add_all(sample_clips())
        add_subscribers(session, 3)
        add_subscribers(session, 1, prefix="optout", monthly=False)
    intro = tmp_path / "intro.md"
    intro.write_text("A busy month.\n\nSecond paragraph.", encoding="utf-8")

    bad = run(var_dir, "monthly", "draft", "--month", "April", env=KEYS)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0
    assert "2026-04" in bad.stderr
    early = run(var_dir, "monthly", "send", "--month", MONTH, env=KEYS)
    assert early.returncode == 1 and "no issue" in early.stderr

    drafted = run(var_dir, "monthly", "draft", "--month", MONTH, "--intro-file", str(intro),
                  "--json", env=KEYS)  # fmt: skip
    assert drafted.returncode == 0, drafted.stderr
    assert json.loads(drafted.stdout)["papers"] == 5

    out = tmp_path / "preview"
    shown = run(var_dir, "monthly", "preview", "--month", MONTH, "--out", str(out), "--json",
                env=KEYS)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    paths = json.loads(shown.stdout)
    assert "Second paragraph." in Path(paths["html"]).read_text(encoding="utf-8")
    assert Path(paths["text"]).read_text(encoding="utf-8").startswith("Clippings - April 2026")
    assert paths["html_bytes"] < 100_000

    not_yet = run(var_dir, "monthly", "send", "--month", MONTH, env=KEYS)
    assert not_yet.returncode == 1 and "approve" in not_yet.stderr
    assert run(var_dir, "monthly", "approve", "--month", MONTH, env=KEYS).returncode == 0

    dry = run(var_dir, "monthly", "send", "--month", MONTH, "--dry-run", "--json", env=KEYS)
    assert json.loads(dry.stdout) == {
        "month": MONTH, "dry_run": True, "eligible": 3, "planned": 0, "waiting": 0}  # fmt: skip
    sent = run(var_dir, "monthly", "send", "--month", MONTH, "--wait", "--json", env=KEYS)
    assert sent.returncode == 0, sent.stderr
    report = json.loads(sent.stdout)
    assert (report["planned"], report["sent"], report["waiting"]) == (3, 3, 0)
    assert len(list((var_dir / "outbox").glob("*.eml"))) == 3
    again = run(var_dir, "monthly", "send", "--month", MONTH, "--wait", "--json", env=KEYS)
    assert json.loads(again.stdout)["planned"] == 0 and json.loads(again.stdout)["sent"] == 0
    assert len(list((var_dir / "outbox").glob("*.eml"))) == 3

    listed = json.loads(run(var_dir, "monthly", "list", "--json", env=KEYS).stdout)
    assert [(i["month"], i["status"]) for i in listed] == [(MONTH, "sent")]
    reopened = run(var_dir, "monthly", "reopen", "--month", MONTH, env=KEYS)
    assert reopened.returncode == 1 and "sent" in reopened.stderr


def test_monthly_help_has_examples() -> None:
    runner = CliRunner()
    for command in ("draft", "preview", "approve", "reopen", "send", "list"):
        result = runner.invoke(app, ["monthly", command, "--help"], terminal_width=200)
        assert result.exit_code == 0 and "Example: digest monthly" in result.output, command
