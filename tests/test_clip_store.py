"""The clip store on SQLite and PostgreSQL: save, merge, edit, override, order, delete."""

from __future__ import annotations

import re
import threading

import pytest
from sqlmodel import Session

from core.db import get_engine, session_scope
from core.settings import Settings
from digest.clippings.enrich import suggest_month
from digest.clippings.models import AutofillState, Clip, ClipKind
from digest.clippings.store import (
    add_clip,
    delete_clip,
    enrich_clips,
    list_clips,
    reorder_clips,
    update_clip,
)


def test_same_paper_saved_twice_is_one_clip_with_both_notes(migrated: Settings) -> None:
    with session_scope(migrated.sqlalchemy_url) as session:
        first = add_clip(session=session, url="https://arxiv.org/abs/2601.20481",
                         note="speaker unlearning", tags="TTS", month="2026-04")
        again = add_clip(session=session, url="https://arxiv.org/pdf/2601.20481v2",
                         note="v2 is out", tags=["tts", "Unlearning"], month="2026-04")
        hf = add_clip(session=session, url="https://huggingface.co/papers/2601.20481",
                      note="v2 is out", highlight=True, month="2026-04")
        other_month = add_clip(session=session, url="https://arxiv.org/abs/2601.20481v1",
                               month="2026-05")
        assert first.created and not again.created and not hf.created and other_month.created
        clip = first.clip
        assert again.clip.id == hf.clip.id == clip.id != other_month.clip.id
        assert clip.note == "speaker unlearning\n\nv2 is out"  # the repeat is not added twice
        assert clip.tags == ["TTS", "Unlearning"]  # case-insensitive dedupe, first spelling
        assert clip.kind == ClipKind.highlight
        assert clip.url == "https://arxiv.org/abs/2601.20481"
        assert clip.arxiv_id == "2601.20481" and clip.autofill == AutofillState.pending
        assert re.fullmatch(r"\d{4}-\d{2}", add_clip(
            session=session, url="https://example.com/x").clip.month)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.com/x"}, "not an http"),
        ({"url": "https://example.com", "month": "2026-13"}, "month must look like"),
        ({"url": "https://example.com", "month": "April"}, "month must look like"),
        ({"url": "https://example.com", "tags": [f"t{n}" for n in range(30)]}, "at most 20"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_saved(
    migrated: Settings, kwargs: dict[str, object], message: str
) -> None:
    with (
        session_scope(migrated.sqlalchemy_url) as session,
        pytest.raises(ValueError, match=message),
    ):
        add_clip(session=session, **kwargs)  # type: ignore[arg-type]
    with Session(get_engine(migrated.sqlalchemy_url)) as session:
        assert session.get(Clip, 1) is None


def test_overrides_survive_suggestions_and_ordering(migrated: Settings) -> None:
    month = "2026-04"
    with session_scope(migrated.sqlalchemy_url) as session:
        tts = add_clip(session=session, url="https://example.com/tts", month=month,
                       title="Zero-shot text-to-speech with a diffusion decoder",
                       note="TTS model, voice cloning, non-autoregressive").clip
        llm = add_clip(session=session, url="https://arxiv.org/abs/2604.00001", month=month,
                       title="Reinforcement learning post-training of large language models",
                       note="LLM agents and RLHF").clip
        repo = add_clip(session=session, url="https://github.com/a/b", month=month,
                        title="A speech toolkit", note="TTS and ASR recipes").clip
        tts.kind = ClipKind.paper  # a blog post about a paper, reclassified by the editor
        enrich_clips(session=session, settings=migrated, clips=[tts, llm, repo], fetch=False)
        assert tts.suggested_section == "Speech & Audio"
        assert "TTS" in tts.suggested_tags and "Diffusion" in tts.suggested_tags
        assert llm.suggested_section == "LLM & Training" and "RL" in llm.suggested_tags
        assert repo.suggested_section == "Also worth a look" and repo.topic == "TTS & Speech"
        assert repo.links == {"code": "https://github.com/a/b"}

        update_clip(session=session, clip_id=llm.id or 0,
                    changes={"section": "Multimodal", "tags": "Agents, RL", "topic": "Mine",
                             "summary": "Edited summary."})
        update_clip(session=session, clip_id=repo.id or 0, changes={"topic": "Toolkits"})
        suggest_month(session=session, settings=migrated, month=month)
        assert llm.section == "Multimodal" and llm.suggested_section == "LLM & Training"
        assert llm.effective_section == "Multimodal" and llm.effective_tags == ["Agents", "RL"]
        assert repo.topic == "Toolkits"  # the editor's topic is never replaced
        update_clip(session=session, clip_id=llm.id or 0, changes={"section": None})
        assert llm.effective_section == "LLM & Training"  # back to the suggestion

        ordered = reorder_clips(session=session, month=month,
                                ordered_ids=[repo.id or 0, llm.id or 0, tts.id or 0])
        # Sections in the configured order, "Also worth a look" last.
        assert [clip.id for clip in ordered] == [tts.id, llm.id, repo.id]
        reorder_clips(session=session, month=month, ordered_ids=[tts.id or 0])
        assert (tts.position, repo.position, llm.position) == (0, 1, 2)
        with pytest.raises(ValueError, match="not clips of 2026-04: 999"):
            reorder_clips(session=session, month=month, ordered_ids=[999])
        with pytest.raises(ValueError, match="cannot edit url"):
            update_clip(session=session, clip_id=tts.id or 0, changes={"url": "x"})
        with pytest.raises(ValueError, match="kind must be one of"):
            update_clip(session=session, clip_id=tts.id or 0, changes={"kind": "video"})
        with pytest.raises(ValueError, match="not an http"):
            update_clip(session=session, clip_id=tts.id or 0,
                        changes={"links": {"code": "javascript:alert(1)"}})
        delete_clip(session=session, clip_id=repo.id or 0)
        with pytest.raises(ValueError, match="no clip with id"):
            delete_clip(session=session, clip_id=repo.id or 0)
    with session_scope(migrated.sqlalchemy_url) as session:
        clips = list_clips(session=session, month=month)
        assert [clip.title[:14] for clip in clips] == ["Zero-shot text", "Reinforcement "]
        assert clips[1].summary == "Edited summary." and clips[1].tags == ["Agents", "RL"]
        custom = list_clips(session=session, month=month, sections=["LLM & Training"])
        assert [clip.id for clip in custom] == [llm.id, tts.id]


# SQLite serialises whole transactions; the race needs PostgreSQL's row-level locking.
@pytest.mark.postgres
@pytest.mark.parametrize("db_settings", ["postgres"], indirect=True)
def test_two_saves_at_the_same_moment_make_one_clip(migrated: Settings) -> None:
    """Session B inserts while A's uncommitted row holds the key: B merges once A commits."""
    engine = get_engine(migrated.sqlalchemy_url)
    results: list[object] = []
    with Session(engine) as first:
        add_clip(session=first, url="https://arxiv.org/abs/2601.20481", note="first",
                 month="2026-04")

        def second_save() -> None:
            with Session(engine) as second:
                try:
                    results.append(add_clip(session=second, url="https://arxiv.org/pdf/2601.20481",
                                            note="second", month="2026-04").created)
                    second.commit()
                except Exception as error:  # reported below; the thread must not die silently
                    results.append(error)

        worker = threading.Thread(target=second_save)
        worker.start()
        worker.join(0.5)  # B is now blocked on A's uncommitted row
        first.commit()
    worker.join(10)
    assert results == [False]
    with Session(engine) as session:
        clips = list_clips(session=session, month="2026-04")
    assert len(clips) == 1 and clips[0].note == "first\n\nsecond"
