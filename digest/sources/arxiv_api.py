"""Keyword backfill through the arXiv API, via the `arxiv` package, at one request per 3 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import arxiv
import requests

from core.errors import first_line
from digest.papers import PaperIn, split_arxiv_id
from digest.sources.arxiv_feed import FeedError, parse_feed
from digest.sources.fetch import MAX_DOCUMENT_BYTES, TOTAL_TIMEOUTS, FetchError, read_capped
from digest.text import clean_text

PAGE_LIMIT = 2000  # the API's maximum page size

# The package spaces the pages of one search; arXiv's one request per 3 s also holds between
# searches, and each search builds its own client, so the gap between them is kept here.
_pace = threading.Lock()
_last_search_end: dict[str, float] = {}


class _Session(requests.Session):
    """A requests session with a default timeout and a cap on each body (in bytes and in
    time), that remembers the last body it received."""

    def __init__(self, timeout: float, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.last_body: bytes | None = None

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send with our timeout (arxiv 4.0.2 passes none, so a hung server would hang
        forever) and read the body ourselves, streamed, stopping at the caps."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs["stream"] = True
        with super().request(method, url, *args, **kwargs) as response:
            try:
                body = read_capped(response.iter_content(64 * 1024), max_bytes=self.max_bytes,
                                   seconds=self.timeout * TOTAL_TIMEOUTS,
                                   declared=response.headers.get("content-length"))
            except FetchError as error:
                raise FetchError(f"{response.url}: {error}") from None
        response._content = body  # what requests keeps once it has read a body itself
        self.last_body = body
        return response


class ApiClient(arxiv.Client):
    """`arxiv.Client` pointed at a configurable endpoint (tests use a local server)."""

    def __init__(
        self,
        *,
        api_url: str,
        page_size: int,
        delay_seconds: float,
        num_retries: int,
        timeout: float,
    ) -> None:
        super().__init__(page_size=page_size, delay_seconds=delay_seconds, num_retries=num_retries)
        # The package formats its class-level `query_url_format` with the urlencoded arguments.
        endpoint = api_url.replace("{", "{{").replace("}", "}}")
        self.query_url_format = endpoint + ("&" if "?" in api_url else "?") + "{}"
        self.session = _Session(timeout)
        self._session = self.session


def result_to_paper(result: arxiv.Result) -> PaperIn:
    """One `arxiv.Result` -> a PaperIn (announced on the day its listed version appeared)."""
    arxiv_id, version = split_arxiv_id(result.entry_id)
    categories = list(dict.fromkeys(term for term in result.categories if term))
    comment = clean_text(result.comment or "")
    return PaperIn(
        arxiv_id=arxiv_id,
        version=version,
        title=clean_text(result.title),
        abstract=clean_text(result.summary),
        authors=[name for author in result.authors if (name := clean_text(author.name))],
        categories=categories,
        primary_category=result.primary_category or (categories[0] if categories else None),
        comment=comment or None,
        published=result.published,
        updated=result.updated,
        announced_on=result.updated.date(),
        abs_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}v{version}",
        source="api",
    )


def _results(client: ApiClient, search: arxiv.Search, where: str) -> Iterator[arxiv.Result]:
    """The client's results, with the package's errors turned into one-line FetchErrors."""
    iterator = client.results(search)
    while True:
        try:
            result = next(iterator)
        except StopIteration:
            return
        except arxiv.UnexpectedEmptyPageError:
            # A later page answered with a valid empty feed even after the package's retries:
            # arXiv has nothing more to give, which is not an error.
            return
        except arxiv.HTTPError as error:
            raise FetchError(f"{where}: HTTP {error.status}") from None
        except requests.Timeout:
            raise FetchError(f"{where}: timed out after {client.session.timeout:g} s") from None
        except requests.RequestException as error:
            reason = first_line(error)
            raise FetchError(f"{where}: {reason}") from None
        except ValueError as error:  # an unparseable date inside an entry
            raise FetchError(f"{where}: unreadable entry ({error})") from None
        if "/api/errors" in result.entry_id:
            # The API reports a bad query as a one-entry feed whose summary says what is wrong.
            raise FetchError(f"{where}: {clean_text(result.summary) or 'query rejected'}")
        yield result


def search_papers(
    query: str,
    *,
    api_url: str,
    max_results: int = 50,
    delay_seconds: float = 3.0,
    num_retries: int = 3,
    timeout: float = 30.0,
) -> list[PaperIn]:
    """Newest papers matching an arXiv API query (`all:"speech synthesis"`), as PaperIn."""
    if max_results <= 0:
        return []
    client = ApiClient(
        api_url=api_url,
        page_size=min(max_results, PAGE_LIMIT),
        delay_seconds=delay_seconds,
        num_retries=num_retries,
        timeout=timeout,
    )
    search = arxiv.Search(
        query=query,
        max_results=max_results,
        # A digest wants what is new about a keyword, not its classics.
        sort_by=arxiv.SortCriterion.SubmittedDate,
        sort_order=arxiv.SortOrder.Descending,
    )
    where = f"arXiv API {api_url}"
    papers: list[PaperIn] = []
    with _pace:
        wait = _last_search_end.get(api_url, -delay_seconds) + delay_seconds - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            for result in _results(client, search, where):
                try:
                    papers.append(result_to_paper(result))
                except ValueError:
                    continue  # an entry without an arXiv id is not a paper we can store
        finally:
            _last_search_end[api_url] = time.monotonic()
    if not papers and client.session.last_body is not None:
        # The package reads any 200 body leniently and skips the error entries the API sends
        # for a bad query: an empty answer must be a feed, and not an error report.
        try:
            parse_feed(client.session.last_body, source="api")
        except FeedError as error:
            raise FetchError(f"{where}: {error}") from None
    return papers
