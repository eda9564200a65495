"""The model catalog: what each model can do, where it runs, what it costs, what it may see.

A model's deployment *surface* follows from its provider and cannot be declared otherwise:
``selfhosted`` models run on our own infrastructure, every other provider is a hosted API.
The policy's ``data_classes`` table maps each data class to the surfaces allowed to see it,
and a policy that lets restricted data reach a hosted surface is refused at load.
"""

from __future__ import annotations

from typing import Literal

from modelbus_schemas import DataClass
from modelbus_schemas.topics import PROVIDERS
from pydantic import BaseModel, ConfigDict, Field, field_validator

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


def surface_of(provider: str) -> Surface:
    return "self_hosted" if provider in SELF_HOSTED_PROVIDERS else "hosted"


class CatalogModel(BaseModel):
    """One model the policy may route to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    model: str = Field(min_length=1)
    capabilities: list[str] = Field(default_factory=lambda: ["chat"])
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
