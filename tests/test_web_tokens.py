"""Links from emails, through the TestClient: confirm, manage and unsubscribe.

Forged, truncated, wrong-purpose, expired and orphaned tokens all get one identical page and
change nothing; link scanners' GETs change nothing; RFC 8058 one-click POSTs work without
cookies in both encodings; every manage action lands in the database.
"""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers import ledger
from subscribers.models import (
    ConsentEvent,
    PendingEmail,
    Status,
    Subscriber,
    Suppression,
)
from subscribers.service import unsubscribe
from subscribers.tokens import InvalidToken, Purpose, make_token, make_tokens, read_token
from tests.support.tokens import ADA, forged_tokens, manage, signed_up, snapshot, token
from tests.support.web_app import client_for, csrf_of, form_token, rows


def subscriber(settings: Settings, sid: int) -> Subscriber | None:
    with session_scope(settings.sqlalchemy_url) as session:
        return session.get(Subscriber, sid)


@pytest.mark.parametrize(("purpose", "path"), [
    (Purpose.confirm, "confirm"), (Purpose.manage, "manage"), (Purpose.unsubscribe, "unsubscribe"),
])
def test_every_bad_token_gets_the_same_page_and_changes_nothing(
    both: Settings, purpose: Purpose, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = signed_up(both, active=purpose != Purpose.confirm)
    forged = forged_tokens(both, sid, purpose, monkeypatch)
    before = snapshot(both)
    client = client_for(both)
    csrf = form_token(client)
    answers = set()
    for name, bad in forged.items():
        for method in ("GET", "POST"):
            data = {"csrf": csrf, "List-Unsubscribe": "One-Click", "confirm": "yes"}
            response = client.request(method, f"/{path}/{bad}",
                                      data=data if method == "POST" else None)
            assert response.status_code == 404, (name, method, response.status_code)
            assert "set-cookie" not in response.headers
            answers.add(response.text)
        for action in ("pause", "export", "erase", "email", "resubscribe"):
            if path == "manage":
                response = client.post(f"/manage/{bad}/{action}",
                                       data={"csrf": csrf, "confirm": "yes", "weeks": "2",
                                             "new_email": "eve@example.org"})
                assert response.status_code == 404
                answers.add(response.text)
    assert len(answers) == 1, "one page for every kind of bad link"
    assert "This link doesn't work" in unescape(answers.pop())
    assert snapshot(both) == before


def test_older_keys_still_verify_so_rotation_breaks_no_link(web: Settings) -> None:
    sid = signed_up(web)
    old_only = make_token(keys=["test-secret-older"], purpose=Purpose.manage, subscriber_id=sid)
    rotated = web.model_copy(update={"secret_keys": ["brand-new-key", *web.secret_keys]})
    assert client_for(rotated).get(f"/manage/{old_only}").status_code == 200
    retired = web.model_copy(update={"secret_keys": ["brand-new-key"]})
    assert client_for(retired).get(f"/manage/{old_only}").status_code == 404


def test_batch_tokens_are_the_same_tokens_and_bound_to_their_purpose() -> None:
    keys = ["newest-key", "test-secret-older"]
    batch = make_tokens(keys=keys, purpose=Purpose.unsubscribe, subscriber_ids=[7, 8, 9])
    read = [read_token(keys=keys, purpose=Purpose.unsubscribe, token=t) for t in batch]
    assert read == [(7, ""), (8, ""), (9, "")]
    # Signed with the newest key: still valid once an even newer key is put in front of it.
    assert read_token(keys=["newer", *keys], purpose=Purpose.unsubscribe, token=batch[0]) == (7, "")
    single = make_token(keys=keys, purpose=Purpose.unsubscribe, subscriber_id=7)
    assert batch[0].split(".")[0] == single.split(".")[0]  # same payload; the stamp may differ
    with pytest.raises(InvalidToken):
        read_token(keys=keys, purpose=Purpose.manage, token=batch[0])
    with pytest.raises(InvalidToken):
        read_token(keys=["test-secret-older"], purpose=Purpose.unsubscribe, token=batch[0])


def test_link_scanners_following_every_link_change_nothing(both: Settings) -> None:
    pending_id = signed_up(both, active=False, email="pending@example.org")
    active_id = signed_up(both)
    before = snapshot(both)
    scanner = client_for(both)
    headers = {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks)", "Accept": "*/*"}
    for sid in (pending_id, active_id):
        for purpose, path in ((Purpose.confirm, "confirm"), (Purpose.manage, "manage"),
                              (Purpose.unsubscribe, "unsubscribe")):
            url = f"/{path}/{token(both, purpose, sid)}"
            assert scanner.get(url, headers=headers).status_code == 200
            assert scanner.head(url, headers=headers).status_code in (200, 405)
            assert scanner.get(url + "?done=confirmed").status_code == 200
    assert snapshot(both) == before
    assert subscriber(both, pending_id).status == Status.pending  # type: ignore[union-attr]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_works_without_cookies(both: Settings, encoding: str) -> None:
    sid = signed_up(both)
    url = f"/unsubscribe/{token(both, Purpose.unsubscribe, sid)}"
    for attempt in range(2):  # a mail provider may retry: the second POST is harmless
        client = client_for(both)  # a fresh client: no cookies, no CSRF token, no page visit
        if encoding == "urlencoded":
            response = client.post(url, data={"List-Unsubscribe": "One-Click"},
                                   follow_redirects=False)
        else:
            response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")},
                                   follow_redirects=False)
            assert response.request.headers["content-type"].startswith("multipart/form-data")
        assert "cookie" not in response.request.headers
        assert response.status_code == 200, attempt
        assert "location" not in response.headers
        assert "You're unsubscribed" in unescape(response.text)
        left = subscriber(both, sid)
        assert left is not None and left.status == Status.unsubscribed
    with session_scope(both.sqlalchemy_url) as session:
        actions = [e.action.value for e in session.exec(select(ConsentEvent))]
    assert actions.count("unsubscribe") == 1


def test_confirm_page_has_a_button_and_only_the_post_confirms(both: Settings) -> None:
    sid = signed_up(both, active=False)
    client = client_for(both)
    url = f"/confirm/{token(both, Purpose.confirm, sid)}"
    page = client.get(url)
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert subscriber(both, sid).status == Status.pending  # type: ignore[union-attr]
    refused = client.post(url, data={"csrf": "forged"})
    assert refused.status_code == 400
    assert subscriber(both, sid).status == Status.pending  # type: ignore[union-attr]
    done = client.post(url, data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert done.status_code == 303 and "/manage/" in done.headers["location"]
    assert subscriber(both, sid).status == Status.active  # type: ignore[union-attr]
    landing = client.get(done.headers["location"])
    assert "You're subscribed" in unescape(landing.text)
    assert "You're already confirmed" in unescape(client.get(url).text)


def profile(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf": csrf, "keywords": "prosody\nvoice cloning", "frequency": "weekly",
            "timezone": "Asia/Tokyo", "send_hour": "21", **fields}


def test_manage_saves_the_profile_and_explains_mistakes(both: Settings) -> None:
    sid = signed_up(both)
    client = client_for(both)
    url, csrf = manage(client, both, sid)
    bad = client.post(url, data=profile(csrf, timezone="Nowhere/Special"))
    assert bad.status_code == 400 and "time zone" in bad.text
    assert 'value="Nowhere/Special"' not in bad.text  # not a choice, so nothing is selected
    assert subscriber(both, sid).keywords == ["speech synthesis", "TTS"]  # type: ignore[union-attr]
    saved = client.post(url, data=profile(csrf), follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"{url}?done=saved")
    after = subscriber(both, sid)
    assert after is not None
    assert (after.keywords, after.frequency.value, after.monthly, after.timezone,
            after.send_hour) == (["prosody", "voice cloning"], "weekly", False, "Asia/Tokyo", 21)
    assert "Saved." in client.get(saved.headers["location"]).text
    preview = client.post(f"{url}/preview", data=profile(csrf, keywords="voice cloning"))
    assert "Voice cloning from three seconds" in preview.text
    assert subscriber(both, sid).keywords == ["prosody", "voice cloning"]  # type: ignore[union-attr]


def test_pause_and_resume(web: Settings) -> None:
    sid = signed_up(web)
    client = client_for(web)
    url, csrf = manage(client, web, sid)
    assert client.post(f"{url}/pause", data={"csrf": csrf, "weeks": "3"}).status_code == 400
    paused = client.post(f"{url}/pause", data={"csrf": csrf, "weeks": "2"})
    assert "No digests until" in paused.text and "Resume now" in paused.text
    until = subscriber(web, sid).paused_until  # type: ignore[union-attr]
    assert until is not None and timedelta(days=13) <= until - until.today() <= timedelta(days=15)
    client.post(f"{url}/pause", data={"csrf": csrf, "weeks": "0"})
    assert subscriber(web, sid).paused_until is None  # type: ignore[union-attr]


def test_address_change_needs_the_new_address(both: Settings) -> None:
    sid = signed_up(both)
    client = client_for(both)
    url, csrf = manage(client, both, sid)
    refused = client.post(f"{url}/email", data={"csrf": csrf, "new_email": "Eve <eve@x.org>"})
    assert refused.status_code == 400 and "plain email address" in refused.text
    asked = client.post(f"{url}/email", data={"csrf": csrf, "new_email": "ada@new.example"},
                        follow_redirects=False)
    assert asked.headers["location"].endswith("done=email-sent")
    assert subscriber(both, sid).email == ADA  # type: ignore[union-attr]
    with session_scope(both.sqlalchemy_url) as session:
        change = session.exec(select(PendingEmail)).one()
        assert [d.kind for d in session.exec(select(ledger.Delivery))] == [
            "confirm", "confirm-email"]
    link = f"/confirm/{token(both, Purpose.confirm, sid, extra=f'email:{change.id}')}"
    page = client.get(link)
    assert "ada@new.example" in page.text
    done = client.post(link, data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert done.headers["location"].endswith("done=email-changed")
    assert subscriber(both, sid).email == "ada@new.example"  # type: ignore[union-attr]
    assert client.get(link).status_code == 404  # used up


def test_the_stop_link_of_an_address_change_cancels_only_that(web: Settings) -> None:
    sid = signed_up(web)
    client = client_for(web)
    url, csrf = manage(client, web, sid)
    client.post(f"{url}/email", data={"csrf": csrf, "new_email": "stranger@example.org"})
    with session_scope(web.sqlalchemy_url) as session:
        change_id = session.exec(select(PendingEmail.id)).one()
    stop = f"/unsubscribe/{token(web, Purpose.unsubscribe, sid, extra=f'email:{change_id}')}"
    assert "Cancel the request" in client.get(stop).text
    response = client_for(web).post(stop, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert rows(web, PendingEmail) == 0
    assert subscriber(web, sid).status == Status.active  # type: ignore[union-attr]


def test_export_is_planned_for_the_address_on_file(web: Settings) -> None:
    sid = signed_up(web)
    client = client_for(web)
    url, csrf = manage(client, web, sid)
    response = client.post(f"{url}/export", data={"csrf": csrf})
    assert f"on its way to {ADA}" in response.text
    with session_scope(web.sqlalchemy_url) as session:
        kinds = [d.kind for d in session.exec(select(ledger.Delivery))]
    assert kinds == ["confirm", "export"]


def test_erase_needs_the_box_then_deletes_everything(both: Settings) -> None:
    sid = signed_up(both)
    client = client_for(both)
    url, csrf = manage(client, both, sid)
    unticked = client.post(f"{url}/erase", data={"csrf": csrf})
    assert unticked.status_code == 400 and "Tick the box" in unticked.text
    assert subscriber(both, sid) is not None
    erased = client.post(f"{url}/erase", data={"csrf": csrf, "confirm": "yes"})
    assert erased.status_code == 200 and "Your data is erased" in erased.text
    assert subscriber(both, sid) is None
    assert rows(both, ConsentEvent) == rows(both, ledger.Delivery) == 0
    assert rows(both, Suppression) == 1
    assert client.get(url).status_code == 404
    assert client.post(f"/unsubscribe/{token(both, Purpose.unsubscribe, sid)}").status_code == 404


def test_an_unsubscribed_subscriber_can_come_back_from_the_manage_page(web: Settings) -> None:
    sid = signed_up(web)
    with session_scope(web.sqlalchemy_url) as session:
        unsubscribe(session=session, subscriber_id=sid)
    client = client_for(web)
    url, csrf = manage(client, web, sid)
    assert "You're unsubscribed" in unescape(client.get(url).text)
    client.post(f"{url}/resubscribe", data={"csrf": csrf})
    assert subscriber(web, sid).status == Status.active  # type: ignore[union-attr]


def test_token_pages_never_echo_anything_about_other_addresses(web: Settings) -> None:
    ada = signed_up(web)
    signed_up(web, email="grace@example.org")
    client = client_for(web)
    for path, purpose in (("manage", Purpose.manage), ("unsubscribe", Purpose.unsubscribe),
                          ("confirm", Purpose.confirm)):
        text = client.get(f"/{path}/{token(web, purpose, ada)}").text
        assert "grace@example.org" not in text
