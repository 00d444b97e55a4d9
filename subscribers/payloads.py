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

import orjson

from digest.ranking import Match

DIGEST_KINDS = ("daily", "weekly")
MONTHLY_KIND = "monthly"
# A feed-only reader's digest: planned like a daily one (its picks are promised and never
# picked again) and recorded for the personal feed when planned; never mailed.
FEED_KIND = "feed"
PICK_KINDS = (*DIGEST_KINDS, FEED_KIND)  # the rows whose picks the personal feed shows


def _match_json(match: Match) -> dict[str, object]:
    found: dict[str, object] = {
        "arxiv_id": match.arxiv_id,
        "score": round(float(match.score), 4),  # a numpy float would stop orjson
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
class PaperUpdate:
    """News of one saved paper since its reader last heard: a new version (its number and
    the day it was posted) and/or code or project links that were not there before."""

    arxiv_id: str
    version: int = 0  # the new version; 0 when the version did not move
    posted: date | None = None  # the day that version appeared (or ingest first saw it)
    links: tuple[tuple[str, str], ...] = ()  # ("code", url), ("project", url)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"arxiv_id": self.arxiv_id}
        if self.version:
            data["version"] = self.version
        if self.posted:
            data["posted"] = self.posted.isoformat()
        if self.links:
            data["links"] = [list(link) for link in self.links]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaperUpdate:
        posted = data.get("posted")
        return cls(arxiv_id=str(data["arxiv_id"]), version=int(data.get("version") or 0),
                   posted=date.fromisoformat(str(posted)) if posted else None,
                   links=tuple((str(k), str(u)) for k, u in data.get("links", ())))


@dataclass(frozen=True)
class DigestPayload:
    """A daily or weekly digest: the day it is for, its picks, related keywords to suggest
    when the reader's week was thin, and news of the papers the reader saved."""

    day: date
    matches: tuple[Match, ...]
    related: tuple[str, ...] = ()
    updates: tuple[PaperUpdate, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "day": self.day.isoformat(),
            "matches": [_match_json(m) for m in self.matches],
        }
        if self.related:
            data["related"] = list(self.related)
        if self.updates:
            data["updates"] = [u.to_json() for u in self.updates]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DigestPayload:
        return cls(
            day=date.fromisoformat(str(data["day"])),
            matches=tuple(_match_from_json(m) for m in data.get("matches", ())),
            related=tuple(str(k) for k in data.get("related", ())),
            updates=tuple(PaperUpdate.from_json(u) for u in data.get("updates", ())),
        )

    def paper_ids(self) -> set[str]:
        """Every paper the email shows or names (liked papers named in "similar to", saved
        papers with news)."""
        named = {i for m in self.matches for i in (m.arxiv_id, m.similar_to) if i}
        return named | {u.arxiv_id for u in self.updates}

    def share_key(self, keywords: Sequence[str], encoded: str | None = None) -> str:
        """Equal for two rows exactly when their digests render alike: the same keywords (they
        order the sections), the same picks and the same saved-paper news (all in
        `to_json`, whose key order is fixed; pass `encoded`, its JSON text, when it is made
        already). A hint for grouping sends, never content."""
        text = orjson.dumps(self.to_json()).decode() if encoded is None else encoded
        blob = f"{json.dumps(list(keywords))}\n{text}"
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
