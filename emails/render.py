"""Turn digest data into a Message: MJML compiled once per process, Jinja per recipient."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FunctionLoader, StrictUndefined
from jinja2.filters import do_wordwrap as _jinja_wordwrap
from markupsafe import Markup, escape
from mjml import mjml2html

from digest.daily import MOST_UPVOTED_WEEK, DailyDigest, Pick, Section, paper_links
from emails.links import (
    PLACEHOLDERS,
    PLACEHOLDERS_NO_FEEDBACK,
    RecipientLinks,
    personalise_links,
    unsubscribe_headers,
)
from emails.message import Message
from emails.stitch import plain_uses_only, split_paper_loop

if TYPE_CHECKING:
    from emails.updates import UpdateView

TEMPLATES = Path(__file__).parent / "templates"
SNIPPET_CHARS = 280
COMMENT_CHARS = 120
CHIP_COMMENT_CHARS = 32  # a venue note this short reads best as a chip beside the categories
MAX_CHIPS = 4
MAX_LINKS = 3  # code, project, demo, weights links per paper, in that order (HTML size)
MAX_LINK_CHARS = 200  # a real repository or project page address is far shorter
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# mjml-python 1.4 drops the body width from sections pulled in by <mj-include>, so partials are
# spliced in as text before compiling; the result is what the include would have meant.
_INCLUDE = re.compile(r'<mj-include\s+path="(?P<path>[\w./-]+)"\s*/>')
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.DOTALL | re.IGNORECASE)
# Bidi overrides and isolates let a hostile title reorder what the reader sees (U+202E...).
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- templates -------------------------------------------------------------------------------


def _read(name: str) -> str:
    """A template file's text; names never leave the templates folder."""
    path = (TEMPLATES / name).resolve()
    if not path.is_relative_to(TEMPLATES.resolve()) or not path.is_file():
        raise FileNotFoundError(f"no template {name!r} in {TEMPLATES}")
    return path.read_text(encoding="utf-8")


def _splice_includes(source: str, depth: int = 0) -> str:
    """Replace each <mj-include path="..."/> with that partial's source, recursively."""
    if depth > 5:
        raise ValueError("mj-include nested too deeply")
    return _INCLUDE.sub(lambda m: _splice_includes(_read(m.group("path")), depth + 1), source)


@cache
def compile_mjml(name: str) -> str:
    """Compile one MJML template to minified HTML; its Jinja placeholders survive untouched.

    mjml-python keeps `{{ }}` and `{% %}` verbatim in text and inside attribute values (href,
    class), so templates put them only there, never as a bare attribute inside a tag, and use
    no `<` inside a placeholder. Loops around MJML elements go in <mj-raw>.
    """
    html = mjml2html(_splice_includes(_read(name)), disable_comments=True, fonts={})
    return minify_html(html)


def _load(name: str) -> tuple[str, str | None, Callable[[], bool]]:
    """Jinja loader: .mjml names come back compiled, anything else as written.

    "stitch:<name>" is that template with its paper loop replaced by a call to
    paper_blocks, and "block:<name>" is that body alone (see emails.stitch).
    """
    kind, _, base = name.rpartition(":")
    source = compile_mjml(base) if base.endswith(".mjml") else _read(base)
    if kind in ("stitch", "block"):
        call = f'paper_blocks("{base}", section.papers, feedback_url)'
        source = split_paper_loop(source, call)[0 if kind == "stitch" else 1]
    elif kind:
        raise FileNotFoundError(f"no template {name!r}")
    return source, None, lambda: True


def _autoescape(name: str | None) -> bool:
    """Escape everything except plain-text parts (where &amp; would be a visible bug)."""
    return not (name or "").endswith(".txt.j2")


_env = Environment(
    loader=FunctionLoader(_load),
    autoescape=_autoescape,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    auto_reload=False,
)


@lru_cache(maxsize=20_000)
def _wordwrap(text: str, width: int, break_long_words: bool, break_on_hyphens: bool) -> str:
    return str(
        _jinja_wordwrap(_env, text, width, break_long_words, break_on_hyphens=break_on_hyphens)
    )


def _cached_wordwrap(
    text: str, width: int = 79, break_long_words: bool = True, break_on_hyphens: bool = True
) -> str:
    """Jinja's wordwrap, remembered: the same titles and abstracts wrap for every subscriber
    (textwrap was about 40% of a digest's render time)."""
    return _wordwrap(str(text), width, break_long_words, break_on_hyphens)


