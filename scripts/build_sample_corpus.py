"""Build the bundled sample corpus from the "Daily Papers" seed page.

Run by a developer, by hand, only when the seed changes (the outputs are committed):

    .venv/bin/python scripts/build_sample_corpus.py [SEED] [--atom-out PATH] [--sections-out PATH]

Writes two files, byte-for-byte the same on every run:

- `digest/data/sample_corpus.atom`: an arXiv-API-style Atom document (namespaces atom, arxiv,
  opensearch) with one <entry> per unique paper, at the highest version the seed lists. Titles,
  abstracts and comments keep the seed's text (LaTeX, raw "&") so that ingesting the corpus
  exercises `digest.text.clean_text`; only XML escaping is applied.
- `tests/data/seed_sections.json`: {keyword section: [version-free ids in seed order]}, used as
  weak relevance labels.

What the seed does not have, and what stands in for it:

- One date per row. It is the date of the listed version (2507.03147v3 is dated 2026-01-29), so
  it becomes <updated>; <published> (the first version's date) is unknown and set to the same
  date.
- No authors: entries carry no <author> element rather than invented names.
- No categories: they are approximated from the keyword section, audio captioning as
  cs.SD/eess.AS and speech synthesis, TTS and speech language models as cs.CL/eess.AS/cs.SD.
  A paper listed under several sections takes its primary category from the first one.
"""

from __future__ import annotations

import argparse
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = ROOT / "../shared/seeds/001_0a4e1afdd8f2084f.txt"
DEFAULT_ATOM = ROOT / "digest/data/sample_corpus.atom"
DEFAULT_SECTIONS = ROOT / "tests/data/seed_sections.json"

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"

SECTION_CATEGORIES = {
    "Audio Caption": ["cs.SD", "eess.AS"],
    "Speech Synthesis": ["cs.CL", "eess.AS", "cs.SD"],
    "TTS": ["cs.CL", "eess.AS", "cs.SD"],
    "Speech language model": ["cs.CL", "eess.AS", "cs.SD"],
}

SECTION = re.compile(r"^##\s+(?P<name>.+?)\s*$")
ROW = re.compile(
    r"^\|\s*\*\*\[(?P<title>.+)\]\((?P<url>https?://arxiv\.org/abs/[^)\s]+)\)\*\*\s*"
    r"\|[^|]*"
    r"\|\s*<details><summary>Show</summary><p>(?P<abstract>.*?)</p></details>\s*"
    r"\|\s*(?P<date>\d{4}-\d{2}-\d{2})\s*"
    r"\|(?P<comment>.*)\|\s*$"
)
# Long comments are folded: <details><summary>Accep...</summary><p>Accepted to ICASSP2026</p>.
FOLDED = re.compile(r"<details><summary>.*?</summary><p>(?P<full>.*?)</p></details>")
ARXIV_URL = re.compile(r"arxiv\.org/abs/(?P<id>.+?)(?:v(?P<version>\d+))?$")


@dataclass
class SeedPaper:
    arxiv_id: str
    version: int
    title: str
    abstract: str
    date: str
    comment: str
    sections: list[str] = field(default_factory=list)


def parse_row(line: str) -> tuple[str, int, str, str, str, str] | None:
    """One table row -> (id, version, title, abstract, date, comment), or None for other lines."""
    row = ROW.match(line)
    if row is None:
        return None
    url = ARXIV_URL.search(row["url"])
    if url is None:
        raise ValueError(f"no arXiv id in {row['url']!r}")
    comment = row["comment"].strip()
    folded = FOLDED.fullmatch(comment)
    if folded:
        comment = folded["full"].strip()
    version = int(url["version"] or 1)
    return url["id"], version, row["title"].strip(), row["abstract"].strip(), row["date"], comment


