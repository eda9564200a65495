"""``modelbus shadow report``: shadow decisions over a window, summarised — agreement rate,
estimated cost under each policy, outcome changes (served → refused …), model mix, and the
requests the shadow policy would show to models the active one did not (compliance
surface). One event at a time in bounded memory (lists capped at :data:`LISTED`).
Knows nothing of Kafka: the CLI feeds it the verified events it reads from the topic."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelbus_schemas.shadow import PolicyAnswer, ShadowDecisionEvent

LISTED = 200


def _first(answer: PolicyAnswer) -> str:
    if answer.decision is None or not answer.decision.selected:
        return f"({answer.outcome})"
    ref = answer.decision.selected[0]
    return f"{ref.provider}/{ref.model}"


@dataclass
class ShadowSummary:
    since: datetime | None = None
    until: datetime | None = None
    total: int = 0
    agree: int = 0
    active_cost_usd: float = 0.0
    shadow_cost_usd: float = 0.0
    outcomes: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)  # "active -> shadow"
    mix_active: Counter = field(default_factory=Counter)
    mix_shadow: Counter = field(default_factory=Counter)
    surface_changed: int = 0
    surface_changes: list[dict[str, Any]] = field(default_factory=list)

    def in_window(self, event: ShadowDecisionEvent) -> bool:
        return ((self.since is None or event.created_at >= self.since)
                and (self.until is None or event.created_at < self.until))

    def add(self, event: ShadowDecisionEvent) -> None:
        if not self.in_window(event):
            return
        active, shadow = event.active, event.shadow
        self.total += 1
        self.agree += event.agree
        self.active_cost_usd += active.estimated_cost_usd
        self.shadow_cost_usd += shadow.estimated_cost_usd
        self.outcomes[f"{active.outcome}->{shadow.outcome}"] += 1
        self.versions[f"{active.policy_version} -> {shadow.policy_version}"] += 1
        self.mix_active[_first(active)] += 1
        self.mix_shadow[_first(shadow)] += 1
        new = [r for r in shadow.reach if r not in set(active.reach)]
        if new:
            self.surface_changed += 1
            if len(self.surface_changes) < LISTED:
                self.surface_changes.append({
                    "request_id": event.request_id, "tenant": event.tenant,
                    "task": event.task, "data_class": event.data_class.value,
                    "new_reach": new})

    def as_json(self) -> dict[str, Any]:
        return {
            "window": {"since": self.since.isoformat() if self.since else None,
                       "until": self.until.isoformat() if self.until else None},
            "decisions": self.total, "agree": self.agree,
            "agreement_rate": round(self.agree / self.total, 4) if self.total else None,
            "estimated_cost_usd": {
                "active": round(self.active_cost_usd, 10),
                "shadow": round(self.shadow_cost_usd, 10),
                "delta": round(self.shadow_cost_usd - self.active_cost_usd, 10)},
            "outcomes": dict(sorted(self.outcomes.items())),
            "policy_versions": dict(self.versions),
            "model_mix": {"active": dict(self.mix_active.most_common()),
                          "shadow": dict(self.mix_shadow.most_common())},
            "surface_changed": self.surface_changed,
            "surface_changes": self.surface_changes,
        }

    def table(self) -> str:
        j = self.as_json()
        rate = "n/a" if j["agreement_rate"] is None else f"{j['agreement_rate']:.1%}"
        cost = j["estimated_cost_usd"]
        lines = [f"shadow decisions  {self.total}   agreement {rate}",
                 (f"estimated cost (USD)  active {cost['active']:.6f}  shadow "
                 f"{cost['shadow']:.6f}  delta {cost['delta']:+.6f}"),
                 "outcomes (active->shadow): " + ", ".join(
                     f"{k} {n}" for k, n in sorted(self.outcomes.items())),
                 f"compliance surface: {self.surface_changed} requests would reach new models"]
        lines += [f"  {c['tenant']}/{c['request_id']} ({c['data_class']}): "
                  f"{', '.join(c['new_reach'])}" for c in self.surface_changes[:20]]
        return "\n".join(lines)
