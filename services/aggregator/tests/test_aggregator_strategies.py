"""Ensemble strategies and checks on outputs, without Redis or a broker."""

from __future__ import annotations

from modelbus_aggregator.answers import normalise
from modelbus_aggregator.checks import run_check
from modelbus_aggregator.strategies import best_score, is_ready, majority, merge_all
from modelbus_schemas import CheckSpec, EnsembleSpec

from services.aggregator.tests.aggregator_factories import make_result


def test_majority_votes_over_normalised_answers():
    parts = [make_result(part=0, text="Lyon"), make_result(part=1, text=" paris. "),
             make_result(part=2, text="PARIS")]
    pick = majority(parts)
    assert pick.output == " paris. "  # the earliest part of the winning group, verbatim
    assert [r.part_id for r in pick.winners] == [1, 2]
    assert normalise("  The  Answer! ") == "the answer"


def test_majority_tie_goes_to_policy_order():
    parts = [make_result(part=0, text="b"), make_result(part=1, text="a"),
             make_result(part=2, text="a"), make_result(part=3, text="b")]
    assert majority(parts).output == "b"


def test_all_merges_labelled_answers_in_part_order():
    pick = merge_all([make_result(part=0, text="x"), make_result(part=2, text="z")])
    assert pick.output == "[openai/m0]\nx\n\n[openai/m2]\nz"


def test_best_score_by_validator_then_confidence_then_part_order():
    schema = CheckSpec(kind="json_schema", json_schema={
        "type": "object", "required": ["city"]})
    parts = [make_result(part=0, text="Paris", confidence=0.99),
             make_result(part=1, text='{"city": "Paris"}', confidence=0.2),
             make_result(part=2, text='{"city": "Lyon"}', confidence=0.7)]
    assert best_score(parts, schema).winners[0].part_id == 2
    assert best_score(parts, None).winners[0].part_id == 0
    same = [make_result(part=0, text="a"), make_result(part=1, text="b")]
    assert best_score(same, None).winners[0].part_id == 0


def test_readiness_by_quorum_and_first_success():
    one_ok = [make_result(part=0, total=3), make_result(part=1, total=3, status="error")]
    assert is_ready(EnsembleSpec(strategy="first_success"), one_ok, 3)
    assert not is_ready(EnsembleSpec(strategy="majority"), one_ok, 3)
    assert not is_ready(EnsembleSpec(strategy="majority", quorum=2), one_ok, 3)
    two_ok = [make_result(part=0, total=3), make_result(part=2, total=3)]
    assert is_ready(EnsembleSpec(strategy="majority", quorum=2), two_ok, 3)


def test_checks_decide_pass_or_fail():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    check = CheckSpec(kind="json_schema", json_schema=schema)
    assert run_check(check, make_result(text='```json\n{"n": 3}\n```')).passed
    bad = run_check(check, make_result(text='{"n": "three"}'))
    assert not bad.passed and "n" in bad.reason
    assert not run_check(check, make_result(text="not json")).passed
    regex = CheckSpec(kind="regex", pattern=r"\bPARIS\b")
    assert run_check(regex, make_result(text="It is PARIS.")).passed
    assert not run_check(regex, make_result(text="It is Lyon.")).passed
    conf = CheckSpec(kind="min_confidence", threshold=0.8)
    assert run_check(conf, make_result(confidence=0.85)).passed
    assert not run_check(conf, make_result(confidence=0.5)).passed
    assert not run_check(conf, make_result()).passed  # no confidence reported
    length = CheckSpec(kind="min_length", min_chars=5)
    assert run_check(length, make_result(text="long enough")).passed
    assert not run_check(length, make_result(text=" abc ")).passed
    assert run_check(CheckSpec(kind="judge"), make_result()) is None
    assert not run_check(regex, make_result(status="error")).passed
