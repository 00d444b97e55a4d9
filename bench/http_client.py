"""Client CPU per provider request: the SendGrid transport (libcurl through pycurl, bodies
encoded by orjson) beside what it used before, urllib3's pool and httpx with the standard json
module, and a bare kept-alive http.client connection per thread.

    python bench/http_client.py [--requests 2000] [--threads 16] [--body-kb 40] [--delay-ms 30]

Each client gets the same SendGrid body as a dict (a digest-sized render with quotes, line
breaks and non-ASCII text, two recipients with their links) and encodes and POSTs it; 16
threads share one client, as a send run's requests in flight do. A local HTTP/1.1 server in
its own process reads each body and answers 202 after --delay-ms (the provider's round trip:
with threads waiting on the wire, waking them costs CPU too), so only the client's work is
counted (this process's CPU seconds). Prints one JSON line per client, and the ratios to the
transport's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emails.message import Message  # noqa: E402
from emails.transports.base import Recipient  # noqa: E402
from emails.transports.sendgrid import SendGridTransport, mail_body  # noqa: E402

PATH = "/v3/mail/send"
HEADERS = {"Authorization": "Bearer SG.bench", "Content-Type": "application/json"}


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # 16 connections opened at once must not overflow the backlog


class Accepts(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.0

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        self.send_response(202)
        self.send_header("X-Message-Id", "bench")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(port: multiprocessing.Queue, delay: float) -> None:  # type: ignore[type-arg]
    Accepts.delay = delay
    server = Server(("127.0.0.1", 0), Accepts)
    port.put(server.server_address[1])
    server.serve_forever()


def digest_body(kb: int) -> dict[str, Any]:
    """A SendGrid body the size of a digest's request, as the transport builds it."""
    line = '<td style="padding:0 8px">Über — a paper’s title, "quoted"</td>\n'
    html = line * (kb * 1024 // len(line.encode()))
    template = Message(to="", subject="Paper Digest · 3 Dec", html=html,
                       text=html[: len(html) // 4], sender="Paper Digest <digest@example.org>",
                       headers={"List-Unsubscribe": "<-unsubscribe_url->"}, categories=("daily",))
    link = "https://digest.test/u/" + "t" * 80
    readers = [Recipient(email=f"reader{i}@example.org", tags={"delivery_id": str(i)},
                         substitutions={"-unsubscribe_url-": f"{link}{i}"}) for i in range(2)]
    return mail_body(template, readers)


def measure(name: str, post: Callable[[], None], requests: int, threads: int) -> float:
    """Client CPU milliseconds per request, after a warm-up that opens the connections."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: post(), range(threads * 4)))
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(lambda _: post(), range(requests)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per_request = cpu * 1000 / requests
    print(json.dumps({"bench": "http_client", "client": name, "requests": requests,
                      "threads": threads, "cpu_ms_per_request": round(per_request, 3),
                      "wall_seconds": round(wall, 2)}), flush=True)
    return per_request


def encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--body-kb", type=int, default=40)
    parser.add_argument("--delay-ms", type=float, default=30.0)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue, args.delay_ms / 1000),
                                     daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get(timeout=10)}"
    body = digest_body(args.body_kb)

    transport = SendGridTransport("SG.bench", base)

    def with_transport() -> None:
        assert transport._post(body, recipients=2) == "bench"  # noqa: SLF001  # the POST alone

    pool = urllib3.connection_from_url(base, maxsize=32, block=False,
                                       timeout=urllib3.Timeout(10), retries=False)

    def with_urllib3() -> None:
        reply = pool.urlopen("POST", PATH, body=encoded(body), headers=HEADERS, redirect=False)
        assert reply.status == 202

    client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=32,
                                                          max_keepalive_connections=32))

    def with_httpx() -> None:
        assert client.post(base + PATH, content=encoded(body), headers=HEADERS).status_code == 202

    local = threading.local()
    host, port = base.removeprefix("http://").split(":")

    def bare() -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(host, int(port), timeout=10)
        local.connection.request("POST", PATH, body=encoded(body), headers=HEADERS)
        reply = local.connection.getresponse()
        reply.read()
        assert reply.status == 202

    figures = {
        "transport": measure("pycurl + orjson (the transport)", with_transport, args.requests,
                             args.threads),
        "urllib3": measure("urllib3 + json (before)", with_urllib3, args.requests, args.threads),
        "httpx": measure("httpx + json (before that)", with_httpx, args.requests, args.threads),
        "http.client": measure("http.client per thread + json", bare, args.requests,
                               args.threads),
    }
    print(json.dumps({"bench": "http_client", "cpu_ratio_to_transport": {
        name: round(value / figures["transport"], 2) for name, value in figures.items()}}))
    transport.close()
    server.terminate()


if __name__ == "__main__":
    main()
