"""CSV files people open in a spreadsheet (the subscriber export, the saved-papers list)."""

from __future__ import annotations


def safe_cell(value: object) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): one that starts like
    a formula is prefixed with a quote, so it stays plain text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
