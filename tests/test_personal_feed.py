"""The personal Atom feed: the picks of a reader's sent digests, with the email's reasons,
read back by feedparser; conditional GET; forged, orphaned and revoked addresses; the manage
page's "New feed address" button (CSRF, rate limit); and the manage page in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from digest.ranker import Match
from emails.transports import OutboxTransport
from subscribers import ledger
from subscribers.models import Subscriber
from subscribers.payloads import DigestPayload
from subscribers.privacy import erase
from subscribers.tokens import Purpose, feed_token, make_token
from subscribers.web.app import create_app
from subscribers.web.pages import WebLimits
from subscribers.web.security import Limit
from tests.support.browser import ARTIFACTS, shot
from tests.support.feedback_data import (
    DAY,
    NEW_PAPERS,
    RATED_FLOW,
    stocked,  # noqa: F401  (the fixture)
)
from tests.support.live_server import free_port, live_settings, serving
from tests.support.outbox import parts, send
from tests.support.web_app import confirmed_reader, csrf_of, feed_path, manage_path
from workers import planning
from workers.sending import send_due


def _client(settings: Settings, limits: WebLimits | None = None) -> TestClient:
    return TestClient(create_app(settings, limits=limits), base_url="http://testserver")


def _manage(client: TestClient, settings: Settings, sid: int) -> tuple[str, str, str]:
    """The manage page's URL, its CSRF token and the feed address it shows."""
    url = manage_path(settings, sid)
    page = client.get(url)
    assert page.status_code == 200
    shown = re.search(r'id="feed_url" name="feed_url" value="([^"]+)"', page.text)
    assert shown is not None
    return url, csrf_of(page.text), shown.group(1)


def _send(settings: Settings) -> None:
    report = send_due(settings=settings, transport=OutboxTransport(settings.outbox_path))
    assert report.failed == 0


def _email_text(settings: Settings, to: str) -> str:
    """The plain-text part of the newest email to `to` in the outbox."""
    mine = [m for m in send(settings) if m["To"] == to]
    assert mine
    return parts(mine[-1])[0]


def _plan(settings: Settings, sid: int, day_offset: int, matches: list[Match]) -> None:
    """One daily ledger row for `sid` with these picks, as the planner writes it."""
    day = DAY + timedelta(days=day_offset)
    payload = DigestPayload(day=day, matches=tuple(matches))
    with session_scope(settings.sqlalchemy_url) as session:
        ledger.plan_deliveries(session=session, planned=[ledger.PlannedDelivery(
            subscriber_id=sid, kind="daily", period=day.isoformat(), payload=payload.to_json(),
            paper_ids=tuple(m.arxiv_id for m in matches))])


def test_the_feed_carries_the_picks_of_sent_digests(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, control) = stocked
    client = _client(settings)
    _, _, shown = _manage(client, settings, fan)
    assert shown == "http://digest.test" + feed_path(settings, fan)
    path = shown.removeprefix("http://digest.test")

    empty = client.get(path)  # nothing sent yet: a valid, empty feed
    assert empty.status_code == 200
    assert empty.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(empty.content)
    assert not parsed.bozo and parsed.entries == []

    assert planning.plan_daily(settings=settings, day=DAY).planned == 3
    assert feedparser.parse(client.get(path).content).entries == []  # planned is not sent
    _send(settings)

    with session_scope(settings.sqlalchemy_url) as session:
        row = session.exec(select(ledger.Delivery).where(
            ledger.Delivery.subscriber_id == fan, ledger.Delivery.kind == "daily")).one()
        picks = [m["arxiv_id"] for m in row.payload["matches"]]
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-cache"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.feed.title == "Paper Digest · your papers"
    assert {e.link for e in parsed.entries} == {f"https://arxiv.org/abs/{i}" for i in picks}
    assert len(parsed.entries) == len(picks)
    titles = {i: t for i, t, _ in NEW_PAPERS}
    abstracts = {i: a for i, _, a in NEW_PAPERS}
    email = _email_text(settings, "fan@example.org")
    for entry in parsed.entries:
        arxiv_id = entry.link.rsplit("/", 1)[1]
        if arxiv_id in titles:
            assert entry.title == titles[arxiv_id]
            assert abstracts[arxiv_id] in entry.content[0].value
        assert entry.summary.startswith("Matched: speech synthesis")
        assert entry.summary.split(" · ")[0] in email  # the email's own words
        assert f"https://arxiv.org/pdf/{arxiv_id}" in {link.href for link in entry.links}
    # The other readers' papers are theirs: the control's feed is its own digest.
    with session_scope(settings.sqlalchemy_url) as session:
        theirs = session.exec(select(ledger.Delivery).where(
            ledger.Delivery.subscriber_id == control)).one().payload["matches"]
    control_feed = feedparser.parse(client.get(feed_path(settings, control)).content)
    assert [e.link for e in control_feed.entries] == [
        f"https://arxiv.org/abs/{m['arxiv_id']}" for m in theirs]


