"""Batch work's garbage-collector settings: raised only while a plan or a send run lasts."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from core.batch_gc import BATCH_YOUNG_COLLECTION_EVERY, fewer_collections, freeze_long_lived
from core.settings import Settings
from emails.message import Message
from emails.transports.outbox import OutboxTransport
from tests.support.delivery import plan_latest_day as _plan_latest_day
from tests.support.delivery import stock as _stock
from workers import planning, sending


def test_a_batch_collects_less_often_and_puts_the_thresholds_back_even_when_it_fails() -> None:
    before = gc.get_threshold()
    seen = []

    @fewer_collections()
    def batch(fail: bool) -> None:
        seen.append(gc.get_threshold())
        if fail:
            raise RuntimeError("the batch failed")

    batch(False)
    with pytest.raises(RuntimeError):
        batch(True)
    assert gc.get_threshold() == before
    assert seen == [(max(before[0], BATCH_YOUNG_COLLECTION_EVERY), *before[1:])] * 2


def test_a_day_is_planned_and_sent_as_batches_and_the_thresholds_come_back(
    migrated: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning ranks and the sender hands over with the raised threshold; afterwards the
    process collects as it did before."""
    before = gc.get_threshold()
    seen: dict[str, list[int]] = {"rank": [], "send": []}
    rank = planning._rank

    def watched_rank(*args: Any, **kwargs: Any) -> Any:
        seen["rank"].append(gc.get_threshold()[0])
        return rank(*args, **kwargs)

    class WatchedOutbox(OutboxTransport):
        def send(self, message: Message) -> str:
            seen["send"].append(gc.get_threshold()[0])
            return super().send(message)

    monkeypatch.setattr(planning, "_rank", watched_rank)
    settings = migrated.model_copy(update={"lookback_days": 30})
    _stock(settings, ("ada@example.org", ["TTS"], "UTC", 7))
    assert _plan_latest_day(settings) == 1
    report = sending.send_due(settings=settings, transport=WatchedOutbox(tmp_path / "outbox"))
    assert report.sent == 1
    assert seen["rank"] and seen["send"]
    assert min(seen["rank"] + seen["send"]) >= BATCH_YOUNG_COLLECTION_EVERY
    assert gc.get_threshold() == before


def test_what_is_frozen_is_left_out_of_collections_and_still_freed_by_reference_counts() -> None:
    class Kept:
        pass

    kept = Kept()
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # never walked again
        gone = []
        import weakref

        weakref.finalize(kept, gone.append, True)
        del kept
        assert gone == [True]  # freed at once, frozen or not
    finally:
        gc.unfreeze()


def test_overlapping_batches_in_threads_put_the_thresholds_back_only_when_the_last_ends() -> None:
    """Senders in a threads pool overlap: the first to end must not lower the threshold
    under the other, nor the last leave it raised."""
    import threading

    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, ...]] = {}

    @fewer_collections()
    def first() -> None:
        first_in.set()
        second_in.wait(5)

    @fewer_collections()
    def second() -> None:
        second_in.set()
        first_out.wait(5)
        seen["second, after the first ended"] = gc.get_threshold()

    one = threading.Thread(target=first)
    two = threading.Thread(target=second)
    one.start()
    first_in.wait(5)
    two.start()
    one.join(5)
    first_out.set()
    two.join(5)
    assert seen["second, after the first ended"][0] >= BATCH_YOUNG_COLLECTION_EVERY
    assert gc.get_threshold() == before
