"""The report-nlp command line: analyze, schema, evaluate; errors are one line with exit code 2."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from report_nlp.cli import app

runner = CliRunner()
REPORT = "EXAM: MRI LUMBAR SPINE\nFINDINGS:\nL4-5: Moderate left foraminal stenosis with impingement of the exiting left L4 nerve root.\n"


def test_cli_analyze_table(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text(REPORT)
    res = runner.invoke(app, ["analyze", str(p)])
    assert res.exit_code == 0, res.output
    assert "foraminal_stenosis" in res.output and "L4-L5" in res.output


def test_cli_concordance_lines_one_per_finding_with_an_exam_and_one_in_all_without(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text(REPORT)
    without = runner.invoke(app, ["analyze", str(p)])
    assert "all 2 findings: not_assessable" in without.output and "finding 0:" not in without.output
    exam = tmp_path / "exam.json"
    exam.write_text(json.dumps({"side": "left", "pain_distribution": ["anterior thigh"], "symptom_weeks": 8}))
    with_exam = runner.invoke(app, ["analyze", str(p), "--exam", str(exam)])
    assert with_exam.exit_code == 0, with_exam.output
    assert "finding 0:" in with_exam.output and "finding 1:" in with_exam.output


def test_cli_analyze_json_from_stdin_with_concepts():
    res = runner.invoke(app, ["analyze", "-", "--format", "json", "--concept", "scoliosis"], input=REPORT + "No scoliosis.\n")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert any(f["kind"] == "concept" and f["negated"] for f in data["findings"])


def test_cli_analyze_missing_file_is_one_line_exit_2(tmp_path):
    res = runner.invoke(app, ["analyze", str(tmp_path / "nope.txt")])
    assert res.exit_code == 2
    assert "not found" in res.output and "Traceback" not in res.output


def test_cli_analyze_non_utf8_file_exit_2(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("Sténose foraminale".encode("latin-1"))
    res = runner.invoke(app, ["analyze", str(p)])
    assert res.exit_code == 2 and "not UTF-8" in res.output


def test_cli_analyze_bad_exam_json_names_the_field(tmp_path):
    r = tmp_path / "r.txt"
    r.write_text(REPORT)
    e = tmp_path / "exam.json"
    e.write_text('{"symptom_weeks": -3}')
    res = runner.invoke(app, ["analyze", str(r), "--exam", str(e)])
    assert res.exit_code == 2 and "symptom_weeks" in res.output


def test_cli_schema_prints_json_schema():
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0
    assert "findings" in json.loads(res.output)["properties"]


def test_cli_evaluate_json(tmp_path, root):
    src = (root / "corpora" / "gold.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    p = tmp_path / "g.jsonl"
    p.write_text("\n".join(src) + "\n")
    res = runner.invoke(app, ["evaluate", str(p), "--format", "json", "--errors"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) >= {"report_nlp", "medspacy_default", "errors"}


def test_cli_every_command_is_in_the_readme(root):
    readme = (root / "README.md").read_text(encoding="utf-8")
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert f"report-nlp {name}" in readme, name


def test_cli_batch_on_the_bundled_samples(tmp_path, root):
    """The README's first command's job: the samples into SQLite, with the summary."""
    res = runner.invoke(app, ["batch", str(root / "samples" / "reports.csv"), "--out", str(tmp_path / "r.db")])
    assert res.exit_code == 0, res.output
    assert "rows in = results + errors" in res.output and "yes" in res.output


def test_cli_batch_row_count_for_eta(tmp_path):
    from report_nlp.batch import count_rows

    p = tmp_path / "a.jsonl"
    p.write_text('{"id": 1, "text": "x"}\n{"id": 2, "text": "y"}\n\n')
    assert count_rows(str(p)) == 2
    assert count_rows("postgresql://x/y") is None