def test_reasons_in_meaning_and_liked_papers_read_as_in_the_email(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    flow_a = RATED_FLOW[0]
    _plan(settings, fan, 0, [
        Match("2603.00012", 2.0, ("speech synthesis", "voice conversion"),
              close_to=("voice conversion",), similar_to=flow_a[0]),
        Match("2603.00013", 1.5, ("voice conversion",), close_to=("voice conversion",)),
        Match("2603.00014", 1.0, (), upvotes=42),
    ])
    _send(settings)
    email = _email_text(settings, "fan@example.org")
    client = _client(settings)
    parsed = feedparser.parse(client.get(feed_path(settings, fan)).content)
    assert not parsed.bozo
    why = {e.link.rsplit("/", 1)[1]: e.summary for e in parsed.entries}
    assert why == {
        "2603.00012": f"Matched: speech synthesis; close to: voice conversion · similar to "
                      f"{flow_a[1]}",
        "2603.00013": "Close to: voice conversion",
        "2603.00014": "Trending today: 42 upvotes on Hugging Face",
    }
    assert "Matched: speech synthesis; close to: voice conversion" in email
    assert "Close to: voice conversion" in email
    assert f"similar to {flow_a[1]}" in email
    # Untrusted text stays text: the HTML content is escaped once, and parses back.
    assert "<strong>Close to: voice conversion</strong>" in parsed.entries[1].content[0].value


def test_conditional_get_answers_304_until_a_new_digest_goes_out(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    client = _client(settings)
    path = feed_path(settings, fan)
    _plan(settings, fan, 0, [Match("2603.00011", 2.0, ("speech synthesis",))])
    _send(settings)
    first = client.get(path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and modified.endswith("GMT")

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    earlier = format_datetime(datetime.now(UTC) - timedelta(days=2), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "yesterday"}).status_code == 200
    # If-None-Match wins: a stale tag gets the feed even with a current date.
    assert client.get(path, headers={"If-None-Match": '"stale"',
                                     "If-Modified-Since": modified}).status_code == 200

    _plan(settings, fan, 1, [Match("2603.00012", 2.0, ("speech synthesis",))])
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304  # not sent yet
    _send(settings)
    fresh = client.get(path, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    parsed = feedparser.parse(fresh.content)
    assert [e.link for e in parsed.entries] == [
        "https://arxiv.org/abs/2603.00012", "https://arxiv.org/abs/2603.00011"]  # newest first


def test_forged_orphaned_and_revoked_addresses_show_nothing(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, _) = stocked
    keys = settings.signing_keys()
    _plan(settings, fan, 0, [Match("2603.00011", 2.0, ("speech synthesis",))])
    _plan(settings, critic, 0, [Match("2603.00011", 2.0, ("speech synthesis",))])
    _send(settings)
    client = _client(settings)
    good = feed_path(settings, fan).removeprefix("/feed/")
    title = NEW_PAPERS[0][1]
    assert title in client.get(f"/feed/{good}").text
    forged = {
        "tampered": good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:],
        "truncated": good[: len(good) // 2],
        "manage token": make_token(keys=keys, purpose=Purpose.manage, subscriber_id=fan),
        "feedback token": make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=fan),
        "unknown key": feed_token(keys=["someone-elses-key"], subscriber_id=fan, generation=0),
        "orphaned": feed_token(keys=keys, subscriber_id=fan + 1000, generation=0),
        "garbage": "not-a-token",
        "other payload": good.replace(good.split(".")[0], "WzJd", 1),
    }
    for name, token in forged.items():
        response = client.get(f"/feed/{token}")
        assert response.status_code == 404, name
        assert title not in response.text and "<feed" not in response.text, name

    url, csrf, shown = _manage(client, settings, fan)
    assert client.post(f"{url}/feed", data={"csrf": "nope"}).status_code == 400
    assert _manage(client, settings, fan)[2] == shown  # a refused form changes nothing
    moved = client.post(f"{url}/feed", data={"csrf": csrf}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == f"{url}?done=feed-new"
    page = client.get(moved.headers["location"])
    assert "Your feed has a new address" in page.text
    new = _manage(client, settings, fan)[2]
    assert new != shown
    old = client.get(f"/feed/{good}")
    assert old.status_code == 410 and title not in old.text and "<feed" not in old.text
    assert client.get(f"/feed/{good}", headers={"If-None-Match": "*"}).status_code == 410
    assert title in client.get(new.removeprefix("http://digest.test")).text
    # A critic's feed is untouched by the fan's new address.
    assert title in client.get(feed_path(settings, critic)).text

    with session_scope(settings.sqlalchemy_url) as session:
        erase(session=session, subscriber_id=fan)
    gone = client.get(new.removeprefix("http://digest.test"))
    assert gone.status_code == 404 and title not in gone.text


def test_reading_the_feed_changes_nothing_and_the_button_is_rate_limited(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    client = _client(settings, WebLimits(actions=Limit(2, 600)))
    path = feed_path(settings, fan)
    with session_scope(settings.sqlalchemy_url) as session:
        before = [r.model_dump() for r in session.exec(select(Subscriber))]
        deliveries = [r.model_dump() for r in session.exec(select(ledger.Delivery))]
    for _ in range(3):
        assert client.get(path).status_code == 200
    with session_scope(settings.sqlalchemy_url) as session:
        assert [r.model_dump() for r in session.exec(select(Subscriber))] == before
        assert [r.model_dump() for r in session.exec(select(ledger.Delivery))] == deliveries
    url, csrf, _ = _manage(client, settings, fan)
    codes = [client.post(f"{url}/feed", data={"csrf": csrf}, follow_redirects=False).status_code
             for _ in range(3)]
    assert codes == [303, 303, 429]
    with session_scope(settings.sqlalchemy_url) as session:
        subscriber = session.get(Subscriber, fan)
        assert subscriber is not None and subscriber.feed_generation == 2


# --- the manage page in Chromium -------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    port = free_port()
    settings = live_settings(tmp_path_factory.mktemp("feed") / "var", port)
    with serving(settings, port):
        yield settings


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_the_manage_page_shows_the_feed_address(live: Settings, browser: Any,
                                                width: int) -> None:
    sid = confirmed_reader(live, f"feed-{width}@example.org", ["speech synthesis"])
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(live.public_url + manage_path(live, sid))
    field = page.locator("#feed_url")
    address = field.input_value()
    assert address == live.public_url + feed_path(live, sid)
    page.locator("#feed-heading").scroll_into_view_if_needed()
    shot(page, "manage-feed", width)
    atom = context.request.get(address)
    assert atom.status == 200 and not feedparser.parse(atom.body()).bozo
    page.get_by_role("button", name="New feed address").click()
    page.wait_for_url(re.compile(r"done=feed-new"))
    assert "Your feed has a new address" in page.locator(".notice").first.inner_text()
    assert page.locator("#feed_url").input_value() not in ("", address)
    assert context.request.get(address).status == 410
    shot(page, "manage-feed-new", width)
    # The card alone, legible at full size for a person checking the screenshots.
    page.locator("section[aria-labelledby=feed-heading]").screenshot(
        path=str(ARTIFACTS / f"manage-feed-card-{width}.png"))
    context.close()


def test_hostile_text_stays_text_and_the_feed_stays_valid(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    from digest.papers import PaperIn, upsert_papers

    settings, (_, fan, _) = stocked
    title = 'Speech synthesis <script>alert("x")</script> & $\\mathcal{O}(n)$ \x0b\x1b tricks'
    with session_scope(settings.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=[PaperIn(
            arxiv_id="2603.09999", title=title, source="test", announced_on=DAY,
            abstract="Speech synthesis ]]> <b>bold</b> \x0c & code at https://github.com/a/b",
            authors=["Ada <Lovelace>"], abs_url="https://arxiv.org/abs/2603.09999")])
    _plan(settings, fan, 0, [Match("2603.09999", 2.0, ("speech synthesis",))])
    _send(settings)
    response = _client(settings).get(feed_path(settings, fan))
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    [entry] = parsed.entries
    assert entry.title == 'Speech synthesis <script>alert("x")</script> & $\\mathcal{O}(n)$ tricks'
    assert "<script>" not in entry.content[0].value  # escaped inside the HTML content
    assert "&lt;b&gt;bold&lt;/b&gt;" in entry.content[0].value
    assert entry.author == "Ada <Lovelace>"
    assert {(link.get("title"), link.href) for link in entry.links} >= {
        ("Code", "https://github.com/a/b")}


def test_signing_out_other_links_moves_the_feed_too(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, _) = stocked
    _plan(settings, fan, 0, [Match("2603.00011", 2.0, ("speech synthesis",))])
    _send(settings)
    client = _client(settings)
    url, csrf, shown = _manage(client, settings, fan)
    old = shown.removeprefix("http://digest.test")
    assert NEW_PAPERS[0][1] in client.get(old).text
    page = client.post(f"{url}/sign-out", data={"csrf": csrf})
    assert page.status_code == 200 and "Your personal feed has a new address too" in page.text
    gone = client.get(old)
    assert gone.status_code == 410 and NEW_PAPERS[0][1] not in gone.text
    new = feed_path(settings, fan)
    assert new != old and NEW_PAPERS[0][1] in client.get(new).text
    assert client.get(feed_path(settings, critic)).status_code == 200  # only the fan's moved
