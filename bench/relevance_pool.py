"""Judging pools for the natural profiles (bench/data/natural_profiles.json), TREC style.

Run by a developer when profiles or rankers change:
    python bench/relevance_pool.py --out DIR [--depth 12] [--packets 4] [--only-unjudged]
        [--split dev2]
For every profile, the top `depth` papers of every system (the product and the plain
baselines of bench/baselines.py) are merged; papers already judged in
bench/data/natural_judgments.json are left out with --only-unjudged (a later round). The pool
is written as judging packets (DIR/packet_N.json): profiles with their candidates sorted by
arXiv id, title and abstract only, never which system found a paper, so a judge stays blind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import relevance  # noqa: E402

PROFILES = ROOT / "bench" / "data" / "natural_profiles.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for packet_N.json")
    parser.add_argument("--depth", type=int, default=12, help="top papers taken per system")
    parser.add_argument("--packets", type=int, default=4, help="how many judging packets")
    parser.add_argument("--only-unjudged", action="store_true",
                        help="leave out papers already in natural_judgments.json")
    parser.add_argument("--split", action="append",
                        help="pool only the profiles of this split (repeatable; default all)")
    args = parser.parse_args()
    papers = relevance.load_papers()
    by_id = {paper.arxiv_id: paper for paper in papers}
    runs = relevance.pooling_systems(papers)
    judged = relevance.natural_judgments() if args.only_unjudged else {}
    profiles = [profile for profile in json.loads(PROFILES.read_text())["profiles"]
                if not args.split or profile["split"] in args.split]
    pools = []
    for profile in profiles:
        found = {i for run in runs.values() for i in run(profile["keywords"], args.depth)}
        found -= set(judged.get(profile["id"], {}))
        pools.append({"id": profile["id"], "keywords": profile["keywords"], "candidates": [
            {"id": i, "title": by_id[i].title, "abstract": by_id[i].abstract}
            for i in sorted(found)]})
    args.out.mkdir(parents=True, exist_ok=True)
    for number in range(args.packets):
        packet = [pool for pool in pools[number::args.packets] if pool["candidates"]]
        (args.out / f"packet_{number}.json").write_text(json.dumps(packet, indent=1))
        print(json.dumps({"packet": number, "profiles": len(packet),
                          "candidates": sum(len(p["candidates"]) for p in packet)}))


if __name__ == "__main__":
    main()
