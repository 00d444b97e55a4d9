"""Size limits on what comes in: every remote fetch stops at a byte and a time cap (a local
server that never stops talking, or talks a byte at a time), and over-long titles, abstracts,
author lists and comments are cut on ingest and reported, not stored whole."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from digest.papers import MAX_ABSTRACT, MAX_AUTHORS, MAX_COMMENT, MAX_TITLE
from tests.support.cli import run

RSS_HEAD = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>cs.SD</title>'
            b"<item><title>")
ATOM_HEAD = (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
             b"<entry><id>http://arxiv.org/abs/2601.00001v1</id><title>")
# path -> (content type, what comes first, then what repeats, seconds between repeats)
ROUTES = {
    "/rss/endless": ("application/rss+xml", RSS_HEAD, b"Speech " * 9362, 0.0),
    "/rss/drip": ("application/rss+xml", RSS_HEAD, b"a", 0.2),
    "/api/query": ("application/atom+xml", ATOM_HEAD, b"Speech " * 9362, 0.0),
    "/daily_papers": ("application/json", b'[{"paper": {"id": "2601.00001", "title": "',
                      b"Speech " * 9362, 0.0),
    "/page/drip": ("text/html", b"<html><head><title>A slow page</title></head><body>",
                   b"<p>more</p>", 0.2),
}
SERVER_LIMIT_BYTES = 64 * 1024 * 1024  # the server gives up too, so a broken client can't OOM
SERVER_LIMIT_SECONDS = 60


class Hostile(BaseHTTPRequestHandler):
    """Answers 200 and then never stops (or drips), counting what the client accepted."""

    protocol_version = "HTTP/1.1"
    sent: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        path = urlsplit(self.path).path
        kind, head, repeat, pause = ROUTES[path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        started, sent = time.monotonic(), 0
        try:
            # Lazily: a list of 64 M one-byte chunks took seconds to build on a loaded machine,
            # longer than the client's 2 s read timeout before the first byte of the body.
            chunks = itertools.repeat(repeat, SERVER_LIMIT_BYTES // len(repeat))
            for chunk in itertools.chain([head], chunks):
                self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                Hostile.sent[path] = sent
                if time.monotonic() - started > SERVER_LIMIT_SECONDS:
                    break
                time.sleep(pause)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what we want

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hostile.sent.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def timed(var_dir: Path, *args: str, env: dict[str, str]) -> tuple[float, str, int, str]:
    started = time.monotonic()
    result = run(var_dir, *args, env=env)
    return time.monotonic() - started, result.stderr, result.returncode, result.stdout


@pytest.mark.slow
def test_a_listing_that_never_ends_is_read_up_to_the_byte_cap(var_dir: Path, hostile: str
                                                               ) -> None:
    took, stderr, code, _ = timed(var_dir, "ingest", f"{hostile}/rss/endless", env={})
    assert code == 1 and "larger than 20 MB; stopped reading" in stderr, stderr
    assert stderr.count("\n") == 1 and took < 30
    assert Hostile.sent["/rss/endless"] < 40 * 2**20  # it stopped reading, the server noticed


@pytest.mark.slow
def test_a_listing_that_drips_is_read_up_to_the_time_cap(var_dir: Path, hostile: str) -> None:
    # Each byte comes well within the 2 s per read, even on a loaded machine (1 s was not).
    env = {"DIGEST_HTTP_TIMEOUT_SECONDS": "2"}
    took, stderr, code, _ = timed(var_dir, "ingest", f"{hostile}/rss/drip", env=env)
    assert code == 1 and "took longer than 8 s; stopped reading" in stderr, stderr
    assert took < 30


@pytest.mark.slow
def test_trending_and_the_arxiv_api_are_capped_too(var_dir: Path, hostile: str) -> None:
    env = {"DIGEST_TRENDING_URL": f"{hostile}/daily_papers",
           "DIGEST_ARXIV_API_URL": f"{hostile}/api/query"}
    took, stderr, code, _ = timed(var_dir, "trending", "--date", "2026-01-29", env=env)
    assert code == 1 and "larger than 5 MB; stopped reading" in stderr, stderr
    took, stderr, code, _ = timed(var_dir, "backfill", "all:speech", env=env)
    assert code == 1 and "larger than 20 MB; stopped reading" in stderr, stderr
    assert took < 30


@pytest.mark.slow
def test_a_clip_page_that_never_ends_still_gives_its_title(var_dir: Path, hostile: str) -> None:
    env = {"DIGEST_CLIP_FETCH_TIMEOUT_SECONDS": "1"}
    took, stderr, code, stdout = timed(var_dir, "clip", "add", f"{hostile}/page/drip",
                                       "--month", "2026-04", env=env)
    assert code == 0, stderr
    assert "A slow page" in stdout and took < 30


def _entry(n: int, title: str, abstract: str, comment: str, authors: list[str]) -> str:
    names = "".join(f"<author><name>{name}</name></author>" for name in authors)
    return (f"<entry><id>http://arxiv.org/abs/2601.0000{n}v1</id><title>{title}</title>"
            f"<updated>2026-01-28T17:42:10Z</updated><published>2026-01-28T17:42:10Z</published>"
            f"<summary>{abstract}</summary><arxiv:comment>{comment}</arxiv:comment>"
            f'<category term="cs.SD"/>{names}</entry>')


@pytest.mark.slow
def test_over_long_fields_are_cut_on_ingest_and_reported(var_dir: Path, tmp_path: Path) -> None:
    huge = _entry(1, "Speech " * 300_000, "x" * 50_000, "c" * 5_000,
                  [f"Author {n}" for n in range(3_000)] + ["N" * 1_000])
    normal = _entry(2, "A normal title", "A normal abstract.", "ICASSP", ["Ada Lovelace"])
    feed = tmp_path / "hostile.atom"
    feed.write_text('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
                    f'xmlns:arxiv="http://arxiv.org/schemas/atom">{huge}{normal}</feed>')
    took, stderr, code, stdout = timed(var_dir, "ingest", str(feed), env={})
    assert code == 0, stderr
    assert "2 added" in " ".join(stdout.split())  # rich wraps long lines
    assert "2601.00001: title cut to 1,000 characters (was 2,099,999)" in stderr
    assert "2601.00001: abstract cut to 10,000 characters (was 50,000)" in stderr
    assert "2601.00001: comment cut to 1,000 characters (was 5,000)" in stderr
    assert "2601.00001: authors cut to 500 names (was 3,001)" in stderr
    assert "2601.00002" not in stderr
    with sqlite3.connect(var_dir / "digest.db") as connection:
        rows = dict(connection.execute(
            "SELECT arxiv_id, length(title) || ' ' || length(abstract) || ' ' || length(comment)"
            " || ' ' || json_array_length(authors) FROM paper"))
    assert rows == {"2601.00001": f"{MAX_TITLE} {MAX_ABSTRACT} {MAX_COMMENT} {MAX_AUTHORS}",
                    "2601.00002": "14 18 6 1"}
