"""Server-sent events decoding: lines in, ``(event, data)`` frames out (WHATWG rules:
``data:`` lines join with newlines, a blank line dispatches, ``:`` lines are comments; a frame
without its blank line when the stream closes is dropped, as the standard says)."""

from __future__ import annotations


class SseDecoder:
    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def line(self, raw: str) -> tuple[str | None, str] | None:
        line = raw.rstrip("\r\n")
        if not line:
            if not self._data and self._event is None:
                return None
            frame = (self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return frame
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
