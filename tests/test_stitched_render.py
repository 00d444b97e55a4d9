"""Digests stitched from remembered paper blocks equal the plain Jinja render of the whole
template, byte for byte (hostile text, feedback links on and off, trending, similar_to)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from digest.daily import TRENDING, DailyDigest, Pick, Section
from emails import render
from emails.render import (
    RecipientLinks,
    _render_daily,
    clear_template_caches,
    daily_context,
    paper_view,
    render_template,
    short_date,
)
from emails.stitch import plain_uses_only
from tests.support.daily_data import (
    ABSTRACT,
    HOSTILE_ABSTRACT,
    HOSTILE_COMMENT,
    HOSTILE_KEYWORD,
    HOSTILE_TITLE,
    make_digest,
    make_paper,
)

LINKS = RecipientLinks(
    manage_url="https://d.test/manage/m1?a=1&b=2",
    unsubscribe_url="https://d.test/unsubscribe/u1",
    one_click_url="https://d.test/unsubscribe/u1",
    feedback_url="https://d.test/feedback/f1",
)


def _with_picks(digest: DailyDigest, **changes: object) -> DailyDigest:
    """The digest with every other pick changed (trending upvotes, similar_to reasons)."""
    sections = tuple(
        replace(
            section,
            picks=tuple(
                replace(pick, **changes) if n % 2 == 0 else pick  # type: ignore[arg-type]
                for n, pick in enumerate(section.picks)
            ),
        )
        for section in digest.sections
    )
    return replace(digest, sections=sections)


def _hostile() -> DailyDigest:
    hostile = make_paper(
        9,
        title=HOSTILE_TITLE,
        abstract=HOSTILE_ABSTRACT,
        comment=HOSTILE_COMMENT,
        authors=["<b onmouseover=alert(3)>Mallory</b>", "Eve\u202e"],
        categories=["cs.SD", "<i>x</i>"],
    )
    return make_digest([hostile, make_paper(1), make_paper(2)], keywords=("tts", HOSTILE_KEYWORD))


def _trending_section() -> DailyDigest:
    """A trending-only digest: one TRENDING section of upvoted picks, no keywords."""
    papers = [make_paper(n) for n in range(3)]
    picks = tuple(
        Pick(paper=p, score=1.0, matched=(), upvotes=90 - n) for n, p in enumerate(papers)
    )
    section = Section(keyword=TRENDING, picks=picks, trending=True)
    return DailyDigest(day=papers[0].announced_on, keywords=(), sections=(section,))


MANY_KEYWORDS = ("tts", "speech tokenizer", "zero-shot", "a<b & c", "speaker unlearning",
                 "inference-time control", "recording conditions", HOSTILE_KEYWORD)  # fmt: skip

DIGESTS = {
    "one paper": lambda: make_digest([make_paper(1)]),
    "five papers": lambda: make_digest([make_paper(n) for n in range(5)]),
    "hostile": _hostile,
    "trending": lambda: _with_picks(make_digest([make_paper(n) for n in range(4)]), upvotes=7),
    "one upvote": lambda: _with_picks(make_digest([make_paper(n) for n in range(3)]), upvotes=1),
    "similar": lambda: _with_picks(
        make_digest([make_paper(n) for n in range(4)]), similar_to="<script>x</script> & a title"
    ),
    "trending section": lambda: _trending_section(),
    "code and project links": lambda: make_digest(
        [
            make_paper(1, comment="Code: https://github.com/a/b, demo https://a.github.io/b/"),
            make_paper(2, abstract='See https://huggingface.co/spaces/a/b"><script>x</script>'),
        ]
    ),
    "no comment or authors": lambda: make_digest(
        [make_paper(1, comment="", authors=[]), make_paper(2, comment="A long note " * 12)]
    ),
    # Meaning-only matches: "Close to" lines, no emphasis (the slots stay empty or not).
    "close to": lambda: _with_picks(
        make_digest([make_paper(n) for n in range(4)]), close_to=("tts",)
    ),
    "only close to": lambda: _with_picks(
        make_digest([make_paper(n) for n in range(4)], keywords=("tts",)), close_to=("tts",)
    ),
    # A Matched line longer than a wrapped line, and keywords HTML would escape.
    "many keywords": lambda: make_digest(
        [make_paper(n, abstract=ABSTRACT + " a<b & c") for n in range(3)],
        keywords=MANY_KEYWORDS,
    ),
    "no abstract": lambda: make_digest([make_paper(1, abstract=""), make_paper(2)]),
}


@pytest.mark.parametrize("feedback", [True, False], ids=["feedback", "no-feedback"])
@pytest.mark.parametrize("name", list(DIGESTS))
def test_stitched_render_equals_the_plain_template_render(name: str, feedback: bool) -> None:
    clear_template_caches()
    links = LINKS if feedback else replace(LINKS, feedback_url="")
    # Blocks reused, and the same papers for a reader with other keywords (other emphasis
    # and Matched lines in the same block skeletons).
    digests = [DIGESTS[name](), DIGESTS["five papers"](), DIGESTS[name](),
               make_digest([make_paper(n) for n in range(5)], keywords=("codec", HOSTILE_KEYWORD))]
    for digest in digests:
        subject = _assert_stitched_equals_plain(digest, links)
        assert subject == f"Paper Digest · {short_date(digest.day)} · " + (
            f"{digest.count} new paper" + ("" if digest.count == 1 else "s")
        )


def _assert_stitched_equals_plain(digest: DailyDigest, links: RecipientLinks) -> str:
    """The stitched render of `digest` is byte for byte the full templates' render of its
    context; returns its subject."""
    stitched = _render_daily(
        digest, sender="D <d@example.org>", links=links, postal_address="1 Lane",
        service_name="Paper Digest",
    )  # fmt: skip
    context = daily_context(
        digest, links=links, postal_address="1 Lane", service_name="Paper Digest"
    )
    context["subject"] = stitched.subject
    assert stitched.html == render_template("daily.mjml", context)
    assert stitched.text == render_template("daily.txt.j2", context)
    return stitched.subject


@pytest.mark.parametrize("slots", [True, False], ids=["skeletons", "whole-blocks"])
def test_readers_of_the_same_papers_get_their_own_emphasis_and_matched_lines(
    slots: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paper block is made once per paper with slots for the reader's emphasis and Matched
    line; many readers in one process (other keywords, by words or meaning) each get exactly
    the full template's render, and so they do when the slots are not used."""
    clear_template_caches()
    if not slots:
        monkeypatch.setattr(render, "_slots_fit", lambda name: False)
    papers = [make_paper(n) for n in range(5)] + [_hostile().sections[0].picks[0].paper]
    keyword_sets = [
        ("tts",),
        ("speech tokenizer", "tts"),
        ("codec", HOSTILE_KEYWORD),
        ("zero-shot", "speech tokenizer"),
        ("speaker unlearning",),
        ("tts",),
    ]
    for number, keywords in enumerate(keyword_sets):
        digest = make_digest(papers[number % 2 :], keywords=keywords)
        if number % 2:
            digest = _with_picks(digest, close_to=keywords[-1:], score=float(number))
        _assert_stitched_equals_plain(digest, LINKS)


