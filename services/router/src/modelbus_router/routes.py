"""How a task is served: the route schema (strategy, targets, rules, classifier, limits).

A route's own strategy and targets are its catch-all. ``rules`` are tried first, in order,
each matching on request attributes (``when``); then the ``classifier`` hook, whose label
picks one of its ``outcomes``; then the catch-all. Every strategy shares one body schema
(:class:`ServeSpec`), so a rule or an outcome may use any strategy.

Every request has a deadline: the caller's ``latency_budget_ms``, else the route's
``deadline_ms``, else :data:`DEFAULT_DEADLINE_MS`.
"""

from __future__ import annotations

from typing import Literal

from modelbus_schemas import DataClass
from modelbus_schemas.plan import CheckSpec, EnsembleSpec, RetrySpec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelbus_router.guardrails.spec import GuardrailsSpec

#: A request's deadline when neither the caller (``latency_budget_ms``) nor its route
#: (``deadline_ms``) gives one: no request runs without a deadline.
DEFAULT_DEADLINE_MS = 120_000

Strategy = Literal["single", "fallback", "weighted", "latency", "cost", "ensemble", "cascade",
                   "chain"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    model: str = Field(min_length=1, description="a catalog id")
    weight: float = Field(default=1.0, gt=0, description="weighted strategy")
    retry: RetrySpec | None = None
    as_fallback: bool = Field(default=True, description="may serve as another's fallback")
    check: CheckSpec | None = Field(default=None, description="cascade: escalate unless it passes")


class StageSpec(_Strict):
    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    instruction: str = ""
    inputs: list[str] = Field(default_factory=lambda: ["request"])
    transform: Literal["none", "compress", "filter", "merge"] = "merge"
    token_budget: int | None = Field(default=None, ge=1)


class ServeSpec(_Strict):
    strategy: Strategy = "single"
    targets: list[TargetSpec] = Field(default_factory=list)
    stages: list[StageSpec] = Field(default_factory=list, description="chain")
    fallback_on: list[int] | None = None
    with_fallbacks: bool | None = Field(
        default=None, description="other eligible targets become fallbacks (default: fallback)"
    )
    sticky_ttl_s: int | None = Field(default=3600, ge=1, description="weighted; None: no stick")
    latency_metric: Literal["latency_ms", "ms_per_output_token"] = "latency_ms"
    hysteresis: float = Field(default=1.2, ge=1.0)
    min_samples: int = Field(default=3, ge=1)
    ensemble: EnsembleSpec | None = None
    ensemble_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _has_targets(self) -> ServeSpec:
        if self.strategy == "chain":
            if not self.stages:
                raise ValueError("stages: a chain needs at least one stage")
        elif not self.targets:
            raise ValueError(f"targets: strategy {self.strategy!r} needs at least one target")
        return self

    @property
    def fallbacks_enabled(self) -> bool:
        return self.strategy == "fallback" if self.with_fallbacks is None else self.with_fallbacks

    def model_ids(self) -> list[str]:
        ids = [t.model for t in self.targets] + [s.model for s in self.stages]
        return list(dict.fromkeys(ids))


class When(_Strict):
    """Conditions of a rule; all given ones must hold. ``"*"`` in ``region`` matches any."""

    data_class: list[DataClass] | None = None
    region: list[str] | None = None
    tenants: list[str] | None = None
    teams: list[str] | None = None
    metadata: dict[str, str] | None = None
    min_input_tokens: int | None = Field(default=None, ge=0)
    max_input_tokens: int | None = Field(default=None, ge=0)


class Rule(ServeSpec):
    name: str = Field(min_length=1)
    when: When = When()


class ClassifierSpec(_Strict):
    name: str = Field(min_length=1, description="a registered classifier")
    outcomes: dict[str, ServeSpec] = Field(min_length=1)


class Access(_Strict):
    tenants: list[str] | None = None
    teams: list[str] | None = None


class CacheSpec(_Strict):
    ttl_s: int = Field(default=300, ge=1)


class Route(ServeSpec):
    rules: list[Rule] = Field(default_factory=list)
    classifier: ClassifierSpec | None = None
    template: str | None = None
    cache: CacheSpec | None = None
    allow: Access | None = None
    deadline_ms: int | None = Field(
        default=None, ge=100, le=600_000,
        description=f"the deadline of requests that set no latency_budget_ms "
                    f"(None: {DEFAULT_DEADLINE_MS} ms)",
    )
    expected_output_tokens: int = Field(
        default=512, ge=1, description="output assumed for budgets when max_tokens is unset"
    )
    guardrails: GuardrailsSpec | None = Field(
        default=None, description="overrides the policy's guardrails, guard by guard"
    )

    def deadline_for(self, latency_budget_ms: int | None) -> int:
        """The deadline, in ms from receipt, of a request with this caller budget."""
        return latency_budget_ms or self.deadline_ms or DEFAULT_DEADLINE_MS

    def bodies(self) -> list[tuple[str, ServeSpec]]:
        """Every way this route can serve, with the label its decision would record."""
        out: list[tuple[str, ServeSpec]] = [(f"rule:{r.name}", r) for r in self.rules]
        if self.classifier:
            out += [(f"classifier:{self.classifier.name}={label}", body)
                    for label, body in self.classifier.outcomes.items()]
        return out + [("default", self)]
