"""Bad input never crashes: empty, huge, markup, control characters, line endings, caps; no text in logs."""
from __future__ import annotations

import logging

import pytest

from report_nlp.errors import InputError
from report_nlp.text import clean_text

REPORT = "FINDINGS:\nL4-5: Moderate left foraminal stenosis with impingement of the exiting left L4 nerve root.\n"


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_input_empty_text_says_so(analyze, text):
    r = analyze(text)
    assert r.findings == []
    assert any("empty" in e for e in r.errors)


def test_input_bytes_must_be_utf8(analyze):
    assert analyze(REPORT.encode("utf-8")).findings
    with pytest.raises(InputError, match="UTF-8"):
        analyze(b"\xff\xfe bad bytes")


@pytest.mark.parametrize("value", [42, 3.5, ["a"], {"text": "x"}])
def test_input_wrong_types_raise_a_clear_error(analyze, value):
    with pytest.raises(InputError, match="must be str"):
        analyze(value)


def test_input_binary_looking_text_is_reported_not_analysed(analyze):
    r = analyze("\x00\x01\x02" * 200)
    assert r.findings == [] and any("binary" in e for e in r.errors)


@pytest.mark.parametrize(
    "text",
    [
        "<html><body><p>FINDINGS:</p><p>L4-5: Moderate left foraminal stenosis with impingement of the exiting left L4 nerve root.</p></body></html>",
        "{\\rtf1\\ansi FINDINGS:\\par L4-5: Moderate left foraminal stenosis with impingement of the exiting left L4 nerve root.\\par}",
        REPORT.replace("\n", "\r\n"),
        REPORT.replace("\n", "\r"),
        REPORT.upper(),
        REPORT.replace(" ", " \x07", 3),
    ],
    ids=["html", "rtf", "crlf", "cr", "caps", "control"],
)
def test_input_markup_and_encodings_keep_findings_and_offsets(analyze, text):
    r = analyze(text)
    kinds = {f.kind for f in r.findings}
    assert {"foraminal_stenosis", "nerve_root_impingement"} <= kinds
    for f in r.findings:
        assert text[f.start:f.end] == f.text
        assert f.level == "L4-L5"


def test_input_clean_text_keeps_length():
    raw = "<b>L4-5</b>&nbsp;stenosis\r\n\x00x"
    cleaned, notes = clean_text(raw)
    assert len(cleaned) == len(raw) and notes


def test_input_two_megabyte_report_is_analysed_in_parts(analyze):
    text = (REPORT * 20000)[: 2_000_000]
    r = analyze(text)
    assert len(r.findings) > 1000
    assert any("parts" in e for e in r.errors)
    f = r.findings[-1]
    assert text[f.start:f.end] == f.text


def test_input_no_report_text_in_logs(analyze, caplog):
    secret = "ZEBRAQUOKKA"
    caplog.set_level(logging.DEBUG)
    analyze(f"FINDINGS: {secret} L4-5 mild disc bulge.")
    assert secret not in caplog.text
