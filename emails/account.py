"""Account emails (confirm, already subscribed, confirm a new address, data export, a fresh
link to the settings page).

One layout for all of them: a heading, a few short paragraphs, at most one button, optional
details and a preformatted block. Like every email they carry both parts, List-Unsubscribe
with RFC 8058 one-click, and the sender's postal address. Wording lives here; the decision of
when to send one does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from emails.links import unsubscribe_headers
from emails.message import Message
from emails.render import clean, render_template

# Gmail clips HTML past ~102 KB; a bigger export is shown in full in the plain-text part only.
MAX_HTML_BLOCK_CHARS = 60_000


@dataclass(frozen=True)
class AccountLinks:
    """Where the footer points; manage_url is empty when the recipient may not manage yet."""

    unsubscribe_url: str
    one_click_url: str
    manage_url: str = ""
    unsubscribe_label: str = "Unsubscribe"


@dataclass(frozen=True)
class AccountEmail:
    """The words of one account email, as plain (untrusted-safe) strings."""

    kind: str
    subject: str
    preheader: str
    heading: str
    paragraphs: tuple[str, ...]
    button_label: str = ""
    button_url: str = ""
    details: tuple[tuple[str, str], ...] = ()
    after: tuple[str, ...] = ()  # paragraphs under the button
    block: str = ""  # preformatted text (the data export)
    block_note: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def _link(url: str) -> str:
    """Our links go into headers and hrefs: absolute http(s), nothing that breaks out."""
    if urlsplit(url).scheme not in ("http", "https") or re.search(r"[\s<>\"',]", url):
        raise ValueError(f"not a safe absolute http(s) URL: {url[:80]!r}")
    return url


def _keep_indentation(text: str) -> str:
    """The HTML minifier strips spaces after line breaks; non-breaking ones survive it."""
    return "\n".join(
        re.sub(r"^ +", lambda m: "\u00a0" * len(m.group()), line) for line in text.splitlines()
    )


def confirm_signup(
    *, confirm_url: str, keywords: Sequence[str], frequency: str, service_name: str = "Paper Digest"
) -> AccountEmail:
    """Double opt-in: nothing is sent until the owner of the address presses the button."""
    return AccountEmail(
        kind="confirm",
        subject=f"Confirm your {service_name} subscription",
        preheader="One click and your first digest is on its way.",
        heading="Please confirm your subscription",
        paragraphs=(
            f"Someone, hopefully you, asked to receive {service_name}: new arXiv papers that "
            "match a list of keywords, by email.",
            "Press the button to confirm. Until you do, we send nothing else.",
        ),
        button_label="Yes, subscribe me",
        button_url=_link(confirm_url),
        details=(
            ("Keywords", ", ".join(clean(k) for k in keywords)),
            ("How often", clean(frequency)),
        ),
        after=(
            "The link works for 7 days. If you didn't ask for this, ignore this email: "
            "without a confirmation we delete the request after a week.",
        ),
    )


def already_subscribed(*, manage_url: str, service_name: str = "Paper Digest",
                       use_url: str = "", keywords: Sequence[str] = (),
                       frequency: str = "") -> AccountEmail:
    """A signup for an address already on the list: the owner learns it, nobody else does.

    When the signup asked for other keywords or delivery (`use_url` given), the email offers
    them as a button; nothing changes unless the owner presses it.
    """
    if use_url:
        return AccountEmail(
            kind="already",
            subject=f"Use your new keywords for {service_name}?",
            preheader="You're already subscribed. One click switches to the new keywords.",
            heading="Use these new keywords?",
            paragraphs=(
                f"Someone, hopefully you, just signed this address up for {service_name} "
                "again, with other choices. You're already subscribed, so nothing changed "
                "yet: your keywords and schedule stay as they were.",
                "Press the button to use the new ones instead.",
            ),
            button_label="Use these new keywords",
            button_url=_link(use_url),
            details=(
                ("New keywords", ", ".join(clean(k) for k in keywords) or "Trending papers"),
                ("How often", clean(frequency)),
            ),
            after=("The button works for 7 days. If that wasn't you, ignore this email; to "
                   "change anything else, or to leave, use the links below.",),
        )
    return AccountEmail(
        kind="already",
        subject=f"You're already subscribed to {service_name}",
        preheader="Nothing changed; here is your link to change your keywords.",
        heading="You're already subscribed",
        paragraphs=(
            f"Someone, hopefully you, just signed this address up for {service_name} again. "
            "It's already on the list, so nothing changed: your keywords and schedule stay "
            "as they were.",
            "To change them, or to leave, use your personal settings page.",
        ),
        button_label="Open my settings",
        button_url=_link(manage_url),
        after=("If that wasn't you, you can ignore this email.",),
    )


def confirm_new_address(*, confirm_url: str, service_name: str = "Paper Digest") -> AccountEmail:
    """Sent to the new address: the change happens only when its owner agrees."""
    return AccountEmail(
        kind="confirm-email",
        subject=f"Confirm your new address for {service_name}",
        preheader="Press the button to move your subscription here.",
        heading="Confirm your new address",
        paragraphs=(
            f"Someone, hopefully you, asked to receive their {service_name} emails at this "
            "address from now on.",
            "Press the button to confirm. Until you do, nothing is sent here.",
        ),
        button_label="Use this address",
        button_url=_link(confirm_url),
        after=(
            "The link works for 7 days. If you didn't ask for this, ignore this email and "
            "nothing will change.",
        ),
    )


def fresh_settings_link(*, manage_url: str, signed_out: bool, link_days: int,
                        service_name: str = "Paper Digest") -> AccountEmail:
    """The one link to the settings page that works: after "sign out other links", or asked
    for from an expired link. It goes to the address on file only."""
    if signed_out:
        heading = "Your other links are signed out"
        paragraphs = (
            f"Someone, hopefully you, pressed \"Sign out other links\" on your {service_name} "
            "settings page. The settings links in your earlier emails no longer work, and any "
            "pending request to move your subscription to another address was cancelled.",
            "Use the button below to open your settings from now on.",
        )
        after = ("If that wasn't you, open your settings and check them: whoever pressed it "
                 "was signed out too, and only this email opens your settings now.",)
    else:
        heading = "Here is a fresh link to your settings"
        paragraphs = (
            f"Someone, hopefully you, opened an expired link to your {service_name} settings "
            "and asked for a new one.",
            f"Links to your settings work for {link_days} days after their email is sent, and "
            "stop when you press \"Sign out other links\" on the settings page.",
        )
        after = ("If you didn't ask for this, you can ignore this email: the link was sent "
                 "to you and nobody else.",)
    return AccountEmail(
        kind="signed-out" if signed_out else "fresh-link",
        subject=f"Your link to your {service_name} settings",
        preheader="The link to your settings that works.",
        heading=heading,
        paragraphs=paragraphs,
        button_label="Open my settings",
        button_url=_link(manage_url),
        after=(*after, "Unsubscribe links in your emails keep working, old ones included."),
    )


def data_export(*, data: dict[str, Any], service_name: str = "Paper Digest") -> AccountEmail:
    """A copy of everything we hold, as JSON, to the address on file."""
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    fits = len(text) <= MAX_HTML_BLOCK_CHARS
    return AccountEmail(
        kind="export",
        subject=f"Your {service_name} data",
        preheader="A copy of everything we store about you.",
        heading="Your data",
        paragraphs=(
            "You asked for a copy of everything we store about you. Here it is, as JSON: your "
            "address and preferences, when you subscribed and confirmed, and which emails and "
            "papers we sent you.",
        ),
        block=text,
        block_note="" if fits else "The full copy is in the plain-text part of this email.",
        after=("Nothing else is kept: no tracking pixels, no click logs.",),
    )


def render_account(
    email: AccountEmail,
    *,
    to: str,
    sender: str,
    links: AccountLinks,
    postal_address: str,
    service_name: str = "Paper Digest",
) -> Message:
    """Render one account email into a ready-to-send Message."""
    for url in (links.unsubscribe_url, links.one_click_url):
        _link(url)
    if links.manage_url:
        _link(links.manage_url)
    html_block = _keep_indentation(email.block) if len(email.block) <= MAX_HTML_BLOCK_CHARS else ""
    context: dict[str, object] = {
        "service_name": clean(service_name),
        "subject": clean(email.subject),
        "preheader": clean(email.preheader),
        "heading": clean(email.heading),
        "paragraphs": [clean(p) for p in email.paragraphs],
        "button_label": clean(email.button_label),
        "button_url": email.button_url,
        "details": [(clean(k), clean(v)) for k, v in email.details],
        "after": [clean(p) for p in email.after],
        "html_block": html_block,
        "text_block": email.block,
        "block_note": clean(email.block_note),
        "manage_url": links.manage_url,
        "unsubscribe_url": links.unsubscribe_url,
        "unsubscribe_label": clean(links.unsubscribe_label),
        "postal_address": clean(postal_address),
    }
    return Message(
        to=clean(to),
        subject=clean(email.subject),
        html=render_template("account.mjml", context),
        text=render_template("account.txt.j2", context),
        sender=clean(sender),
        headers=unsubscribe_headers(links.one_click_url),
        tags={"kind": email.kind, **email.tags},
        categories=("account", email.kind),
    )
