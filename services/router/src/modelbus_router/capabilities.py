"""What a request needs from a model, and why a model cannot give it.

:class:`Needs` reads a request once: its operation, tools, images, answer format, embedding
size. :func:`capability_reason` compares it with a catalog entry's ``capabilities`` and
``limits`` and returns the rejection reason recorded on the decision (``no vision``,
``images: 120 > 100``, ``dimensions: 4096 outside 128-3072``), or None.

Only what the worker cannot normalise rejects a model. The worker enforces stop sequences
beyond a provider's limit on the output itself, drops ``temperature``/``top_p`` for reasoning
models, and merges consecutive turns / leads with a user turn where a provider requires it;
so a request with 8 stop sequences or a temperature is never refused here for them. What
cannot be normalised: a capability the model lacks (tools, images, a JSON answer format,
embeddings, chat), more images or tools than its API takes, an image larger than it takes
(Anthropic: 5 MB), an embedding size it cannot produce, and an embedding input longer than
its token limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import BlobPart, ChatMessage, ImagePart, RequestEvent

from modelbus_router.catalog import CatalogModel
from modelbus_router.tokens import count_text


@dataclass(frozen=True)
class Needs:
    operation: str
    tools: int  # tools the model may be asked to call (0: none, or tool_choice "none")
    images: int
    response_format: str  # text, json_object or json_schema
    dimensions: int | None
    largest_image_bytes: int = 0  # of inline and claim-checked images (URLs: unknown)
    longest_input_tokens: int = 0  # of embedding inputs (o200k estimate)

    @classmethod
    def of(cls, request: RequestEvent) -> Needs:
        params = request.params
        tools = len(params.tools or []) if params.tool_choice != "none" else 0
        fmt = params.response_format.type if params.response_format else "text"
        return cls(operation=request.operation, tools=tools,
                   images=sum(m.image_count() for m in request.messages),
                   response_format=fmt, dimensions=params.dimensions,
                   largest_image_bytes=max(map(_image_bytes, request.messages), default=0),
                   longest_input_tokens=max(map(count_text, request.input or []), default=0))


def _image_bytes(message: ChatMessage) -> int:
    """The decoded size of the message's largest image (base64: three bytes in four)."""
    sizes = [len(p.data) * 3 // 4 for p in message.parts()
             if isinstance(p, ImagePart) and p.data]
    sizes += [p.blob.size_bytes * 3 // 4 for p in message.parts()
              if isinstance(p, BlobPart) and p.blob.kind == "image"]
    return max(sizes, default=0)


def capability_reason(model: CatalogModel, needs: Needs) -> str | None:
    caps, limits = model.capabilities, model.limits
    if needs.operation == "embed":
        if "embeddings" not in caps:
            return "no embeddings"
        if needs.dimensions is not None:
            if limits.dimensions is None:
                return f"dimensions: {needs.dimensions} asked, the size is fixed"
            low, high = limits.dimensions
            if not low <= needs.dimensions <= high:
                return f"dimensions: {needs.dimensions} outside {low}-{high}"
        limit = limits.max_input_tokens
        if limit is not None and needs.longest_input_tokens > limit:
            return f"input tokens: {needs.longest_input_tokens} > {limit}"
        return None
    if "chat" not in caps:
        return "no chat"
    if needs.tools:
        if "tools" not in caps:
            return "no tools"
        if limits.max_tools is not None and needs.tools > limits.max_tools:
            return f"tools: {needs.tools} > {limits.max_tools}"
    if needs.images:
        if "vision" not in caps:
            return "no vision"
        if limits.max_images is not None and needs.images > limits.max_images:
            return f"images: {needs.images} > {limits.max_images}"
        largest = limits.max_image_bytes
        if largest is not None and needs.largest_image_bytes > largest:
            return f"image bytes: {needs.largest_image_bytes} > {largest}"
    if needs.response_format == "json_schema" and "json_schema" not in caps:
        return "no json_schema"
    if needs.response_format == "json_object" and not {"json_object", "json_schema"} & set(caps):
        return "no json_object"
    return None
