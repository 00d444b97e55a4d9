"""One render per distinct digest: shared renders carry each recipient's own links and address,
match a fresh render byte for byte, and never serve a digest whose content changed."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from markupsafe import escape
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from emails.render import RecipientLinks, clear_template_caches, render_daily
from emails.transports.sendgrid import SendGridTransport
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.tokens import Purpose, read_token
from tests.support.daily_data import make_digest, make_paper
from tests.support.delivery import plan_latest_day as _plan_latest_day
from tests.support.delivery import stock as _stock
from tests.support.fake_sendgrid import FakeSendGrid
from workers import sending

SENDER = "Paper Digest <digest@example.org>"
POSTAL = "1 Test Lane"


def links(name: str) -> RecipientLinks:
    return RecipientLinks(
        manage_url=f"https://digest.test/manage/{name}.m&x=1",
        unsubscribe_url=f"https://digest.test/unsubscribe/{name}.u",
        one_click_url=f"https://digest.test/unsubscribe/{name}.u",
    )


def render_for(digest: object, name: str):  # type: ignore[no-untyped-def]
    return render_daily(
        digest,  # type: ignore[arg-type]
        to=f"{name}@example.org",
        sender=SENDER,
        links=links(name),
        postal_address=POSTAL,
    )


def test_a_shared_render_carries_each_recipients_own_links() -> None:
    clear_template_caches()
    digest = make_digest([make_paper(n) for n in range(4)])
    ada, alan = render_for(digest, "ada"), render_for(digest, "alan")
    assert (ada.to, alan.to) == ("ada@example.org", "alan@example.org")
    for message, own, other in [(ada, "ada", "alan"), (alan, "alan", "ada")]:
        assert str(escape(links(own).manage_url)) in message.html  # & escaped as in a fresh render
        assert links(own).manage_url in message.text
        assert message.headers["List-Unsubscribe"] == f"<{links(own).one_click_url}>"
        assert other not in message.html + message.text + str(message.headers)
        assert "placeholder.invalid" not in message.html + message.text + str(message.headers)
    # Byte-identical to rendering from scratch with no cache at all.
    clear_template_caches()
    fresh = render_for(digest, "alan")
    assert (fresh.html, fresh.text, fresh.headers, fresh.subject) == (
        alan.html, alan.text, alan.headers, alan.subject,
    )  # fmt: skip


def test_a_changed_paper_or_keyword_list_is_never_served_from_the_cache() -> None:
    clear_template_caches()
    before = render_for(make_digest([make_paper(1)]), "ada")
    retitled = render_for(make_digest([make_paper(1, title="A corrected title")]), "ada")
    assert "A corrected title" in retitled.html and "A corrected title" not in before.html
    other_keywords = render_for(make_digest([make_paper(1)], keywords=("tts", "prosody")), "ada")
    assert "prosody" in other_keywords.text and "prosody" not in before.text


def test_subscribers_with_the_same_digest_each_get_their_own_links_through_a_wave(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30, "send_concurrency": 4})
    ids = _stock(
        settings, *[(f"reader{n}@example.org", ["TTS", "prosody"], "UTC", 7) for n in range(6)]
    )
    assert _plan_latest_day(settings) == 6
    clear_template_caches()
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.failed) == (6, 0)
    # Equal digests in a wave go out as one request, each reader's links substituted in.
    assert len(fake_sendgrid.accepted) < 6
    delivered = fake_sendgrid.delivered()
    assert len(delivered) == 6
    # One render: the messages differ only in each reader's own tokens (feedback, manage ...).
    heads = {
        re.sub(r"/feedback/[\w.-]+/", "/feedback/-/", m.html).split("/manage/")[0]
        for m in delivered
    }
    assert len(heads) == 1
    assert not any("placeholder" in m.html + m.text + str(m.headers) for m in delivered)
    keys = settings.signing_keys()
    by_address = {}
    for message in delivered:
        one_click = message.headers["List-Unsubscribe"].strip("<>")
        token = one_click.rsplit("/", 1)[1]
        sid, _ = read_token(keys=keys, purpose=Purpose.unsubscribe, token=token)
        by_address[message.to] = sid
        assert one_click in message.text  # the text part carries the same link
        feedback = re.findall(r"/feedback/([\w.-]+)/", message.html)
        assert feedback and {read_token(keys=keys, purpose=Purpose.feedback, token=t)
                             for t in feedback} == {(sid, "")}
    assert by_address == {f"reader{n}@example.org": ids[n] for n in range(6)}
    with session_scope(settings.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery)))
    assert {r.status for r in rows} == {ledger.DeliveryStatus.sent}
    assert all(r.sent_at and r.sent_at <= datetime.now(UTC) for r in rows)


def test_equal_plans_split_when_a_subscriber_changed_keywords_before_the_send(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    ids = _stock(settings, *[(f"reader{n}@example.org", ["TTS"], "UTC", 7) for n in range(4)])
    assert _plan_latest_day(settings) == 4
    with session_scope(settings.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery).order_by(ledger.Delivery.id)))
        assert len({r.share for r in rows}) == 1  # planned alike, ids side by side
        assert [r.id for r in rows] == list(range(rows[0].id or 0, (rows[0].id or 0) + 4))
        reader = session.get(Subscriber, ids[3])
        assert reader is not None
        reader.keywords = ["TTS", "quokkas"]  # edited on the manage page after planning
        session.add(reader)
    clear_template_caches()
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.failed) == (4, 0)
    # Three share one request; the fourth gets a digest of its own, with its new keywords.
    assert sorted(len(a.body["personalizations"]) for a in fake_sendgrid.accepted) == [1, 3]
    texts = {m.to: m.text for m in fake_sendgrid.delivered()}
    assert "quokkas" in texts["reader3@example.org"]
    assert not any("quokkas" in texts[f"reader{n}@example.org"] for n in range(3))


def test_a_refused_shared_request_sends_each_reader_alone_and_fails_only_the_refused_one(
    migrated: Settings, fake_sendgrid: FakeSendGrid
) -> None:
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, *[(f"reader{n}@example.org", ["TTS"], "UTC", 7) for n in range(5)])
    assert _plan_latest_day(settings) == 5
    clear_template_caches()
    fake_sendgrid.fail_next(400)  # the shared request: a 400 names a field, not a recipient
    fake_sendgrid.fail_next(400, after=2)  # then, sent alone, the third reader's own message
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.failed, report.retried) == (4, 1, 0)
    assert [len(body["personalizations"]) for _, body in fake_sendgrid.refused] == [5, 1]
    assert sorted(len(a.body["personalizations"]) for a in fake_sendgrid.accepted) == [1] * 4
    with session_scope(settings.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery)))
    (failed,) = [r for r in rows if r.status == ledger.DeliveryStatus.failed]
    assert (failed.last_error or "").startswith("SendGrid 400")
    refused_alone = fake_sendgrid.refused[1][1]["personalizations"][0]
    assert int(refused_alone["custom_args"]["delivery_id"]) == failed.id
    delivered = {m.to for m in fake_sendgrid.delivered()}
    assert len(delivered) == 4 and refused_alone["to"][0]["email"] not in delivered


def test_a_public_url_that_would_break_links_is_refused_at_startup() -> None:
    """Every reader's links start with DIGEST_PUBLIC_URL and are checked once on that shape."""
    from pydantic import ValidationError

    from core.settings import Settings

    for bad in ("digest.example.org", "javascript:alert(1)", "https://x.org/?a=1&b=2",
                'https://x.org/"><script>', "https://x.org/a b"):
        with pytest.raises(ValidationError, match="DIGEST_PUBLIC_URL"):
            Settings(_env_file=None, public_url=bad)  # type: ignore[call-arg]
    assert Settings(_env_file=None, public_url="https://x.org/digest").public_url  # type: ignore[call-arg]


