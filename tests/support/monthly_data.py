"""Clips and subscribers for the monthly tests, written straight into a real database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from digest.clippings.models import Clip, ClipKind
from subscribers.models import Status, Subscriber

MONTH = "2026-04"
HOSTILE = '<script>alert("x")</script> & \u202eevil'


def clip(month: str = MONTH, **fields: object) -> Clip:
    """A clip with sensible defaults; `fields` override them."""
    number = fields.pop("n", 1)
    values: dict[str, object] = {
        "month": month,
        "key": f"test:{number}:{fields.get('title', '')}",
        "url": f"https://arxiv.org/abs/2604.{int(str(number)):05d}",
        "kind": ClipKind.paper,
        "title": f"Paper {number}",
        "saved_at": datetime(2026, 4, 1, 12, tzinfo=UTC),
    }
    values.update(fields)
    return Clip(**values)  # type: ignore[arg-type]


def sample_clips(month: str = MONTH) -> list[Clip]:
    """One month: two highlights, papers in three sections (one unknown), links in two topics."""
    return [
        clip(
            month,
            n=1,
            kind=ClipKind.highlight,
            title="VoiceOne: zero-shot TTS",
            summary="A write-up of VoiceOne.",
            note="must read",
            explainer="NAR models predict tokens in parallel.",
            suggested_tags=["TTS", "NAR"],
            links={
                "code": "https://github.com/x/voiceone",
                "demo": "https://huggingface.co/spaces/x/v",
            },
        ),
        clip(
            month,
            n=2,
            kind=ClipKind.highlight,
            title="Codec Two",
            summary="Second highlight.",
            tags=["Discrete Tokens"],
            suggested_tags=["ignored"],
            position=-1,
        ),
        clip(
            month,
            n=3,
            title="LLM scaling laws",
            summary="A paper about scaling.",
            suggested_section="LLM & Training",
        ),
        clip(
            month,
            n=4,
            title="Streaming ASR",
            summary="Speech paper one.",
            suggested_section="Multimodal",
            section="Speech & Audio",
            links={"project": "https://example.org/p", "code": "https://github.com/a/b"},
        ),
        clip(
            month,
            n=5,
            title="Another speech paper",
            summary="Speech paper two.",
            suggested_section="Speech & Audio",
            position=2,
        ),
        clip(
            month,
            n=6,
            title="Robotics",
            summary="Unconfigured section.",
            suggested_section="Robotics",
        ),
        clip(month, n=7, title="No section", summary="Nothing suggested."),
        clip(
            month,
            n=8,
            kind=ClipKind.link,
            title="KittenTTS",
            url="https://github.com/k/t",
            summary="A tiny TTS model.",
            topic="TTS & Speech",
        ),
        clip(
            month,
            n=9,
            kind=ClipKind.link,
            title="Bit tricks",
            url="https://example.org/bits",
            summary="Engineering.",
            topic="General ML & Engineering",
        ),
        clip(month, n=10, kind=ClipKind.link, title="Untopical", url="https://example.org/u"),
    ]


def add_subscribers(session: Session, count: int, **fields: object) -> list[Subscriber]:
    """`count` subscribers with addresses sub<i>@example.org (prefix via `prefix`)."""
    prefix = str(fields.pop("prefix", "sub"))
    values: dict[str, object] = {"status": Status.active, "keywords": ["speech"], "monthly": True}
    values.update(fields)
    people = [
        Subscriber(email=f"{prefix}{i}@example.org", **values)  # type: ignore[arg-type]
        for i in range(count)
    ]
    session.add_all(people)
    session.flush()
    return people
