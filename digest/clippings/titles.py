"""A readable title guessed from a link's address, for when its page cannot be read (offline
autofill, a failed fetch): `https://github.com/k2-fsa/OmniVoice` is `k2-fsa/OmniVoice`."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from digest.clippings.models import Clip

_CODE_HOSTS = frozenset(["github.com", "gitlab.com", "codeberg.org", "bitbucket.org"])
_EXTENSION = re.compile(r"\.(?:html?|php|aspx?|pdf|md)$", re.IGNORECASE)
_ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5})(?:v\d+)?(?:\.pdf)?$")


def title_from_url(url: str, arxiv_id: str | None = None) -> str:
    """'owner/repo' for code and model hosts, 'arXiv 2604.01234' for a paper, else the last
    path segment in words ('how-we-train.html' -> 'How we train'), else the host."""
    parts = urlsplit(url or "")
    host = (parts.hostname or "").removeprefix("www.")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if arxiv_id:
        return f"arXiv {arxiv_id}"
    if host in ("arxiv.org", "huggingface.co") and segments and (
        match := _ARXIV_ID.search(segments[-1])
    ):
        return f"arXiv {match.group(1)}"
    if host == "huggingface.co" and segments[:1] in (["spaces"], ["datasets"]):
        segments = segments[1:]
    if (host in _CODE_HOSTS or host == "huggingface.co") and len(segments) >= 2:
        return f"{segments[0]}/{segments[1].removesuffix('.git')}"
    if not segments:
        return host or url
    words = " ".join(_EXTENSION.sub("", segments[-1]).replace("_", " ").replace("-", " ").split())
    if not any(char.isalpha() for char in words):
        return f"{host}/{segments[-1]}" if host else url
    return words[:1].upper() + words[1:]


def guessed_title(clip: Clip) -> bool:
    """The clip's title is a stand-in: none, its address, or the guess made from it."""
    title = clip.title.strip()
    return not title or title == clip.url or title == title_from_url(clip.url, clip.arxiv_id)
