"""The event models on every topic, the wire contract of modelbus.

Flow: ``RequestEvent`` (upstream → router) → ``TaskEvent`` (router → provider worker) →
``ResultEvent`` (worker → aggregator) → ``ResponseEvent`` (aggregator → reply topic).
Event ids of internal events derive from the request id, so a redelivered input
produces the same output id and every consumer can deduplicate by it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from modelbus_schemas import cloudevents as ce
from modelbus_schemas.common import (
    Caller,
    ChatMessage,
    ContextBlock,
    Contract,
    DataClass,
    ErrorInfo,
    GenerationParams,
    GuardrailFinding,
    ModelRef,
    RequestId,
    TopicName,
    Usage,
)
from modelbus_schemas.content import MAX_TEXT_CHARS, ToolCall
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.plan import BudgetHold, ExecutionPlan, RetrySpec, Target
from modelbus_schemas.topics import RESPONSES

FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error", "other"]
Operation = Literal["chat", "embed"]
EmbeddingInput = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Vector = list[float]


class RequestEvent(Contract):
    """What an upstream system publishes on ``modelbus.requests.v1``: a task, never a model."""

    CE_TYPE: ClassVar[str] = ce.TYPE_REQUEST
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "req-0001",
                    "task": "summarize",
                    "messages": [{"role": "user", "content": "Summarise: Kafka is a log."}],
                    "caller": {"tenant": "acme", "team": "support", "user": "ana"},
                    "data_class": "internal",
                }
            ]
        }
    )

    request_id: RequestId
    task: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Name of the task (a virtual model) in the routing policy.",
    )
    operation: Operation = Field(
        default="chat", description="chat: answer the messages; embed: vectors for input")
    messages: list[ChatMessage] = Field(
        default_factory=list, max_length=256,
        description="the conversation (at least one message for chat, none for embed)")
    input: list[EmbeddingInput] | None = Field(
        default=None, min_length=1, max_length=256,
        description="texts to embed (operation embed only)")
    context: list[ContextBlock] = Field(default_factory=list, max_length=64)
    params: GenerationParams = GenerationParams()
    caller: Caller = Caller()
    data_class: DataClass = DataClass.INTERNAL
    region: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(
        default=None, max_length=256,
        description="Re-sending a request with the same key is not routed or charged twice.",
    )
    latency_budget_ms: int | None = Field(default=None, ge=100, le=600_000)
    session_id: str | None = Field(default=None, max_length=256)
    reply_to: TopicName = Field(
        default=RESPONSES, description="Topic the response is published to."
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=32)
    stream: bool = Field(
        default=False, description="also publish the answer as it is produced, as stream "
        "events on modelbus.stream.v1 (plans single, fallback and chain; see stream.v1)")
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _operation_shape(self) -> RequestEvent:
        check_operation(self.operation, self.messages, self.input)
        return self

    def event_id(self) -> str:
        return self.request_id


def check_operation(operation: str, messages: list, input: list | None) -> None:
    if operation == "chat" and (not messages or input is not None):
        raise ValueError("a chat request has at least one message and no input")
    if operation == "embed" and (messages or not input):
        raise ValueError("an embed request has input and no messages")


class Rejection(Contract):
    """A candidate the router considered and did not pick, and why."""

    provider: str
    model: str
    reason: str


class RoutingDecision(Contract):
    """Why a request went where it went; carried on every task for lineage."""

    policy_version: str
    route: str
    strategy: str
    selected: list[ModelRef]
    rejected: list[Rejection] = Field(default_factory=list)
    matched_rule: str | None = None
    template: str | None = Field(default=None, description="prompt template id@version")
    estimated_input_tokens: int | None = None
    cache_key: str | None = Field(default=None, description="set when the route caches")
    guardrails: list[GuardrailFinding] = Field(default_factory=list)
    decided_at: datetime


class AttemptRecord(Contract):
    """One HTTP call to a provider."""

    number: int = Field(ge=1)
    provider: str | None = None
    model: str | None = None
    started_at: datetime
    latency_ms: float = Field(ge=0)
    status_code: int | None = None
    outcome: Literal["ok", "error"]
    error_code: str | None = None


class InternalEvent(Contract):
    """Events modelbus produces itself: unknown fields are ignored so that a newer producer
    can add a field during a rolling deploy without breaking older consumers."""

    model_config = ConfigDict(extra="ignore")


class TaskEvent(InternalEvent):
    """One provider call the router asks a worker to make (``modelbus.tasks.<provider>.v1``)."""

    CE_TYPE: ClassVar[str] = ce.TYPE_TASK

    event_id: str
    request_id: RequestId
    task: str
    part_id: int = Field(ge=0)
    parts_total: int = Field(ge=1)
    provider: str
    model: str
    operation: Operation = "chat"
    messages: list[ChatMessage] = Field(default_factory=list)
    input: list[str] | None = None
    context: list[ContextBlock] = Field(default_factory=list)
    params: GenerationParams = GenerationParams()
    caller: Caller = Caller()
    data_class: DataClass = DataClass.INTERNAL
    reply_to: TopicName = RESPONSES
    received_at: datetime
    deadline_at: datetime | None = None
    decision: RoutingDecision
    plan: ExecutionPlan = ExecutionPlan()
    retry: RetrySpec | None = None
    fallbacks: list[Target] = Field(
        default_factory=list, description="targets to forward to, in order, when this fails"
    )
    fallback_on: list[int] | None = Field(
        default=None, description="statuses that trigger fallback; None: any exhausted target"
    )
    attempt_history: list[AttemptRecord] = Field(
        default_factory=list, description="attempts on earlier targets of this part"
    )
    attempt_budget: int | None = Field(
        default=None, ge=0, description="attempts left for the whole request"
    )
    budget_hold: BudgetHold | None = None
    stream: bool = Field(default=False, description="publish this task's output as stream "
                         "events while the provider produces it")

    @property
    def tenant(self) -> str:
        return self.caller.tenant

    @staticmethod
    def make_id(scope: str, part_id: int, step: int = 0, hop: int = 0) -> str:
        """Deterministic: the same plan position always gets the same id (``hop`` counts
        fallbacks forwarded for the part, ``step`` the cascade tier or chain stage).
        ``scope`` is the request's :func:`~modelbus_schemas.identity.scoped_id`."""
        base = f"{scope}:task:{part_id}"
        return base + (f":{step}" if step or hop else "") + (f":{hop}" if hop else "")


