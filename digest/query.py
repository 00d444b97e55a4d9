"""Profile query syntax: each keyword is one term, a phrase, a negative, an author or a category.

    speech tokenizer      a phrase (stemmed, acronyms both ways), as before
    "flow matching"       the same phrase; quotes are allowed and stripped
    -survey               a negative: papers matching it are never picked for this profile
    author:Hinton         papers with an author of that last name (or full name), any accents
    cat:cs.SD             papers listed in (or cross-listed to) that arXiv category
    -cat:cs.CV, -author:X negatives of the two filters

Positive terms are alternatives (a paper matching any of them is a candidate); negatives remove.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from digest.analysis import analyze_keyword

if TYPE_CHECKING:
    import scipy.sparse as sp

# Fixed scores of the two filters, on the keyword scale (0-6; a keyword in a title scores 4-6):
# an author you follow is as strong as a title hit; a category alone just clears the default
# floor (1.5), so a keyword match in that category still ranks above a bare category member.
AUTHOR_SCORE = 4.0
CATEGORY_SCORE = 1.5
FILTER_MARK = "\x00"  # filter keys start with it; analyzed phrases never contain it

# arXiv categories: cs.SD, eess.AS, stat.ML, math-ph, hep-th, q-bio.NC, physics.optics.
_CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[a-z][a-z-]*)?$", re.IGNORECASE)
_PREFIX = re.compile(r"^(author|cat)\s*:", re.IGNORECASE)
_NAME_WORD = re.compile(r"[^\W\d_]+")


class QueryError(ValueError):
    """A malformed term; the message is one sentence a subscriber can act on."""


class Kind(StrEnum):
    PHRASE = "phrase"
    AUTHOR = "author"
    CATEGORY = "cat"


@dataclass(frozen=True)
class Term:
    """One parsed keyword: what it is, its value, whether it excludes."""

    kind: Kind
    value: str  # the phrase, the author's name or the category, as written (quotes stripped)
    negative: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        """A filter's identity: ('\\x00author', 'jane', 'doe') or ('\\x00cat', 'cs.sd')."""
        if self.kind is Kind.AUTHOR:
            return (FILTER_MARK + "author", *name_words(self.value))
        return (FILTER_MARK + "cat", self.value.lower())


@dataclass(frozen=True)
class Query:
    """A profile's keywords, sorted by role."""

    terms: tuple[Term, ...]

    @property
    def positive(self) -> list[Term]:
        return [term for term in self.terms if not term.negative]

    @property
    def negative(self) -> list[Term]:
        return [term for term in self.terms if term.negative]


def name_words(name: str) -> tuple[str, ...]:
    """'Jürgen  Schmidhuber' -> ('jurgen', 'schmidhuber'): accents, case and punctuation gone."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return tuple(word.casefold() for word in _NAME_WORD.findall(plain))


def author_matches(query: Sequence[str], author: Sequence[str]) -> bool:
    """Whether name words of a query ('hinton' or 'g hinton') name this author's name words."""
    if not query or not author or query[-1] != author[-1]:
        return False  # the last name always has to agree
    given, their_given = query[:-1], author[:-1]
    if not given:
        return True  # a last name alone is enough
    if len(given) > len(their_given):
        return False
    # Each given name or initial must agree with the author's in order: 'g e hinton', 'geoffrey'.
    return all(
        mine == theirs or (len(mine) == 1 and theirs.startswith(mine))
        or (len(theirs) == 1 and mine.startswith(theirs))
        for mine, theirs in zip(given, their_given, strict=False)
    )


def _unquote(text: str, original: str) -> str:
    """A phrase without its surrounding quotes; a lone or unbalanced quote is an error."""
    if text.count('"') % 2:
        raise QueryError(f'Close the quote in "{original[:60]}" (quotes come in pairs).')
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    if '"' in text:
        raise QueryError(f"Quote a whole keyword, not part of it: {original[:60]}")
    return " ".join(text.split())


