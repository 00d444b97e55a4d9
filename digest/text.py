"""Untrusted paper text (titles, abstracts, authors) -> readable plain text; no HTML escaping here."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

# Inline and display math; an escaped dollar (\$) never opens or closes math.
MATH = re.compile(
    r"(?<!\\)\$\$.+?(?<!\\)\$\$"
    r"|(?<!\\)\$(?:[^$\\]|\\.)+?\$"
    r"|\\\(.+?\\\)"
    r"|\\\[.+?\\\]",
    re.DOTALL,
)

# Only real HTML tag names count as markup: "<mask>" or "<think>" in a title is text to keep.
HTML_TAGS = (
    "a abbr b big blockquote br code del dfn div em font h1 h2 h3 h4 h5 h6 hr i iframe img ins "
    "kbd li math mark object ol p pre q s samp script small span strike strong style sub sup "
    "svg table tbody td th thead tr tt u ul var"
).split()
HTML_TAG = re.compile(
    r"</?(?:%s)\b(?:\s+[A-Za-z_:][-\w:.]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*\s*/?>"
    % "|".join(HTML_TAGS),
    re.IGNORECASE,
)

# URLs are verbatim in LaTeX (%, _, # and ~ are literal), so they never reach pylatexenc.
HREF = re.compile(r"\\href\s*\{([^{}]*)\}(?:\s*\{([^{}]*)\})?")
URL = re.compile(r"\\url\s*\{([^{}]*)\}")

COMMAND_NAME = re.compile(r"\\(?:[A-Za-z]+\*?|.)", re.DOTALL)
ACCENTS = set("'\"`^~=.")
# A tie between two words (Fig.~3, Models~(LLMs)) is a space; "~50%" is an approximation.
TIE = re.compile(r"(?<=[\w.])~(?=[\w(\\])")
# pylatexenc would read these as comment, alignment tab and parameter and eat the text.
LATEX_SPECIALS = re.compile(r"(?<!\\)([%&#])")


@lru_cache(maxsize=1)
def _latex() -> LatexNodes2Text:
    """One converter, with math alphabets mapped to plain letters (O(n), not 𝒪(n))."""
    context = get_default_latex_context_db()
    plain = ["mathcal", "mathscr", "mathfrak", "mathbf", "mathit", "mathsf", "mathtt"]
    macros = [MacroTextSpec(name, simplify_repl="%(1)s") for name in plain]
    macros += [
        MacroTextSpec("boldsymbol", simplify_repl="%(1)s"),
        MacroTextSpec("bm", simplify_repl="%(1)s"),
        MacroTextSpec("footnote", simplify_repl=" (%(2)s)"),
        MacroTextSpec("LaTeX", simplify_repl="LaTeX"),
        MacroTextSpec("TeX", simplify_repl="TeX"),
    ]
    context.add_context_category("digest", macros=macros, prepend=True)
    return LatexNodes2Text(latex_context=context)


def latex_to_text(fragment: str) -> str:
    """One math or command fragment -> text; malformed LaTeX falls back to the raw text."""
    try:
        return _latex().latex_to_text(LATEX_SPECIALS.sub(r"\\\1", fragment))
    except Exception:  # pylatexenc raises assorted errors (IndexError, ...) on broken input
        return fragment.replace("$", "")


def _matching_bracket(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, or -1 when it is never closed."""
    opening = text[start]
    closing = "}" if opening == "{" else "]"
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "\\":
            continue
        if char == opening and text[index - 1] != "\\":
            depth += 1
        elif char == closing and text[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _command_end(text: str, start: int) -> int:
    """End of the `\\name[opt]{arg}...` (or `\\'e` accent) that starts at `start`."""
    name = COMMAND_NAME.match(text, start)
    if name is None:
        return start + 1
    end = name.end()
    if name.group()[1:] in ACCENTS and end < len(text) and text[end].isalpha():
        return end + 1
    while end < len(text) and text[end] in "{[":
        close = _matching_bracket(text, end)
        if close < 0:
            # An argument never closed: let tolerant pylatexenc have the rest, braces and all.
            return len(text) if text[end] == "{" else end
        end = close + 1
    return end


def _href(match: re.Match[str]) -> str:
    """Link text and its URL, once when they are the same."""
    url, label = match.group(1).strip(), (match.group(2) or "").strip()
    return url if not label or label == url else f"{label} ({url})"


def _prose(text: str) -> str:
    """Text outside math: tags dropped, URLs unwrapped, each \\command converted alone."""
    text = HTML_TAG.sub(" ", text)
    text = URL.sub(lambda match: match.group(1).strip(), HREF.sub(_href, text))
    text = TIE.sub(" ", text)
    parts: list[str] = []
    position = 0
    while (start := text.find("\\", position)) >= 0:
        end = _command_end(text, start)
        parts += [text[position:start], latex_to_text(text[start:end])]
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _drop_invisible(text: str) -> str:
    """Remove control and format characters (bidi overrides, zero-width, BOM); keep spacing."""
    return "".join(
        " " if char in "\t\n\r" else char
        for char in text
        if char in "\t\n\r" or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co")
    )


def clean_text(raw: str) -> str:
    """Entities, HTML tags and LaTeX of a title or abstract -> one line of plain text."""
    text = _drop_invisible(html.unescape(raw or ""))
    parts: list[str] = []
    position = 0
    for match in MATH.finditer(text):
        parts += [_prose(text[position:match.start()]), latex_to_text(match.group())]
        position = match.end()
    parts.append(_prose(text[position:]))
    # Converted LaTeX can bring invisible characters back (combining marks stay: they are Mn).
    return " ".join(_drop_invisible("".join(parts)).split())


def shorten_authors(authors: Sequence[str], limit: int = 3) -> str:
    """['A', 'B', 'C', 'D'] -> 'A, B, C et al.'."""
    names = [name for name in authors if name]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + " et al."
