"""The base of every contract model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every contract model: immutable, no unknown fields inside the contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")