def test_the_daily_templates_take_slots() -> None:
    """Both daily paper blocks qualify for the slotted skeletons (the fast path)."""
    assert render._slots_fit("daily.mjml")
    assert render._slots_fit("daily.txt.j2")


@pytest.mark.parametrize(
    ("body", "fits"),
    [
        ("<p>{{ paper.matched }}</p>", True),
        ("{% if paper.matched %}{{- paper.matched -}}{% endif %}{{ paper.title|upper }}", True),
        ("{{ paper.matched | wordwrap(72) }}", False),
        ("{{ paper.matched|length }}", False),
        ("{% if paper.matched and x %}{{ paper.matched }}{% endif %}", False),
        ("{% filter upper %}{{ paper.matched }}{% endfilter %}", False),
        ('{% include "other.j2" %}', False),
        ('{{ paper["matched"] }}', False),
        ("{{ paper }}", False),
    ],
)
def test_slots_only_where_a_field_is_printed_as_it_is(body: str, fits: bool) -> None:
    assert plain_uses_only(body, ("snippet_html", "matched")) is fits


def test_picks_differing_only_in_score_share_a_view() -> None:
    """The score is never shown, so it does not split views (nor their blocks)."""
    pick = make_digest([make_paper(1)]).sections[0].picks[0]
    assert paper_view(pick) is paper_view(replace(pick, score=pick.score + 1))
    assert paper_view(pick) is not paper_view(replace(pick, matched=("tts",)))
