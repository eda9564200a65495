"""The replay report as one self-contained HTML page: headline numbers, plots (model mix
before and after, cost by team and by tenant before and after) drawn as inline SVG, the
requests whose outcome class or compliance surface changes, and, when counterfactual
execution ran, the candidate's answers beside the originals with the judges' verdicts. No script, no external file, nothing to
install: it opens from disk or a mail attachment as is."""

from __future__ import annotations

from html import escape
from typing import Any

THEN, NOW = "#8a94a6", "#2f6fdf"
ROW, LABEL_W, BAR_W = 22, 230, 420


def _bars(title: str, rows: list[tuple[str, float, float]], fmt: str) -> str:
    """Paired horizontal bars (then, now) per label, scaled to the largest value."""
    top = max([max(a, b) for _, a, b in rows] or [0]) or 1.0
    height = ROW * 2 * len(rows) + 40
    parts = [(f'<svg role="img" aria-label="{escape(title)}" width="{LABEL_W + BAR_W + 120}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="12" '
             'font-family="sans-serif">'),
             (f'<rect x="{LABEL_W}" y="4" width="12" height="12" fill="{THEN}"/>'
             f'<text x="{LABEL_W + 16}" y="14">then</text>'
             f'<rect x="{LABEL_W + 60}" y="4" width="12" height="12" fill="{NOW}"/>'
             f'<text x="{LABEL_W + 76}" y="14">now (candidate)</text>')]
    y = 28
    for label, then, now in rows:
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + ROW - 4}" text-anchor="end">'
                     f'{escape(label[:36])}</text>')
        for value, colour, dy in ((then, THEN, 0), (now, NOW, ROW - 2)):
            width = BAR_W * value / top
            parts.append(f'<rect x="{LABEL_W}" y="{y + dy}" width="{width:.1f}" '
                         f'height="{ROW - 4}" fill="{colour}"/>'
                         f'<text x="{LABEL_W + width + 4}" y="{y + dy + ROW - 8}">'
                         f'{format(value, fmt)}</text>')
        y += ROW * 2
    parts.append("</svg>")
    return f"<h2>{escape(title)}</h2>" + "".join(parts)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f"<td>{escape(', '.join(v) if isinstance(v, list) else str(v if v is not None else ''))}</td>"
        for v in (row.get(c) for c in columns)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _counterfactual(cf: dict[str, Any] | None) -> str:
    if not cf:
        return ""
    facts = (f"run {cf['run_id']}: executed {cf['executed']} of {cf['sampled']} sampled, "
             f"answered {cf['answered']}, errors {cf['errors']}, timeouts {cf['timeouts']}, "
             f"not executed (budget spent) {cf['stopped_by_budget']}; spent "
             f"{cf['spent_usd']:.6f} of {cf['budget_usd']:.6f} USD (scope {cf['budget_scope']})")
    rows = [{**r, "original": (r["original"] or "")[:2000],
             "candidate": (r["candidate"] or r["error"] or "")[:2000]} for r in cf["rows"]]
    return (f"<h2>Counterfactual execution</h2><p>{escape(facts)}</p>"
            + _table(rows, ["request_id", "tenant", "task", "then_models", "answered_by",
                            "status", "original", "candidate", "judge", "verdict", "cost_usd"]))


def render(report: dict[str, Any]) -> str:
    mix = report["model_mix"]
    models = sorted(set(mix["then"]) | set(mix["now"]),
                    key=lambda m: -(mix["then"].get(m, 0) + mix["now"].get(m, 0)))
    teams = report["cost_by_team"]
    cost = report["cost_usd"]
    headline = [
        ("requests replayed", report["replayed"]),
        ("model changed", report["model_changed"]),
        ("served → refused", report["served_to_refused"]),
        ("refused → served", report["refused_to_served"]),
        ("reach new models (compliance surface)", report["surface_changed"]),
        ("refused by the candidate's budgets / quotas (simulated)",
         " / ".join(str(report.get("limits_refused", {}).get(code, 0))
                    for code in ("budget_exceeded", "quota_exceeded"))),
        ("text redacted in the audit", report["redacted"]),
        ("text purged by retention", report["purged"]),
        ("cost then (USD)", f"{cost['then']:.6f}"),
        ("cost now (USD)", f"{cost['now']:.6f}"),
        ("cost delta (USD)", f"{cost['delta']:+.6f}"),
    ]
    summary = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                      for k, v in headline)
    listed = ["request_id", "tenant", "team", "task", "data_class", "then", "now"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>modelbus replay — {escape(report['candidate_policy_version'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #1d2330; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #d5d9e0; padding: 3px 8px; text-align: left; font-size: 13px; }}
th {{ background: #f1f3f6; }}
</style></head><body>
<h1>Policy replay: candidate {escape(report['candidate_policy_version'])}</h1>
<table>{summary}</table>
{_bars("Model mix (requests by first model)",
       [(m, mix["then"].get(m, 0), mix["now"].get(m, 0)) for m in models[:30]], "d")}
{_bars("Cost by team (USD)",
       [(t, v["then"], v["now"]) for t, v in list(teams.items())[:30]], ".6f")}
{_bars("Cost by tenant (USD)", [(t, v["cost_usd"]["then"], v["cost_usd"]["now"])
                                for t, v in list(report.get("by_tenant", {}).items())[:30]],
       ".6f")}
{_counterfactual(report.get("counterfactual"))}
<h2>Compliance surface changes ({report['surface_changed']} requests)</h2>
{_table(report["surface_changes"], [*listed, "new_reach", "new_surfaces"])}
<h2>Outcome class changes</h2>
{_table(report["class_changes"], [*listed, "change", "error_code"])}
<h2>Rejected candidates under the candidate policy</h2>
{_table(report["rejections"], ["model", "reason", "requests"])}
</body></html>
"""
