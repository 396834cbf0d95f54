"""Cohort audit: studies, episodes and referrals in; per-case low-value flags, rates by provider/site/month out.

Four measures (README "Audit"; windows and code lists in ``patterns/audit.json``):

* ``low_value_imaging``: spine MRI within 6 weeks of onset without a red flag (guideline G12);
* ``hedis_lbp_imaging``: HEDIS "Use of Imaging Studies for Low Back Pain" as far as the data allow;
* ``low_value_referral``: injection or surgical referral without concordant moderate-or-worse imaging,
  6 weeks of conservative care and candidate documentation (G24, G26, G02);
* ``imaging_symptom_mismatch``: the concordance flag of the analysed report (G28).

Each case gets one status per measure from :data:`STATUSES`, with the reason in words. Every row of
``studies`` and ``referrals`` ends either as a case or as an error in ``issues``; problems that do not stop
a row (unknown codes, unrecognised words, a field that does not validate) are warnings in ``issues``.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from .errors import InputError
from .resources import load_rules
from .schema import SEVERITY_GRADE, Exam, Finding, Result

STATUSES = ("flagged", "not_flagged", "excluded", "undetermined", "not_applicable")
MEASURES = ("low_value_imaging", "hedis_lbp_imaging", "low_value_referral", "imaging_symptom_mismatch")
TABLES = ("studies", "episodes", "referrals")
DIMENSIONS = ("overall", "provider", "site", "month")
NOT_RECORDED = "(not recorded)"
Z95 = 1.959964  # two-sided 95 % normal quantile
Z998 = 3.090232  # two-sided 99.8 % normal quantile (funnel plot outer limits)

EXAM_FIELDS = list(Exam.model_fields)
EXAM_COLUMNS = EXAM_FIELDS + [f"exam_{n}" for n in EXAM_FIELDS] + ["exam"]
REQUIRED = {
    "studies": ["study_id", "patient_id", "study_date", "report_text"],
    "episodes": ["patient_id"],
    "referrals": ["patient_id", "referral_date", "type"],
}
OPTIONAL = {
    "studies": ["modality", "body_region", "ordering_provider", "site", "birth_date", "age"],
    "episodes": ["onset_date", "episode_start_date", "diagnosis_codes", "birth_date", "age", "corticosteroid_days"] + EXAM_COLUMNS,
    "referrals": ["referral_id", "referring_provider", "site"],
}
ISSUE_COLUMNS = ["table", "row_number", "id", "column", "effect", "reason"]
SYMPTOM_FIELDS = ("side", "pain_distribution", "sensory_deficit", "motor_weakness", "reflex_changes")


@lru_cache(maxsize=1)
def rules() -> dict:
    """patterns/audit.json, validated against its schema (rules are data)."""
    return load_rules("audit")


# ----------------------------------------------------------------- inputs
@dataclass
class Inputs:
    studies: pd.DataFrame
    episodes: pd.DataFrame
    referrals: pd.DataFrame
    date_format: Optional[str] = None


def load_mapping(path: Optional[str], cols: Optional[list[str]] = None) -> tuple[dict, Optional[str]]:
    """Column mapping {table: {ours: theirs}} from a YAML file and ``table.ours=theirs`` options, plus an
    optional ``date_format``; a real extract then needs no renaming. Unknown tables or columns are errors."""
    mapping: dict[str, dict[str, str]] = {t: {} for t in TABLES}
    date_format = None
    if path:
        import yaml

        p = Path(path)
        if not p.exists():
            raise InputError(f"mapping file not found: {path}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"mapping file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise InputError(f"mapping file {path} must map table names to {{our column: their column}}")
        for key, value in data.items():
            if key == "date_format":
                date_format = str(value)
                continue
            if key not in TABLES:
                raise InputError(f"mapping file {path}: unknown table {key!r} (tables: {', '.join(TABLES)}, date_format)")
            if not isinstance(value, dict):
                raise InputError(f"mapping file {path}: {key} must map our column names to the extract's names")
            for ours, theirs in value.items():
                mapping[key][str(ours)] = str(theirs)
    for opt in cols or []:
        m = re.match(r"^(\w+)\.(\w+)=(.+)$", opt.strip())
        if not m or m.group(1) not in TABLES:
            raise InputError(f"--col {opt!r}: expected TABLE.OURS=THEIRS with TABLE one of {', '.join(TABLES)}")
        mapping[m.group(1)][m.group(2)] = m.group(3).strip()
    for table, pairs in mapping.items():
        known = REQUIRED[table] + OPTIONAL[table]
        for ours in pairs:
            if ours not in known:
                named = REQUIRED[table] + [c for c in OPTIONAL[table] if c not in EXAM_COLUMNS]
                extra = ", exam_<Exam field>" if table == "episodes" else ""
                raise InputError(f"mapping: unknown column {ours!r} for {table} (known: {', '.join(named)}{extra})")
    return mapping, date_format


def read_table(source: str, table: str, db: Optional[str] = None) -> pd.DataFrame:
    """One input table: a CSV, Parquet or JSONL file (by extension), or a table in a SQLAlchemy database."""
    if db:
        from sqlalchemy import create_engine, inspect
        from sqlalchemy.exc import SQLAlchemyError

        try:
            engine = create_engine(db)
        except (SQLAlchemyError, ValueError) as exc:
            raise InputError(f"cannot open database URL ({type(exc).__name__})") from None
        try:
            names = inspect(engine).get_table_names()
            if source not in names:
                raise InputError(f"no table {source!r} in the database (tables: {', '.join(names) or 'none'})")
            with engine.connect() as conn:
                return pd.read_sql_table(source, conn)
        except SQLAlchemyError as exc:
            raise InputError(f"cannot read table {source!r} ({type(exc).__name__})") from None
        finally:
            engine.dispose()
    p = Path(source)
    if not p.exists():
        raise InputError(f"{table} file not found: {source}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p, dtype=str, keep_default_na=False, encoding_errors="replace")
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True, dtype=False, convert_dates=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read {table} file {source}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    raise InputError(f"unsupported {table} file format {suffix!r}: use .csv, .parquet or .jsonl (or --db URL)")


def apply_mapping(df: pd.DataFrame, table: str, pairs: dict[str, str]) -> pd.DataFrame:
    """Rename the extract's columns to ours and check the required ones are there."""
    columns = [str(c) for c in df.columns]
    rename = {}
    for ours, theirs in pairs.items():
        if theirs not in columns:
            raise InputError(f"mapping {table}.{ours}={theirs}: the {table} table has no column {theirs!r} "
                             f"(columns: {', '.join(columns)})")
        if ours in columns and ours != theirs:
            raise InputError(f"mapping {table}.{ours}={theirs}: the {table} table already has a column {ours!r}")
        rename[theirs] = ours
    df = df.rename(columns=rename)
    missing = [c for c in REQUIRED[table] if c not in df.columns]
    if table == "episodes" and not {"onset_date", "episode_start_date"} & set(df.columns):
        missing.append("onset_date (or episode_start_date)")
    if missing:
        raise InputError(f"the {table} table lacks {', '.join(missing)} (columns: {', '.join(map(str, df.columns))}); "
                         f"map names with --map FILE or --col {table}.OURS=THEIRS")
    return df.reset_index(drop=True)


