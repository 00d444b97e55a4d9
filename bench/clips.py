"""Clippings: suggestion and page-title throughput, each beside its baseline in the same run.

1. Suggestions for a month of clips in one pass (one ranking index, every section, tag and
   topic profile at once) against the baseline of suggesting each clip on its own, as a
   per-save loop would.
2. Page titles of a month's links fetched 8 at a time against fetching them one by one, from a
   local server that answers each page after a fixed delay (a stand-in for real sites).

Run by a developer: `python bench/clips.py --clips 300 --pages 40`; prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from digest.clippings.autofill import fetch_pages
from digest.clippings.config import load_clippings_config
from digest.clippings.models import Clip, ClipKind
from digest.clippings.sorting import background_docs, suggest
from digest.sources.pages import fetch_page


def month_of_clips(count: int) -> list[Clip]:
    """Clips made from the bundled corpus' papers (title + abstract), repeated as needed."""
    papers = background_docs()
    return [
        Clip(month="2026-04", key=f"bench:{n}", url=f"https://example.org/{n}",
             title=papers[n % len(papers)].title, abstract=papers[n % len(papers)].abstract,
             kind=ClipKind.paper)
        for n in range(count)
    ]


def bench_suggest(count: int) -> dict[str, object]:
    config = load_clippings_config()
    clips = month_of_clips(count)
    suggest(clips[:1], config)  # warm the corpus cache and the stemmer
    start = time.perf_counter()
    together = suggest(clips, config)
    one_pass = time.perf_counter() - start
    start = time.perf_counter()
    alone = [suggest([clip], config)[0] for clip in clips]
    per_clip = time.perf_counter() - start
    agree = sum(a.section == b.section for a, b in zip(together, alone, strict=True))
    return {
        "bench": "clips.suggest", "clips": count,
        "one_pass_s": round(one_pass, 3), "baseline_per_clip_s": round(per_clip, 3),
        "speedup": round(per_clip / one_pass, 1),
        "clips_per_s": round(count / one_pass, 1),
        "same_section_as_baseline": f"{agree}/{count}",
    }


class _SlowPage(BaseHTTPRequestHandler):
    delay = 0.1

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        time.sleep(self.delay)
        body = f"<html><head><title>Page {self.path}</title></head></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


def bench_pages(count: int, delay: float) -> dict[str, object]:
    _SlowPage.delay = delay
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/{n}" for n in range(count)]
    try:
        start = time.perf_counter()
        pages = fetch_pages(urls, timeout=5)
        concurrent = time.perf_counter() - start
        start = time.perf_counter()
        for url in urls:
            fetch_page(url, timeout=5)
        sequential = time.perf_counter() - start
    finally:
        server.shutdown()
    titled = sum(1 for page in pages.values() if not isinstance(page, str) and page.title)
    return {
        "bench": "clips.page_titles", "pages": count, "page_delay_s": delay,
        "concurrent_s": round(concurrent, 3), "baseline_sequential_s": round(sequential, 3),
        "speedup": round(sequential / concurrent, 1), "titled": titled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--page-delay", type=float, default=0.1)
    args = parser.parse_args()
    print(json.dumps(bench_suggest(args.clips)))
    print(json.dumps(bench_pages(args.pages, args.page_delay)))


if __name__ == "__main__":
    main()
