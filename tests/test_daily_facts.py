"""The facts a researcher scans a daily digest for (issue 16, item 5): authors (three, then
"et al."), the announcement date, code / project / demo links from the abstract and comment,
trending upvotes as a visible number, and a trending section that says "Trending today"."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from pathlib import Path

from digest.daily import TRENDING, DailyDigest, Pick, Section, compose_daily, paper_links
from digest.ranking import Match
from emails.transports.outbox import OutboxTransport
from tests.support.daily_data import ABSTRACT, DAY, LINKS, make_digest, make_paper, render

LINKED_ABSTRACT = (
    "We present a zero-shot TTS model. Code: https://github.com/acme/fast-tts. Samples at "
    "https://acme.github.io/fast-tts/ and a demo on https://huggingface.co/spaces/acme/fast-tts; "
    "weights at https://huggingface.co/acme/fast-tts-1b. See also https://arxiv.org/abs/2601.00001 "
    "and https://example.com/blog."
)


def _trending_digest(upvotes: tuple[int, ...] = (120, 1, 0)) -> DailyDigest:
    papers = [make_paper(n) for n in range(len(upvotes))]
    picks = tuple(
        Pick(paper=paper, score=1.0, matched=(), upvotes=votes)
        for paper, votes in zip(papers, upvotes, strict=True)
    )
    return DailyDigest(
        day=DAY, keywords=(), sections=(Section(keyword=TRENDING, picks=picks, trending=True),)
    )


def test_paper_links_come_from_abstract_and_comment_in_reading_order() -> None:
    paper = make_paper(1, abstract=LINKED_ABSTRACT, comment="Code: https://github.com/acme/other")
    assert paper_links(paper) == (
        ("code", "https://github.com/acme/fast-tts"),  # the first code link wins
        ("project", "https://acme.github.io/fast-tts"),
        ("demo", "https://huggingface.co/spaces/acme/fast-tts"),
        ("weights", "https://huggingface.co/acme/fast-tts-1b"),
    )
    # A link only in the comment counts too; arXiv and unknown sites are not "links" here.
    only_comment = make_paper(2, abstract="https://arxiv.org/abs/2601.00001 https://example.com",
                              comment="Accepted at ICASSP. Demo: https://huggingface.co/spaces/a/b")
    assert paper_links(only_comment) == (("demo", "https://huggingface.co/spaces/a/b"),)
    assert paper_links(make_paper(3, comment=None)) == ()


def test_the_email_shows_authors_date_links_and_upvotes() -> None:
    paper = make_paper(1, abstract=LINKED_ABSTRACT)
    digest = make_digest([paper])
    section = digest.sections[0]
    upvoted = Pick(paper=paper, score=3.0, matched=section.picks[0].matched, upvotes=42)
    message = render(DailyDigest(day=DAY, keywords=digest.keywords,
                                 sections=(Section(keyword=section.keyword, picks=(upvoted,)),)))
    html, text = message.html, message.text
    for part in (html, text):
        assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in part
        assert "Edsger Dijkstra" not in part
        assert "Announced 29 Jan 2026" in part
        assert "▲ 42 upvotes" in part
        assert "trending: 42" not in part  # no longer grey small print among the reasons
    assert '<span class="c up">▲ 42 upvotes</span>' in html
    for label, url in [
        ("Code", "https://github.com/acme/fast-tts"),
        ("Project", "https://acme.github.io/fast-tts"),
        ("Demo", "https://huggingface.co/spaces/acme/fast-tts"),
    ]:
        assert f'<a href="{url}">{label}</a>' in html
        assert f"   {label}: {url}\n" in text
    assert "Weights" not in html and "Weights" not in text  # three links at most, these first
    assert ">Code</a>" in html.split("arXiv:2601.20001")[1]  # on the arXiv / PDF line
    assert "example.com/blog\">" not in html  # an unknown site is not offered as a link
    weights_only = make_paper(2, abstract="Model: https://huggingface.co/acme/fast-tts-1b")
    assert '<a href="https://huggingface.co/acme/fast-tts-1b">Weights</a>' in render(
        make_digest([weights_only])
    ).html


def test_links_in_hostile_text_stay_inert() -> None:
    hostile = make_paper(
        1,
        abstract='Code https://github.com/a/b"><script>alert(1)</script> and '
        "javascript:alert(2) https://x.github.io/p?q=<b>",
    )
    message = render(make_digest([hostile]))
    assert "<script>alert(1)" not in message.html
    hrefs = re.findall(r'href="([^"]*)"', message.html)
    assert not [href for href in hrefs if not href.startswith(("https://", "http://"))]
    assert '<a href="https://github.com/a/b">Code</a>' in message.html
    assert '<a href="https://x.github.io/p?q=">Project</a>' in message.html


def test_upvotes_read_as_a_number_singular_and_absent() -> None:
    message = render(_trending_digest())
    assert "▲ 120 upvotes" in message.html and "▲ 1 upvote<" in message.html
    assert message.html.count('class="c up"') == 2  # none for the paper without upvotes
    assert "▲ 1 upvote on Hugging Face" in message.text
    assert "▲ 0" not in message.text


def test_the_trending_section_says_trending_today() -> None:
    message = render(_trending_digest())
    assert "Trending today · 3 papers" in message.html
    assert "<h2>Most upvoted on Hugging Face</h2>" in message.html
    assert "Keyword ·" not in message.html
    assert "TRENDING TODAY (3 papers)" in message.text
    # Keyword sections keep their label.
    keyword_mail = render(make_digest([make_paper(1), make_paper(2)]))
    assert keyword_mail.html.count("Keyword · 1 paper<") == 2
    assert "<h2>tts</h2>" in keyword_mail.html and "Trending today" not in keyword_mail.html


def test_compose_marks_only_the_trending_section() -> None:
    papers = {p.arxiv_id: p for p in (make_paper(1), make_paper(2))}
    ids = list(papers)
    matches = [Match(ids[0], 2.0, ("tts",), upvotes=5), Match(ids[1], 1.0, (), upvotes=9)]
    digest = compose_daily(day=DAY, keywords=["tts"], matches=matches, papers=papers)
    assert digest is not None
    assert [(s.keyword, s.trending) for s in digest.sections] == [("tts", False), (TRENDING, True)]
    # A reader whose own keyword is spelled "Trending today" keeps a keyword section.
    mine = compose_daily(day=DAY, keywords=[TRENDING], matches=[Match(ids[0], 2.0, (TRENDING,))],
                         papers=papers)
    assert mine is not None and not mine.sections[0].trending


def test_the_facts_reach_the_outbox(tmp_path: Path) -> None:
    message = render(_trending_digest((7, 3)))
    OutboxTransport(tmp_path).send(message)
    [path] = tmp_path.glob("*.eml")
    sent = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = sent.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = sent.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Trending today · 2 papers" in html and "▲ 7 upvotes" in html
    assert "Announced 29 Jan 2026 · ▲ 7 upvotes on Hugging Face" in text


def test_fifty_papers_with_every_fact_stay_under_gmail_clipping() -> None:
    """The 50-paper worst case of test_render, plus what issue 16 added to every paper (date,
    upvotes, links) and feedback links: still under 100 KB, the footer never clipped."""
    long_title = "A Very Long Title About Zero-Shot TTS and Speech Tokenizers, Revisited " * 3
    papers = [
        make_paper(
            n,
            title=long_title.strip(),
            # Links at the end, as abstracts give them; one address absurdly long.
            abstract=f"{ABSTRACT * 4} {LINKED_ABSTRACT} https://github.com/acme/{'x' * 300}",
            categories=["cs.SD", "eess.AS", "cs.CL", "cs.LG", "eess.SP", "cs.AI"],
            comment="Accepted to ICASSP 2026; 5 pages, 3 figures; code and demo on the project",
        )
        for n in range(50)
    ]
    digest = make_digest(papers)
    sections = tuple(
        Section(keyword=s.keyword, picks=tuple(replace(p, upvotes=1234) for p in s.picks))
        for s in digest.sections
    )
    feedback = "https://digest.example.org/feedback/WzRd.aw9rwQ.SEem4qy1nmNfji9PbHOI_CPC5wo"
    links = replace(LINKS, feedback_url=feedback)
    html = render(replace(digest, sections=sections), links=links).html
    assert html.count('class="c up"') == 50 and html.count(">Demo</a>") == 50
    assert ">Weights</a>" not in html  # at most three links a paper
    assert "x" * 300 not in html  # an absurdly long address is not offered
    assert len(html.encode("utf-8")) < 100_000
