"""What a PromQL expression refers to, from its syntax tree (promql-parser): each selected
metric with the labels its matchers use, and each aggregation's or vector match's grouping
labels with the metrics it sees. tests/observability checks these against the metrics the
services really export."""

from __future__ import annotations

from dataclasses import dataclass, field

import promql_parser as promql


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]]  # (label, op, value)


@dataclass
class Grouping:
    labels: list[str]
    selectors: list[Selector] = field(default_factory=list)


@dataclass
class Refs:
    selectors: list[Selector] = field(default_factory=list)
    groupings: list[Grouping] = field(default_factory=list)


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def refs(expr: str) -> Refs:
    """Every selector and grouping of ``expr`` (raises on a syntax error)."""
    out = Refs()
    _walk(promql.parse(expr), out)
    return out


def _walk(node, out: Refs) -> list[Selector]:
    """Adds what ``node`` refers to into ``out``; returns the selectors under it."""
    if isinstance(node, promql.VectorSelector):
        selector = Selector(node.name, [(m.name, _OPS[str(m.op)], m.value)
                                        for m in node.matchers.matchers])
        out.selectors.append(selector)
        return [selector]
    if isinstance(node, promql.MatrixSelector):
        return _walk(node.vector_selector, out)
    if isinstance(node, promql.AggregateExpr):
        under = _walk(node.expr, out)
        if node.param is not None:
            under += _walk(node.param, out)
        if node.modifier is not None and node.modifier.labels:
            out.groupings.append(Grouping(list(node.modifier.labels), under))
        return under
    if isinstance(node, promql.BinaryExpr):
        under = _walk(node.lhs, out) + _walk(node.rhs, out)
        matching = node.modifier.matching if node.modifier is not None else None
        if matching is not None and matching.labels:
            out.groupings.append(Grouping(list(matching.labels), under))
        return under
    if isinstance(node, promql.Call):
        return [s for arg in node.args for s in _walk(arg, out)]
    if isinstance(node, promql.ParenExpr | promql.SubqueryExpr | promql.UnaryExpr):
        return _walk(node.expr, out)
    return []  # number and string literals
