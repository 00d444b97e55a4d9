"""Errors as people read them."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """An error's message in one line (its first), or its type's name when it says nothing:
    what a log line or a report shows of a failed fetch, save or send."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
