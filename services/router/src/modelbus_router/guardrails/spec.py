"""The guardrail section of the routing policy: what each route screens, how, and when a
human must approve.

A guard's ``mode`` says what it does when it fires: ``validate`` denies (input: a
``guardrail_denied`` error; output: ``output_invalid``), ``mutate`` rewrites (redacts, marks
context untrusted), ``flag`` only records a finding, ``off`` disables it. The policy's
top-level ``guardrails`` are every route's defaults; a route's own ``guardrails`` replace
them guard by guard (a route that sets ``input.pii`` keeps the default ``input.secrets``).

Defaults (no ``guardrails`` anywhere): personal data is redacted before any hosted model,
irreversibly; secrets in a prompt are denied; prompt injection is flagged; no size limit,
no output guard, no approval.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from modelbus_runtime.pii import KINDS as PII_KINDS
from modelbus_schemas import DataClass
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Mode = Literal["validate", "mutate", "flag", "off"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_kinds(kinds: list[str]) -> list[str]:
    unknown = sorted(set(kinds) - set(PII_KINDS))
    if unknown:
        raise ValueError(f"unknown personal-data kinds {unknown}; known: {list(PII_KINDS)}")
    return kinds


class PiiGuard(_Strict):
    """Personal data in the prompt. ``allow``: kinds the route may send to hosted models as
    they are; ``restore``: the caller gets the placeholders replaced back in the response;
    ``scope: all`` redacts for self-hosted models too."""

    mode: Mode = "mutate"
    kinds: list[str] = Field(default_factory=lambda: list(PII_KINDS))
    allow: list[str] = Field(default_factory=list)
    restore: bool = False
    scope: Literal["hosted", "all"] = "hosted"

    _kinds = field_validator("kinds", "allow")(_known_kinds)


class SecretsGuard(_Strict):
    mode: Mode = "validate"


class InjectionGuard(_Strict):
    """``mutate`` marks context blocks that carry an injection as untrusted (the worker
    renders those as data, never instructions) and flags injections in messages."""

    mode: Mode = "flag"
    detector: str = "rules"


class SizeGuard(_Strict):
    max_chars: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)


class InputGuards(_Strict):
    size: SizeGuard = SizeGuard()
    secrets: SecretsGuard = SecretsGuard()
    injection: InjectionGuard = InjectionGuard()
    pii: PiiGuard = PiiGuard()


class JsonSchemaGuard(_Strict):
    """The output must be JSON matching ``json_schema``. On a single/fallback route a bad
    output is sent back to the model up to ``repairs`` times; a cascade escalates to its
    next tier; what still fails is never returned as valid."""

    mode: Mode = "validate"
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")
    repairs: int = Field(default=1, ge=0, le=3)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


class RegexGuard(_Strict):
    """``require: true`` — the output must match; else it must not (mutate: matches are
    replaced by ``[REDACTED]``)."""

    name: str = Field(min_length=1, max_length=64)
    pattern: str
    require: bool = False
    mode: Mode = "validate"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex: {exc}") from None
        return value


class DenyListGuard(_Strict):
    mode: Mode = "validate"
    terms: list[str] = Field(min_length=1)


class OutputPiiGuard(_Strict):
    mode: Mode = "mutate"
    kinds: list[str] = Field(default_factory=lambda: list(PII_KINDS))

    _kinds = field_validator("kinds")(_known_kinds)


class OutputGuards(_Strict):
    json_schema: JsonSchemaGuard | None = None
    regex: list[RegexGuard] = Field(default_factory=list)
    deny_list: DenyListGuard | None = None
    pii: OutputPiiGuard | None = None

    def active(self) -> bool:
        guards = [self.json_schema, self.deny_list, self.pii, *self.regex]
        return any(g is not None and g.mode != "off" for g in guards)


class ApprovalSpec(_Strict):
    """A request needs a human's approval when any given condition holds."""

    data_classes: list[DataClass] | None = None
    min_estimated_cost_usd: float | None = Field(default=None, ge=0)
    metadata: dict[str, str] | None = Field(
        default=None, description="key → value ('*': any value) that asks for approval"
    )
    ttl_s: int = Field(default=86_400, ge=60, description="how long a request stays parked")

    @model_validator(mode="after")
    def _has_condition(self) -> ApprovalSpec:
        if not (self.data_classes or self.min_estimated_cost_usd is not None or self.metadata):
            raise ValueError("approval needs data_classes, min_estimated_cost_usd or metadata")
        return self


class GuardrailsSpec(_Strict):
    input: InputGuards = InputGuards()
    output: OutputGuards = OutputGuards()
    approval: ApprovalSpec | None = None


def effective(default: GuardrailsSpec, route: GuardrailsSpec | None) -> GuardrailsSpec:
    """The route's guardrails over the policy's defaults, guard by guard."""
    if route is None:
        return default

    def merge(base: BaseModel, over: BaseModel) -> BaseModel:
        return base.model_copy(update={f: getattr(over, f) for f in over.model_fields_set})

    approval = route.approval if "approval" in route.model_fields_set else default.approval
    return GuardrailsSpec(
        input=merge(default.input, route.input),
        output=merge(default.output, route.output),
        approval=approval,
    )