def read_seed(text: str) -> tuple[list[SeedPaper], dict[str, list[str]], int]:
    """Unique papers (first-seen order, highest version), ids per section, and the row count."""
    papers: dict[str, SeedPaper] = {}
    sections: dict[str, list[str]] = {}
    section = ""
    rows = 0
    for line in text.splitlines():
        heading = SECTION.match(line)
        if heading:
            section = heading["name"]
            sections.setdefault(section, [])
            continue
        parsed = parse_row(line)
        if parsed is None:
            continue
        if not section:
            raise ValueError("a table row before any '## Keyword' section")
        rows += 1
        arxiv_id, version, title, abstract, day, comment = parsed
        if arxiv_id not in sections[section]:
            sections[section].append(arxiv_id)
        known = papers.get(arxiv_id)
        if known is None:
            papers[arxiv_id] = SeedPaper(arxiv_id, version, title, abstract, day, comment)
            known = papers[arxiv_id]
        elif version > known.version:
            known.version, known.title, known.abstract = version, title, abstract
            known.date, known.comment = day, comment or known.comment
        if section not in known.sections:
            known.sections.append(section)
    return list(papers.values()), sections, rows


def categories_for(paper: SeedPaper) -> list[str]:
    """The approximated categories, primary (from the first section) first."""
    terms = [term for name in paper.sections for term in SECTION_CATEGORIES.get(name, [])]
    return list(dict.fromkeys(terms)) or ["cs.SD"]


def build_atom(papers: list[SeedPaper]) -> bytes:
    """The arXiv-API-style Atom document for these papers."""
    ET.register_namespace("", ATOM)
    ET.register_namespace("arxiv", ARXIV)
    ET.register_namespace("opensearch", OPENSEARCH)
    feed = ET.Element(f"{{{ATOM}}}feed")
    newest = max(paper.date for paper in papers)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        child = ET.SubElement(parent, tag, attrs)
        child.text = text
        return child

    add(feed, f"{{{ATOM}}}id", "https://arxiv.org/api/sample-corpus")
    add(feed, f"{{{ATOM}}}title", "arXiv Query: sample corpus (Daily Papers seed)")
    add(feed, f"{{{ATOM}}}updated", f"{newest}T00:00:00Z")
    add(feed, f"{{{OPENSEARCH}}}itemsPerPage", str(len(papers)))
    add(feed, f"{{{OPENSEARCH}}}totalResults", str(len(papers)))
    add(feed, f"{{{OPENSEARCH}}}startIndex", "0")
    for paper in papers:
        versioned = f"{paper.arxiv_id}v{paper.version}"
        entry = add(feed, f"{{{ATOM}}}entry")
        add(entry, f"{{{ATOM}}}id", f"http://arxiv.org/abs/{versioned}")
        add(entry, f"{{{ATOM}}}title", paper.title)
        add(entry, f"{{{ATOM}}}updated", f"{paper.date}T00:00:00Z")
        add(entry, f"{{{ATOM}}}published", f"{paper.date}T00:00:00Z")
        add(entry, f"{{{ATOM}}}summary", paper.abstract)
        if paper.comment:
            add(entry, f"{{{ARXIV}}}comment", paper.comment)
        add(
            entry,
            f"{{{ATOM}}}link",
            href=f"https://arxiv.org/abs/{versioned}",
            rel="alternate",
            type="text/html",
        )
        add(
            entry,
            f"{{{ATOM}}}link",
            href=f"https://arxiv.org/pdf/{versioned}",
            rel="related",
            type="application/pdf",
            title="pdf",
        )
        categories = categories_for(paper)
        add(entry, f"{{{ARXIV}}}primary_category", term=categories[0], scheme=ARXIV)
        for term in categories:
            add(entry, f"{{{ATOM}}}category", term=term, scheme=ARXIV)
    ET.indent(feed, space="  ")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def main() -> None:
    """Read the seed, write the corpus and the section labels, say what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", nargs="?", type=Path, default=DEFAULT_SEED)
    parser.add_argument("--atom-out", type=Path, default=DEFAULT_ATOM)
    parser.add_argument("--sections-out", type=Path, default=DEFAULT_SECTIONS)
    args = parser.parse_args()
    papers, sections, rows = read_seed(args.seed.read_text(encoding="utf-8"))
    args.atom_out.parent.mkdir(parents=True, exist_ok=True)
    args.atom_out.write_bytes(build_atom(papers))
    args.sections_out.parent.mkdir(parents=True, exist_ok=True)
    labels = json.dumps(sections, indent=2, ensure_ascii=False) + "\n"
    args.sections_out.write_text(labels, encoding="utf-8")
    print(f"{rows} rows, {len(papers)} unique papers -> {args.atom_out}, {args.sections_out}")


if __name__ == "__main__":
    main()
