"""A day of papers for feedback and ranking tests: rated surveys and flow-matching papers
from a month ago, new ones today among unrelated filler (so "speech synthesis" is as rare as on
a real day), and the `stocked` fixture that stores them with three subscribers.

A test module that uses `stocked` imports it from here.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from core.db import session_scope
from core.settings import Settings
from digest.papers import Paper, PaperIn, upsert_papers
from subscribers.models import SubscriberCreate
from subscribers.service import add_subscriber

DAY = date(2026, 3, 2)
OLD = DAY - timedelta(days=30)  # rated long ago: outside the digest window, still in the store

RATED_SURVEYS = [
    ("2601.00001", "A survey of neural speech synthesis",
     "This survey reviews neural speech synthesis. We present a taxonomy of existing methods, "
     "compare representative systems, and discuss open challenges and future directions."),
    ("2601.00002", "Voice conversion: a comprehensive review",
     "We review voice conversion research of the last decade, categorize existing approaches "
     "into a taxonomy, summarize datasets and metrics, and outline open challenges."),
    ("2601.00003", "Neural audio codecs: a survey",
     "This survey covers neural audio codecs for speech. We organize prior work into a "
     "taxonomy, compare reported results, and identify open challenges and future directions."),
]
RATED_FLOW = [
    (f"2601.0001{n}", f"Flow matching speech synthesis {name}",
     f"We propose {name}, a flow matching model for speech synthesis with optimal transport "
     "paths and few sampling steps; it beats diffusion baselines in naturalness.")
    for n, name in enumerate(["FlowA", "FlowB", "FlowC"])
]
NEW_SURVEYS = [
    ("2603.00001", "Expressive speech synthesis: a comprehensive survey",
     "We survey expressive speech synthesis, organise prior work into a taxonomy, review "
     "datasets and metrics, and outline open challenges and future directions."),
    ("2603.00002", "A review of zero-shot speech synthesis",
     "This review categorizes zero-shot speech synthesis methods into a taxonomy, compares "
     "existing systems, and discusses open challenges and future research directions."),
]
NEW_PAPERS = [
    ("2603.00011", "Flow matching speech synthesis in four steps",
     "We propose QuickFlow, a flow matching model for speech synthesis with optimal transport "
     "paths that needs four sampling steps and beats diffusion baselines."),
    ("2603.00012", "Prosody transfer for speech synthesis",
     "We propose a prosody encoder for speech synthesis that transfers rhythm from a "
     "reference utterance; listening tests show gains in naturalness."),
    ("2603.00013", "Multilingual speech synthesis with shared phonemes",
     "We train one speech synthesis model for twelve languages with a shared phoneme set and "
     "language adapters, and report intelligibility and naturalness."),
    ("2603.00014", "Speech synthesis for low-resource languages",
     "We adapt a pretrained speech synthesis model to three low-resource languages with one "
     "hour of data each, using data augmentation and self-training."),
]

# The rest of the day's listing, so that "speech synthesis" is as rare as on a real day.
FILLER = [
    (f"2603.001{n:02d}", title, f"{title}. We study this problem with new methods.")
    for n, title in enumerate([
        "Robust graph neural networks for molecule property prediction",
        "Reinforcement learning for robotic manipulation",
        "Efficient attention kernels for long context transformers",
        "Federated optimisation under heterogeneous client data",
        "Contrastive pretraining of vision encoders at scale",
        "Calibrated uncertainty for medical image segmentation",
        "Sparse mixture of experts for machine translation",
        "Retrieval augmented question answering over tables",
        "Sound event detection with weak labels",
        "Speaker verification under channel mismatch",
        "Automatic speech recognition for children",
        "Music source separation with band-split networks",
    ])
]


def papers_in(rows: list[tuple[str, str, str]], day: date) -> list[PaperIn]:
    """(arxiv id, title, abstract) rows as papers announced on `day`."""
    return [PaperIn(arxiv_id=i, title=t, abstract=a, announced_on=day, source="test",
                    abs_url=f"https://arxiv.org/abs/{i}") for i, t, a in rows]


@pytest.fixture
def stocked(migrated: Settings) -> tuple[Settings, list[int]]:
    """The papers above stored; three confirmed subscribers to "speech synthesis" (critic, fan,
    control) and their ids."""
    with session_scope(migrated.sqlalchemy_url) as session:
        upsert_papers(session=session, papers=papers_in(RATED_SURVEYS + RATED_FLOW, OLD)
                      + papers_in(NEW_SURVEYS + NEW_PAPERS + FILLER, DAY))
        ids = [add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
            email=f"{name}@example.org", keywords=["speech synthesis"])).id or 0
            for name in ("critic", "fan", "control")]
    return migrated, ids


def revise_paper(settings: Settings, arxiv_id: str, **changes: Any) -> None:
    """A later sighting of a stored paper (a new version, a comment with a code link),
    through the same upsert ingest uses."""
    with session_scope(settings.sqlalchemy_url) as session:
        stored = session.get(Paper, arxiv_id)
        assert stored is not None
        fields = stored.model_dump(include={"arxiv_id", "version", "title", "abstract",
                                            "comment", "announced_on", "abs_url"})
        fields.update(changes)
        upsert_papers(session=session, papers=[PaperIn(**fields, source="api")])
