"""A real uvicorn serving the app on a free local port, for the browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from core.settings import Settings
from subscribers.web.app import create_app
from tests.support.daily_data import POSTAL
from workers.migrate import upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def live_settings(var_dir: Path, port: int, **overrides: Any) -> Settings:
    """Settings for the app served on 127.0.0.1:`port` (test signing key, postal address),
    with the schema migrated; `overrides` replace or add settings."""
    values: dict[str, Any] = {"var_dir": var_dir, "secret_keys": ["browser-test-key"],
                              "public_url": f"http://127.0.0.1:{port}", "postal_address": POSTAL}
    settings = Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]
    upgrade(settings)
    return settings


@contextmanager
def serving(settings: Settings, port: int) -> Iterator[None]:
    """`create_app(settings)` on 127.0.0.1:port until the block ends."""
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