def load_inputs(studies: str, episodes: str, referrals: str, db: Optional[str] = None, mapping_file: Optional[str] = None,
                cols: Optional[list[str]] = None) -> Inputs:
    """Read and map the three tables (files, or table names in ``db``)."""
    mapping, date_format = load_mapping(mapping_file, cols)
    frames = {}
    for table, source in (("studies", studies), ("episodes", episodes), ("referrals", referrals)):
        frames[table] = apply_mapping(read_table(source, table, db), table, mapping[table])
    return Inputs(frames["studies"], frames["episodes"], frames["referrals"], date_format)


# ----------------------------------------------------------------- cell parsing
def blank(value: Any) -> bool:
    """None, NaN, NaT, pd.NA or an empty / all-space string (CSV, Parquet and SQL spell 'missing' differently)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays
        return False


def text_of(value: Any) -> Optional[str]:
    if blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def parse_date(value: Any, fmt: Optional[str] = None) -> tuple[Optional[date], Optional[str]]:
    """(date, None), (None, None) when blank, or (None, reason) when it cannot be read. ISO 8601 unless
    the mapping names a ``date_format``: a day-first/month-first guess would silently swap dates."""
    if blank(value):
        return None, None
    if isinstance(value, datetime):
        return value.date(), None
    if isinstance(value, date):
        return value, None
    if isinstance(value, pd.Timestamp):
        return value.date(), None
    s = str(value).strip()
    try:
        if fmt:
            return datetime.strptime(s, fmt).date(), None
        if re.match(r"^\d{4}-\d{2}-\d{2}$", s):
            return date.fromisoformat(s), None
        return datetime.fromisoformat(s).date(), None
    except ValueError:
        return None, f"unparseable date {s[:40]!r} (expected {fmt or 'YYYY-MM-DD'})"


def parse_number(value: Any) -> tuple[Optional[float], Optional[str]]:
    if blank(value):
        return None, None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None, f"not a number: {str(value)[:40]!r}"
    if math.isnan(x) or x < 0:
        return None, f"not a count: {str(value)[:40]!r}"
    return x, None


def _norm_words(value: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", value.lower()).strip() + " "


def match_vocab(value: Any, vocab: dict[str, list[str]]) -> tuple[Optional[str], bool]:
    """(key, recognised) for a free-text cell such as 'MR L-SPINE W/O': the longest listed phrase found as
    whole words wins, so 'CT myelogram' is ct_myelogram and not ct. Blank gives (None, True)."""
    if blank(value):
        return None, True
    text = _norm_words(str(value))
    best, best_len = None, 0
    for key, words in vocab.items():
        for w in words:
            if _norm_words(w) in text and len(w) > best_len:
                best, best_len = key, len(w)
    return best, best is not None


def split_list(value: Any) -> list[str]:
    """A list cell: JSON list, a real list/array, or ';' / ',' / '|' separated text."""
    if blank(value):
        return []
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and not isinstance(value, str)):
        return [str(v).strip() for v in list(value) if not blank(v)]
    s = str(value).strip()
    if s.startswith("["):
        try:
            return [str(v).strip() for v in json.loads(s) if str(v).strip()]
        except ValueError:
            pass
    return [v.strip() for v in re.split(r"[;|,]", s) if v.strip()]


def normalise_code(raw: str) -> Optional[str]:
    """'m5416' / 'M54.16' -> 'M54.16'; None when not shaped like ICD-10-CM."""
    code = raw.strip().upper().replace(" ", "")
    if "." not in code and len(code) > 3:
        code = code[:3] + "." + code[3:]
    return code if re.match(rules()["icd10"]["pattern"], code) else None


# ----------------------------------------------------------------- episodes
@dataclass
class Code:
    code: str
    when: Optional[date]  # undated codes take their episode's start date
    bad_date: bool = False


@dataclass
class Episode:
    patient_id: str
    row_number: int
    onset: date
    index_start: date
    exam: Optional[Exam]
    red_flags: list[str]
    unknown_red_flags: list[str]
    red_flags_recorded: bool
    codes: list[Code]
    codes_recorded: bool
    birth: Optional[date]
    age: Optional[float]
    steroid_days: Optional[float]
    steroids_recorded: bool

    @property
    def documented(self) -> bool:
        """An exam with something to compare with imaging (side or radicular signs)."""
        return self.exam is not None and any(getattr(self.exam, f) for f in SYMPTOM_FIELDS)


class Issues:
    """Collects issue rows: ``error`` = the row is not audited, ``warning`` = a value was not used."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, table: str, row: int, rid: Optional[str], column: Optional[str], effect: str, reason: str) -> None:
        self.rows.append({"table": table, "row_number": row, "id": rid, "column": column, "effect": effect, "reason": reason})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=ISSUE_COLUMNS).astype({"row_number": "int64"})


