"""The per-address cap on confirmation emails survives erasure: an attacker who asks to move
their subscription to a victim's address, erases themselves and starts over, gets the victim
three "confirm your new address" emails a day, not three per round. And one address can ask
for only so many address changes a day, however often its subscriber is erased."""

from __future__ import annotations

from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers.models import AddressMail, address_key, email_hash
from tests.support.outbox import send
from tests.support.tokens import manage, signed_up
from tests.support.web_app import client_for, free_period_slots

VICTIM = "victim@example.org"


def ask_to_move(settings: Settings, sid: int, new_email: str) -> str:
    """The manage page's "change address" form, as the attacker submits it; the redirect's
    `done` says whether a confirmation was sent ("email-sent") or refused ("limit")."""
    client = client_for(settings)
    url, csrf = manage(client, settings, sid)
    response = client.post(f"{url}/email", data={"csrf": csrf, "new_email": new_email},
                           follow_redirects=False)
    assert response.status_code == 303
    free_period_slots(settings)  # account emails are keyed per second; as time would pass
    return str(response.headers["location"]).rsplit("done=", 1)[-1]


def erase(settings: Settings, sid: int) -> None:
    client = client_for(settings)
    url, csrf = manage(client, settings, sid)
    assert client.post(f"{url}/erase", data={"csrf": csrf, "confirm": "yes"}).status_code == 200


def mails_to(settings: Settings, address: str) -> int:
    return sum(1 for message in send(settings) if message["To"] == address)


def test_erasing_the_asker_does_not_reset_the_victims_cap(both: Settings) -> None:
    answers = []
    for round_ in range(3):
        attacker = signed_up(both, email=f"attacker{round_}@example.org")
        answers += [ask_to_move(both, attacker, VICTIM) for _ in range(3)]
        send(both)  # the emails leave before the attacker erases the evidence
        erase(both, attacker)
    assert answers == ["email-sent"] * 3 + ["limit"] * 6
    assert mails_to(both, VICTIM) == 3
    with session_scope(both.sqlalchemy_url) as session:
        keys = set(session.exec(select(AddressMail.address_key)))
    # Kept as a keyed hash: neither the address nor its plain hash is stored.
    assert address_key(VICTIM, both.signing_keys()[0]) in keys
    assert not {VICTIM, email_hash(VICTIM)} & keys


def test_one_address_asks_for_three_changes_a_day_erased_or_not(both: Settings) -> None:
    attacker = signed_up(both, email="attacker@example.org")
    first = [ask_to_move(both, attacker, f"victim{n}@example.org") for n in range(4)]
    assert first == ["email-sent"] * 3 + ["limit"]
    erase(both, attacker)
    again = signed_up(both, email="attacker@example.org")  # a fresh subscriber, same address
    assert ask_to_move(both, again, "victim9@example.org") == "limit"
    assert mails_to(both, "victim9@example.org") == 0
