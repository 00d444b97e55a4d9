"""A daily digest as data: papers, a digest of them and a recipient's links, ready to render.

Also the hostile strings every renderer must keep harmless. Shared by the render tests.
"""

from __future__ import annotations

from datetime import date

from digest.daily import DailyDigest, Pick, Section
from digest.papers import Paper
from emails.render import RecipientLinks, render_daily

DAY = date(2026, 1, 29)
LINKS = RecipientLinks(
    manage_url="https://digest.test/manage?token=abc.def&lang=en",
    unsubscribe_url="https://digest.test/unsubscribe?token=abc.def",
    one_click_url="https://digest.test/unsubscribe/one-click?token=abc.def",
)
POSTAL = "Paper Digest, 12 Test Lane, 75000 Paris"
ABSTRACT = (
    "Modern zero-shot text-to-speech (TTS) models offer unprecedented expressivity but also pose "
    "serious risks, as they can synthesize voices of individuals who never consented. We present "
    "a training-free speaker unlearning framework with a new speech tokenizer that shifts the "
    "paradigm from data deletion to inference-time control, and we evaluate it on speech "
    "tokenizers of several sizes across many languages and recording conditions."
)


def make_paper(number: int, **overrides: object) -> Paper:
    arxiv_id = f"2601.{20000 + number}"
    fields: dict[str, object] = {
        "arxiv_id": arxiv_id,
        "title": f"Paper number {number}: zero-shot TTS with a speech tokenizer",
        "abstract": ABSTRACT,
        "authors": ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
        "categories": ["cs.SD", "eess.AS", "cs.CL"],
        "primary_category": "cs.SD",
        "comment": "ICASSP 2026",
        "announced_on": DAY,
        "abs_url": f"https://arxiv.org/abs/{arxiv_id}",
        "pdf_url": f"https://arxiv.org/pdf/{arxiv_id}",
    }
    fields.update(overrides)
    return Paper(**fields)


def make_digest(papers: list[Paper], keywords: tuple[str, ...] = ("tts", "speech tokenizer")):
    half = max(1, len(papers) // 2)
    groups = [(keywords[0], papers[:half]), (keywords[-1], papers[half:])]
    sections = tuple(
        Section(
            keyword=keyword,
            picks=tuple(Pick(paper=p, score=3.0, matched=keywords) for p in group),
        )
        for keyword, group in groups
        if group
    )
    return DailyDigest(day=DAY, keywords=keywords, sections=sections)


def render(digest: DailyDigest, **overrides: object):
    arguments: dict[str, object] = {
        "to": "ada@example.org",
        "sender": "Paper Digest <digest@example.org>",
        "links": LINKS,
        "postal_address": POSTAL,
    }
    arguments.update(overrides)
    return render_daily(digest, **arguments)  # type: ignore[arg-type]


HOSTILE_TITLE = "<script>alert(1)</script> \u202etxt.exe Speech"
HOSTILE_ABSTRACT = '"><img src=x onerror=alert(1)> tts results {{ 7*7 }} {% if 1 %}x{% endif %}'
HOSTILE_KEYWORD = '"><svg onload=alert(2)>'
HOSTILE_COMMENT = "{{ 7*7 }} <iframe src=//evil>"
