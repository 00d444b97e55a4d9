"""Per-IP rate limits: an IPv6 /64 is one client, a configured Redis gives every web process
one budget, a Redis that stops answering costs no request, and the proxy setting decides
whose address a request counts for.

Real parts: requests through the ASGI app and through real `digest serve` processes, the
local Redis (db 15) and a private redis-server the test kills.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import Settings
from subscribers.web import security
from subscribers.web.app import create_app
from subscribers.web.pages import WebLimits
from subscribers.web.security import REDIS_KEY_PREFIX, Limit, network_of
from tests.conftest import IN_CI
from tests.support.admin_helpers import admin_settings
from tests.support.celery_stack import RedisServer
from tests.support.cli import DIGEST, run
from tests.support.live_server import free_port
from tests.support.schema import upgrade_from_template
from tests.support.subprocess_env import without_digest_settings
from tests.support.web_app import csrf_of, signup_form

SECRET = "rate-limit-test-secret"


def random_64() -> str:
    """A /64 of the documentation prefix no other run uses (keys in a shared Redis)."""
    return f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"


def signups(client: TestClient | httpx.Client, count: int, *,
            headers: dict[str, str] | None = None) -> list[int]:
    """POST the signup form `count` times; the statuses."""
    token = csrf_of(client.get("/", headers=headers).text)
    return [client.post("/subscribe", headers=headers, follow_redirects=False,
                        data=signup_form(token, email=f"r{secrets.token_hex(4)}@example.org")
                        ).status_code for _ in range(count)]


def asgi_client(app: FastAPI, host: str) -> TestClient:
    """A client whose requests reach the app from `host` (the ASGI scope's client)."""
    return TestClient(app, base_url="http://testserver", client=(host, 40000))


@pytest.fixture
def web(settings: Settings, sqlite_template: Path) -> Settings:
    upgrade_from_template(settings, sqlite_template)
    return settings


# --- keys -------------------------------------------------------------------------------------


def test_an_ipv6_address_counts_for_its_64_and_ipv4_for_itself() -> None:
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:2::9") == network_of("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert network_of("2001:db8:1:3::9") != network_of("2001:db8:1:2::9")
    assert network_of("fe80::1%eth0") == "fe80::/64"
    assert network_of("::ffff:192.0.2.7") == "192.0.2.7"  # IPv4 through a dual-stack socket
    assert network_of("192.0.2.7") == "192.0.2.7"
    assert network_of("testclient") == "testclient"


def test_where_the_limits_count(settings: Settings) -> None:
    assert settings.rate_limit_redis_url == ""  # the embedded default: memory
    on_redis = settings.model_copy(update={"broker_url": "redis://cache:6379/0"})
    assert on_redis.rate_limit_redis_url == "redis://cache:6379/0"
    own = on_redis.model_copy(update={"rate_limit_storage_url": "redis://limits:6379/2"})
    assert own.rate_limit_redis_url == "redis://limits:6379/2"
    memory = on_redis.model_copy(update={"rate_limit_storage_url": "memory"})
    assert memory.rate_limit_redis_url == ""
    wrong = settings.model_copy(update={"rate_limit_storage_url": "memcached://x:11211"})
    with pytest.raises(ValueError, match="DIGEST_RATE_LIMIT_STORAGE_URL"):
        create_app(wrong)


# --- one /64, one bucket (in memory: no Redis configured) --------------------------------------


def test_ipv6_clients_of_one_64_share_a_bucket_through_the_app(web: Settings) -> None:
    app = create_app(web, limits=WebLimits(signup=Limit(2, 600)))
    net = random_64()
    first, second = asgi_client(app, f"{net}::1"), asgi_client(app, f"{net}:ffff:ffff:ffff:fffe")
    assert signups(first, 1) + signups(second, 1) == [303, 303]
    assert signups(first, 1) + signups(second, 1) == [429, 429]  # one /64, one budget
    assert signups(asgi_client(app, f"{random_64()}::1"), 1) == [303]  # another /64
    # IPv4 unchanged: each address its own bucket, the mapped form the same address.
    assert signups(asgi_client(app, "192.0.2.1"), 2) == [303, 303]
    assert signups(asgi_client(app, "::ffff:192.0.2.1"), 1) == [429]
    assert signups(asgi_client(app, "192.0.2.2"), 1) == [303]
    assert app.state.web.signup_window.shared is None  # nothing configured: in memory


# --- one budget for every process, through Redis ----------------------------------------------


@contextmanager
def digest_servers(var_dir: Path, count: int, *, env: dict[str, str],
                   args: list[list[str]] | None = None) -> Iterator[list[int]]:
    """`count` real `digest serve --web-only` processes on one database; their ports."""
    environment = {k: v for k, v in without_digest_settings().items()
                   if k != "FORWARDED_ALLOW_IPS"}
    environment |= {"DIGEST_VAR_DIR": str(var_dir), "DIGEST_PUBLIC_URL": "http://digest.test",
                    "DIGEST_SECRET_KEYS": SECRET, **env}
    migrated = run(var_dir, "db", "upgrade", env={"DIGEST_SECRET_KEYS": SECRET})
    assert migrated.returncode == 0, migrated.stderr  # once, before the servers start
    ports = [free_port() for _ in range(count)]
    with ExitStack() as stack:
        servers = []
        for index, port in enumerate(ports):
            log = stack.enter_context((var_dir.parent / f"serve-{port}.log").open("wb"))
            server = subprocess.Popen(
                [DIGEST, "serve", "--web-only", "--port", str(port),
                 *(args[index] if args else [])],
                env=environment, cwd=var_dir.parent, stdout=log, stderr=subprocess.STDOUT)
            stack.callback(server.wait, 30)
            stack.callback(server.terminate)
            servers.append(server)
        deadline = time.monotonic() + 90
        for server, port in zip(servers, ports, strict=True):
            while True:
                assert server.poll() is None, (var_dir.parent / f"serve-{port}.log").read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "digest serve did not start"
                time.sleep(0.2)
        yield ports


@pytest.mark.slow
def test_two_web_processes_share_one_budget_in_redis(var_dir: Path, redis_url: str) -> None:
    """The broker names Redis, so the limits count there: 3 signups per client in all, not
    3 per process."""
    env = {"DIGEST_BROKER_URL": redis_url, "DIGEST_SIGNUP_LIMIT_PER_IP": "3"}
    with digest_servers(var_dir, 2, env=env) as ports:
        # A client behind the local proxy (127.0.0.1 is trusted by default) from a fresh /64.
        net = random_64()
        headers = {"X-Forwarded-For": f"{net}::42"}
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
                   for port in ports]
        statuses = []
        for turn in range(6):
            statuses += signups(clients[turn % 2], 1, headers=headers)
        # Another address of the same /64 is the same client, on either process.
        neighbour = {"X-Forwarded-For": headers["X-Forwarded-For"].replace("::42", "::43")}
        statuses += signups(clients[1], 1, headers=neighbour)
        fresh = signups(clients[0], 1, headers={"X-Forwarded-For": f"{random_64()}::1"})
    assert statuses == [303, 303, 303, 429, 429, 429, 429]
    assert fresh == [303]
    bucket = network_of(f"{net}::42")
    [key] = redis.Redis.from_url(redis_url).keys(f"{REDIS_KEY_PREFIX}:*signup:{bucket}/*")
    assert redis.Redis.from_url(redis_url).llen(key) == 3  # the counters live in Redis


