"""The one routing error: a request that cannot be served, with the caller-facing code."""

from __future__ import annotations

from modelbus_schemas import ErrorCode


class RoutingError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
