"""Which claimed rows go out together: the next wave, taken from a sender's queue.

A wave is what a sender has on the wire at once (workers/sending.py). Its size bounds what a
killed worker may send twice, and how many failed requests a run meets before its pause.
"""

from __future__ import annotations

from collections import deque

from subscribers.ledger import Claim

# A wave carries at most `send_concurrency` x this many rows, which bounds what a killed
# worker may repeat; a wave that is one shared request may fill it to the batch limit.
WAVE_RECIPIENTS_PER_REQUEST = 8


def take_wave(queue: deque[Claim], *, requests: int, width: int, batch_limit: int) -> list[Claim]:
    """The next claims that fit in at most `requests` requests and the wave's row budget: on
    a transport that batches (`batch_limit` > 1), rows with the same share key (neighbours in
    id order) count as one request, and a wave carries `width` x WAVE_RECIPIENTS_PER_REQUEST
    rows."""
    batching = batch_limit > 1
    budget = width * (WAVE_RECIPIENTS_PER_REQUEST if batching else 1)
    requests = min(requests, budget)
    taken: list[Claim] = []
    keys: set[str] = set()
    while queue:
        claim = queue[0]
        key = claim.share if batching and claim.share else f"row {claim.id}"
        new = key not in keys
        if new and len(keys) == requests:
            break
        # Past the budget, only a wave that is one request so far may go on filling it.
        if len(taken) >= budget and (new or len(keys) > 1):
            break
        if len(taken) >= batch_limit:
            break
        keys.add(key)
        taken.append(queue.popleft())
    return taken
