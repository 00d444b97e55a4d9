"""A 2-3 sentence summary draft picked from an abstract: extractive, deterministic, no model.

Abstracts follow a pattern: the problem, what the paper proposes, what it shows. The draft keeps
the first sentence that proposes something (the contribution), the sentence before it when it
states the problem, and the strongest result sentence, in the abstract's own order.
"""

from __future__ import annotations

import re

MAX_CHARS = 600

# A sentence ends at . ! ? followed by a space and a capital/digit/quote, except after common
# abbreviations ("e.g.", "et al.", "Fig.") and single capitals ("A. Smith").
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[\u201c])")
_ABBREVIATION = re.compile(
    r"(?:\b(?:e\.g|i\.e|et al|etc|vs|Fig|Figs|Eq|Eqs|Sec|No|approx|resp|cf|Dr|Mr|Ms|Inc)\.|"
    r"\b[A-Z]\.)$"
)
_PROPOSES = re.compile(
    r"\b(?:we|this (?:paper|work|study|research)|our|here,? we|in this (?:paper|work))\b.{0,40}?"
    r"\b(?:propose|"
    r"present|introduce|develop|design|describe|build|release|show|study|investigate|examine|"
    r"explore|analy[sz]e)",
    re.IGNORECASE,
)
_NAMES_SYSTEM = re.compile(
    r"^[A-Z][\w\-]*(?: [A-Z0-9][\w\-]*)?,? (?:is|a|an|which|enables|introduces|uses|achieves)\b"
)
_RESULT = re.compile(
    r"\b(?:outperform\w*|surpass\w*|achiev\w*|improv\w*|reduc\w*|state-of-the-art|SOTA|"
    r"results? (?:show|demonstrate)|experiments? (?:show|demonstrate)|demonstrat\w*|"
    r"\d+(?:\.\d+)?\s?(?:%|x|\u00d7)|faster|better)\b",
    re.IGNORECASE,
)
_FILLER = re.compile(r"^(?:code|our code|the code|demo|audio samples|samples)\b.{0,60}"
                     r"(?:available|released|at)\b", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph, without breaking at 'e.g.', 'et al.' or decimals."""
    text = " ".join(text.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start:match.start()]
        if _ABBREVIATION.search(candidate):
            continue
        sentences.append(candidate.strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def draft_summary(abstract: str, *, max_sentences: int = 3, max_chars: int = MAX_CHARS) -> str:
    """Two or three sentences of the abstract: problem, contribution, headline result."""
    sentences = [s for s in split_sentences(abstract) if not _FILLER.match(s)]
    if len(sentences) <= 2:
        return " ".join(sentences)[:max_chars].strip()
    contribution = next(
        (n for n, s in enumerate(sentences) if _PROPOSES.search(s) or _NAMES_SYSTEM.match(s)),
        None,
    )
    chosen: list[int] = []
    if contribution is None:
        chosen = [0, 1]
    elif contribution == 0:
        chosen = [0]
    else:
        chosen = [contribution - 1, contribution] if contribution <= 2 else [0, contribution]
    results = [
        n for n, s in enumerate(sentences)
        if n > max(chosen) and _RESULT.search(s)
    ]
    if results:
        # The most quantitative result sentence; the earliest on a tie.
        chosen.append(max(results, key=lambda n: (len(_RESULT.findall(sentences[n])), -n)))
    elif len(chosen) < 2:
        chosen.append(max(chosen) + 1)
    chosen = sorted(set(chosen))[:max_sentences]
    picked = [sentences[n] for n in chosen]
    while len(picked) > 2 and len(" ".join(picked)) > max_chars:
        picked.pop()  # the result sentence goes first: problem and contribution matter more
    text = " ".join(picked)
    if len(text) > max_chars:
        text = text[: max_chars - 1].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"
    return text
