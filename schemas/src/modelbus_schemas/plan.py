"""The execution plan the router chooses and the workers and aggregator carry out.

A plan travels on every task and result, so each service acts on the event alone and a
replay of the log reproduces every decision:

* ``single`` / ``fallback`` — one target; on exhaustion the worker forwards the task to the
  next of ``TaskEvent.fallbacks`` (same part id) with the attempt history;
* ``ensemble`` — N parts in parallel, fanned in by :class:`EnsembleSpec`;
* ``cascade`` — tier ``step`` first; the aggregator runs the tier's check and escalates;
* ``chain`` — stage ``step``; the aggregator builds the next stage's input from outputs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelbus_schemas.common import Contract

RETRYABLE_STATUS_DEFAULT = [408, 409, 429, 500, 502, 503, 504, 529]


class RetrySpec(Contract):
    """Per-target retry policy, applied by the worker around the adapter."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_ms: int = Field(default=200, ge=0, le=60_000)
    max_delay_ms: int = Field(default=5_000, ge=0, le=300_000)
    retry_on: list[int] = Field(default_factory=lambda: list(RETRYABLE_STATUS_DEFAULT))
    attempt_timeout_ms: int = Field(default=30_000, ge=100, le=600_000)


class Target(Contract):
    provider: str
    model: str
    retry: RetrySpec | None = None

    def ref(self) -> str:
        return f"{self.provider}/{self.model}"


class CheckSpec(Contract):
    """A check on an output: cascade escalation, best-by-score validation, output guards."""

    kind: Literal["json_schema", "regex", "min_confidence", "min_length", "judge"]
    pattern: str | None = None
    json_schema: dict[str, Any] | None = None
    threshold: float | None = None
    min_chars: int | None = None
    judge: Target | None = None
    judge_prompt: str | None = None


class EnsembleSpec(Contract):
    strategy: Literal["first_success", "majority", "all", "best_score", "judge"] = "first_success"
    quorum: int | None = Field(default=None, ge=1, description="respond when k parts arrived")
    deadline_ms: int | None = Field(default=None, ge=1, description="respond partial after")
    judge: Target | None = None
    score: CheckSpec | None = None


class CascadeTier(Contract):
    target: Target
    check: CheckSpec | None = Field(default=None, description="None on the last tier")


class ChainStage(Contract):
    name: str
    target: Target
    instruction: str = ""
    inputs: list[str] = Field(default_factory=lambda: ["request"])
    transform: Literal["none", "compress", "filter", "merge"] = "merge"
    token_budget: int | None = Field(default=None, ge=1)


class ExecutionPlan(Contract):
    mode: Literal["single", "fallback", "ensemble", "cascade", "chain"] = "single"
    ensemble: EnsembleSpec | None = None
    cascade: list[CascadeTier] | None = None
    chain: list[ChainStage] | None = None
    step: int = Field(default=0, ge=0, description="cascade tier or chain stage of this task")
    stream: bool = Field(
        default=False, description="the request asked for streaming and its route may stream: "
        "the task whose answer is final carries stream (single, fallback: the task; chain: "
        "the last stage; never a cascade or ensemble part)")
    guard_record: bool | None = Field(
        default=None,
        description="whether the router stored a guardrail record (output checks, input "
                    "findings, placeholders) for the aggregator; None: unknown, look it up")


class BudgetHold(Contract):
    """A reservation made by the router before dispatch, settled with the actual cost after."""

    hold_id: str
    scope: str
    reserved_usd: float = Field(ge=0)
