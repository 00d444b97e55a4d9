"""A reader's own links in an email: one placeholder scheme, one check, one way to fill them.

An email many readers share (a day's equal digests, a monthly issue) is rendered once with
placeholder links. Each recipient's links then go in as literal replacements: by `fill`, or
by the provider from `substitutions` (SendGrid fills the same literal value into subject,
text and HTML; the transport fills headers). One value serves HTML and text alike only
because every link is checked to read the same escaped and unescaped (`substitutions`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from markupsafe import escape

from emails.message import Message


@dataclass(frozen=True)
class RecipientLinks:
    """Per-recipient URLs; one_click_url is the RFC 8058 POST target (may equal unsubscribe)."""

    manage_url: str
    unsubscribe_url: str
    one_click_url: str
    # {public}/feedback/{one per-subscriber token}; each paper appends /{id}?vote=more|less,
    # so paper blocks stay the same for everyone. Empty: no feedback links.
    feedback_url: str = ""


# Random per process, so no paper title, keyword or editor's text can contain one: whatever
# matches is a placeholder this process wrote.
_TOKEN = secrets.token_hex(8)
PLACEHOLDERS = RecipientLinks(
    manage_url=f"https://placeholder.invalid/manage-{_TOKEN}",
    unsubscribe_url=f"https://placeholder.invalid/unsubscribe-{_TOKEN}",
    one_click_url=f"https://placeholder.invalid/one-click-{_TOKEN}",
    feedback_url=f"https://placeholder.invalid/feedback-{_TOKEN}",
)
PLACEHOLDERS_NO_FEEDBACK = replace(PLACEHOLDERS, feedback_url="")


def check_link(url: str) -> str:
    """Our own links go into headers too: refuse anything that could break out of one."""
    if urlsplit(url).scheme not in ("http", "https") or re.search(r"[\s<>\"',]", url):
        raise ValueError(f"not a safe absolute http(s) URL: {url[:80]!r}")
    return url


def unsubscribe_headers(one_click_url: str) -> dict[str, str]:
    """The RFC 8058 one-click pair every email carries."""
    return {
        "List-Unsubscribe": f"<{one_click_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def substitutions(links: RecipientLinks, *, checked: bool = False) -> dict[str, str]:
    """Placeholder -> this recipient's link, each checked (raises ValueError when unsafe),
    unless `checked` says the caller made the same check once for links of one shape.

    A link that HTML escaping would change cannot serve both parts with one value, so it is
    refused here rather than sent broken; ours (public URL, path, URL-safe token) never are.
    """
    pairs = {
        PLACEHOLDERS.manage_url: links.manage_url,
        PLACEHOLDERS.unsubscribe_url: links.unsubscribe_url,
        PLACEHOLDERS.one_click_url: links.one_click_url,
    }
    if links.feedback_url:
        pairs[PLACEHOLDERS.feedback_url] = links.feedback_url
    if checked:
        return pairs
    for url in pairs.values():
        if str(escape(check_link(url))) != url:
            raise ValueError(f"a link that HTML would escape cannot be substituted: {url[:80]!r}")
    return pairs


def fill(
    template: Message,
    *,
    to: str,
    values: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
) -> Message:
    """One recipient's copy of a shared render, filled the way SendGrid fills it (literally)."""

    def filled(text: str) -> str:
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        return text

    return replace(
        template,
        to=to,
        subject=filled(template.subject),
        html=filled(template.html),
        text=filled(template.text),
        headers={name: filled(value) for name, value in template.headers.items()},
        tags={**template.tags, **(tags or {})},
    )


def personalise_links(template: Message, *, to: str, links: RecipientLinks) -> Message:
    """This recipient's copy of a shared render, made by us: the links HTML-escaped in the
    HTML part as a fresh render would have written them, as they are everywhere else."""
    pairs = [
        (PLACEHOLDERS.manage_url, check_link(links.manage_url)),
        (PLACEHOLDERS.unsubscribe_url, check_link(links.unsubscribe_url)),
        (PLACEHOLDERS.one_click_url, check_link(links.one_click_url)),
    ]
    if links.feedback_url:
        pairs.append((PLACEHOLDERS.feedback_url, check_link(links.feedback_url)))
    html, text, headers = template.html, template.text, dict(template.headers)
    for placeholder, url in pairs:
        html = html.replace(placeholder, str(escape(url)))
        text = text.replace(placeholder, url)
        headers = {name: value.replace(placeholder, url) for name, value in headers.items()}
    return replace(template, to=to, html=html, text=text, headers=headers)