_env.filters["wordwrap"] = _cached_wordwrap


def clear_template_caches() -> None:
    """Forget compiled MJML and Jinja templates and every render cache (tests, benchmarks)."""
    compile_mjml.cache_clear()
    if _env.cache is not None:
        _env.cache.clear()
    _wordwrap.cache_clear()
    _keyword_pattern.cache_clear()
    _emphasised.cache_clear()
    _VIEWS.clear()
    _SHARED.clear()
    _FROZEN.clear()
    _PARTS.clear()
    _BLOCKS.clear()
    _SKELETONS.clear()
    _slots_fit.cache_clear()


def minify_html(html: str) -> str:
    """Drop indentation and line breaks between tags, outside <pre>; single spaces stay."""
    chunks = _PRE.split(html)
    for index in range(0, len(chunks), 2):  # odd chunks are <pre> blocks, kept as written
        chunk = re.sub(r"\n[ \t]+", "\n", chunks[index])
        chunk = re.sub(r">[ \t]{2,}<", "> <", chunk)  # runs of spaces render as one anyway
        chunks[index] = re.sub(r">\s*\n\s*<", "><", chunk)
    return "".join(chunks).strip() + "\n"


def render_template(name: str, context: Mapping[str, object]) -> str:
    """Render a template by name with `context`; .mjml ones come compiled (once) and minified."""
    return _env.get_template(name).render(**context)


# --- untrusted text --------------------------------------------------------------------------


def clean(text: str | None) -> str:
    """One line of untrusted text: no control or bidi characters, whitespace collapsed."""
    if not text:
        return ""
    return _clean(text)


