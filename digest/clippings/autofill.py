"""Fill in a clip: a paper's title, authors and abstract (store, then arXiv API), a summary
draft and related links; any other link's page title. Failures are recorded on the clip
(autofill = failed, autofill_error = why) and never raised: saving a link must not depend on
the network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import arxiv
import requests
from sqlmodel import Session

from core.errors import first_line
from digest.clippings.models import AutofillState, Clip, ClipKind
from digest.clippings.summary import draft_summary
from digest.clippings.titles import guessed_title, title_from_url
from digest.clippings.urls import related_kind, related_links
from digest.papers import PaperIn, papers_by_id
from digest.sources.arxiv_api import ApiClient, result_to_paper
from digest.sources.fetch import FetchError
from digest.sources.pages import PageInfo, fetch_page, page_client
from digest.text import clean_text

ID_BATCH = 100  # ids per arXiv API request (id_list)
API_DELAY_SECONDS = 3.0
PAGE_WORKERS = 8  # pages fetched at once (different sites, so no one site is hammered)
MAX_ERROR = 300


@dataclass(frozen=True)
class PaperFacts:
    """What autofill needs of a paper, from the store or the API."""

    title: str
    authors: list[str]
    abstract: str
    comment: str


def fetch_arxiv_papers(
    ids: Sequence[str], *, api_url: str, timeout: float, num_retries: int = 0
) -> dict[str, PaperIn]:
    """Papers by version-free id from the arXiv API (id_list); FetchError on a failed request.

    No retries by default: an editor is waiting, and a failure is recorded, not fatal.
    """
    found: dict[str, PaperIn] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), ID_BATCH):
        if start:
            time.sleep(API_DELAY_SECONDS)  # arXiv asks for one request per 3 s
        batch = wanted[start:start + ID_BATCH]
        client = ApiClient(
            api_url=api_url, page_size=len(batch), delay_seconds=API_DELAY_SECONDS,
            num_retries=num_retries, timeout=timeout,
        )
        search = arxiv.Search(id_list=batch, max_results=len(batch))
        try:
            for result in client.results(search):
                if "/api/errors" in result.entry_id:
                    raise FetchError(f"arXiv API: {clean_text(result.summary) or 'rejected'}")
                try:
                    paper = result_to_paper(result)
                except ValueError:
                    continue
                found[paper.arxiv_id] = paper
        except arxiv.UnexpectedEmptyPageError:
            continue  # a valid, empty feed: none of these ids exist
        except arxiv.HTTPError as error:
            raise FetchError(f"arXiv API: HTTP {error.status}") from None
        except requests.Timeout:
            raise FetchError(f"arXiv API: timed out after {timeout:g} s") from None
        except requests.ConnectionError:
            host = urlsplit(api_url).netloc or api_url
            raise FetchError(f"arXiv API: cannot connect to {host}") from None
        except requests.RequestException as error:
            reason = first_line(error)
            raise FetchError(f"arXiv API: {reason[:200]}") from None
        except ValueError as error:
            raise FetchError(f"arXiv API: unreadable answer ({error})") from None
    return found


def paper_facts(
    *, session: Session, ids: Sequence[str], api_url: str, timeout: float, fetch: bool
) -> tuple[dict[str, PaperFacts], str | None]:
    """Facts per id from the paper store, the rest from the API; and the API's error, if any."""
    facts = {
        arxiv_id: PaperFacts(p.title, list(p.authors), p.abstract, p.comment or "")
        for arxiv_id, p in papers_by_id(session=session, ids=ids).items()
    }
    missing = [arxiv_id for arxiv_id in ids if arxiv_id not in facts]
    if not missing or not fetch:
        return facts, None
    try:
        fetched = fetch_arxiv_papers(missing, api_url=api_url, timeout=timeout)
    except FetchError as error:
        return facts, str(error)
    for arxiv_id, paper in fetched.items():
        facts[arxiv_id] = PaperFacts(
            paper.title, list(paper.authors), paper.abstract, paper.comment or ""
        )
    return facts, None


def _fail(clip: Clip, reason: str) -> None:
    clip.autofill = AutofillState.failed
    clip.autofill_error = reason[:MAX_ERROR]
    if not clip.title or clip.title == clip.url:
        # A title read from the address stands in until someone fixes it (the issue page
        # lists it among what the editor still has to write).
        clip.title = title_from_url(clip.url, clip.arxiv_id)
    _add_links(clip, related_links([clip.note], own_url=clip.url))  # found without a network


