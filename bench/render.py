"""Rendering benchmark: personalised daily digests per second on one core, beside the naive
baseline of compiling the MJML template for every message, in the same run.

Run by hand or from `make bench`: `python bench/render.py --messages 2000`. Prints JSON lines:
- shared_renders: the product's path on realistic profiles (1-4 keywords from the stack's
  vocabulary, as bench/deliver.py uses): subscribers with the same digest share one render and
  get their own links substituted;
- every_digest_distinct: the same messages with the shared renders forgotten before each one
  (worst case: no two subscribers alike; per-paper views and wrapped text stay cached);
- every_digest_distinct_full_template: as above, but each digest rendered by Jinja over the
  whole template (the path before paper blocks were stitched from a cache);
- compile_per_message_baseline: the MJML compiled again for every message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/render.py` works

from digest.daily import compose_daily  # noqa: E402
from digest.ranking import PaperIndex, rank_profiles  # noqa: E402
from digest.sources.arxiv_feed import parse_feed  # noqa: E402
from emails import render  # noqa: E402
from emails.message import Message  # noqa: E402
from emails.render import RecipientLinks, clear_template_caches, render_daily  # noqa: E402
from tests.support.celery_stack import make_profiles  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "digest" / "data" / "sample_corpus.atom"


def digests(count: int) -> list:  # type: ignore[type-arg]
    """`count` realistic digests: random 2-4 keyword profiles ranked over the sample corpus."""
    papers = parse_feed(CORPUS.read_bytes(), source="sample").papers
    by_id = {p.arxiv_id: p for p in papers}
    profiles = make_profiles(count, seed=7)
    rankings = rank_profiles(PaperIndex(papers), profiles, limit=10, floor=1.5)
    day = max(p.announced_on for p in papers)
    composed = [compose_daily(day=day, keywords=k, matches=m, papers=by_id)  # type: ignore[arg-type]
                for k, m in zip(profiles, rankings, strict=True)]
    return [d for d in composed if d is not None]


def render_all(batch: list, *, compile_each: bool = False,  # type: ignore[type-arg]
               distinct: bool = False, full_template: bool = False) -> float:
    """Seconds to render every digest, each with its own links; optionally throwing the
    compiled template (and every cache) or only the shared renders away each time."""
    stitched = render._render_daily
    if full_template:  # the whole template through Jinja, as before stitching
        render._render_daily = _full_template_render  # type: ignore[assignment]
    start = time.perf_counter()
    for number, digest in enumerate(batch):
        links = RecipientLinks(f"https://d.test/manage/m{number}",
                               f"https://d.test/unsubscribe/u{number}",
                               f"https://d.test/unsubscribe/u{number}")
        if compile_each:
            clear_template_caches()
        elif distinct:
            render._SHARED.clear()
        render_daily(digest, to=f"reader{number}@example.org", sender="Digest <d@example.org>",
                     links=links, postal_address="1 Example Street")
    seconds = time.perf_counter() - start
    render._render_daily = stitched
    return seconds


def _full_template_render(digest, *, sender, links, postal_address, service_name,  # type: ignore[no-untyped-def]
                          updates=()):
    """render._render_daily as it was: Jinja over daily.mjml and daily.txt.j2 whole."""
    context = render.daily_context(digest, links=links, postal_address=postal_address,
                                   service_name=service_name, updates=updates)
    subject = render.clean(f"{service_name} · {render.short_date(digest.day)} · "
                           f"{render.papers_phrase(digest.count)}")
    context["subject"] = subject
    return Message(to="", subject=subject, html=render.render_template("daily.mjml", context),
                   text=render.render_template("daily.txt.j2", context),
                   sender=render.clean(sender),
                   headers=render.unsubscribe_headers(links.one_click_url),
                   tags={"kind": "daily", "day": digest.day.isoformat()}, categories=("daily",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=100, help="messages for the baseline")
    args = parser.parse_args()
    batch = digests(args.messages)
    distinct = len({render._digest_key(d) for d in batch})
    # Warm up as a sender is by mid-run: template compiled, each paper's view prepared once.
    render_all(batch, distinct=True)
    render._SHARED.clear()
    rows = []
    for what, seconds, count in [
        ("shared_renders", render_all(batch), len(batch)),
        ("every_digest_distinct", render_all(batch, distinct=True), len(batch)),
        ("every_digest_distinct_full_template",
         render_all(batch, distinct=True, full_template=True), len(batch)),
        ("compile_per_message_baseline",
         render_all(batch[: args.baseline], compile_each=True), min(args.baseline, len(batch))),
    ]:
        rows.append({"bench": "render", "what": what, "messages": count,
                     "seconds": round(seconds, 3), "per_second_one_core": round(count / seconds)})
    rows[0]["distinct_digests"] = distinct
    baseline = rows[-1]["per_second_one_core"]
    for row in rows[:-1]:
        row["speedup"] = round(float(row["per_second_one_core"]) / float(baseline), 1)
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