def _exam_from(row: dict, warn: Callable[[str, str], None]) -> Optional[Exam]:
    """The Exam from exam_* columns as the batch runner reads them; a field that does not validate is
    reported and left out instead of losing the whole exam."""
    from pydantic import ValidationError

    from .batch import exam_from_row

    row = {k: v for k, v in row.items() if k not in ("red_flags", "exam_red_flags")}
    try:
        data = exam_from_row(row, None) or {}
    except (ValueError, TypeError) as exc:
        warn("exam", f"exam fields not readable ({type(exc).__name__}): exam not used")
        return None
    for _ in range(len(EXAM_FIELDS) + 1):
        if not data:
            return None
        try:
            return Exam.model_validate(data)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            for name in sorted(bad):
                msg = next(e["msg"] for e in exc.errors() if e["loc"] and str(e["loc"][0]) == name)
                warn(name, f"exam field {name} not used: {msg}")
                data.pop(name, None)
            if not bad:
                return None
    return None


def _red_flags(row: dict, warn: Callable[[str, str], None]) -> tuple[list[str], list[str], bool]:
    """(codes, unrecognised entries, column present): codes or words, mapped like the exam's red_flags."""
    from .guideline import exam_red_flags

    col = "red_flags" if "red_flags" in row else ("exam_red_flags" if "exam_red_flags" in row else None)
    if col is None:
        return [], [], False
    none_words = {w.lower() for w in rules()["no_red_flag_words"]}
    entries = [e for e in split_list(row[col]) if e.lower().strip() not in none_words]
    codes, unknown = exam_red_flags(Exam(red_flags=entries)) if entries else ([], [])
    for u in unknown:
        warn(col, f"red flag {u[:60]!r} not recognised (patterns/red_flags.json): the flag status is undetermined")
    return codes, unknown, True


def _codes(row: dict, start: date, fmt: Optional[str], warn: Callable[[str, str], None]) -> tuple[list[Code], bool]:
    if "diagnosis_codes" not in row:
        return [], False
    out = []
    for entry in split_list(row["diagnosis_codes"]):
        raw, _, when_txt = entry.partition("@")
        code = normalise_code(raw)
        if code is None:
            warn("diagnosis_codes", f"unknown code {raw.strip()[:20]!r} (not shaped like ICD-10-CM): not used")
            continue
        when, bad = start, False
        if when_txt.strip():
            parsed, reason = parse_date(when_txt, fmt)
            if reason:
                warn("diagnosis_codes", f"code {code}: {reason}: its windows are undetermined")
                when, bad = None, True
            else:
                when = parsed
        out.append(Code(code, when, bad))
    return out, True


def read_episodes(df: pd.DataFrame, issues: Issues, fmt: Optional[str]) -> dict[str, list[Episode]]:
    """Episodes per patient, sorted by onset; a row without a usable date is an error (reported, not used)."""
    by_patient: dict[str, list[Episode]] = {}
    for i, row in enumerate(df.to_dict(orient="records")):
        pid = text_of(row.get("patient_id"))

        def warn(column: str, reason: str, _i=i, _pid=pid) -> None:
            issues.add("episodes", _i, _pid, column, "warning", reason)

        if pid is None:
            issues.add("episodes", i, None, "patient_id", "error", "missing patient_id: episode not used")
            continue
        dates, bad = {}, {}
        for col in ("onset_date", "episode_start_date"):
            if col in row:
                dates[col], reason = parse_date(row[col], fmt)
                if reason:
                    bad[col] = reason
        onset = dates.get("onset_date") or dates.get("episode_start_date")
        if onset is None:
            why = "; ".join(f"{c}: {r}" for c, r in bad.items()) or "missing onset_date and episode_start_date"
            issues.add("episodes", i, pid, next(iter(bad), "onset_date"), "error", f"{why}: episode not used")
            continue
        for col, reason in bad.items():
            warn(col, f"{col}: {reason}: not used")
        index_start = dates.get("episode_start_date") or onset
        red, unknown, recorded = _red_flags(row, warn)
        exam = _exam_from(row, warn)
        if red:  # recognised red flags reach the guideline through the exam, as in the batch runner
            exam = exam.model_copy(update={"red_flags": red}) if exam else Exam(red_flags=red)
        codes, codes_recorded = _codes(row, index_start, fmt, warn)
        birth, reason = parse_date(row.get("birth_date"), fmt)
        if reason:
            warn("birth_date", f"birth_date: {reason}")
        age, reason = parse_number(row.get("age"))
        if reason:
            warn("age", f"age: {reason}")
        steroids, reason = parse_number(row.get("corticosteroid_days"))
        if reason:
            warn("corticosteroid_days", f"corticosteroid_days: {reason}")
        by_patient.setdefault(pid, []).append(Episode(
            pid, i, onset, index_start, exam, red, unknown, recorded, codes, codes_recorded, birth, age, steroids,
            "corticosteroid_days" in row))
    for eps in by_patient.values():
        eps.sort(key=lambda e: (e.onset, e.row_number))
    return by_patient


