"""The daily digest email: both parts, headers, links, escaping, size, and one MJML compile."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from digest.daily import DailyDigest, Pick, Section
from emails.render import (
    RecipientLinks,
    clear_template_caches,
    compile_mjml,
    emphasise,
    short_authors,
    short_date,
    shorten,
)
from tests.support.daily_data import (
    ABSTRACT,
    DAY,
    HOSTILE_ABSTRACT,
    HOSTILE_COMMENT,
    HOSTILE_KEYWORD,
    HOSTILE_TITLE,
    LINKS,
    POSTAL,
    make_digest,
    make_paper,
    render,
)


class TagCollector(HTMLParser):
    """Every start tag with its attributes, and all the text, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    collector.close()
    return collector


def test_both_parts_subject_and_headers() -> None:
    message = render(make_digest([make_paper(n) for n in range(7)]))
    assert message.subject == "Paper Digest · 29 Jan 2026 · 7 new papers"
    assert message.html.lstrip().lower().startswith("<!doctype html>")
    assert "7 new papers for you today" in message.html
    assert "7 new papers for you today" in message.text
    assert message.headers["List-Unsubscribe"] == f"<{LINKS.one_click_url}>"
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.categories == ("daily",)
    assert message.to == "ada@example.org"
    assert message.sender == "Paper Digest <digest@example.org>"


def test_singular_subject() -> None:
    message = render(make_digest([make_paper(1)]))
    assert message.subject == "Paper Digest · 29 Jan 2026 · 1 new paper"
    assert "1 new paper for you today" in message.text


def test_an_empty_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        render(DailyDigest(day=DAY, keywords=("tts",), sections=()))


def test_every_link_and_the_postal_address_in_both_parts() -> None:
    papers = [make_paper(n) for n in range(4)]
    message = render(make_digest(papers))
    tags = parse(message.html).tags
    hrefs = {value for _, attrs in tags for name, value in attrs if name == "href"}
    urls = [LINKS.manage_url, LINKS.unsubscribe_url]
    urls += [p.abs_url for p in papers] + [p.pdf_url for p in papers]
    for url in urls:
        assert url in hrefs, url
        assert url in message.text, url
    assert POSTAL in message.text
    assert POSTAL in "".join(parse(message.html).text)
    assert "Matched: tts, speech tokenizer" in message.text
    assert "Matched: tts, speech tokenizer" in message.html
    assert "You get this because you subscribed with keywords: tts, speech tokenizer" in (
        " ".join(message.text.split())
    )


def test_paper_details_in_both_parts() -> None:
    paper = make_paper(1, authors=["A", "B", "C", "D", "E"])
    message = render(make_digest([paper]))
    for part in (message.html, message.text):
        assert paper.title in part
        assert "A, B, C et al." in part
        assert "ICASSP 2026" in part
        assert "cs.SD" in part and "eess.AS" in part
    # The matched keywords are emphasised in the HTML snippet, plural included.
    assert '<strong class="k">TTS</strong>' in message.html
    assert '<strong class="k">speech tokenizer</strong>' in message.html


def test_missing_authors_and_comment_leave_no_empty_lines() -> None:
    paper = make_paper(1, authors=[], comment=None)
    message = render(make_digest([paper]))
    assert "et al." not in message.text
    assert "ICASSP" not in message.html and "ICASSP" not in message.text
    title_line = next(i for i, line in enumerate(message.text.splitlines()) if paper.title in line)
    lines = message.text.splitlines()
    following = [line.strip() for line in lines[title_line + 1 : title_line + 3]]
    assert following == [f"Announced {short_date(paper.announced_on)}", "cs.SD · eess.AS · cs.CL"]


def hostile_message():
    paper = make_paper(
        1,
        title=HOSTILE_TITLE,
        abstract=HOSTILE_ABSTRACT,
        comment=HOSTILE_COMMENT,
        authors=["<b onmouseover=alert(3)>Mallory</b>", "Eve\u202e"],
        categories=["cs.SD", "<i>x</i>"],
    )
    return render(make_digest([paper], keywords=("tts", HOSTILE_KEYWORD)))


def test_hostile_text_is_escaped_in_html() -> None:
    message = hostile_message()
    parsed = parse(message.html)
    tags = {tag for tag, _ in parsed.tags}
    assert not tags & {"script", "img", "svg", "iframe", "i"}, tags
    handlers = [name for _, attrs in parsed.tags for name, _ in attrs if name.startswith("on")]
    assert handlers == []
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text  # shown as text, never as a tag
    assert '"><img src=x onerror=alert(1)>' in text
    assert HOSTILE_KEYWORD in text
    assert "<b onmouseover=alert(3)>Mallory</b>" in text
    assert "{{ 7*7 }}" in text and "{% if 1 %}x{% endif %}" in text  # never evaluated
    assert "\u202e" not in message.html


def test_hostile_text_is_harmless_in_plain_text() -> None:
    message = hostile_message()
    assert "<script>alert(1)</script>" in message.text  # verbatim, not entity-escaped
    assert "&lt;" not in message.text and "&#34;" not in message.text
    assert "{{ 7*7 }}" in message.text
    assert "\u202e" not in message.text and "\u202e" not in message.subject


