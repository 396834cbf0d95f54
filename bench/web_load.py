"""Load: 20 concurrent clients post real-sized reports to /api/analyze for 30 s on loopback.

Prints requests/s, p50/p99 latency and the error count. Starts its own server on 127.0.0.1.
Run: python bench/web_load.py [--clients 20] [--seconds 30]
"""
from __future__ import annotations

import argparse
import http.client
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
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", "/api/analyze", body=b'{"text": "warm up"}', headers={"content-type": "application/json"})
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.5)
    for _ in range(workers * 4):  # warm every worker's pipeline
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/api/analyze", body=b'{"text": "L4-5: mild bulge."}', headers={"content-type": "application/json"})
        conn.getresponse().read()
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
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = serve(port, args.workers)
    bodies = [json.dumps({"text": t, "exam": {"side": "left", "pain_distribution": ["dorsum of foot"]}}).encode() for t in reports(50)]
    latencies: list[float] = []
    errors: list = []
    stop = time.perf_counter() + args.seconds
    threads = [threading.Thread(target=client, args=(port, bodies, stop, latencies, errors)) for _ in range(args.clients)]
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


if __name__ == "__main__":
    main()
