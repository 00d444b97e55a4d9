"""Rendering benchmark: personalised daily digests per second on one core, beside the naive
baseline of compiling the MJML template for every message, in the same run.

Run by hand or from `make bench`: `python bench/render.py --messages 2000`. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from digest.daily import compose_daily
from digest.ranking import PaperIndex, rank_profiles
from digest.sources.arxiv_feed import parse_feed
from emails.render import RecipientLinks, clear_template_caches, render_daily

CORPUS = Path(__file__).resolve().parents[1] / "digest" / "data" / "sample_corpus.atom"
KEYWORDS = ["TTS", "speech synthesis", "voice cloning", "audio captioning", "prosody",
            "speech language model", "speech tokenizer", "audio codec", "emotion", "full-duplex"]


def digests(count: int) -> list:  # type: ignore[type-arg]
    """`count` realistic digests: random 2-4 keyword profiles ranked over the sample corpus."""
    papers = parse_feed(CORPUS.read_bytes(), source="sample").papers
    by_id = {p.arxiv_id: p for p in papers}
    rng = random.Random(7)
    profiles = [rng.sample(KEYWORDS, rng.randint(2, 4)) for _ in range(count)]
    rankings = rank_profiles(PaperIndex(papers), profiles, limit=10, floor=1.5)
    day = max(p.announced_on for p in papers)
    composed = [compose_daily(day=day, keywords=k, matches=m, papers=by_id)  # type: ignore[arg-type]
                for k, m in zip(profiles, rankings, strict=True)]
    return [d for d in composed if d is not None]


def render_all(batch: list, *, compile_each: bool) -> float:  # type: ignore[type-arg]
    """Seconds to render every digest; optionally throwing the compiled template away each time."""
    links = RecipientLinks("https://d.test/manage/t", "https://d.test/unsubscribe/t",
                           "https://d.test/unsubscribe/t")
    start = time.perf_counter()
    for number, digest in enumerate(batch):
        if compile_each:
            clear_template_caches()
        render_daily(digest, to=f"reader{number}@example.org", sender="Digest <d@example.org>",
                     links=links, postal_address="1 Example Street")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=100, help="messages for the baseline")
    args = parser.parse_args()
    batch = digests(args.messages)
    render_all(batch[:20], compile_each=False)  # warm up: compile once, fill caches
    cached = render_all(batch, compile_each=False)
    naive = render_all(batch[: args.baseline], compile_each=True)
    per_second = len(batch) / cached
    baseline_per_second = min(args.baseline, len(batch)) / naive
    print(json.dumps({"bench": "render", "what": "cached_templates", "messages": len(batch),
                      "seconds": round(cached, 3), "per_second_one_core": round(per_second)}))
    print(json.dumps({"bench": "render", "what": "compile_per_message_baseline",
                      "messages": min(args.baseline, len(batch)), "seconds": round(naive, 3),
                      "per_second_one_core": round(baseline_per_second),
                      "speedup": round(per_second / baseline_per_second, 1)}))


if __name__ == "__main__":
    main()
