"""Prompt templates per task: a system prompt, few-shot examples, per-provider variants.

Templates live in the policy file, so they are versioned with it; a decision records the
template as ``name@version`` (the declared ``version``, else a hash of the template's
content). Rendering puts the template's system prompt first, then the examples as
user/assistant turns, then the request's own messages; a request's own system messages are
kept after the template's, so the policy's instructions come first.
"""

from __future__ import annotations

import hashlib

from modelbus_schemas import ChatMessage
from pydantic import BaseModel, ConfigDict, Field


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str
    assistant: str


class TemplateVariant(BaseModel):
    """Overrides for one provider (e.g. XML-tagged instructions for Claude)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str | None = None
    examples: list[Example] | None = None


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = Field(default=None, max_length=64)
    system: str | None = None
    examples: list[Example] = Field(default_factory=list)
    variants: dict[str, TemplateVariant] = Field(default_factory=dict)

    def ident(self, name: str) -> str:
        version = self.version or hashlib.sha256(
            self.model_dump_json().encode()
        ).hexdigest()[:8]
        return f"{name}@{version}"


def render(
    template: Template | None, provider: str, messages: list[ChatMessage]
) -> list[ChatMessage]:
    """The messages a provider receives for this request under this template."""
    if template is None:
        return list(messages)
    variant = template.variants.get(provider)
    system = variant.system if variant and variant.system is not None else template.system
    examples = variant.examples if variant and variant.examples is not None else template.examples
    out: list[ChatMessage] = []
    if system:
        out.append(ChatMessage(role="system", content=system))
    for example in examples:
        out.append(ChatMessage(role="user", content=example.user))
        out.append(ChatMessage(role="assistant", content=example.assistant))
    out.extend(messages)
    return out