def test_subject_and_headers_never_carry_line_breaks() -> None:
    message = render(make_digest([make_paper(1)]), service_name="Paper\r\nBcc: victim@example.org")
    assert "\r" not in message.subject and "\n" not in message.subject
    assert message.subject.startswith("Paper Bcc: victim@example.org · 29 Jan 2026")
    bad_links = RecipientLinks(LINKS.manage_url, LINKS.unsubscribe_url, "https://x.test/\r\nBcc: y")
    with pytest.raises(ValueError):
        render(make_digest([make_paper(1)]), links=bad_links)


def test_hostile_paper_urls_fall_back_to_arxiv() -> None:
    paper = make_paper(1, abs_url="javascript:alert(1)", pdf_url='https://x.test/" onclick="y')
    message = render(make_digest([paper]))
    assert "javascript:" not in message.html
    assert "https://arxiv.org/abs/2601.20001" in message.html
    assert "https://arxiv.org/pdf/2601.20001" in message.html


def test_emphasis_is_literal_case_insensitive_and_escapes_first() -> None:
    assert emphasise("axb and a.b", ["a.b"]) == 'axb and <strong class="k">a.b</strong>'
    marked = emphasise("Speech Tokenizers beat speech-tokenizer baselines", ["speech tokenizer"])
    assert marked.count("<strong") == 2
    assert ">Speech Tokenizers</strong>" in marked
    assert emphasise("<b>tts</b>", ["tts"]) == ('&lt;b&gt;<strong class="k">tts</strong>&lt;/b&gt;')
    assert "<strong" not in emphasise("a & b", ["amp"])  # never matches inside an entity
    assert emphasise("tts", ["(", "[a-", ""]) == "tts"  # regex syntax is just text


def test_helpers() -> None:
    assert short_authors([]) == ""
    assert short_authors(["A", "B"]) == "A, B"
    assert short_authors(["A", "B", "C", "D"]) == "A, B, C et al."
    snippet = shorten(ABSTRACT, 280)
    assert len(snippet) <= 280 and snippet.endswith("…")
    assert ABSTRACT.startswith(snippet[:-1].rstrip())
    assert ABSTRACT[len(snippet) - 1] in " ,."  # cut at a word boundary


def test_fifty_papers_stay_under_gmail_clipping() -> None:
    long_title = "A Very Long Title About Zero-Shot TTS and Speech Tokenizers, Revisited " * 3
    papers = [
        make_paper(
            n,
            title=long_title.strip(),
            abstract=ABSTRACT * 4,
            categories=["cs.SD", "eess.AS", "cs.CL", "cs.LG", "eess.SP", "cs.AI"],
            comment="Accepted to ICASSP 2026; 5 pages, 3 figures; code and demo on the project",
        )
        for n in range(50)
    ]
    message = render(make_digest(papers))
    size = len(message.html.encode("utf-8"))
    print(f"50-paper digest HTML: {size} bytes")
    assert message.subject.endswith("50 new papers")
    assert size < 100_000


def test_mjml_is_compiled_once_per_process() -> None:
    clear_template_caches()
    for count in (1, 3, 5):
        render(make_digest([make_paper(n) for n in range(count)]))
    info = compile_mjml.cache_info()
    assert info.misses == 1  # daily.mjml, compiled the first time and never again
    compiled = compile_mjml("daily.mjml")
    # The Jinja placeholders survive MJML, in text and inside attributes alike.
    assert 'href="{{ paper.abs_url }}"' in compiled
    assert "{% for section in sections %}" in compiled
    assert "<mj-" not in compiled


def test_a_pick_found_by_meaning_says_close_to_and_is_not_highlighted() -> None:
    paper = make_paper(1, title="Recognising how speakers feel", abstract="Affect from voices.")
    pick = Pick(paper=paper, score=3.0, matched=("speech emotion", "voice conversion"),
                close_to=("voice conversion",))
    digest = DailyDigest(day=DAY, keywords=("speech emotion", "voice conversion"),
                         sections=(Section(keyword="speech emotion", picks=(pick,)),))
    message = render(digest)
    text = " ".join(message.text.split())
    assert "Matched: speech emotion; close to: voice conversion" in text
    html = " ".join(" ".join(parse(message.html).text).split())
    assert "Matched: speech emotion; close to: voice conversion" in html
    assert "<mark" not in message.html.split("voice conversion", 1)[0][-40:]


def test_a_pick_found_by_meaning_alone_says_close_to() -> None:
    paper = make_paper(2, title="Recognising how speakers feel", abstract="Affect from voices.")
    pick = Pick(paper=paper, score=3.0, matched=("voice conversion",),
                close_to=("voice conversion",))
    digest = DailyDigest(day=DAY, keywords=("voice conversion",),
                         sections=(Section(keyword="voice conversion", picks=(pick,)),))
    message = render(digest)
    assert "Close to: voice conversion" in " ".join(message.text.split())
    assert "Matched:" not in message.text
