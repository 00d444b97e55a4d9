"""The outbox transport: real .eml files a mail client could open, and an index to browse them."""

from __future__ import annotations

import re
from datetime import date
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.settings import Settings
from digest.daily import DailyDigest, Pick, Section
from digest.papers import Paper
from emails.links import substitutions
from emails.message import Message
from emails.render import RecipientLinks, render_daily, shared_daily
from emails.transports import (
    OutboxTransport,
    PermanentSendError,
    TransientSendError,
    make_transport,
    write_index,
)
from emails.transports.base import BatchSendError, Recipient
from emails.transports.sendgrid import SendGridTransport
from emails.transports.smtp import SMTPTransport

FILE_NAME = re.compile(r"^\d{8}T\d{12}Z-[a-z0-9-]+-[0-9a-f]{8}\.eml$")


def daily_digest(title: str) -> DailyDigest:
    paper = Paper(
        arxiv_id="2601.20481",
        title=title,
        abstract="Modern zero-shot text-to-speech (TTS) models offer unprecedented expressivity.",
        authors=["Ada Lovelace", "Alan Turing"],
        categories=["cs.SD", "eess.AS"],
        announced_on=date(2026, 1, 29),
    )
    digest = DailyDigest(
        day=date(2026, 1, 29),
        keywords=("tts",),
        sections=(Section(keyword="tts", picks=(Pick(paper=paper, score=3.0, matched=("tts",)),)),),
    )
    return digest


def links_for(to: str) -> RecipientLinks:
    token = re.sub(r"\W", "", to)
    return RecipientLinks(
        manage_url=f"https://digest.test/manage/{token}",
        unsubscribe_url=f"https://digest.test/unsubscribe/{token}",
        one_click_url=f"https://digest.test/unsubscribe/{token}/one-click",
    )


def daily_message(to: str, title: str) -> Message:
    return render_daily(
        daily_digest(title),
        to=to,
        sender="Paper Digest <digest@digest.test>",
        links=links_for(to),
        postal_address="Paper Digest, 12 Test Lane, 75000 Paris",
    )