class ResultEvent(InternalEvent):
    """The canonical outcome of one task (``modelbus.results.v1``)."""

    CE_TYPE: ClassVar[str] = ce.TYPE_RESULT

    event_id: str
    request_id: RequestId
    tenant: str = Field(default="default", min_length=1, max_length=128,
                        description="the request's tenant (from its task's caller)")
    task: str
    part_id: int = Field(ge=0)
    parts_total: int = Field(ge=1)
    provider: str
    model: str
    response_model: str | None = None
    status: Literal["ok", "error"]
    text: str | None = None
    tool_calls: list[ToolCall] | None = None
    parsed: Any | None = Field(default=None, description="the JSON answer, parsed, when the "
                               "request asked for a json_object or json_schema format")
    embeddings: list[Vector] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage = Usage()
    cost_usd: float = Field(default=0.0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    ttft_ms: float | None = None
    stream_events: int = Field(default=0, ge=0, description="stream events published for it")
    attempts: list[AttemptRecord] = Field(default_factory=list)
    error: ErrorInfo | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    reply_to: TopicName = RESPONSES
    received_at: datetime
    deadline_at: datetime | None = None
    policy_version: str
    plan: ExecutionPlan = ExecutionPlan()
    budget_hold: BudgetHold | None = None
    cache_key: str | None = None
    origin: TaskEvent | None = Field(
        default=None,
        description="the task this answers, for plans whose next step needs its context "
        "(cascade, chain, judge)",
    )

    @staticmethod
    def make_id(scope: str, part_id: int, step: int = 0) -> str:
        """``scope``: the request's :func:`~modelbus_schemas.identity.scoped_id`."""
        return f"{scope}:result:{part_id}" + (f":{step}" if step else "")


class PartSummary(Contract):
    part_id: int
    provider: str
    model: str
    status: Literal["ok", "error", "missing"]
    step: int = 0
    latency_ms: float | None = None
    cost_usd: float = 0.0
    error_code: str | None = None


class ResponseEvent(InternalEvent):
    """The one answer to a request, on the request's reply topic."""

    CE_TYPE: ClassVar[str] = ce.TYPE_RESPONSE

    event_id: str
    request_id: RequestId
    tenant: str = Field(default="default", min_length=1, max_length=128,
                        description="the tenant the request was accepted for")
    task: str | None = None
    status: Literal["ok", "partial", "error"]
    output: str | None = None
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="functions the model asks the caller to run "
        "(finish_reason tool_calls); answer with tool messages in a follow-up request")
    parsed: Any | None = Field(default=None, description="the JSON answer, parsed, when the "
                               "request asked for a json_object or json_schema format")
    embeddings: list[Vector] | None = Field(
        default=None, description="one vector per input, in order (operation embed)")
    finish_reason: FinishReason | None = Field(
        default=None, description="why the model whose answer is the output stopped "
        "(``length``: cut at the token limit); none on an error")
    error: ErrorInfo | None = None
    models: list[str] = Field(default_factory=list)
    parts: list[PartSummary] = Field(default_factory=list)
    usage: Usage = Usage()
    cost_usd: float = Field(default=0.0, ge=0)
    latency_ms: float | None = None
    ttft_ms: float | None = Field(
        default=None, description="time to the first output of the answering call, from the "
        "start of that call (streamed or not)")
    stream_events: int = Field(default=0, ge=0,
                               description="stream events published for this request")
    policy_version: str | None = None
    cache_hit: bool = False
    path: list[str] = Field(
        default_factory=list, description="cascade tiers or chain stages taken, in order"
    )
    missing_parts: list[int] = Field(default_factory=list)
    guardrails: list[GuardrailFinding] = Field(default_factory=list)
    created_at: datetime

    @staticmethod
    def make_id(scope: str) -> str:
        """``scope``: the request's :func:`~modelbus_schemas.identity.scoped_id`."""
        return f"{scope}:response"


