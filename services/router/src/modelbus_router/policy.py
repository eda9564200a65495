"""The routing policy: a declarative YAML file, validated at start, versioned by content hash.

Top level: ``catalog`` (models), ``data_classes`` (data class → allowed surfaces),
``templates``, ``routes`` (task → :class:`~modelbus_router.routes.Route`), ``budgets``,
``quotas``, ``guardrails`` (every route's default guardrails, see
:mod:`modelbus_router.guardrails.spec`) and ``reply_topics`` (tenant → the reply topics it
may use besides ``modelbus.responses.v1``; see :mod:`modelbus_router.replies`). A bad
policy refuses to load with an error naming
the field and the problem, including cross-references (a target naming a model missing from
the catalog, an unknown template, classifier or injection detector) and the safety
invariant that restricted data never reaches a hosted surface — for every model a route can
show a request to, judges and checks included (:mod:`modelbus_router.reachable`).

Shorthand kept from the walking skeleton: a route written ``{provider: p, model: m}`` is a
single-target route, and a target ``p/m`` not in the catalog gets an implicit catalog entry
with default limits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from modelbus_schemas import DataClass
from modelbus_schemas.topics import PROVIDERS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelbus_router import reachable
from modelbus_router.catalog import DEFAULT_SURFACES, CatalogModel, Surface
from modelbus_router.classifier import CLASSIFIERS
from modelbus_router.guardrails.injection import DETECTORS
from modelbus_router.guardrails.spec import GuardrailsSpec, effective
from modelbus_router.replies import ReplyTopicGrants
from modelbus_router.routes import Route
from modelbus_router.templates import Template

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the field and the problem."""


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Literal["tenant", "team"]
    name: str = Field(default="*", description="tenant or team name; '*' gives each its own")
    period: Literal["hour", "day", "month"] = "day"
    limit_usd: float = Field(ge=0)


class QuotaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str = Field(default="*", description="'*': each team gets its own quota")
    per: Literal["minute", "hour", "day"] = "minute"
    max_requests: int = Field(ge=0)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: dict[str, CatalogModel] = Field(default_factory=dict)
    data_classes: dict[DataClass, list[Surface]] = Field(
        default_factory=lambda: dict(DEFAULT_SURFACES)
    )
    templates: dict[str, Template] = Field(default_factory=dict)
    routes: dict[str, Route] = Field(min_length=1)
    budgets: list[BudgetSpec] = Field(default_factory=list)
    quotas: list[QuotaSpec] = Field(default_factory=list)
    guardrails: GuardrailsSpec = GuardrailsSpec()
    reply_topics: ReplyTopicGrants = Field(default_factory=dict)
    version: str = ""

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        if "hosted" in self.data_classes.get(DataClass.RESTRICTED, []):
            raise ValueError("data_classes.restricted: restricted data may not reach 'hosted'")
        for name, route in self.routes.items():
            if route.template is not None and route.template not in self.templates:
                raise ValueError(f"routes.{name}.template: unknown template {route.template!r}")
            if route.classifier and route.classifier.name not in CLASSIFIERS:
                raise ValueError(
                    f"routes.{name}.classifier.name: unknown classifier "
                    f"{route.classifier.name!r}; registered: {sorted(CLASSIFIERS)}"
                )
            detector = self.guardrails_for(route).input.injection.detector
            if detector not in DETECTORS:
                raise ValueError(f"routes.{name}.guardrails.input.injection.detector: unknown "
                                 f"detector {detector!r}; registered: {sorted(DETECTORS)}")
            for label, body in route.bodies():
                for model_id in body.model_ids():
                    if model_id not in self.catalog:
                        raise ValueError(
                            f"routes.{name} ({label}): unknown catalog model {model_id!r}"
                        )
        leaks = reachable.policy_violations(self)
        if leaks:
            raise ValueError("; ".join(leaks))
        return self

    def guardrails_for(self, route: Route) -> GuardrailsSpec:
        return effective(self.guardrails, route.guardrails)

    def surfaces_for(self, data_class: DataClass) -> list[Surface]:
        return self.data_classes.get(data_class, DEFAULT_SURFACES[data_class])


def _expand_shorthand(data: dict) -> dict:
    """``{provider, model}`` routes and ``provider/model`` targets → explicit catalog entries."""
    catalog = dict(data.get("catalog") or {})
    routes = data.get("routes")
    if isinstance(routes, dict):
        for name, route in list(routes.items()):
            if isinstance(route, dict) and "provider" in route:
                route = dict(route)
                provider, model = route.pop("provider"), route.pop("model", None)
                if model is None:
                    raise PolicyError(f"routes.{name}.model: required with provider")
                route["targets"] = [{"model": f"{provider}/{model}"}]
                routes[name] = route
        for ref in _target_refs(routes):
            provider, _, model = ref.partition("/")
            if ref not in catalog and provider in PROVIDERS and model:
                catalog[ref] = {"provider": provider, "model": model}
            elif ref not in catalog and model and provider not in PROVIDERS:
                raise PolicyError(
                    f"target {ref!r}: unknown provider {provider!r}; expected one of {PROVIDERS}"
                )
    return {**data, "catalog": catalog}


def _target_refs(routes: dict) -> set[str]:
    refs: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "model" and isinstance(value, str) and "/" in value:
                    refs.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(routes)
    return refs


def content_version(text: str) -> str:
    """The policy version: a hash of the file's content."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    version = content_version(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    try:
        return Policy.model_validate({**_expand_shorthand(data), "version": version})
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}".lstrip(": ")
            for err in exc.errors(include_url=False)
        ]
        raise PolicyError(f"{source}: " + "; ".join(problems)) from None


def load_policy(path: Path | str | None = None) -> Policy:
    file = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        text = file.read_text()
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read policy: {exc.strerror}") from None
    return parse_policy(text, str(file))
