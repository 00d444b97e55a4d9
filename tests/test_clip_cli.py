"""`digest clip ...` run as an editor would: a real process, a fresh var/, a local arXiv API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import HandlerType
from typer.testing import CliRunner

from tests.support.cli import run
from tests.support.fake_arxiv import arxiv_api
from workers.cli_clips import clip_app

DATA = Path(__file__).parent / "data" / "clips"


def test_clip_commands_have_examples() -> None:
    runner = CliRunner()
    for command in ("add", "import", "list", "suggest"):
        result = runner.invoke(clip_app, [command, "--help"])  # help needs no database
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output, command


@pytest.mark.slow
def test_add_import_override_and_resuggest(var_dir: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query", handler_type=HandlerType.PERMANENT
                              ).respond_with_handler(arxiv_api)
    env = {"DIGEST_ARXIV_API_URL": httpserver.url_for("/api/query"),
           "DIGEST_CLIP_FETCH_TIMEOUT_SECONDS": "2"}
    added = run(var_dir, "clip", "add", "https://arxiv.org/pdf/2604.00001v2", "--note",
                "great <b>TTS</b>", "--month", "2026-04", "--json", env=env)
    assert added.returncode == 0, added.stderr
    clip = json.loads(added.stdout)["clip"]
    assert clip["title"] == "OmniVoice: Massively Multilingual Zero-Shot TTS"
    assert clip["suggested_section"] == "Speech & Audio" and clip["autofill"] == "done"
    assert clip["why"]["section_keywords"][0] in ("TTS", "speech", "text-to-speech")

    again = run(var_dir, "clip", "add", "https://huggingface.co/papers/2604.00001", "--tags",
                "TTS, Multilingual", "--highlight", "--month", "2026-04", "--no-fetch", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"merged into clip {clip['id']} (highlight, 2026-04)")

    imported = run(var_dir, "clip", "import", str(DATA / "bookmarks_firefox.html"),
                   "--month", "2026-04", "--no-fetch", "--json", env=env)
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert (report["format"], report["added"], report["merged"]) == ("bookmarks", 8, 1)
    assert [error["line"] for error in report["errors"]] == [24, 25, 32]

    listed = json.loads(run(var_dir, "clip", "list", "--month", "2026-04", "--json").stdout)
    assert len(listed) == 9
    paper = next(c for c in listed if c["id"] == clip["id"])
    assert paper["tags"] == ["TTS", "Multilingual"] and paper["kind"] == "highlight"
    assert paper["note"] == "great <b>TTS</b>"
    assert {c["effective_section"] for c in listed} >= {"Speech & Audio", "Also worth a look"}

    resorted = run(var_dir, "clip", "suggest", "--month", "2026-04")
    assert resorted.returncode == 0, resorted.stderr
    assert "9 clips re-sorted in 2026-04" in resorted.stdout
    table = run(var_dir, "clip", "list", "--month", "2026-04", env={"COLUMNS": "250"})
    row = next(line for line in table.stdout.splitlines() if "OmniVoice: Massively" in line)
    assert "TTS, Multilingual (" in row  # the editor's tags, then the suggestion beside them


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_1(var_dir: Path, tmp_path: Path) -> None:
    for args, message in (
        (["clip", "add", "ftp://example.org/x", "--no-fetch"], "error: not an http(s) url"),
        (["clip", "add", "https://example.org", "--month", "04-2026"],
         "error: --month: '04-2026' is not a month: use YYYY-MM"),
        (["clip", "import", str(tmp_path / "missing.html")], "missing.html: no such file"),
        (["clip", "import", str(tmp_path)], "is a directory"),
        (["clip", "suggest", "--month", "2026-4"], "error: --month: '2026-4' is not a month"),
    ):
        result = run(var_dir, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr, result.stderr
