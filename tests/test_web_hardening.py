"""The server under load keeps answering while other clients send oversized, streamed, malformed and
mistyped requests: valid clients see no error, every hostile request gets a 4xx, never a 5xx."""
from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from report_nlp.web import create_app
from report_nlp.web.app import MAX_BODY

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import reports  # noqa: E402
from web_load import client, hostile_client, hostile_requests, pieces, serve  # noqa: E402


def test_a_streamed_body_over_the_limit_is_refused_before_the_app_reads_it(nlp):
    api = TestClient(create_app())
    body = json.dumps({"text": "L4-5: bulge. " * (MAX_BODY // 10)}).encode()
    r = api.post("/api/analyze", content=pieces(body), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit is 256 kB" in r.json()["detail"]
    small = json.dumps({"text": "L4-5: mild disc bulge."}).encode()
    r = api.post("/api/analyze", content=pieces(small, 5), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["findings"][0]["kind"] == "disc_bulge"


def test_server_keeps_answering_under_load_while_hostile_requests_arrive():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = serve(port, workers=1)
    try:
        bodies = [json.dumps({"text": t}).encode() for t in reports(20, seed=5)]
        latencies: list = []
        errors: list = []
        refused: list = []
        stop = time.perf_counter() + 6
        threads = [threading.Thread(target=client, args=(port, bodies, stop, latencies, errors)) for _ in range(4)]
        threads += [threading.Thread(target=hostile_client, args=(port, stop, refused)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        alive = conn.getresponse().status
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert errors == [] and len(latencies) > 20
    statuses = [s for _, s in refused]
    assert len(statuses) >= len(hostile_requests()), "every kind of hostile request was tried"
    not_refused = [(p, s) for p, s in refused if not (isinstance(s, int) and 400 <= s < 500)]
    assert not_refused == []
    assert alive == 200


def test_one_analysis_at_a_time_per_process_for_api_and_page(nlp, monkeypatch):
    """Concurrent requests queue for the analysis instead of sharing the GIL (the load bench's tail)."""
    import report_nlp

    real, lock = report_nlp.analyze, threading.Lock()
    state = {"now": 0, "most": 0, "calls": 0}

    def counting(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["calls"] += 1
        try:
            time.sleep(0.02)
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(report_nlp, "analyze", counting)
    api = TestClient(create_app())
    codes = []

    def post(i: int) -> None:
        if i % 2:
            r = api.post("/api/analyze", json={"text": "L4-5: moderate left foraminal stenosis."})
        else:
            r = api.post("/", data={"text": "L4-5: mild disc bulge."})
        codes.append(r.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 12 and state["calls"] == 12
    assert state["most"] == 1
