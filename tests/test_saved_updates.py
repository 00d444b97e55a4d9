"""News of saved papers: a new arXiv version or a new code/project link, ingested through the
real upsert, reaches the reader's next digest once ("Updates to papers you saved", at most
five, never an email of its own), in both parts, and keeps that digest's render apart from
its neighbours'. On SQLite and PostgreSQL; the email is looked at in Chromium."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.papers import Paper, PaperIn, upsert_papers
from emails.render import short_date
from emails.updates import update_view
from subscribers import ledger
from subscribers.models import SubscriberCreate
from subscribers.saved import SavedPaper, save_paper
from subscribers.saved_updates import find_news, record_told
from subscribers.service import add_subscriber
from tests.support.daily_data import POSTAL, make_digest, make_paper, render
from tests.support.feedback_data import (
    DAY,
    NEW_PAPERS,
    NEW_SURVEYS,
    RATED_SURVEYS,
    revise_paper,
    stocked,  # noqa: F401  (the fixture)
)
from tests.support.outbox import check_every_email_rule, parts, send
from workers import planning
from workers.migrate import alembic_config, upgrade

UPDATES = "Updates to papers you saved"
ARTIFACTS = Path(__file__).parent / "artifacts"  # beside the other email screenshots


def _fresh(settings: Settings, day: date, count: int = 2) -> None:
    """New "speech synthesis" papers announced on `day`, so every reader has picks that day."""
    with session_scope(settings.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=[PaperIn(
            arxiv_id=f"2603.{day.day:02d}{n:03d}", source="test", announced_on=day,
            title=f"Speech synthesis study {day.day}-{n}",
            abstract="We study speech synthesis with a new vocoder and report naturalness.",
        ) for n in range(count)])


def _day(settings: Settings, day: date) -> dict[str, EmailMessage]:
    """Plan `day` for every daily reader, run the real sender: that day's email per address."""
    planning.plan_daily(settings=settings, day=day)
    return {str(m["To"]): m for m in send(settings) if short_date(day) in str(m["Subject"])}


def _text(message: EmailMessage) -> str:
    return parts(message)[0].replace("\r\n", "\n")


def _shares(settings: Settings, period: str) -> dict[int, str | None]:
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(ledger.Delivery).where(ledger.Delivery.period == period))
        return {row.subscriber_id: row.share for row in rows}


def test_a_new_version_and_a_code_link_reach_the_next_digest_once(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, control) = stocked
    with session_scope(settings.sqlalchemy_url) as session:
        for arxiv_id in (NEW_PAPERS[0][0], RATED_SURVEYS[0][0]):
            save_paper(session=session, subscriber_id=fan, arxiv_id=arxiv_id)
    first = _day(settings, DAY)
    assert UPDATES not in parts(first["fan@example.org"])[0]
    shares = _shares(settings, DAY.isoformat())
    assert shares[fan] == shares[control]  # equal digests share one render

    # arXiv posts v2 with a code link, and the survey's abstract gains a project page.
    posted = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    revise_paper(settings, NEW_PAPERS[0][0], version=2, updated=posted,
            comment="Code: https://github.com/quick/flow")
    revise_paper(settings, RATED_SURVEYS[0][0],
            abstract=RATED_SURVEYS[0][2] + " Project page: https://survey.github.io/tts/")
    revise_paper(settings, NEW_PAPERS[1][0], version=2)  # not saved by anyone: no news for anyone
    _fresh(settings, DAY + timedelta(days=1))
    second = _day(settings, DAY + timedelta(days=1))
    text_part, html = _text(second["fan@example.org"]), parts(second["fan@example.org"])[1]
    check_every_email_rule(second["fan@example.org"], settings)
    block = text_part.split("UPDATES TO PAPERS YOU SAVED", 1)[1].split("-" * 72)[0]
    assert f"- {NEW_PAPERS[0][1]}" in block
    assert "  v2 posted 3 Mar\n" in block
    assert "  code released: https://github.com/quick/flow\n" in block
    assert f"- {RATED_SURVEYS[0][1]}" in block
    assert "  project page: https://survey.github.io/tts\n" in block
    assert NEW_PAPERS[1][1] not in block
    assert UPDATES in html
    assert '<strong>v2 posted 3 Mar</strong>' in html
    code = '<a href="https://github.com/quick/flow">github.com/quick/flow</a>'
    assert f"code released: {code}" in html
    assert 'project page: <a href="https://survey.github.io/tts">survey.github.io/tts</a>' in html
    for other in ("critic@example.org", "control@example.org"):
        assert UPDATES not in parts(second[other])[1]
        assert "UPDATES TO PAPERS" not in parts(second[other])[0]
    # The fan's picks may equal the control's; their news keeps their renders apart.
    shares = _shares(settings, (DAY + timedelta(days=1)).isoformat())
    assert shares[fan] != shares[control]

    _fresh(settings, DAY + timedelta(days=2))
    third = _day(settings, DAY + timedelta(days=2))
    assert UPDATES not in parts(third["fan@example.org"])[1]  # told once

    revise_paper(settings, NEW_PAPERS[0][0], version=3)  # no date from the source: the day seen
    _fresh(settings, DAY + timedelta(days=3))
    fourth = _day(settings, DAY + timedelta(days=3))
    text_part = _text(fourth["fan@example.org"])
    seen = datetime.now(UTC).date()
    assert f"  v3 posted {seen.day} {short_date(seen).split()[1]}\n" in text_part
    assert "code released" not in text_part  # the link is old news now


