"""Which addresses can subscribe: only ones every transport can deliver, as they were typed.

Refused, with a message that says why, on the signup page, in `digest subscribers add` and in
the admin CSV import: an RFC 2047 encoded word (mail software decodes it in the To header, so
`=?utf-8?q?x=40evil.example?=@example.org` would reach a mailbox at evil.example), and
characters outside ASCII before the @ (they need SMTPUTF8, which SendGrid and most relays do
not offer). An internationalised domain is fine: it is kept in its IDNA (xn--) form.
"""

from __future__ import annotations

from html import unescape
from pathlib import Path

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers.models import Subscriber
from subscribers.service import InvalidInput, normalize_email
from tests.support import admin_helpers as admin
from tests.support.cli import run
from tests.support.web_app import client_for, form_token, signup_form
from workers.migrate import upgrade

ENCODED_WORD = "=?utf-8?q?x=40evil.example?=@example.org"
UNICODE_LOCAL = "用户@例子.广告"
REFUSED = [
    (ENCODED_WORD, "encoded word"),
    ("ada=?utf-8?b?QGV2aWwuZXhhbXBsZQ==?=@example.org", "encoded word"),
    (UNICODE_LOCAL, "plain ASCII letters before the @"),
    ("josé@example.org", "plain ASCII letters before the @"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_addresses_no_transport_can_carry_safely_are_refused(address: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        normalize_email(address)


def test_an_internationalised_domain_is_kept_in_its_ascii_form() -> None:
    assert normalize_email("Ada@Bücher.example") == "ada@xn--bcher-kva.example"
    assert normalize_email("ada@xn--bcher-kva.example") == "ada@xn--bcher-kva.example"


def _emails(settings: Settings) -> set[str]:
    with session_scope(settings.sqlalchemy_url) as session:
        return set(session.exec(select(Subscriber.email)))


@pytest.mark.parametrize(("address", "why"), REFUSED[::2])
def test_the_signup_page_says_why_and_stores_nothing(
    settings: Settings, address: str, why: str
) -> None:
    upgrade(settings)
    client = client_for(settings)
    response = client.post("/subscribe", data=signup_form(form_token(client), email=address))
    assert response.status_code == 400
    assert why in unescape(response.text)
    assert _emails(settings) == set()


def test_the_signup_page_takes_an_internationalised_domain(settings: Settings) -> None:
    upgrade(settings)
    client = client_for(settings)
    form = signup_form(form_token(client), email="ada@bücher.example")
    response = client.post("/subscribe", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert _emails(settings) == {"ada@xn--bcher-kva.example"}


@pytest.mark.slow
@pytest.mark.parametrize(("address", "why"), REFUSED[::2])
def test_cli_subscribers_add_refuses_in_one_line(var_dir: Path, address: str, why: str) -> None:
    result = run(var_dir, "subscribers", "add", address, "--keywords", "TTS")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and why in line, line


def test_csv_import_reports_the_refused_lines_and_adds_the_rest(migrated: Settings) -> None:
    settings = admin.admin_settings(migrated)
    rows = ["email,keywords", "ada@example.org,TTS", f"{ENCODED_WORD},TTS",
            f"{UNICODE_LOCAL},TTS", "grace@bücher.example,TTS"]  # fmt: skip
    client = admin.client_for(settings)
    token = admin.login(client)
    answer = client.post(
        "/admin/subscribers/import", data={"csrf": token},
        files={"file": ("list.csv", "\n".join(rows).encode(), "text/csv")},
    )  # fmt: skip
    assert answer.status_code == 200
    report = unescape(answer.text.split('id="import-report"')[1].split("</div>")[0])
    assert "Imported 2 subscribers." in report and "Skipped 2 lines" in report
    assert "encoded word" in report.split("Line 3: ")[1]
    assert "plain ASCII letters before the @" in report.split("Line 4: ")[1]
    assert _emails(settings) == {"ada@example.org", "grace@xn--bcher-kva.example"}
