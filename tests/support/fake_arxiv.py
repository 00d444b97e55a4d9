"""A fake arXiv API: `arxiv_api` answers id_list queries in the API's own Atom, for one
known paper (OmniVoice, with code, demo and project links); unknown ids are simply absent.

Serve it with pytest-httpserver: `.respond_with_handler(arxiv_api)`.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from werkzeug import Request, Response

ABSTRACT = (
    "Zero-shot text-to-speech (TTS) still struggles with hundreds of languages. We present "
    "OmniVoice, a non-autoregressive diffusion TTS model trained on 581k hours of speech. "
    "OmniVoice outperforms prior systems by 20% in speaker similarity across 600 languages. "
    "Code: https://github.com/k2-fsa/OmniVoice and a demo at "
    "https://huggingface.co/spaces/k2-fsa/OmniVoice."
)
PAPERS = {
    "2604.00001": ("OmniVoice: Massively Multilingual Zero-Shot TTS", ABSTRACT,
                   "Project page: https://omnivoice.github.io/", ["Ada Lovelace", "Alan Turing"]),
}


def atom(ids: list[str]) -> str:
    """An arXiv API answer for an id_list query, in the API's own format."""
    entries = []
    for arxiv_id in ids:
        if arxiv_id not in PAPERS:
            continue
        title, abstract, comment, authors = PAPERS[arxiv_id]
        names = "".join(f"<author><name>{escape(n)}</name></author>" for n in authors)
        entries.append(f"""
  <entry>
    <id>http://arxiv.org/abs/{arxiv_id}v1</id>
    <updated>2026-04-02T17:00:00Z</updated>
    <published>2026-04-01T17:00:00Z</published>
    <title>{escape(title)}</title>
    <summary>  {escape(abstract)}
</summary>
    {names}
    <arxiv:comment>{escape(comment)}</arxiv:comment>
    <link href="http://arxiv.org/abs/{arxiv_id}v1" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/{arxiv_id}v1" rel="related"/>
    <arxiv:primary_category term="eess.AS" scheme="http://arxiv.org/schemas/atom"/>
    <category term="eess.AS" scheme="http://arxiv.org/schemas/atom"/>
  </entry>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom">
  <id>https://arxiv.org/api/test</id>
  <title>arXiv Query: id_list={",".join(ids)}</title>
  <updated>2026-04-05T00:00:00Z</updated>
  <opensearch:totalResults>{len(entries)}</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
  <opensearch:itemsPerPage>{len(ids)}</opensearch:itemsPerPage>{"".join(entries)}
</feed>
"""


def arxiv_api(request: Request) -> Response:
    ids = parse_qs(request.query_string.decode()).get("id_list", [""])[0].split(",")
    return Response(atom([i for i in ids if i]), content_type="application/atom+xml")
