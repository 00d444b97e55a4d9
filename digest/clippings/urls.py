"""Recognise what a saved link points at: one key per thing, so a paper saved twice is one clip.

arXiv abs, pdf, html and versioned urls and Hugging Face paper pages all name one arXiv paper;
OpenReview forum and pdf urls one submission; other urls are cleaned (tracking parameters,
fragments and trailing slashes dropped) and the clean url is the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digest.clippings.models import ClipKind

MAX_URL = 2000  # the clip table's url column

_ARXIV_HOSTS = frozenset(["arxiv.org", "www.arxiv.org", "export.arxiv.org"])
_ARXIV_PATH = re.compile(
    r"^/(?:abs|pdf|html|format)/(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})"
    r"(?:v\d+)?(?:\.pdf)?/?$"
)
_HF_PAPER = re.compile(r"^/papers/(?P<id>\d{4}\.\d{4,5})(?:v\d+)?/?$")
_TRACKING = re.compile(r"^(?:utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref_src|ref)$", re.IGNORECASE)
# Hugging Face paths that are not an <org>/<model> pair.
_HF_RESERVED = frozenset(
    ["papers", "spaces", "datasets", "docs", "blog", "models", "api", "collections", "learn",
     "organizations", "posts", "settings", "login", "join", "pricing", "tasks"]
)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`\])}]+", re.IGNORECASE)


@dataclass(frozen=True)
class ClipTarget:
    """What a url names: its dedupe key, the url readers follow, and what kind of thing it is."""

    key: str
    url: str
    kind: ClipKind
    arxiv_id: str | None = None
    openreview_id: str | None = None


def _split(url: str) -> tuple[str, str, str, str, str]:
    """Scheme, host, path, query, fragment of an http(s) url, or a clear ValueError."""
    raw = (url or "").strip()
    if not raw:
        raise ValueError("empty url")
    if len(raw) > MAX_URL:
        raise ValueError(f"url longer than {MAX_URL} characters")
    if any(char.isspace() for char in raw):
        raise ValueError(f"url contains whitespace: {raw[:80]!r}")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) url: {raw[:80]!r}")
    try:
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise ValueError(f"malformed url: {raw[:80]!r}") from None
    if not host or "." not in host and host != "localhost":
        raise ValueError(f"url has no host name: {raw[:80]!r}")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return scheme, netloc, parts.path, parts.query, parts.fragment


def clean_url(url: str) -> str:
    """The url without tracking parameters, fragment, default trailing slash; host lower case."""
    scheme, netloc, path, query, _ = _split(url)
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _TRACKING.match(k)]
    path = path.rstrip("/") if path not in ("", "/") else ""
    return urlunsplit((scheme, netloc, path, urlencode(kept), ""))


def classify_url(url: str) -> ClipTarget:
    """The key, canonical url and kind of a saved link; ValueError for a malformed url."""
    scheme, netloc, path, query, _ = _split(url)
    host = netloc.split(":")[0]
    if host in _ARXIV_HOSTS and (match := _ARXIV_PATH.match(path)):
        return _arxiv(match.group("id"))
    if host in ("huggingface.co", "www.huggingface.co") and (match := _HF_PAPER.match(path)):
        return _arxiv(match.group("id"))
    if host in ("openreview.net", "www.openreview.net") and path.rstrip("/") in (
        "/forum", "/pdf", "/attachment"
    ):
        ids = [value for key, value in parse_qsl(query) if key == "id" and value]
        if ids:
            forum = f"https://openreview.net/forum?id={ids[0]}"
            return ClipTarget(
                key=f"openreview:{ids[0]}", url=forum, kind=ClipKind.paper, openreview_id=ids[0]
            )
    clean = clean_url(url)
    if host in ("github.com", "www.github.com"):
        owner_repo = [part for part in path.split("/") if part][:2]
        if len(owner_repo) == 2 and not path.strip("/").count("/") > 1:
            repo = "/".join(owner_repo).removesuffix(".git")
            return ClipTarget(
                key=f"github:{repo.lower()}", url=f"https://github.com/{repo}", kind=ClipKind.link
            )
    return ClipTarget(key=clean[:400], url=clean, kind=ClipKind.link)


def _arxiv(arxiv_id: str) -> ClipTarget:
    return ClipTarget(
        key=f"arxiv:{arxiv_id}", url=f"https://arxiv.org/abs/{arxiv_id}", kind=ClipKind.paper,
        arxiv_id=arxiv_id,
    )


def related_kind(url: str) -> str | None:
    """'code', 'demo', 'weights', 'project' or 'paper' for a related link; None if unknown."""
    try:
        _, netloc, path, _, _ = _split(url)
    except ValueError:
        return None
    host = netloc.split(":")[0].removeprefix("www.")
    parts = [part for part in path.split("/") if part]
    if host in ("github.com", "gitlab.com", "codeberg.org", "bitbucket.org"):
        return "code" if len(parts) >= 2 else None
    if host == "huggingface.co":
        if parts[:1] == ["spaces"] and len(parts) >= 3:
            return "demo"
        if parts[:1] == ["papers"]:
            return "paper"
        if len(parts) >= 2 and parts[0] not in _HF_RESERVED:
            return "weights"
        return None
    if host == "modelscope.cn" and parts[:1] == ["models"]:
        return "weights"
    if host.endswith(".github.io") or host.endswith(".gitlab.io") or host.endswith(".pages.dev"):
        return "project"
    if host in _ARXIV_HOSTS or host == "openreview.net":
        return "paper"
    return None


def find_urls(text: str) -> list[str]:
    """The http(s) urls in free text (abstract, comment, note), in order, without repeats."""
    found = (match.group(0).rstrip(".,;:!?") for match in _URL_IN_TEXT.finditer(text or ""))
    return list(dict.fromkeys(found))


def related_links(texts: list[str], *, own_url: str = "") -> dict[str, str]:
    """The first code, demo, weights and project urls found in the texts (not the clip's own)."""
    links: dict[str, str] = {}
    own = clean_url(own_url) if own_url else ""
    for text in texts:
        for url in find_urls(text):
            kind = related_kind(url)
            if kind is None or kind == "paper" or kind in links:
                continue
            try:
                clean = clean_url(url)
            except ValueError:
                continue
            if clean != own:
                links[kind] = clean
    return links
