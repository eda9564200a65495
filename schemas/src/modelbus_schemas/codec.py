"""Encoding events to Kafka values and decoding them, with errors that say what was wrong."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DecodeError(ValueError):
    """A message body is not JSON or does not match its schema."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_json" or "schema"


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def decode(model: type[M], data: bytes | None) -> M:
    """Parse and validate a message body; raise DecodeError naming the bad field."""
    if not data:
        raise DecodeError("not_json", "empty message body")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise DecodeError("not_json", f"body is not valid JSON: {errors[0]['msg']}") from None
        raise DecodeError("schema", _describe(model, errors)) from None


def _describe(model: type[BaseModel], errors: list) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "<body>"
        parts.append(f"{where}: {err['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"{model.__name__} invalid: " + "; ".join(parts) + more
