"""Which way of serving applies to a request: rules first, then the classifier, then the
route's catch-all. Returns the label recorded as the decision's ``matched_rule``."""

from __future__ import annotations

from modelbus_schemas import RequestEvent

from modelbus_router.catalog import ANY_REGION
from modelbus_router.classifier import CLASSIFIERS
from modelbus_router.routes import Route, ServeSpec, When


def matches(when: When, request: RequestEvent, input_tokens: int) -> bool:
    if when.data_class is not None and request.data_class not in when.data_class:
        return False
    if (when.region is not None and ANY_REGION not in when.region
            and request.region not in when.region):
        return False
    if when.tenants is not None and request.caller.tenant not in when.tenants:
        return False
    if when.teams is not None and request.caller.team not in when.teams:
        return False
    if when.metadata is not None:
        for key, value in when.metadata.items():
            if request.metadata.get(key) != value and not (value == "*" and key in request.metadata):
                return False
    if when.min_input_tokens is not None and input_tokens < when.min_input_tokens:
        return False
    return not (when.max_input_tokens is not None and input_tokens > when.max_input_tokens)


def select(route: Route, request: RequestEvent, input_tokens: int) -> tuple[str, ServeSpec]:
    for rule in route.rules:
        if matches(rule.when, request, input_tokens):
            return f"rule:{rule.name}", rule
    if route.classifier is not None:
        label = CLASSIFIERS[route.classifier.name](request, input_tokens)
        body = route.classifier.outcomes.get(label)
        if body is not None:
            return f"classifier:{route.classifier.name}={label}", body
    return "default", route
