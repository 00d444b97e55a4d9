"""The monthly clippings issue as an email (and the view the archive page shares).

One template per issue: the per-recipient links are the placeholders of `emails.links`,
filled per recipient by the provider in a batch or by `emails.links.fill` one at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emails.links import PLACEHOLDERS, RecipientLinks, personalise_links, unsubscribe_headers
from emails.message import Message
from emails.render import clean, render_template, safe_url, shorten

# Caps keep a full issue well under Gmail's ~102 KB clipping point (see tests).
TITLE_CHARS = 300
SUMMARY_CHARS = 1500
WRITE_UP_CHARS = 4000
NOTE_CHARS = 400
MAX_TAGS = 8


@dataclass(frozen=True)
class LinkView:
    label: str
    url: str


@dataclass(frozen=True)
class ItemView:
    """A highlight, a paper or an also-worth-a-look link, cleaned and cut for display."""

    title: str
    url: str
    tags: tuple[str, ...]
    paragraphs: tuple[str, ...]
    explainer: tuple[str, ...]
    links: tuple[LinkView, ...]


@dataclass(frozen=True)
class GroupView:
    name: str
    items: tuple[ItemView, ...]


@dataclass(frozen=True)
class IssueView:
    title: str
    intro: tuple[str, ...]
    highlights: tuple[ItemView, ...]
    sections: tuple[GroupView, ...]
    also: tuple[GroupView, ...]

    @property
    def count(self) -> int:
        groups = self.sections + self.also
        return len(self.highlights) + sum(len(group.items) for group in groups)


def paragraphs(text: str | None, limit: int) -> tuple[str, ...]:
    """Untrusted text split at blank lines, each paragraph cleaned; `limit` chars in all."""
    out: list[str] = []
    budget = limit
    for block in (text or "").replace("\r\n", "\n").split("\n\n"):
        line = clean(block)
        if not line or budget <= 0:
            continue
        line = shorten(line, budget)
        budget -= len(line)
        out.append(line)
    return tuple(out)


def _item(raw: Mapping[str, Any], body_key: str, limit: int) -> ItemView:
    url = safe_url(str(raw.get("url") or ""), "")
    links = tuple(
        LinkView(clean(str(link.get("label") or "Link"))[:20], safe_url(str(link["url"]), ""))
        for link in raw.get("links") or []
        if isinstance(link, Mapping) and safe_url(str(link.get("url") or ""), "")
    )
    tags = tuple(tag for tag in (clean(str(t))[:40] for t in raw.get("tags") or []) if tag)
    return ItemView(
        title=shorten(clean(str(raw.get("title") or "")), TITLE_CHARS) or url or "Untitled",
        url=url,
        tags=tags[:MAX_TAGS],
        paragraphs=paragraphs(str(raw.get(body_key) or ""), limit),
        explainer=paragraphs(str(raw.get("explainer") or ""), SUMMARY_CHARS),
        links=links,
    )


def issue_view(content: Mapping[str, Any]) -> IssueView:
    """The frozen content of an issue, every string cleaned, every URL checked."""
    return IssueView(
        title=clean(str(content.get("title") or "")) or "Clippings",
        intro=paragraphs(str(content.get("intro") or ""), WRITE_UP_CHARS),
        highlights=tuple(
            _item(h, "write_up", WRITE_UP_CHARS) for h in content.get("highlights") or []
        ),
        sections=tuple(
            GroupView(
                clean(str(s.get("name") or "")) or "Other",
                tuple(_item(p, "summary", SUMMARY_CHARS) for p in s.get("papers") or []),
            )
            for s in content.get("sections") or []
        ),
        also=tuple(
            GroupView(
                clean(str(g.get("topic") or "")) or "More links",
                # Issues frozen before notes became private keep their text under "note".
                tuple(_item(link, "summary" if "summary" in link else "note", NOTE_CHARS)
                      for link in g.get("links") or []),
            )
            for g in content.get("also") or []
        ),
    )


def monthly_context(
    view: IssueView,
    *,
    manage_url: str,
    unsubscribe_url: str,
    postal_address: str,
    archive_url: str,
) -> dict[str, object]:
    """Everything monthly.mjml and monthly.txt.j2 need."""
    first = view.highlights[0].title if view.highlights else (view.intro or ("",))[0]
    return {
        "subject": view.title,
        "preheader": shorten(f"{first} · and {view.count - 1} more", 140) if first else "",
        "issue": view,
        "archive_url": safe_url(archive_url, ""),
        "manage_url": manage_url,
        "unsubscribe_url": unsubscribe_url,
        "postal_address": clean(postal_address),
        "keywords": "",  # the shared footer's "because you subscribed with keywords" line
    }


def monthly_template(
    content: Mapping[str, Any], *, sender: str, postal_address: str, archive_url: str
) -> Message:
    """The issue rendered once for everyone, per-recipient links left as placeholders."""
    view = issue_view(content)
    if view.count == 0:
        raise ValueError("an empty issue is never sent")
    context = monthly_context(
        view,
        manage_url=PLACEHOLDERS.manage_url,
        unsubscribe_url=PLACEHOLDERS.unsubscribe_url,
        postal_address=postal_address,
        archive_url=archive_url,
    )
    month = clean(str(content.get("month") or ""))
    return Message(
        to="",
        subject=view.title,
        html=render_template("monthly.mjml", context),
        text=render_template("monthly.txt.j2", context),
        sender=clean(sender),
        headers=unsubscribe_headers(PLACEHOLDERS.one_click_url),
        tags={"kind": "monthly", "month": month},
        categories=("monthly",),
    )


def render_monthly(
    content: Mapping[str, Any],
    *,
    to: str,
    sender: str,
    links: RecipientLinks,
    postal_address: str,
    archive_url: str,
) -> Message:
    """One subscriber's copy of the issue, ready to send."""
    template = monthly_template(
        content, sender=sender, postal_address=postal_address, archive_url=archive_url
    )
    return personalise_links(template, to=clean(to), links=links)
