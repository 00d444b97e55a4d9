"""Text analysis for ranking: terms, and the acronym-aware surface forms of a keyword."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import Stemmer

Terms = tuple[str, ...]

SYNONYMS_FILE = Path(__file__).parent / "data" / "synonyms.txt"
MAX_FORMS = 8  # surface forms per keyword; bounds the work a keyword with many acronyms costs
# A mined pair must be defined by this many papers: one paper's private "test-time scaling
# (TTS)" or "our proposed method (OPM)" should not become a synonym for everyone.
MIN_SUPPORT = 2
MAX_SPAN = 16  # longest long form looked for; a pasted paragraph as a keyword stays cheap

_TOKEN = re.compile(r"[^\W_]+")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_POSSESSIVE = re.compile(r"['\u2019]s\b")
# "long form (ACRONYM)": at most 12 characters, at least two capitals (checked by _is_acronym).
_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9]{1,11})\s*\)")
_CLAUSE_BREAK = re.compile(r"[.;:!?()\[\],]")
# Function words a long form may skip ("reinforcement learning from human feedback" = RLHF).
_SKIPPABLE = frozenset(
    ["a", "an", "the", "of", "for", "and", "to", "in", "on", "with", "from", "by", "via", "at",
     "as"]
)

# Words that carry no topic: a keyword's other words are matched without them, so "codecs for
# music" finds "music codec". "to" stays: "text-to-speech" is not "speech to text". Applied
# to terms (after stemming), see content_terms().
STOPWORDS = frozenset(
    ["a", "an", "the", "of", "for", "and", "or", "in", "on", "with", "from", "by", "via",
     "at", "as", "into", "over", "under", "using", "use", "based", "toward", "towards", "its",
     "their", "our", "is", "are", "be", "this", "that", "these", "we", "it", "s"]
)

TERM_CACHE_SIZE = 500_000  # emptied when full, so a long-lived worker stays small
_terms: dict[str, str] = {}  # raw token -> term
_local = threading.local()  # a Stemmer must not be shared between threads


def _is_acronym(token: str) -> bool:
    """'TTS', 'LLMs', 'ViT', 'MoE' but not 'Speech', 'DiffSinger' or a shouted 'SPEECH'."""
    upper = sum(char.isupper() for char in token)
    if upper < 2:
        return False
    letters = sum(char.isalpha() for char in token)
    if upper == letters and letters > 5:
        return False
    return 2 * upper >= letters


def _acronym_key(token: str) -> str:
    """An acronym's term: lower case, a plural 's' after capitals dropped ('LLMs' -> 'llm')."""
    if len(token) > 2 and token.endswith("s") and token[-2].isupper():
        token = token[:-1]
    return token.lower()


@cache
def shipped_pairs(path: Path = SYNONYMS_FILE) -> tuple[tuple[str, str], ...]:
    """(acronym, long form) pairs from a synonyms file (the shipped one by default), as written."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            acronym, long_form = (part.strip() for part in line.split("=", 1))
            pairs.append((acronym.lower(), long_form))
    return tuple(pairs)


@cache
def known_acronyms() -> frozenset[str]:
    """Acronyms whose lower-case spelling is still recognised ('llms' -> 'llm')."""
    return frozenset(acronym for acronym, _ in shipped_pairs())


def term(token: str) -> str:
    """One raw token -> its term: acronyms kept whole, words stemmed (plurals folded)."""
    found = _terms.get(token)
    if found is not None:
        return found
    if _is_acronym(token):
        # Stemming would fold 'VITS' into 'vit' (ViT); acronyms only lose a plural 's'.
        found = _acronym_key(token)
    else:
        lower = token.lower()
        acronyms = known_acronyms()
        if lower in acronyms:
            found = lower
        elif lower.endswith("s") and lower[:-1] in acronyms:
            found = lower[:-1]
        else:
            stemmer = getattr(_local, "stemmer", None)
            if stemmer is None:
                stemmer = _local.stemmer = Stemmer.Stemmer("english")
            found = stemmer.stemWord(lower)
    if len(_terms) >= TERM_CACHE_SIZE:
        _terms.clear()
    _terms[token] = found
    return found


_STOP_TERMS = frozenset(term(word) for word in STOPWORDS) | STOPWORDS


def tokens(text: str) -> list[str]:
    """Raw word tokens: LaTeX commands and possessives dropped, split on anything else."""
    text = _POSSESSIVE.sub("", _LATEX_COMMAND.sub(" ", text))
    return _TOKEN.findall(text)


def analyze(text: str) -> list[str]:
    """Text -> terms, in order; 'Text-to-Speech' and 'text to speech' give the same terms."""
    return [term(token) for token in tokens(text)]


def content_terms(terms: Terms) -> Terms:
    """Terms without stopwords; a keyword of stopwords alone ("the who") keeps them all."""
    kept = tuple(t for t in terms if t not in _STOP_TERMS)
    return kept or terms


def analyze_keyword(keyword: str) -> Terms:
    """A keyword as the user wrote it -> its terms (empty when it has no words at all)."""
    return tuple(analyze(keyword))


def _explains(letters: str, words: list[str]) -> bool:
    """Whether an acronym's letters spell out these words, each content word by its initial."""

    # Memoised: at most letters x words x characters states, however adversarial the text.
    @cache
    def word_at(li: int, wi: int) -> bool:
        if wi == len(words):
            return li == len(letters)
        word = words[wi]
        if word in _SKIPPABLE and wi > 0 and word_at(li, wi + 1):
            return True
        return li < len(letters) and letters[li] == word[0] and inside(li + 1, wi, 1)

    @cache
    def inside(li: int, wi: int, pos: int) -> bool:
        # Later letters may come from inside the same word: NAR = Non-AutoRegressive.
        if word_at(li, wi + 1):
            return True
        if li == len(letters):
            return False
        found = words[wi].find(letters[li], pos)
        while found != -1:
            if inside(li + 1, wi, found + 1):
                return True
            found = words[wi].find(letters[li], found + 1)
        return False

    return word_at(0, 0)


