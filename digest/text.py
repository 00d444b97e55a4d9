"""Untrusted paper text (titles, abstracts, authors) -> plain text; escaping is for renderers."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pylatexenc import latexwalker
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db
from pylatexenc.macrospec import MacroSpec

# Inline and display math; an escaped dollar (\$) never opens or closes math.
MATH = re.compile(
    r"(?<!\\)\$\$.+?(?<!\\)\$\$"
    r"|(?<!\\)\$(?:[^$\\]|\\.)+?\$"
    r"|\\\(.+?\\\)"
    r"|\\\[.+?\\\]",
    re.DOTALL,
)

# Only real HTML tag names count as markup: "<mask>" or "<think>" in a title is text to keep.
HTML_TAG_NAMES = (
    "a|abbr|b|big|blockquote|br|code|del|dfn|div|em|font|h[1-6]|hr|i|iframe|img|ins|kbd|li|math|"
    "mark|object|ol|p|pre|q|s|samp|script|small|span|strike|strong|style|sub|sup|svg|table|tbody|"
    "td|th|thead|tr|tt|u|ul|var"
)
HTML_TAG = re.compile(
    r"</?(?:" + HTML_TAG_NAMES + r")\b"
    r"(?:\s+[A-Za-z_:][-\w:.]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*\s*/?>",
    re.IGNORECASE,
)

# URLs are verbatim in LaTeX (%, _, # and ~ are literal), so they never reach pylatexenc.
HREF = re.compile(r"\\href\s*\{([^{}]*)\}(?:\s*\{([^{}]*)\})?")
URL = re.compile(r"\\url\s*\{([^{}]*)\}")

COMMAND_NAME = re.compile(r"\\(?:[A-Za-z]+\*?|.)", re.DOTALL)
ACCENTS = set("'\"`^~=.")
LATEX_QUOTES = re.compile(r"``(.+?)''")
# A tie between two words (Fig.~3, Models~(LLMs)) is a space; "~50%" is an approximation.
TIE = re.compile(r"(?<=[\w.])~(?=[\w(\\])")
# pylatexenc would read these as comment, alignment tab and parameter and eat the text.
LATEX_SPECIALS = re.compile(r"(?<!\\)([%&#])")


# Macros whose argument the parser must know about before the text specs below can use it.
PARSED_MACROS = [MacroSpec("boldsymbol", "{"), MacroSpec("bm", "{")]
PLAIN_ALPHABETS = ["mathcal", "mathscr", "mathfrak", "mathbf", "mathit", "mathsf", "mathtt"]


@lru_cache(maxsize=1)
def _latex() -> tuple[LatexNodes2Text, Any]:
    """A converter and its parser context; math alphabets become plain letters: O(n), not 𝒪(n)."""
    parsing = latexwalker.get_default_latex_context_db()
    parsing.add_context_category("digest", macros=PARSED_MACROS, prepend=True)
    texts = get_default_latex_context_db()
    macros = [MacroTextSpec(name, simplify_repl="%(1)s") for name in PLAIN_ALPHABETS]
    macros += [
        MacroTextSpec("boldsymbol", simplify_repl="%(1)s"),
        MacroTextSpec("bm", simplify_repl="%(1)s"),
        MacroTextSpec("footnote", simplify_repl=" (%(2)s)"),
        MacroTextSpec("LaTeX", simplify_repl="LaTeX"),
        MacroTextSpec("TeX", simplify_repl="TeX"),
    ]
    texts.add_context_category("digest", macros=macros, prepend=True)
    return LatexNodes2Text(latex_context=texts), parsing


def latex_to_text(fragment: str) -> str:
    """One math or command fragment -> text; malformed LaTeX falls back to the raw text."""
    converter, parsing = _latex()
    try:
        return converter.latex_to_text(LATEX_SPECIALS.sub(r"\\\1", fragment), latex_context=parsing)
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
    text = LATEX_QUOTES.sub("\u201c\\1\u201d", TIE.sub(" ", text))
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
        parts += [_prose(text[position : match.start()]), latex_to_text(match.group())]
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
