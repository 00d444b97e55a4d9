"""A web page's title (og:title, else <title>) and its links, fetched with a short timeout."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http import HTTPStatus

import httpx

from core.errors import first_line
from digest.sources.fetch import TOTAL_TIMEOUTS, USER_AGENT, FetchError, read_capped

MAX_BYTES = 512 * 1024  # the <head> is near the top; a huge page is not read to the end
MAX_TITLE = 300


@dataclass
class PageInfo:
    """What a page says about itself."""

    url: str  # after redirects
    title: str = ""
    description: str = ""
    links: list[str] = field(default_factory=list)


class _HeadParser(HTMLParser):
    """Collects <title>, og:/twitter: title and description meta tags, and <a href> links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self.in_title = False
        self.meta: dict[str, str] = {}
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag == "title":
            self.in_title = True
        elif tag == "meta":
            name = (values.get("property") or values.get("name") or "").lower()
            if name and "content" in values:
                self.meta.setdefault(name, values["content"])
        elif tag == "a" and values.get("href", "").startswith(("http://", "https://")):
            self.links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)


def _one_line(text: str, limit: int = MAX_TITLE) -> str:
    return " ".join(html.unescape(text).split())[:limit]


def parse_page(markup: str, *, url: str) -> PageInfo:
    """Title (og:title, twitter:title, then <title>), description and absolute links of a page."""
    parser = _HeadParser()
    parser.feed(markup)
    parser.close()
    meta = parser.meta
    title = meta.get("og:title") or meta.get("twitter:title") or "".join(parser.title_parts)
    description = meta.get("og:description") or meta.get("description") or ""
    return PageInfo(
        url=url,
        title=_one_line(title),
        description=_one_line(description, 1000),
        links=list(dict.fromkeys(parser.links)),
    )


def page_client(timeout: float) -> httpx.Client:
    """A client for many page fetches (shareable across threads): one TLS setup, kept-alive
    connections, redirects followed."""
    return httpx.Client(
        timeout=timeout, follow_redirects=True,
        headers={"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml"},
    )


def fetch_page(
    url: str, *, timeout: float, max_bytes: int = MAX_BYTES, client: httpx.Client | None = None
) -> PageInfo:
    """Fetch a page (redirects followed, at most max_bytes read, within TOTAL_TIMEOUTS x
    timeout); FetchError says why not."""
    if client is None:
        with page_client(timeout) as own:
            return fetch_page(url, timeout=timeout, max_bytes=max_bytes, client=own)
    try:
        with client.stream("GET", url) as response:
            if response.is_error:
                try:
                    phrase = HTTPStatus(response.status_code).phrase
                except ValueError:
                    phrase = response.reason_phrase
                raise FetchError(f"HTTP {response.status_code} {phrase}".rstrip())
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind and kind not in ("text/html", "application/xhtml+xml"):
                raise FetchError(f"not an HTML page ({kind})")
            # The <head> is near the top: past max_bytes the rest is not read at all.
            body = read_capped(response.iter_bytes(), max_bytes=max_bytes,
                               seconds=timeout * TOTAL_TIMEOUTS, truncate=True)
            encoding = response.charset_encoding or "utf-8"
            final_url = str(response.url)
    except httpx.TimeoutException:
        raise FetchError(f"timed out after {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FetchError("too many redirects") from None
    except httpx.HTTPError as error:
        reason = first_line(error)
        raise FetchError(reason) from None
    try:
        markup = bytes(body).decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        markup = bytes(body).decode("utf-8", errors="replace")
    return parse_page(markup, url=final_url)