def test_admin_login_attempts_share_one_budget_in_redis(web: Settings, redis_url: str) -> None:
    settings = admin_settings(web, rate_limit_storage_url=redis_url)
    host = f"{random_64()}::7"
    clients = [asgi_client(create_app(settings), host) for _ in range(2)]
    token = csrf_of(clients[0].get("/admin/login").text)
    codes = [clients[n % 2].post("/admin/login", follow_redirects=False,
                                 data={"csrf": token, "password": f"guess {n}"}).status_code
             for n in range(11)]
    assert codes == [400] * 10 + [429]  # 10 per 10 minutes in all, not 10 per app


# --- Redis stops answering -------------------------------------------------------------------


def test_a_redis_that_stops_answering_falls_back_to_memory_with_one_log_line(
        web: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must run the Redis tests")
        pytest.skip("redis-server not installed")
    monkeypatch.setattr(security, "REDIS_RETRY_SECONDS", 0.5)
    private = RedisServer(port=free_port(), workdir=tmp_path).start()
    try:
        settings = web.model_copy(update={"rate_limit_storage_url": private.url})
        client = asgi_client(create_app(settings, limits=WebLimits(signup=Limit(3, 600))),
                             "192.0.2.55")
        store = redis.Redis.from_url(private.url)
        assert signups(client, 2) == [303, 303]
        [key] = store.keys(f"{REDIS_KEY_PREFIX}:*signup:192.0.2.55*")
        assert store.llen(key) == 2

        private.kill()
        caplog.set_level(logging.INFO, logger="digest.ratelimits")
        # No 500: the limit still holds, counted in this process's memory from here on.
        assert signups(client, 5) == [303, 303, 303, 429, 429]
        time.sleep(0.6)  # Redis is asked again, and still does not answer
        assert signups(client, 2) == [429, 429]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert f"127.0.0.1:{private.port}" in warnings[0].getMessage()
        assert "counting in this process's memory" in warnings[0].getMessage()

        private.start()  # empty: it keeps nothing on disk
        time.sleep(0.6)
        assert signups(client, 3) == [303, 303, 303]  # counted in Redis again
        assert signups(client, 1) == [429]
        assert store.llen(key) == 3
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        private.kill()


# --- the proxy setting ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_proxy_setting_decides_whose_bucket_a_request_counts_in(var_dir: Path) -> None:
    """A proxy at 127.0.0.2 (not this host's 127.0.0.1): by default its X-Forwarded-For is not
    believed and every reader shares its bucket; named in --forwarded-allow-ips, each reader
    (each IPv6 /64) has their own."""
    env = {"DIGEST_SIGNUP_LIMIT_PER_IP": "2"}
    with digest_servers(var_dir, 2, env=env,
                        args=[[], ["--forwarded-allow-ips", "127.0.0.2"]]) as ports:
        proxy = httpx.HTTPTransport(local_address="127.0.0.2")
        default, trusting = (httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                          transport=proxy) for port in ports)

        def via(client: httpx.Client, reader: str, count: int = 1) -> list[int]:
            return signups(client, count, headers={"X-Forwarded-For": reader})

        assert via(default, "198.51.100.1", 2) == [303, 303]
        assert via(default, "198.51.100.2") == [429]  # another reader, the proxy's bucket

        assert via(trusting, "198.51.100.1", 2) == [303, 303]
        assert via(trusting, "198.51.100.1") == [429]
        assert via(trusting, "198.51.100.2") == [303]  # another reader, their own bucket
        net = random_64()
        assert via(trusting, f"{net}::1") + via(trusting, f"{net}:ffff::2") == [303, 303]
        assert via(trusting, f"{net}:1234::3") == [429]  # same /64
        assert via(trusting, f"{random_64()}::1") == [303]  # another /64


@pytest.mark.slow
def test_serve_help_documents_the_proxy_setting() -> None:
    result = subprocess.run([DIGEST, "serve", "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"}, timeout=60)
    assert "--forwarded-allow-ips" in result.stdout
    assert "FORWARDED_ALLOW_IPS" in result.stdout
