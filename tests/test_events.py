"""SendGrid Event Webhook: real ECDSA signatures, a realistic event batch, what each event means."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook

from emails.events import (
    Effect,
    ProviderEvent,
    classify,
    load_public_key,
    parse_events,
    verify_signature,
)
from tests.support.sendgrid_events import TIMESTAMP, public_b64, sign


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def event(kind: str, n: int, **fields: object) -> dict[str, object]:
    return {
        "email": "ada@example.org",
        "timestamp": 1776859000 + n,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": kind,
        "category": ["daily"],
        "sg_event_id": f"ev-{kind}-{n}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "delivery_id": "42",  # our custom_args arrive as top-level keys
        **fields,
    }


BATCH = [
    event("processed", 1),
    event("deferred", 2, response="400 try again later", attempt="5"),
    event("delivered", 3, response="250 OK"),
    event("delivered", 3, response="250 OK"),  # SendGrid may post an event twice
    event("open", 4, sg_machine_open=False, useragent="Mozilla/5.0"),
    event("click", 5, url="https://arxiv.org/abs/2609.09159", category="daily"),
    event("bounce", 6, type="bounce", bounce_classification="Invalid Address",
          reason="550 5.1.1 The email account that you tried to reach does not exist",
          status="5.1.1"),
    event("bounce", 7, type="blocked", bounce_classification="Reputation",
          reason="550 5.7.1 Service unavailable; client host blocked", status="5.7.1"),
    event("dropped", 8, reason="Bounced Address", status="5.0.0"),
    event("dropped", 9, reason="Spam Content (if Spam Checker app is enabled)"),
    event("spamreport", 10),
    event("unsubscribe", 11),
    event("group_unsubscribe", 12, asm_group_id=1),
    event("group_resubscribe", 13, asm_group_id=1),
]  # fmt: skip


def test_a_valid_signature_verifies(key: ec.EllipticCurvePrivateKey) -> None:
    payload = json.dumps(BATCH).encode()
    assert verify_signature(public_b64(key), payload, sign(key, payload), TIMESTAMP)


def test_the_sendgrid_library_agrees(key: ec.EllipticCurvePrivateKey) -> None:
    payload = json.dumps(BATCH).encode()
    signature = sign(key, payload)
    helper = EventWebhook(public_b64(key))
    assert helper.verify_signature(payload.decode(), signature, TIMESTAMP)
    assert verify_signature(public_b64(key), payload, signature, TIMESTAMP)


def test_a_pem_armoured_key_is_accepted(key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = b"[]"
    assert verify_signature(pem.decode(), payload, sign(key, payload), TIMESTAMP)


@pytest.mark.parametrize(
    "case",
    [
        "other key",
        "tampered body",
        "wrong timestamp",
        "signature not base64",
        "signature not DER",
        "missing signature",
        "missing timestamp",
        "missing key",
        "key not base64",
        "key not a key",
        "P-384 key",
        "body as str",
        "non-ASCII timestamp",
    ],
)
def test_anything_else_is_refused_without_raising(
    key: ec.EllipticCurvePrivateKey, case: str
) -> None:
    payload = json.dumps(BATCH).encode()
    args: dict[str, object] = {
        "public_key_b64": public_b64(key),
        "payload": payload,
        "signature_b64": sign(key, payload),
        "timestamp": TIMESTAMP,
    }
    other = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    changes: dict[str, dict[str, object]] = {
        "other key": {"signature_b64": sign(other, payload)},
        "tampered body": {"payload": payload.replace(b"ada@", b"eve@")},
        "wrong timestamp": {"timestamp": str(int(TIMESTAMP) + 1)},
        "signature not base64": {"signature_b64": "not*base64!"},
        "signature not DER": {"signature_b64": base64.b64encode(b"\x00" * 64).decode()},
        "missing signature": {"signature_b64": None},
        "missing timestamp": {"timestamp": ""},
        "missing key": {"public_key_b64": ""},
        "key not base64": {"public_key_b64": "%%%"},
        "key not a key": {"public_key_b64": base64.b64encode(b"hello").decode()},
        "P-384 key": {"public_key_b64": public_b64(p384), "signature_b64": sign(p384, payload)},
        "body as str": {"payload": payload.decode()},
        "non-ASCII timestamp": {"timestamp": "１７７６"},
    }
    args.update(changes[case])
    assert verify_signature(**args) is False  # type: ignore[arg-type]


def test_load_public_key_explains_a_bad_setting() -> None:
    with pytest.raises(ValueError):
        load_public_key("bm90IGEga2V5")


def test_parse_keeps_order_drops_duplicates_and_reads_custom_args() -> None:
    events = parse_events(json.dumps(BATCH).encode())
    assert len(events) == len(BATCH) - 1
    assert [e.sg_event_id for e in events][:4] == [
        "ev-processed-1",
        "ev-deferred-2",
        "ev-delivered-3",
        "ev-open-4",
    ]
    assert {e.delivery_id for e in events} == {"42"}
    bounce = next(e for e in events if e.sg_event_id == "ev-bounce-6")
    assert bounce == ProviderEvent(
        sg_event_id="ev-bounce-6",
        event="bounce",
        email="ada@example.org",
        timestamp=1776859006,
        delivery_id="42",
        sg_message_id="14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        bounce_type="bounce",
        bounce_classification="Invalid Address",
        reason="550 5.1.1 The email account that you tried to reach does not exist",
        status="5.1.1",
        categories=("daily",),
    )
    click = next(e for e in events if e.event == "click")
    assert click.url == "https://arxiv.org/abs/2609.09159" and click.categories == ("daily",)
    assert click.occurred_at.isoformat() == "2026-04-22T11:56:45+00:00"
    deferred = next(e for e in events if e.event == "deferred")
    assert deferred.reason == "400 try again later"


def test_classify_says_what_each_event_means() -> None:
    effects = {e.sg_event_id: classify(e) for e in parse_events(json.dumps(BATCH).encode())}
    assert effects == {
        "ev-processed-1": Effect.STAT,
        "ev-deferred-2": Effect.STAT,
        "ev-delivered-3": Effect.STAT,
        "ev-open-4": Effect.STAT,
        "ev-click-5": Effect.STAT,
        "ev-bounce-6": Effect.SUPPRESS,
        "ev-bounce-7": Effect.SOFT_BOUNCE,  # blocked: about our reputation, not the address
        "ev-dropped-8": Effect.SUPPRESS,
        "ev-dropped-9": Effect.IGNORE,  # our content, not the subscriber
        "ev-spamreport-10": Effect.SUPPRESS,
        "ev-unsubscribe-11": Effect.SUPPRESS,
        "ev-group_unsubscribe-12": Effect.SUPPRESS,
        "ev-group_resubscribe-13": Effect.IGNORE,
    }


@pytest.mark.parametrize(
    ("fields", "effect"),
    [
        ({"bounce_classification": "Invalid Address"}, Effect.SUPPRESS),
        ({"bounce_classification": "Mailbox Unavailable"}, Effect.SOFT_BOUNCE),
        ({"status": "4.2.2"}, Effect.SOFT_BOUNCE),
        ({"status": "5.1.1"}, Effect.SUPPRESS),
        ({}, Effect.SUPPRESS),
    ],
)
def test_bounces_without_a_type_fall_back_on_their_details(
    fields: dict[str, str], effect: Effect
) -> None:
    item = event("bounce", 1, **fields)
    [parsed] = parse_events(json.dumps([item]).encode())
    assert classify(parsed) is effect


def test_an_event_without_id_gets_a_stable_one() -> None:
    item = event("open", 1)
    del item["sg_event_id"]
    first = parse_events(json.dumps([item]).encode())[0].sg_event_id
    again = parse_events(json.dumps([item, item], indent=2).encode())
    assert [e.sg_event_id for e in again] == [first] and first.startswith("sha256:")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"event": "open"}', "must be a JSON list"),
    ],
)
def test_a_body_that_is_not_a_list_of_events_raises_a_clear_value_error(
    payload: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_events(payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[1]", "event 0 is not a JSON object"),
        (b'[{"email": "a@b.c", "timestamp": 1776859000}]', "event 0 has no 'event'"),
        (b'[{"event": "open", "timestamp": 1776859000}]', "event 0 has no 'email'"),
        (b'[{"event": "open", "email": "a@b.c", "timestamp": "soon"}]', "numeric 'timestamp'"),
        (b'[{"event": "open", "email": "a@b.c", "timestamp": 1e20}]', "impossible"),
        (b'[{"event": "open", "email": "a@b.c", "timestamp": -1e12}]', "impossible"),
        (b'[{"event": "open", "email": "a@b.c", "timestamp": NaN}]', "impossible"),
    ],
)
def test_an_event_that_cannot_be_applied_comes_back_rejected(payload: bytes, message: str) -> None:
    [rejected] = parse_events(payload)  # the rest of a batch is not held hostage by it
    assert rejected.rejected is not None and message in rejected.rejected
    assert rejected.sg_event_id.startswith("sha256:")
    assert parse_events(payload)[0].sg_event_id == rejected.sg_event_id  # stable: recorded once
