"""Which thing a saved url names, and the related links found in text; summary drafts."""

from __future__ import annotations

import pytest

from digest.clippings.models import ClipKind
from digest.clippings.summary import draft_summary, split_sentences
from digest.clippings.urls import classify_url, clean_url, find_urls, related_kind, related_links


@pytest.mark.parametrize(
    "url",
    [
        "https://arxiv.org/abs/2601.20481",
        "http://arxiv.org/abs/2601.20481v2",
        "https://arxiv.org/pdf/2601.20481",
        "https://arxiv.org/pdf/2601.20481v3.pdf",
        "https://export.arxiv.org/abs/2601.20481",
        "https://www.arxiv.org/html/2601.20481v1/",
        "https://huggingface.co/papers/2601.20481",
        "https://arxiv.org/abs/2601.20481#section",
    ],
)
def test_every_form_of_an_arxiv_paper_is_one_key(url: str) -> None:
    target = classify_url(url)
    assert target.key == "arxiv:2601.20481"
    assert target.url == "https://arxiv.org/abs/2601.20481"
    assert target.kind == ClipKind.paper
    assert target.arxiv_id == "2601.20481"


def test_openreview_github_huggingface_and_other_links() -> None:
    forum = classify_url("https://openreview.net/forum?id=FihSkzyxdv&noteId=abc")
    pdf = classify_url("https://openreview.net/pdf?id=FihSkzyxdv")
    assert forum.key == pdf.key == "openreview:FihSkzyxdv"
    assert forum.kind == ClipKind.paper and pdf.url == "https://openreview.net/forum?id=FihSkzyxdv"
    repo = classify_url("https://github.com/k2-fsa/OmniVoice/")
    assert repo.key == "github:k2-fsa/omnivoice" and repo.kind == ClipKind.link
    assert classify_url("https://GitHub.com/K2-FSA/omnivoice.git").key == repo.key
    other = classify_url("https://Blog.Example.com/post/?utm_source=x&id=3#top")
    assert other.url == "https://blog.example.com/post?id=3" == other.key
    assert other.kind == ClipKind.link
    assert clean_url("https://example.com/?fbclid=1") == "https://example.com"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty url"),
        ("ftp://files.example.org/x", "not an http"),
        ("javascript:alert(1)", "not an http"),
        ("arxiv.org/abs/2601.20481", "not an http"),
        ("https:///nohost", "no host"),
        ("https://exa mple.com", "whitespace"),
        ("https://example.com:99999/", "malformed url"),
        ("https://" + "a" * 2001 + ".com", "longer than"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        classify_url(url)


def test_related_links_by_kind() -> None:
    assert related_kind("https://github.com/k2-fsa/OmniVoice") == "code"
    assert related_kind("https://huggingface.co/spaces/k2-fsa/OmniVoice") == "demo"
    assert related_kind("https://huggingface.co/k2-fsa/OmniVoice") == "weights"
    assert related_kind("https://huggingface.co/datasets/a/b") is None
    assert related_kind("https://zhu-lab.github.io/omnivoice/") == "project"
    assert related_kind("https://github.com/k2-fsa") is None  # an organisation, not a repo
    abstract = (
        "We release code at https://github.com/k2-fsa/OmniVoice. Samples: "
        "https://omnivoice.github.io/demo/, weights (https://huggingface.co/k2-fsa/OmniVoice) "
        "and a live demo at https://huggingface.co/spaces/k2-fsa/OmniVoice."
    )
    assert find_urls(abstract)[0] == "https://github.com/k2-fsa/OmniVoice"
    assert related_links([abstract, "second https://github.com/other/repo"]) == {
        "code": "https://github.com/k2-fsa/OmniVoice",
        "project": "https://omnivoice.github.io/demo",
        "weights": "https://huggingface.co/k2-fsa/OmniVoice",
        "demo": "https://huggingface.co/spaces/k2-fsa/OmniVoice",
    }


ABSTRACT = (
    "Zero-shot text-to-speech (TTS) models, e.g. VALL-E et al., struggle with speaker "
    "similarity on long utterances. Prior work relies on large codebooks. In this paper, we "
    "propose FooTTS, a non-autoregressive model with 1.5 B parameters. It uses a masked "
    "generative transformer. Experiments show FooTTS outperforms strong baselines by 12.5% WER "
    "and runs 3x faster. Code is available at https://github.com/foo/footts."
)


def test_summary_draft_is_problem_contribution_result_and_deterministic() -> None:
    sentences = split_sentences(ABSTRACT)
    assert sentences[0].startswith("Zero-shot") and sentences[0].endswith("long utterances.")
    assert len(sentences) == 6  # "e.g.", "et al." and "1.5" do not end a sentence
    draft = draft_summary(ABSTRACT)
    assert draft == (
        "Prior work relies on large codebooks. In this paper, we propose FooTTS, a "
        "non-autoregressive model with 1.5 B parameters. Experiments show FooTTS outperforms "
        "strong baselines by 12.5% WER and runs 3x faster."
    )
    assert draft_summary(ABSTRACT) == draft
    assert draft_summary("") == ""
    assert draft_summary("One sentence only.") == "One sentence only."
    long = " ".join(f"We propose method number {n} which is great." for n in range(200))
    assert len(draft_summary(long)) <= 600
