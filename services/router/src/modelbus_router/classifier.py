"""The classifier hook: for requests the rules cannot decide, a function labels the request
and the route's ``classifier.outcomes`` map the label to how it is served.

A classifier is a plain function ``(request, estimated_input_tokens) -> label``, registered
by name in :data:`CLASSIFIERS` (a deployment may register its own, e.g. a small model's
verdict computed upstream and passed in metadata). The built-in ``prompt_complexity`` sends
long or reasoning-heavy prompts to a ``complex`` tier and the rest to ``simple``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from modelbus_schemas import RequestEvent

Classifier = Callable[[RequestEvent, int], str]

_REASONING = re.compile(
    r"\b(prove|derive|step[- ]by[- ]step|analy[sz]e|compare|refactor|debug|architecture|"
    r"trade-?offs?|why)\b",
    re.IGNORECASE,
)
COMPLEX_TOKENS = 1_500


def prompt_complexity(request: RequestEvent, input_tokens: int) -> str:
    if input_tokens >= COMPLEX_TOKENS:
        return "complex"
    last_user = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
    return "complex" if _REASONING.search(last_user) else "simple"


def metadata_tier(request: RequestEvent, input_tokens: int) -> str:
    """The label an upstream system (or a classifier model in front of us) put in
    ``metadata['tier']``; ``default`` when absent."""
    return request.metadata.get("tier", "default")


CLASSIFIERS: dict[str, Classifier] = {
    "prompt_complexity": prompt_complexity,
    "metadata_tier": metadata_tier,
}


def register(name: str, classifier: Classifier) -> None:
    """Make a classifier available to policies (call before the policy is loaded)."""
    CLASSIFIERS[name] = classifier
