"""What a message can hold beyond plain text, and what a model may be asked to produce.

Message content is a string (the ``request.v1`` form every producer already sends) or a list
of parts: text, an image (by URL or base64 with its media type), or a claim-check reference
to a part stored apart because it is large. Assistant turns may carry ``tool_calls``; ``tool``
turns answer them. ``ToolSpec``, ``ToolChoice`` and ``ResponseFormat`` say which tools a model
may call and what shape its answer must take.

Names and sizes are the intersection of what OpenAI, Anthropic and Gemini accept, so a
contract-valid tool or schema name is valid for every provider; per-provider limits that
cannot be met by the contract alone (stop sequences, image counts, parameter ranges) live in
the router's catalog and the adapters' normalisation (docs/providers.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelbus_schemas.base import Contract

MAX_TEXT_CHARS = 1_000_000
MAX_IMAGE_BASE64_CHARS = 28_000_000  # ≈ 20 MiB of image bytes, OpenAI's per-image ceiling
MAX_JSON_SCHEMA_CHARS = 100_000

ToolName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$",
          description="a function name every provider accepts (letters, digits, _ and -, "
          "at most 64, not starting with a digit or -)"),
]
ImageMediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]


def _bounded_json(value: dict[str, Any], what: str) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_JSON_SCHEMA_CHARS:
        raise ValueError(f"{what} is larger than {MAX_JSON_SCHEMA_CHARS} characters of JSON")
    return value


class TextPart(Contract):
    type: Literal["text"] = "text"
    text: str = Field(max_length=MAX_TEXT_CHARS)


class ImagePart(Contract):
    """An image, either fetched by the provider from ``url`` (``https://`` or ``data:``) or
    sent inline as base64 ``data`` with its ``media_type``."""

    type: Literal["image"] = "image"
    url: str | None = Field(default=None, max_length=8192, pattern=r"^(https?://|data:image/)")
    data: str | None = Field(default=None, max_length=MAX_IMAGE_BASE64_CHARS,
                             pattern=r"^[A-Za-z0-9+/\r\n]*={0,2}\s*$")
    media_type: ImageMediaType | None = None
    detail: Literal["auto", "low", "high"] | None = Field(
        default=None, description="OpenAI's image detail hint; other providers ignore it")

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image part needs exactly one of url or data")
        if self.data is not None and self.media_type is None:
            raise ValueError("an inline image (data) needs its media_type")
        return self


class BlobRef(Contract):
    """A part stored apart by claim check: resolvable only within the request's tenant."""

    ref: str = Field(min_length=1, max_length=512, description="store-specific locator")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash of the stored part JSON")
    size_bytes: int = Field(ge=0)
    kind: Literal["text", "image"] = Field(description="the type of the part it stands for")
    media_type: ImageMediaType | None = None


class BlobPart(Contract):
    type: Literal["blob"] = "blob"
    blob: BlobRef


ContentPart = Annotated[TextPart | ImagePart | BlobPart, Field(discriminator="type")]


class ToolCall(Contract):
    """A function call a model asked for; ``arguments`` is the JSON text the model wrote."""

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    name: ToolName
    arguments: str = Field(default="{}", max_length=MAX_TEXT_CHARS)

    def canonical(self) -> str:
        """Name and arguments as canonical JSON (sorted keys), to compare calls across
        models; arguments that are not JSON compare as their text."""
        try:
            args: Any = json.loads(self.arguments)
        except ValueError:
            args = self.arguments
        return json.dumps({"name": self.name, "arguments": args}, sort_keys=True,
                          separators=(",", ":"))


class ToolSpec(Contract):
    """A function the model may call, its parameters as a JSON Schema object."""

    type: Literal["function"] = "function"
    name: ToolName
    description: str | None = Field(default=None, max_length=8192)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments; its type must be object")
    strict: bool | None = Field(default=None, description="ask for exact schema adherence")

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("tool parameters must be a JSON Schema with type object")
        return _bounded_json(value, "tool parameters")


class NamedToolChoice(Contract):
    type: Literal["function"] = "function"
    name: ToolName


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class JsonSchemaFormat(Contract):
    """OpenAI's ``json_schema`` response format, field for field."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(default=None, max_length=8192)
    schema_: dict[str, Any] = Field(alias="schema", description="the JSON Schema of the answer")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _bounded_json(value, "response schema")


class ResponseFormat(Contract):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_when_needed(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type json_schema, and only then")
        return self

    @property
    def wants_json(self) -> bool:
        return self.type != "text"
