"""A seeded synthetic audit cohort (``report-nlp demo-cohort``): studies, episodes and referrals with known rates.

Every planted rate in ``planted.json`` is a property of the generating distribution (the probabilities
drawn from below), never of the audit's output, so a test can check that the audit recovers it.
``truth.csv`` keeps each case's latent draws (early or not, red flag, matching finding, severity, ...).
Reports come from a few templated sentences whose severity word and root relation agree (mild
'contacting', moderate 'displacing', severe 'compressing'), so the pipeline reads them unambiguously.

Independence by design: the timing of imaging depends only on the ordering provider; red flags, HEDIS
exclusions, age, the finding and the exam are drawn independently of it. So the planted rate of each
measure among decided cases is a closed-form product of the probabilities below.
"""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

# (ordering provider, site, probability of imaging in the first 6 weeks); picked with equal probability
PROVIDERS = [
    ("Dr. Avery Hale", "North Clinic", 0.60),  # the planted high-rate provider
    ("Dr. Bo Chen", "North Clinic", 0.25),
    ("Dr. Carla Diaz", "North Clinic", 0.20),
    ("Dr. Dev Patel", "Harbor Medical", 0.30),
    ("Dr. Elena Rossi", "Harbor Medical", 0.25),
    ("Dr. Femi Adeyemi", "Harbor Medical", 0.20),
    ("Dr. Greta Lind", "Valley Spine Center", 0.25),
    ("Dr. Hiro Tanaka", "Valley Spine Center", 0.30),
    ("Dr. Ines Moreau", "Valley Spine Center", 0.20),
    ("Dr. Jon Berg", "Valley Spine Center", 0.25),
]
REFERRERS = ["Dr. Kai Novak", "Dr. Lena Fox", "Dr. Omar Said", "Dr. Petra Holm"]
# (episode red_flags entry, code it maps to, urgent for surgery)
RED_FLAGS = [
    ("fever", "infection", False), ("history of cancer", "malignancy", False), ("trauma", "trauma", False),
    ("unexplained weight loss", "malignancy", False), ("intractable pain", "intractable_pain", False),
    ("saddle anesthesia", "cauda_equina", True), ("progressive_neurologic_deficit", "progressive_neurologic_deficit", True),
    ("bilateral leg weakness", "bilateral_motor_weakness", True),
]
P = {
    "red_flag": 0.10, "unknown_red_flag": 0.01, "lumbar": 0.80, "no_exam": 0.04, "match": 0.80,
    "mild": 0.35, "moderate": 0.40, "severe": 0.25, "conservative_6w": 0.70, "candidate": 0.80, "referral": 0.30,
    "lbp_code": 0.90, "no_birth_date": 0.03, "exclusion_any_time": 0.06, "ivdu_recent": 0.02, "ivdu_old": 0.02,
    "trauma_recent": 0.02, "trauma_old": 0.01, "steroids_90": 0.03, "steroids_missing": 0.02, "bad_code": 0.01,
    "bad_study_date": 0.005, "bad_referral_date": 0.005,
}
EARLY_DAYS, LATE_DAYS = (0, 41), (42, 180)  # uniform days from onset to the study
HEDIS_DAYS = 28
ANY_TIME_CODES = ["B20", "C50.911", "M45.6", "M81.0", "Z94.0", "Z98.1"]
REFERRAL_TYPES = [("esi", 0.6), ("surgical_consult", 0.3), ("surgery", 0.1)]
RELATION = {"mild": "contacting", "moderate": "displacing", "severe": "compressing"}
# (region, matching?) -> sentence templates; the exam always points to L5 (lumbar) or C6 (cervical)
FINDING = {
    ("lumbar", True): ["L4-5: {Sev} {side} subarticular stenosis {rel} the traversing {side} L5 nerve root.",
                       "L4-5: {Sev} {side} paracentral disc protrusion {rel} the traversing {side} L5 nerve root."],
    ("lumbar", False): ["L3-4: {Sev} {side} foraminal stenosis {rel} the exiting {side} L3 nerve root.",
                        "L3-4: {Sev} {side} foraminal disc protrusion {rel} the exiting {side} L3 nerve root."],
    ("cervical", True): ["C5-6: {Sev} {side} foraminal stenosis {rel} the exiting {side} C6 nerve root.",
                         "C5-6: {Sev} {side} uncovertebral spurring and foraminal narrowing {rel} the exiting {side} C6 nerve root."],
    ("cervical", False): ["C3-4: {Sev} {side} foraminal stenosis {rel} the exiting {side} C4 nerve root."],
}
HEADER = {
    "lumbar": ("EXAM: MRI LUMBAR SPINE WITHOUT CONTRAST\nHISTORY: Low back pain radiating to the {side} leg.\nFINDINGS:\n",
               "\nL5-S1: No disc herniation. No canal stenosis.\n"),
    "cervical": ("EXAM: MRI CERVICAL SPINE WITHOUT CONTRAST\nHISTORY: Neck pain radiating to the {side} arm.\nFINDINGS:\n",
                 "\nC6-7: No disc herniation.\n"),
}
EXAM_TERMS = {"lumbar": ["dorsum of foot", "great toe", "lateral calf"], "cervical": ["thumb", "lateral forearm"]}
DIAGNOSIS = {"lumbar": ["M54.50", "M54.16", "M51.16"], "cervical": ["M54.12", "M50.120"]}
START = date(2024, 1, 1)
STUDY_SPAN = 365  # study dates from 2024-01-01 to 2024-12-31 (2024 is a leap year)


