"""Gemini generateContent / batchEmbedContents request rules.  Each check returns
``(message, param)`` -- the message the real API answers with -- or None.  Fields are read
under their camelCase or snake_case names, as the API accepts both.  Sources (ids in
`rules.RULES`):

* at most 5 `stopSequences` ("The set of character sequences (up to 5) that will stop
  output generation"): https://ai.google.dev/api/generate-content#generationconfig
* every content has parts and no part is empty (proto3: an empty `text` leaves the `data`
  oneof unset): https://ai.google.dev/api/caching#Content
* a `functionResponse` turn answers the model's `functionCall` turn right before it, one
  response per call, names matching; declaration names start with a letter or underscore
  and use ``[a-zA-Z0-9_.:-]``, at most 128 characters:
  https://ai.google.dev/gemini-api/docs/function-calling and
  https://ai.google.dev/api/caching#FunctionDeclaration
* `inlineData` needs `mimeType` and base64 `data`; `fileData` needs `fileUri`:
  https://ai.google.dev/api/caching#Blob
* `responseSchema` / `responseJsonSchema` need `responseMimeType: application/json` and
  exclude each other: https://ai.google.dev/api/generate-content#generationconfig
* at most 100 requests per `batchEmbedContents`: the reference
  (https://ai.google.dev/api/embeddings#method:-models.batchembedcontents) does not state
  the number; the API's own refusal, quoted here, is recorded in
  https://github.com/langchain-ai/langchainjs/issues/4491
"""

from __future__ import annotations

import base64
import binascii
import re

from .prompts import gemini_part

NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$")
MAX_BATCH = 100


def config(body: dict) -> dict:
    c = gemini_part(body, "generationConfig")
    return c if isinstance(c, dict) else {}


def _contents(body: dict):
    for i, c in enumerate(body.get("contents") or ()):
        if isinstance(c, dict):
            parts = c.get("parts")
            yield i, c, parts if isinstance(parts, list) else None


def max_stop(body: dict):
    stops = gemini_part(config(body), "stopSequences")
    if isinstance(stops, list) and len(stops) > 5:
        return (("* GenerateContentRequest.generation_config.stop_sequences: "
                f"at most 5 stop sequences are supported, got {len(stops)}."),
                "generationConfig.stopSequences")
    return None


def non_empty(body: dict):
    for i, _c, parts in _contents(body):
        if not parts:
            return ((f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not "
                    "be empty."), f"contents[{i}].parts")
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("text") == "" or not part:
                return ((f"* GenerateContentRequest.contents[{i}].parts[{j}].data: required "
                        "oneof field 'data' must have one initialized field"),
                        f"contents[{i}].parts[{j}]")
    return None


def _named(parts: list | None, key: str) -> list[str]:
    out = []
    for part in parts or ():
        value = gemini_part(part, key) if isinstance(part, dict) else None
        if isinstance(value, dict):
            out.append(str(value.get("name")))
    return out


def function_responses(body: dict):
    calls: list[str] = []
    for i, c, parts in _contents(body):
        responses = _named(parts, "functionResponse")
        if responses and sorted(responses) != sorted(calls):
            return (("Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn, and that each "
                    f"function response name matches a call (contents[{i}]: responses "
                    f"{responses}, calls {calls})."), f"contents[{i}]")
        calls = _named(parts, "functionCall") if c.get("role") == "model" else []
    return None


def declarations(body: dict) -> list[dict]:
    out = []
    for tool in body.get("tools") or ():
        decls = gemini_part(tool, "functionDeclarations") if isinstance(tool, dict) else None
        out += [d for d in decls or () if isinstance(d, dict)]
    return out


def function_name(body: dict):
    for i, decl in enumerate(declarations(body)):
        if not NAME_RE.match(str(decl.get("name", ""))):
            return ((f"* GenerateContentRequest.tools[0].function_declarations[{i}].name: "
                    "Invalid function name. Must start with a letter or an underscore. Must "
                    "be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a "
                    "maximum length of 128."), f"tools.functionDeclarations[{i}].name")
    return None


def _is_base64(data: object) -> bool:
    """Proto JSON bytes: standard or URL-safe base64, padding optional."""
    if not isinstance(data, str) or not data:
        return False
    text = data.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def images(body: dict):
    for i, _c, parts in _contents(body):
        for j, part in enumerate(parts or ()):
            where = f"contents[{i}].parts[{j}]"
            inline = gemini_part(part, "inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict):
                if not gemini_part(inline, "mimeType"):
                    return ((f"* GenerateContentRequest.{where}.inline_data.mime_type: "
                            "mime_type is required."), where)
                if not _is_base64(inline.get("data")):
                    return ((f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), "
                            "Base64 decoding failed"), where)
            file = gemini_part(part, "fileData") if isinstance(part, dict) else None
            if isinstance(file, dict) and not gemini_part(file, "fileUri"):
                return ((f"* GenerateContentRequest.{where}.file_data.file_uri: "
                        "file_uri is required."), where)
    return None


def response_schema(body: dict):
    cfg = config(body)
    has_schema = gemini_part(cfg, "responseSchema") is not None
    has_json = gemini_part(cfg, "responseJsonSchema") is not None
    if has_schema and has_json:
        return ("response_schema and response_json_schema cannot both be set.",
                "generationConfig")
    if (has_schema or has_json) and gemini_part(cfg, "responseMimeType") != "application/json":
        return (("* GenerateContentRequest.generation_config.response_mime_type: "
                "response_mime_type must be application/json when a response schema is set."),
                "generationConfig.responseMimeType")
    return None


def batch_embed(body: dict):
    requests = body.get("requests")
    if isinstance(requests, list) and len(requests) > MAX_BATCH:
        return (("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one "
                "batch"), "requests")
    return None


CHECKS = [
    ("gemini.max_stop", max_stop),
    ("gemini.non_empty", non_empty),
    ("gemini.function_name", function_name),
    ("gemini.function_responses", function_responses),
    ("gemini.response_schema", response_schema),
    ("gemini.images", images),
]
NO_VISION = ("* GenerateContentRequest: this model does not support image input.", "contents")
