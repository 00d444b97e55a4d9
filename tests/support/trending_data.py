"""A day of the trending-papers API: entries shaped like the real API's answer, for the
trending tests and the `digest trending` command's.
"""

from __future__ import annotations

from datetime import date
from typing import Any

DAY = date(2026, 1, 27)


def item(arxiv_id: str, title: str, upvotes: int, **extra: Any) -> dict[str, Any]:
    """One entry shaped like the real API's (fields we do not read included)."""
    return {
        "paper": {
            "id": arxiv_id,
            "authors": [
                {"_id": "6790a1", "name": "Ada Lovelace", "hidden": False},
                {"_id": "6790a2", "name": "Alan Turing", "hidden": False},
            ],
            "publishedAt": "2026-01-26T18:59:41.000Z",
            "title": title,
            "summary": f"We study {title.lower()}.\nResults are strong.",
            "upvotes": upvotes,
            "discussionId": "6790a3",
            "ai_keywords": ["speech"],
        },
        "publishedAt": "2026-01-27T02:11:05.123Z",
        "title": title,
        "thumbnail": "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/x.png",
        "numComments": 2,
        "submittedBy": {"_id": "1", "name": "someone", "fullname": "Some One"},
        **extra,
    }


DAILY = [
    item("2601.20481", "Streaming Speech Synthesis with Flow Matching", 87),
    item("2601.14417", "A Neural Audio Codec at 1 kbps", 41),
    item("2601.99999", "Trending Only: $\\mathcal{O}(n)$ Attention &amp; Friends", 12),
]
