"""The model catalog: what each model can do, where it runs, what it costs, what it may see.

A model's deployment *surface* follows from its provider and cannot be declared otherwise:
``selfhosted`` models run on our own infrastructure, every other provider is a hosted API.
The policy's ``data_classes`` table maps each data class to the surfaces allowed to see it,
and a policy that lets restricted data reach a hosted surface is refused at load.

Each model also declares what it can do (``capabilities``: ``chat``, ``tools``, ``vision``,
``json_schema``, ``json_object``, ``embeddings``) and the limits of its API (``limits``).
Undeclared, both default per provider from the providers' API references (see
docs/providers.md), and a declared ``limits`` field overrides only itself:

* OpenAI chat models: every chat capability; at most 4 ``stop`` sequences (Chat Completions
  reference), 500 images per request (vision guide), 128 tools; the o-series and GPT-5
  reasoning models take no ``temperature``/``top_p`` (reasoning guide). Embedding models
  (``text-embedding-3-small``/``-large``): ``dimensions`` 1-1536 / 1-3072, 2048 inputs.
* Anthropic: every chat capability (JSON output through tool use or structured outputs);
  100 images per request (vision guide); no published stop-sequence limit. No embeddings.
* Gemini: every chat capability; at most 5 ``stopSequences`` (GenerationConfig reference),
  3600 images per request. ``gemini-embedding-001``: ``outputDimensionality`` 128-3072;
  ``text-embedding-004``: up to 768.
* Self-hosted (OpenAI-compatible: vLLM, Ollama): chat, tools, JSON output; the OpenAI limit
  of 4 stop sequences. Vision only where the entry declares it (it depends on the model).

A model whose name says ``embedding`` defaults to ``[embeddings]`` alone. The router rejects
a model only for what the worker cannot normalise: extra stop sequences are enforced on the
output and temperature is dropped for reasoning models, so ``max_stop`` and ``temperature``
inform the worker and docs but never reject (:mod:`modelbus_router.capabilities`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from modelbus_schemas import DataClass
from modelbus_schemas.topics import PROVIDERS
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelbus_router.routes import Access

Surface = Literal["hosted", "self_hosted"]
SELF_HOSTED_PROVIDERS = frozenset({"selfhosted"})
ANY_REGION = "*"

DEFAULT_SURFACES: dict[DataClass, list[Surface]] = {
    DataClass.PUBLIC: ["hosted", "self_hosted"],
    DataClass.INTERNAL: ["hosted", "self_hosted"],
    DataClass.CONFIDENTIAL: ["hosted", "self_hosted"],
    DataClass.RESTRICTED: ["self_hosted"],
}


CAPABILITIES = ("chat", "tools", "vision", "json_schema", "json_object", "embeddings")
_CHAT = ["chat", "tools", "vision", "json_schema", "json_object"]
_PROVIDER_CAPABILITIES: dict[str, list[str]] = {
    "openai": _CHAT, "anthropic": _CHAT, "gemini": _CHAT,
    "selfhosted": ["chat", "tools", "json_schema", "json_object"],
}
_PROVIDER_LIMITS: dict[str, dict[str, Any]] = {
    # image bytes: OpenAI 20 MB a file (images-vision guide), Anthropic 5 MB an image
    # (vision guide), Gemini 20 MB of inline data a request (generateContent reference)
    "openai": {"max_stop": 4, "max_images": 500, "max_tools": 128,
               "max_image_bytes": 20_000_000},
    "anthropic": {"max_images": 100, "max_image_bytes": 5_000_000},
    "gemini": {"max_stop": 5, "max_images": 3600, "max_image_bytes": 20_000_000},
    "selfhosted": {"max_stop": 4},
}
_EMBEDDING_LIMITS: dict[tuple[str, str], dict[str, Any]] = {
    # tokens an input may have: OpenAI 8,192 (embeddings reference), Gemini 2,048 (models page)
    ("openai", "text-embedding-3-small"): {"dimensions": (1, 1536), "max_inputs": 2048,
                                           "max_input_tokens": 8192},
    ("openai", "text-embedding-3-large"): {"dimensions": (1, 3072), "max_inputs": 2048,
                                           "max_input_tokens": 8192},
    ("openai", "text-embedding-ada-002"): {"max_inputs": 2048, "max_input_tokens": 8192},
    ("gemini", "gemini-embedding-001"): {"dimensions": (128, 3072), "max_input_tokens": 2048},
    ("gemini", "text-embedding-004"): {"dimensions": (1, 768), "max_input_tokens": 2048},
}
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)")
_OPENAI_TEXT_ONLY = re.compile(r"^(o1-mini|o3-mini|gpt-3\.5)")  # no image input


class Limits(BaseModel):
    """What a model's API accepts beyond what the contract checks (None: no published limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_stop: int | None = Field(default=None, ge=0, description="stop sequences")
    max_images: int | None = Field(default=None, ge=0, description="images per request")
    max_tools: int | None = Field(default=None, ge=0, description="tools per request")
    temperature: bool = Field(default=True, description="False: a reasoning model")
    dimensions: tuple[int, int] | None = Field(
        default=None, description="embedding sizes `dimensions` may ask for (None: native only)")
    max_inputs: int | None = Field(default=None, ge=1, description="embedding inputs per call")
    max_image_bytes: int | None = Field(default=None, ge=1, description="bytes of one image")
    max_input_tokens: int | None = Field(default=None, ge=1,
                                         description="tokens of one embedding input")