def episode_at(episodes: dict[str, list[Episode]], pid: str, when: date) -> tuple[Optional[Episode], str]:
    """The patient's episode in force on ``when`` (latest onset on or before it), or None and why."""
    eps = episodes.get(pid)
    if not eps:
        return None, "no usable episode for the patient (none in the episodes table, or only rows with errors)"
    current = [e for e in eps if e.onset <= when]
    if not current:
        return None, f"no episode with an onset on or before {when.isoformat()}"
    return current[-1], ""


# ----------------------------------------------------------------- studies
@dataclass
class StudyRow:
    row_number: int
    study_id: str
    patient_id: str
    when: date
    text: Optional[str]
    modality: Optional[str]
    region: Optional[str]
    provider: Optional[str]
    site: Optional[str]
    birth: Optional[date]
    age: Optional[float]
    episode: Optional[Episode] = None
    episode_reason: str = ""
    result: Optional[Result] = None
    result_reason: str = ""


def read_studies(df: pd.DataFrame, issues: Issues, fmt: Optional[str]) -> list[StudyRow]:
    vocab = rules()
    seen: set[str] = set()
    out = []
    for i, row in enumerate(df.to_dict(orient="records")):
        sid, pid = text_of(row.get("study_id")), text_of(row.get("patient_id"))
        if sid is None:
            issues.add("studies", i, None, "study_id", "error", "missing study_id")
            continue
        if sid in seen:
            issues.add("studies", i, sid, "study_id", "error", "duplicate study_id")
            continue
        if pid is None:
            issues.add("studies", i, sid, "patient_id", "error", "missing patient_id")
            continue
        when, reason = parse_date(row.get("study_date"), fmt)
        if when is None:
            issues.add("studies", i, sid, "study_date", "error", f"study_date: {reason or 'missing'}")
            continue
        seen.add(sid)
        body = row.get("report_text")
        if isinstance(body, (bytes, bytearray)):
            body = bytes(body).decode("utf-8", errors="replace")
        if blank(body) or not isinstance(body, str):
            issues.add("studies", i, sid, "report_text", "warning", "missing or empty report_text: findings not available")
            body = None
        modality, known = match_vocab(row.get("modality"), vocab["modality_words"])
        if not known:
            issues.add("studies", i, sid, "modality", "warning",
                       f"modality {str(row.get('modality'))[:40]!r} not recognised: taken from the report header")
        region, known = match_vocab(row.get("body_region"), vocab["region_words"])
        if not known:
            issues.add("studies", i, sid, "body_region", "warning",
                       f"body_region {str(row.get('body_region'))[:40]!r} not recognised: taken from the report header")
        birth, reason = parse_date(row.get("birth_date"), fmt)
        if reason:
            issues.add("studies", i, sid, "birth_date", "warning", f"birth_date: {reason}")
        age, reason = parse_number(row.get("age"))
        if reason:
            issues.add("studies", i, sid, "age", "warning", f"age: {reason}")
        out.append(StudyRow(i, sid, pid, when, body, modality, region, text_of(row.get("ordering_provider")),
                         text_of(row.get("site")), birth, age))
    return out


def analyse_studies(studies: list[StudyRow], issues: Issues, workers: int = 1) -> None:
    """One analyze_many pass over every report, each with its episode's exam; a report that fails is
    reported and its report-based measures become undetermined."""
    from . import analyze_many
    from .errors import ReportNLPError

    todo = [s for s in studies if s.text is not None]
    texts = [s.text for s in todo]
    exams = [s.episode.exam if s.episode else None for s in todo]
    ids = [s.study_id for s in todo]
    try:
        results = list(analyze_many(texts, n_process=workers, exams=exams, report_ids=ids))
    except Exception:  # one bad report must not sink the audit: retry one by one
        results = None
    if results is None:
        results = []
        for s, text, exam in zip(todo, texts, exams):
            try:
                results.extend(analyze_many([text], exams=[exam], report_ids=[s.study_id]))
            except (ReportNLPError, ValueError, RecursionError, MemoryError) as exc:
                results.append(None)
                issues.add("studies", s.row_number, s.study_id, "report_text", "warning",
                           f"report could not be analysed ({type(exc).__name__}): report-based measures undetermined")
    for s, r in zip(todo, results):
        s.result = r
        if r is not None and r.errors and not r.findings and r.study.modality == "unknown":
            s.result_reason = "; ".join(e for e in r.errors if not e.startswith("note:")) or "nothing found in the report"
    for s in studies:
        if s.result is None and not s.result_reason:
            s.result_reason = "no report text" if s.text is None else "report could not be analysed"


def modality_region(s: StudyRow) -> tuple[str, str]:
    """From the study's columns, else from the report header (Result.study)."""
    modality = s.modality or (s.result.study.modality if s.result else "unknown")
    region = s.region or (s.result.study.region if s.result else "unknown")
    return modality, region


def _scope(measure: str, s: StudyRow) -> Optional[tuple[str, str]]:
    """(status, reason) when the study is outside the measure or its type is unknown, else None."""
    cfg = rules()["measures"][measure]
    modality, region = modality_region(s)
    if modality == "unknown":
        return "undetermined", "modality unknown (no modality value and none in the report header)"
    if modality not in cfg["modalities"]:
        return "not_applicable", f"{modality} is not covered by this measure ({', '.join(cfg['modalities'])})"
    if region == "unknown":
        return "undetermined", "body region unknown (no body_region value and none in the report header)"
    if region not in cfg["regions"]:
        return "not_applicable", f"{region} study is not covered by this measure ({', '.join(cfg['regions'])})"
    return None


def history_flags(r: Optional[Result]) -> list[str]:
    return sorted({m.code for m in r.history_red_flags if not m.negated}) if r else []


