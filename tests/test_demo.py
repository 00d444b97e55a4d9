"""`digest demo` from a fresh directory: real digests in the outbox, and a repeat sends nothing."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from tests.test_cli import run


def test_demo_mails_the_sample_subscribers_once(var_dir: Path) -> None:
    first = run(var_dir, "demo")
    assert first.returncode == 0, first.stderr
    outbox = var_dir / "outbox"
    messages = sorted(outbox.glob("*.eml"))
    assert len(messages) == 3, first.stdout
    assert (outbox / "index.html").exists()
    for path in messages:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        parts = {part.get_content_type(): part for part in message.iter_parts()}
        assert set(parts) == {"text/plain", "text/html"}
        assert message["List-Unsubscribe"].startswith("<http://digest.test/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = parts["text/html"].get_content()
        assert "arxiv.org/abs/" in html and "/manage/" in html
        assert len(html.encode()) < 100_000
        assert "/manage/" in parts["text/plain"].get_content()
    assert "3 digests planned" in first.stdout.replace("\n", " ")

    second = run(var_dir, "demo")
    assert second.returncode == 0, second.stderr
    assert len(list(outbox.glob("*.eml"))) == 3
    assert "0 digests planned" in second.stdout and "0 sent" in second.stdout