# The same titles and abstracts are cleaned for every subscriber who gets them: remember them.
@lru_cache(maxsize=20_000)
def _clean(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    if text.isascii():  # the common case: only ASCII control characters to blank out
        text = _ASCII_CONTROL.sub(" ", text)
    else:
        text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary before `limit` characters and add an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-(") + "…"


def short_authors(authors: Sequence[str], limit: int = 3) -> str:
    """'A, B, C et al.' for long lists; '' when there are no authors."""
    names = [name for name in (clean(author) for author in authors) if name]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + " et al."


def keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    """Literal, case-insensitive matcher for keywords and their plurals (never user regex)."""
    return _keyword_pattern(tuple(keywords))


# Remembered per keyword set: a day's readers share a few thousand sets, and building the
# pattern (cleaning, escaping, sorting, compiling) was most of the emphasis' cost; re's own
# cache is keyed by the finished pattern string, so it only saved the compile, and only for
# its last 512 patterns.
@lru_cache(maxsize=4_096)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = []
    for keyword in keywords:
        words = clean(keyword).split()
        if not words:
            continue
        # Spaces and hyphens are interchangeable ("speech-language model").
        body = r"[\s\-]+".join(re.escape(word) for word in words)
        alternatives.append((len(body), body))
    if not alternatives:
        return None
    ordered = [body for _, body in sorted(alternatives, reverse=True)]  # longest match wins
    return re.compile(r"(?<!\w)(?:" + "|".join(ordered) + r")(?:e?s)?(?!\w)", re.IGNORECASE)


def emphasise(text: str, keywords: Iterable[str]) -> Markup:
    """Escape `text`, then wrap every keyword occurrence in <strong class="k">."""
    pattern = keyword_pattern(keywords)
    if pattern is None:
        return escape(text)
    parts: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        parts.append(escape(text[position : match.start()]))
        parts.append(Markup('<strong class="k">%s</strong>') % match.group(0))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


# A paper's snippet is emphasised the same way for every reader with the same matched
# keywords: remembered per (snippet, keywords), under 1 KB each.
@lru_cache(maxsize=10_000)
def _emphasised(text: str, keywords: tuple[str, ...]) -> Markup:
    return emphasise(text, keywords)


def safe_url(url: str | None, fallback: str) -> str:
    """Only http(s) URLs without whitespace reach an href; anything else uses `fallback`."""
    url = (url or "").strip()
    if urlsplit(url).scheme in ("http", "https") and not re.search(r"[\s<>\"']", url):
        return url
    return fallback


def arxiv_page(arxiv_id: str, kind: str = "abs") -> str:
    """arXiv's own page (or PDF) for a cleaned id: where a paper's links go when its stored
    address is not a safe one."""
    return f"https://arxiv.org/{kind}/{quote(arxiv_id, safe='/.-')}"


def long_date(day: date) -> str:
    """'Thursday, 29 January 2026', independent of the process locale."""
    return f"{_WEEKDAYS[day.weekday()]}, {day.day} {_MONTHS[day.month - 1]} {day.year}"


def short_date(day: date) -> str:
    """'29 Jan 2026', independent of the process locale."""
    return f"{day_and_month(day)} {day.year}"


def day_and_month(day: date) -> str:
    """'29 Jan', independent of the process locale."""
    return f"{day.day} {_MONTHS[day.month - 1][:3]}"


def papers_phrase(count: int, adjective: str = "new ") -> str:
    """'1 new paper' / '7 new papers'."""
    return f"{count} {adjective}paper" + ("" if count == 1 else "s")


# --- the daily digest ------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperView:
    """One paper as the templates show it: every string already cleaned and cut."""

    arxiv_id: str
    title: str
    abs_url: str
    pdf_url: str
    authors: str
    chips: tuple[str, ...]
    comment: str
    comment_is_chip: bool
    snippet: str
    snippet_html: Markup
    matched: str
    reasons: tuple[str, ...] = ()  # "similar to <title>"
    announced: str = ""  # "29 Jan 2026": the listing day it was announced in
    links: tuple[tuple[str, str], ...] = ()  # ("Code", url), ("Project", url), ...
    upvotes: str = ""  # "42 upvotes" on the day's trending list; "" when not trending


@dataclass(frozen=True)
class SectionView:
    """One keyword's papers (or the day's trending ones), ready for the templates."""

    keyword: str
    count_label: str
    papers: tuple[PaperView, ...]
    label: str = "Keyword"  # the line above the heading: "Keyword" or "Trending today"
    heading: str = ""  # the section's heading: the keyword, or what the trending list is


TRENDING_LABEL = "Trending today"
TRENDING_HEADING = "Most upvoted on Hugging Face"
WEEK_LABEL = "Your week"
LINK_LABELS = {"code": "Code", "project": "Project", "demo": "Demo", "weights": "Weights"}


def paper_view(pick: Pick) -> PaperView:
    """Prepare one pick for display (remembered per paper version and pick)."""
    # The score only orders the picks and is never shown: readers whose picks differ in it
    # alone (nearly all of them) share one view, and so the view's remembered blocks.
    key = (_frozen(pick.paper), _fields_key(pick, "paper", "score"))
    view = _VIEWS.get(key)
    if view is None:
        if len(_VIEWS) >= 20_000:
            _VIEWS.clear()
        view = _VIEWS[key] = _paper_view(pick)
    return view


_VIEWS: dict[tuple[object, ...], PaperView] = {}


_FROZEN: dict[int, _Frozen] = {}


def _frozen(paper: object) -> _Frozen:
    """The paper's cache key, made once per loaded paper object (papers are not edited after
    loading: a changed paper comes back from the database as a new object)."""
    found = _FROZEN.get(id(paper))
    if found is None or found.paper is not paper:
        if len(_FROZEN) >= 5_000:
            _FROZEN.clear()
        found = _FROZEN[id(paper)] = _Frozen(paper)
    return found


class _Frozen:
    """A paper as a cache key: every public field's value (lists as tuples), so any change to
    the paper, including fields added later, makes a new key."""

    __slots__ = ("hash", "key", "paper")

    def __init__(self, paper: object) -> None:
        self.paper = paper
        self.key = tuple(
            (name, _hashable(value))
            for name, value in vars(paper).items()
            if not name.startswith("_")
        )
        self.hash = hash(self.key)  # looked up many times per render: hash the fields once

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and self.key == other.key


def _hashable(value: object) -> object:
    """Lists as tuples and dicts (PaperIn.trimmed) as sorted item tuples, for a cache key."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


def _paper_view(pick: Pick) -> PaperView:
    """Prepare one pick for display: the paper's own part (remembered per paper version, as
    readers with other keywords see it too) and what this pick adds."""
    own = _paper_part(pick.paper)
    matched = tuple(clean(keyword) for keyword in pick.matched_by_words)
    return PaperView(
        **own,
        snippet_html=_emphasised(own["snippet"], matched),
        matched=matched_line(matched, tuple(clean(keyword) for keyword in pick.close_to)),
        reasons=reasons_of(pick),
        upvotes=upvotes_phrase(pick.upvotes),
    )


_PARTS: dict[_Frozen, dict[str, Any]] = {}


def _paper_part(paper: Any) -> dict[str, Any]:
    """The PaperView fields that depend on the paper alone (cleaned, cut, its links found)."""
    key = _frozen(paper)
    found = _PARTS.get(key)
    if found is not None:
        return found
    arxiv_id = clean(paper.arxiv_id)
    primary = clean(paper.primary_category)
    unique = [c for c in dict.fromkeys(clean(c) for c in paper.categories) if c]
    categories = sorted(unique, key=lambda category: category != primary)  # primary first
    chips = categories[:MAX_CHIPS]
    if len(categories) > MAX_CHIPS:
        chips.append(f"+{len(categories) - MAX_CHIPS}")
    comment = shorten(clean(paper.comment), COMMENT_CHARS)
    part = {
        "arxiv_id": arxiv_id,
        "title": clean(paper.title) or arxiv_id,
        "abs_url": safe_url(paper.abs_url, arxiv_page(arxiv_id)),
        "pdf_url": safe_url(paper.pdf_url, arxiv_page(arxiv_id, "pdf")),
        "authors": short_authors(paper.authors),
        "chips": tuple(chips),
        "comment": comment,
        "comment_is_chip": 0 < len(comment) <= CHIP_COMMENT_CHARS,
        "snippet": shorten(clean(paper.abstract), SNIPPET_CHARS),
        "announced": short_date(paper.announced_on) if paper.announced_on else "",
        "links": tuple(
            (LINK_LABELS.get(kind, kind.capitalize()), url)
            for kind, url in paper_links(paper)
            if len(url) <= MAX_LINK_CHARS and safe_url(url, "")
        )[:MAX_LINKS],
    }
    if len(_PARTS) >= 5_000:
        _PARTS.clear()
    _PARTS[key] = part
    return part


def upvotes_phrase(upvotes: int) -> str:
    """'1 upvote' / '42 upvotes'; '' for none."""
    return f"{upvotes} upvote{'' if upvotes == 1 else 's'}" if upvotes > 0 else ""


def matched_line(by_words: Sequence[str], by_meaning: Sequence[str]) -> str:
    """'Matched: speech codec; close to: voice conversion', or 'Close to: voice conversion'
    when only the meaning matched: why a paper is here, in words a reader follows."""
    if by_words:
        line = "Matched: " + ", ".join(by_words)
        return line + ("; close to: " + ", ".join(by_meaning) if by_meaning else "")
    return "Close to: " + ", ".join(by_meaning) if by_meaning else ""


def reasons_of(pick: Pick) -> tuple[str, ...]:
    """Why a pick is here beyond its keywords, as short plain phrases (upvotes are shown as
    a number of their own: PaperView.upvotes)."""
    reasons = []
    if pick.similar_to:
        reasons.append(f"similar to {shorten(clean(pick.similar_to), 80)}")
    return tuple(reasons)


def _label(digest: DailyDigest, section: Section) -> str:
    if not section.trending:
        return "Keyword"
    return WEEK_LABEL if digest.weekly else TRENDING_LABEL


def _heading(digest: DailyDigest, section: Section) -> str:
    if not section.trending:
        return clean(section.keyword)
    return MOST_UPVOTED_WEEK if digest.weekly else TRENDING_HEADING


def daily_context(
    digest: DailyDigest, *, links: RecipientLinks, postal_address: str, service_name: str,
    updates: tuple[UpdateView, ...] = (),
) -> dict[str, object]:
    """Everything daily.mjml and daily.txt.j2 need, as plain values (`updates`: the block
    "Updates to papers you saved", emails/updates.py)."""
    sections = tuple(
        SectionView(
            keyword=clean(section.keyword),
            count_label=papers_phrase(len(section.picks), adjective=""),
            papers=tuple(paper_view(pick) for pick in section.picks),
            label=_label(digest, section),
            heading=_heading(digest, section),
        )
        for section in digest.sections
        if section.picks
    )
    count = sum(len(section.papers) for section in sections)
    preheader = f"Top pick: {shorten(sections[0].papers[0].title, 90)}" if sections else ""
    preheader += f" · and {count - 1} more" if count > 1 else ""
    return {
        "service_name": clean(service_name),
        "long_date": long_date(digest.day),
        "headline": f"{papers_phrase(count)} for you today",
        "preheader": preheader,
        "sections": sections,
        "keywords": ", ".join(k for k in (clean(k) for k in digest.keywords) if k),
        "related": ", ".join(k for k in (clean(k) for k in digest.related) if k),
        "manage_url": links.manage_url,
        "feedback_url": links.feedback_url,
        "unsubscribe_url": links.unsubscribe_url,
        "postal_address": clean(postal_address),
        "updates": updates,
    }


SHARED_RENDERS = 1024  # distinct digests remembered per process (about 40 KB each)
_SHARED: dict[tuple[object, ...], Message] = {}


def _fields_key(item: object, *skip: str) -> tuple[object, ...]:
    """A dataclass's values except `skip`, as a cache key (new fields join it by themselves)."""
    return tuple(getattr(item, name) for name in _field_names(type(item), item, skip))


_NAMES: dict[tuple[type, tuple[str, ...]], tuple[str, ...]] = {}


def _field_names(kind: type, item: object, skip: tuple[str, ...]) -> tuple[str, ...]:
    names = _NAMES.get((kind, skip))
    if names is None:
        names = _NAMES[(kind, skip)] = tuple(
            f.name
            for f in fields(item)  # type: ignore[arg-type]
            if f.name not in skip
        )
    return names


def _digest_key(digest: DailyDigest, *extra: str) -> tuple[object, ...]:
    """Everything a daily digest's content depends on: two subscribers with equal keys get
    byte-identical emails apart from their own links."""
    return (
        _fields_key(digest, "sections"),
        tuple(
            (
                _fields_key(section, "picks"),
                tuple((_frozen(p.paper), _fields_key(p, "paper")) for p in section.picks),
            )
            for section in digest.sections
        ),
        extra,
    )


def render_daily(
    digest: DailyDigest,
    *,
    to: str,
    sender: str,
    links: RecipientLinks,
    postal_address: str,
    service_name: str = "Paper Digest",
    updates: tuple[UpdateView, ...] = (),
) -> Message:
    """Render one subscriber's daily digest into a ready-to-send Message.

    Subscribers with the same digest share one render (remembered per process): it is made
    with placeholder links, and each recipient's own links are substituted into a copy.
    """
    if digest.count == 0:
        raise ValueError("an empty digest is never sent")
    shared = shared_daily(
        digest,
        sender=sender,
        postal_address=postal_address,
        feedback=bool(links.feedback_url),
        service_name=service_name,
        updates=updates,
    )
    return personalise_links(shared, to=clean(to), links=links)


def shared_daily(
    digest: DailyDigest,
    *,
    sender: str,
    postal_address: str,
    feedback: bool,
    service_name: str = "Paper Digest",
    updates: tuple[UpdateView, ...] = (),
    remember: bool = True,
) -> Message:
    """The render every subscriber with this digest shares, with placeholder links in place
    of theirs (`emails.links`: we fill them in, or the provider does).

    Remembered per process: a day's digests arrive in waves, and many are the same. A caller
    that keeps renders by a key of its own passes `remember=False`: the sender's run keeps
    them by share key (workers/compose.py). Within a run the memo then only misses, and its
    key costs a tenth of a render; across runs in one worker it could still spare a render
    when a share group's rows fall into two claims, which no benchmark here has weighed.
    """
    if digest.count == 0:
        raise ValueError("an empty digest is never sent")
    links = PLACEHOLDERS if feedback else PLACEHOLDERS_NO_FEEDBACK
    if not remember:
        return _render_daily(digest, sender=sender, links=links, postal_address=postal_address,
                             service_name=service_name, updates=updates)
    # With and without feedback links are two different shared renders.
    key = (*_digest_key(digest, sender, postal_address, service_name), feedback, updates)
    shared = _SHARED.get(key)
    if shared is None:
        shared = _render_daily(
            digest,
            sender=sender,
            links=links,
            postal_address=postal_address,
            service_name=service_name,
            updates=updates,
        )
        if len(_SHARED) >= SHARED_RENDERS:
            del _SHARED[next(iter(_SHARED))]  # the oldest
        _SHARED[key] = shared
    return shared


def _render_daily(
    digest: DailyDigest,
    *,
    sender: str,
    links: RecipientLinks,
    postal_address: str,
    service_name: str,
    updates: tuple[UpdateView, ...] = (),
) -> Message:
    """One full render (Jinja over the compiled MJML and the text template); no recipient."""
    context = daily_context(
        digest, links=links, postal_address=postal_address, service_name=service_name,
        updates=updates,
    )
    when = f"week to {short_date(digest.day)}" if digest.weekly else short_date(digest.day)
    subject = clean(f"{service_name} · {when} · {papers_phrase(digest.count)}")
    context["subject"] = subject
    context["paper_blocks"] = paper_blocks
    return Message(
        to="",
        subject=subject,
        html=render_template("stitch:daily.mjml", context),
        text=render_template("stitch:daily.txt.j2", context),
        sender=clean(sender),
        headers=unsubscribe_headers(links.one_click_url),
        tags={"kind": "daily", "day": digest.day.isoformat()},
        categories=("daily",),
    )


_BLOCKS: dict[tuple[object, ...], tuple[PaperView, Markup]] = {}


def paper_blocks(name: str, papers: Sequence[PaperView], feedback_url: str) -> Markup:
    """A section's papers as template `name`'s paper loop would have written them."""
    return Markup(  # every block is Markup already: no need to escape them again
        "".join(
            paper_block(name, view, index == 1, index, feedback_url)
            for index, view in enumerate(papers, 1)
        )
    )


def paper_block(name: str, view: PaperView, first: bool, index: int, feedback_url: str) -> Markup:
    """One paper's block of template `name`, made once per view, position and feedback link
    (shared renders only ever pass placeholder links) and then remembered."""
    # The HTML block only tells first from not-first; the text one numbers the papers.
    position = first if name.endswith(".mjml") else index
    key = (name, id(view), position, feedback_url)
    found = _BLOCKS.get(key)
    if found is not None and found[0] is view:  # ids are only unique among live objects
        return found[1]
    if len(_BLOCKS) >= 40_000:
        _BLOCKS.clear()
    if _slots_fit(name):
        block = _block_from_skeleton(name, view, first, index, position, feedback_url)
    else:
        block = _render_block(name, view, first, index, feedback_url)
    _BLOCKS[key] = (view, block)
    return block


def _render_block(name: str, view: PaperView, first: bool, index: int, feedback_url: str) -> Markup:
    return Markup(  # already escaped by the block's own autoescape (or plain text)
        _env.get_template(f"block:{name}").render(
            paper=view, loop={"first": first, "index": index}, feedback_url=feedback_url
        )
    )


# Readers get the same paper with different keywords, so whole blocks rarely repeat between
# them; but only two fields of a block depend on the keywords: the snippet's emphasis and
# the Matched line. A block is therefore rendered once per paper (and position, feedback
# link, and the rarer per-pick fields: upvotes, reasons) with a slot in each of those two
# places, and each reader's values are put into the slots: a string replace instead of a
# Jinja render. The slots are random per process, so no paper or keyword text holds one.
_SLOT = secrets.token_hex(8)
_SNIPPET_SLOT = Markup(f"snippet-{_SLOT}")
_MATCHED_SLOT = f"matched-{_SLOT}"  # escapes to itself, like the snippet's slot
_SKELETONS: dict[tuple[object, ...], str] = {}


@cache
def _slots_fit(name: str) -> bool:
    """Whether template `name`'s paper block shows the two slotted fields only as they are
    (or tests them for truth): then a skeleton with the values put in equals a render with
    them. Otherwise (a filter on them, say) every view's block is rendered whole."""
    return plain_uses_only(_load(f"block:{name}")[0], ("snippet_html", "matched"))


def _block_from_skeleton(
    name: str, view: PaperView, first: bool, index: int, position: object, feedback_url: str
) -> Markup:
    snippet, matched = view.snippet_html, view.matched
    # An empty value stays itself, not a slot, so `{% if %}` tests take the same branch.
    slotted = replace(
        view,
        snippet_html=_SNIPPET_SLOT if snippet else snippet,
        matched=_MATCHED_SLOT if matched else matched,
    )
    key = (name, slotted, position, feedback_url)  # every other field of the view is in it
    skeleton = _SKELETONS.get(key)
    if skeleton is None:
        if len(_SKELETONS) >= 10_000:  # about 1 KB each
            _SKELETONS.clear()
        skeleton = _SKELETONS[key] = str(_render_block(name, slotted, first, index, feedback_url))
    # What the template's own `{{ }}` would have written: escaped where it autoescapes (the
    # snippet is Markup already), as it is in plain text.
    shown = str(escape(matched)) if _autoescape(f"block:{name}") else matched
    return Markup(skeleton.replace(_SNIPPET_SLOT, str(snippet)).replace(_MATCHED_SLOT, shown))
