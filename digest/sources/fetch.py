"""Bytes from a local file or an http(s) URL, with one-line errors; arXiv listing URLs.

Every remote read is capped in bytes and in time: the body is streamed and reading stops at
the cap, because a per-read timeout alone lets a server drip a byte at a time forever, and a
40 MB title would be stored and then shown on every page.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from core.errors import first_line

USER_AGENT = "paper-digest/0.1"
# The largest honest documents: a busy category's daily RSS listing or a 2,000-entry API page
# is a few MB; the trending list is a few hundred KB.
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
MAX_TRENDING_BYTES = 5 * 1024 * 1024
# A whole body must arrive within this many per-read timeouts (2 minutes at the default 30 s).
TOTAL_TIMEOUTS = 4


class FetchError(RuntimeError):
    """A document could not be read; the message is one line naming what and why."""


def _size(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n / 2**10:g} KB"


def read_capped(chunks: Iterable[bytes], *, max_bytes: int, seconds: float,
                declared: str | None = None, truncate: bool = False) -> bytes:
    """A streamed body, read until `max_bytes` or until `seconds` have passed and never
    further: FetchError then, or, when `truncate`, what arrived until then (a page's title is
    at the top)."""
    if not truncate and declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"larger than {_size(max_bytes)} ({_size(int(declared))}); not read")
    deadline = time.monotonic() + seconds
    body = bytearray()
    for chunk in chunks:
        body.extend(chunk)
        if len(body) > max_bytes:
            if truncate:
                return bytes(body[:max_bytes])
            raise FetchError(f"larger than {_size(max_bytes)}; stopped reading")
        if time.monotonic() > deadline:
            if truncate:
                return bytes(body)
            raise FetchError(f"took longer than {seconds:g} s; stopped reading")
    return bytes(body)


def is_url(path_or_url: str) -> bool:
    """True for http(s) URLs, False for anything meant as a local path."""
    return urlsplit(path_or_url).scheme.lower() in ("http", "https")


def read_document(path_or_url: str, *, timeout: float,
                  max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The raw bytes of a local file or an http(s) URL (redirects followed; at most
    `max_bytes`, within TOTAL_TIMEOUTS x `timeout`)."""
    if not is_url(path_or_url):
        try:
            return Path(path_or_url).expanduser().read_bytes()
        except FileNotFoundError:
            raise FetchError(f"{path_or_url}: no such file") from None
        except IsADirectoryError:
            raise FetchError(f"{path_or_url}: is a directory, not a file") from None
        except OSError as error:
            raise FetchError(f"{path_or_url}: {error.strerror or error}") from None
    try:
        with httpx.stream("GET", path_or_url, timeout=timeout, follow_redirects=True,
                          headers={"User-Agent": USER_AGENT}) as response:
            if response.is_error:
                raise FetchError(f"{path_or_url}: {_status(response)}")
            try:
                return read_capped(response.iter_bytes(), max_bytes=max_bytes,
                                   seconds=timeout * TOTAL_TIMEOUTS,
                                   declared=response.headers.get("content-length"))
            except FetchError as error:
                raise FetchError(f"{path_or_url}: {error}") from None
    except httpx.TimeoutException:
        raise FetchError(f"{path_or_url}: timed out after {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{path_or_url}: too many redirects") from None
    except httpx.InvalidURL as error:
        raise FetchError(f"{path_or_url}: invalid URL ({error})") from None
    except httpx.HTTPError as error:
        reason = first_line(error)
        raise FetchError(f"{path_or_url}: {reason}") from None


def _status(response: httpx.Response) -> str:
    """'HTTP 404 Not Found': the standard phrase, not the server's spelling ("NOT FOUND")."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason_phrase
    return f"HTTP {response.status_code} {phrase}".rstrip()


def rss_url(base: str, categories: list[str]) -> str:
    """One listing for several categories: https://rss.arxiv.org/rss/cs.CL+cs.SD."""
    wanted = [category.strip() for category in categories if category.strip()]
    if not wanted:
        raise ValueError("rss_url needs at least one arXiv category")
    return base.rstrip("/") + "/" + "+".join(dict.fromkeys(wanted))
