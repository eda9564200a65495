"""The provider-surface scenarios as plain JSON (the request.v1 contract only), shared by the
Kafka and the gateway tests: a two-step tool conversation, a JSON-schema answer, an image."""

from __future__ import annotations

import base64
import struct
import zlib

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "required": ["city"], "additionalProperties": False,
                   "properties": {"city": {"type": "string"}}},
}
ANSWER_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["city", "temperature_c"],
    "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}},
}
TOOL_RESULT = '{"city": "Paris", "sky": "clear", "temperature_c": 21}'


def png(width: int = 2, height: int = 2, filler: bytes = b"") -> bytes:
    """A valid PNG (grey pixels); ``filler`` adds an ancillary chunk to make it larger."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    extra = chunk(b"tEXt", b"comment\x00" + filler) if filler else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_b64(**kw) -> str:
    return base64.b64encode(png(**kw)).decode()


def first_turn() -> list[dict]:
    return [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]


def second_turn(call: dict) -> list[dict]:
    """The conversation after the model asked for ``call``: its call, then the result."""
    return [*first_turn(),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]


def image_message(count: int = 1) -> list[dict]:
    parts: list[dict] = [{"type": "text", "text": "How many images do you see?"}]
    parts += [{"type": "image", "data": png_b64(), "media_type": "image/png"}] * count
    return [{"role": "user", "content": parts}]
