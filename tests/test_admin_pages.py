"""Admin pages behind a login: subscriber search and CSV import/export, deliveries per day,
provider events, clips (bookmarklet form, edit, reorder, JSON API) and issue actions."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.clippings.models import Clip, MonthlyIssue
from digest.clippings.store import list_clips, update_clip
from subscribers.events import ProviderEventRecord
from subscribers.ledger import Delivery, DeliveryStatus
from subscribers.models import (
    ConsentAction,
    ConsentEvent,
    Status,
    Subscriber,
    SubscriberCreate,
    Suppression,
    email_hash,
)
from subscribers.service import add_subscriber, unsubscribe
from subscribers.web.admin.queries import deliveries_per_day
from tests.support.admin_helpers import API_TOKEN, admin_settings, client_for, csrf_of, login
from workers.migrate import upgrade

IMPORT = """email,keywords,frequency,monthly,timezone,send_hour
ada@example.org,speech synthesis; TTS,daily,yes,Europe/Paris,8
not-an-address,tts,,,,
bob@example.org,,daily,yes,UTC,7
carol@example.org,audio codec,hourly,yes,UTC,7
ada@example.org,again,,,,
dan@example.org,speech LLM,weekly,no,Mars/Olympus,7
erin@example.org,"diffusion, vocoder",weekly,no,Asia/Tokyo,23
erased@example.org,tts,,,,
frank@example.org,=HYPERLINK(http://evil.example),,,,
"""


def test_csv_import_reports_bad_lines_and_adds_the_good_ones(migrated: Settings) -> None:
    settings = admin_settings(migrated)
    with session_scope(settings.sqlalchemy_url) as session:
        session.add(Suppression(email_hash=email_hash("erased@example.org")))
    client = client_for(settings)
    token = login(client)
    answer = client.post("/admin/subscribers/import", data={"csrf": token},
                         files={"file": ("list.csv", IMPORT.encode(), "text/csv")})
    assert answer.status_code == 200
    report = answer.text.split('id="import-report"')[1].split("</div>")[0]
    assert "Imported 3 subscribers." in report and "Skipped 6 lines" in report
    for line, why in [(3, "not valid"), (4, "no keywords"), (5, "frequency"),
                      (6, "already on line 2"), (7, "Choose a time zone"), (9, "erased")]:
        assert f"Line {line}: " in report and why in report.split(f"Line {line}: ")[1], line
    with session_scope(settings.sqlalchemy_url) as session:
        added = {s.email: s for s in session.exec(select(Subscriber))}
        assert set(added) == {"ada@example.org", "erin@example.org", "frank@example.org"}
        assert all(s.status == Status.active and s.confirmed_at for s in added.values())
        assert added["ada@example.org"].keywords == ["speech synthesis", "TTS"]
        assert added["ada@example.org"].timezone == "Europe/Paris"
        assert added["erin@example.org"].monthly is False
        assert added["frank@example.org"].monthly is False  # an empty column is not consent
        assert added["ada@example.org"].monthly is True
        consent = session.exec(select(ConsentEvent)).all()
        assert {(c.action, c.channel) for c in consent} == {(ConsentAction.imported, "admin")}
        assert len(consent) == 3
    # Export: every subscriber, a formula-looking keyword defused for spreadsheets.
    exported = client.get("/admin/subscribers.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["email"] for r in rows} == set(added)
    frank = next(r for r in rows if r["email"] == "frank@example.org")
    assert frank["keywords"].startswith("'=")
    # Importing the same file again adds nobody: every row is reported, by line.
    again = client.post("/admin/subscribers/import", data={"csrf": token, "text": IMPORT})
    assert "Imported 0 subscribers." in again.text
    assert "Line 2: ada@example.org is already on the list" in again.text
    # Bad input loses nothing: a header without keywords imports nothing and says why.
    bad = client.post("/admin/subscribers/import", data={"csrf": token,
                                                         "text": "email\nzoe@example.org\n"})
    assert bad.status_code == 200 and "Line 1: the header needs columns email, keywords" in bad.text
    binary = client.post("/admin/subscribers/import", data={"csrf": token},
                         files={"file": ("x.csv", b"\xff\xfe\x00bad", "text/csv")})
    assert binary.status_code == 400 and "not UTF-8" in binary.text


def test_subscriber_search_by_address_keyword_and_status(settings: Settings) -> None:
    upgrade(settings)
    settings = admin_settings(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        for email, words in [("ada@lab.example", ["speech synthesis"]),
                             ("bob@uni.example", ["<script>alert(1)</script>"]),
                             ("cy@lab.example", ["audio codec"])]:
            add_subscriber(session=session, confirmed=True,
                           subscriber_create=SubscriberCreate(email=email, keywords=words))
        cy = session.exec(select(Subscriber).where(Subscriber.email == "cy@lab.example")).one()
        unsubscribe(session=session, subscriber_id=cy.id or 0)
    client = client_for(settings)
    login(client)
    page = client.get("/admin/subscribers", params={"q": "lab.example"}).text
    assert "ada@lab.example" in page and "cy@lab.example" in page and "bob@" not in page
    page = client.get("/admin/subscribers", params={"q": "CODEC"}).text
    assert "cy@lab.example" in page and "ada@" not in page
    page = client.get("/admin/subscribers", params={"status": "unsubscribed"}).text
    assert "cy@lab.example" in page and "ada@" not in page
    page = client.get("/admin/subscribers", params={"q": "script"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    page = client.get("/admin/subscribers", params={"status": "bogus"}).text
    assert "bob@uni.example" in page  # an unknown status is no filter, not an error
    # Unsubscribing someone by hand: a POST with the CSRF token, recorded in the consent trail.
    token = csrf_of(page)
    with session_scope(settings.sqlalchemy_url) as session:
        ada = session.exec(select(Subscriber).where(Subscriber.email == "ada@lab.example")).one()
    assert client.post(f"/admin/subscribers/{ada.id}/unsubscribe", data={"csrf": ""}
                       ).status_code == 400
    done = client.post(f"/admin/subscribers/{ada.id}/unsubscribe", data={"csrf": token})
    assert done.status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        assert (session.get(Subscriber, ada.id) or Subscriber()).status == Status.unsubscribed
        trail = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == ada.id)
                             ).all()
        assert (trail[-1].action, trail[-1].channel) == (ConsentAction.unsubscribe, "admin")
    assert client.post("/admin/subscribers/999/unsubscribe", data={"csrf": token}
                       ).status_code == 404


def test_deliveries_per_day_and_events(migrated: Settings) -> None:
    settings = admin_settings(migrated)
    now = datetime.now(UTC)
    today, yesterday = now.date(), now.date() - timedelta(days=1)
    with session_scope(settings.sqlalchemy_url) as session:
        people = [add_subscriber(session=session, confirmed=True, subscriber_create=
                                 SubscriberCreate(email=f"p{n}@example.org", keywords=["tts"]))
                  for n in range(4)]
        ids = [p.id or 0 for p in people]
        rows = [(ids[0], "2026-01-01", DeliveryStatus.sent, now),
                (ids[1], "2026-01-01", DeliveryStatus.sent, now),
                (ids[2], "2026-01-01", DeliveryStatus.sent, now - timedelta(days=1)),
                (ids[3], "2026-01-01", DeliveryStatus.failed, None),
                (ids[0], "2026-01-02", DeliveryStatus.planned, None)]
        for sid, period, status, sent_at in rows:
            session.add(Delivery(subscriber_id=sid, kind="daily", period=period, status=status,
                                 sent_at=sent_at))
        for n, (event, day) in enumerate([("bounce", today), ("dropped", today),
                                          ("spamreport", yesterday), ("delivered", today),
                                          ("unsubscribe", yesterday)]):
            session.add(ProviderEventRecord(
                sg_event_id=f"ev{n}", event=event, effect="x", day=day,
                occurred_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC),
                subscriber_id=ids[n % 4], reason="550 <b>no such user</b>" if n == 0 else None))
        unsubscribe(session=session, subscriber_id=ids[3], channel="one-click")
    with session_scope(settings.sqlalchemy_url) as session:
        days = {row.day: row for row in deliveries_per_day(session=session, days=3)}
    assert (days[today].sent, days[today].failed, days[today].bounced,
            days[today].complained, days[today].unsubscribed) == (2, 1, 2, 0, 1)
    assert (days[yesterday].sent, days[yesterday].complained,
            days[yesterday].unsubscribed) == (1, 1, 1)
    assert len(days) == 3
    client = client_for(settings)
    login(client)
    page = client.get("/admin/deliveries", params={"days": 7}).text
    assert f"<th scope=\"row\">{today.isoformat()}</th><td>2</td><td>1</td><td>2</td>" in page
    events = client.get("/admin/events").text
    assert "spamreport" in events and "p0@example.org" in events
    assert "550 &lt;b&gt;no such user&lt;/b&gt;" in events


def test_clip_form_api_edit_and_reorder(settings: Settings) -> None:
    upgrade(settings)
    settings = admin_settings(settings)
    client = client_for(settings)
    token = login(client)
    # The bookmarklet's landing page is a prefilled form that saves nothing.
    form = client.get("/admin/clips/new", params={"url": "https://arxiv.org/abs/2604.00001v2",
                                                  "title": '<img src=x onerror=alert(1)>'})
    assert form.status_code == 200
    assert 'value="https://arxiv.org/abs/2604.00001v2"' in form.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in form.text
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.exec(select(Clip)).all() == []
    bookmarklet = client.get("/admin/clips").text
    assert 'href="javascript:(function(){location.href=&#34;http://digest.test/admin/clips/new' \
           '?url=&#34;+encodeURIComponent(location.href)' in bookmarklet
    made = []
    for n in range(3):
        answer = client.post("/admin/clips/new", data={
            "csrf": token, "url": f"https://arxiv.org/abs/2604.0000{n}", "month": "2026-04",
            "title": f"Speech synthesis paper {n}", "note": "neat", "tags": ""})
        assert answer.status_code == 303, answer.text
        made.append(int(answer.headers["location"].split("/")[-1].split("?")[0]))
    bad = client.post("/admin/clips/new",
                      data={"csrf": token, "url": "ftp://x", "month": "2026-04"})
    assert bad.status_code == 400 and "not an http(s) url" in bad.text
    # The JSON API: a new clip is 201, the same paper again (pdf url) merges: 200.
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    created = client.post("/admin/api/clips", headers=auth, json={
        "url": "https://arxiv.org/abs/2604.00009", "note": "from a script", "tags": ["TTS"],
        "month": "2026-04"})
    assert created.status_code == 201 and created.json()["source"] == "api"
    assert created.json()["tags"] == ["TTS"]
    merged = client.post("/admin/api/clips", headers=auth, json={
        "url": "https://arxiv.org/pdf/2604.00009v3", "month": "2026-04"})
    assert merged.status_code == 200 and merged.json()["id"] == created.json()["id"]
    for body, why in [({"note": "x"}, "url is required"), ({"url": "x", "extra": 1}, "unknown"),
                      ({"url": "https://a.example", "month": "April"}, "month must look like"),
                      ({"url": 5}, "url is required"), ([1], "JSON object")]:
        answer = client.post("/admin/api/clips", headers=auth, json=body)
        assert answer.status_code == 400 and why in answer.json()["error"], body
    assert client.post("/admin/api/clips", headers=auth, content=b"{nope",
                       ).status_code == 415
    broken = client.post("/admin/api/clips", headers={**auth, "content-type":
                                                      "application/json"}, content=b"{nope")
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    # Edit: section and tags become overrides, the suggestion stays visible beside them.
    first = made[0]
    edit = client.get(f"/admin/clips/{first}").text
    assert "Suggested:" in edit
    answer = client.post(f"/admin/clips/{first}", data={
        "csrf": token, "title": "Renamed <b>", "summary": "A summary.", "note": "n",
        "explainer": "", "topic": "", "kind": "highlight", "section": "Multimodal",
        "tags": "TTS, Diffusion", "link_code": "https://github.com/a/b", "link_demo": ""})
    assert answer.status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        clip = session.get(Clip, first)
        assert clip is not None
        assert (clip.title, clip.section, clip.tags, clip.kind.value, clip.links) == (
            "Renamed <b>", "Multimodal", ["TTS", "Diffusion"], "highlight",
            {"code": "https://github.com/a/b"})
    # "Use the suggested tags" ticked but other tags typed: the typing wins, never dropped.
    suggested = client.post(f"/admin/clips/{first}", data={
        "csrf": token, "title": "Renamed <b>", "kind": "highlight", "section": "Multimodal",
        "tags_suggested": "1", "tags": "Full-Duplex", "link_code": "https://github.com/a/b"})
    assert suggested.status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        clip = session.get(Clip, first)
        assert clip is not None and clip.tags == ["Full-Duplex"]
        ticked = {"csrf": token, "title": clip.title, "kind": "highlight", "tags_suggested": "1",
                  "tags": ", ".join(clip.suggested_tags)}
    assert client.post(f"/admin/clips/{first}", data=ticked).status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        clip = session.get(Clip, first)
        assert clip is not None and clip.tags is None and clip.section is None
    invalid = client.post(f"/admin/clips/{first}", data={
        "csrf": token, "title": "x", "kind": "highlight", "link_code": "not a url"})
    assert invalid.status_code == 400
    with session_scope(settings.sqlalchemy_url) as session:
        assert (session.get(Clip, first) or Clip()).title == "Renamed <b>"  # nothing lost
    listing = client.get("/admin/clips", params={"month": "2026-04"}).text
    assert "Renamed &lt;b&gt;" in listing and "(yours)" in listing and "(suggested)" in listing
    # Reorder inside a section, by POSTed buttons.
    with session_scope(settings.sqlalchemy_url) as session:
        for clip_id in made[1:]:
            update_clip(session=session, clip_id=clip_id, changes={"section": "Other"})
        before = [c.id for c in list_clips(session=session, month="2026-04")
                  if c.effective_section == "Other"]
    assert before[:2] == made[1:]
    answer = client.post(f"/admin/clips/{made[2]}/move", data={"csrf": token, "direction": "up"})
    assert answer.status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        after = [c.id for c in list_clips(session=session, month="2026-04")
                 if c.effective_section == "Other"]
    assert after[:2] == [made[2], made[1]]
    assert client.post(f"/admin/clips/{first}/move", data={"csrf": token, "direction": "sideways"}
                       ).status_code == 400
    gone = client.post(f"/admin/clips/{made[1]}/delete", data={"csrf": token})
    assert gone.status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        assert session.get(Clip, made[1]) is None
    assert client.post(f"/admin/clips/{made[1]}/delete", data={"csrf": token}
                       ).status_code == 404
    assert client.get("/admin/clips/99999").status_code == 404
    assert client.get("/admin/clips", params={"month": "nope"}).status_code == 404


def test_issue_draft_approve_and_email_preview(settings: Settings) -> None:
    upgrade(settings)
    settings = admin_settings(settings)
    client = client_for(settings)
    token = login(client)
    empty = client.post("/admin/issues/2026-04/approve", data={"csrf": token})
    assert empty.status_code == 400 and "no issue for 2026-04" in empty.text
    client.post("/admin/clips/new", data={"csrf": token, "month": "2026-04",
                                          "url": "https://arxiv.org/abs/2604.00001",
                                          "title": "A speech paper"})
    answer = client.post("/admin/issues/2026-04/draft", data={"csrf": token,
                                                               "intro": "Hello <readers>"})
    assert answer.status_code == 303
    page = client.get("/admin/issues/2026-04").text
    assert "draft" in page and "Hello &lt;readers&gt;" in page
    web = client.get("/admin/issues/2026-04/web")
    assert web.status_code == 200 and "A speech paper" in web.text
    assert "Hello &lt;readers&gt;" in web.text
    email = client.get("/admin/issues/2026-04/email")
    assert email.status_code == 200 and "A speech paper" in email.text
    assert "frame-ancestors 'self'" in email.headers["content-security-policy"]
    preview = client.get("/admin/issues/2026-04/preview")
    assert "frame-src 'self'" in preview.headers["content-security-policy"]
    assert client.post("/admin/issues/2026-04/approve", data={"csrf": token}
                       ).status_code == 303
    with session_scope(settings.sqlalchemy_url) as session:
        issue = session.exec(select(MonthlyIssue)).one()
        assert issue.status.value == "approved"
    # Send: one ledger row per subscriber who opted in, the issue marked sent; twice is once.
    with session_scope(settings.sqlalchemy_url) as session:
        for email, monthly in [("yes@example.org", True), ("no@example.org", False)]:
            add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
                email=email, keywords=["tts"], monthly=monthly))
    sent = client.post("/admin/issues/2026-04/send", data={"csrf": token})
    assert sent.status_code == 303 and sent.headers["location"].endswith("done=sent-1")
    assert "Sent: 1 deliveries planned." in client.get(sent.headers["location"]).text
    again = client.post("/admin/issues/2026-04/send", data={"csrf": token})
    assert again.status_code == 400 and "only an approved issue can be sent" in again.text
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.exec(select(Delivery).where(Delivery.kind == "monthly")).all()
        yes = session.exec(select(Subscriber).where(Subscriber.email == "yes@example.org")).one()
        assert [(r.subscriber_id, r.period) for r in rows] == [(yes.id, "2026-04")]
        assert session.exec(select(MonthlyIssue)).one().status.value == "sent"
    assert client.get("/admin/issues").status_code == 200
    assert client.get("/admin/issues/2026-13").status_code == 404


BOOKMARKS = """<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<H1>Bookmarks</H1>
<DL><p>
    <DT><H3 ADD_DATE="1775000000">Papers</H3>
    <DL><p>
        <DT><A HREF="https://arxiv.org/abs/2604.01234v2" ADD_DATE="1775000000" TAGS="TTS">\
 A speech synthesis paper</A>
        <DD>Strong zero-shot results
        <DT><A HREF="https://arxiv.org/pdf/2604.01234" ADD_DATE="1775000000">Same paper, pdf</A>
        <DT><A HREF="javascript:alert(1)" ADD_DATE="1775000000">Not a link</A>
        <DT><A HREF="https://github.com/example/codec" ADD_DATE="1775000000">A codec repo</A>
    </DL><p>
</DL><p>
"""


def test_import_a_bookmarks_file_from_the_clips_page(settings: Settings) -> None:
    upgrade(settings)
    settings = admin_settings(settings)
    client = client_for(settings)
    token = login(client)
    answer = client.post("/admin/clips/import", data={"csrf": token, "month": "2026-04"},
                         files={"file": ("bookmarks.html", BOOKMARKS.encode(), "text/html")})
    assert answer.status_code == 200, answer.text
    report = answer.text.split('id="import-report"')[1].split("</div>")[0]
    assert "Imported 2 new clips, merged 1 into existing ones." in report
    assert "Skipped 1 line" in report and "not an http(s) url" in report
    with session_scope(settings.sqlalchemy_url) as session:
        clips = {c.key: c for c in session.exec(select(Clip))}
    assert len(clips) == 2 and "arxiv:2604.01234" in clips
    assert all(c.month == "2026-04" and c.source == "import" for c in clips.values())
    assert "A speech synthesis paper" in answer.text  # listed on the page it answered with
    empty = client.post("/admin/clips/import", data={"csrf": token, "month": "2026-04"})
    assert empty.status_code == 400 and "choose a file first" in empty.text
    assert client.post("/admin/clips/import", data={"csrf": "", "month": "2026-04"},
                       files={"file": ("b.html", b"x", "text/html")}).status_code == 400
