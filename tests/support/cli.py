"""The `digest` command as a user runs it: the installed console script in a process of its
own, with a fresh var/ directory and none of this shell's DIGEST_ settings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.subprocess_env import without_digest_settings

DIGEST = str(Path(sys.executable).parent / "digest")


def run(
    var_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`digest *args` in a process, var/ at `var_dir`, its output captured as text."""
    environment = without_digest_settings()
    environment |= {
        "DIGEST_VAR_DIR": str(var_dir),
        "DIGEST_PUBLIC_URL": "http://digest.test",
        **(env or {}),
    }
    return subprocess.run(
        [DIGEST, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=var_dir.parent,
        timeout=300,
    )
