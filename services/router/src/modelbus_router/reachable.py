"""Every model a request's content can reach, and the governance constraints on each of them.

The data-class, region and tenant/team constraints are about *who sees the request*, and a
request is seen by more than the targets a strategy orders: the worker forwards it to the
task's fallbacks, the aggregator sends the prompt and the candidates to an ensemble judge
(and a ``best_score`` judge), the prompt and one answer to a cascade tier's check judge,
the next cascade tiers, every chain stage, and an output sent back for repair to the model
that wrote it (already a target). A registered classifier that calls a model declares it
in a ``reaches`` attribute (catalog ids); the built-in classifiers call none.

This module owns one answer to "which models" and one answer to "may this one see it":

* :func:`governance_reason` — the data class (the policy's surfaces table and the model's
  own allowlist), region and tenant/team (the model's ``allow``) checks, used for targets by
  :mod:`modelbus_router.constraints` and for everything else here;
* :func:`route_reach` / :func:`spec_reach` / :func:`plan_reach` — what a route (by way of
  serving), a serving spec of the policy, or a built plan (its tasks), can reach, each
  element with its role (``ensemble judge``, …);
* :func:`check_plan` — at routing time: a plan that would put the request before a model its
  data class, region or caller forbids is refused with ``no_eligible_model`` and the reasons
  (nothing optional is dropped silently: a judge is part of the answer the caller asked for);
* :func:`policy_violations` — at policy load: for each route, each way of serving and each
  kind of request that can reach it (data class, region, tenant, team) and that its targets
  accept, every judge and check it can reach must accept the request too; otherwise the
  policy is refused with a message naming the route and the model.

Knows nothing of Kafka or Redis, and does not import the policy module (which calls it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelbus_schemas import DataClass, ErrorCode, RequestEvent, TaskEvent
from modelbus_schemas.plan import CheckSpec, EnsembleSpec, Target
from modelbus_schemas.topics import PROVIDERS

from modelbus_router.catalog import ANY_REGION, CatalogModel
from modelbus_router.classifier import CLASSIFIERS
from modelbus_router.errors import RoutingError
from modelbus_router.routes import Route, ServeSpec, When

if TYPE_CHECKING:
    from modelbus_router.policy import Policy

OTHER_REGION = "(a region no model lists)"
OTHER_TENANT = "(a tenant no rule names)"
OTHER_TEAM = "(a team no rule names)"


@dataclass(frozen=True)
class Reach:
    """One model the request's content can reach, and in which role."""

    role: str  # target, fallback, ensemble judge, cascade check judge (tier 0), chain stage …
    provider: str
    model: str

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Profile:
    """The request attributes the governance constraints read."""

    data_class: DataClass
    region: str | None
    tenant: str
    team: str | None

    @classmethod
    def of(cls, request: RequestEvent) -> Profile:
        return cls(request.data_class, request.region, request.caller.tenant, request.caller.team)


def catalog_entry(catalog: dict[str, CatalogModel], provider: str, model: str) -> CatalogModel | None:
    """The catalog entry serving ``provider/model`` (a judge is named by provider and model,
    not by catalog id); an implicit default entry when the catalog has none; None for a
    provider modelbus does not know (which no constraint can vouch for)."""
    for entry in catalog.values():
        if entry.provider == provider and entry.model == model:
            return entry
    if provider not in PROVIDERS:
        return None
    return CatalogModel(provider=provider, model=model)


def governance_reason(policy: Policy, model: CatalogModel | None, who: Profile) -> str | None:
    """Why ``model`` may not see a request of this profile, or None when it may."""
    if model is None:
        return "provider: not a known provider, so no constraint can allow it"
    data_class = who.data_class
    if model.surface not in policy.surfaces_for(data_class):
        return f"data_class: {data_class.value} data may not reach a {model.surface} model"
    if model.data_classes is not None and data_class not in model.data_classes:
        return f"data_class: the model does not accept {data_class.value} data"
    if not model.serves_region(who.region):
        return f"region: {who.region} not among {model.regions}"
    allow = getattr(model, "allow", None)
    if allow is not None:
        if allow.tenants is not None and who.tenant not in allow.tenants:
            return f"tenant: {who.tenant!r} may not use the model"
        if allow.teams is not None and who.team not in allow.teams:
            return f"team: {who.team!r} may not use the model"
    return None


# --- what a spec or a plan can reach --------------------------------------------------------

def _check_judges(check: CheckSpec | None) -> Iterator[Target]:
    if check is not None and check.judge is not None:
        yield check.judge


def _ensemble_reach(ensemble: EnsembleSpec | None) -> Iterator[Reach]:
    if ensemble is None:
        return
    if ensemble.judge is not None:
        yield Reach("ensemble judge", ensemble.judge.provider, ensemble.judge.model)
    for judge in _check_judges(ensemble.score):
        yield Reach("ensemble score judge", judge.provider, judge.model)


