"""The "Updates to papers you saved" block of a digest, as the templates show it.

One line per saved paper with news: its title (linked), then what changed in a few words:
"v3 posted 2 Dec", "code released: github.com/org/repo". Every string cleaned and cut here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from digest.papers import Paper
from emails.render import arxiv_page, clean, day_and_month, safe_url, shorten

LINK_PHRASES = {"code": "code released", "project": "project page"}
MAX_SHOWN_URL = 60  # characters of an address shown as its link's text


@dataclass(frozen=True)
class UpdateView:
    """One saved paper's news: `changes` are (what, shown address, address), the addresses
    "" for a change without a link ("v3 posted 2 Dec")."""

    arxiv_id: str
    title: str
    abs_url: str
    changes: tuple[tuple[str, str, str], ...]


def shown_url(url: str) -> str:
    """An address as a reader scans it: no scheme, no www., no trailing slash."""
    bare = url.split("://", 1)[-1].removeprefix("www.").rstrip("/")
    return shorten(bare, MAX_SHOWN_URL)


def update_view(
    paper: Paper, *, version: int, posted: date | None, links: Sequence[tuple[str, str]]
) -> UpdateView | None:
    """The view of one paper's news; None when nothing in it can be shown."""
    changes: list[tuple[str, str, str]] = []
    if version > 1:
        when = f" posted {day_and_month(posted)}" if posted else " posted"
        changes.append((f"v{version}{when}", "", ""))
    for kind, url in links:
        safe = safe_url(url, "")
        if safe and kind in LINK_PHRASES:
            changes.append((LINK_PHRASES[kind], clean(shown_url(safe)), safe))
    if not changes:
        return None
    arxiv_id = clean(paper.arxiv_id)
    return UpdateView(arxiv_id=arxiv_id, title=shorten(clean(paper.title), 160) or arxiv_id,
                      abs_url=safe_url(paper.abs_url, arxiv_page(arxiv_id)),
                      changes=tuple(changes))
