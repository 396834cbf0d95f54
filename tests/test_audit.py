"""The cohort audit: Wilson intervals, suppression, each measure on hand-built cohorts, row accounting,
column mapping, SQLite input, the CLI, planted-rate recovery on the demo cohort and report.html in Chromium."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from report_nlp import audit
from report_nlp.audit import Inputs, load_inputs, run_audit, summarize, top_excess, wilson, write_outputs
from report_nlp.cli import app
from report_nlp.cohort import write_cohort
from report_nlp.errors import InputError

runner = CliRunner()
RELATION = {"mild": "contacting", "moderate": "displacing", "severe": "compressing"}
ONSET = date(2024, 3, 1)


def lumbar_report(severity: str = "moderate", level: str = "L4-5", root: str = "L5", zone: str = "subarticular",
                  role: str = "traversing", extra: str = "", history: str = "Low back pain radiating to the left leg.") -> str:
    return (f"EXAM: MRI LUMBAR SPINE WITHOUT CONTRAST\nHISTORY: {history}\nFINDINGS:\n{level}: {severity.capitalize()} left "
            f"{zone} stenosis {RELATION[severity]} the {role} left {root} nerve root.{extra}\nL5-S1: No disc herniation.\n")


NON_MATCHING = {"level": "L3-4", "root": "L3", "zone": "foraminal", "role": "exiting"}


def study(sid="S1", pid="P1", days=20, **kw) -> dict:
    row = {"study_id": sid, "patient_id": pid, "study_date": (ONSET + timedelta(days=days)).isoformat(), "modality": "MRI",
           "body_region": "lumbar spine", "report_text": lumbar_report(), "ordering_provider": "Dr. A", "site": "North"}
    row.update(kw)
    return row


def episode(pid="P1", **kw) -> dict:
    row = {"patient_id": pid, "onset_date": ONSET.isoformat(), "red_flags": "", "conservative_weeks": "8",
           "exam_side": "left", "exam_pain_distribution": "dorsum of foot", "exam_invasive_candidate": "true",
           "diagnosis_codes": "M54.50", "birth_date": "1970-05-01", "corticosteroid_days": "0"}
    row.update(kw)
    return row


def referral(rid="R1", pid="P1", days=40, kind="esi") -> dict:
    return {"referral_id": rid, "patient_id": pid, "referral_date": (ONSET + timedelta(days=days)).isoformat(), "type": kind,
            "referring_provider": "Dr. R"}


def run(studies, episodes, referrals=(), min_count=11) -> audit.AuditResult:
    ref_cols = ["referral_id", "patient_id", "referral_date", "type", "referring_provider"]
    return run_audit(Inputs(pd.DataFrame(list(studies)), pd.DataFrame(list(episodes)), pd.DataFrame(list(referrals), columns=ref_cols)),
                     min_count=min_count)


def case(result, case_id: str) -> dict:
    return result.cases.set_index("case_id").loc[case_id].to_dict()


# ----------------------------------------------------------------- Wilson and suppression
def _wilson_by_quadratic(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    # the interval's ends are the p with (k/n - p)^2 = z^2 p (1 - p) / n: solve a p^2 + b p + c = 0
    phat = k / n
    a, b, c = 1 + z * z / n, -(2 * phat + z * z / n), phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize(("k", "n", "published"), [(0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0)),
                                                   (50, 100, (0.4038, 0.5962)), (1, 3, None), (7, 250, None)])
def test_audit_wilson_matches_independent_computations(k, n, published):
    lo, hi = wilson(k, n)
    qlo, qhi = _wilson_by_quadratic(k, n)
    assert lo == pytest.approx(max(0.0, qlo), abs=1e-9) and hi == pytest.approx(min(1.0, qhi), abs=1e-9)
    if published:
        assert (round(lo, 4), round(hi, 4)) == published
    stats = pytest.importorskip("scipy.stats")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-6)


def test_audit_wilson_of_nothing_is_undefined():
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_audit_summary_suppresses_cells_under_min_count():
    # Arrange: provider A has 12 decided cases, provider B 5 (plus one excluded)
    statuses = ["flagged"] * 4 + ["not_flagged"] * 8 + ["flagged"] * 2 + ["not_flagged"] * 3 + ["excluded"]
    cases = pd.DataFrame({m: "not_applicable" for m in audit.MEASURES}, index=range(len(statuses)))
    cases["low_value_imaging"] = statuses
    cases["provider"] = ["A"] * 12 + ["B"] * 6
    cases["site"], cases["month"] = "North", "2024-03"
    # Act
    s = summarize(cases, min_count=11).query("measure == 'low_value_imaging'").set_index(["dimension", "group"])
    # Assert
    a, b = s.loc[("provider", "A")], s.loc[("provider", "B")]
    assert not a["suppressed"] and a["flagged"] == 4 and a["rate"] == pytest.approx(4 / 12)
    assert b["suppressed"] and b["denominator"] == 5 and b["excluded"] == 1
    assert pd.isna(b["flagged"]) and pd.isna(b["not_flagged"]) and math.isnan(b["rate"]) and math.isnan(b["ci_low"])
    assert s.loc[("overall", "all"), "rate"] == pytest.approx(6 / 17)
    assert s.loc[("overall", "all"), "expected"] == pytest.approx(17 * 6 / 17)
    assert list(top_excess(summarize(cases, 11), "low_value_imaging", "provider")["group"]) == ["A"]


# ----------------------------------------------------------------- the measures
@pytest.mark.parametrize(("days", "study_kw", "episode_kw", "status", "words"), [
    (20, {}, {}, "flagged", "20 days after onset"),
    (20, {}, {"red_flags": "fever"}, "excluded", "infection"),
    (20, {}, {"red_flags": "cauda_equina; none"}, "excluded", "cauda_equina"),
    (20, {"report_text": lumbar_report(history="Back pain. History of cancer.")}, {}, "excluded", "report history"),
    (45, {}, {}, "not_flagged", "6 weeks or later"),
    (20, {}, {"red_flags": "see scanned note"}, "undetermined", "not recognised"),
    (20, {}, {"red_flags": "none"}, "flagged", "no red flag"),
    (20, {"modality": "CT"}, {}, "not_applicable", "ct"),
    (-5, {}, {}, "undetermined", "no episode with an onset on or before"),
])
def test_audit_low_value_imaging(nlp, days, study_kw, episode_kw, status, words):
    result = run([study(days=days, **study_kw)], [episode(**episode_kw)])
    row = case(result, "S1")
    assert row["low_value_imaging"] == status
    assert words in row["low_value_imaging_reason"]


def _ago(days: int) -> str:
    return (ONSET - timedelta(days=days)).isoformat()


@pytest.mark.parametrize(("days", "study_kw", "episode_kw", "status", "words"), [
    (10, {}, {}, "flagged", "within 28 days"),
    (40, {}, {}, "not_flagged", "after 28 days"),
    (10, {}, {"diagnosis_codes": f"M54.50;F11.20@{_ago(100)}"}, "excluded", "iv drug use"),
    (10, {}, {"diagnosis_codes": f"M54.50;F11.20@{_ago(400)}"}, "flagged", "within 28 days"),
    (10, {}, {"diagnosis_codes": f"M54.50;S32.010A@{_ago(60)}"}, "excluded", "trauma"),
    (10, {}, {"diagnosis_codes": f"M54.50;S32.010A@{_ago(120)}"}, "flagged", "within 28 days"),
    (10, {}, {"diagnosis_codes": f"M54.50;C50.911@{_ago(3000)}"}, "excluded", "cancer"),
    (10, {}, {"diagnosis_codes": "m5450;Z94.0"}, "excluded", "organ transplant"),
    (10, {}, {"corticosteroid_days": "120"}, "excluded", "corticosteroids"),
    (10, {}, {"corticosteroid_days": ""}, "undetermined", "corticosteroid days not recorded"),
    (10, {}, {"birth_date": ""}, "undetermined", "age unknown"),
    (10, {}, {"birth_date": "", "age": "40"}, "flagged", "within 28 days"),
    (10, {}, {"birth_date": "1940-01-01"}, "not_applicable", "outside 18-75"),
    (10, {}, {"diagnosis_codes": "M48.061"}, "not_applicable", "no uncomplicated low-back-pain"),
    (10, {"body_region": "cervical spine"}, {}, "not_applicable", "cervical"),
])
def test_audit_hedis_lbp_imaging(nlp, days, study_kw, episode_kw, status, words):
    result = run([study(days=days, **study_kw)], [episode(**episode_kw)])
    row = case(result, "S1")
    assert row["hedis_lbp_imaging"] == status, row["hedis_lbp_imaging_reason"]
    assert words in row["hedis_lbp_imaging_reason"]


def test_audit_hedis_prior_lbp_diagnosis_means_not_a_new_episode(nlp):
    old = episode(onset_date=_ago(100), diagnosis_codes="M54.50")
    result = run([study(days=10)], [old, episode()])
    assert case(result, "S1")["hedis_lbp_imaging"] == "not_applicable"
    assert "not a new episode" in case(result, "S1")["hedis_lbp_imaging_reason"]


def test_audit_hedis_without_steroid_column_is_undetermined(nlp):
    ep = episode()
    del ep["corticosteroid_days"]
    row = case(run([study(days=10)], [ep]), "S1")
    assert row["hedis_lbp_imaging"] == "undetermined" and "no corticosteroid_days column" in row["hedis_lbp_imaging_reason"]


@pytest.mark.parametrize(("report", "episode_kw", "referral_kw", "status", "words"), [
    (lumbar_report("mild"), {}, {}, "flagged", "only mild findings"),
    (lumbar_report("moderate"), {"conservative_weeks": "3"}, {}, "flagged", "3 weeks of conservative care"),
    (lumbar_report("moderate"), {}, {}, "not_flagged", "concordant"),
    (lumbar_report("severe"), {}, {"kind": "Surgical consultation"}, "not_flagged", "candidate documented"),
    (lumbar_report("moderate"), {"exam_invasive_candidate": "false"}, {}, "flagged", "not documented as a candidate"),
    (lumbar_report("moderate", **NON_MATCHING), {}, {}, "flagged", "no concordant finding"),
    (lumbar_report("moderate"), {"exam_side": "", "exam_pain_distribution": "", "exam_invasive_candidate": "",
                                 "conservative_weeks": ""}, {}, "flagged", "no exam documented"),
    (lumbar_report("moderate"), {"conservative_weeks": "2", "red_flags": "saddle anesthesia"}, {}, "not_flagged", "urgent red flag"),
    (lumbar_report("moderate"), {}, {"days": 10}, "undetermined", "no spine MRI on or before"),
    (lumbar_report("moderate"), {}, {"kind": "acupuncture"}, "undetermined", "not recognised"),
])
def test_audit_low_value_referral(nlp, report, episode_kw, referral_kw, status, words):
    result = run([study(days=20, report_text=report)], [episode(**episode_kw)], [referral(**referral_kw)])
    row = case(result, "R1")
    assert row["low_value_referral"] == status, row["low_value_referral_reason"]
    assert words in row["low_value_referral_reason"]
    assert row["low_value_imaging"] == "not_applicable" and case(result, "S1")["low_value_referral"] == "not_applicable"


@pytest.mark.parametrize(("report", "episode_kw", "status"), [
    (lumbar_report("moderate"), {}, "not_flagged"),
    (lumbar_report("mild", **NON_MATCHING), {}, "flagged"),
    (lumbar_report("moderate"), {"exam_side": "", "exam_pain_distribution": ""}, "undetermined"),
])
def test_audit_imaging_symptom_mismatch(nlp, report, episode_kw, status):
    row = case(run([study(report_text=report)], [episode(**episode_kw)]), "S1")
    assert row["imaging_symptom_mismatch"] == status, row["imaging_symptom_mismatch_reason"]


def test_audit_evidence_quotes_the_report_line(nlp):
    row = case(run([study()], [episode()]), "S1")
    assert "L4-L5 left L5" in row["evidence"] and "displacing the traversing left L5 nerve root" in row["evidence"]


# ----------------------------------------------------------------- row accounting
def test_audit_bad_rows_are_reported_not_dropped(nlp):
    # Arrange: 7 study rows of which 4 cannot be cases, 3 referral rows of which 1 cannot
    studies = [study("S1"), study("S2", study_date="2024-02-30"), study("S3", study_date=""), study("S1", pid="P9"),
               study("S4", pid=""), study("S5", report_text=""), study("S6", pid="P2")]
    episodes = [episode(diagnosis_codes="M54.50;XYZ"), episode("P2", onset_date="03/01/2024")]
    referrals = [referral("R1"), referral("R2", days=30), {**referral("R3"), "referral_date": "soon"}]
    # Act
    result = run(studies, episodes, referrals)
    # Assert
    assert result.rows_in["studies"] + result.rows_in["referrals"] == len(result.cases) + result.errors == 10
    assert result.balanced and result.errors == 5
    issues = result.issues
    errors = issues[issues["effect"] == "error"].set_index(["table", "row_number"])["reason"]
    assert "unparseable date '2024-02-30'" in errors[("studies", 1)]
    assert "missing" in errors[("studies", 2)] and errors[("studies", 3)] == "duplicate study_id"
    assert "missing patient_id" in errors[("studies", 4)] and "unparseable date 'soon'" in errors[("referrals", 2)]
    assert "unparseable date '03/01/2024'" in errors[("episodes", 1)]
    warnings = issues[issues["effect"] == "warning"]
    assert any("unknown code 'XYZ'" in r for r in warnings["reason"])
    assert any(r.startswith("missing or empty report_text") for r in warnings["reason"])
    # the study of the patient whose only episode has a bad date is a case, undetermined with the reason
    assert case(result, "S6")["low_value_imaging"] == "undetermined"
    assert case(result, "S5")["imaging_symptom_mismatch"] == "undetermined"
    assert case(result, "S5")["low_value_imaging"] == "flagged"  # timing needs no report


def test_audit_reads_typed_columns_from_parquet(nlp, tmp_path):
    # Parquet and SQL give real dates, numbers and NaN instead of strings
    studies = pd.DataFrame([study()]).assign(study_date=pd.Timestamp(ONSET + timedelta(days=20)))
    episodes = pd.DataFrame([episode()]).assign(onset_date=pd.Timestamp(ONSET), conservative_weeks=8.0, corticosteroid_days=float("nan"))
    for name, df in (("s", studies), ("e", episodes), ("r", pd.DataFrame([referral()]))):
        df.to_parquet(tmp_path / f"{name}.parquet")
    result = run_audit(load_inputs(str(tmp_path / "s.parquet"), str(tmp_path / "e.parquet"), str(tmp_path / "r.parquet")))
    row = case(result, "S1")
    assert row["low_value_imaging"] == "flagged" and row["days_from_onset"] == 20
    assert row["hedis_lbp_imaging"] == "undetermined" and case(result, "R1")["low_value_referral"] == "not_flagged"


def test_audit_reads_jsonl_without_guessing_dates(nlp, tmp_path):
    for name, rows in (("s", [study(), study("S2", study_date="2024-13-01")]), ("e", [episode()]), ("r", [referral()])):
        pd.DataFrame(rows).to_json(tmp_path / f"{name}.jsonl", orient="records", lines=True)
    result = run_audit(load_inputs(*(str(tmp_path / f"{n}.jsonl") for n in "ser")))
    assert case(result, "S1")["low_value_imaging"] == "flagged"
    assert result.errors == 1 and "unparseable date '2024-13-01'" in result.issues["reason"].iloc[0]


# ----------------------------------------------------------------- mapping
def test_audit_column_mapping_from_yaml(nlp, tmp_path):
    # Arrange: an extract with its own column names
    theirs = {"study_id": "ACCESSION", "patient_id": "MRN", "study_date": "EXAM_DT", "report_text": "REPORT", "ordering_provider": "ORDERING_MD"}
    pd.DataFrame([study()]).rename(columns=theirs).to_csv(tmp_path / "studies.csv", index=False)
    pd.DataFrame([episode()]).rename(columns={"patient_id": "MRN", "onset_date": "SYMPTOM_ONSET", "red_flags": "RF"}).to_csv(
        tmp_path / "episodes.csv", index=False)
    pd.DataFrame([referral()]).rename(columns={"type": "REFERRAL_KIND"}).to_csv(tmp_path / "referrals.csv", index=False)
    (tmp_path / "map.yaml").write_text("studies:\n" + "".join(f"  {o}: {t}\n" for o, t in theirs.items())
                                       + "episodes:\n  patient_id: MRN\n  onset_date: SYMPTOM_ONSET\n  red_flags: RF\n")
    # Act
    inputs = load_inputs(str(tmp_path / "studies.csv"), str(tmp_path / "episodes.csv"), str(tmp_path / "referrals.csv"),
                         mapping_file=str(tmp_path / "map.yaml"), cols=["referrals.type=REFERRAL_KIND"])
    result = run_audit(inputs)
    # Assert
    row = case(result, "S1")
    assert row["low_value_imaging"] == "flagged" and row["provider"] == "Dr. A"
    assert case(result, "R1")["low_value_referral"] == "not_flagged"


@pytest.mark.parametrize(("yaml_text", "cols", "message"), [
    ("patients:\n  patient_id: MRN\n", [], "unknown table 'patients'"),
    ("studies:\n  accession: ACCESSION\n", [], "unknown column 'accession'"),
    ("studies:\n  study_id: NOPE\n", [], "has no column 'NOPE'"),
    ("", ["studies-study_id=X"], "expected TABLE.OURS=THEIRS"),
    ("studies: [1, 2]\n", [], "must map our column names"),
])
def test_audit_bad_mapping_names_the_problem(tmp_path, yaml_text, cols, message):
    pd.DataFrame([study()]).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame([episode()]).to_csv(tmp_path / "e.csv", index=False)
    pd.DataFrame([referral()]).to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "m.yaml").write_text(yaml_text)
    with pytest.raises(InputError, match=re.escape(message)):
        load_inputs(str(tmp_path / "s.csv"), str(tmp_path / "e.csv"), str(tmp_path / "r.csv"), mapping_file=str(tmp_path / "m.yaml"), cols=cols)


def test_audit_missing_required_column_says_how_to_map(tmp_path):
    pd.DataFrame([study()]).drop(columns=["study_date"]).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame([episode()]).to_csv(tmp_path / "e.csv", index=False)
    pd.DataFrame([referral()]).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(InputError, match=r"studies table lacks study_date .*--col studies.OURS=THEIRS"):
        load_inputs(str(tmp_path / "s.csv"), str(tmp_path / "e.csv"), str(tmp_path / "r.csv"))


# ----------------------------------------------------------------- SQLite and the CLI
def test_audit_same_result_from_a_sqlite_file(nlp, tmp_path):
    # Arrange: one demo cohort as CSV files and as tables in a SQLite file
    db = f"sqlite:///{tmp_path / 'cohort.db'}"
    paths = write_cohort(str(tmp_path / "demo"), n=120, seed=3, db=db)
    # Act
    from_files = run_audit(load_inputs(paths["studies"], paths["episodes"], paths["referrals"]))
    from_db = run_audit(load_inputs("studies", "episodes", "referrals", db=db))
    write_outputs(from_db, str(tmp_path / "out"), fmt="csv", out_db=db)
    # Assert
    pd.testing.assert_frame_equal(from_files.cases, from_db.cases)
    pd.testing.assert_frame_equal(from_files.summary, from_db.summary)
    back = pd.read_sql_table("audit_cases", db)
    assert len(back) == len(from_db.cases) and set(back["low_value_imaging"]) <= set(audit.STATUSES)


def test_audit_cli_end_to_end_writes_the_three_outputs(nlp, tmp_path):
    res = runner.invoke(app, ["demo-cohort", "--n", "60", "--out", str(tmp_path / "demo"), "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert "planted rates" in res.output
    d = tmp_path / "demo"
    res = runner.invoke(app, ["audit", "--studies", str(d / "studies.csv"), "--episodes", str(d / "episodes.csv"),
                              "--referrals", str(d / "referrals.csv"), "--out", str(tmp_path / "out"), "--format", "csv",
                              "--min-count", "5"])
    assert res.exit_code == 0, res.output
    for name in ("cases.csv", "summary.csv", "issues.csv", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "balanced" in res.output and "low_value_imaging" in res.output
    cases = pd.read_csv(tmp_path / "out" / "cases.csv")
    assert set(cases["case_type"]) == {"study", "referral"}
    assert "EXAM: MRI" not in res.output  # no report text on the console


@pytest.mark.parametrize(("args", "message"), [
    (["--studies", "nope.csv", "--episodes", "nope.csv", "--referrals", "nope.csv"], "studies file not found"),
    (["--studies", "x.csv"], "--episodes, --referrals needed"),
    (["--db", "sqlite:///{tmp}/empty.db"], "no table 'studies'"),
    (["--db", "sqlite:///{tmp}/empty.db", "--format", "xlsx"], "--format must be parquet or csv"),
])
def test_audit_cli_errors_are_one_line_exit_2(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = runner.invoke(app, ["audit", *args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output


def test_audit_cli_bad_mapping_file_exit_2(tmp_path):
    d = tmp_path / "demo"
    write_cohort(str(d), n=5, seed=1)
    (tmp_path / "m.yaml").write_text("studies: {study_id: [unclosed\n")
    res = runner.invoke(app, ["audit", "--studies", str(d / "studies.csv"), "--episodes", str(d / "episodes.csv"),
                              "--referrals", str(d / "referrals.csv"), "--map", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not valid YAML" in " ".join(res.output.split())


# ----------------------------------------------------------------- planted rates
@pytest.fixture(scope="module")
def planted_run(nlp, tmp_path_factory):
    """One demo cohort (n=1500) audited once, shared by the recovery, ranking and report tests."""
    folder = tmp_path_factory.mktemp("planted")
    paths = write_cohort(str(folder / "demo"), n=1500, seed=11)
    result = run_audit(load_inputs(paths["studies"], paths["episodes"], paths["referrals"]))
    planted = json.loads((folder / "demo" / "planted.json").read_text())
    return result, planted, pd.read_csv(paths["truth"]), folder


@pytest.mark.parametrize("measure", audit.MEASURES)
def test_audit_recovers_planted_rates(planted_run, measure):
    result, planted, _, _ = planted_run
    row = result.headline().loc[measure]
    p, n = planted["rates"][measure], int(row["denominator"])
    se = math.sqrt(p * (1 - p) / n)
    assert n > 200
    assert abs(row["rate"] - p) <= 3 * se, f"{measure}: recovered {row['rate']:.3f} vs planted {p:.3f} (n={n})"


def test_audit_planted_high_rate_provider_tops_the_excess_ranking(planted_run):
    result, planted, _, _ = planted_run
    top = top_excess(result.summary, "low_value_imaging", "provider", k=1)
    assert top["group"].iloc[0] == planted["high_rate_provider"]
    sites = top_excess(result.summary, "low_value_imaging", "site", k=1)
    assert sites["group"].iloc[0] == max(planted["groups"]["low_value_imaging"]["site"].items(), key=lambda kv: kv[1])[0]


def test_audit_demo_cases_agree_with_their_planted_truth(planted_run):
    # per case, not only on average: the templated reports are read as planted
    result, planted, truth, _ = planted_run
    cases = result.cases.merge(truth, on=["case_id", "case_type"])
    studies = cases[(cases["case_type"] == "study") & cases["has_exam"]]
    assert (studies["imaging_symptom_mismatch"] == studies["match"].map({True: "not_flagged", False: "flagged"})).all()
    early = cases[(cases["case_type"] == "study") & ~cases["red_flag"] & ~cases["unknown_red_flag"]]
    assert (early["low_value_imaging"] == early["early"].map({True: "flagged", False: "not_flagged"})).all()
    refs = cases[(cases["case_type"] == "referral") & (cases["low_value_referral"] != "undetermined")]
    assert len(refs) > 300
    assert (refs["low_value_referral"] == refs["truth_low_value_referral"].map({True: "flagged", False: "not_flagged"})).all()
    assert result.errors == planted["bad_rows"]["studies"] + planted["bad_rows"]["referrals"]


# ----------------------------------------------------------------- report.html in Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
XSS_PROVIDER = "<script>window.__pwned=1</script>Dr. Evil"
XSS_TEXT = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("Chromium (Debian package) or Playwright not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _external_links(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.I)


def test_audit_report_renders_in_chromium(planted_run, browser, root):
    result, _, _, folder = planted_run
    paths = write_outputs(result, str(folder / "out"), fmt="csv")
    html = Path(paths["report"]).read_text(encoding="utf-8")
    assert _external_links(html) == []
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"file://{paths['report']}")
    assert page.locator("#headline .card").count() == 4
    assert "%" in page.inner_text("#headline .card[data-measure=low_value_imaging] .rate")
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 300)")
    assert page.inner_text("#balance") == "yes"
    if os.environ.get("REPORT_NLP_SCREENSHOT"):  # refresh docs/audit_report.png for the README
        page.screenshot(path=str(root / "docs" / "audit_report.png"), full_page=False)
    page.close()


def test_audit_report_escapes_provider_names_and_report_text(nlp, browser, tmp_path):
    # Arrange: a flagged study whose provider name and report line carry markup
    report = lumbar_report(extra=f" {XSS_TEXT}")
    result = run([study(report_text=report, ordering_provider=XSS_PROVIDER, site=XSS_TEXT)], [episode()], min_count=1)
    paths = write_outputs(result, str(tmp_path / "out"), fmt="csv")
    html = Path(paths["report"]).read_text(encoding="utf-8")
    assert "<script>window" not in html and "<img src=x" not in html
    # Act
    page = browser.new_page()
    page.goto(f"file://{paths['report']}")
    page.wait_for_timeout(200)
    # Assert: rendered as text, nothing ran, no element was injected
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x], script").count() == 0
    examples = page.inner_text("#examples")
    assert XSS_PROVIDER in examples and XSS_TEXT in examples
    assert XSS_PROVIDER in page.inner_text("table.top[data-dimension=provider]")
    page.close()