class ApprovalRequestEvent(InternalEvent):
    """A request parked until a human approves it (``modelbus.approvals.pending.v1``)."""

    CE_TYPE: ClassVar[str] = ce.TYPE_APPROVAL_REQUEST

    event_id: str
    request_id: RequestId
    task: str
    reason: str
    estimated_cost_usd: float | None = None
    data_class: DataClass
    caller: Caller
    policy_version: str
    requested_at: datetime
    expires_at: datetime | None = None

    @staticmethod
    def make_id(scope: str) -> str:
        """``scope``: the request's :func:`~modelbus_schemas.identity.scoped_id`."""
        return f"{scope}:approval-request"


class ApprovalDecisionEvent(Contract):
    """An approver's decision (``modelbus.approvals.decisions.v1``), audited with identity."""

    CE_TYPE: ClassVar[str] = ce.TYPE_APPROVAL_DECISION

    request_id: RequestId
    tenant: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="the tenant whose parked request this decides; without it the decision "
        "applies only when exactly one tenant parked this request id")
    approved: bool
    approver: str = Field(min_length=1, max_length=256)
    comment: str | None = Field(default=None, max_length=2048)
    decided_at: datetime

    def event_id(self) -> str:
        scope = scoped_id(self.tenant, self.request_id) if self.tenant else self.request_id
        return f"{scope}:approval-decision"
