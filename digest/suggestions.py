"""Keyword suggestions from stored papers: recurring title phrases, and related keywords.

Pure functions over titles and a ranking index; the web app (signup and manage pages) and
daily planning (the email footer of a thin week) show what they return, escaped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

from digest.query import QueryError, parse_term
from digest.ranking import PaperIndex, rank_keywords

THIN_WEEK = 3  # fewer papers than this in a week: the reader is offered related keywords
ALMOST = 30  # how many of the nearest papers (over and under the floor) suggestions come from
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z]")

_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "based", "be", "by", "can", "do", "does", "for",
    "from", "how", "in", "into", "is", "it", "its", "of", "on", "or", "our", "the", "their",
    "this", "to", "towards", "toward", "using", "via", "vs", "what", "when", "where", "which",
    "while", "with", "without", "new", "through", "study", "approach", "method", "methods",
    "framework", "analysis", "data", "dataset", "any", "all", "benchmark", "task", "tasks",
    "system", "systems", "beyond", "under", "more", "less", "better", "one", "two", "not", "we",
    "your", "you", "efficient", "improving", "improved", "enhancing", "leveraging",
    "rethinking", "revisiting",
))


def _acronym(word: str) -> bool:
    upper = sum(ch.isupper() for ch in word)
    return upper >= 2 and 2 * upper >= len(word) and len(word) <= 8


def _display(words: Sequence[str]) -> str:
    """Lower case, except acronyms, also inside hyphenated words ('LLM-based TTS')."""
    return " ".join("-".join(part if _acronym(part) else part.lower() for part in word.split("-"))
                    for word in words)


def suggest_keywords(titles: Sequence[str], limit: int = 14) -> tuple[str, ...]:
    """Phrases and acronyms that recur across titles, most frequent first."""
    counts: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    for title in titles:
        words = _WORD.findall(title)
        seen: set[str] = set()
        for size in (2, 3):
            for start in range(len(words) - size + 1):
                gram = words[start:start + size]
                if not any(word.lower() in _STOP for word in gram):
                    seen.add(_display(gram))
        seen.update(word for word in words if _acronym(word))
        for phrase in seen:
            spelled.setdefault(phrase.lower(), phrase)
        counts.update({phrase.lower() for phrase in seen})
    frequent = {key: n for key, n in counts.items() if n >= 2}
    # A phrase that mostly occurs inside a longer frequent one gives way to it.
    kept = [
        key for key, n in frequent.items()
        if not any(key != longer and key in longer and m >= 0.6 * n
                   for longer, m in frequent.items())
    ]
    kept.sort(key=lambda key: (-frequent[key], key))
    return tuple(spelled.get(key, key) for key in kept[:limit])


def related_keywords(index: PaperIndex, titles: Mapping[str, str], keywords: Sequence[str], *,
                     limit: int = 5) -> tuple[str, ...]:
    """Broader or related keywords for a profile that brings too little: the phrases that
    recur in the titles of the papers nearest to it, under the floor included, that the
    profile does not have yet."""
    positive = [k for k in keywords if _is_positive(k)]
    if not positive:
        return ()
    near = rank_keywords(index, positive, limit=ALMOST, floor=0.0)
    have = {k.strip().lower() for k in positive}
    found = suggest_keywords([titles[m.arxiv_id] for m in near if m.arxiv_id in titles],
                             limit=limit + len(have))
    return tuple(phrase for phrase in found if phrase.lower() not in have)[:limit]


def _is_positive(keyword: str) -> bool:
    try:
        return not parse_term(keyword).negative
    except QueryError:
        return False
