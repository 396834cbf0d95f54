"""The public data contract (DESIGN.md): pydantic models shared by the API, CLI, batch and web.

The enumerations here are the single definition of each value set; the rule-file schemas in
``patterns/schema`` and the corpus schema reuse them (a test checks they agree).
"""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal[
    "nerve_root_impingement",
    "foraminal_stenosis",
    "lateral_recess_stenosis",
    "central_canal_stenosis",
    "disc_herniation",
    "disc_bulge",
    "cord_compression",
    "cauda_equina_compression",
    "concept",
]
Side = Literal["left", "right", "bilateral", "central"]
Zone = Literal["central", "subarticular", "foraminal", "extraforaminal"]
Severity = Literal["minimal", "mild", "mild-moderate", "moderate", "moderate-severe", "severe"]
Section = Literal["findings", "impression", "history", "technique", "comparison", "other"]
Certainty = Literal["affirmed", "probable", "possible", "negated"]
Modality = Literal["mri", "ct", "ct_myelogram", "radiograph", "unknown"]
Region = Literal["cervical", "thoracic", "lumbar", "multiple", "unknown"]
Verdict = Literal[
    "concordant",
    "partially_concordant",
    "discordant",
    "imaging_only",
    "symptoms_only",
    "not_assessable",
]
Category = Literal[
    "urgent_evaluation",
    "conservative_care",
    "imaging_not_indicated",
    "mri_indicated",
    "consider_invasive_referral",
]

SEVERITY_GRADE: dict[str, int] = {
    "minimal": 1,
    "mild": 2,
    "mild-moderate": 3,
    "moderate": 4,
    "moderate-severe": 5,
    "severe": 6,
}
GRADE_SEVERITY: dict[int, str] = {g: s for s, g in SEVERITY_GRADE.items()}

LEVEL_PATTERN = r"^(C[1-7]-C[2-7]|C7-T1|T([1-9]|1[0-2])-(T([2-9]|1[0-2])|L1)|L[1-5]-(L[2-5]|S1)|S1-S2)$"
ROOT_PATTERN = r"^(C[1-8]|T([1-9]|1[0-2])|L[1-5]|S[1-5])$"
_ROOT = re.compile(ROOT_PATTERN)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Cue(_Model):
    """A ConText modifier that changed a finding's status: shown to users as 'matched by'."""

    text: str
    category: str
    start: int
    end: int


class GoldFinding(_Model):
    """One finding: one kind at one level on one side, with its evidence span (the gold corpus' row format)."""

    kind: Kind
    level: Optional[str] = Field(default=None, pattern=LEVEL_PATTERN)
    side: Optional[Side] = None
    zone: Optional[Zone] = None
    roots: list[str] = Field(default_factory=list)
    roots_inferred: bool = False
    severity: Optional[Severity] = None
    grade: Optional[int] = Field(default=None, ge=0, le=6)
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    hypothetical: bool = False
    section: Section = "other"
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @field_validator("roots")
    @classmethod
    def _roots_are_roots(cls, roots: list[str]) -> list[str]:
        bad = [r for r in roots if not _ROOT.match(r)]
        if bad:
            msg = f"not nerve roots: {bad}"
            raise ValueError(msg)
        return roots


class Finding(GoldFinding):
    """A finding as the pipeline reports it: the gold fields plus certainty, concept name and the cues that set its status."""

    certainty: Certainty = "affirmed"
    concept: Optional[str] = None
    cues: list[Cue] = Field(default_factory=list)

    @property
    def affirmed(self) -> bool:
        """Present now: not negated, not hypothetical, not historical."""
        return not (self.negated or self.hypothetical or self.historical)


class Exam(_Model):
    """Structured clinical exam; every field optional (DESIGN.md)."""

    side: Optional[Literal["left", "right", "bilateral"]] = None
    pain_distribution: list[str] = Field(default_factory=list)
    sensory_deficit: list[str] = Field(default_factory=list)
    motor_weakness: list[str] = Field(default_factory=list)
    reflex_changes: list[str] = Field(default_factory=list)
    straight_leg_raise: Optional[bool] = None
    spurling: Optional[bool] = None
    symptom_weeks: Optional[float] = Field(default=None, ge=0, le=5200)
    conservative_weeks: Optional[float] = Field(default=None, ge=0, le=5200)
    red_flags: list[str] = Field(default_factory=list)
    psychosocial_flags: list[str] = Field(default_factory=list)
    claudication_with_walking: Optional[bool] = None
    invasive_candidate: Optional[bool] = None


class _Frozen(_Model):
    """Immutable, so one instance can stand in many Results (the same citations, warnings and "no exam"
    verdicts recur in nearly every Result; building them anew was a fifth of the guideline's time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingVerdict(_Frozen):
    finding_index: int
    verdict: Verdict
    explanation: str


class Concordance(_Model):
    overall: Verdict
    explanation: str = ""
    per_finding: list[FindingVerdict] = Field(default_factory=list)
    exam_roots: list[str] = Field(default_factory=list)
    unmapped_exam_terms: list[str] = Field(default_factory=list)


class Citation(_Frozen):
    id: str
    text: str


class Warning_(_Frozen):
    code: str
    message: str


class Recommendation(_Model):
    category: Category
    invasive_allowed: bool = False
    reasons: list[str] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    warnings: list[Warning_] = Field(default_factory=list)


class Study(_Model):
    modality: Modality = "unknown"
    region: Region = "unknown"
    contrast: Optional[bool] = None


class RedFlagMention(_Model):
    """A red-flag phrase found in the HISTORY/INDICATION text (the reason for the exam)."""

    code: str
    text: str
    start: int
    end: int
    negated: bool = False


class LevelOpinion(_Model):
    """The trained model's view of one level next to the rules' (a second opinion, never a decision)."""

    level: str
    rules_class: Literal["none", "mild", "moderate", "severe"]
    model_class: Literal["none", "mild", "moderate", "severe"]
    model_probability: float
    disagree: bool


class Result(_Model):
    report_id: Optional[str] = None
    study: Study = Field(default_factory=Study)
    findings: list[Finding] = Field(default_factory=list)
    history_red_flags: list[RedFlagMention] = Field(default_factory=list)
    level_numbering_uncertain: bool = False
    exam: Optional[Exam] = None
    concordance: Optional[Concordance] = None
    recommendation: Optional[Recommendation] = None
    flags: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    model_levels: list[LevelOpinion] = Field(default_factory=list)


class GoldReport(_Model):
    """One row of corpora/*.jsonl."""

    id: str
    style: str
    region: Region
    study: Optional[Study] = None
    text: str
    findings: list[GoldFinding]
    exam: Optional[Exam] = None


class NegationItem(_Model):
    """One row of corpora/negation*.jsonl: a sentence, a concept phrase in it, and whether it is negated."""

    id: str
    text: str
    concept: str
    negated: bool
    source: Optional[str] = None  # which writer / note style

    @field_validator("concept")
    @classmethod
    def _concept_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("concept is blank")
        return v


def result_json_schema() -> dict:
    """JSON Schema of ``Result`` (``report-nlp schema``)."""
    return Result.model_json_schema()
