"""The registry of request rules the simulator enforces, and their on/off switches.

Every rule the providers publish is a `Rule` with an id (``<provider>.<name>``), whether it
is on by default, and the reference it comes from.  The rule checks live in
`rules_openai`, `rules_anthropic` and `rules_gemini`; a check returns a `Violation`
(the message the real API would send, plus the offending parameter) or None.  Scripts
switch rules with ``rules: {anthropic.alternating_roles: true}`` and the admin API with
``PUT /_sim/rules``.  Rules that the current reference no longer states (Anthropic now
merges consecutive turns and accepts a leading assistant turn) are off by default and can
be switched on to mimic stricter deployments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    default: bool
    source: str


@dataclass(slots=True)
class Violation:
    rule: str
    message: str
    param: str | None = None
    code: str | None = None


def run(checks, body: dict, on) -> Violation | None:
    """The first violation among `checks` (callables of the body) whose rule is on."""
    for rule, check in checks:
        if on(rule):
            found = check(body)
            if found is not None:
                return Violation(rule, *found) if isinstance(found, tuple) else found
    return None


_OPENAI_CHAT = "https://platform.openai.com/docs/api-reference/chat/create"
_OPENAI_REASONING = "https://platform.openai.com/docs/guides/reasoning"
_OPENAI_TOOLS = "https://platform.openai.com/docs/guides/function-calling"
_OPENAI_EMBED = "https://platform.openai.com/docs/api-reference/embeddings/create"
_ANTHROPIC = "https://docs.anthropic.com/en/api/messages"
_ANTHROPIC_TOOLS = "https://docs.anthropic.com/en/docs/build-with-claude/tool-use"
_GEMINI = "https://ai.google.dev/api/generate-content"
_GEMINI_TOOLS = "https://ai.google.dev/gemini-api/docs/function-calling"
_GEMINI_EMBED = "https://ai.google.dev/api/embeddings"

RULES = {
    r.id: r
    for r in (
        Rule("openai.max_stop", True, _OPENAI_CHAT + "#chat-create-stop"),
        Rule("openai.reasoning_params", True, _OPENAI_REASONING),
        Rule("openai.tool_name", True, _OPENAI_CHAT + "#chat-create-tools"),
        Rule("openai.tool_schema", True, _OPENAI_TOOLS),
        Rule("openai.tool_answers", True, _OPENAI_TOOLS),
        Rule("openai.response_format", True, "https://platform.openai.com/docs/guides/structured-outputs"),
        Rule("openai.images", True, "https://platform.openai.com/docs/guides/images-vision"),
        Rule("openai.embeddings_input", True, _OPENAI_EMBED),
        Rule("anthropic.non_empty", True, _ANTHROPIC),
        Rule("anthropic.temperature", True, _ANTHROPIC),
        Rule("anthropic.tool_pairs", True, _ANTHROPIC_TOOLS),
        Rule("anthropic.tool_name", True, _ANTHROPIC_TOOLS),
        Rule("anthropic.output_format", True,
             "https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs"),
        Rule("anthropic.images", True, "https://docs.anthropic.com/en/docs/build-with-claude/vision"),
        Rule("anthropic.first_user", False, _ANTHROPIC),
        Rule("anthropic.alternating_roles", False, _ANTHROPIC),
        Rule("gemini.max_stop", True, _GEMINI + "#generationconfig"),
        Rule("gemini.non_empty", True, _GEMINI),
        Rule("gemini.function_responses", True, _GEMINI_TOOLS),
        Rule("gemini.function_name", True, _GEMINI_TOOLS),
        Rule("gemini.images", True, "https://ai.google.dev/gemini-api/docs/image-understanding"),
        Rule("gemini.response_schema", True, "https://ai.google.dev/gemini-api/docs/structured-output"),
        Rule("gemini.batch_embed", True, _GEMINI_EMBED + "#method:-models.batchembedcontents"),
    )
}
