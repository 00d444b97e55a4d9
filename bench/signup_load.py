"""Signup under load: POST /subscribe against a real uvicorn, driven from a second process.

Run by hand or from `make bench`: `python bench/signup_load.py [--seconds 10] [--concurrency 32]`.
Prints one JSON line per measurement.

The server is this file run with --serve in a subprocess: the real app on a temporary SQLite
database (the embedded default), one uvicorn worker, access log off, per-IP rate limits raised
so the load generator (one IP) is not turned away. The load generator is an asyncio + httpx
client in this process; each virtual user first GETs the form (cookie + CSRF token, as a
browser would) and then signs up fresh addresses as fast as the server answers, bounded by
--seconds and --max-requests. Every request is timed; p50/p99 come from all of them.
Baseline, same server and concurrency: GET /healthz (one SELECT 1): the cost of the stack
itself. A signup does: CSRF check, validation, an INSERT ... ON CONFLICT, a consent row and a
ledger row, committed (fsync'd in WAL mode) before the 303.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def serve(port: int, var_dir: Path) -> None:
    """The server side: migrate, build the app with raised per-IP limits, serve."""
    import uvicorn

    from core.settings import Settings
    from subscribers.web.app import create_app
    from subscribers.web.pages import WebLimits
    from subscribers.web.security import Limit
    from workers.migrate import upgrade

    settings = Settings(_env_file=None, var_dir=var_dir,  # type: ignore[call-arg]
                        secret_keys=["bench-key"], public_url=f"http://127.0.0.1:{port}")
    upgrade(settings)
    unlimited = Limit(10**9, 1.0)
    app = create_app(settings, limits=WebLimits(signup=unlimited, actions=unlimited,
                                                preview=unlimited))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def summary(self, concurrency: int) -> dict[str, object]:
        ordered = sorted(self.latencies)
        count = len(ordered)

        def pct(p: float) -> float:
            return round(ordered[min(count - 1, int(p * count))] * 1000, 2) if count else 0.0

        return {
            "bench": "signup_load", "endpoint": self.name, "concurrency": concurrency,
            "requests": count, "errors": self.errors, "seconds": round(self.seconds, 2),
            "rps": round(count / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if count else 0.0,
        }


async def drive(base: str, name: str, *, signup: bool, seconds: float, max_requests: int,
                concurrency: int) -> Run:
    """`concurrency` virtual users hitting one endpoint until time or count runs out."""
    run = Run(name)
    tag = name.split()[0].strip("-/").lower() or "load"  # fresh addresses in every phase
    budget = [max_requests]
    deadline = time.perf_counter() + seconds

    async def user(number: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            token = ""
            if signup:
                page = await client.get("/")
                found = CSRF.search(page.text)
                assert found, "the signup page has a CSRF token"
                token = found.group(1)
            sent = 0
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                sent += 1
                started = time.perf_counter()
                if signup:
                    response = await client.post("/subscribe", data={
                        "csrf": token, "email": f"{tag}-{number}-{sent}@example.org",
                        "keywords": "speech synthesis, TTS", "frequency": "daily",
                        "monthly": "yes", "timezone": "Europe/Paris", "send_hour": "7"})
                    ok = response.status_code == 303
                else:
                    response = await client.get("/healthz")
                    ok = response.status_code == 200
                run.latencies.append(time.perf_counter() - started)
                run.errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not come up")


def stored_signups(var_dir: Path) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(var_dir / "digest.db") as db:
        subscribers = db.execute("SELECT count(*) FROM subscriber").fetchone()[0]
        confirmations = db.execute(
            "SELECT count(*) FROM delivery WHERE kind = 'confirm'").fetchone()[0]
    return subscribers, confirmations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=50_000, help="per measurement")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.var_dir)
        return

    with tempfile.TemporaryDirectory(prefix="signup-bench-") as tmp:
        var_dir, port = Path(tmp) / "var", free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        server = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port),
                                   "--var-dir", str(var_dir)], env=env)
        try:
            wait_until_up(base, server)
            common = {"seconds": args.seconds, "max_requests": args.max_requests,
                      "concurrency": args.concurrency}
            warm_up = asyncio.run(drive(base, "warm-up", signup=True, **common | {"seconds": 1.0}))
            baseline = asyncio.run(drive(base, "GET /healthz (baseline)", signup=False,
                                         **common))
            signups = asyncio.run(drive(base, "POST /subscribe", signup=True, **common))
        finally:
            server.terminate()
            server.wait(30)
        rows = [baseline.summary(args.concurrency), signups.summary(args.concurrency)]
        stored, confirmations = stored_signups(var_dir)
        stored -= len(warm_up.latencies) - warm_up.errors
        confirmations -= len(warm_up.latencies) - warm_up.errors
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({
        "bench": "signup_load", "summary": "POST /subscribe vs GET /healthz",
        "rps_ratio": round(float(rows[1]["rps"]) / float(rows[0]["rps"] or 1), 3),  # type: ignore[arg-type]
        "p99_ratio": round(float(rows[1]["p99_ms"]) / float(rows[0]["p99_ms"] or 1), 2),  # type: ignore[arg-type]
        "signups_answered": len(signups.latencies) - signups.errors,
        "subscribers_stored": stored, "confirmations_planned": confirmations,
        "database": "sqlite (embedded default)", "server": "uvicorn, 1 worker",
        "client": f"httpx asyncio, {args.concurrency} users, separate process",
    }))


if __name__ == "__main__":
    main()
