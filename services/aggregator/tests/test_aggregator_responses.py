"""The response's finish reason: taken from the results whose answer is the output."""

from __future__ import annotations

from modelbus_aggregator.responses import finish_reason, single_response

from services.aggregator.tests.aggregator_factories import make_result


def test_single_result_passes_its_finish_reason_on():
    cut = make_result(text="a truncated answ", finish_reason="length")
    assert single_response(cut).finish_reason == "length"
    assert single_response(make_result(finish_reason="stop")).finish_reason == "stop"


def test_error_response_has_no_finish_reason():
    assert single_response(make_result(status="error", finish_reason="error")).finish_reason \
        is None


def test_the_result_whose_text_is_the_output_decides():
    winner = make_result(part=0, text="4", finish_reason="stop")
    loser = make_result(part=1, text="five and a half and", finish_reason="length")
    assert finish_reason("4", [winner, loser]) == "stop"


def test_a_blend_is_cut_if_any_part_was_and_otherwise_unknown_when_parts_disagree():
    a = make_result(part=0, text="one", finish_reason="stop")
    b = make_result(part=1, text="two", finish_reason="length")
    c = make_result(part=2, text="three", finish_reason="content_filter")
    assert finish_reason("one\ntwo", [a, b]) == "length"
    assert finish_reason("one\nthree", [a, c]) is None
    assert finish_reason("one\none", [a, a]) == "stop"