def spec_reach(catalog: dict[str, CatalogModel], spec: ServeSpec,
               targets: Iterable[str] | None = None) -> list[Reach]:
    """What a serving spec can reach when ``targets`` (catalog ids; default: all) are the
    targets that may serve: those targets, their cascade check judges, every chain stage
    and the ensemble's judges."""
    allowed = set(spec.model_ids() if targets is None else targets)
    out: list[Reach] = []
    for target in spec.targets:
        if target.model not in allowed:
            continue
        model = catalog[target.model]
        out.append(Reach("target", model.provider, model.model))
        for judge in _check_judges(target.check):
            out.append(Reach(f"check judge of {target.model}", judge.provider, judge.model))
    for stage in spec.stages:
        model = catalog[stage.model]
        out.append(Reach(f"chain stage {stage.name}", model.provider, model.model))
    out += _ensemble_reach(spec.ensemble)
    return list(dict.fromkeys(out))


def classifier_reach(catalog: dict[str, CatalogModel], route: Route) -> list[Reach]:
    """Models a route's classifier calls (declared by the classifier as ``reaches``)."""
    if route.classifier is None:
        return []
    classifier = CLASSIFIERS.get(route.classifier.name)
    out = []
    for model_id in getattr(classifier, "reaches", ()):
        model = catalog.get(model_id)
        provider, _, name = model_id.partition("/")
        out.append(Reach(f"classifier {route.classifier.name}",
                         model.provider if model else provider,
                         model.model if model else name or model_id))
    return out


def route_reach(policy: Policy, route: Route) -> dict[str, list[Reach]]:
    """Every model a request's content can reach on a route, by way of serving (the label
    its decision records): the spec's targets, judges and stages, plus the models the
    route's classifier calls on every way the classifier can lead to."""
    extra = classifier_reach(policy.catalog, route)
    return {label: list(dict.fromkeys([*spec_reach(policy.catalog, spec),
                                       *(extra if not label.startswith("rule:") else [])]))
            for label, spec in route.bodies()}


def plan_reach(tasks: Iterable[TaskEvent]) -> list[Reach]:
    """Every model the tasks of a plan can put the request before: each part, its fallbacks,
    the plan's ensemble judges, every cascade tier and its check judge, every chain stage."""
    out: list[Reach] = []
    for task in tasks:
        out.append(Reach("target", task.provider, task.model))
        out += [Reach("fallback", t.provider, t.model) for t in task.fallbacks]
        plan = task.plan
        out += _ensemble_reach(plan.ensemble)
        for tier, step in enumerate(plan.cascade or []):
            out.append(Reach(f"cascade tier {tier}", step.target.provider, step.target.model))
            for judge in _check_judges(step.check):
                out.append(Reach(f"cascade check judge (tier {tier})", judge.provider,
                                 judge.model))
        for stage in plan.chain or []:
            out.append(Reach(f"chain stage {stage.name}", stage.target.provider,
                             stage.target.model))
    return list(dict.fromkeys(out))


# --- routing time ----------------------------------------------------------------------------

def forbidden(policy: Policy, request: RequestEvent, tasks: Iterable[TaskEvent],
              extra: Iterable[Reach] = ()) -> list[tuple[Reach, str]]:
    who = Profile.of(request)
    out = []
    for reach in [*plan_reach(tasks), *extra]:
        reason = governance_reason(policy, catalog_entry(policy.catalog, reach.provider,
                                                         reach.model), who)
        if reason is not None:
            out.append((reach, reason))
    return out


def check_plan(policy: Policy, request: RequestEvent, tasks: list[TaskEvent],
               extra: Iterable[Reach] = ()) -> None:
    """Refuse (``no_eligible_model``) a plan that would show the request to a model its
    data class, region, tenant or team forbids."""
    found = forbidden(policy, request, tasks, extra)
    if found:
        reasons = "; ".join(f"{r.ref} ({r.role}): {why}" for r, why in found)
        raise RoutingError(
            ErrorCode.NO_ELIGIBLE_MODEL,
            f"no eligible model for task {request.task!r}: the plan would send the request "
            f"to models it may not reach: {reasons}")


# --- policy load -----------------------------------------------------------------------------

def _representatives(lists: list[list[str]], fixed: list, other: str) -> list:
    """One value per class of values no list tells apart (same membership in every list),
    plus ``fixed`` ones and one value that no list names."""
    seen: dict[tuple[bool, ...], str] = {}
    for value in sorted({v for values in lists for v in values}):
        seen.setdefault(tuple(value in values for values in lists), value)
    return [*fixed, *seen.values(), other]


