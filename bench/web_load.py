"""Load: 20 concurrent clients post real-sized reports to /api/analyze for 30 s on loopback.

Prints requests/s, p50/p99 latency and the error count. Starts its own server on 127.0.0.1.
With ``--hostile N``, N more clients send oversized, chunked, malformed and mistyped requests in
between: every one must get a 4xx, and the valid clients must see no error.
Run: python bench/web_load.py [--clients 20] [--seconds 30] [--hostile 4]
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import reports  # noqa: E402


def serve(port: int, workers: int):
    """`report-nlp serve` in its own process group, ready when /healthz answers."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "from report_nlp.cli import app; app()", "serve", "--port", str(port),
                             "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("POST", "/api/analyze", body=b'{"text": "warm up"}', headers={"content-type": "application/json"})
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.5)
        finally:
            conn.close()
    for _ in range(workers * 4):  # warm every worker's pipeline
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/api/analyze", body=b'{"text": "L4-5: mild bulge."}', headers={"content-type": "application/json"})
        conn.getresponse().read()
        conn.close()
    return proc


def client(port: int, bodies: list[bytes], stop: float, latencies: list, errors: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.perf_counter() < stop:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/analyze", body=body, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
        except OSError as exc:
            errors.append(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - t0)
    conn.close()


def hostile_requests() -> list[tuple[str, str, dict, bytes | None, bool]]:
    """(method, path, headers, body, stream it chunked) of requests a server must refuse with a 4xx."""
    big = json.dumps({"text": "L4-5: disc bulge. " * 20000}).encode()
    as_json = {"content-type": "application/json"}
    return [
        ("POST", "/api/analyze", as_json, big, False),  # over the limit, announced
        ("POST", "/api/analyze", as_json, big, True),  # over the limit, streamed without a length
        ("POST", "/", {"content-type": "application/x-www-form-urlencoded"}, b"text=" + b"A" * 300_000, False),
        ("POST", "/api/analyze", as_json, b'{"text": "L4-5: bulge", ', False),  # truncated JSON
        ("POST", "/api/analyze", as_json, b"\xff\xfe\x00garbage", False),  # not UTF-8
        ("POST", "/api/analyze", as_json, b'{"text": 42}', False),
        ("POST", "/api/analyze", as_json, b'{"text": "x", "exam": {"symptom_weeks": -3}}', False),
        ("POST", "/api/analyze", as_json, b'{"text": "x", "exam": "left"}', False),
        ("POST", "/api/analyze", as_json, b'{"text": "x", "unknown": 1}', False),
        ("POST", "/api/analyze", as_json, b"[1, 2, 3]", False),
        ("POST", "/api/analyze", {"content-type": "text/plain"}, b"L4-5: disc bulge", False),
        ("POST", "/api/analyze", as_json, b"", False),
        ("GET", "/api/analyze", {}, None, False),
        ("DELETE", "/healthz", {}, None, False),
    ]


def pieces(data: bytes, size: int = 16384):
    """A body sent with chunked transfer encoding: no Content-Length for the server to check up front."""
    for k in range(0, len(data), size):
        yield data[k:k + size]


def hostile_client(port: int, stop: float, statuses: list) -> None:
    """Cycles through hostile_requests() until ``stop``, recording (path, status or connection error)."""
    requests = hostile_requests()
    i = 0
    while time.perf_counter() < stop:
        method, path, headers, body, stream = requests[i % len(requests)]
        i += 1
        if stream:
            body = pieces(body)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers, encode_chunked=stream)
            resp = conn.getresponse()
            resp.read()
            statuses.append((path, resp.status))
        except OSError as exc:  # a server may close after answering 413 to a body still being sent
            statuses.append((path, type(exc).__name__))
        finally:
            conn.close()


def long_texts(n: int, min_chars: int) -> list[str]:
    """``n`` texts of at least ``min_chars`` characters, each made of consecutive synthetic reports."""
    pool = itertools.cycle(reports(n))
    texts = []
    for _ in range(n):
        text = next(pool)
        while len(text) < min_chars:
            text += "\n\n" + next(pool)
        texts.append(text)
    return texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--hostile", type=int, default=0, help="extra clients sending requests that must be refused")
    ap.add_argument("--min-chars", type=int, default=0,
                    help="join synthetic reports (mean ~600 characters) until each body's text has this many")
    args = ap.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = serve(port, args.workers)
    texts = long_texts(50, args.min_chars)
    bodies = [json.dumps({"text": t, "exam": {"side": "left", "pain_distribution": ["dorsum of foot"]}}).encode() for t in texts]
    print(f"report texts: {len(texts)}, mean {sum(map(len, texts)) // len(texts):,} characters")
    latencies: list[float] = []
    errors: list = []
    stop = time.perf_counter() + args.seconds
    threads = [threading.Thread(target=client, args=(port, bodies, stop, latencies, errors)) for _ in range(args.clients)]
    refused: list = []
    threads += [threading.Thread(target=hostile_client, args=(port, stop, refused)) for _ in range(args.hostile)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    server.terminate()
    server.wait(timeout=30)
    lat = sorted(latencies)
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    print(f"clients: {args.clients}, server workers: {args.workers}, seconds: {elapsed:.1f}, requests: {len(lat)}, errors: {len(errors)}")
    print(f"requests/s: {len(lat) / elapsed:.1f}  p50: {statistics.median(lat) * 1000:.1f} ms  p99: {p99 * 1000:.1f} ms")
    if args.hostile:
        codes: dict = {}
        for _, status in refused:
            codes[status] = codes.get(status, 0) + 1
        bad = sum(n for status, n in codes.items() if not (isinstance(status, int) and 400 <= status < 500))
        print(f"hostile requests: {len(refused)}, answers: {dict(sorted(codes.items(), key=str))}, not 4xx: {bad}")


if __name__ == "__main__":
    main()