def _decided_rate(ps: list[float]) -> float:
    """Rate of low_value_imaging among decided cases for equally weighted providers with early-imaging
    probabilities ``ps``: an early MRI of a patient with an unrecognised red-flag word is undetermined,
    so it leaves the denominator (u = its share among patients without a recognised red flag)."""
    u = P["unknown_red_flag"] / (1 - P["red_flag"])
    flagged = float(np.mean([p * (1 - u) for p in ps]))
    return flagged / (flagged + float(np.mean([1 - p for p in ps])))


def planted_rates() -> dict:
    """The rate of each measure among decided cases, from the probabilities alone (closed form)."""
    ps = [p for _, _, p in PROVIDERS]
    early_in_28 = (HEDIS_DAYS + 1) / (EARLY_DAYS[1] - EARLY_DAYS[0] + 1)
    p_urgent = P["red_flag"] * sum(u for *_, u in RED_FLAGS) / len(RED_FLAGS)
    p_ok = ((1 - P["no_exam"]) * (P["moderate"] + P["severe"]) * P["match"]
            * (P["conservative_6w"] + (1 - P["conservative_6w"]) * p_urgent) * P["candidate"])
    return {
        "low_value_imaging": _decided_rate(ps),
        "hedis_lbp_imaging": float(np.mean(ps)) * early_in_28,
        "low_value_referral": 1 - p_ok,
        "imaging_symptom_mismatch": 1 - P["match"],
    }


def planted_groups() -> dict:
    """Planted low_value_imaging rate per provider and per site (providers equally likely)."""
    sites: dict[str, list[float]] = {}
    for _, site, p in PROVIDERS:
        sites.setdefault(site, []).append(p)
    return {"provider": {name: _decided_rate([p]) for name, _, p in PROVIDERS},
            "site": {site: _decided_rate(ps) for site, ps in sites.items()}}


def _report(rng, region: str, side: str, match: bool, severity: str) -> str:
    head, tail = HEADER[region]
    templates = FINDING[(region, match)]
    sentence = templates[rng.integers(len(templates))].format(Sev=severity.capitalize(), side=side, rel=RELATION[severity])
    return head.format(side=side) + sentence + tail


def _choice(rng, options: list, weights: Optional[list] = None):
    return options[rng.choice(len(options), p=weights)]


