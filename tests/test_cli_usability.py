"""The CLI as an operator meets it (issue 16, items 9 and 10): bad dates name the option and
the format, a dry run lists who would get which papers, the ledger shows addresses, a repeated
demo says "already sent", and `--help` loads no database, ranking or migration modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.clippings.enrich import enrich
from subscribers.ledger import DeliveryStatus
from subscribers.models import Frequency, Status, Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from tests.support.cli import run
from tests.support.monthly_data import clip
from tests.support.subprocess_env import without_digest_settings
from workers import cli_choices
from workers.cli_support import migration_heads
from workers.migrate import upgrade

HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "numpy", "scipy", "pydantic_settings", "jinja2")
# What listing subscribers must not load: the ranking and its numpy/scipy, migrations, templates,
# and (it reads with plain SQL on SQLite) SQLAlchemy, SQLModel, the table models and psycopg.
NOT_FOR_LISTING = ("alembic", "numpy", "scipy", "jinja2", "email_validator", "digest.ranking",
                   "sqlalchemy", "sqlmodel", "subscribers.models", "psycopg")


@pytest.mark.parametrize(("args", "option", "wanted"), [
    (["send", "daily", "--date", "yesterday"], "--date", "YYYY-MM-DD"),
    (["send", "daily", "--date", "2026-13-01"], "--date", "YYYY-MM-DD"),
    (["trending", "--date", "2026-02-30"], "--date", "YYYY-MM-DD"),
    (["rank", "--keywords", "tts", "--since", "last week"], "--since", "YYYY-MM-DD"),
    (["monthly", "draft", "--month", "2026-4"], "--month", "YYYY-MM"),
    (["clip", "list", "--month", "April"], "--month", "YYYY-MM"),
    (["clip", "suggest", "--month", "2026-13"], "--month", "YYYY-MM"),
])
@pytest.mark.slow  # starts `digest` processes
def test_a_bad_date_names_the_option_and_the_format(
    var_dir: Path, args: list[str], option: str, wanted: str
) -> None:
    result = run(var_dir, *args)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: "), result.stderr
    assert wanted in lines[0] and "Traceback" not in result.stderr
    assert "must be in" not in lines[0] and "isoformat" not in lines[0]


@pytest.mark.slow  # starts `digest` processes
def test_dry_run_lists_who_would_get_which_papers_and_deliveries_show_addresses(
    var_dir: Path,
) -> None:
    assert run(var_dir, "ingest", "--sample").returncode == 0
    for email, keywords in (("ada@example.org", "TTS, speech synthesis"),
                            ("grace@example.org", "audio captioning")):
        added = run(var_dir, "subscribers", "add", email, "--keywords", keywords)
        assert added.returncode == 0, added.stderr
    dry = run(var_dir, "send", "daily", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "ada@example.org would get" in dry.stdout
    assert "grace@example.org would get" in dry.stdout
    as_json = json.loads(run(var_dir, "send", "daily", "--dry-run", "--json").stdout)
    ada = next(d for d in as_json["digests"] if d["email"] == "ada@example.org")
    assert len(ada["items"]) == ada["papers"] > 0
    first = ada["items"][0]
    assert first["title"] and f"{first['arxiv_id']}  {first['title'][:40]}" in dry.stdout
    assert not list(var_dir.glob("outbox/*.eml"))  # a dry run sends nothing

    assert run(var_dir, "send", "daily").returncode == 0
    table = run(var_dir, "deliveries")
    assert table.returncode == 0, table.stderr
    assert "ada@example.org" in table.stdout and "grace@example.org" in table.stdout
    rows = json.loads(run(var_dir, "deliveries", "--status", "sent", "--json").stdout)
    assert {row["email"] for row in rows} == {"ada@example.org", "grace@example.org"}


@pytest.mark.slow  # starts `digest` processes
def test_a_second_demo_run_says_already_sent(var_dir: Path, settings: Settings) -> None:
    assert run(var_dir, "demo").returncode == 0
    with session_scope(settings.sqlalchemy_url) as session:
        ada = session.exec(select(Subscriber).where(Subscriber.email == "ada@example.org")).one()
        ada.status = Status.unsubscribed  # left after the first digest
        add_subscriber(session=session, subscriber_create=SubscriberCreate(
            email="new@example.org", keywords=["TTS"]), confirmed=False)
    second = run(var_dir, "demo", env={"COLUMNS": "200"})
    assert second.returncode == 0, second.stderr
    lines = {line.split()[1]: line for line in second.stdout.splitlines()
             if "@example.org" in line}
    assert "already sent (now unsubscribed)" in lines["ada@example.org"]
    assert "already sent" in lines["grace@example.org"]
    assert "not confirmed yet" in lines["new@example.org"]
    assert "nothing relevant" not in second.stdout
    assert "0 digests planned, 0 sent;" in second.stdout
    assert "already sent for" in second.stdout and "by an earlier run" in second.stdout


@pytest.mark.slow  # starts `digest` processes
def test_help_and_the_cli_modules_import_nothing_heavy(var_dir: Path) -> None:
    """What `digest --help` pays for: typer and rich, not the database or the ranking."""
    probe = ("import sys, workers.cli; "
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=without_digest_settings(), check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout
    shown = run(var_dir, "--help")
    assert shown.returncode == 0 and "subscribers" in shown.stdout
    assert not (var_dir / "digest.db").exists()  # --help touched no database


@pytest.mark.slow  # starts `digest` processes
def test_subscribers_list_after_the_fast_schema_check(var_dir: Path, settings: Settings) -> None:
    """A current schema skips Alembic; an old one is still migrated first."""
    upgrade(settings, "0001")
    result = run(var_dir, "subscribers", "list", "--status", "active", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    again = run(var_dir, "subscribers", "list", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == []
    assert run(var_dir, "db", "upgrade").stdout.strip().endswith(next(iter(migration_heads())))


@pytest.mark.slow  # starts a Python process
def test_listing_subscribers_loads_no_ranking(var_dir: Path, settings: Settings) -> None:
    """`digest subscribers list` on a current schema reads rows; it imports neither the
    ranking (numpy, scipy) nor migrations, templates or the address validator, nor SQLAlchemy
    and SQLModel (subscribers/listing.py reads with plain SQL)."""
    upgrade(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        add_subscriber(session=session, subscriber_create=SubscriberCreate(
            email="ada@example.org", keywords=["TTS", "author:Hinton"]), confirmed=True)
    probe = "\n".join((
        "import sys",
        "from workers.cli import app",
        "try:",
        "    app(['subscribers', 'list', '--json'])",
        "except SystemExit as done:",
        "    assert not done.code, done.code",
        f"print(sorted(m for m in {NOT_FOR_LISTING!r} if m in sys.modules), file=sys.stderr)",
    ))
    listed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=without_digest_settings() | {"DIGEST_VAR_DIR": str(var_dir)},
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [row["email"] for row in json.loads(listed.stdout)] == ["ada@example.org"]
    assert listed.stderr.strip().splitlines()[-1] == "[]", listed.stderr


def test_the_cli_choices_mirror_the_models() -> None:
    assert [m.value for m in cli_choices.Status] == [m.value for m in Status]
    assert [m.value for m in cli_choices.Frequency] == [m.value for m in Frequency]
    assert [m.value for m in cli_choices.DeliveryStatus] == [m.value for m in DeliveryStatus]


def test_migration_heads_match_alembic(settings: Settings) -> None:
    from alembic.script import ScriptDirectory

    from workers.migrate import alembic_config

    assert migration_heads() == set(ScriptDirectory.from_config(
        alembic_config(settings)).get_heads())


def test_enrich_reports_progress_per_batch(migrated: Settings) -> None:
    seen: list[int] = []
    with session_scope(migrated.sqlalchemy_url) as session:
        clips = [clip(n=n, title="", key=f"k{n}", url=f"https://example.org/p/{n}-post")
                 for n in range(250)]
        session.add_all(clips)
        enrich(session=session, settings=migrated, clips=clips, fetch=False,
               progress=seen.append)
    assert seen == [100, 100, 50]
    assert clips[7].title == "7 post"
