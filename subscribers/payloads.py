"""What a ledger row asks the sender to render, as types: one place reads and writes payloads.

Rows are JSON in the database (`Delivery.payload`); the planners write them through
`to_json` and the sender reads them through `from_json`, so a key is spelled in one place.
Account emails (confirmations, fresh links) keep their small free-form payloads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from digest.ranking import Match

DIGEST_KINDS = ("daily", "weekly")
MONTHLY_KIND = "monthly"


def _match_json(match: Match) -> dict[str, object]:
    found: dict[str, object] = {
        "arxiv_id": match.arxiv_id,
        "score": round(match.score, 4),
        "matched": list(match.matched),
    }
    if match.upvotes:
        found["upvotes"] = match.upvotes
    if match.similar_to:
        found["similar_to"] = match.similar_to
    if match.close_to:
        found["close_to"] = list(match.close_to)
    return found


def _match_from_json(data: Mapping[str, Any]) -> Match:
    return Match(
        str(data["arxiv_id"]),
        float(data["score"]),
        tuple(map(str, data.get("matched", ()))),
        upvotes=int(data.get("upvotes", 0)),
        similar_to=str(data.get("similar_to", "")),
        close_to=tuple(map(str, data.get("close_to", ()))),
    )


@dataclass(frozen=True)
class DigestPayload:
    """A daily or weekly digest: the day it is for, its picks, and related keywords to
    suggest when the reader's week was thin."""

    day: date
    matches: tuple[Match, ...]
    related: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "day": self.day.isoformat(),
            "matches": [_match_json(m) for m in self.matches],
        }
        if self.related:
            data["related"] = list(self.related)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DigestPayload:
        return cls(
            day=date.fromisoformat(str(data["day"])),
            matches=tuple(_match_from_json(m) for m in data.get("matches", ())),
            related=tuple(str(k) for k in data.get("related", ())),
        )

    def paper_ids(self) -> set[str]:
        """Every paper the email shows or names (liked papers named in "similar to")."""
        return {i for m in self.matches for i in (m.arxiv_id, m.similar_to) if i}

    def share_key(self, keywords: Sequence[str]) -> str:
        """Equal for two rows exactly when their digests render alike: the same keywords (they
        order the sections) and the same picks. A hint for grouping sends, never content."""
        blob = json.dumps([list(keywords), self.to_json()], sort_keys=True,
                          separators=(",", ":"))
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class MonthlyPayload:
    """A reader's copy of one monthly issue."""

    issue_id: int
    slug: str

    def to_json(self) -> dict[str, Any]:
        return {"issue_id": self.issue_id, "slug": self.slug}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonthlyPayload:
        return cls(issue_id=int(data.get("issue_id") or 0), slug=str(data.get("slug") or ""))

    def share_key(self) -> str:
        """Every copy of an issue shares one render."""
        return f"issue {self.issue_id}"