# ----------------------------------------------------------------- measures
def measure_low_value_imaging(s: StudyRow) -> tuple[str, str]:
    """Guideline G12: no spine MRI in the first 6 weeks unless a red flag (episode or report history) is present."""
    scoped = _scope("low_value_imaging", s)
    if scoped:
        return scoped
    ep = s.episode
    if ep is None:
        return "undetermined", s.episode_reason
    days = (s.when - ep.onset).days
    flags = [f"{c} (episode)" for c in ep.red_flags] + [f"{c} (report history)" for c in history_flags(s.result) if c not in ep.red_flags]
    if flags:
        return "excluded", f"red flag recorded: {', '.join(flags)}"
    early = rules()["measures"]["low_value_imaging"]["early_days"]
    if days >= early:
        return "not_flagged", f"MRI {days} days after onset (6 weeks or later)"
    if not ep.red_flags_recorded:
        return "undetermined", f"MRI {days} days after onset, but the episodes table has no red_flags column"
    if ep.unknown_red_flags:
        return "undetermined", f"MRI {days} days after onset; red-flag entries not recognised: {', '.join(map(repr, ep.unknown_red_flags))}"
    return "flagged", f"spine MRI {days} days after onset (under 6 weeks) with no red flag in the episode or the report history (G12)"


def _age(s: StudyRow, ep: Episode, on: date) -> Optional[float]:
    """Age on 31 December of the index year (HEDIS) from a birth date, else the recorded age."""
    birth = s.birth or ep.birth
    if birth is not None:
        end = date(on.year, 12, 31)
        return end.year - birth.year - ((end.month, end.day) < (birth.month, birth.day))
    return s.age if s.age is not None else ep.age


def _prefix_match(code: str, prefixes: list[str]) -> bool:
    return any(code.startswith(p) for p in prefixes)


def measure_hedis(s: StudyRow, episodes: dict[str, list[Episode]]) -> tuple[str, str, Optional[int]]:
    """HEDIS LBP (clinical.md 4.1) per study: (status, reason, days from the index date)."""
    scoped = _scope("hedis_lbp_imaging", s)
    if scoped:
        return scoped + (None,)
    ep = s.episode
    if ep is None:
        return "undetermined", s.episode_reason, None
    cfg, vocab = rules()["measures"]["hedis_lbp_imaging"], rules()
    if not ep.codes_recorded:
        return "undetermined", "no diagnosis_codes column: the index low-back-pain diagnosis cannot be identified", None
    lbp = vocab["lbp_index"]["prefixes"]
    index_codes = [c for c in ep.codes if _prefix_match(c.code, lbp)]
    if not index_codes:
        return "not_applicable", "no uncomplicated low-back-pain diagnosis code on the episode", None
    dated = [c.when for c in index_codes if c.when is not None]
    if not dated:
        return "undetermined", "the low-back-pain diagnosis date is unusable", None
    iesd = min(dated)
    days = (s.when - iesd).days
    history = [c for e in episodes.get(s.patient_id, []) for c in e.codes]
    prior = [c for c in history if _prefix_match(c.code, lbp) and c.when is not None
             and 0 < (iesd - c.when).days <= cfg["negative_history_days"]]
    if prior:
        return ("not_applicable", f"low-back-pain diagnosis {prior[0].code} within {cfg['negative_history_days']} days "
                "before the index date (not a new episode)", days)
    undetermined: list[str] = []
    age = _age(s, ep, iesd)
    if age is None:
        undetermined.append("age unknown (no birth_date or age column value)")
    elif not cfg["min_age"] <= age <= cfg["max_age"]:
        return "not_applicable", f"age {age:g} outside {cfg['min_age']}-{cfg['max_age']}", days
    after = vocab["hedis_days_after"]
    excluded = []
    for c in history:
        for ex in vocab["hedis_exclusions"]:
            if not _prefix_match(c.code, ex["prefixes"]):
                continue
            if c.bad_date:
                undetermined.append(f"{ex['label'].lower()} code {c.code} has an unusable date")
                continue
            before = (iesd - c.when).days
            if before < -after:
                continue
            if ex["days_before"] is None:
                excluded.append(f"{ex['label'].lower()} ({c.code})")
            elif before <= ex["days_before"]:
                excluded.append(f"{ex['label'].lower()} ({c.code}, {before} days before the index date)")
    steroid_limit = cfg["corticosteroid_days"]
    if ep.steroid_days is not None and ep.steroid_days >= steroid_limit:
        excluded.append(f"{ep.steroid_days:g} days of corticosteroids")
    if excluded:
        return "excluded", "HEDIS exclusion: " + "; ".join(dict.fromkeys(excluded)), days
    if not ep.steroids_recorded:
        undetermined.append("no corticosteroid_days column")
    elif ep.steroid_days is None:
        undetermined.append("corticosteroid days not recorded")
    if undetermined:
        return "undetermined", "; ".join(dict.fromkeys(undetermined)), days
    window = cfg["imaging_days"]
    if 0 <= days <= window:
        return "flagged", f"imaging {days} days after the index low-back-pain diagnosis (within {window} days), no exclusion found", days
    if days < 0:
        return "not_flagged", f"imaging {-days} days before the index diagnosis", days
    return "not_flagged", f"imaging {days} days after the index diagnosis (after {window} days)", days


def measure_mismatch(s: StudyRow) -> tuple[str, str]:
    """G28: the report's concordance with the exam (discordant, imaging-only moderate+, symptoms without a finding)."""
    scoped = _scope("imaging_symptom_mismatch", s)
    if scoped:
        return scoped
    if s.result is None or s.result_reason:
        return "undetermined", f"report not analysed: {s.result_reason or 'no report'}"
    if s.episode is None:
        return "undetermined", s.episode_reason
    if not s.episode.documented:
        return "undetermined", "no exam side or radicular signs documented on the episode"
    c = s.result.concordance
    if "imaging_symptom_mismatch" in s.result.flags:
        return "flagged", f"{c.overall.replace('_', ' ')}: {c.explanation}"
    return "not_flagged", f"{c.overall.replace('_', ' ')}" + (f": {c.explanation}" if c.explanation else "")


