"""Offset tracking: commits never pass a message that has not finished."""

from __future__ import annotations

from modelbus_runtime.offsets import OffsetTracker


def test_out_of_order_completion_commits_only_the_contiguous_prefix():
    t = OffsetTracker()
    for offset in (10, 11, 12, 13):
        t.start("p0", offset)
    t.finish("p0", 12)
    t.finish("p0", 11)
    assert t.take_commits() == {}
    t.finish("p0", 10)
    assert t.take_commits() == {"p0": 13}
    assert t.take_commits() == {}, "the same offset is not committed twice"
    t.finish("p0", 13)
    assert t.take_commits() == {"p0": 14}
    assert t.in_flight() == 0


def test_partitions_are_independent_and_can_be_forgotten():
    t = OffsetTracker()
    t.start("a", 0)
    t.start("b", 5)
    t.finish("b", 5)
    assert t.take_commits() == {"b": 6}
    assert t.in_flight("a") == 1
    t.forget({"a"})
    assert t.in_flight() == 0
    t.finish("a", 0)  # a late finish after revocation is ignored
    assert t.take_commits() == {}
