"""Saved papers: the daily email's Save link, its one-button page (GET saves nothing), the list
on the manage page, its BibTeX and CSV downloads, removal, and saving as a strong "more like
this" in the ranking."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers.feedback import SAVED_WEIGHT, Vote, ratings_for, record_vote
from subscribers.models import Subscriber
from subscribers.privacy import erase, export_data
from subscribers.saved import SavedPaper, save_paper
from subscribers.tokens import Purpose, make_token
from subscribers.web.app import create_app
from tests.support.browser import ARTIFACTS, shot
from tests.support.feedback_data import (
    DAY,
    NEW_PAPERS,
    RATED_FLOW,
    stocked,  # noqa: F401  (the fixture)
)
from tests.support.live_server import free_port, live_settings, serving
from tests.support.outbox import parts, send
from tests.support.web_app import confirmed_reader, csrf_of, manage_path, store_papers
from workers import planning


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), base_url="http://testserver")


def _saved(settings: Settings) -> list[tuple[int, str]]:
    with session_scope(settings.sqlalchemy_url) as session:
        return sorted((s.subscriber_id, s.arxiv_id) for s in session.exec(select(SavedPaper)))


def _bibtex_entries(text: str) -> list[dict[str, str]]:
    """@misc entries as BibTeX reads them: a key, then name={value} fields, braces balanced."""
    entries = []
    for key, body in re.findall(r"@misc\{([^,\s]+),\n(.*?)\n\}\n", text, re.S):
        entry = {"ID": key}
        for name, value in re.findall(r"^\s+(\w+)=\{(.*)\},?$", body, re.M):
            assert value.count("{") == value.count("}"), value
            entry[name] = value
        entries.append(entry)
    assert len(entries) == text.count("@misc{")
    return entries


def test_the_save_link_in_the_email_saves_only_on_post(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (_, fan, _) = stocked
    assert planning.plan_daily(settings=settings, day=DAY).planned == 3
    [message] = [m for m in send(settings) if m["To"] == "fan@example.org"]
    text, html = parts(message)
    links = re.findall(r"Save: (http://digest\.test/feedback/\S+/save)", text)
    assert links, "every paper of the text part has a Save link"
    assert html.count('/save">Save</a>') == len(links)
    client = _client(settings)
    first = links[0].removeprefix("http://digest.test")
    arxiv_id = first.split("/")[3]
    title = {i: t for i, t, _ in NEW_PAPERS}.get(arxiv_id, "")

    for _ in range(2):  # a mail scanner opening the link saves nothing
        shown = client.get(first)
        assert shown.status_code == 200 and 'method="post"' in shown.text
        assert title in shown.text
    assert _saved(settings) == []
    for _ in range(2):  # a double click saves once
        done = client.post(first)
        assert done.status_code == 200 and "is on your saved list" in done.text
    assert _saved(settings) == [(fan, arxiv_id)]
    again = client.get(first)
    assert "already on your saved list" in again.text and 'method="post"' not in again.text

    manage = client.get(manage_path(settings, fan))
    assert 'id="saved-heading"' in manage.text and f"arXiv:{arxiv_id}" in manage.text
    with session_scope(settings.sqlalchemy_url) as session:  # "email me my data" has it
        reader = session.get(Subscriber, fan)
        assert reader is not None
        exported = export_data(session=session, subscriber=reader)
    assert [p["arxiv_id"] for p in exported["saved_papers"]] == [arxiv_id]


def test_forged_save_links_save_nothing(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, _, _) = stocked
    keys = settings.signing_keys()
    client = _client(settings)
    good = make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=critic)
    for token, arxiv_id in [
        (make_token(keys=keys, purpose=Purpose.manage, subscriber_id=critic), "2603.00011"),
        (good + "x", "2603.00011"),
        (make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=critic + 1000),
         "2603.00011"),
        (make_token(keys=keys, purpose=Purpose.feedback, subscriber_id=critic, extra="x:1"),
         "2603.00011"),
        (good, "9999.99999"),
    ]:
        url = f"/feedback/{token}/{arxiv_id}/save"
        assert client.get(url).status_code == 404
        assert client.post(url).status_code == 404
    assert _saved(settings) == []
    # The feedback links still work beside the save route.
    assert client.get(f"/feedback/{good}/2603.00011", params={"vote": "more"}).status_code == 200


def test_the_saved_list_downloads_as_bibtex_and_csv_and_can_shrink(both: Settings) -> None:
    sid = confirmed_reader(both, "ada@example.org", ["speech synthesis"])
    other = confirmed_reader(both, "bob@example.org", ["speech synthesis"])
    with session_scope(both.sqlalchemy_url) as session:
        for arxiv_id in ("2601.10000", "2601.10002"):
            save_paper(session=session, subscriber_id=sid, arxiv_id=arxiv_id)
        save_paper(session=session, subscriber_id=other, arxiv_id="2601.10004")
    client = _client(both)
    url = manage_path(both, sid)
    page = client.get(url)
    listed = re.search(r'<ul class="papers saved">(.*?)</ul>', page.text, re.S)
    assert "2 papers saved" in page.text and listed is not None
    assert re.findall(r"arXiv:([\d.]+) · saved", listed.group(1)) == ["2601.10002", "2601.10000"]

    bib = client.get(f"{url}/saved.bib")
    assert bib.status_code == 200 and bib.headers["cache-control"] == "no-store"
    assert bib.headers["content-disposition"] == 'attachment; filename="saved-papers.bib"'
    library = _bibtex_entries(bib.text)
    assert {e["ID"]: e["title"] for e in library} == {
        "arXiv:2601.10000": "Zero-shot speech synthesis with a neural codec language model",
        "arXiv:2601.10002": "Voice cloning from three seconds of audio",
    }
    assert all(e["author"] == "Ada Lovelace and Alan Turing" and e["eprint"] in e["url"]
               for e in library)

    table = list(csv.DictReader(io.StringIO(client.get(f"{url}/saved.csv").text)))
    assert [row["arxiv_id"] for row in table] == ["2601.10002", "2601.10000"]  # newest first
    assert table[0]["authors"] == "Ada Lovelace; Alan Turing"
    assert table[0]["abs_url"] == "https://arxiv.org/abs/2601.10002"

    assert client.get(f"{url}/saved.exe").status_code == 404
    forged = manage_path(both, sid).replace("/manage/", "/manage/x")
    assert client.get(f"{forged}/saved.csv").status_code == 404
    feedback = make_token(keys=both.signing_keys(), purpose=Purpose.feedback, subscriber_id=sid)
    assert client.get(f"/manage/{feedback}/saved.bib").status_code == 404

    csrf = csrf_of(page.text)
    assert client.post(f"{url}/saved/remove", data={"csrf": "no", "arxiv_id": "2601.10000"}
                       ).status_code == 400
    removed = client.post(f"{url}/saved/remove", data={"csrf": csrf, "arxiv_id": "2601.10000"},
                          follow_redirects=False)
    assert removed.status_code == 303
    assert _saved(both) == sorted([(sid, "2601.10002"), (other, "2601.10004")])
    with session_scope(both.sqlalchemy_url) as session:
        erase(session=session, subscriber_id=sid)
    assert _saved(both) == [(other, "2601.10004")]  # erased with the subscriber


def test_a_saved_paper_counts_as_two_more_votes_and_lifts_papers_like_it(
    stocked: tuple[Settings, list[int]]  # noqa: F811
) -> None:
    settings, (critic, fan, control) = stocked
    with session_scope(settings.sqlalchemy_url) as session:
        record_vote(session=session, subscriber_id=fan, arxiv_id=RATED_FLOW[0][0], vote=Vote.less)
        for arxiv_id, _, _ in RATED_FLOW:
            save_paper(session=session, subscriber_id=fan, arxiv_id=arxiv_id)
        ratings = ratings_for(session=session, subscriber_ids=[critic, fan, control])
    # Saving stands in for the earlier vote on the same paper.
    assert sorted((r.arxiv_id, r.weight) for r in ratings[fan]) == sorted(
        (i, SAVED_WEIGHT) for i, _, _ in RATED_FLOW)
    assert SAVED_WEIGHT == 2.0 and critic not in ratings

    assert planning.plan_daily(settings=settings, day=DAY).planned == 3
    from subscribers import ledger

    with session_scope(settings.sqlalchemy_url) as session:
        rows = {r.subscriber_id: r.payload["matches"]
                for r in session.exec(select(ledger.Delivery))}
    top = rows[fan][0]
    assert top["arxiv_id"] == "2603.00011"  # the new flow-matching paper rises to the top
    assert top["similar_to"] in {i for i, _, _ in RATED_FLOW}
    assert "similar_to" not in rows[control][0]


# --- the manage page in Chromium -------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    port = free_port()
    settings = live_settings(tmp_path_factory.mktemp("saved") / "var", port)
    store_papers(settings)
    with serving(settings, port):
        yield settings


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_the_manage_page_lists_saved_papers(live: Settings, browser: Any, width: int) -> None:
    sid = confirmed_reader(live, f"saved-{width}@example.org", ["speech synthesis"])
    feedback = make_token(keys=live.signing_keys(), purpose=Purpose.feedback, subscriber_id=sid)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    for arxiv_id in ("2601.10000", "2601.10002", "2601.10004"):
        page.goto(f"{live.public_url}/feedback/{feedback}/{arxiv_id}/save")
        if arxiv_id == "2601.10000":
            shot(page, "save-paper", width)
        page.get_by_role("button", name="Save").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == "Saved"
    assert len(_saved(live)) >= 3
    page.goto(live.public_url + manage_path(live, sid))
    items = page.locator("ul.saved li")
    assert items.count() == 3
    page.locator("#saved-heading").scroll_into_view_if_needed()
    shot(page, "manage-saved", width)
    page.locator("section[aria-labelledby=saved-heading]").screenshot(
        path=str(ARTIFACTS / f"manage-saved-card-{width}.png"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download BibTeX").click()
    assert download.value.suggested_filename == "saved-papers.bib"
    items.first.get_by_role("button").click()
    page.wait_for_url(re.compile(r"done=unsaved"))
    assert page.locator("ul.saved li").count() == 2
    context.close()