def present_rooted(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.affirmed and f.roots and f.kind != "concept"]


def describe(f: Finding) -> str:
    """'L4-L5 left L5 lateral recess stenosis moderate'."""
    parts = [f.level or "", f.side or "", "/".join(f.roots), f.kind.replace("_", " "),
             f.severity or (f"grade {f.grade}" if f.grade is not None else "")]
    return " ".join(p for p in parts if p)


def sentence(text: str, start: int, end: int, limit: int = 240) -> str:
    """The report line around a finding's span (dictated reports put one statement per line)."""
    left = text.rfind("\n", 0, start) + 1
    right = text.find("\n", end)
    right = len(text) if right < 0 else right
    left, right = max(left, start - limit // 2), min(right, end + limit // 2)
    return " ".join(text[left:right].split())


def evidence(r: Optional[Result], text: Optional[str], limit: int = 3) -> str:
    """The strongest present findings and the report lines they come from (what an analyst checks first)."""
    if r is None or not text:
        return ""
    found = sorted(present_rooted(r.findings), key=lambda f: -(f.grade or 0))
    if not found:
        found = [f for f in r.findings if f.affirmed and f.kind != "concept"]
    found = found[:limit]
    if not found:
        return "no present finding"
    lines = list(dict.fromkeys(sentence(text, f.start, f.end) for f in found))
    return "; ".join(describe(f) for f in found) + " | " + " … ".join(f'"{line}"' for line in lines)


@dataclass
class ReferralRow:
    row_number: int
    referral_id: str
    patient_id: str
    when: date
    kind: Optional[str]
    raw_type: str
    provider: Optional[str]
    site: Optional[str]


def read_referrals(df: pd.DataFrame, issues: Issues, fmt: Optional[str]) -> list[ReferralRow]:
    """Referral rows; a missing patient or date is an error row, an unknown type a warning (the case stays)."""
    words = {t["type"]: t["words"] + [t["type"].replace("_", " ")] for t in rules()["referral_types"]}
    seen: set[str] = set()
    out = []
    for i, row in enumerate(df.to_dict(orient="records")):
        rid = text_of(row.get("referral_id")) or f"referral-row-{i}"
        if rid in seen:
            issues.add("referrals", i, rid, "referral_id", "error", "duplicate referral_id")
            continue
        pid = text_of(row.get("patient_id"))
        if pid is None:
            issues.add("referrals", i, rid, "patient_id", "error", "missing patient_id")
            continue
        when, reason = parse_date(row.get("referral_date"), fmt)
        if when is None:
            issues.add("referrals", i, rid, "referral_date", "error", f"referral_date: {reason or 'missing'}")
            continue
        seen.add(rid)
        raw = text_of(row.get("type")) or ""
        kind, _ = match_vocab(raw, words)
        if kind is None:
            issues.add("referrals", i, rid, "type", "warning",
                       f"referral type {raw[:40]!r} not recognised (esi, surgical_consult, surgery)")
        out.append(ReferralRow(i, rid, pid, when, kind, raw, text_of(row.get("referring_provider")), text_of(row.get("site"))))
    return out


def latest_mri(studies_by_patient: dict[str, list[StudyRow]], ref: ReferralRow) -> Optional[StudyRow]:
    """The patient's latest spine MRI on or before the referral date (the imaging the referral rests on)."""
    candidates = [s for s in studies_by_patient.get(ref.patient_id, []) if s.when <= ref.when
                  and _scope("low_value_referral", s) is None]
    return max(candidates, key=lambda s: (s.when, s.row_number)) if candidates else None


def _imaging_reasons(mri: StudyRow, rooted: list[Finding], mild_max: int) -> list[str]:
    """G02/G33: an MRI with no root finding, or only mild ones, never supports invasive care."""
    on = f"the MRI of {mri.when.isoformat()} ({mri.study_id})"
    grades = [f.grade for f in rooted if f.grade is not None]
    if not rooted:
        return [f"{on} shows no nerve-root finding"]
    if not grades:
        return [f"{on} states no grade for its root findings"]
    if max(grades) <= mild_max:
        label = next((s for s, g in SEVERITY_GRADE.items() if g == max(grades)), "none")
        return [f"{on} shows only mild findings (highest grade {max(grades)}, {label}) (G02, G33)"]
    return []


def measure_referral(ref: ReferralRow, mri: Optional[StudyRow], ep: Optional[Episode], ep_reason: str) -> tuple[str, str, Optional[str]]:
    """G24/G26/G02: (status, reasons, concordance) of an injection or surgical referral: flagged when the latest
    MRI shows no concordant moderate-or-worse finding, only mild findings, fewer than 6 weeks of conservative
    care (unless an urgent red flag), or no exam / candidate documentation."""
    from .concordance import assess
    from .guideline import confirming

    cfg = rules()["measures"]["low_value_referral"]
    if ref.kind is None:
        return "undetermined", f"referral type {ref.raw_type[:40]!r} not recognised", None
    if mri is None:
        return "undetermined", "no spine MRI on or before the referral date in the studies table", None
    if mri.result is None or mri.result_reason:
        return "undetermined", f"the MRI report ({mri.study_id}) was not analysed: {mri.result_reason or 'no report'}", None
    findings = mri.result.findings
    rooted = present_rooted(findings)
    reasons = _imaging_reasons(mri, rooted, cfg["mild_max_grade"])
    exam = ep.exam if ep else None
    strong: list[Finding] = []
    concordance = None
    if ep is None or not ep.documented:
        reasons.append(f"no exam documented for the referral ({ep_reason or 'no side or radicular signs on the episode'})")
    else:
        conc = assess(findings, exam, mri.result.level_numbering_uncertain)
        concordance = conc.overall
        strong = confirming(findings, conc)
        if not reasons and not strong:
            reasons.append(f"no concordant finding of grade moderate or worse on the MRI of {mri.when.isoformat()} "
                           f"({conc.overall.replace('_', ' ')}: {conc.explanation}) (G24)")
    urgent = sorted(set(cfg["urgent_red_flags"]) & (set(ep.red_flags if ep else []) | set(history_flags(mri.result))))
    weeks = exam.conservative_weeks if exam else None
    if exam is not None and not urgent:
        if weeks is None:
            reasons.append("duration of conservative care not documented (G26)")
        elif weeks < cfg["min_conservative_weeks"]:
            reasons.append(f"{weeks:g} weeks of conservative care (under {cfg['min_conservative_weeks']:g}) and no urgent red flag (G26)")
    if exam is not None and exam.invasive_candidate is not True:
        reasons.append("not documented as a candidate for injection or surgery (G24)")
    if reasons:
        return "flagged", "; ".join(reasons), concordance
    why = f"concordant {describe(strong[0])} on the MRI of {mri.when.isoformat()}; "
    why += f"urgent red flag ({', '.join(urgent)})" if urgent else f"{weeks:g} weeks of conservative care"
    return "not_flagged", why + "; candidate documented", concordance


# ----------------------------------------------------------------- the run
@dataclass
class AuditResult:
    cases: pd.DataFrame
    summary: pd.DataFrame
    issues: pd.DataFrame
    rows_in: dict = field(default_factory=dict)
    seconds: float = 0.0
    min_count: int = 11

    @property
    def errors(self) -> int:
        """Rows of studies and referrals that are not cases (issues with effect 'error')."""
        i = self.issues
        return int(((i["effect"] == "error") & i["table"].isin(["studies", "referrals"])).sum())

    @property
    def balanced(self) -> bool:
        return self.rows_in.get("studies", 0) + self.rows_in.get("referrals", 0) == len(self.cases) + self.errors

    def headline(self) -> pd.DataFrame:
        s = self.summary
        return s[s["dimension"] == "overall"].set_index("measure")


CASE_COLUMNS = ["case_type", "case_id", "patient_id", "row_number", "date", "month", "provider", "site", "study_id",
                "referral_type", "modality", "region", "days_from_onset", "days_from_index", "red_flags", "concordance",
                "max_grade"] + [c for m in MEASURES for c in (m, f"{m}_reason")] + ["flags", "evidence"]


def _na(measure_list: tuple, why: str) -> dict:
    return {c: v for m in measure_list for c, v in ((m, "not_applicable"), (f"{m}_reason", why))}


def study_case(s: StudyRow, episodes: dict[str, list[Episode]]) -> dict:
    modality, region = modality_region(s)
    ep = s.episode
    grades = [f.grade for f in present_rooted(s.result.findings) if f.grade is not None] if s.result else []
    row = {"case_type": "study", "case_id": s.study_id, "patient_id": s.patient_id, "row_number": s.row_number,
           "date": s.when.isoformat(), "month": s.when.strftime("%Y-%m"), "provider": s.provider, "site": s.site,
           "study_id": s.study_id, "referral_type": None, "modality": modality, "region": region,
           "days_from_onset": (s.when - ep.onset).days if ep else None,
           "red_flags": ",".join(sorted(set(ep.red_flags if ep else []) | set(history_flags(s.result)))),
           "concordance": s.result.concordance.overall if s.result and s.result.concordance else None,
           "max_grade": max(grades) if grades else None, "evidence": evidence(s.result, s.text)}
    row["low_value_imaging"], row["low_value_imaging_reason"] = measure_low_value_imaging(s)
    row["hedis_lbp_imaging"], row["hedis_lbp_imaging_reason"], row["days_from_index"] = measure_hedis(s, episodes)
    row["imaging_symptom_mismatch"], row["imaging_symptom_mismatch_reason"] = measure_mismatch(s)
    row.update(_na(("low_value_referral",), "a study, not a referral"))
    return row


def referral_case(ref: ReferralRow, studies_by_patient: dict[str, list[StudyRow]], episodes: dict[str, list[Episode]]) -> dict:
    mri = latest_mri(studies_by_patient, ref)
    ep, ep_reason = episode_at(episodes, ref.patient_id, ref.when)
    status, reason, concordance = measure_referral(ref, mri, ep, ep_reason)
    grades = [f.grade for f in present_rooted(mri.result.findings) if f.grade is not None] if mri and mri.result else []
    row = {"case_type": "referral", "case_id": ref.referral_id, "patient_id": ref.patient_id, "row_number": ref.row_number,
           "date": ref.when.isoformat(), "month": ref.when.strftime("%Y-%m"), "provider": ref.provider, "site": ref.site,
           "study_id": mri.study_id if mri else None, "referral_type": ref.kind or ref.raw_type,
           "modality": None, "region": modality_region(mri)[1] if mri else None,
           "days_from_onset": (ref.when - ep.onset).days if ep else None, "days_from_index": None,
           "red_flags": ",".join(ep.red_flags) if ep else "", "concordance": concordance,
           "max_grade": max(grades) if grades else None, "evidence": evidence(mri.result if mri else None, mri.text if mri else None),
           "low_value_referral": status, "low_value_referral_reason": reason}
    row.update(_na(("low_value_imaging", "hedis_lbp_imaging", "imaging_symptom_mismatch"), "a referral, not a study"))
    return row


def run_audit(inputs: Inputs, min_count: Optional[int] = None, workers: int = 1) -> AuditResult:
    """Per-case measures, summary rates and issues for one cohort (the library function behind ``report-nlp audit``)."""
    t0 = time.perf_counter()
    min_count = rules()["suppression"]["min_count"] if min_count is None else min_count
    issues = Issues()
    fmt = inputs.date_format
    episodes = read_episodes(inputs.episodes, issues, fmt)
    studies = read_studies(inputs.studies, issues, fmt)
    for s in studies:
        s.episode, s.episode_reason = episode_at(episodes, s.patient_id, s.when)
    analyse_studies(studies, issues, workers)
    by_patient: dict[str, list[StudyRow]] = {}
    for s in studies:
        by_patient.setdefault(s.patient_id, []).append(s)
    referrals = read_referrals(inputs.referrals, issues, fmt)
    rows = [study_case(s, episodes) for s in studies] + [referral_case(r, by_patient, episodes) for r in referrals]
    cases = pd.DataFrame(rows, columns=CASE_COLUMNS)
    cases["flags"] = [",".join(m for m in MEASURES if row[m] == "flagged") for row in rows]
    for col in ("row_number", "days_from_onset", "days_from_index", "max_grade"):
        cases[col] = cases[col].astype("Int64")
    rows_in = {"studies": len(inputs.studies), "episodes": len(inputs.episodes), "referrals": len(inputs.referrals)}
    return AuditResult(cases, summarize(cases, min_count), issues.frame(), rows_in, time.perf_counter() - t0, min_count)


# ----------------------------------------------------------------- summaries
def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k events in n: well behaved at 0 and n and for small n, unlike the Wald interval."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


SUMMARY_COLUMNS = ["measure", "dimension", "group", "cases", "denominator", "flagged", "not_flagged", "excluded",
                   "undetermined", "rate", "ci_low", "ci_high", "expected", "excess", "excess_rate", "suppressed"]
SUPPRESSED_COLUMNS = ["flagged", "not_flagged", "rate", "ci_low", "ci_high", "expected", "excess", "excess_rate"]


def _cell(measure: str, dimension: str, group: str, statuses: pd.Series, p0: float, min_count: int) -> dict:
    counts = statuses.value_counts()
    k, n = int(counts.get("flagged", 0)), int(counts.get("flagged", 0) + counts.get("not_flagged", 0))
    lo, hi = wilson(k, n)
    row = {"measure": measure, "dimension": dimension, "group": group, "cases": int(len(statuses)), "denominator": n,
           "flagged": k, "not_flagged": n - k, "excluded": int(counts.get("excluded", 0)),
           "undetermined": int(counts.get("undetermined", 0)), "rate": k / n if n else math.nan, "ci_low": lo, "ci_high": hi,
           "expected": n * p0, "excess": k - n * p0, "excess_rate": (k / n - p0) if n else math.nan, "suppressed": n < min_count}
    if row["suppressed"]:
        for c in SUPPRESSED_COLUMNS:
            row[c] = None
    return row


def summarize(cases: pd.DataFrame, min_count: int = 11) -> pd.DataFrame:
    """Rates per measure overall and by provider, site and month, with Wilson 95 % intervals, the expected
    count at the overall rate and the excess; cells with a denominator under ``min_count`` are suppressed."""
    rows = []
    for m in MEASURES:
        sub = cases[cases[m] != "not_applicable"]
        counts = sub[m].value_counts()
        k, n = int(counts.get("flagged", 0)), int(counts.get("flagged", 0) + counts.get("not_flagged", 0))
        p0 = k / n if n else math.nan
        rows.append(_cell(m, "overall", "all", sub[m], p0, min_count))
        for dim in DIMENSIONS[1:]:
            keys = sub[dim].fillna(NOT_RECORDED).astype(str)
            for group, part in sub[m].groupby(keys, sort=True):
                rows.append(_cell(m, dim, str(group), part, p0, min_count))
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for c in ("flagged", "not_flagged"):
        out[c] = out[c].astype("Int64")
    for c in ("rate", "ci_low", "ci_high", "expected", "excess", "excess_rate"):
        out[c] = out[c].astype("float64")
    return out


def top_excess(summary: pd.DataFrame, measure: str, dimension: str, k: int = 5) -> pd.DataFrame:
    """Groups with the most flagged cases above what the overall rate predicts, among shown (non-suppressed) cells."""
    s = summary[(summary["measure"] == measure) & (summary["dimension"] == dimension) & ~summary["suppressed"]]
    return s.sort_values(["excess", "group"], ascending=[False, True]).head(k)


# ----------------------------------------------------------------- outputs
def write_outputs(result: AuditResult, out_dir: str, fmt: str = "parquet", out_db: Optional[str] = None,
                  title: str = "Low-value imaging and referral audit") -> dict[str, str]:
    """cases / summary / issues as Parquet or CSV (and optionally SQL tables audit_*), plus report.html."""
    from .audit_report import render_report

    if fmt not in ("parquet", "csv"):
        raise InputError(f"--format must be parquet or csv, not {fmt!r}")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in (("cases", result.cases), ("summary", result.summary), ("issues", result.issues)):
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        paths[name] = str(path)
    if out_db:
        paths.update(write_sql(result, out_db))
    html = folder / "report.html"
    html.write_text(render_report(result, title=title), encoding="utf-8")
    paths["report"] = str(html)
    return paths


def write_sql(result: AuditResult, url: str) -> dict[str, str]:
    """Write the tables back to a database (replacing earlier audit_* tables)."""
    from .cohort import write_tables

    write_tables({"audit_cases": result.cases, "audit_summary": result.summary, "audit_issues": result.issues}, url,
                 "the audit tables")
    return {f"db:{n}": f"{n}" for n in ("audit_cases", "audit_summary", "audit_issues")}
