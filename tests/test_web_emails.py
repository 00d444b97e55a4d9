"""Account emails, from a signup on the page to an .eml in the outbox, via the real sender.

Every one carries both parts, List-Unsubscribe with RFC 8058 one-click, the postal address,
and links that work; the sender drops a row whose reason to exist went away in the meantime.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import PendingEmail, Status, Subscriber
from subscribers.service import unsubscribe
from subscribers.tokens import Purpose, read_token
from tests.support.outbox import check_every_email_rule, parts, send
from tests.support.subprocess_env import without_digest_settings
from tests.support.tokens import signed_up, token
from tests.support.web_app import client_for, csrf_of, form_token, signup_form

LINK = re.compile(r"http://digest\.test(/[a-z]+/[A-Za-z0-9._-]+)")


def test_signup_to_confirmation_email_to_confirmed(both: Settings) -> None:
    client = client_for(both)
    client.post("/subscribe", data=signup_form(form_token(client),
                                               keywords="speech synthesis\n<b>bold</b>"))
    [message] = send(both)
    check_every_email_rule(message, both)
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Confirm your Paper Digest subscription"
    text, html = parts(message)
    assert "<b>bold</b>" in text and "&lt;b&gt;bold&lt;/b&gt;" in html
    links = dict.fromkeys(LINK.findall(text))
    confirm = next(path for path in links if path.startswith("/confirm/"))
    assert "ada" not in confirm  # tokens carry an id, never the address
    page = client.get(confirm)
    assert page.status_code == 200
    client.post(confirm, data={"csrf": csrf_of(page.text)})
    with session_scope(both.sqlalchemy_url) as session:
        assert session.exec(select(Subscriber.status)).one() == Status.active
        assert session.exec(select(ledger.Delivery.status)).one() == ledger.DeliveryStatus.sent
    # The one-click link in the header works for a mail provider with no cookies at all.
    one_click = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    assert TestClient(client.app).post(one_click, data={"List-Unsubscribe": "One-Click"}
                                       ).status_code == 200
    with session_scope(both.sqlalchemy_url) as session:
        assert session.exec(select(Subscriber.status)).one() == Status.unsubscribed


def test_a_known_address_gets_a_reminder_with_its_manage_link(web: Settings) -> None:
    sid = signed_up(web)
    send(web)
    client = client_for(web)
    # The same choices again (other ones get "use these new keywords?": test_resignup.py).
    client.post("/subscribe", data=signup_form(form_token(client), monthly=""))
    messages = send(web)
    reminder = messages[-1]
    check_every_email_rule(reminder, web)
    assert reminder["Subject"] == "You're already subscribed to Paper Digest"
    text, _ = parts(reminder)
    # Timed tokens embed the second they were signed: read the link back instead of
    # re-signing one to compare strings (which failed whenever a second boundary fell between).
    found = re.search(r"/manage/([A-Za-z0-9_.\-]+)", text)
    assert found, "the reminder carries a manage link"
    keys = web.signing_keys()
    assert read_token(keys=keys, purpose=Purpose.manage, token=found.group(1)) == (sid, "")


def test_a_confirmation_nobody_wants_any_more_is_not_sent(web: Settings) -> None:
    sid = signed_up(web, active=False)
    with session_scope(web.sqlalchemy_url) as session:
        unsubscribe(session=session, subscriber_id=sid, channel="one-click")
    assert send(web) == []
    with session_scope(web.sqlalchemy_url) as session:
        assert session.exec(select(ledger.Delivery.status)).one() == ledger.DeliveryStatus.skipped


def test_address_change_mail_goes_to_the_new_address_without_a_manage_link(
    web: Settings,
) -> None:
    sid = signed_up(web)
    client = client_for(web)
    manage = f"/manage/{token(web, Purpose.manage, sid)}"
    csrf = csrf_of(client.get(manage).text)
    client.post(f"{manage}/email", data={"csrf": csrf, "new_email": "ada@new.example"})
    message = send(web)[-1]
    check_every_email_rule(message, web)
    assert message["To"] == "ada@new.example"
    text, html = parts(message)
    assert "/manage/" not in text and "/manage/" not in html
    stop = message["List-Unsubscribe"].strip("<>").removeprefix("http://digest.test")
    client_for(web).post(stop, data={"List-Unsubscribe": "One-Click"})
    with session_scope(web.sqlalchemy_url) as session:
        assert session.exec(select(PendingEmail)).all() == []
        assert session.get(Subscriber, sid).status == Status.active  # type: ignore[union-attr]


def test_export_mails_the_data_as_json_to_the_address_on_file(web: Settings) -> None:
    sid = signed_up(web)
    client = client_for(web)
    manage = f"/manage/{token(web, Purpose.manage, sid)}"
    client.post(f"{manage}/export", data={"csrf": csrf_of(client.get(manage).text)})
    message = send(web)[-1]
    check_every_email_rule(message, web)
    assert message["To"] == "ada@example.org" and message["Subject"] == "Your Paper Digest data"
    text, html = parts(message)
    data = json.loads(text[text.index("{"):text.rindex("}") + 1])
    assert data["subscriber"]["keywords"] == ["speech synthesis", "TTS"]
    assert [c["action"] for c in data["consent"]] == ["signup", "confirm"]
    assert "&#34;keywords&#34;" in html or "&quot;keywords&quot;" in html


@pytest.mark.slow
def test_serve_mails_a_signup_within_seconds_and_stops_on_ctrl_c(settings: Settings) -> None:
    """`run_server` as `digest serve` runs it: uvicorn plus the sender loop, in its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = without_digest_settings() | {
        "DIGEST_VAR_DIR": str(settings.var_dir), "DIGEST_PUBLIC_URL": base,
        "DIGEST_SECRET_KEYS": "serve-test-key"}
    script = ("from core.settings import Settings; from workers.migrate import upgrade; "
              "from workers.serve import run_server; s = Settings(); upgrade(s); "
              f"run_server(s, port={port})")
    server = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=settings.var_dir,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0].decode()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        with httpx.Client(base_url=base) as browser:
            token = csrf_of(browser.get("/").text)
            response = browser.post("/subscribe", data=signup_form(token))
            assert response.status_code == 303
        outbox = settings.var_dir / "outbox"
        deadline = time.monotonic() + 20
        # The sender writes the .eml, then refreshes index.html once its round is over.
        while not (list(outbox.glob("*.eml")) and (outbox / "index.html").exists()):
            assert time.monotonic() < deadline, "no confirmation email within 20 s"
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output
    assert "Traceback" not in output, output
