"""Chain context transforms: what each keeps, and that no input exceeds its budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from modelbus_aggregator.transforms import build_input, count_tokens, stage_messages
from modelbus_schemas import ChainStage, Target

T = Target(provider="openai", model="m")


def _stage(transform: str, budget: int | None = None, inputs=("request", "analyse")):
    return ChainStage(name="next", target=T, instruction="Summarise the kafka design",
                      inputs=list(inputs), transform=transform, token_budget=budget)


SOURCES = {
    "request": "How does kafka keep order?",
    "analyse": "Kafka keeps order per partition.\nThe weather is nice.\n\nKafka keeps order "
               "per partition.",
}


def test_merge_labels_sections_and_drops_repeated_lines():
    text = build_input(_stage("merge"), SOURCES)
    assert text.startswith("## request\nHow does kafka keep order?\n\n## analyse\n")
    assert text.count("Kafka keeps order per partition.") == 1


def test_filter_keeps_lines_relevant_to_the_request():
    text = build_input(_stage("filter"), SOURCES)
    assert "Kafka keeps order per partition." in text
    assert "weather" not in text


def test_compress_shares_the_budget_between_inputs():
    text = build_input(_stage("compress", budget=6), SOURCES)
    pieces = text.split("\n\n")
    assert [count_tokens(p) for p in pieces] == [3, 3]


def test_unknown_inputs_are_ignored_and_instruction_becomes_the_system_message():
    messages = stage_messages(_stage("none", inputs=("request", "nope")), SOURCES)
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[1].content == SOURCES["request"]


@given(st.sampled_from(["none", "merge", "filter", "compress"]),
       st.integers(min_value=1, max_value=40),
       st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=3))
def test_no_transform_exceeds_the_token_budget(transform, budget, texts):
    sources = {"request": texts[0], **{f"s{i}": t for i, t in enumerate(texts[1:])}}
    stage = _stage(transform, budget, inputs=list(sources))
    assert count_tokens(build_input(stage, sources)) <= budget
