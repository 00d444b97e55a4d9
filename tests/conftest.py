"""Shared fixtures: isolated settings, real databases (SQLite file and the local PostgreSQL)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from core.db import is_postgres_url
from core.settings import Settings

# The helpers in tests/support assert too (they were test modules' own functions): have pytest
# explain their failures the way it explains a test's. Before anything imports them.
pytest.register_assert_rewrite("tests.support")

from tests.support.celery_stack import POSTGRES_ADMIN_URL  # noqa: E402
from tests.support.schema import (  # noqa: E402
    migrate_template,
    postgres_schema_sql,
    upgrade_from_template,
    upgrade_postgres_from_sql,
)
from tests.support.workers import WORKER_NAME, worker_redis_url  # noqa: E402

# Each pytest-xdist worker has a Redis database of its own (tests/support/workers.py).
REDIS_URL = worker_redis_url(
    os.environ.get("DIGEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
)
IN_CI = bool(os.environ.get("CI"))
# Matching by meaning embeds every paper once (about 20 papers/s on two cores): the suite runs
# on words alone, here and in every `digest` subprocess it starts, and tests/test_semantic.py
# turns the model on where it is what is tested.
os.environ["DIGEST_SEMANTIC"] = "off"


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_service(name: str, host: str, port: int) -> None:
    """Skip with a one-line reason on a laptop without the service; CI must never skip."""
    if _port_open(host, port):
        return
    if IN_CI:
        pytest.fail(f"{name} is not running on {host}:{port}; .ci/run should have started it")
    pytest.skip(f"{name} not running on {host}:{port}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (each xdist worker has its own,
    named after it), dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"digest_test_{WORKER_NAME}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from core.db import get_engine

    get_engine.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright; skipped on a laptop without it."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; CI must run the browser tests")
        pytest.skip(f"{CHROMIUM} not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def settings(var_dir: Path) -> Settings:
    """Settings for the embedded default, everything under a temporary var/."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=var_dir,
        secret_keys=["test-secret-newest", "test-secret-older"],
        public_url="http://digest.test",
        postal_address="Paper Digest, 12 Test Lane, 75000 Paris",
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    """The same test on a SQLite file and on a fresh schema in the local PostgreSQL."""
    if request.param == "sqlite":
        yield settings
        return
    base_url = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = f"{base_url}?options=-csearch_path%3D{schema}"
    yield settings.model_copy(update={"database_url": url})
    from core.db import get_engine

    get_engine(url).dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session (per xdist worker), for copying."""
    return migrate_template(tmp_path_factory.mktemp("schema") / "var")


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> str | None:
    """A schema migrated to head once per session (per xdist worker), as SQL to replay."""
    return postgres_schema_sql(postgres_url)


@pytest.fixture
def migrated(request: pytest.FixtureRequest, db_settings: Settings) -> Settings:
    """`db_settings` with the schema migrated to head (the way every command starts): a copy
    of the session's migrated SQLite file, or of its migrated PostgreSQL schema
    (tests/support/schema.py)."""
    if is_postgres_url(db_settings.sqlalchemy_url):
        upgrade_postgres_from_sql(db_settings, request.getfixturevalue("postgres_template"))
    else:
        upgrade_from_template(db_settings, request.getfixturevalue("sqlite_template"))
    return db_settings


from tests.support.fake_sendgrid import fake_sendgrid  # noqa: E402, F401  (fixture for every test)
from tests.support.web_app import both, web  # noqa: E402, F401  (fixtures for the web tests)
