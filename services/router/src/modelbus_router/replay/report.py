"""The replay report: totals folded in one comparison at a time, in memory that does not
grow with the number of requests (counters by model, team, outcome and reason; the lists of
requests are capped at :data:`LISTED`, their full count kept), rendered as a text table or
JSON, with totals by team and by tenant, and the counterfactual execution's rows (the
candidate's answers beside the originals, judges' verdicts) when it ran. The HTML page is
:mod:`modelbus_router.replay.html`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from modelbus_router.replay.compare import COST_DIGITS, Comparison

LISTED = 200  # requests listed by name per kind of change


def _money(value: float) -> float:
    return round(value, COST_DIGITS)


@dataclass
class Report:
    candidate_version: str
    replayed: int = 0
    skipped: int = 0
    redacted: int = 0
    purged: int = 0
    model_changed: int = 0
    then_cost_usd: float = 0.0
    now_cost_usd: float = 0.0
    outcomes: Counter = field(default_factory=Counter)  # "then->now"
    then_versions: Counter = field(default_factory=Counter)
    mix_then: Counter = field(default_factory=Counter)
    mix_now: Counter = field(default_factory=Counter)
    cost_by_team: dict[str, list[float]] = field(default_factory=lambda: defaultdict(
        lambda: [0.0, 0.0]))
    rejections: Counter = field(default_factory=Counter)  # (model, reason)
    refusals_now: Counter = field(default_factory=Counter)  # error code
    surface_changes: list[dict[str, Any]] = field(default_factory=list)
    surface_changed: int = 0
    class_changes: list[dict[str, Any]] = field(default_factory=list)
    by_tenant: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    counterfactual: dict[str, Any] | None = None  # Counterfactual.as_json(), when executed
    limits_refused: dict[str, int] | None = None  # simulated budget/quota refusals by code

    def add(self, c: Comparison) -> None:
        self.replayed += 1
        self.redacted += c.redacted
        self.purged += c.purged
        self.model_changed += c.model_changed
        self.then_cost_usd += c.then_cost_usd
        self.now_cost_usd += c.now_cost_usd
        self.outcomes[f"{c.then_outcome}->{c.now_outcome}"] += 1
        self.then_versions[c.then_policy_version or "(none)"] += 1
        self.mix_then[c.then_models[0] if c.then_models else f"({c.then_outcome})"] += 1
        self.mix_now[c.now_models[0] if c.now_models else f"({c.now_outcome})"] += 1
        team = self.cost_by_team[c.team]
        team[0] += c.then_cost_usd
        team[1] += c.now_cost_usd
        tenant = self.by_tenant[c.tenant]
        tenant.update(replayed=1, model_changed=int(c.model_changed),
                      served_to_refused=int(bool(c.class_change)
                                            and c.class_change.endswith("->refused")),
                      surface_changed=int(c.surface_changed))
        tenant["then_usd"] += c.then_cost_usd
        tenant["now_usd"] += c.now_cost_usd
        for model, reason in c.rejected:
            self.rejections[(model, reason)] += 1
        if c.now_error_code:
            self.refusals_now[c.now_error_code] += 1
        brief = {"request_id": c.request_id, "tenant": c.tenant, "team": c.team,
                 "task": c.task, "data_class": c.data_class, "then": list(c.then_models),
                 "now": list(c.now_models), "then_outcome": c.then_outcome,
                 "now_outcome": c.now_outcome, "error_code": c.now_error_code}
        if c.surface_changed:
            self.surface_changed += 1
            if len(self.surface_changes) < LISTED:
                self.surface_changes.append({**brief, "new_reach": list(c.new_reach),
                                             "new_surfaces": list(c.new_surfaces)})
        if c.class_change and len(self.class_changes) < LISTED:
            self.class_changes.append({**brief, "change": c.class_change})

    @property
    def served_to_refused(self) -> int:
        return sum(n for k, n in self.outcomes.items()
                   if k.endswith("->refused") and not k.startswith("refused"))

    @property
    def refused_to_served(self) -> int:
        return self.outcomes.get("refused->served", 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "candidate_policy_version": self.candidate_version,
            "replayed": self.replayed, "skipped": self.skipped,
            "redacted": self.redacted, "purged": self.purged,
            "model_changed": self.model_changed,
            "served_to_refused": self.served_to_refused,
            "refused_to_served": self.refused_to_served,
            "surface_changed": self.surface_changed,
            "outcomes": dict(sorted(self.outcomes.items())),
            "then_policy_versions": dict(self.then_versions),
            "cost_usd": {"then": _money(self.then_cost_usd), "now": _money(self.now_cost_usd),
                         "delta": _money(self.now_cost_usd - self.then_cost_usd)},
            "model_mix": {"then": dict(self.mix_then.most_common()),
                          "now": dict(self.mix_now.most_common())},
            "cost_by_team": {team: {"then": _money(v[0]), "now": _money(v[1])}
                             for team, v in sorted(self.cost_by_team.items())},
            "rejections": [{"model": m, "reason": r, "requests": n}
                           for (m, r), n in self.rejections.most_common(50)],
            "by_tenant": {tenant: {**{k: v for k, v in t.items() if not k.endswith("_usd")},
                                   "cost_usd": {"then": _money(t["then_usd"]),
                                                "now": _money(t["now_usd"])}}
                          for tenant, t in sorted(self.by_tenant.items())},
            "refusals_now": dict(self.refusals_now),
            "limits_simulated": self.limits_refused is not None,
            "limits_refused": self.limits_refused or {},
            "surface_changes": self.surface_changes,
            "class_changes": self.class_changes,
            **({"counterfactual": self.counterfactual} if self.counterfactual else {}),
        }

    def table(self) -> str:
        j = self.as_json()
        cost = j["cost_usd"]
        lines = [
            f"replay under policy {self.candidate_version}",
            (f"  requests replayed   {self.replayed}"
            f"  (skipped {self.skipped}; text redacted {self.redacted}, purged {self.purged})"),
            f"  model changed       {self.model_changed}",
            f"  served -> refused   {self.served_to_refused}",
            f"  refused -> served   {self.refused_to_served}",
            f"  compliance surface  {self.surface_changed} requests reach new models",
            (f"  budgets / quotas    {(self.limits_refused or {}).get('budget_exceeded', 0)} / "
             f"{(self.limits_refused or {}).get('quota_exceeded', 0)} refused (simulated)"
             if self.limits_refused is not None else "  budgets / quotas    not simulated"),
            (f"  cost (USD)          then {cost['then']:.6f}  now {cost['now']:.6f}"
            f"  delta {cost['delta']:+.6f}"),
            "",
            f"  {'model':<40} {'then':>8} {'now':>8}",
        ]
        for model in sorted(set(self.mix_then) | set(self.mix_now)):
            lines.append(f"  {model:<40} {self.mix_then[model]:>8} {self.mix_now[model]:>8}")
        lines += ["", f"  {'team':<28} {'then USD':>14} {'now USD':>14}"]
        for team, v in sorted(self.cost_by_team.items()):
            lines.append(f"  {team:<28} {v[0]:>14.6f} {v[1]:>14.6f}")
        lines += ["", (f"  {'tenant':<28} {'requests':>8} {'changed':>8} {'refused':>8} "
                       f"{'then USD':>14} {'now USD':>14}")]
        for tenant, t in sorted(self.by_tenant.items()):
            lines.append(f"  {tenant:<28} {t['replayed']:>8} {t['model_changed']:>8} "
                         f"{t['served_to_refused']:>8} {t['then_usd']:>14.6f} "
                         f"{t['now_usd']:>14.6f}")
        if self.refusals_now:
            lines += ["", "  refused under the candidate: " + ", ".join(
                f"{code} {n}" for code, n in self.refusals_now.most_common())]
        for change in self.surface_changes[:20]:
            lines.append(f"  surface: {change['tenant']}/{change['request_id']} "
                         f"({change['data_class']}) now reaches {', '.join(change['new_reach'])}")
        if self.counterfactual:
            lines += ["", *counterfactual_lines(self.counterfactual)]
        return "\n".join(lines)


def _short(text: str | None, width: int = 48) -> str:
    flat = " ".join((text or "-").split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def counterfactual_lines(cf: dict[str, Any]) -> list[str]:
    lines = [
        f"counterfactual execution (run {cf['run_id']}, reply topic {cf['reply_topic']})",
        (f"  executed {cf['executed']} of {cf['sampled']} sampled: answered {cf['answered']}, "
         f"errors {cf['errors']}, timeouts {cf['timeouts']}, "
         f"not executed (budget spent) {cf['stopped_by_budget']}"),
        (f"  spent {cf['spent_usd']:.6f} of {cf['budget_usd']:.6f} USD on budget scope "
         f"{cf['budget_scope']}"),
    ]
    if cf["verdicts"]:
        lines.append("  judge verdicts: " + ", ".join(f"{k} {n}" for k, n in
                                                      sorted(cf["verdicts"].items())))
    lines.append(f"  {'request':<24} {'status':<8} {'original':<48} {'candidate':<48} verdict")
    for row in cf["rows"]:
        lines.append(f"  {_short(row['request_id'], 24):<24} {row['status']:<8} "
                     f"{_short(row['original']):<48} {_short(row['candidate']):<48} "
                     f"{row['verdict'] or '-'}")
    return lines
