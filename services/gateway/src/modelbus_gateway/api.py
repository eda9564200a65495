"""The OpenAI-compatible HTTP routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``
and ``GET /v1/models``.

Turns the body into a :class:`~modelbus_schemas.RequestEvent` (caller from the API key;
``latency_budget_ms`` from ``x-modelbus-latency-budget-ms`` or the default; data class,
region and session from ``x-modelbus-*`` headers), hands it to the
:class:`~modelbus_gateway.gateway.Gateway` and renders the response in OpenAI's shape, plain
or as SSE chunks. Every answer carries ``x-request-id``; successful ones also
``x-modelbus-models`` (the models that answered) and ``x-modelbus-status``.

Every route is admitted first (:mod:`~modelbus_gateway.admission`: API key, rate limits) and
observed (:mod:`~modelbus_gateway.access`: span, access log); the body is read within
``max_body_bytes`` (:mod:`~modelbus_gateway.body`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from modelbus_router.policy import Policy
from modelbus_schemas import Caller, GenerationParams, RequestEvent, ResponseEvent
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelbus_gateway.access import JSON, CallRecord, Done, observed
from modelbus_gateway.admission import Admission
from modelbus_gateway.body import read_body
from modelbus_gateway.errors import bad_request, from_error_info, unknown_model
from modelbus_gateway.gateway import Gateway
from modelbus_gateway.metrics import PENDING, observe_call
from modelbus_gateway.openai_embeddings import embeddings_body, parse_embeddings_request
from modelbus_gateway.openai_wire import (
    ChatCall,
    completion_body,
    models_body,
    parse_chat_request,
    stream_frames,
)
from modelbus_gateway.tasks import visible_tasks

BUDGET_HEADER = "x-modelbus-latency-budget-ms"

Admitted = Callable[[Request, CallRecord, Caller], Awaitable[Response]]


class Api:
    def __init__(self, gateway: Gateway, admission: Admission, policy: Callable[[], Policy],
                 *, reply_topic: str, default_budget_ms: int, stream_chunk_chars: int = 64,
                 max_body_bytes: int = 16 * 1024 * 1024, access_log: bool = True) -> None:
        self.gateway = gateway
        self.admission = admission
        self.policy = policy
        self.reply_topic = reply_topic
        self.default_budget_ms = default_budget_ms
        self.chunk_chars = stream_chunk_chars
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    def routes(self) -> list[Route]:
        chat, embed, models = "/v1/chat/completions", "/v1/embeddings", "/v1/models"
        return [Route(chat, self._endpoint(chat, self.chat_completions, observe_call),
                      methods=["POST"]),
                Route(embed, self._endpoint(embed, self.embeddings, observe_call),
                      methods=["POST"]),
                Route(models, self._endpoint(models, self.models), methods=["GET"])]

    def _endpoint(self, route: str, handler: Admitted, done: Done | None = None):
        async def admitted(request: Request, record: CallRecord) -> Response:
            match = await self.admission.admit(
                request.headers.get("authorization"),
                request.client.host if request.client else None)
            record.key_id, record.tenant = match.key_id, match.caller.tenant
            return await handler(request, record, match.caller)

        return observed(route, admitted, access_log=self.access_log, done=done)

    async def models(self, request: Request, record: CallRecord, caller: Caller) -> Response:
        return Response(models_body(visible_tasks(self.policy(), caller)), 200,
                        {"x-request-id": record.request_id}, JSON)

    async def chat_completions(self, request: Request, record: CallRecord, caller: Caller
                               ) -> Response:
        call = parse_chat_request(await read_body(request, self.max_body_bytes))
        event = self._event(record.request_id, call.task, caller, request,
                            messages=call.messages, params=call.params, metadata=call.metadata)
        return self._render(await self._answer(event, request, record), call)

    async def embeddings(self, request: Request, record: CallRecord, caller: Caller
                         ) -> Response:
        call = parse_embeddings_request(await read_body(request, self.max_body_bytes))
        event = self._event(record.request_id, call.task, caller, request, operation="embed",
                            input=call.inputs, params=GenerationParams(dimensions=call.dimensions),
                            metadata=call.metadata)
        response = await self._answer(event, request, record)
        return Response(embeddings_body(response, call), 200, self._headers(response), JSON)

    async def _answer(self, event: RequestEvent, request: Request, record: CallRecord
                      ) -> ResponseEvent:
        """The response to ``event``, or its error as a GatewayError."""
        started = time.perf_counter()
        PENDING.set(len(self.gateway.pending))
        response = await self.gateway.call(event, request.headers.get("idempotency-key") or None)
        # an idempotent retry answers for the first call
        record.request_id = response.request_id
        if response.status == "error":
            late = time.perf_counter() - started >= event.latency_budget_ms / 1000
            raise from_error_info(response.error, deadline_passed=late)
        return response

    def _event(self, rid: str, task: str, caller: Caller, request: Request,
               **content) -> RequestEvent:
        headers = request.headers
        budget = headers.get(BUDGET_HEADER)
        try:
            budget_ms = int(budget) if budget is not None else self.default_budget_ms
        except ValueError:
            raise bad_request(f"{BUDGET_HEADER} must be an integer (milliseconds)") from None
        fields = {
            "request_id": rid, "task": task, "caller": caller, "reply_to": self.reply_topic,
            "latency_budget_ms": budget_ms, **content,
        }
        for header, name in (("x-modelbus-data-class", "data_class"),
                             ("x-modelbus-region", "region"),
                             ("x-modelbus-session-id", "session_id")):
            if (value := headers.get(header)) is not None:
                fields[name] = value
        try:
            return RequestEvent(**fields)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = str(err["loc"][0]) if err["loc"] else ""
            if where == "task":
                raise unknown_model(task) from None
            raise bad_request(f"{where}: {err['msg']}", where or None) from None

    @staticmethod
    def _headers(response: ResponseEvent) -> dict[str, str]:
        headers = {"x-request-id": response.request_id,
                   "x-modelbus-models": ",".join(response.models),
                   "x-modelbus-status": response.status}
        if response.policy_version:
            headers["x-modelbus-policy-version"] = response.policy_version
        return headers

    def _render(self, response: ResponseEvent, call: ChatCall) -> Response:
        rid, headers = response.request_id, self._headers(response)
        call_id, created = "chatcmpl-" + rid.removeprefix("gw-"), int(time.time())
        if not call.stream:
            return Response(completion_body(response, call_id, created, call.task), 200,
                            headers, JSON)
        frames = stream_frames(response, call_id, created, call.task, call.include_usage,
                               self.chunk_chars)

        async def body():
            for frame in frames:
                yield frame

        headers["cache-control"] = "no-cache"
        return StreamingResponse(body(), 200, headers, "text/event-stream")
