"""``report-nlp``: a thin typer shell over the library; errors become one line and an exit code."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Spine MRI report NLP: findings, concordance, guideline.")
out = Console()
err = Console(stderr=True)

STATUS_STYLE = {"negated": "strike dim", "uncertain": "italic yellow", "historical": "dim", "hypothetical": "italic cyan"}


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit; never a traceback for user errors."""
    err.print(f"[bold red]Error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def read_text_arg(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read()
        where = "standard input"
    else:
        p = Path(path)
        if not p.exists():
            fail(f"file not found: {path}")
        if p.is_dir():
            fail(f"{path} is a folder, not a report file")
        try:
            data = p.read_bytes()
        except OSError as exc:
            fail(f"cannot read {path}: {exc.strerror}")
        where = path
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{where} is not UTF-8 text (invalid byte at position {exc.start})")
    return ""  # unreachable


def read_exam_arg(path: Optional[str]):
    if path is None:
        return None
    from pydantic import ValidationError

    from .schema import Exam

    text = read_text_arg(path)
    try:
        return Exam.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "exam"
        fail(f"invalid exam JSON in {path}: {where}: {first['msg']}")
    return None


@app.command()
def analyze(
    file: str = typer.Argument("-", help="Report text file, or - for standard input."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json"),
    concept: List[str] = typer.Option([], "--concept", "-c", help="Extra target phrase (repeatable)."),
    exam: Optional[str] = typer.Option(None, "--exam", "-e", help="Exam JSON file (see `report-nlp schema`)."),
):
    """Analyse one report and print its findings (and, with --exam, concordance and recommendation).

    Example: report-nlp analyze report.txt --exam exam.json
    """
    if fmt not in ("table", "json"):
        fail(f"--format must be table or json, not {fmt!r}")
    text = read_text_arg(file)
    exam_obj = read_exam_arg(exam)
    from . import analyze as run
    from .errors import ReportNLPError

    try:
        result = run(text, exam=exam_obj, concepts=concept or None, report_id=None if file == "-" else Path(file).name)
    except ReportNLPError as exc:
        fail(str(exc))
    if fmt == "json":
        out.print_json(result.model_dump_json())
        return
    print_result(result)


def print_result(result) -> None:
    if not out.is_terminal:
        out.width = max(out.width, 160)  # files and pipes: do not fold the table to 80 columns
    s = result.study
    out.print(f"[bold]Study:[/] {s.modality} {s.region}" + ("" if s.contrast is None else (" with contrast" if s.contrast else " without contrast")))
    table = Table(title="Findings", show_lines=False)
    for col in ("kind", "level", "side", "zone", "roots", "severity", "grade", "status", "section", "evidence"):
        table.add_column(col)
    for f in result.findings:
        status = [name for name in ("negated", "uncertain", "historical", "hypothetical") if getattr(f, name)]
        roots = ",".join(f.roots) + (" (inferred)" if f.roots_inferred and f.roots else "")
        style = STATUS_STYLE.get(status[0]) if status else None
        table.add_row(f.concept or f.kind, f.level or "", f.side or "", f.zone or "", roots, f.severity or "",
                      "" if f.grade is None else str(f.grade), ",".join(status) or "present", f.section, escape(f.text), style=style)
    out.print(table)
    if result.history_red_flags:
        flags = ", ".join(f"{r.code}{' (negated)' if r.negated else ''}" for r in result.history_red_flags)
        out.print(f"[bold]Red flags in history:[/] {flags}")
    if result.concordance is not None:
        c = result.concordance
        out.print(f"[bold]Concordance:[/] {c.overall} - {escape(c.explanation)}")
        if len({(v.verdict, v.explanation) for v in c.per_finding}) == 1 and len(c.per_finding) > 1:
            v = c.per_finding[0]  # e.g. no exam: one line, not the same line for every finding
            out.print(f"  all {len(c.per_finding)} findings: {v.verdict}: {escape(v.explanation)}")
        else:
            for v in c.per_finding:
                out.print(f"  finding {v.finding_index}: {v.verdict}: {escape(v.explanation)}")
        if c.unmapped_exam_terms:
            out.print(f"  [yellow]unmapped exam terms:[/] {escape(', '.join(c.unmapped_exam_terms))}")
    if result.recommendation is not None:
        r = result.recommendation
        out.print(f"[bold]Recommendation:[/] {r.category}  (invasive allowed: {'yes' if r.invasive_allowed else 'no'})")
        for reason in r.reasons:
            out.print(f"  - {escape(reason)}")
        for w in r.warnings:
            out.print(f"  [yellow]warning {w.code}:[/] {escape(w.message)}")
        for c in r.citations:
            out.print(f"  [dim]guideline {c.id}: {escape(c.text)}[/]")
    if result.flags:
        out.print(f"[bold]Flags:[/] {', '.join(result.flags)}")
    if result.errors:
        out.print(f"[dim]Notes: {escape('; '.join(result.errors))}[/]")


@app.command()
def schema(what: str = typer.Argument("result", help="result, exam or corpus")):
    """Print the JSON Schema of the data contract.

    Example: report-nlp schema exam
    """
    from .schema import Exam, GoldReport, Result

    models = {"result": Result, "exam": Exam, "corpus": GoldReport}
    if what not in models:
        fail(f"unknown schema {what!r}; choose one of: {', '.join(models)}")
    out.print_json(json.dumps(models[what].model_json_schema()))


@app.command()
def evaluate(
    gold: str = typer.Argument(..., help="Gold JSONL file (corpora/gold_test.jsonl)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json"),
    errors: bool = typer.Option(False, "--errors", help="List every false positive, false negative and wrong attribute."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score medspaCy's default ConText rules."),
    compare: Optional[str] = typer.Option(None, "--compare", help="rules,model,hybrid: per-level comparison with the trained model."),
):
    """Score the pipeline (and the medspaCy-default baseline) against a gold corpus.

    Example: report-nlp evaluate corpora/gold_test.jsonl
    """
    from .corpus import read_gold
    from .errors import ReportNLPError
    from .evaluate import evaluate as run

    if not Path(gold).exists():
        fail(f"file not found: {gold}")
    try:
        rows = read_gold(gold)
    except ValueError as exc:
        fail(str(exc))
    if compare:
        from .evaluate import compare_systems

        names = tuple(x.strip() for x in compare.split(",") if x.strip())
        bad = [n for n in names if n not in ("rules", "model", "hybrid")]
        if bad:
            fail(f"--compare takes rules, model and hybrid, not {', '.join(bad)}")
        try:
            table = compare_systems(rows, names)
        except ReportNLPError as exc:
            fail(str(exc))
        if fmt == "json":
            out.print_json(json.dumps(table.reset_index().to_dict(orient="records")))
            return
        t = Table(title=f"rules vs model on (report, level) units, {len(rows)} reports")
        for col in ("system", "units", "detection_f1", "grade_accuracy", "brier"):
            t.add_column(col)
        for name, row in table.iterrows():
            t.add_row(name, str(int(row["units"])), f"{row['detection_f1']:.3f}", f"{row['grade_accuracy']:.3f}", f"{row['brier']:.3f}")
        out.print(t)
        return
    systems = ("report_nlp", "medspacy_default") if baseline else ("report_nlp",)
    scores = run(rows, systems)
    if fmt == "json":
        payload = {name: s.to_dict() for name, s in scores.items()}
        if errors:
            payload["errors"] = scores["report_nlp"].errors
        out.print_json(json.dumps(payload))
        return
    for name, s in scores.items():
        t = Table(title=f"{name}: detection on (kind, level, side), {len(rows)} reports")
        for col in ("kind", "gold", "pred", "precision", "recall", "f1", "strict_f1"):
            t.add_column(col, justify="right" if col != "kind" else "left")
        for kind, row in s.table.iterrows():
            t.add_row(kind, str(int(row["gold"])), str(int(row["pred"])), f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                      f"{row['f1']:.3f}", f"{row['strict_f1']:.3f}")
        out.print(t)
        attrs = "  ".join(f"{k}={v:.3f}" for k, v in s.attributes.items() if not k.endswith("_n"))
        out.print(f"[bold]{name} attributes on matched findings:[/] {attrs}")
    if errors:
        for e in scores["report_nlp"].errors:
            out.print(f"[{e['report_id']}] {e['error']} {e['kind']} {e['level']} {e['side']} {e['wrong'] or ''}: {e['sentence']}", highlight=False)


@app.command("evaluate-negation")
def evaluate_negation(
    corpus: str = typer.Argument(..., help="Concept-negation JSONL (corpora/negation_test.jsonl)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json"),
    errors: bool = typer.Option(False, "--errors", help="List every sentence where the system disagrees with the label."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score medspaCy's default ConText rules."),
):
    """Score negation of user concepts (``--concept``) against a labelled sentence corpus.

    Example: report-nlp evaluate-negation corpora/negation_test.jsonl
    """
    from .corpus import read_negation
    from .evaluate import evaluate_negation as run

    if not Path(corpus).exists():
        fail(f"file not found: {corpus}")
    try:
        rows = read_negation(corpus)
    except ValueError as exc:
        fail(str(exc))
    scores = run(rows, ("report_nlp", "medspacy_default") if baseline else ("report_nlp",))
    if fmt == "json":
        payload = {name: {k: v for k, v in s.items() if k != "errors" or errors} for name, s in scores.items()}
        out.print_json(json.dumps(payload))
        return
    t = Table(title=f"negation of concepts, {len(rows)} sentences ({scores['report_nlp']['negated']} negated)")
    for col in ("system", "precision", "recall", "f1", "accuracy", "not found"):
        t.add_column(col, justify="right" if col != "system" else "left")
    for name, s in scores.items():
        t.add_row(name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", f"{s['accuracy']:.3f}", str(s["not_found"]))
    out.print(t)
    if errors:
        for e in scores["report_nlp"]["errors"]:
            out.print(f"[{e['id']}] gold negated={e['gold_negated']} predicted={e['predicted']} {e['concept']!r}: {e['text']}",
                      highlight=False, markup=False)


@app.command()
def train(
    corpus: str = typer.Option("corpora/gold.jsonl", "--corpus", help="Gold train split to fit on."),
    model_out: str = typer.Option("models/level_grade.skops", "--out", help="Where to write the skops model file."),
):
    """Train the per-level second-opinion model on the gold train split (seeded, deterministic).

    Example: report-nlp train --corpus corpora/gold.jsonl --out models/level_grade.skops
    """
    from .model import train as fit

    if not Path(corpus).exists():
        fail(f"file not found: {corpus}")
    out.print_json(json.dumps(fit(corpus, model_out)))


@app.command()
def batch(
    input_path: str = typer.Argument(..., metavar="INPUT", help="CSV, JSONL, Parquet file, a folder of .txt files, or a SQLAlchemy URL (with --query)."),
    out: str = typer.Option("report_nlp.db", "--out", "-o", help="SQLite file (.db), a SQLAlchemy URL (postgresql://...), or an output folder (Parquet; *_csv / *_jsonl for those)."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="SQL query selecting id and text columns when INPUT is a database URL."),
    id_col: str = typer.Option("id", "--id-col", help="Column holding the report id."),
    text_col: str = typer.Option("text", "--text-col", help="Column holding the report text."),
    exam_cols: Optional[str] = typer.Option(None, "--exam-cols", help="Comma-separated exam columns (default: any column named like an Exam field)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes."),
    resume: bool = typer.Option(False, "--resume", help="Continue after the last committed chunk of an interrupted run."),
    chunk_size: int = typer.Option(1000, "--chunk-size", help="Reports per chunk (one transaction each)."),
    engine: str = typer.Option("local", "--engine", help="local, or spark (PySpark, optional extra [spark])."),
    master: str = typer.Option("local[*]", "--master", help="Spark master URL with --engine spark."),
):
    """Analyse many reports into results / findings / errors tables and print a summary.

    Example: report-nlp batch samples/reports.csv --out report_nlp.db
    """
    import time as _time

    from .batch import run as run_batch
    from .errors import DatabaseUnavailable, ReportNLPError

    if engine == "spark":
        try:
            from .spark import run_spark
        except ImportError:
            fail("--engine spark needs PySpark: pip install 'report_nlp[spark]'")
        counts = run_spark(input_path, out, id_col=id_col, text_col=text_col, master=master)
        print(json.dumps(counts))
        if counts["rows_in"] != counts["results"] + counts["errors"]:
            fail(f"row count mismatch: {counts}", code=1)
        return
    if engine != "local":
        fail(f"--engine must be local or spark, not {engine!r}")
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .batch import count_rows

    interactive = err.is_terminal
    last = [0.0]
    bar = Progress(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} reports/s"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=err) if interactive else None
    task = bar.add_task("batch", total=count_rows(input_path), rate="-") if bar else None

    def progress(summary) -> None:
        rate = summary.rows_in / summary.seconds if summary.seconds else 0.0
        if bar is not None:
            bar.update(task, completed=summary.rows_in, rate=f"{rate:,.0f}")
            return
        now = _time.perf_counter()
        if now - last[0] > 10:  # not a terminal: a plain line every 10 s
            last[0] = now
            err.print(f"{summary.rows_in:,} reports  {rate:,.0f} reports/s  {summary.chars / max(summary.seconds, 1e-9):,.0f} chars/s", highlight=False)

    try:
        with bar if bar is not None else nullcontext():
            summary = run_batch(input_path, out, id_col=id_col, text_col=text_col,
                                exam_cols=exam_cols.split(",") if exam_cols else None, workers=workers,
                                resume=resume, chunk_size=chunk_size, progress=progress, query=query)
    except DatabaseUnavailable as exc:
        fail(str(exc), code=3)  # resumable: committed chunks are kept
    except ReportNLPError as exc:
        fail(str(exc))
    print_summary(summary, out)
    if not summary.balanced:
        fail(f"row count mismatch: {summary.rows_in} in, {summary.results} results + {summary.errors} errors", code=1)


def print_summary(summary, out_path: str) -> None:
    t = Table(title=f"Batch summary -> {out_path}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("rows in", f"{summary.rows_in:,}")
    t.add_row("results", f"{summary.results:,}")
    t.add_row("errors", f"{summary.errors:,}")
    t.add_row("rows in = results + errors", "yes" if summary.balanced else "NO")
    t.add_row("findings", f"{summary.findings:,}")
    if summary.resumed_chunks:
        t.add_row("chunks skipped (resume)", str(summary.resumed_chunks))
        t.add_row("rows skipped (resume)", f"{summary.resumed_rows:,}")
    rate = summary.rows_in / summary.seconds if summary.seconds else 0
    t.add_row("reports/s", f"{rate:,.1f}")
    for kind, n in sorted(summary.kinds.items(), key=lambda x: -x[1]):
        t.add_row(f"present: {kind}", str(n))
    for cat, n in sorted(summary.categories.items(), key=lambda x: -x[1]):
        t.add_row(f"recommendation: {cat}", str(n))
    out.print(t)


@app.command()
def audit(
    studies: Optional[str] = typer.Option(None, "--studies", help="Studies: a CSV, Parquet or JSONL file, or a table name with --db (default studies)."),
    episodes: Optional[str] = typer.Option(None, "--episodes", help="Episodes (clinical context): file, or table name with --db (default episodes)."),
    referrals: Optional[str] = typer.Option(None, "--referrals", help="Referrals: file, or table name with --db (default referrals)."),
    out_dir: str = typer.Option(..., "--out", "-o", help="Folder for cases, summary, issues and report.html."),
    db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL to read the three tables from, e.g. sqlite:///cohort.db."),
    mapping: Optional[str] = typer.Option(None, "--map", help="YAML column mapping {table: {our_name: their_name}} (+ optional date_format)."),
    col: List[str] = typer.Option([], "--col", help="One column mapping TABLE.OURS=THEIRS (repeatable)."),
    min_count: int = typer.Option(11, "--min-count", help="Suppress summary cells whose denominator is under this count."),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet or csv for cases / summary / issues."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes for the report analysis."),
    out_db: Optional[str] = typer.Option(None, "--out-db", help="Also write audit_cases / audit_summary / audit_issues to this SQLAlchemy URL."),
):
    """Audit low-value spine imaging and injection/surgical referrals: per-case flags, rates by provider, site
    and month, and a self-contained report.html.

    Example: report-nlp audit --studies demo/studies.csv --episodes demo/episodes.csv --referrals demo/referrals.csv --out audit_out
    """
    from .audit import load_inputs, run_audit, write_outputs
    from .errors import ReportNLPError

    if fmt not in ("parquet", "csv"):
        fail(f"--format must be parquet or csv, not {fmt!r}")
    if min_count < 1:
        fail("--min-count must be at least 1")
    if not db:
        missing = [name for name, v in (("--studies", studies), ("--episodes", episodes), ("--referrals", referrals)) if not v]
        if missing:
            fail(f"{', '.join(missing)} needed (files, or table names with --db URL)")
    try:
        inputs = load_inputs(studies or "studies", episodes or "episodes", referrals or "referrals", db=db,
                             mapping_file=mapping, cols=col)
        result = run_audit(inputs, min_count=min_count, workers=workers)
        paths = write_outputs(result, out_dir, fmt=fmt, out_db=out_db)
    except ReportNLPError as exc:
        fail(str(exc))
    print_audit(result, paths)
    if not result.balanced:
        fail(f"row count mismatch: {result.rows_in} in, {len(result.cases)} cases + {result.errors} errors", code=1)


def print_audit(result, paths: dict) -> None:
    """Headline rates and where the outputs are (never report text)."""
    if not out.is_terminal:
        out.width = max(out.width, 120)  # files and pipes: do not fold the table to 80 columns
    t = Table(title="Audit summary")
    t.add_column("measure")
    t.add_column("rate (95% CI)", justify="right")
    t.add_column("flagged / denominator", justify="right")
    t.add_column("excluded", justify="right")
    t.add_column("undetermined", justify="right")
    for measure, row in result.headline().iterrows():
        if row["suppressed"]:
            rate, frac = f"suppressed (<{result.min_count})", f"- / {int(row['denominator'])}"
        else:
            rate = f"{row['rate']:.1%} ({row['ci_low']:.1%}-{row['ci_high']:.1%})"
            frac = f"{int(row['flagged']):,} / {int(row['denominator']):,}"
        t.add_row(measure, rate, frac, f"{int(row['excluded']):,}", f"{int(row['undetermined']):,}")
    out.print(t)
    r = result.rows_in
    out.print(f"rows in: {r['studies']:,} studies + {r['referrals']:,} referrals ({r['episodes']:,} episodes); "
              f"cases {len(result.cases):,} + errors {result.errors:,}: {'balanced' if result.balanced else 'NOT balanced'}; "
              f"issues {len(result.issues):,}; {result.seconds:.1f} s", highlight=False)
    for name, path in paths.items():
        out.print(f"  {name}: {escape(path)}", highlight=False)


@app.command("demo-cohort")
def demo_cohort(
    n: int = typer.Option(5000, "--n", help="Patients (one episode and one spine MRI each; about 30% also get a referral)."),
    out_dir: str = typer.Option("demo", "--out", "-o", help="Folder for studies / episodes / referrals, truth.csv and planted.json."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same cohort)."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or parquet."),
    db: Optional[str] = typer.Option(None, "--db", help="Also write the three tables to this SQLAlchemy URL, e.g. sqlite:///demo.db."),
):
    """Write a seeded synthetic audit cohort with known planted rates (planted.json) for trying the audit.

    Example: report-nlp demo-cohort --n 5000 --out demo
    """
    from .cohort import planted_rates, write_cohort

    if n < 1:
        fail("--n must be at least 1")
    if fmt not in ("csv", "parquet"):
        fail(f"--format must be csv or parquet, not {fmt!r}")
    from .errors import ReportNLPError

    try:
        paths = write_cohort(out_dir, n=n, seed=seed, fmt=fmt, db=db)
    except OSError as exc:
        fail(f"cannot write the cohort: {exc.strerror or type(exc).__name__}")
    except ReportNLPError as exc:
        fail(str(exc))
    for name, path in paths.items():
        out.print(f"{name}: {escape(path)}", highlight=False)
    out.print("planted rates: " + ", ".join(f"{k} {v:.3f}" for k, v in planted_rates().items()), highlight=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. The default keeps the page on this computer; "
                             "binding another address exposes patient text to the network."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Server processes (each builds its own pipeline); use the core count under load."),
):
    """Start the clinician web page and JSON API (FastAPI + uvicorn).

    Example: report-nlp serve --port 8000
    """
    import uvicorn

    from . import load
    from .web import create_app

    err.print(f"report_nlp page on http://{host}:{port}/ (nothing is stored; Ctrl+C to stop)", highlight=False)
    if workers > 1:
        uvicorn.run("report_nlp.web.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=True)
        return
    load()  # build the pipeline before the first request
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=True)


def main() -> None:  # pragma: no cover
    app()
