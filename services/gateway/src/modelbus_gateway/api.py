"""The OpenAI-compatible HTTP routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``
and ``GET /v1/models``.

Turns the body into a :class:`~modelbus_schemas.RequestEvent` (caller from the API key;
``latency_budget_ms`` from ``x-modelbus-latency-budget-ms`` or the default; data class,
region and session from ``x-modelbus-*`` headers), hands it to the
:class:`~modelbus_gateway.gateway.Gateway` and renders the response in OpenAI's shape, plain
or as SSE chunks. Every answer carries ``x-request-id``; successful ones also
``x-modelbus-models`` (the models that answered) and ``x-modelbus-status``.

``stream=true`` sets the request event's ``stream``; the call then opens its
:class:`~modelbus_gateway.stream_hub.CallStream` before the event is published. The HTTP
answer begins with the first stream event (status 200, ``x-modelbus-models`` naming the
streaming model; no status header, the final response is not known yet) and each event's
chunks are sent as it arrives (:mod:`~modelbus_gateway.openai_stream`); the final response
closes the stream. When the final response comes first (routes that do not stream, or a
failure before any output), the call is answered from it as a whole: an HTTP error for an
error response, else the response cut into chunks. A caller that goes away closes its
stream and stops waiting for its response.

Every route is admitted first (:mod:`~modelbus_gateway.admission`: API key, rate limits) and
observed (:mod:`~modelbus_gateway.access`: span, access log); the body is read within
``max_body_bytes`` (:mod:`~modelbus_gateway.body`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from modelbus_router.policy import Policy
from modelbus_schemas import Caller, GenerationParams, RequestEvent, ResponseEvent, StreamEvent
from modelbus_schemas.identity import scoped_id
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelbus_gateway.access import JSON, CallRecord, Done, observed
from modelbus_gateway.admission import Admission
from modelbus_gateway.body import read_body
from modelbus_gateway.errors import (
    GatewayError,
    bad_request,
    from_error_info,
    overloaded,
    unknown_model,
)
from modelbus_gateway.gateway import Gateway
from modelbus_gateway.metrics import PENDING, STREAM_FIRST_BYTE, observe_call
from modelbus_gateway.openai_embeddings import embeddings_body, parse_embeddings_request
from modelbus_gateway.openai_stream import ChunkStream, stream_frames
from modelbus_gateway.openai_wire import (
    ChatCall,
    completion_body,
    models_body,
    parse_chat_request,
)
from modelbus_gateway.stream_hub import CallStream, HubFull, StreamHub
from modelbus_gateway.tasks import visible_tasks

log = logging.getLogger(__name__)

BUDGET_HEADER = "x-modelbus-latency-budget-ms"
SSE = "text/event-stream"

Admitted = Callable[[Request, CallRecord, Caller], Awaitable[Response]]


def _retrieved(answer: asyncio.Future) -> None:
    """A stream that ended on an error event leaves its answer's outcome unread."""
    if not answer.cancelled():
        answer.exception()


class Api:
    def __init__(self, gateway: Gateway, admission: Admission, policy: Callable[[], Policy],
                 *, reply_topic: str, default_budget_ms: int, stream_chunk_chars: int = 64,
                 max_body_bytes: int = 16 * 1024 * 1024, access_log: bool = True,
                 streams: StreamHub | None = None) -> None:
        self.gateway = gateway
        self.streams = streams if streams is not None else StreamHub()
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
                            messages=call.messages, params=call.params, metadata=call.metadata,
                            stream=call.stream)
        if call.stream:
            return await self._stream(event, call, request, record)
        return self._render(await self._answer(event, request, record), call, record)

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

    @staticmethod
    def _call_id(rid: str) -> str:
        return "chatcmpl-" + rid.removeprefix("gw-")

    def _render(self, response: ResponseEvent, call: ChatCall, record: CallRecord) -> Response:
        rid, headers = response.request_id, self._headers(response)
        call_id, created = self._call_id(rid), int(time.time())
        if not call.stream:
            return Response(completion_body(response, call_id, created, call.task), 200,
                            headers, JSON)
        frames = stream_frames(response, call_id, created, call.task, call.include_usage,
                               self.chunk_chars)
        STREAM_FIRST_BYTE.labels(source="response").observe(time.perf_counter() - record.started)

        async def body():
            for frame in frames:
                yield frame

        headers["cache-control"] = "no-cache"
        return StreamingResponse(body(), 200, headers, SSE)

    # -- stream=true ----------------------------------------------------------------------
    async def _stream(self, event: RequestEvent, call: ChatCall, request: Request,
                      record: CallRecord) -> Response:
        """Answer from the stream events as they arrive, or from the final response when
        it comes before any (see the module's docstring)."""
        scope = scoped_id(event.caller.tenant, event.request_id)
        try:
            events = self.streams.open(scope)  # before the request is published
        except HubFull as exc:
            raise overloaded(str(exc)) from None
        answer = asyncio.ensure_future(self._answer(event, request, record))
        answer.add_done_callback(_retrieved)
        # the answer ends at the latency budget at the latest: the call leaves the hub then
        # even if its body never ran (a caller gone before the first byte)
        answer.add_done_callback(lambda _: self.streams.close(scope))
        streaming = False
        try:
            first = await events.next(answer)
            if first is not None and first.kind == "error":
                first = None  # nothing left modelbus: the error response answers the call
            if first is None:
                return self._render(await answer, call, record)
            streaming = True
        finally:
            if not streaming:
                answer.cancel()
                self.streams.close(scope)
        headers = {"x-request-id": event.request_id, "cache-control": "no-cache",
                   "x-modelbus-models": f"{first.provider}/{first.model}"}
        chunks = ChunkStream(self._call_id(event.request_id), int(time.time()), call.task,
                             call.include_usage, self.chunk_chars)
        body = self._stream_body(scope, first, events, answer, chunks, record)
        return StreamingResponse(body, 200, headers, SSE)

    async def _stream_body(self, scope: str, first: StreamEvent, events: CallStream,
                           answer: asyncio.Future, chunks: ChunkStream, record: CallRecord
                           ) -> AsyncIterator[bytes]:
        try:
            yield b"".join([chunks.opening(), *chunks.delta(first)])
            STREAM_FIRST_BYTE.labels(source="stream").observe(
                time.perf_counter() - record.started)
            while (streamed := await events.next(answer)) is not None:
                if streamed.kind == "error":
                    yield chunks.failure(from_error_info(streamed.error))
                    return
                if frames := chunks.delta(streamed):
                    yield b"".join(frames)
            try:
                response = answer.result()
            except GatewayError as err:
                yield chunks.failure(err)
                return
            except Exception:  # a bug ends the stream in OpenAI's error shape, logged
                log.exception("streamed call %s failed", record.request_id)
                yield chunks.failure(GatewayError(500, "internal error", "server_error",
                                                  "internal"))
                return
            yield b"".join(chunks.closing(response))
        finally:  # answered, failed, or the caller went away (the body is cancelled)
            self.streams.close(scope)
            answer.cancel()
