"""Digests stitched from remembered paper blocks equal the plain Jinja render of the whole
template, byte for byte (hostile text, feedback links on and off, trending, similar_to)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from digest.daily import TRENDING, DailyDigest, Pick, Section
from emails.render import (
    RecipientLinks,
    _render_daily,
    clear_template_caches,
    daily_context,
    render_template,
    short_date,
)
from tests.support.daily_data import (
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
        stitched = _render_daily(
            digest, sender="D <d@example.org>", links=links, postal_address="1 Lane",
            service_name="Paper Digest",
        )  # fmt: skip
        context = daily_context(
            digest, links=links, postal_address="1 Lane", service_name="Paper Digest"
        )
        context["subject"] = f"Paper Digest · {short_date(digest.day)} · " + (
            f"{digest.count} new paper" + ("" if digest.count == 1 else "s")
        )
        assert stitched.subject == context["subject"]
        assert stitched.html == render_template("daily.mjml", context)
        assert stitched.text == render_template("daily.txt.j2", context)
