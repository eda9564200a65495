"""The OpenAI-compatible HTTP routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Authenticates the key, turns the body into a :class:`~modelbus_schemas.RequestEvent`
(caller from the key; ``latency_budget_ms`` from ``x-modelbus-latency-budget-ms`` or the
default; data class, region and session from ``x-modelbus-*`` headers), hands it to the
:class:`~modelbus_gateway.gateway.Gateway` and renders the response in OpenAI's shape, plain
or as SSE chunks. Every answer carries ``x-request-id``; successful ones also
``x-modelbus-models`` (the models that answered) and ``x-modelbus-status``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import orjson
from modelbus_router.policy import Policy
from modelbus_schemas import Caller, RequestEvent, ResponseEvent
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelbus_gateway.auth import ApiKeys, bearer_token
from modelbus_gateway.errors import (
    GatewayError,
    bad_request,
    from_error_info,
    unauthorized,
    unknown_model,
)
from modelbus_gateway.gateway import Gateway
from modelbus_gateway.metrics import CALL_SECONDS, CALLS, PENDING
from modelbus_gateway.openai_wire import (
    ChatCall,
    completion_body,
    models_body,
    parse_chat_request,
    stream_frames,
)
from modelbus_gateway.tasks import visible_tasks

JSON = "application/json"
BUDGET_HEADER = "x-modelbus-latency-budget-ms"


def error_response(err: GatewayError, request_id: str | None = None) -> Response:
    headers = err.headers()
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(err.body()), err.status, headers, JSON)


class Api:
    def __init__(self, gateway: Gateway, keys: ApiKeys, policy: Callable[[], Policy], *,
                 reply_topic: str, default_budget_ms: int, stream_chunk_chars: int = 64
                 ) -> None:
        self.gateway = gateway
        self.keys = keys
        self.policy = policy
        self.reply_topic = reply_topic
        self.default_budget_ms = default_budget_ms
        self.chunk_chars = stream_chunk_chars

    def routes(self) -> list[Route]:
        return [Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"])]

    def _caller(self, request: Request) -> Caller:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise unauthorized("You didn't provide an API key: send 'Authorization: Bearer <key>'")
        caller = self.keys.caller_for(token)
        if caller is None:
            raise unauthorized("Incorrect API key provided")
        return caller

    async def models(self, request: Request) -> Response:
        try:
            caller = self._caller(request)
        except GatewayError as err:
            return error_response(err)
        return Response(models_body(visible_tasks(self.policy(), caller)), media_type=JSON)

    async def chat_completions(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = "gw-" + uuid.uuid4().hex
        try:
            caller = self._caller(request)
            call = parse_chat_request(await request.body())
            event = self._event(rid, call, caller, request)
            PENDING.set(len(self.gateway.pending))
            response = await self.gateway.call(
                event, request.headers.get("idempotency-key") or None)
            if response.status == "error":
                rid = response.request_id  # an idempotent retry answers for the first call
                late = time.perf_counter() - started >= event.latency_budget_ms / 1000
                raise from_error_info(response.error, deadline_passed=late)
            out = self._render(response, call)
        except GatewayError as err:
            out = error_response(err, rid if err.status != 401 else None)
        CALLS.labels(status=str(out.status_code)).inc()
        CALL_SECONDS.observe(time.perf_counter() - started)
        return out

    def _event(self, rid: str, call: ChatCall, caller: Caller, request: Request) -> RequestEvent:
        headers = request.headers
        budget = headers.get(BUDGET_HEADER)
        try:
            budget_ms = int(budget) if budget is not None else self.default_budget_ms
        except ValueError:
            raise bad_request(f"{BUDGET_HEADER} must be an integer (milliseconds)") from None
        fields = {
            "request_id": rid, "task": call.task, "messages": call.messages,
            "params": call.params, "caller": caller, "reply_to": self.reply_topic,
            "latency_budget_ms": budget_ms, "metadata": call.metadata,
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
                raise unknown_model(call.task) from None
            raise bad_request(f"{where}: {err['msg']}", where or None) from None

    def _render(self, response: ResponseEvent, call: ChatCall) -> Response:
        rid = response.request_id
        headers = {"x-request-id": rid, "x-modelbus-models": ",".join(response.models),
                   "x-modelbus-status": response.status}
        if response.policy_version:
            headers["x-modelbus-policy-version"] = response.policy_version
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
