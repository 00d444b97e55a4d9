"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine runs here).

Every service the README promises is there with a health check; every command names a real
module, task queue, CLI command or endpoint; every DIGEST_ variable is a real setting.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
REQUIRED = {"postgres", "redis", "web", "worker", "beat", "flower", "mailpit"}
APP_SERVICES = {"migrate", "web", "worker", "beat", "flower"}  # built from our Dockerfile
DIGEST_VAR = re.compile(r"\bDIGEST_[A-Z0-9_]+")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def option(argv: list[str], *names: str) -> str | None:
    """The value of `-Q x` / `--queues=x` style options."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def test_every_promised_service_is_there_with_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) >= REQUIRED
    for name in REQUIRED:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert not check.get("disable")


def test_app_services_share_one_image_and_settings_from_dotenv(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == "." and service["image"] == "paper-digest:latest"
        env_files = [e["path"] if isinstance(e, dict) else e for e in service["env_file"]]
        assert ".env" in env_files, f"{name} does not read .env"
        env = service["environment"]
        database = urlsplit(env["DIGEST_DATABASE_URL"])
        broker = urlsplit(env["DIGEST_BROKER_URL"])
        assert database.scheme == "postgresql+psycopg" and database.hostname == "postgres"
        assert database.port == 5432 and database.path == "/digest"
        assert broker.scheme == "redis" and broker.hostname == "redis" and broker.port == 6379


def test_services_wait_for_healthy_dependencies_and_the_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert command(services["migrate"]) == ["digest", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_every_digest_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    used = set(DIGEST_VAR.findall(COMPOSE.read_text())) | set(
        DIGEST_VAR.findall(DOCKERFILE.read_text())
    )
    assert "DIGEST_DATABASE_URL" in used and "DIGEST_BROKER_URL" in used
    unknown = {name for name in used if name[7:].lower() not in Settings.model_fields}
    assert not unknown, f"not settings: {sorted(unknown)}"


def celery_commands(
    services: dict[str, dict[str, Any]],
) -> Iterator[tuple[str, list[str]]]:
    for name, service in services.items():
        argv = command(service) if "command" in service else []
        if argv[:1] == ["celery"]:
            yield name, argv
    for name, service in services.items():
        text = healthcheck_text(service) if "healthcheck" in service else ""
        if text.startswith("CMD-SHELL celery") or text.startswith("celery"):
            yield f"{name} healthcheck", shlex.split(text.removeprefix("CMD-SHELL "))


def test_celery_commands_name_the_real_app_and_its_queues(
    services: dict[str, dict[str, Any]],
) -> None:
    from workers.celery_app import QUEUES, ROUTES, app

    importlib.import_module("workers.tasks")  # what `include` loads in a worker
    seen = set()
    for name, argv in celery_commands(services):
        module = option(argv, "-A", "--app")
        assert module == "workers.celery_app", f"{name}: celery app {module!r}"
        loaded = importlib.import_module(module)
        assert loaded.app is app
        seen.add(argv[3] if len(argv) > 3 else "")
    assert {"worker", "beat", "flower", "inspect"} <= seen

    worker = command(services["worker"])
    assert worker[3] == "worker"
    assert set((option(worker, "-Q", "--queues") or "").split(",")) == set(QUEUES)
    for task_name, queue in ROUTES.items():
        assert task_name in app.tasks, f"route for unknown task {task_name}"
        assert app.conf.task_routes[task_name] == {"queue": queue}
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in ROUTES, f"beat schedules an unrouted task {entry['task']}"
    assert command(services["beat"])[3] == "beat"


def test_celery_health_checks_ping_their_own_node(services: dict[str, dict[str, Any]]) -> None:
    worker_check = healthcheck_text(services["worker"])
    beat_check = healthcheck_text(services["beat"])
    # $$ is compose's escape: the container's shell expands $HOSTNAME, Celery's default node.
    assert "inspect ping -d celery@$$HOSTNAME" in worker_check
    assert "inspect ping -d celerybeat@$$HOSTNAME" in beat_check
    assert "--enable-remote-control" in command(services["beat"])  # else beat answers nothing


def test_web_health_check_hits_a_real_endpoint(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    from subscribers.web.app import create_app

    paths = {getattr(route, "path", "") for route in create_app(settings).routes}
    check = healthcheck_text(services["web"])
    port = option(command(services["web"]), "--port")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)'", check)
    assert url is not None and url.group(1) == port and url.group(2) in paths
    assert f"{port}:{port}" in services["web"]["ports"]


def test_web_command_is_a_real_cli_command(services: dict[str, dict[str, Any]]) -> None:
    import typer.main

    from workers.cli import app as cli

    argv = command(services["web"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[argv[0]] == "workers.cli:app"
    group = typer.main.get_command(cli)
    serve = group.commands[argv[1]]  # type: ignore[attr-defined]
    options = {opt for param in serve.params for opt in param.opts}
    assert {arg for arg in argv[2:] if arg.startswith("--")} <= options


def test_dockerfile_installs_the_package_on_python_311_slim() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert lines[[ln.startswith("FROM") for ln in lines].index(True)] == "FROM python:3.11-slim"
    assert any(ln.startswith("RUN pip install .") for ln in lines)
    copied = {ln.split()[1] for ln in lines if ln.startswith("COPY")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in packages["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, f"Dockerfile does not copy {package}"


def test_a_non_editable_install_ships_every_data_file() -> None:
    """`pip install .` (the image) keeps only files matching package-data: templates, static."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = tool["package-data"]["*"]
    missing = [
        str(path.relative_to(ROOT))
        for package in ("core", "digest", "emails", "subscribers", "workers")
        for path in (ROOT / package).rglob("*")
        if path.is_file()
        and path.suffix not in {".py", ".pyc"}
        and "__pycache__" not in path.parts
        and not any(fnmatch(path.name, pattern) for pattern in patterns)
    ]
    assert not missing, f"left out of the image: {missing}"
