"""SendGridTransport against a local SendGrid v3 server that validates every request body."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

import httpx
import pytest

from emails.message import Message
from emails.transports.base import (
    BatchSendError,
    PermanentSendError,
    Recipient,
    TransientSendError,
)
from emails.transports.sendgrid import MAX_PERSONALIZATIONS, SendGridTransport
from emails.transports.throttle import TokenBucket
from tests.support import fake_sendgrid as fake_server
from tests.support.fake_sendgrid import FakeSendGrid

fake_sendgrid = fake_server.fake_sendgrid  # the fixture, defined beside the server it starts

UNSUBSCRIBE = {
    "List-Unsubscribe": "<-unsubscribe_url->, <mailto:leave@papers.example>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def daily(**changes: object) -> Message:
    fields: dict[str, object] = {
        "to": "Ada Lovelace <ada@example.org>",
        "subject": "Your papers for Tuesday",
        "html": "<p>Three papers on <b>speech synthesis</b></p>",
        "text": "Three papers on speech synthesis",
        "sender": "Paper Digest <digest@papers.example>",
        "headers": {
            "List-Unsubscribe": "<https://digest.test/u/tok-ada>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "tags": {"delivery_id": "42"},
        "categories": ("daily",),
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


@pytest.fixture
def transport(fake_sendgrid: FakeSendGrid) -> Iterator[SendGridTransport]:
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url, timeout=5) as sender:
        yield sender


def test_accepted_send_returns_the_message_id_and_a_valid_body(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    message_id = transport.send(daily())
    [accepted] = fake_sendgrid.accepted
    assert message_id == accepted.message_id and message_id
    assert fake_sendgrid.invalid == []
    assert list(fake_sendgrid.validator.iter_errors(accepted.body)) == []
    body = accepted.body
    assert body["from"] == {"email": "digest@papers.example", "name": "Paper Digest"}
    assert body["personalizations"] == [
        {
            "to": [{"email": "ada@example.org", "name": "Ada Lovelace"}],
            "custom_args": {"delivery_id": "42"},
        }  # noqa: E501
    ]
    assert "custom_args" not in body  # top level is typed string in the schema: never used
    assert body["categories"] == ["daily"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert accepted.headers["Authorization"] == f"Bearer {fake_sendgrid.api_key}"


def test_the_fake_really_validates(fake_sendgrid: FakeSendGrid) -> None:
    auth = {"Authorization": f"Bearer {fake_sendgrid.api_key}"}
    url = f"{fake_sendgrid.url}/v3/mail/send"
    no_recipient = {"personalizations": [{}], "from": {"email": "a@b.c"}, "subject": "s"}
    reply = httpx.post(url, json=no_recipient, headers=auth)
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["field"] == "personalizations.0"
    html_first: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "x@y.z"}]}],
        "from": {"email": "a@b.c"},
        "subject": "s",
        "content": [{"type": "text/html", "value": "<p>"}, {"type": "text/plain", "value": "t"}],
    }
    assert httpx.post(url, json=html_first, headers=auth).status_code == 400
    plain_first = html_first | {"content": html_first["content"][::-1]}
    assert httpx.post(url, json=plain_first).status_code == 401  # no Authorization header
    not_an_address = plain_first | {"personalizations": [{"to": [{"email": "not-an-email"}]}]}
    reply = httpx.post(url, json=not_an_address, headers=auth)  # formats are checked too
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["field"] == "personalizations.0.to.0.email"
    assert len(fake_sendgrid.invalid) == 3 and fake_sendgrid.accepted == []


def test_429_is_transient_until_the_rate_limit_resets(fake_sendgrid: FakeSendGrid) -> None:
    now = 2_000_000_000.0
    fake_sendgrid.fail_next(429, reset_at=int(now) + 30)
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url, clock=lambda: now) as sender:
        with pytest.raises(TransientSendError, match="429") as raised:
            sender.send(daily())
        assert raised.value.retry_after == 30.0
        assert sender.send(daily())  # the fault was for one request only
    assert len(fake_sendgrid.accepted) == 1


def test_500_is_transient(fake_sendgrid: FakeSendGrid, transport: SendGridTransport) -> None:
    fake_sendgrid.fail_next(500, 2)
    for _ in range(2):
        with pytest.raises(TransientSendError, match="500") as raised:
            transport.send(daily())
        assert raised.value.retry_after is None
    transport.send(daily())
    assert len(fake_sendgrid.accepted) == 1


def test_a_hang_times_out_as_transient(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.fail_next("hang")
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url, timeout=0.2) as transport:
        with pytest.raises(TransientSendError, match="timed out"):
            transport.send(daily())
        assert transport.send(daily())  # a new connection replaces the abandoned one
    assert len(fake_sendgrid.accepted) == 1


def test_400_is_permanent_with_the_providers_message(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    message = "The from address does not match a verified Sender Identity."
    fake_sendgrid.fail_next(400, errors=[{"message": message, "field": "from"}])
    with pytest.raises(PermanentSendError) as raised:
        transport.send(daily())
    assert str(raised.value) == f"SendGrid 400: {message} (field: from)"


def test_a_wrong_api_key_is_permanent(fake_sendgrid: FakeSendGrid) -> None:
    with (
        SendGridTransport("SG.wrong", fake_sendgrid.url) as transport,
        pytest.raises(PermanentSendError, match="401: The provided authorization grant"),
    ):
        transport.send(daily())


def test_an_unreachable_host_is_transient() -> None:
    with (
        SendGridTransport("SG.key", "http://127.0.0.1:9", timeout=2) as transport,
        pytest.raises(TransientSendError, match="unreachable"),
    ):
        transport.send(daily())


def test_connections_are_reused(fake_sendgrid: FakeSendGrid, transport: SendGridTransport) -> None:
    for _ in range(5):
        transport.send(daily())
    assert fake_sendgrid.requests == 5
    assert fake_sendgrid.connections == 1


def test_concurrent_sends_share_the_pool(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    def work(worker: int) -> None:
        for n in range(10):
            transport.send(daily(tags={"delivery_id": f"{worker}-{n}"}))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = {p["custom_args"]["delivery_id"] for p in fake_sendgrid.personalizations()}
    assert len(ids) == 40
    assert fake_sendgrid.connections <= 4


def recipients(count: int) -> list[Recipient]:
    return [
        Recipient(
            email=f"reader{i}@example.org",
            substitutions={
                "-manage_url-": f"https://digest.test/m/tok{i}",
                "-unsubscribe_url-": f"https://digest.test/u/tok{i}",
            },
            tags={"delivery_id": str(1000 + i)},
        )
        for i in range(count)
    ]


def monthly() -> Message:
    return daily(
        to="",
        subject="Clippings, April",
        html='<p>Highlights</p><a href="-manage_url-">Edit</a><a href="-unsubscribe_url-">Go</a>',
        text="Highlights\nEdit: -manage_url-\nLeave: -unsubscribe_url-",
        headers=UNSUBSCRIBE,
        tags={},
        categories=("monthly",),
    )


def test_batch_splits_into_requests_of_1000_with_personal_links(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    ids = transport.send_batch(monthly(), recipients(2500))
    accepted = fake_sendgrid.accepted
    assert ids == [item.message_id for item in accepted]
    assert [len(item.body["personalizations"]) for item in accepted] == [1000, 1000, 500]
    assert fake_sendgrid.invalid == []
    body = accepted[1].body
    assert "-manage_url-" in body["content"][1]["value"]  # SendGrid fills the body in
    personal = body["personalizations"][7]  # recipient 1007
    assert personal["to"] == [{"email": "reader1007@example.org"}]
    assert personal["custom_args"] == {"delivery_id": "2007"}
    assert personal["substitutions"] == {
        "-manage_url-": "https://digest.test/m/tok1007",
        "-unsubscribe_url-": "https://digest.test/u/tok1007",
    }
    assert personal["headers"]["List-Unsubscribe"] == (
        "<https://digest.test/u/tok1007>, <mailto:leave@papers.example>"
    )
    everyone = [p["to"][0]["email"] for p in fake_sendgrid.personalizations()]
    assert everyone == [f"reader{i}@example.org" for i in range(2500)]


def test_a_failed_batch_request_says_how_far_it_got(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    fake_sendgrid.fail_next(503, 1, after=1)  # the batch's second request fails
    with pytest.raises(BatchSendError) as raised:
        transport.send_batch(monthly(), recipients(2500))
    assert raised.value.accepted == 1000
    assert isinstance(raised.value.error, TransientSendError)
    assert raised.value.message_ids == [fake_sendgrid.accepted[0].message_id]
    assert fake_sendgrid.requests == 2
    assert len(fake_sendgrid.personalizations()) == 1000


def test_a_batch_rejected_by_the_provider_is_permanent(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    fake_sendgrid.fail_next(400, errors=[{"message": "Invalid type.", "field": "content.0"}])
    with pytest.raises(BatchSendError, match="Invalid type") as raised:
        transport.send_batch(monthly(), recipients(3))
    assert raised.value.accepted == 0
    assert isinstance(raised.value.error, PermanentSendError)


class FakeClock:
    """Virtual time: sleeping advances it, so throttling is tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_holds_the_ceiling() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(31):
        bucket.acquire()
    assert clock.now == pytest.approx(3.0)  # the first is free, then one per 0.1 s
    clock.now += 60  # idle: the bucket refills, but only up to its burst of one
    assert bucket.acquire() == 0
    assert bucket.acquire() == pytest.approx(0.1)


