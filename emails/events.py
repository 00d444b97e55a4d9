"""SendGrid Event Webhook: signature verification, parsing, and what each event means."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DELIVERY_ID_ARG = "delivery_id"  # the custom_args key our transports set per message

_PEM_ARMOR = re.compile(r"-----(BEGIN|END) PUBLIC KEY-----")
# Dropped events whose reason is about the address itself; others (spam content, quota,
# malformed request) say nothing about the subscriber.
_ADDRESS_DROP_REASONS = {
    "bounced address",
    "unsubscribed address",
    "spam reporting address",
    "invalid",
    "invalid address",
}
_SUPPRESS_EVENTS = {"spamreport", "unsubscribe", "group_unsubscribe"}
_STAT_EVENTS = {"processed", "delivered", "deferred", "open", "click"}
# An event's time must be one a real event could have: after 2000, at most a day ahead of
# our clock. Anything else (1e20, -1e12, NaN) is rejected rather than applied.
EARLIEST_EVENT_TIME = 946_684_800  # 2000-01-01T00:00:00Z
CLOCK_SKEW_SECONDS = 24 * 3600
MAX_EVENT_ID = 100  # longer ids are replaced by their digest (the column holds 120)


class Effect(StrEnum):
    """What an event means for the subscriber it concerns."""

    SUPPRESS = "suppress"  # stop mailing them: hard bounce, complaint, unsubscribe
    SOFT_BOUNCE = "soft_bounce"  # count it; enough of them in a row suppress
    STAT = "stat"  # feeds the per-day numbers
    IGNORE = "ignore"


@dataclass(frozen=True)
class ProviderEvent:
    """One SendGrid event, reduced to what the service uses."""

    sg_event_id: str
    event: str
    email: str
    timestamp: int
    delivery_id: str | None = None
    sg_message_id: str | None = None
    bounce_type: str | None = None  # "bounce" (hard) or "blocked" (soft), for bounce events
    bounce_classification: str | None = None  # e.g. "Invalid Address", "Technical Failure"
    reason: str | None = None
    status: str | None = None  # the enhanced SMTP status, e.g. "5.1.1"
    url: str | None = None  # the link, for click events
    categories: tuple[str, ...] = ()
    rejected: str | None = None  # why the event cannot be applied; it is recorded, not applied

    @property
    def occurred_at(self) -> datetime:
        """The event's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, UTC)


@functools.lru_cache(maxsize=8)
def load_public_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key (base64 DER, PEM armour tolerated); ValueError if unusable."""
    text = "".join(_PEM_ARMOR.sub("", public_key_b64).split())
    key = load_der_public_key(base64.b64decode(text, validate=True))
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the Event Webhook key must be an ECDSA P-256 public key")
    return key


def verify_signature(
    public_key_b64: str | None,
    payload: bytes,
    signature_b64: str | None,
    timestamp: str | None,
) -> bool:
    """True only if `signature_b64` is SendGrid's ECDSA signature of timestamp + raw body."""
    if not public_key_b64 or not signature_b64 or not timestamp:
        return False
    if not isinstance(payload, bytes | bytearray):
        return False
    try:
        key = load_public_key(public_key_b64)
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        # The raw bytes as received: re-serialising the JSON would change what was signed.
        key.verify(signature, timestamp.encode("ascii") + bytes(payload), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError):  # binascii/Unicode errors are ValueErrors
        return False
    return True


def _text(item: dict[str, Any], key: str) -> str | None:
    """A string field, or None when absent or empty; numbers become strings."""
    value = item.get(key)
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return str(value)


