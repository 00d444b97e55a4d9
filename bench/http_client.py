"""Client CPU per provider request: the SendGrid transport's urllib3 pool beside httpx's (what
the transport used before) and a bare kept-alive http.client connection per thread (the floor).

    python bench/http_client.py [--requests 2000] [--threads 16] [--body-kb 40]

A local HTTP/1.1 server in its own process reads each body and answers 202, so only the
client's work is counted (this process's CPU seconds). Bodies are the size of a digest's
SendGrid request; 16 threads share one client, as a send run's requests in flight do.
Prints one JSON line per client, and the ratios to the transport's.
"""

from __future__ import annotations

import argparse
import http.client  # noqa: E402
import json
import multiprocessing
import threading  # noqa: E402
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx  # noqa: E402
import urllib3  # noqa: E402

PATH = "/v3/mail/send"
HEADERS = {"Authorization": "Bearer SG.bench", "Content-Type": "application/json"}


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # 16 connections opened at once must not overflow the backlog


class Accepts(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(202)
        self.send_header("X-Message-Id", "bench")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(port: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    server = Server(("127.0.0.1", 0), Accepts)
    port.put(server.server_address[1])
    server.serve_forever()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--body-kb", type=int, default=40)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get(timeout=10)}"
    body = json.dumps({"content": "x" * (args.body_kb * 1024)}).encode()

    # What SendGridTransport makes (emails/transports/sendgrid.py).
    transport_pool = urllib3.connection_from_url(base, maxsize=32, block=False,
                                                 timeout=urllib3.Timeout(10), retries=False)

    def with_urllib3() -> None:
        reply = transport_pool.urlopen("POST", PATH, body=body, headers=HEADERS, redirect=False)
        assert reply.status == 202

    client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=32,
                                                          max_keepalive_connections=32))

    def with_httpx() -> None:
        assert client.post(base + PATH, content=body, headers=HEADERS).status_code == 202

    local = threading.local()
    host, port = base.removeprefix("http://").split(":")

    def bare() -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(host, int(port), timeout=10)
        local.connection.request("POST", PATH, body=body, headers=HEADERS)
        reply = local.connection.getresponse()
        reply.read()
        assert reply.status == 202

    figures = {
        "urllib3": measure("urllib3 (the transport)", with_urllib3, args.requests, args.threads),
        "httpx": measure("httpx (before)", with_httpx, args.requests, args.threads),
        "http.client": measure("http.client per thread (floor)", bare, args.requests,
                               args.threads),
    }
    print(json.dumps({"bench": "http_client", "cpu_ratio_to_transport": {
        name: round(value / figures["urllib3"], 2) for name, value in figures.items()}}))
    server.terminate()


if __name__ == "__main__":
    main()
