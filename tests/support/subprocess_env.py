"""The environment a test gives the `digest` processes it starts."""

from __future__ import annotations

import os


def without_digest_settings() -> dict[str, str]:
    """This process's environment minus its DIGEST_ settings, so a test names every one it
    wants; DIGEST_SEMANTIC stays (the suite matches by words alone: tests/conftest.py)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("DIGEST_") or k == "DIGEST_SEMANTIC"}