def test_token_bucket_reservations_are_thread_safe() -> None:
    clock = FakeClock()  # frozen: every reservation must queue behind the previous ones
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([n / 10 for n in range(400)])


def test_batches_are_throttled_per_recipient(fake_sendgrid: FakeSendGrid) -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    with SendGridTransport(fake_sendgrid.api_key, fake_sendgrid.url, throttle=bucket) as transport:
        transport.send_batch(monthly(), recipients(2500))
    assert clock.now == pytest.approx(2.499)  # 2,500 messages at 1,000/s, the first one free


def test_every_body_on_the_wire_validates_against_the_published_schema(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    """Besides the fake's own check (which answers 400), each body `send` and `send_batch`
    produced validates against tsg_mail_v3.json and the API's extra rules, asserted here."""
    transport.send(daily())
    transport.send(daily(text="", to='"Lovelace, Ada" <ada@example.org>'))  # html only
    transport.send_batch(monthly(), recipients(3))
    template = daily(headers=UNSUBSCRIBE, categories=("monthly", "monthly"))
    transport.send_batch(template, [*recipients(2), Recipient("Alan <alan@example.org>")])
    bodies = [item.body for item in fake_sendgrid.accepted]
    assert len(bodies) == 4 and fake_sendgrid.invalid == []
    for body in bodies:
        assert list(fake_sendgrid.validator.iter_errors(body)) == []
        assert fake_server.api_rule_errors(body) == []
        assert "custom_args" not in body  # the published schema types it as a string
    assert bodies[1]["content"] == [{"type": "text/html", "value": daily().html}]
    assert bodies[3]["categories"] == ["monthly"]  # the schema wants them unique


def test_recipient_names_are_quoted_as_one_mailbox(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    """SendGrid writes a recipient's name into To: as given; a comma would split it."""
    transport.send(daily(to='"Lovelace, Ada" <ada@example.org>'))
    transport.send_batch(
        monthly(),
        [
            Recipient("turing@example.org", name='Alan "Prof." Turing'),
            Recipient("Grace Hopper <grace@example.org>"),
            Recipient("karen@example.org", name="Dr. K.\r\nBcc: x@evil.example"),
        ],
    )
    people = [p["to"][0] for p in fake_sendgrid.personalizations()]
    assert people[0] == {"email": "ada@example.org", "name": '"Lovelace, Ada"'}
    assert people[1] == {"email": "turing@example.org", "name": '"Alan \\"Prof.\\" Turing"'}
    assert people[2] == {"email": "grace@example.org", "name": "Grace Hopper"}
    assert people[3] == {"email": "karen@example.org", "name": '"Dr. K. Bcc: x@evil.example"'}
    for person, (name, address) in zip(people[:3], [
        ("Lovelace, Ada", "ada@example.org"),
        ('Alan "Prof." Turing', "turing@example.org"),
        ("Grace Hopper", "grace@example.org"),
    ], strict=True):  # the To: header SendGrid writes reads back as the one intended mailbox
        assert parseaddr(f"{person['name']} <{person['email']}>") == (name, address)
        assert len(getaddresses([f"{person['name']} <{person['email']}>"])) == 1
    sender = fake_sendgrid.accepted[0].body["from"]  # SendGrid quotes From: itself
    assert sender == {"email": "digest@papers.example", "name": "Paper Digest"}


def test_headers_are_shared_unless_a_recipients_links_change_them(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    template = daily(
        to="", subject="Clippings for -manage_url-", headers=UNSUBSCRIBE, tags={"kind": "monthly"}
    )
    transport.send_batch(template, [*recipients(2), Recipient("plain@example.org")])
    [accepted] = fake_sendgrid.accepted
    assert accepted.body["headers"] == UNSUBSCRIBE  # once, as rendered
    first, _, plain = accepted.body["personalizations"]
    assert first["headers"] == {
        "List-Unsubscribe": "<https://digest.test/u/tok0>, <mailto:leave@papers.example>"
    }
    assert first["custom_args"] == {"kind": "monthly", "delivery_id": "1000"}
    assert plain == {"to": [{"email": "plain@example.org"}], "custom_args": {"kind": "monthly"}}
    delivered = fake_sendgrid.delivered()  # as SendGrid fills them in
    assert delivered[1].subject == "Clippings for https://digest.test/m/tok1"
    assert delivered[1].headers["List-Unsubscribe"].startswith("<https://digest.test/u/tok1>")
    assert delivered[1].headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_custom_args_go_as_strings(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    transport.send(daily(tags={"delivery_id": 42, "retry": True}))
    [personalization] = fake_sendgrid.personalizations()
    assert personalization["custom_args"] == {"delivery_id": "42", "retry": "True"}


def test_an_encoded_word_address_is_refused_before_any_request(
    fake_sendgrid: FakeSendGrid,
    transport: SendGridTransport,
) -> None:
    hostile = "=?utf-8?q?x=40evil.example?=@example.org"
    with pytest.raises(PermanentSendError, match="encoded word"):
        transport.send(daily(to=hostile))
    with pytest.raises(PermanentSendError, match="control character"):  # parseaddr: x@evil
        transport.send(daily(to="Karen\r\nBcc: x@evil.example <karen@example.org>"))
    people = [*recipients(MAX_PERSONALIZATIONS), Recipient(hostile)]
    with pytest.raises(BatchSendError, match="encoded word") as raised:
        transport.send_batch(monthly(), people)
    assert raised.value.accepted == MAX_PERSONALIZATIONS  # the first request went out
    assert isinstance(raised.value.error, PermanentSendError)
    assert fake_sendgrid.requests == 1


def test_the_transport_needs_no_sendgrid_library() -> None:
    code = (
        "import sys, emails.transports.sendgrid as m; "
        "assert m.SendGridTransport.batch_limit == 1000 and m.SendGridTransport.thread_safe; "
        "loaded = {n.split('.')[0] for n in sys.modules}; "
        "assert not loaded & {'sendgrid', 'python_http_client'}, loaded"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert done.returncode == 0, done.stderr
