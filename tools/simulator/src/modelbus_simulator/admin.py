"""Admin API under `/_sim/` for scripting a running simulator.

- `GET  /_sim/health`            -> {"status": "ok"}
- `GET  /_sim/script`            -> current seed, default and per-model behaviours
- `PUT  /_sim/script`            -> replace the whole script (becomes the reset target)
- `PUT  /_sim/models/{model}`    -> set one model's behaviour (`default` sets the default);
                                    resets that model's fail-first counter and RNG
- `DELETE /_sim/models/{model}`  -> drop a model's behaviour (falls back to default)
- `POST /_sim/reset`             -> restore the startup script and zero all counters
- `GET  /_sim/stats`             -> calls per model and outcome, calls in flight, per
                                    request key, rejects, embedding calls and inputs per model
- `GET  /_sim/rules`             -> every request rule and whether it is on
- `PUT  /_sim/rules`             -> switch rules: {"<rule id>": true|false, ...} (until reset)
Invalid behaviours get 422 `{"error": "<field>: <problem>"}`.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .behaviour import ScriptError, SimState, parse_behaviour, parse_script
from .faults import json_response

_NOT_OBJECT = object()


async def _body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_OBJECT


def routes(state: SimState) -> list[Route]:
    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def get_script(request: Request) -> Response:
        return json_response(state.script_json())

    async def put_script(request: Request) -> Response:
        data = await _body(request)
        if data is _NOT_OBJECT:
            return json_response({"error": "body is not valid JSON"}, 400)
        try:
            script = parse_script(data)
        except ScriptError as exc:
            return json_response({"error": str(exc)}, 422)
        state.reset(script)
        return json_response(state.script_json())

    async def put_model(request: Request) -> Response:
        model = request.path_params["model"]
        data = await _body(request)
        if data is _NOT_OBJECT:
            return json_response({"error": "body is not valid JSON"}, 400)
        try:
            behaviour = parse_behaviour(data, model)
        except ScriptError as exc:
            return json_response({"error": str(exc)}, 422)
        state.set_behaviour(model, behaviour)
        return json_response({"model": model, "behaviour": behaviour.model_dump()})

    async def delete_model(request: Request) -> Response:
        model = request.path_params["model"]
        return json_response({"model": model, "deleted": state.delete_behaviour(model)})

    async def reset(request: Request) -> Response:
        state.reset()
        return json_response({"status": "reset"})

    async def stats(request: Request) -> Response:
        return json_response(state.stats_json())

    async def get_rules(request: Request) -> Response:
        return json_response(state.rules)

    async def put_rules(request: Request) -> Response:
        data = await _body(request)
        if not isinstance(data, dict) or not all(isinstance(v, bool) for v in data.values()):
            return json_response({"error": "body must be {\"<rule id>\": true|false}"}, 400)
        try:
            parse_script({"rules": data})
        except ScriptError as exc:
            return json_response({"error": str(exc)}, 422)
        state.set_rules(data)
        return json_response(state.rules)

    return [
        Route("/_sim/rules", get_rules, methods=["GET"]),
        Route("/_sim/rules", put_rules, methods=["PUT"]),
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/script", get_script, methods=["GET"]),
        Route("/_sim/script", put_script, methods=["PUT"]),
        Route("/_sim/models/{model:path}", put_model, methods=["PUT"]),
        Route("/_sim/models/{model:path}", delete_model, methods=["DELETE"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/stats", stats, methods=["GET"]),
    ]
