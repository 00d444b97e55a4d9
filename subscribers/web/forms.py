"""The HTML forms' fields, and turning what was typed into values or messages to show.

Every field arrives as text with a default, so a missing or odd field becomes a message on
the page rather than a JSON validation error.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from digest.query import QueryError, parse_query, parse_term
from subscribers.models import Frequency, Subscriber, SubscriberUpdate
from subscribers.service import (
    MAX_KEYWORD_LENGTH,
    MAX_KEYWORDS,
    InvalidInput,
    normalize_email,
    parse_keywords,
    validate_timezone,
)

Errors = dict[str, str]


class ProfileFields(BaseModel):
    keywords: str = Field("", max_length=10_000)
    frequency: str = Field("daily", max_length=20)
    monthly: str = Field("", max_length=10)  # "yes" when the box is ticked
    trending: str = Field("", max_length=10)  # "yes": the day's top trending papers only
    timezone: str = Field("UTC", max_length=64)
    send_hour: str = Field("7", max_length=5)
    csrf: str = Field("", max_length=500)
    add: str = Field("", max_length=200)  # a suggestion pressed with JavaScript off


class SignupFields(ProfileFields):
    email: str = Field("", max_length=400)
    website: str = Field("", max_length=400)  # honeypot: people never see it, bots fill it


class OneClickFields(BaseModel):
    """RFC 8058: mail clients POST `List-Unsubscribe=One-Click`; a browser form may too."""

    list_unsubscribe: str = Field("", alias="List-Unsubscribe", max_length=50)


def with_suggestion(keywords: str, add: str) -> str:
    """The keyword text with a pressed suggestion appended (once)."""
    add = " ".join(add.split())
    if not add:
        return keywords
    try:
        present = {k.lower() for k in parse_keywords(keywords)}
    except InvalidInput:
        present = set()
    if add.lower() in present:
        return keywords
    return (keywords.rstrip() + "\n" + add).lstrip()


def profile_values(fields: ProfileFields) -> dict[str, Any]:
    """What to show in the form again, exactly as typed (templates escape it)."""
    return {
        "keywords": with_suggestion(fields.keywords, fields.add),
        "frequency": fields.frequency,
        "monthly": fields.monthly == "yes",
        "timezone": fields.timezone,
        "send_hour": fields.send_hour,
        "trending_only": fields.trending == "yes",
    }


def subscriber_values(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "keywords": "\n".join(subscriber.keywords),
        "frequency": subscriber.frequency.value,
        "monthly": subscriber.monthly,
        "timezone": subscriber.timezone,
        "send_hour": str(subscriber.send_hour),
        "trending_only": subscriber.trending_only,
    }


def default_values() -> dict[str, Any]:
    return {"keywords": "", "frequency": "daily", "monthly": False, "timezone": "UTC",
            "send_hour": "7", "email": "", "trending_only": False}


def well_formed(keyword: str) -> bool:
    """Whether a keyword parses (author: with a name, closed quotes, ...)."""
    try:
        parse_term(keyword)
    except QueryError:
        return False
    return True


def preview_keywords(text: str) -> list[str]:
    """Keywords for a preview: what parses, too-long ones dropped and the list capped."""
    try:
        return parse_keywords(text)
    except InvalidInput:
        parts = [p for p in re.split(r"[,\n\r;]+", text)
                 if 0 < len(" ".join(p.split())) <= MAX_KEYWORD_LENGTH and well_formed(p)]
        return parse_keywords(parts[:MAX_KEYWORDS])


def parse_profile(fields: ProfileFields) -> tuple[SubscriberUpdate | None, Errors]:
    """The profile, or a message per field that needs fixing."""
    errors: Errors = {}
    keywords: list[str] = []
    try:
        keywords = parse_keywords(with_suggestion(fields.keywords, fields.add))
        trending_only = fields.trending == "yes"
        if not keywords and not trending_only:
            errors["keywords"] = "Give at least one keyword, or choose trending papers only."
        elif keywords and not trending_only and not parse_query(keywords).positive:
            errors["keywords"] = "Give at least one keyword that is not a -negative."
    except InvalidInput as error:
        errors["keywords"] = str(error)
    if fields.frequency not in {f.value for f in Frequency}:
        errors["frequency"] = "Choose daily or weekly (or no email, feed only)."
    try:
        validate_timezone(fields.timezone)
    except InvalidInput as error:
        errors["timezone"] = str(error)
    hour = int(fields.send_hour) if fields.send_hour.isdigit() else -1
    if not 0 <= hour <= 23:
        errors["send_hour"] = "Choose an hour from the list."
    if errors:
        return None, errors
    return SubscriberUpdate(keywords=keywords, frequency=Frequency(fields.frequency),
                            monthly=fields.monthly == "yes", timezone=fields.timezone,
                            send_hour=hour, trending_only=fields.trending == "yes"), errors


def parse_email(raw: str, errors: Errors, field: str = "email") -> str:
    """A normalised address, or '' with a message in errors[field]."""
    if not raw.strip():
        errors[field] = "Enter your email address."
        return ""
    try:
        return normalize_email(raw)
    except InvalidInput as error:
        errors[field] = str(error)
        return ""
