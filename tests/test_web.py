"""The web page and JSON API: results, escaping, limits, errors, headers (HTTP level; browser tests in test_browser.py)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from report_nlp.web import create_app

REPORT = ("EXAM: MRI LUMBAR SPINE\nFINDINGS:\nL4-5: Left paracentral disc protrusion compressing the traversing left L5 nerve root.\n"
          "L5-S1: No disc herniation.\n")


@pytest.fixture(scope="module")
def client(nlp):
    return TestClient(create_app())


def test_web_page_has_form_and_csp(client):
    r = client.get("/")
    assert r.status_code == 200
    assert 'name="text"' in r.text and 'name="pain_distribution"' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "http://" not in r.text.replace("http://{host}", "") and "https://" not in r.text


def test_web_form_post_renders_findings_and_recommendation(client):
    r = client.post("/", data={"text": REPORT, "side": "left", "pain_distribution": "dorsum of foot", "conservative_weeks": "8",
                                "symptom_weeks": "10", "invasive_candidate": "1"})
    assert r.status_code == 200
    assert 'class="f present k-nerve_root_impingement"' in r.text
    assert 'class="f negated k-disc_herniation"' in r.text
    assert "consider invasive referral" in r.text
    assert "G24" in r.text


def test_web_escapes_report_text(client):
    evil = REPORT + '<script>alert(1)</script><img src=x onerror="alert(2)">'
    r = client.post("/", data={"text": evil})
    assert "<script>alert(1)" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text


def test_web_api_analyze_returns_the_contract(client):
    r = client.post("/api/analyze", json={"text": REPORT, "exam": {"side": "left", "pain_distribution": ["dorsum of foot"]}})
    assert r.status_code == 200
    body = r.json()
    assert body["concordance"]["overall"] == "concordant"
    assert {f["kind"] for f in body["findings"]} >= {"disc_herniation", "nerve_root_impingement"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"text": 5}, "text"), ({"exam": {}}, "text"), ({"text": "x", "exam": {"symptom_weeks": -1}}, "exam.symptom_weeks"),
     ({"text": "x", "unknown": 1}, "unknown")],
)
def test_web_api_bad_json_is_422_naming_the_field(client, payload, field):
    r = client.post("/api/analyze", json=payload)
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["detail"]]


def test_web_api_malformed_json_is_422_not_500(client):
    r = client.post("/api/analyze", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_web_oversized_body_is_413_with_message(client):
    big = "x" * (300 * 1024)
    r = client.post("/api/analyze", json={"text": big})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    r = client.post("/", data={"text": big})
    assert r.status_code == 413 and "too large" in r.text


def test_web_schema_health_and_local_docs(client):
    assert "findings" in client.get("/api/schema").json()["properties"]
    assert client.get("/healthz").json() == {"status": "ok"}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/analyze" in docs.text and "cdn" not in docs.text.lower()


def test_web_serve_binds_localhost_by_default():
    from typer.testing import CliRunner

    from report_nlp.cli import app

    res = CliRunner().invoke(app, ["serve", "--help"])
    assert "127.0.0.1" in res.output


def test_web_security_headers_on_every_kind_of_response(client):
    """Page, API, static file, validation error and 404 all carry CSP, nosniff, no referrer, no caching."""
    responses = [client.get("/"), client.post("/api/analyze", json={"text": "L4-5: mild disc bulge."}),
                 client.get("/healthz"), client.post("/api/analyze", json={"text": 42}), client.get("/nowhere")]
    static = [p for p in client.get("/").text.split('"') if p.startswith("/static/")]
    assert static
    responses.append(client.get(static[0]))
    for r in responses:
        assert "default-src 'self'" in r.headers["content-security-policy"], r.url
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
    assert [r.status_code for r in responses] == [200, 200, 200, 422, 404, 200]