@pytest.mark.parametrize("kept", [2, 3])
def test_renders_forgotten_between_waves_never_leave_a_digest_without_its_papers(
    migrated: Settings, fake_sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch, kept: int
) -> None:
    """A wave reads the payloads and papers of only the rows whose render it keeps; what it
    keeps is forgotten at a wave's start, never inside one. Pairs of equal digests in claims
    of three straddle waves, so the second of a pair finds its render kept (room for 3) or
    forgotten just before its wave (room for 2): every reader gets the papers planned."""
    from workers import compose

    monkeypatch.setattr(compose, "MAX_RUN_RENDERS", kept)
    settings = migrated.model_copy(update={"lookback_days": 30, "send_batch_size": 3})
    topics = ["TTS", "speech codec", "voice conversion", "prosody", "speaker verification",
              "audio captioning"]
    _stock(settings, *[(f"reader{n}@example.org", [topics[n // 2]], "UTC", 7)
                       for n in range(2 * len(topics))])
    assert _plan_latest_day(settings) == 2 * len(topics)
    with session_scope(settings.sqlalchemy_url) as session:
        rows = list(session.exec(select(ledger.Delivery)))
    assert len({row.share for row in rows}) == len(topics)
    picks = {row.id: set(row.picks or ()) for row in rows}
    clear_template_caches()
    transport = SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url)
    report = sending.send_due(settings=settings, transport=transport)
    assert (report.sent, report.failed, report.retried) == (len(rows), 0, 0)
    shown = {}
    for accepted in fake_sendgrid.accepted:
        html = accepted.body["content"][1]["value"]
        for person in accepted.body["personalizations"]:
            shown[int(person["custom_args"]["delivery_id"])] = set(
                re.findall(r"arXiv:([\w.]+)", html))
    assert shown == picks and all(picks.values())
