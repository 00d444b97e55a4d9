"""Signed, purpose-bound tokens: a subscriber id and a purpose, never an email address."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache

from itsdangerous import BadData, URLSafeTimedSerializer


class Purpose(StrEnum):
    confirm = "confirm"
    manage = "manage"
    unsubscribe = "unsubscribe"
    feedback = "feedback"


# Confirmation links die after a week; manage and unsubscribe links never expire, so an old
# email can always be used to leave.
MAX_AGE_SECONDS: dict[Purpose, int | None] = {
    Purpose.confirm: 7 * 24 * 3600,
    Purpose.manage: None,
    Purpose.unsubscribe: None,
    Purpose.feedback: None,
}


class InvalidToken(Exception):
    """Tampered, truncated, wrong-purpose or expired: the caller shows one plain 4xx page."""


def _serializer(keys: list[str], purpose: Purpose) -> URLSafeTimedSerializer:
    return _cached_serializer(tuple(keys), purpose)


@lru_cache(maxsize=64)
def _cached_serializer(keys: tuple[str, ...], purpose: Purpose) -> URLSafeTimedSerializer:
    # Built once per (keys, purpose): a monthly issue signs two tokens per recipient, and
    # building the serializer per call was most of their cost. Keyed on the keys themselves,
    # so a key rotation in the settings takes effect at once.
    # itsdangerous signs with the last key and verifies with all; settings list newest first.
    return URLSafeTimedSerializer(list(reversed(keys)), salt=f"digest.{purpose.value}")


def make_token(*, keys: list[str], purpose: Purpose, subscriber_id: int, extra: str = "") -> str:
    """Sign `subscriber_id` (plus optional extra data such as a paper id) for one purpose."""
    payload: list[int | str] = [subscriber_id, extra] if extra else [subscriber_id]
    return str(_serializer(keys, purpose).dumps(payload))


def make_tokens(*, keys: list[str], purpose: Purpose, subscriber_ids: Sequence[int]) -> list[str]:
    """`make_token` for many subscribers at once (a monthly issue's thousand recipients):
    the same tokens, one signer for all of them instead of one per token."""
    serializer = _serializer(keys, purpose)
    signer = serializer.make_signer()
    return [signer.sign(serializer.dump_payload([sid])).decode() for sid in subscriber_ids]


def read_token(*, keys: list[str], purpose: Purpose, token: str) -> tuple[int, str]:
    """Verify a token for `purpose`; returns (subscriber_id, extra) or raises InvalidToken."""
    try:
        payload = _serializer(keys, purpose).loads(token, max_age=MAX_AGE_SECONDS[purpose])
    except BadData as error:
        raise InvalidToken(type(error).__name__) from None
    if not isinstance(payload, list) or not payload or type(payload[0]) is not int:
        raise InvalidToken("malformed payload")
    extra = payload[1] if len(payload) > 1 and isinstance(payload[1], str) else ""
    return payload[0], extra
