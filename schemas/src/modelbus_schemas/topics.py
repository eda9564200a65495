"""Topic names, defined once for every service, test and manifest.

Every event of one request is keyed by its request id, so all of them stay ordered on
one partition of each topic. Every source topic has a dead-letter twin, ``<topic>.dlq``.
"""

from __future__ import annotations

REQUESTS = "modelbus.requests.v1"
RESULTS = "modelbus.results.v1"
RESPONSES = "modelbus.responses.v1"
#: Requests parked for human approval, and the approvers' decisions.
APPROVALS_PENDING = "modelbus.approvals.pending.v1"
APPROVALS_DECISIONS = "modelbus.approvals.decisions.v1"
#: What a shadow policy would have decided for each live request (never acted on).
DECISIONS_SHADOW = "modelbus.decisions.shadow.v1"
#: Answers of streaming requests as they are produced (one ordered stream per request).
STREAM = "modelbus.stream.v1"

#: Providers with a worker deployment and a task topic of their own.
PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "gemini", "selfhosted")

#: Reply topics a policy may grant besides ``RESPONSES`` live under this prefix (for
#: example ``replies.acme.billing``), so the audit consumes every one of them.
REPLY_TOPIC_PREFIX = "replies."
#: Reply topics of modelbus' own front doors (the gateway's per-instance topics).
RESPONSES_FAMILY_PREFIX = "modelbus.responses."

#: Regex the audit consumer subscribes with: every modelbus topic, DLQs included, and
#: every reply topic a policy can allow; not the stream topic (the audit records a stream's
#: count, time to first token and final text from the response, never every delta).
AUDIT_PATTERN = r"^(modelbus\.(?!stream\.v1$)|replies\.).*"

DLQ_SUFFIX = ".dlq"


def tasks_topic(provider: str) -> str:
    """The topic a provider's adapter workers consume."""
    return f"modelbus.tasks.{provider}.v1"


def dlq_topic(source_topic: str) -> str:
    """The dead-letter topic of a source topic."""
    return source_topic + DLQ_SUFFIX


#: Producer roles: every modelbus service signs what it publishes as one of these.
ROUTER = "router"
WORKER = "adapter-worker"
AGGREGATOR = "aggregator"
GATEWAY = "gateway"
APPROVER = "approver"

_TASK_WRITERS = frozenset({ROUTER, WORKER, AGGREGATOR})  # plans, fallbacks, next steps
_RESPONSE_WRITERS = frozenset({ROUTER, AGGREGATOR})
_WRITERS: dict[str, frozenset[str]] = {
    RESULTS: frozenset({WORKER}),
    APPROVALS_PENDING: frozenset({ROUTER}),
    APPROVALS_DECISIONS: frozenset({APPROVER}),
    DECISIONS_SHADOW: frozenset({ROUTER}),
    STREAM: frozenset({WORKER}),
}


def is_internal(topic: str) -> bool:
    """Topics no reply may go to: modelbus' own but the responses family
    (``modelbus.responses.v1`` and ``modelbus.responses.<name>``, such as the gateway's), the
    broker's ``__`` topics, and every dead-letter topic."""
    if topic.startswith("__") or topic.endswith(DLQ_SUFFIX):
        return True
    return topic.startswith("modelbus.") and not (
        topic == RESPONSES or topic.startswith(RESPONSES_FAMILY_PREFIX))


def writer_roles(topic: str) -> frozenset[str] | None:
    """The roles whose signed events a consumer of ``topic`` accepts; ``None`` where
    unsigned events are accepted too (the requests topic, which upstreams in any language
    write, and dead-letter topics, which keep the original record as it came)."""
    if topic == REQUESTS or topic.endswith(DLQ_SUFFIX):
        return None
    if topic in _WRITERS:
        return _WRITERS[topic]
    if topic.startswith("modelbus.tasks."):
        return _TASK_WRITERS
    return _RESPONSE_WRITERS  # the default reply topic and every reply topic policy allows


def source_topics() -> list[str]:
    """Every topic an event is published to, DLQs excluded."""
    return [REQUESTS, *(tasks_topic(p) for p in PROVIDERS), RESULTS, RESPONSES,
            APPROVALS_PENDING, APPROVALS_DECISIONS, DECISIONS_SHADOW, STREAM]


def all_topics() -> list[str]:
    """Every topic modelbus needs, each source topic followed by its DLQ."""
    topics: list[str] = []
    for topic in source_topics():
        topics += [topic, dlq_topic(topic)]
    return topics
