"""The garbage collector's settings for batch work: planning a day and sending it.

A planner or a sender holds a large heap that lives as long as its process (modules, the
embedding model, the paper index) and allocates millions of short-lived objects (matches,
payloads, renders). With CPython's defaults (a young collection every 700 allocations, and
every tenth of those older ones, up to the whole heap), the collector walks the long-lived
heap again and again: measured, a third of the CPU of planning 20,000 subscribers. Nothing
here stops memory from being freed: reference counting frees everything outside a cycle at
once, and cycles are still found, only less often.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between young collections during a batch (CPython's default is 700): a few
# MB of garbage in cycles may wait, against collections that walked the heap every few ms.
BATCH_YOUNG_COLLECTION_EVERY = 50_000


def freeze_long_lived() -> None:
    """Leave everything alive now out of every later collection: for what a process keeps to
    its end (imported modules at a worker's start, the embedding model once loaded). Frozen
    objects are still freed by reference counting when nothing uses them; only a cycle among
    them that dies later is never reclaimed (when the model loads mid-plan, that plan's
    session, say): a one-off, bounded by what was alive at that moment."""
    gc.collect()
    gc.freeze()


_batches = 0  # batches running in this process (a threads pool runs several at once)
_saved: tuple[int, ...] = ()
_lock = threading.Lock()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect young objects every BATCH_YOUNG_COLLECTION_EVERY allocations while the block
    runs (one plan, one send run). The thresholds are process-wide: the first batch to start
    raises them and the last to end puts them back, however the batches overlap."""
    global _batches, _saved
    with _lock:
        if _batches == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], BATCH_YOUNG_COLLECTION_EVERY), *_saved[1:])
        _batches += 1
    try:
        yield
    finally:
        with _lock:
            _batches -= 1
            if _batches == 0:
                gc.set_threshold(*_saved)