def test_at_most_five_and_news_waits_for_a_digest_with_papers(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    saved = [i for i, _, _ in NEW_PAPERS + NEW_SURVEYS + RATED_SURVEYS[:1]]
    with session_scope(settings.sqlalchemy_url) as session:
        for arxiv_id in saved:
            save_paper(session=session, subscriber_id=fan, arxiv_id=arxiv_id)
    _day(settings, DAY)  # every speech synthesis paper of the window is promised now
    for arxiv_id in saved:
        revise_paper(settings, arxiv_id, version=2)

    # Nothing new to pick: no digest, and no email for the news alone (never an empty digest).
    assert "fan@example.org" not in _day(settings, DAY + timedelta(days=1))
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(SavedPaper).where(SavedPaper.subscriber_id == fan)).all()
        assert {row.known_version for row in rows} == {1}  # nothing told yet

    told: list[str] = []
    for offset, expected in ((2, 5), (3, 2), (4, 0)):
        day = DAY + timedelta(days=offset)
        _fresh(settings, day)
        text_part = _text(_day(settings, day)["fan@example.org"])
        items = [line[2:] for line in text_part.split("UPDATES TO PAPERS YOU SAVED")[-1]
                 .splitlines() if line.startswith("- ")] if expected else []
        assert len(items) == expected, text_part
        assert ("UPDATES TO PAPERS YOU SAVED" in text_part) == bool(expected)
        told += items
    titles = {i: t for i, t, _ in NEW_PAPERS + NEW_SURVEYS + RATED_SURVEYS}
    assert sorted(told) == sorted(titles[i] for i in saved)  # each once, none lost


