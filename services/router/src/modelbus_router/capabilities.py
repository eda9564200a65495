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
embeddings, chat), more images or tools than its API takes, and an embedding size it
cannot produce.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import RequestEvent

from modelbus_router.catalog import CatalogModel


@dataclass(frozen=True)
class Needs:
    operation: str
    tools: int  # tools the model may be asked to call (0: none, or tool_choice "none")
    images: int
    response_format: str  # text, json_object or json_schema
    dimensions: int | None

    @classmethod
    def of(cls, request: RequestEvent) -> Needs:
        params = request.params
        tools = len(params.tools or []) if params.tool_choice != "none" else 0
        fmt = params.response_format.type if params.response_format else "text"
        return cls(operation=request.operation, tools=tools,
                   images=sum(m.image_count() for m in request.messages),
                   response_format=fmt, dimensions=params.dimensions)


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
    if needs.response_format == "json_schema" and "json_schema" not in caps:
        return "no json_schema"
    if needs.response_format == "json_object" and not {"json_object", "json_schema"} & set(caps):
        return "no json_object"
    return None