def mine_acronyms(text: str) -> list[tuple[str, Terms]]:
    """(acronym term, long-form terms) for each "long form (ACRONYM)" definition in a text."""
    found = []
    for match in _DEFINITION.finditer(text):
        raw = match.group(1)
        if not _is_acronym(raw) or any(char.isdigit() for char in raw):
            continue
        letters = _acronym_key(raw)
        before = _CLAUSE_BREAK.split(text[max(0, match.start() - 160):match.start()])[-1]
        words = tokens(before)[-(len(letters) + 4):]
        lowered = [word.lower() for word in words]
        # The shortest run of words before the parenthesis that the letters explain.
        for start in range(len(words) - 2, -1, -1):
            if _explains(letters, lowered[start:]):
                found.append((letters, tuple(term(word) for word in words[start:])))
                break
    return found


@dataclass
class Lexicon:
    """Acronyms and their long forms, as terms; a keyword's surface forms come from here."""

    expansions: dict[str, set[Terms]] = field(default_factory=dict)  # acronym -> long forms
    contractions: dict[Terms, set[str]] = field(default_factory=dict)  # long form -> acronyms

    def add(self, acronym: str, long_form: Terms, *, both_ways: bool = True) -> None:
        """Teach one pair; one-way pairs expand the acronym but never contract the long form."""
        if not long_form or (acronym,) == long_form:
            return
        self.expansions.setdefault(acronym, set()).add(long_form)
        if both_ways:
            self.contractions.setdefault(long_form, set()).add(acronym)

    @classmethod
    def shipped(cls, path: Path | None = None) -> Lexicon:
        """The curated pairs of a synonyms file; digest/data/synonyms.txt when none is given."""
        lexicon = cls()
        for acronym, long_form in shipped_pairs(path or SYNONYMS_FILE):
            lexicon.add(term(acronym), analyze_keyword(long_form))
        return lexicon

    def with_definitions(
        self, per_text: Iterable[list[tuple[str, Terms]]], *, max_long_forms: int = 4,
        min_support: int = MIN_SUPPORT,
    ) -> Lexicon:
        """A copy that also knows the acronyms at least `min_support` texts define, given
        each text's mine_acronyms() result."""
        counts: Counter[tuple[str, Terms]] = Counter()
        for found in per_text:
            counts.update(set(found))  # support counts papers, not mentions
        merged = Lexicon(
            {acronym: set(forms) for acronym, forms in self.expansions.items()},
            {long_form: set(acronyms) for long_form, acronyms in self.contractions.items()},
        )
        per_acronym: Counter[str] = Counter()
        for (acronym, long_form), support in counts.most_common():
            if support < min_support:
                break  # most_common: every later pair has less support
            # Curated meanings win: a paper's "test-time scaling (TTS)" must not make every
            # text-to-speech subscriber match test-time scaling.
            if acronym in self.expansions or per_acronym[acronym] >= max_long_forms:
                continue
            per_acronym[acronym] += 1
            # A mined two-letter acronym is too often something else (AR: augmented reality), so
            # it may stand for its long form but the long form never expands to it.
            merged.add(acronym, long_form, both_ways=len(acronym) > 2)
        return merged

    def foreign(self, definitions: Iterable[tuple[str, Terms]]) -> set[str]:
        """Acronyms a text defines as something this lexicon does not know them as.

        A paper's own "test-time scaling (TTS)" means its TTS tokens are not text-to-speech.
        """
        return {acronym for acronym, long_form in definitions
                if acronym in self.expansions and long_form not in self.expansions[acronym]}

    def forms(self, keyword: Terms) -> list[Terms]:
        """The keyword itself, then spellings with acronyms expanded, then long forms contracted."""
        if not keyword:
            return []
        forms = [keyword]
        if len(keyword) > MAX_SPAN:
            return forms
        # Expand before contracting, never after: otherwise two long forms that share an acronym
        # would become synonyms of each other.
        for substitute in (self._expanded, self._contracted):
            for form in forms:  # grows while iterating: breadth first, capped
                for variant in substitute(form):
                    if variant not in forms and len(forms) < MAX_FORMS:
                        forms.append(variant)
        return forms

    def _expanded(self, form: Terms) -> list[Terms]:
        """Spellings with one acronym of `form` replaced by one of its long forms."""
        return [
            form[:position] + long_form + form[position + 1:]
            for position, word in enumerate(form)
            for long_form in sorted(self.expansions.get(word, ()))
        ]

    def _contracted(self, form: Terms) -> list[Terms]:
        """Spellings with one long form inside `form` replaced by its acronym."""
        return [
            form[:start] + (acronym,) + form[stop:]
            for start in range(len(form))
            for stop in range(start + 2, min(start + MAX_SPAN, len(form)) + 1)
            for acronym in sorted(self.contractions.get(form[start:stop], ()))
        ]

