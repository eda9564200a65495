"""The canonical prompt of a task, split the way every wire format needs it: the system
text apart, the conversation turns (user, assistant, tool) in order, and the rendered context
placed at the top of the first user turn (where long documents work best for every provider).

Turns keep their parts (text, images, tool calls, tool answers); each adapter's
``normalize_<provider>`` module turns them into its wire format and meets its rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import ChatMessage, TaskEvent
from modelbus_schemas.content import TextPart

from modelbus_adapter_worker.context import render_context, style_for


@dataclass(frozen=True)
class Prompt:
    system: str | None
    turns: list[ChatMessage]  # role "user" | "assistant" | "tool"

    def tool_names(self) -> dict[str, str]:
        """Function name of every tool call the assistant made, by call id (a ``tool`` turn
        names the call it answers only by id; Gemini needs the name)."""
        return {call.id: call.name for turn in self.turns for call in turn.tool_calls or ()}


def prompt_of(task: TaskEvent) -> Prompt:
    system = "\n\n".join(m.text for m in task.messages if m.role == "system" and m.text) or None
    turns = [m for m in task.messages if m.role != "system"]
    context = render_context(task.context, style_for(task.model))
    if context:
        first_user = next((i for i, m in enumerate(turns) if m.role == "user"), None)
        if first_user is None:
            turns.insert(0, ChatMessage(role="user", content=context))
        else:
            turn = turns[first_user]
            if isinstance(turn.content, str):
                content: str | list = context + "\n\n" + turn.content
            else:
                content = [TextPart(text=context), *turn.parts()]
            turns[first_user] = turn.model_copy(update={"content": content})
    return Prompt(system, turns)


def estimated_input_tokens(task: TaskEvent) -> int:
    """For rate limiting before the call: the router's estimate, else ~4 chars a token
    (an image counts as about 1,000 tokens, a claim-checked text by its stored size)."""
    if task.decision.estimated_input_tokens:
        return task.decision.estimated_input_tokens
    chars = sum(len(m.text) + 4000 * m.image_count() + sum(
        p.blob.size_bytes for p in m.parts() if p.type == "blob" and p.blob.kind == "text")
        for m in task.messages)
    chars += sum(len(c.content) for c in task.context) + sum(map(len, task.input or ()))
    return max(1, chars // 4)