def _is_embedding(model: str) -> bool:
    return "embedding" in model.lower()


def default_capabilities(provider: str, model: str) -> list[str]:
    if _is_embedding(model):
        return ["embeddings"]
    capabilities = list(_PROVIDER_CAPABILITIES.get(provider, ["chat"]))
    if provider == "openai" and _OPENAI_TEXT_ONLY.match(model):
        capabilities.remove("vision")
    return capabilities


def default_limits(provider: str, model: str, capabilities: list[str]) -> dict[str, Any]:
    if "chat" not in capabilities:  # an embedding model: none of the chat limits apply
        return dict(_EMBEDDING_LIMITS.get((provider, model), {}))
    limits = dict(_PROVIDER_LIMITS.get(provider, {}))
    if provider == "openai" and _OPENAI_REASONING.match(model):
        limits["temperature"] = False
    return limits


def surface_of(provider: str) -> Surface:
    return "self_hosted" if provider in SELF_HOSTED_PROVIDERS else "hosted"


class CatalogModel(BaseModel):
    """One model the policy may route to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    model: str = Field(min_length=1)
    capabilities: list[str] = Field(
        default_factory=lambda: ["chat"],
        description=f"any of {CAPABILITIES}; default: the provider's (see the module doc)")
    limits: Limits = Limits()
    context_window: int = Field(default=128_000, ge=256)
    input_usd_per_mtok: float = Field(default=0.0, ge=0)
    output_usd_per_mtok: float = Field(default=0.0, ge=0)
    regions: list[str] = Field(default_factory=lambda: [ANY_REGION], min_length=1)
    data_classes: list[DataClass] | None = Field(
        default=None, description="further narrows the policy's data_classes table"
    )
    allow: Access | None = Field(
        default=None, description="tenants/teams whose requests the model may see (any: None)"
    )

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            return data
        provider, model = data.get("provider", ""), data["model"]
        data = dict(data)
        capabilities = data.setdefault("capabilities", default_capabilities(provider, model))
        declared = data.get("limits") or {}
        if isinstance(declared, Limits):
            declared = declared.model_dump(exclude_unset=True)
        data["limits"] = {**default_limits(provider, model, list(capabilities)), **declared}
        return data

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(CAPABILITIES))
        if unknown:  # a typo ("vison") would silently take a capability away
            raise ValueError(f"unknown capabilities {unknown}; known: {list(CAPABILITIES)}")
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; expected one of {PROVIDERS}")
        return value

    @property
    def surface(self) -> Surface:
        return surface_of(self.provider)

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"

    def serves_region(self, region: str | None) -> bool:
        return region is None or ANY_REGION in self.regions or region in self.regions

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1_000_000