def test_a_revision_without_news_is_checked_quietly(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    arxiv_id, old = NEW_PAPERS[0][0], RATED_SURVEYS[0][0]
    with session_scope(settings.sqlalchemy_url) as session:
        save_paper(session=session, subscriber_id=fan, arxiv_id=arxiv_id)
        save_paper(session=session, subscriber_id=fan, arxiv_id=old)
        # A row saved before the baseline was kept (migration 0014 leaves its links NULL).
        row = session.get(SavedPaper, (fan, old))
        assert row is not None and row.known_version == 1 and row.known_links == []
        row.known_links = None
        session.add(row)
    revise_paper(settings, arxiv_id, abstract=NEW_PAPERS[0][2] + " Typos fixed.")
    revise_paper(settings, old, comment="Code: https://github.com/old/survey")
    with session_scope(settings.sqlalchemy_url) as session:
        news = find_news(session=session, subscriber_ids=[fan])
        assert news.updates == {}  # a typo is no news; a NULL baseline takes the paper as is
        assert sorted(news.quiet) == sorted([(fan, arxiv_id), (fan, old)])
        record_told(session=session, kind="daily", period="x", news=news)
    with session_scope(settings.sqlalchemy_url) as session:
        assert find_news(session=session, subscriber_ids=[fan]).quiet == []  # compared once
        row = session.get(SavedPaper, (fan, old))
        assert row is not None and row.known_links == ["https://github.com/old/survey"]
    revise_paper(settings, arxiv_id, comment="Demo: https://huggingface.co/spaces/a/b")  # not news
    with session_scope(settings.sqlalchemy_url) as session:
        assert find_news(session=session, subscriber_ids=[fan]).updates == {}


RSS_REPLACE = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:arxiv="http://arxiv.org/schemas/atom"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel><title>cs.CL updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.CL</link>
  <description>cs.CL updates</description>
  <pubDate>Wed, 04 Mar 2026 00:00:00 -0500</pubDate>
  {items}
  </channel>
</rss>"""
RSS_ITEM = """<item><title>{title}</title><link>https://arxiv.org/abs/{id}</link>
  <description>arXiv:{id}v{version} Announce Type: replace
Abstract: {abstract}</description>
  <guid isPermaLink="false">oai:arXiv.org:{id}v{version}</guid><category>cs.CL</category>
  <pubDate>Wed, 04 Mar 2026 00:00:00 -0500</pubDate>
  <arxiv:announce_type>replace</arxiv:announce_type><dc:creator>A. Author</dc:creator></item>"""


def test_a_replace_announcement_in_the_rss_listing_is_news_for_savers(
    stocked: tuple[Settings, list[int]], tmp_path: Path  # noqa: F811
) -> None:
    """The daily listing's `replace` entries are how arXiv announces new versions: the ingest
    job folds them into stored papers (news for readers who saved one) and never adds a paper
    the store did not have."""
    from workers.jobs import ingest_document

    settings, (_, fan, _) = stocked
    saved_id, saved_title, saved_abstract = NEW_PAPERS[0]
    with session_scope(settings.sqlalchemy_url) as session:
        save_paper(session=session, subscriber_id=fan, arxiv_id=saved_id)
    _day(settings, DAY)
    listing = tmp_path / "listing.xml"
    listing.write_text(RSS_REPLACE.format(items="".join((
        RSS_ITEM.format(id=saved_id, version=4, title=saved_title, abstract=saved_abstract),
        RSS_ITEM.format(id="2101.99999", version=2, title="Never stored here",
                        abstract="An old paper this store never had."),
    ))))
    report = ingest_document(settings=settings, location=str(listing), source="rss")
    assert (report.added, report.revised) == (0, 1)
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.get(Paper, "2101.99999") is None
        stored = session.get(Paper, saved_id)
        assert stored is not None and stored.version == 4
        assert stored.announced_on < DAY + timedelta(days=1)  # still the first announcement
    _fresh(settings, DAY + timedelta(days=1))
    second = _day(settings, DAY + timedelta(days=1))
    block = _text(second["fan@example.org"]).split("UPDATES TO PAPERS YOU SAVED", 1)[1]
    assert f"- {saved_title}" in block.split("-" * 72)[0]
    assert "  v4 posted 4 Mar\n" in block


def test_the_migration_takes_saved_rows_as_their_papers_are(migrated: Settings) -> None:
    """Rows saved under 0013 know their paper's version after 0014; their links stay NULL."""
    command.downgrade(alembic_config(migrated), "0013")
    with session_scope(migrated.sqlalchemy_url) as session:
        session.execute(text(
            "INSERT INTO paper (arxiv_id, version, title, abstract, authors, categories, "
            "announced_on, abs_url, pdf_url, sources, first_seen_at) VALUES ('2601.00077', 3, "
            "'T', '', '[]', '[]', '2026-01-02', '', '', '[]', '2026-01-02 00:00:00')"))
        add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email="m@example.org", keywords=["tts"]))
        session.execute(text(
            "INSERT INTO saved_paper (subscriber_id, arxiv_id, created_at) SELECT id, "
            "'2601.00077', '2026-01-03 00:00:00' FROM subscriber"))
    upgrade(migrated)
    with session_scope(migrated.sqlalchemy_url) as session:
        row = session.exec(select(SavedPaper)).one()
        assert (row.known_version, row.known_links, row.checked_at) == (3, None, None)


# --- the email in Chromium -------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_the_updates_block_in_a_browser(browser: Any, width: int) -> None:
    papers = [make_paper(n) for n in range(3)]
    long_title = make_paper(9, title="A very long saved paper title about zero-shot speech "
                                     "synthesis with discrete tokens and flow matching decoders")
    updates = tuple(v for v in (
        update_view(papers[0], version=3, posted=date(2026, 12, 2),
                    links=[("code", "https://github.com/speech-lab/zero-shot-tts-with-a-long-"
                                    "repository-name")]),
        update_view(long_title, version=0, posted=None,
                    links=[("project", "https://speech-lab.github.io/flow/")]),
        update_view(papers[1], version=2, posted=date(2026, 11, 30), links=[]),
    ) if v is not None)
    message = render(make_digest(papers), updates=updates)
    assert message.html.count('class="up-i') == 3 and POSTAL in message.text
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_content(message.html)
    block = page.get_by_text(UPDATES)
    assert block.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"daily-updates-{width}.png"), full_page=True)
    block.locator("xpath=ancestor::table[1]").screenshot(
        path=str(ARTIFACTS / f"daily-updates-block-{width}.png"))
    page.close()
