"""Query syntax: quotes, negatives, author: and cat: terms, and their clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from digest.query import Kind, QueryError, author_matches, name_words, parse_query, parse_term
from digest.ranking import PaperIndex, rank_keywords, rank_profiles

DAY = date(2026, 1, 28)


@dataclass(frozen=True)
class FullPaper:
    arxiv_id: str
    title: str
    abstract: str = ""
    announced_on: date = DAY
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


PAPERS = [
    FullPaper("7001.00001", "Speech tokenizers: a survey", "We survey speech tokenizers.",
              authors=["Ana Núñez"], categories=["cs.SD", "eess.AS"]),
    FullPaper("7001.00002", "A speech tokenizer for dialogue", "A new speech tokenizer.",
              authors=["Geoffrey E. Hinton", "Li Wei"], categories=["cs.CL"]),
    FullPaper("7001.00003", "Image segmentation at scale", "Segmentation of images.",
              authors=["Jürgen Schmidhuber"], categories=["cs.CV"]),
    FullPaper("7001.00004", "Graph neural networks for molecules", "Molecules and graphs.",
              authors=["G. Hinton"], categories=["cs.LG"]),
    FullPaper("7001.00005", "Federated learning under drift", "Clients drift.",
              categories=["cs.LG", "cs.SD"]),
]


def ids(keywords: list[str]) -> set[str]:
    return {m.arxiv_id for m in rank_keywords(PaperIndex(PAPERS), keywords, limit=10)}


def test_terms_parse_into_kinds() -> None:
    query = parse_query(['"flow matching"', "-survey", "author:Jürgen Schmidhuber", "cat:cs.SD",
                         "-cat:cs.CV", "speech tokenizer"])
    kinds = [(t.kind, t.value, t.negative) for t in query.terms]
    assert kinds == [
        (Kind.PHRASE, "flow matching", False),
        (Kind.PHRASE, "survey", True),
        (Kind.AUTHOR, "Jürgen Schmidhuber", False),
        (Kind.CATEGORY, "cs.SD", False),
        (Kind.CATEGORY, "cs.CV", True),
        (Kind.PHRASE, "speech tokenizer", False),
    ]
    assert [t.value for t in query.negative] == ["survey", "cs.CV"]
    assert parse_term("AUTHOR: Hinton").kind is Kind.AUTHOR


@pytest.mark.parametrize(("raw", "message"), [
    ("author:", "author: needs a name"),
    ("author:  123", "author: needs a name"),
    ("cat:", "cat: needs an arXiv category"),
    ("cat:not a category", "is not an arXiv category"),
    ("-", "A minus needs a word"),
    ('"speech tokenizer', "Close the quote"),
    ('speech "tokenizer" model', "Quote a whole keyword"),
    ("-!!", "A minus needs a word"),
    ('""', "Put some words inside the quotes"),
])
def test_malformed_terms_get_one_clear_sentence(raw: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_term(raw)


def test_author_names_match_accent_and_case_insensitively_last_name_enough() -> None:
    assert name_words("Jürgen  SCHMIDHUBER") == ("jurgen", "schmidhuber")
    assert author_matches(("hinton",), ("geoffrey", "e", "hinton"))
    assert author_matches(("geoffrey", "hinton"), ("geoffrey", "e", "hinton"))
    assert author_matches(("geoffrey", "hinton"), ("g", "hinton"))
    assert not author_matches(("john", "hinton"), ("geoffrey", "e", "hinton"))
    assert not author_matches(("hinton",), ("hinton", "smith"))
    assert ids(["author:schmidhuber"]) == {"7001.00003"}
    assert ids(["author:Nunez"]) == {"7001.00001"}
    assert ids(["author:Hinton"]) == {"7001.00002", "7001.00004"}
    assert ids(["author:Geoffrey Hinton"]) == {"7001.00002", "7001.00004"}  # G. is an initial
    assert ids(["author:Nobody"]) == set()


def test_categories_match_listed_and_cross_listed_papers() -> None:
    assert ids(["cat:cs.SD"]) == {"7001.00001", "7001.00005"}
    assert ids(["cat:CS.sd"]) == {"7001.00001", "7001.00005"}


def test_negatives_remove_papers_whatever_else_matched() -> None:
    assert ids(["speech tokenizer"]) == {"7001.00001", "7001.00002"}
    assert ids(["speech tokenizer", "-survey"]) == {"7001.00002"}  # stemmed: "surveys" too
    assert ids(["cat:cs.LG", "-author:Hinton"]) == {"7001.00005"}
    assert ids(["cat:cs.SD", "-cat:eess.AS"]) == {"7001.00005"}
    assert ids(["-survey"]) == set()  # negatives alone pick nothing


def test_a_keyword_match_in_a_category_ranks_above_a_bare_category_member() -> None:
    ranked = rank_keywords(PaperIndex(PAPERS), ["cat:cs.SD", "speech tokenizer"], limit=10)
    assert [m.arxiv_id for m in ranked][-1] == "7001.00005"
    assert ranked[0].matched[0] == "speech tokenizer"


def test_negatives_apply_per_profile_in_the_batched_pass() -> None:
    profiles = [["speech tokenizer", "-survey"], ["speech tokenizer"], ["-dialogue", "speech"]]
    got = rank_profiles(PaperIndex(PAPERS), profiles, limit=5)
    assert [{m.arxiv_id for m in row} for row in got] == [
        {"7001.00002"}, {"7001.00001", "7001.00002"}, {"7001.00001"},
    ]


def test_a_stored_keyword_that_no_longer_parses_ranks_nothing_instead_of_failing() -> None:
    assert ids(["author:", "speech tokenizer"]) == {"7001.00001", "7001.00002"}


def test_a_configured_synonyms_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    from core.settings import Settings
    from digest.analysis import Lexicon

    custom = tmp_path / "synonyms.txt"
    custom.write_text("# ours\ngnn = graph neural network\n", encoding="utf-8")
    settings = Settings(_env_file=None, synonyms_file=custom)  # DIGEST_SYNONYMS_FILE
    index = PaperIndex(PAPERS, lexicon=Lexicon.shipped(settings.synonyms_file))
    assert {m.arxiv_id for m in rank_keywords(index, ["GNN"])} == {"7001.00004"}
    assert not rank_keywords(PaperIndex(PAPERS), ["GNN"])  # the shipped file has no gnn