def generate(n: int = 5000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """studies / episodes / referrals / truth DataFrames for ``n`` patients (one episode and one MRI each)."""
    rng = np.random.default_rng(seed)
    studies, episodes, referrals, truth = [], [], [], []
    sev_names = ["mild", "moderate", "severe"]
    sev_p = [P[s] for s in sev_names]
    for i in range(1, n + 1):
        pid, sid = f"P{i:06d}", f"S{i:06d}"
        provider, site, p_early = PROVIDERS[rng.integers(len(PROVIDERS))]
        region = "lumbar" if rng.random() < P["lumbar"] else "cervical"
        side = "left" if rng.random() < 0.5 else "right"
        early = rng.random() < p_early
        days = int(rng.integers(EARLY_DAYS[0], EARLY_DAYS[1] + 1) if early else rng.integers(LATE_DAYS[0], LATE_DAYS[1] + 1))
        study_date = START + timedelta(days=int(rng.integers(STUDY_SPAN + 1)))  # study month independent of timing
        onset = study_date - timedelta(days=days)
        match = rng.random() < P["match"]
        severity = sev_names[rng.choice(3, p=sev_p)]
        has_exam = rng.random() >= P["no_exam"]
        weeks = int(rng.integers(6, 25)) if rng.random() < P["conservative_6w"] else int(rng.integers(0, 6))
        candidate = rng.random() < P["candidate"]
        # red flags: none, one recognised entry, or an unrecognised word
        u = rng.random()
        flag_entry, urgent, unknown_flag = "", False, False
        if u < P["red_flag"]:
            flag_entry, _, urgent = RED_FLAGS[rng.integers(len(RED_FLAGS))]
        elif u < P["red_flag"] + P["unknown_red_flag"]:
            flag_entry, unknown_flag = "see scanned note", True
        elif rng.random() < 0.5:
            flag_entry = "none"
        # HEDIS elements
        codes = [_choice(rng, DIAGNOSIS[region]) if region == "cervical" or rng.random() < P["lbp_code"] else "M48.061"]
        if rng.random() < P["exclusion_any_time"]:
            codes.append(_choice(rng, ANY_TIME_CODES))
        for key, code, lo, hi in (("ivdu_recent", "F11.20", 0, 300), ("ivdu_old", "F11.20", 400, 700),
                                  ("trauma_recent", "S32.010A", 0, 80), ("trauma_old", "S32.010A", 120, 300)):
            if rng.random() < P[key]:
                codes.append(f"{code}@{(onset - timedelta(days=int(rng.integers(lo, hi + 1)))).isoformat()}")
        if rng.random() < P["bad_code"]:
            codes.append("XYZ")
        age_years = int(rng.integers(20, 86))
        birth = "" if rng.random() < P["no_birth_date"] else (onset - timedelta(days=age_years * 365 + int(rng.integers(365)))).isoformat()
        s = rng.random()
        if s < P["steroids_90"]:
            steroids = str(int(rng.integers(90, 200)))
        elif s < P["steroids_90"] + P["steroids_missing"]:
            steroids = ""
        else:
            steroids = str(int(rng.integers(0, 30)) if rng.random() < 0.2 else 0)
        bad_date = rng.random() < P["bad_study_date"]
        studies.append({"study_id": sid, "patient_id": pid, "study_date": "2024-02-30" if bad_date else study_date.isoformat(),
                        "modality": "MRI", "body_region": f"{region} spine", "report_text": _report(rng, region, side, match, severity),
                        "ordering_provider": provider, "site": site})
        episodes.append({"patient_id": pid, "onset_date": onset.isoformat(), "birth_date": birth,
                         "red_flags": flag_entry, "conservative_weeks": str(weeks) if has_exam else "",
                         "exam_side": side if has_exam else "",
                         "exam_pain_distribution": _choice(rng, EXAM_TERMS[region]) if has_exam else "",
                         "exam_invasive_candidate": ("true" if candidate else "false") if has_exam else "",
                         "diagnosis_codes": ";".join(codes), "corticosteroid_days": steroids})
        row = {"case_id": sid, "case_type": "study", "provider": provider, "early": early, "days_from_onset": days,
               "red_flag": bool(flag_entry) and flag_entry != "none" and not unknown_flag, "unknown_red_flag": unknown_flag,
               "urgent_red_flag": urgent, "region": region, "match": match, "severity": severity, "has_exam": has_exam,
               "conservative_weeks": weeks if has_exam else None, "candidate": candidate if has_exam else None,
               "bad_date": bad_date}
        truth.append(row)
        if rng.random() < P["referral"]:
            rid = f"R{i:06d}"
            kind = REFERRAL_TYPES[rng.choice(len(REFERRAL_TYPES), p=[w for _, w in REFERRAL_TYPES])][0]
            ref_date = study_date + timedelta(days=int(rng.integers(1, 46)))
            bad_ref = rng.random() < P["bad_referral_date"]
            referrals.append({"referral_id": rid, "patient_id": pid, "referral_date": "not recorded" if bad_ref else ref_date.isoformat(),
                              "type": kind, "referring_provider": _choice(rng, REFERRERS)})
            ok = has_exam and severity != "mild" and match and (weeks >= 6 or urgent) and candidate
            truth.append({**row, "case_id": rid, "case_type": "referral", "provider": referrals[-1]["referring_provider"],
                          "bad_date": bad_ref, "truth_low_value_referral": not ok})
    return {"studies": pd.DataFrame(studies), "episodes": pd.DataFrame(episodes), "referrals": pd.DataFrame(referrals),
            "truth": pd.DataFrame(truth)}


def planted(frames: dict[str, pd.DataFrame], n: int, seed: int) -> dict:
    """planted.json: the closed-form rates, per-group rates, the high-rate provider and the injected bad rows."""
    truth = frames["truth"]
    return {
        "n": n, "seed": seed,
        "rates": planted_rates(),
        "definitions": {
            "low_value_imaging": "P(MRI within 41 days of onset) over providers, among decided cases (early MRIs with an "
                                 "unrecognised red-flag word are undetermined); red flags drawn independently",
            "hedis_lbp_imaging": "P(early) x P(day <= 28 | early day uniform 0-41); index date = onset (undated LBP code)",
            "low_value_referral": "1 - P(exam) P(moderate or severe) P(matching) P(>= 6 weeks or urgent red flag) P(candidate)",
            "imaging_symptom_mismatch": "1 - P(finding at the exam's root and side)",
        },
        "groups": {"low_value_imaging": planted_groups()},
        "high_rate_provider": max(PROVIDERS, key=lambda p: p[2])[0],
        "probabilities": P,
        "bad_rows": {"studies": int(truth.loc[truth["case_type"] == "study", "bad_date"].sum()),
                     "referrals": int(truth.loc[truth["case_type"] == "referral", "bad_date"].sum())},
    }


def write_cohort(out: str, n: int = 5000, seed: int = 0, fmt: str = "csv", db: Optional[str] = None) -> dict[str, str]:
    """Write studies / episodes / referrals (CSV or Parquet, and optionally to a database), truth.csv and planted.json."""
    frames = generate(n, seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("studies", "episodes", "referrals"):
        path = folder / f"{name}.{fmt}"
        if fmt == "parquet":
            frames[name].to_parquet(path, index=False)
        else:
            frames[name].to_csv(path, index=False)
        paths[name] = str(path)
    frames["truth"].to_csv(folder / "truth.csv", index=False)
    paths["truth"] = str(folder / "truth.csv")
    (folder / "planted.json").write_text(json.dumps(planted(frames, n, seed), indent=1) + "\n", encoding="utf-8")
    paths["planted"] = str(folder / "planted.json")
    if db:
        write_sql(frames, db)
        paths["db"] = db
    return paths


def write_sql(frames: dict[str, pd.DataFrame], url: str) -> None:
    """The three input tables in a database (replaced if they exist), as an extract would be."""
    write_tables({name: frames[name] for name in ("studies", "episodes", "referrals")}, url, "the cohort", "database URL")


def write_tables(frames: dict[str, pd.DataFrame], url: str, what: str, target: str = "the output database URL") -> None:
    """Tables into a SQLAlchemy database in one transaction, each replacing an earlier table of its name;
    a bad URL or a failed write is an InputError naming only the exception type."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from .errors import InputError

    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ValueError) as exc:
        raise InputError(f"cannot open {target} ({type(exc).__name__})") from None
    try:
        with engine.begin() as conn:
            for name, df in frames.items():
                df.to_sql(name, conn, if_exists="replace", index=False)
    except SQLAlchemyError as exc:
        raise InputError(f"cannot write {what} to the database ({type(exc).__name__})") from None
    finally:
        engine.dispose()
