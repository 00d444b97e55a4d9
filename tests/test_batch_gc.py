"""Batch work's garbage-collector settings: raised only while a plan or a send run lasts."""

from __future__ import annotations

import gc

import pytest

from core.batch_gc import BATCH_YOUNG_COLLECTION_EVERY, fewer_collections, freeze_long_lived
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


def test_planning_and_sending_run_as_batches() -> None:
    """The entry points wear the decorator (the wrapped function is kept by functools)."""
    for entry in (planning.plan_daily, planning.plan_due, sending.send_due):
        assert getattr(entry, "__wrapped__", None) is not None, entry


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
