"""Scripted behaviour: the validated script models and the per-model runtime state.

Owns `Failure`, `Behaviour`, `SimScript` (pydantic, validated once when a script is
loaded or an admin PUT arrives), `load_script`/`parse_script`/`parse_behaviour` (which
turn validation errors into a `ScriptError` naming the offending field), and `SimState`,
the mutable per-process state: current behaviours, fail-first counters, seeded RNGs and
the call statistics served by `GET /_sim/stats`.  The hot path (`SimState.plan`) does
only dict lookups and a couple of RNG draws -- no pydantic work per request.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .rules import RULES

FailureKind = Literal["status", "hang", "malformed", "truncate"]
# Headers whose values identify a logical request across retries (counted in stats).
REQUEST_KEY_HEADERS = ("idempotency-key", "x-idempotency-key", "x-request-id")
MAX_REQUEST_KEYS = 200_000  # bound memory under long benchmarks; extra keys are only counted


class ScriptError(ValueError):
    """A simulator script or behaviour failed validation; the message names the field."""


class Failure(BaseModel):
    """How a failing call fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FailureKind = "status"
    status: int = 500
    retry_after_s: float | None = Field(default=None, ge=0)
    message: str | None = None
    hang_s: float = Field(default=3600.0, gt=0)

    @field_validator("status")
    @classmethod
    def _status_is_error(cls, v: int) -> int:
        if not 400 <= v <= 599:
            raise ValueError("must be an HTTP error status between 400 and 599")
        return v


