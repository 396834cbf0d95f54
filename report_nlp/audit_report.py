"""The audit's report.html: one self-contained page (figures as PNG data URIs, no scripts, no network).

Every value from the data (provider and site names, reasons, report text in the evidence) goes through
Jinja2 autoescape, and the page's Content-Security-Policy allows no script at all, so a planted
``<script>`` stays text even if escaping were ever lost.
"""
from __future__ import annotations

import base64
import io
import math
import re
from datetime import datetime, timezone
from importlib.resources import files

import pandas as pd

from .audit import MEASURES, Z95, Z998, AuditResult, rules, top_excess

TEMPLATE = "web/templates/audit_report.html"
EXAMPLES_PER_MEASURE = 5


def png_data_uri(fig) -> str:
    """Render a matplotlib Figure with the Agg canvas (no pyplot, no global backend switch) to a data URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label(measure: str) -> str:
    return measure.replace("_", " ")


def trend_figure(summary: pd.DataFrame, min_count: int) -> str:
    """Monthly rate per measure with its Wilson 95 % band; suppressed months are left out (gaps)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.6))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.94, bottom=0.06, hspace=0.38, wspace=0.15)
    axes = fig.subplots(2, 2).ravel()
    for ax, m in zip(axes, MEASURES):
        s = summary[(summary["measure"] == m) & (summary["dimension"] == "month")].sort_values("group")
        overall = summary[(summary["measure"] == m) & (summary["dimension"] == "overall")]
        x = list(range(len(s)))
        shown = ~s["suppressed"].to_numpy()
        rate = s["rate"].to_numpy(dtype=float)
        lo, hi = s["ci_low"].to_numpy(dtype=float), s["ci_high"].to_numpy(dtype=float)
        if shown.any():
            ax.fill_between(x, lo, hi, where=shown, color="#9ecae1", alpha=0.6, label="95% CI", step=None)
            ax.plot([xi for xi, ok in zip(x, shown) if ok], rate[shown], "o-", color="#08519c", ms=3, label="monthly rate")
        if len(overall) and not overall["suppressed"].iloc[0]:
            ax.axhline(float(overall["rate"].iloc[0]), color="#444", lw=0.8, ls="--", label="overall")
        ax.set_title(_label(m), fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_ylabel("rate", fontsize=8)
        ticks = x[:: max(1, len(x) // 6)] if x else []
        ax.set_xticks(ticks, [s["group"].iloc[t] for t in ticks], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if not shown.any():
            ax.text(0.5, 0.5, f"no month with {min_count}+ cases", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    axes[0].legend(fontsize=7, loc="upper right")
    return png_data_uri(fig)


def funnel_limits(p0: float, n, z: float):
    """Normal-approximation control limits p0 +/- z*sqrt(p0(1-p0)/n), clipped to [0, 1]."""
    import numpy as np

    n = np.asarray(n, dtype=float)
    half = z * np.sqrt(p0 * (1 - p0) / n)
    return np.clip(p0 - half, 0, 1), np.clip(p0 + half, 0, 1)


def funnel_figure(summary: pd.DataFrame) -> str:
    """Per-provider rate against its denominator, with the overall rate and 95 % / 99.8 % limits: a provider
    above the outer funnel is unlikely to differ by chance alone (not case-mix adjusted)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.4))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.95, bottom=0.08, hspace=0.42, wspace=0.15)
    axes = fig.subplots(2, 2).ravel()
    for ax, m in zip(axes, MEASURES):
        s = summary[(summary["measure"] == m) & (summary["dimension"] == "provider") & ~summary["suppressed"]]
        overall = summary[(summary["measure"] == m) & (summary["dimension"] == "overall")].iloc[0]
        ax.set_title(f"{_label(m)} by provider", fontsize=10)
        ax.set_xlabel("cases in the denominator", fontsize=8)
        ax.set_ylabel("rate", fontsize=8)
        ax.tick_params(labelsize=7)
        if s.empty or overall["suppressed"] or math.isnan(overall["rate"]):
            ax.text(0.5, 0.5, "no provider to show", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            continue
        p0 = float(overall["rate"])
        n = np.linspace(max(1, s["denominator"].min() * 0.8), s["denominator"].max() * 1.1, 200)
        for z, style in ((Z95, "--"), (Z998, ":")):
            lo, hi = funnel_limits(p0, n, z)
            ax.plot(n, lo, style, color="#888", lw=0.9)
            ax.plot(n, hi, style, color="#888", lw=0.9, label=f"{'95' if z == Z95 else '99.8'}% limits")
        ax.axhline(p0, color="#444", lw=0.9, label=f"overall {p0:.1%}")
        ax.scatter(s["denominator"], s["rate"], s=14, color="#08519c", zorder=3)
        _, outer = funnel_limits(p0, s["denominator"].to_numpy(), Z998)
        for (_, row), limit in zip(s.iterrows(), outer):
            if row["rate"] > limit:
                ax.annotate(str(row["group"])[:24], (row["denominator"], row["rate"]), fontsize=7, color="#a50f15",
                            xytext=(4, 3), textcoords="offset points")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper right")
    return png_data_uri(fig)


def _pattern(reason: str) -> str:
    """A reason with its numbers and quoted values folded, so like reasons count together."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(reason))
    reason = re.sub(r"\(\w*[-_]?\d[\w-]*\)", "(…)", reason)
    return re.sub(r"\d+(\.\d+)?", "N", reason)


def _examples(cases: pd.DataFrame) -> list[dict]:
    out = []
    for m in MEASURES:
        flagged = cases[cases[m] == "flagged"].sort_values(["date", "case_id"]).head(EXAMPLES_PER_MEASURE)
        for _, row in flagged.iterrows():
            out.append({"measure": _label(m), "case_type": row["case_type"], "case_id": row["case_id"], "date": row["date"],
                        "provider": row["provider"] or "", "site": row["site"] or "", "reason": row[f"{m}_reason"],
                        "evidence": row["evidence"] or ""})
    return out


def _undetermined(cases: pd.DataFrame) -> list[dict]:
    out = []
    for m in MEASURES:
        reasons = cases.loc[cases[m] == "undetermined", f"{m}_reason"].map(_pattern).value_counts().head(6)
        out.extend({"measure": _label(m), "reason": r, "count": int(n)} for r, n in reasons.items())
    return out


def context(result: AuditResult, title: str) -> dict:
    """Everything the template shows, as plain values (the template does no arithmetic)."""
    cfg = rules()["measures"]
    summary, cases = result.summary, result.cases
    head = result.headline()
    headline = []
    for m in MEASURES:
        row = head.loc[m]
        headline.append({"measure": m, "label": cfg[m]["label"], "source": cfg[m]["source"], "suppressed": bool(row["suppressed"]),
                         "rate": row["rate"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                         "flagged": row["flagged"], "denominator": int(row["denominator"]), "excluded": int(row["excluded"]),
                         "undetermined": int(row["undetermined"])})
    tops = []
    for m in MEASURES:
        for dim in ("provider", "site"):
            t = top_excess(summary, m, dim)
            tops.append({"measure": _label(m), "dimension": dim, "rows": t.to_dict(orient="records")})
    issues = result.issues
    issue_counts = []
    if len(issues):
        grouped = issues.assign(pattern=issues["reason"].map(_pattern)).groupby(["table", "effect", "pattern"]).size()
        issue_counts = [{"table": t, "effect": e, "reason": r, "count": int(n)}
                        for (t, e, r), n in grouped.sort_values(ascending=False).head(12).items()]
    return {
        "title": title, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rows_in": result.rows_in, "cases": len(cases), "errors": result.errors, "balanced": result.balanced,
        "studies": int((cases["case_type"] == "study").sum()), "referrals": int((cases["case_type"] == "referral").sum()),
        "min_count": result.min_count, "headline": headline, "tops": tops, "examples": _examples(cases),
        "undetermined": _undetermined(cases), "issues": issue_counts,
        "trend_png": trend_figure(summary, result.min_count), "funnel_png": funnel_figure(summary),
        "not_assessed": cfg["hedis_lbp_imaging"]["not_assessed"],
    }


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return f"{float(value):.1%}"


def _num(value, digits: int = 0) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):,.{digits}f}"


def render_report(result: AuditResult, title: str = "Low-value imaging and referral audit") -> str:
    """report.html as a string (autoescaped Jinja2; figures embedded)."""
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    template = env.from_string(files("report_nlp").joinpath(TEMPLATE).read_text(encoding="utf-8"))
    return template.render(**context(result, title))
