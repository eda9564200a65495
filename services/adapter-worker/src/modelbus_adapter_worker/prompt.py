"""The canonical prompt of a task, split the way every wire format needs it: the system
text apart, the conversation turns in order, and the rendered context placed at the top of
the first user turn (where long documents work best for every provider)."""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import TaskEvent

from modelbus_adapter_worker.context import render_context, style_for


@dataclass(frozen=True)
class Prompt:
    system: str | None
    turns: list[tuple[str, str]]  # (role "user" | "assistant", text)


def prompt_of(task: TaskEvent) -> Prompt:
    system = "\n\n".join(m.content for m in task.messages if m.role == "system") or None
    turns = [(m.role, m.content) for m in task.messages if m.role != "system"]
    context = render_context(task.context, style_for(task.model))
    if context:
        first_user = next((i for i, (role, _) in enumerate(turns) if role == "user"), None)
        if first_user is None:
            turns.insert(0, ("user", context))
        else:
            turns[first_user] = ("user", context + "\n\n" + turns[first_user][1])
    return Prompt(system, turns)


def estimated_input_tokens(task: TaskEvent) -> int:
    """For rate limiting before the call: the router's estimate, else ~4 chars a token."""
    if task.decision.estimated_input_tokens:
        return task.decision.estimated_input_tokens
    chars = sum(len(m.content) for m in task.messages) + sum(len(c.content) for c in task.context)
    return max(1, chars // 4)