def parse_eml(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        parsed = BytesParser(policy=policy.default).parse(handle)
    assert isinstance(parsed, EmailMessage)
    return parsed


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.iframes: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "iframe":
            self.iframes.append(values.get("src") or "")


def test_two_messages_round_trip_as_rfc5322(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox)
    first = daily_message("Ada.Lovelace@example.org", "Erasing Your Voice Before It's Heard")
    second = daily_message("alan@example.org", "SPADE: Structured Pruning for LLM-TTS")
    ids = [transport.send(first), transport.send(second)]
    assert transport.name == "outbox"
    assert len(set(ids)) == 2

    emls = sorted(outbox.glob("*.eml"))
    assert len(emls) == 2
    assert not list(outbox.glob("*.tmp")) and not list(outbox.glob(".*"))
    for path, message, message_id in zip(emls, (first, second), ids, strict=True):
        assert FILE_NAME.match(path.name), path.name
        parsed = parse_eml(path)
        assert parsed.get_content_type() == "multipart/alternative"
        parts = list(parsed.iter_parts())
        assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
        assert parts[0].get_content() == message.text.replace("\r\n", "\n")
        assert parts[1].get_content() == message.html
        assert parsed["From"] == message.sender
        assert parsed["To"] == message.to
        assert parsed["Subject"] == message.subject == "Paper Digest · 29 Jan 2026 · 1 new paper"
        assert parsed["Message-ID"] == f"<{message_id}>"
        assert parsed["Date"]
        assert parsed["List-Unsubscribe"] == message.headers["List-Unsubscribe"]
        assert parsed["List-Unsubscribe"].startswith("<https://digest.test/unsubscribe/")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["X-Digest-Categories"] == "daily"
        preview = path.with_suffix(".html")
        assert preview.read_text(encoding="utf-8") == message.html
    assert "ada-lovelace-example-org" in emls[0].name
    assert "alan-example-org" in emls[1].name
    # Every line of the raw file is CRLF-terminated and short enough for SMTP.
    raw = emls[0].read_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_long_list_unsubscribe_url_stays_literal(tmp_path: Path) -> None:
    message = daily_message("ada@example.org", "A paper")
    url = "https://digest.test/unsubscribe/one-click?token=" + "t0k3n" * 40
    message = Message(
        to=message.to,
        subject=message.subject,
        html=message.html,
        text=message.text,
        sender=message.sender,
        headers={**message.headers, "List-Unsubscribe": f"<{url}>"},
    )
    OutboxTransport(tmp_path).send(message)
    (path,) = tmp_path.glob("*.eml")
    # Mail clients read this header literally: no RFC 2047 encoded words, no URL cut in two.
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in path.read_bytes()
    assert parse_eml(path)["List-Unsubscribe"] == f"<{url}>"


def test_index_lists_every_message_newest_first(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path)
    transport.send(daily_message("ada@example.org", "First <script>alert(1)</script> paper"))
    transport.send(daily_message("alan@example.org", "Second paper"))
    index = write_index(tmp_path)
    assert index == tmp_path / "index.html"
    page = index.read_text(encoding="utf-8")
    links = Links()
    links.feed(page)
    emls = sorted(path.name for path in tmp_path.glob("*.eml"))
    assert [href for href in links.hrefs if href.endswith(".eml")] == emls[::-1]
    assert links.iframes == [name.replace(".eml", ".html") for name in emls[::-1]]
    assert page.index("alan@example.org") < page.index("ada@example.org")
    assert "2 messages" in page
    assert "Paper Digest · 29 Jan 2026 · 1 new paper" in page
    assert "script" not in links.tags  # the hostile title in the text part stays text
    assert "First &lt;script&gt;alert(1)&lt;/script&gt; paper" in page
    assert 'sandbox="allow-popups' in page


def test_index_of_an_empty_outbox(tmp_path: Path) -> None:
    page = write_index(tmp_path / "new").read_text(encoding="utf-8")
    assert "0 messages" in page and "Nothing sent yet" in page


def test_header_injection_is_a_permanent_failure(tmp_path: Path) -> None:
    message = daily_message("ada@example.org", "A paper")
    hostile = Message(
        to=message.to,
        subject=message.subject,
        html=message.html,
        text=message.text,
        sender=message.sender,
        headers={"X-Note": "hello\r\nBcc: victim@example.org"},
    )
    with pytest.raises(PermanentSendError):
        OutboxTransport(tmp_path).send(hostile)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_writes_each_reader_what_a_single_send_would(tmp_path: Path) -> None:
    shared = shared_daily(
        daily_digest("A paper"),
        sender="Paper Digest <digest@digest.test>",
        postal_address="Paper Digest, 12 Test Lane, 75000 Paris",
        feedback=False,
    )
    readers = ["ada@example.org", "alan@example.org"]
    batch = [Recipient(to, substitutions=substitutions(links_for(to))) for to in readers]
    transport = OutboxTransport(tmp_path / "batch")
    assert (transport.batch_limit, transport.thread_safe) == (1, True)
    ids = transport.send_batch(shared, batch)
    assert len(set(ids)) == 2
    emls = sorted((tmp_path / "batch").glob("*.eml"))
    for path, to, message_id in zip(emls, readers, ids, strict=True):
        parsed, single = parse_eml(path), daily_message(to, "A paper")
        assert parsed["To"] == to and parsed["Message-ID"] == f"<{message_id}>"
        assert parsed["List-Unsubscribe"] == single.headers["List-Unsubscribe"]
        plain, html = parsed.iter_parts()
        assert plain.get_content() == single.text.replace("\r\n", "\n")
        assert html.get_content() == single.html
        assert "placeholder" not in path.read_text(encoding="utf-8")


def test_a_batch_stops_at_the_message_that_cannot_be_written(tmp_path: Path) -> None:
    shared = daily_message("", "A paper")
    batch = [Recipient("ada@example.org"), Recipient("=?utf-8?q?x=40evil.example?=@example.org"),
             Recipient("alan@example.org")]
    with pytest.raises(BatchSendError, match="encoded word") as raised:
        OutboxTransport(tmp_path).send_batch(shared, batch)
    assert raised.value.accepted == 1 and len(raised.value.message_ids) == 1
    assert isinstance(raised.value.error, PermanentSendError)
    assert [parse_eml(path)["To"] for path in tmp_path.glob("*.eml")] == ["ada@example.org"]


def test_unwritable_outbox_is_a_transient_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(TransientSendError):
        OutboxTransport(blocker).send(daily_message("ada@example.org", "A paper"))


def test_make_transport(settings: Settings) -> None:
    transport = make_transport(settings)
    assert isinstance(transport, OutboxTransport)
    assert transport.directory == settings.outbox_path
    with pytest.raises(ValueError, match="needs DIGEST_SMTP_URL"):
        make_transport(settings.model_copy(update={"mail_backend": "smtp"}))
    with pytest.raises(ValueError, match="needs DIGEST_SENDGRID_API_KEY"):
        make_transport(settings.model_copy(update={"mail_backend": "sendgrid"}))
    smtp = make_transport(settings.model_copy(update={"mail_backend": "smtp",
                                                      "smtp_url": "smtp://localhost:1025"}))
    assert isinstance(smtp, SMTPTransport)
    sendgrid = make_transport(settings.model_copy(update={"mail_backend": "sendgrid",
                                                          "sendgrid_api_key": "SG.x"}))
    assert isinstance(sendgrid, SendGridTransport)