def _add_links(clip: Clip, found: dict[str, str]) -> None:
    """Related links the clip does not have yet; the editor's own links are never replaced."""
    merged = dict(clip.links or {})
    for kind, url in found.items():
        merged.setdefault(kind, url)
    clip.links = merged


def _placeholder_title(clip: Clip) -> bool:
    """No title, the url, or a browser's tab title for the paper ('[2604.01234] ...')."""
    title = clip.title.strip()
    return (
        guessed_title(clip) or title.startswith("Paper page - ")
        or bool(clip.arxiv_id and clip.arxiv_id in title)
    )


def fill_paper(clip: Clip, facts: PaperFacts) -> None:
    """Title, authors, abstract, summary draft and related links of a paper clip."""
    if _placeholder_title(clip):
        clip.title = facts.title
    clip.authors = list(facts.authors)
    clip.abstract = facts.abstract
    if not clip.summary:
        clip.summary = draft_summary(facts.abstract)
    _add_links(clip, related_links([facts.abstract, facts.comment, clip.note], own_url=clip.url))
    clip.autofill = AutofillState.done
    clip.autofill_error = None


def fetch_pages(urls: Sequence[str], *, timeout: float) -> dict[str, PageInfo | str]:
    """Each url's page, or the reason it could not be read; fetched a few at a time, so an
    import of a hundred links waits for the slowest few, not for the sum of them all."""
    wanted = list(dict.fromkeys(urls))

    if not wanted:
        return {}
    with page_client(timeout) as client:

        def one(url: str) -> PageInfo | str:
            try:
                return fetch_page(url, timeout=timeout, client=client)
            except FetchError as error:
                return str(error)

        if len(wanted) == 1:
            return {wanted[0]: one(wanted[0])}
        with ThreadPoolExecutor(max_workers=min(PAGE_WORKERS, len(wanted))) as pool:
            return dict(zip(wanted, pool.map(one, wanted), strict=True))


def fill_page(clip: Clip, page: PageInfo | str) -> None:
    """A non-arXiv link: its page title (and, for OpenReview, the abstract it shows)."""
    if isinstance(page, str):
        _fail(clip, f"{clip.url}: {page}")
        return
    if not page.title:
        _fail(clip, f"{clip.url}: the page has no title")
        return
    if guessed_title(clip):
        clip.title = page.title
    if clip.kind != ClipKind.link and not clip.abstract and page.description:
        clip.abstract = page.description  # OpenReview puts the abstract in og:description
        if not clip.summary:
            clip.summary = draft_summary(page.description)
    _add_links(clip, related_links([clip.note], own_url=clip.url))
    clip.autofill = AutofillState.done
    clip.autofill_error = None


def autofill_clips(
    *, session: Session, clips: Sequence[Clip], api_url: str, timeout: float, fetch: bool = True
) -> None:
    """Autofill every clip given; with fetch=False only the paper store is consulted."""
    ids = [clip.arxiv_id for clip in clips if clip.arxiv_id]
    facts, api_error = paper_facts(
        session=session, ids=ids, api_url=api_url, timeout=timeout, fetch=fetch
    ) if ids else ({}, None)
    pages = fetch_pages(
        [clip.url for clip in clips if not clip.arxiv_id], timeout=timeout
    ) if fetch else {}
    for clip in clips:
        if clip.arxiv_id:
            found = facts.get(clip.arxiv_id)
            if found is not None:
                fill_paper(clip, found)
            elif not fetch:
                _offline(clip)
            else:
                _fail(clip, api_error or f"arXiv has no paper {clip.arxiv_id}")
            session.add(clip)
            continue
        own = related_kind(clip.url)
        if own and own != "paper":
            _add_links(clip, {own: clip.url})  # a repo is its own code link, a Space its demo
        if fetch:
            fill_page(clip, pages[clip.url])
        else:
            _offline(clip)
        session.add(clip)


def _offline(clip: Clip) -> None:
    """No network: a title from the address and the links the note names; still pending, so
    a later autofill with the network fills in the rest."""
    if not clip.title or clip.title == clip.url:
        clip.title = title_from_url(clip.url, clip.arxiv_id)
    _add_links(clip, related_links([clip.note], own_url=clip.url))