def parse_term(raw: str) -> Term:
    """One keyword as written -> a Term; QueryError with a clear sentence when malformed."""
    text = " ".join(raw.split())
    if not text:
        raise QueryError("This keyword is empty.")
    negative = text.startswith("-")
    body = text[1:].strip() if negative else text
    if not body:
        raise QueryError("A minus needs a word after it, like -survey.")
    prefix = _PREFIX.match(body)
    if prefix is None:
        phrase = _unquote(body, text)
        # A positive keyword without words was always stored as written (it matches nothing);
        # a negative without words would silently do nothing, so it is refused.
        if not phrase:
            raise QueryError("Put some words inside the quotes.")
        if negative and not any(char.isalnum() for char in phrase):
            raise QueryError(f"A minus needs a word after it, like -survey (not {text[:40]}).")
        return Term(Kind.PHRASE, phrase, negative)
    kind = Kind(prefix.group(1).lower())
    value = _unquote(body[prefix.end():].strip(), text)
    if kind is Kind.AUTHOR:
        if not name_words(value):
            raise QueryError("author: needs a name after it, like author:Hinton.")
        return Term(kind, value, negative)
    if not value:
        raise QueryError("cat: needs an arXiv category after it, like cat:cs.SD.")
    if not _CATEGORY.match(value):
        raise QueryError(f"{value[:40]} is not an arXiv category; write it like cat:cs.SD.")
    return Term(kind, value, negative)


def parse_query(keywords: Sequence[str]) -> Query:
    """A profile's keywords -> its Query; the first malformed keyword raises QueryError."""
    return Query(tuple(parse_term(keyword) for keyword in keywords))


class FilterIndex:
    """Which papers each author: and cat: key matches, looked up by last name and category."""

    def __init__(self, papers: Iterable[object]) -> None:
        self.by_last_name: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        self.by_category: dict[str, list[int]] = {}
        self.size = 0
        for number, paper in enumerate(papers):
            self.size += 1
            # Test dataclasses and seed rows have neither field: they simply match no filter.
            for author in getattr(paper, "authors", None) or ():
                words = name_words(author)
                if words:
                    self.by_last_name.setdefault(words[-1], []).append((number, words))
            for category in getattr(paper, "categories", None) or ():
                self.by_category.setdefault(category.lower(), []).append(number)

    def papers(self, key: Sequence[str]) -> list[int]:
        """The papers a filter key matches, each once, in index order."""
        if key[0] == FILTER_MARK + "author":
            query = tuple(key[1:])
            found = {n for n, words in self.by_last_name.get(query[-1], ()) if
                     author_matches(query, words)} if query else set()
            return sorted(found)
        if key[0] == FILTER_MARK + "cat":
            return sorted(set(self.by_category.get(key[1], ())))
        return []

    def scores(self, keys: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """key x paper: AUTHOR_SCORE or CATEGORY_SCORE where a filter key matches, else 0."""
        # Imported here, not at the top: only ranking builds this matrix, and the many callers
        # that merely parse keywords (`digest subscribers list`, the signup form) should not
        # pay for loading numpy and scipy.
        import numpy as np
        import scipy.sparse as sp

        rows: list[int] = []
        cols: list[int] = []
        data: list[float] = []
        for row, key in enumerate(keys):
            if not key or not key[0].startswith(FILTER_MARK):
                continue
            found = self.papers(key)
            score = AUTHOR_SCORE if key[0] == FILTER_MARK + "author" else CATEGORY_SCORE
            rows += [row] * len(found)
            cols += found
            data += [score] * len(found)
        return sp.csr_matrix(
            (np.asarray(data, dtype=np.float64), (rows, cols)), shape=(len(keys), self.size)
        )


def keyword_key(keyword: str) -> tuple[tuple[str, ...] | None, bool]:
    """(the key ranking scores a keyword by, whether it is negative); None key for bad input.

    A phrase's key is its analyzed terms; a filter's starts with FILTER_MARK. Stored keywords
    were validated on the way in; one that no longer parses ranks nothing rather than failing.
    """
    stripped = keyword.strip()
    if stripped[:1] not in ('-', '"') and ":" not in stripped:
        return analyze_keyword(stripped) or None, False  # the common case, kept fast
    try:
        term = parse_term(stripped)
    except QueryError:
        return None, False
    if term.kind is Kind.PHRASE:
        return analyze_keyword(term.value) or None, term.negative
    return term.key, term.negative
