"""Split a digest template's per-paper loop out, so each paper block renders once and digests
are stitched from remembered blocks (byte-identical to rendering the whole template)."""

from __future__ import annotations

import re

PAPER_LOOP = "{% for paper in section.papers %}"
_FOR_TAGS = re.compile(r"\{%-?\s*(for|endfor)\b[^%]*%\}")
# Wrapping the body in block tags keeps Jinja's trim_blocks/lstrip_blocks behaviour at its
# edges exactly as it was inside the loop (the newline after `{% for %}` is trimmed, etc.).
_BODY = "{%% if true %%}%s{%% endif %%}"
_INDIRECT = re.compile(r"\{%-?\s*(filter|autoescape|include|import|from|macro|call|set|with)\b")


def plain_uses_only(body: str, attributes: tuple[str, ...]) -> bool:
    """True when every `paper.<attribute>` in a loop body is printed as it is
    (`{{ paper.x }}`) or tested for truth (`{% if paper.x %}`), and never anything else: a
    filter, a comparison or a length would see a slot where the value goes (see
    emails.render.paper_block)."""
    if re.search(r"\bpaper\b(?!\.\w)", body):  # the whole paper (a macro's argument, an alias)
        return False
    if _INDIRECT.search(body):  # a filter block around a value, an include that reads `paper`
        return False
    for attribute in attributes:
        uses = len(re.findall(rf"\bpaper\.{attribute}\b", body))
        printed = re.findall(rf"\{{\{{-?\s*paper\.{attribute}\s*-?\}}\}}", body)
        tested = re.findall(rf"\{{%-?\s*if\s+paper\.{attribute}\s*-?%\}}", body)
        if uses != len(printed) + len(tested):
            return False
    return True


def split_paper_loop(source: str, call: str) -> tuple[str, str]:
    """(outer, body): the template with the whole paper loop replaced by `{{ call }}` (one call
    per section, cheaper than one per paper), and the loop's body alone as a template of
    `paper`, `loop` and the outer variables it uses."""
    start = source.find(PAPER_LOOP)
    if start < 0 or source.find(PAPER_LOOP, start + 1) >= 0:
        raise ValueError("expected exactly one paper loop in the template")
    body_start = start + len(PAPER_LOOP)
    depth = 1
    for match in _FOR_TAGS.finditer(source, body_start):
        depth += 1 if match.group(1) == "for" else -1
        if depth == 0:
            body = source[body_start : match.start()]
            # Block tags around the call strip whitespace as the loop's own tags did.
            call = "{% if true %}{{ " + call + " }}{% endif %}"
            outer = source[:start] + call + source[match.end() :]
            return outer, _BODY % body
    raise ValueError("the paper loop is never closed")