class Behaviour(BaseModel):
    """Scripted behaviour of one model (or of the `default` entry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)
    jitter_dist: Literal["uniform", "normal", "exponential"] = "uniform"
    ttft_ms: float | None = Field(default=None, ge=0)
    chunk_delay_ms: float = Field(default=0.0, ge=0)
    reply: str | None = None
    fail_first: int = Field(default=0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    failure: Failure = Failure()
    seed: int | None = None
    vision: bool = True  # False: image inputs are refused like a text-only model
    embedding_dim: int | None = Field(default=None, ge=1, le=65536)  # default dimension
    # JSON outputs: send the scripted `reply` as it is, even when it is not JSON valid for the
    # requested schema (a model breaking its output format); default: generate valid JSON
    break_schema: bool = False


class SimScript(BaseModel):
    """A whole script: per-model behaviours plus the default for unlisted models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    default: Behaviour = Behaviour()
    models: dict[str, Behaviour] = {}
    rules: dict[str, bool] = {}  # switch request rules on/off (ids: `rules.RULES`)

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, v: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(v) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; known: {sorted(RULES)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_inside_models(cls, data: Any) -> Any:
        # Accept `models: {default: ...}` as an alias for the top-level `default`.
        models = data.get("models") if isinstance(data, Mapping) else None
        if isinstance(models, Mapping) and "default" in models:
            if "default" in data:
                raise ValueError("`default` given both at top level and under `models`")
            models = dict(models)
            data = {**data, "default": models.pop("default"), "models": models}
        return data


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"{field}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(lines)


def parse_script(data: Any, source: str = "script") -> SimScript:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ScriptError(f"invalid simulator {source}: top level must be a mapping")
    try:
        return SimScript.model_validate(data)
    except ValidationError as exc:
        raise ScriptError(f"invalid simulator {source}: {_format_errors(exc)}") from None


def load_script(path: str | Path) -> SimScript:
    """Load and validate a YAML script file; raises `ScriptError` naming the bad field."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ScriptError(f"invalid simulator script {path}: not valid YAML: {exc}") from None
    return parse_script(data, source=f"script {path}")


def parse_behaviour(data: Any, model: str = "?") -> Behaviour:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ScriptError(f"invalid behaviour for model {model!r}: must be a JSON object")
    try:
        return Behaviour.model_validate(data)
    except ValidationError as exc:
        raise ScriptError(f"invalid behaviour for model {model!r}: {_format_errors(exc)}") from None


@dataclass(slots=True)
class Plan:
    """What to do with one call: decided once, up front."""

    model: str
    behaviour: Behaviour
    failure: Failure | None
    delay_s: float  # whole-response latency (non-stream)
    ttft_s: float  # time to first chunk (stream)
    chunk_delay_s: float


class _ModelState:
    __slots__ = ("calls", "rng")

    def __init__(self, seed: int) -> None:
        self.calls = 0
        self.rng = random.Random(seed)


def _outcome(failure: Failure | None) -> str:
    if failure is None:
        return "ok"
    if failure.kind == "status":
        return f"status_{failure.status}"
    return failure.kind


class SimState:
    """Mutable simulator state; used only from the server's event loop."""

    def __init__(self, script: SimScript | None = None) -> None:
        self.initial = script or SimScript()
        self.release = asyncio.Event()  # set on shutdown: ends every `hang` in flight
        self.in_flight = 0  # provider calls received and not yet answered (a live gauge)
        self.reset()

    # -- script management -------------------------------------------------
    def reset(self, script: SimScript | None = None) -> None:
        """Restore behaviours to `script` (default: the startup script) and zero counters."""
        if script is not None:
            self.initial = script
        self.seed = self.initial.seed
        self.default = self.initial.default
        self.behaviours: dict[str, Behaviour] = dict(self.initial.models)
        self._models: dict[str, _ModelState] = {}
        self._jitter_rng = random.Random(self.seed)
        self.calls: dict[str, dict[str, int]] = {}
        self.request_keys: dict[str, int] = {}
        self.request_keys_dropped = 0
        self.rejected: dict[str, int] = {}
        self.refused_by_rule: dict[str, int] = {}
        self.rules = {r.id: r.default for r in RULES.values()} | dict(self.initial.rules)
        self.embeddings: dict[str, dict[str, int]] = {}  # model -> calls, inputs

    def set_behaviour(self, model: str, behaviour: Behaviour) -> None:
        if model == "default":
            self.default = behaviour
            for name in [m for m in self._models if m not in self.behaviours]:
                del self._models[name]
        else:
            self.behaviours[model] = behaviour
            self._models.pop(model, None)

    def delete_behaviour(self, model: str) -> bool:
        if model == "default":
            self.set_behaviour("default", Behaviour())
            return True
        self._models.pop(model, None)
        return self.behaviours.pop(model, None) is not None

    def script_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "default": self.default.model_dump(),
            "models": {m: b.model_dump() for m, b in self.behaviours.items()},
            "rules": dict(self.rules),
        }

    def set_rules(self, switches: Mapping[str, bool]) -> None:
        """Switch rules on/off until the next reset (ids already validated)."""
        self.rules.update(switches)

    def rule_on(self, rule: str) -> bool:
        return self.rules.get(rule, True)

    def count_embeddings(self, model: str, inputs: int) -> None:
        entry = self.embeddings.setdefault(model, {"calls": 0, "inputs": 0})
        entry["calls"] += 1
        entry["inputs"] += inputs

    # -- hot path ----------------------------------------------------------
    def behaviour_for(self, model: str) -> Behaviour:
        return self.behaviours.get(model) or self.default

    def plan(self, model: str, headers: Mapping[str, str]) -> Plan:
        b = self.behaviours.get(model) or self.default
        st = self._models.get(model)
        if st is None:
            seed = b.seed if b.seed is not None else self.seed ^ zlib.crc32(model.encode())
            st = self._models[model] = _ModelState(seed)
        st.calls += 1
        failing = st.calls <= b.fail_first or (
            b.failure_rate > 0 and st.rng.random() < b.failure_rate
        )
        failure = b.failure if failing else None
        jitter = self._jitter(b) if b.jitter_ms else 0.0
        ttft = b.latency_ms if b.ttft_ms is None else b.ttft_ms
        # stats
        outcome = _outcome(failure)
        per_model = self.calls.get(model)
        if per_model is None:
            per_model = self.calls[model] = {}
        per_model[outcome] = per_model.get(outcome, 0) + 1
        for h in REQUEST_KEY_HEADERS:
            key = headers.get(h)
            if key:
                seen = self.request_keys.get(key)
                if seen is not None or len(self.request_keys) < MAX_REQUEST_KEYS:
                    self.request_keys[key] = (seen or 0) + 1
                else:
                    self.request_keys_dropped += 1
                break
        return Plan(
            model=model,
            behaviour=b,
            failure=failure,
            delay_s=max(0.0, b.latency_ms + jitter) / 1000.0,
            ttft_s=max(0.0, ttft + jitter) / 1000.0,
            chunk_delay_s=b.chunk_delay_ms / 1000.0,
        )

    def _jitter(self, b: Behaviour) -> float:
        rng = self._jitter_rng
        if b.jitter_dist == "uniform":
            return rng.uniform(-b.jitter_ms, b.jitter_ms)
        if b.jitter_dist == "normal":
            return rng.gauss(0.0, b.jitter_ms)
        return rng.expovariate(1.0 / b.jitter_ms)

    def reject(self, reason: str, rule: str | None = None) -> None:
        """Count a refused request, and the request rule that refused it if any."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if rule is not None:
            self.refused_by_rule[rule] = self.refused_by_rule.get(rule, 0) + 1

    def stats_json(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        totals: dict[str, int] = {}
        for model, outcomes in self.calls.items():
            models[model] = {"calls": sum(outcomes.values()), "outcomes": dict(outcomes)}
            for k, v in outcomes.items():
                totals[k] = totals.get(k, 0) + v
        return {
            "total_calls": sum(totals.values()),
            "in_flight": self.in_flight,
            "outcomes": totals,
            "models": models,
            "request_keys": dict(self.request_keys),
            "duplicate_request_keys": sum(1 for v in self.request_keys.values() if v > 1),
            "request_keys_dropped": self.request_keys_dropped,
            "rejected": dict(self.rejected),
            "refused_by_rule": dict(self.refused_by_rule),
            "embeddings": {m: dict(v) for m, v in self.embeddings.items()},
        }
