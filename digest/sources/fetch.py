"""Bytes from a local file or an http(s) URL, with one-line errors; arXiv listing URLs."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import httpx

USER_AGENT = "paper-digest/0.1"


class FetchError(RuntimeError):
    """A document could not be read; the message is one line naming what and why."""


def is_url(path_or_url: str) -> bool:
    """True for http(s) URLs, False for anything meant as a local path."""
    return urlsplit(path_or_url).scheme.lower() in ("http", "https")


def read_document(path_or_url: str, *, timeout: float) -> bytes:
    """The raw bytes of a local file or an http(s) URL (redirects followed)."""
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
        response = httpx.get(
            path_or_url,
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
        )
    except httpx.TimeoutException:
        raise FetchError(f"{path_or_url}: timed out after {timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{path_or_url}: too many redirects") from None
    except httpx.InvalidURL as error:
        raise FetchError(f"{path_or_url}: invalid URL ({error})") from None
    except httpx.HTTPError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FetchError(f"{path_or_url}: {reason}") from None
    if response.is_error:
        # The standard phrase, not the server's spelling of it ("NOT FOUND").
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = response.reason_phrase
        raise FetchError(f"{path_or_url}: HTTP {response.status_code} {phrase}".rstrip())
    return response.content


def rss_url(base: str, categories: list[str]) -> str:
    """One listing for several categories: https://rss.arxiv.org/rss/cs.CL+cs.SD."""
    wanted = [category.strip() for category in categories if category.strip()]
    if not wanted:
        raise ValueError("rss_url needs at least one arXiv category")
    return base.rstrip("/") + "/" + "+".join(dict.fromkeys(wanted))
