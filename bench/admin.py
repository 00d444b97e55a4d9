"""Admin benchmark: CSV import, subscriber search and the password check, each beside a
baseline measured in the same run.

- import: rows/s through import_csv (rows checked in bulk first, then one savepoint) vs the
  same add_subscriber calls in one plain transaction, and vs one savepoint per row (the
  simple way to let a bad row fail alone).
- search: a keyword search over every subscriber (keywords matched in Python) vs reading the
  same rows with no filter at all.
- login: one scrypt check (n=2**14, r=8) vs one SHA-256 of the same password: what a guesser
  pays per try.

Run by hand or from `make bench`: `python bench/admin.py --subscribers 5000`. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from sqlmodel import select

from core.db import session_scope
from core.settings import Settings
from subscribers.models import Subscriber, SubscriberCreate
from subscribers.service import add_subscriber
from subscribers.web.admin.csvio import import_csv
from subscribers.web.admin.passwords import check_password, hash_password
from subscribers.web.admin.queries import search_subscribers
from workers.migrate import upgrade

WORDS = ["speech synthesis", "TTS", "audio codec", "voice cloning", "prosody", "ASR",
         "speech language model", "diffusion", "full-duplex", "tokenizer"]


def csv_text(count: int, prefix: str) -> str:
    lines = ["email,keywords,frequency"]
    lines += [f"{prefix}{n}@example.org,{WORDS[n % 10]}; {WORDS[(n * 7) % 10]},daily"
              for n in range(count)]
    return "\n".join(lines) + "\n"


def fresh(root: Path, name: str) -> Settings:
    settings = Settings(_env_file=None, var_dir=root / name,  # type: ignore[call-arg]
                        secret_keys=["bench"])
    upgrade(settings)
    return settings


def bench_import(root: Path, count: int) -> dict[str, object]:
    ours = fresh(root, "import")
    start = time.perf_counter()
    with session_scope(ours.sqlalchemy_url) as session:
        report = import_csv(session=session, text=csv_text(count, "a"))
    took = time.perf_counter() - start
    assert len(report.added) == count and not report.errors
    base = fresh(root, "baseline")
    start = time.perf_counter()
    with session_scope(base.sqlalchemy_url) as session:
        for n in range(count):
            add_subscriber(session=session, confirmed=True, subscriber_create=SubscriberCreate(
                email=f"b{n}@example.org", keywords=[WORDS[n % 10], WORDS[(n * 7) % 10]]))
    baseline = time.perf_counter() - start
    each = fresh(root, "savepoints")
    start = time.perf_counter()
    with session_scope(each.sqlalchemy_url) as session:
        for n in range(count):
            with session.begin_nested():
                add_subscriber(session=session, confirmed=True, subscriber_create=(
                    SubscriberCreate(email=f"c{n}@example.org", keywords=[WORDS[n % 10]])))
    savepoints = time.perf_counter() - start
    return {"bench": "admin_import", "rows": count, "rows_per_s": round(count / took),
            "baseline_rows_per_s": round(count / baseline),
            "savepoint_per_row_rows_per_s": round(count / savepoints),
            "ratio": round(baseline / took, 2)}


def bench_search(root: Path) -> dict[str, object]:
    settings = Settings(_env_file=None, var_dir=root / "import",  # type: ignore[call-arg]
                        secret_keys=["bench"])
    with session_scope(settings.sqlalchemy_url) as session:
        start = time.perf_counter()
        found, total = search_subscribers(session=session, query="codec")
        took = time.perf_counter() - start
        start = time.perf_counter()
        everyone = len(list(session.exec(select(Subscriber))))
        baseline = time.perf_counter() - start
    return {"bench": "admin_search", "subscribers": everyone, "matched": total,
            "shown": len(found), "ms": round(took * 1000, 1),
            "baseline_read_all_ms": round(baseline * 1000, 1)}


def bench_login(tries: int = 10) -> dict[str, object]:
    stored = hash_password("correct horse battery staple")
    start = time.perf_counter()
    for _ in range(tries):
        check_password(stored, "a wrong guess")
    took = (time.perf_counter() - start) / tries
    start = time.perf_counter()
    for _ in range(tries * 1000):
        hashlib.sha256(b"a wrong guess").digest()
    baseline = (time.perf_counter() - start) / (tries * 1000)
    return {"bench": "admin_login", "scrypt_ms": round(took * 1000, 1),
            "baseline_sha256_us": round(baseline * 1e6, 2), "ratio": round(took / baseline)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(json.dumps(bench_import(root, args.subscribers)))
        print(json.dumps(bench_search(root)))
    print(json.dumps(bench_login()))


if __name__ == "__main__":
    main()