def _event_id(item: Any) -> str:
    """sg_event_id, or a stable digest of the event so re-deliveries still deduplicate."""
    given = _text(item, "sg_event_id") if isinstance(item, dict) else None
    if given and len(given) <= MAX_EVENT_ID:
        return given
    canonical = given or json.dumps(item, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _categories(value: Any) -> tuple[str, ...]:
    """SendGrid sends `category` as a string or a list of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return ()


def parse_event(item: Any, index: int = 0, *, now: float | None = None) -> ProviderEvent:
    """One event object -> ProviderEvent; ValueError naming the position when it is unusable."""
    if not isinstance(item, dict):
        raise ValueError(f"event {index} is not a JSON object")
    event, email, timestamp = item.get("event"), item.get("email"), item.get("timestamp")
    if not isinstance(event, str) or not event:
        raise ValueError(f"event {index} has no 'event' type")
    if not isinstance(email, str):
        raise ValueError(f"event {index} has no 'email'")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise ValueError(f"event {index} has no numeric 'timestamp'")
    latest = (time.time() if now is None else now) + CLOCK_SKEW_SECONDS
    if not EARLIEST_EVENT_TIME <= timestamp <= latest:  # NaN fails both comparisons
        raise ValueError(f"event {index} has an impossible 'timestamp' ({timestamp!r})")
    return ProviderEvent(
        sg_event_id=_event_id(item),
        event=event,
        email=email,
        timestamp=int(timestamp),
        # Custom args arrive as top-level keys of the event object.
        delivery_id=_text(item, DELIVERY_ID_ARG),
        sg_message_id=_text(item, "sg_message_id"),
        bounce_type=_text(item, "type") if event == "bounce" else None,
        bounce_classification=_text(item, "bounce_classification"),
        reason=_text(item, "reason") or _text(item, "response"),
        status=_text(item, "status"),
        url=_text(item, "url"),
        categories=_categories(item.get("category")),
    )


def rejected_event(item: Any, reason: str) -> ProviderEvent:
    """An event that cannot be applied, kept under its id so it is recorded once and counted."""
    kind = item.get("event") if isinstance(item, dict) else None
    return ProviderEvent(sg_event_id=_event_id(item), event=kind if isinstance(kind, str) else "",
                         email="", timestamp=0, rejected=reason)


def parse_events(payload: bytes, *, now: float | None = None) -> list[ProviderEvent]:
    """A webhook body -> its events, in order, each sg_event_id once.

    ValueError only when the body is not a JSON list: one unusable event must not make
    SendGrid retry the whole batch forever, so it comes back as a rejected event instead.
    """
    try:
        data = json.loads(payload)
    except (ValueError, TypeError) as error:
        raise ValueError(f"webhook body is not JSON: {error}") from error
    if not isinstance(data, list):
        raise ValueError(f"webhook body must be a JSON list of events, not {type(data).__name__}")
    events: list[ProviderEvent] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        try:
            parsed = parse_event(item, index, now=now)
        except ValueError as error:
            parsed = rejected_event(item, str(error))
        if parsed.sg_event_id not in seen:  # SendGrid may repeat an event within a batch
            seen.add(parsed.sg_event_id)
            events.append(parsed)
    return events


def is_hard_bounce(event: ProviderEvent) -> bool:
    """A bounce that means the address will never work (SendGrid lists it as a bounce)."""
    if event.bounce_type:
        return event.bounce_type.lower() == "bounce"  # "blocked" is about us, not the address
    if event.bounce_classification:
        return event.bounce_classification.lower() == "invalid address"
    if event.status:
        return not event.status.startswith("4")
    return True  # old payloads: a bounce event without detail was always a hard bounce


def classify(event: ProviderEvent) -> Effect:
    """What this event means for the subscriber: suppress, a soft bounce, a statistic, nothing."""
    kind = event.event.lower()
    if kind == "bounce":
        return Effect.SUPPRESS if is_hard_bounce(event) else Effect.SOFT_BOUNCE
    if kind == "dropped":
        reason = (event.reason or "").strip().lower()
        return Effect.SUPPRESS if reason in _ADDRESS_DROP_REASONS else Effect.IGNORE
    if kind in _SUPPRESS_EVENTS:
        return Effect.SUPPRESS
    if kind in _STAT_EVENTS:
        return Effect.STAT
    return Effect.IGNORE  # group_resubscribe, account events, types added later