def _domain(policy: Policy, route: Route) -> tuple[list, list, list]:
    """Regions, tenants and teams worth telling apart on a route: one of each kind the
    catalog, the route's access list and its rules treat alike, plus one none of them names
    (so the check stays small however many tenants a policy lists)."""
    regions = [[r for r in m.regions if r != ANY_REGION] for m in policy.catalog.values()]
    regions += [[r for r in rule.when.region or () if r != ANY_REGION] for rule in route.rules]
    accesses = [getattr(m, "allow", None) for m in policy.catalog.values()] + [route.allow]
    accesses = [a for a in accesses if a is not None]
    tenants = [list(a.tenants or ()) for a in accesses]
    tenants += [list(rule.when.tenants or ()) for rule in route.rules]
    teams = [list(a.teams or ()) for a in accesses]
    teams += [list(rule.when.teams or ()) for rule in route.rules]
    return (_representatives(regions, [None], OTHER_REGION),
            _representatives(tenants, [], OTHER_TENANT),
            _representatives(teams, [None], OTHER_TEAM))


def _may_match(when: When, who: Profile) -> bool:
    """Whether a rule can match a request of this profile (other conditions aside)."""
    return ((when.data_class is None or who.data_class in when.data_class)
            and (when.region is None or ANY_REGION in when.region or who.region in when.region)
            and (when.tenants is None or who.tenant in when.tenants)
            and (when.teams is None or who.team in when.teams))


def _always_matches(when: When, who: Profile) -> bool:
    """Whether a rule surely takes every request of this profile (no metadata or size test)."""
    return (_may_match(when, who) and when.metadata is None
            and when.min_input_tokens is None and when.max_input_tokens is None)


def _bodies_for(route: Route, who: Profile) -> Iterator[tuple[str, ServeSpec]]:
    """The ways of serving a request of this profile may get on this route."""
    for rule in route.rules:
        if _may_match(rule.when, who):
            yield f"rule:{rule.name}", rule
            if _always_matches(rule.when, who):
                return
    if route.classifier is not None:
        for label, body in route.classifier.outcomes.items():
            yield f"classifier:{route.classifier.name}={label}", body
    yield "default", route


def _allowed_on_route(route: Route, who: Profile) -> bool:
    allow = route.allow
    return allow is None or ((allow.tenants is None or who.tenant in allow.tenants)
                             and (allow.teams is None or who.team in allow.teams))


def _profiles(policy: Policy, route: Route) -> Iterator[Profile]:
    regions, tenants, teams = _domain(policy, route)
    for data_class in DataClass:
        for region in regions:
            for tenant in tenants:
                for team in teams:
                    yield Profile(data_class, region, tenant, team)


def policy_violations(policy: Policy, limit: int = 5) -> list[str]:
    """Routes whose judges, checks or classifiers could see a request their own targets
    accept but they may not (at most ``limit`` messages, each naming the route, the way of
    serving, the model and every distinct reason)."""
    # tenant and team change a model's verdict only when some model has an access list;
    # otherwise they only choose the way of serving, so each way is checked once per
    # (data class, region) that can reach it
    by_caller = any(getattr(m, "allow", None) is not None for m in policy.catalog.values())
    problems: dict[tuple[str, str, str], tuple[Reach, list[str]]] = {}
    for name, route in policy.routes.items():
        extra = classifier_reach(policy.catalog, route)
        todo: dict[tuple[Profile, str], ServeSpec] = {}
        for who in _profiles(policy, route):
            if _allowed_on_route(route, who):
                key = who if by_caller else Profile(who.data_class, who.region, "", None)
                for label, spec in _bodies_for(route, who):
                    todo.setdefault((key, label), spec)
        for (who, label), spec in todo.items():
            accepting = [m for m in spec.model_ids()
                         if governance_reason(policy, policy.catalog[m], who) is None]
            if not accepting or (spec.strategy == "chain"
                                 and len(accepting) < len(spec.model_ids())):
                continue  # refused at routing time: no_eligible_model, nothing leaks
            classified = extra if not label.startswith("rule:") else []
            for reach in [*spec_reach(policy.catalog, spec, accepting), *classified]:
                reason = governance_reason(
                    policy, catalog_entry(policy.catalog, reach.provider, reach.model), who)
                if reason is not None:
                    _, reasons = problems.setdefault((name, label, reach.ref), (reach, []))
                    if reason not in reasons:
                        reasons.append(reason)
    out = []
    for (name, label, _), (reach, reasons) in list(problems.items())[:limit]:
        reasons.sort(key=lambda r: not r.startswith("data_class"))  # the gravest first
        out.append(f"routes.{name} ({label}): the {reach.role} {reach.ref} would see requests "
                   f"the route's targets accept but may not: {'; '.join(reasons[:3])}")
    return out
