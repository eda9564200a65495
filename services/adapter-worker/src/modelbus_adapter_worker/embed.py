"""The embedding side of a task (``operation: embed``): which inputs the cache already has
vectors for, which must be asked for (each distinct text once), and the vectors of every
input put back in input order once the provider answered."""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import TaskEvent

from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.embed_cache import EmbeddingCache, cache_key
from modelbus_adapter_worker.errors import malformed


@dataclass
class EmbedLookup:
    inputs: list[str]
    keys: list[str]
    vectors: list[list[float] | None]

    @property
    def missing(self) -> list[str]:
        """Inputs without a cached vector, each distinct text once, in first-seen order."""
        return list(dict.fromkeys(t for t, v in zip(self.inputs, self.vectors, strict=True)
                                  if v is None))

    def merged(self, fresh: Completion | None) -> Completion:
        """Every input's vector in input order: cached ones, then the fresh answer's. Usage
        and cost are the fresh call's only (a cached vector costs nothing)."""
        by_text = dict(zip(self.missing, fresh.embeddings or [], strict=True)) if fresh else {}
        vectors = [v if v is not None else by_text.get(t)
                   for t, v in zip(self.inputs, self.vectors, strict=True)]
        if any(v is None for v in vectors):
            raise malformed("embeddings: a vector is missing")
        if fresh is None:
            return Completion(text="", finish_reason="stop", input_tokens=0, output_tokens=0,
                              response_model=None, embeddings=vectors)
        return Completion(**{**fresh.__dict__, "embeddings": vectors})

    def fresh_items(self, fresh: Completion) -> dict[str, list[float]]:
        by_text = dict(zip(self.missing, fresh.embeddings or [], strict=True))
        return {key: by_text[text] for key, text, v in zip(
            self.keys, self.inputs, self.vectors, strict=True) if v is None}


async def lookup(cache: EmbeddingCache | None, task: TaskEvent) -> EmbedLookup:
    inputs = list(task.input or ())
    keys = [cache_key(task.tenant, task.provider, task.model, task.params.dimensions, text)
            for text in inputs]
    vectors = await cache.get_many(keys) if cache is not None else [None] * len(inputs)
    return EmbedLookup(inputs, keys, vectors)


def combine(parts: list[Completion]) -> Completion:
    """One completion of the batches of one embedding request, in batch order."""
    vectors = [v for part in parts for v in part.embeddings or ()]
    return Completion(
        text="", finish_reason="stop",
        input_tokens=sum(p.input_tokens for p in parts), output_tokens=0,
        response_model=next((p.response_model for p in parts if p.response_model), None),
        embeddings=vectors)
