"""Plasticity rules (LANGUAGE.md §4), backend-neutral: one step of a rule as the blocks of
assignments every backend prints (`LRule.blocks`).

What each name's scope is and what a value may read and change is `rule_scope.py`; `plan_rule`
reports a rule that breaks those rules (IR from another front end skips the checker).
"""

from __future__ import annotations

from .. import ir
from ..diagnostics import Diagnostics
from ..expr import names
from ..rule_scope import may_change, scope_of, unreadable
from .adjoint import reset_blend


class UnsupportedRule(Exception):
    """A lowered rule whose statements cannot broadcast (e.g. a post state changed `on pre`)."""


def plan_rule(rule: ir.LRule, diags: Diagnostics, span: ir.Span | None) -> ir.LRule:
    """`rule` with the blocks of its step; a rule that breaks the scope rules is an error at `span`."""
    try:
        return rule.model_copy(update={"blocks": rule_step(rule)})
    except UnsupportedRule as err:
        diags.error(str(err), span, "a pre value may read only pre values and a post value only post values")
        return rule


def rule_step(rule: ir.LRule) -> tuple[ir.LRuleBlock, ...]:
    """The blocks of one step of `rule`, each checked against the scope rules (`rule_scope.py`)."""
    scopes = rule.scopes
    blocks: list[ir.LRuleBlock] = []
    if rule.updates:
        assignments = []
        for u in rule.updates:
            scope = scope_of(u.var, scopes)
            _check_reads(rule, u.var, u.value, "an update of")
            assignments.append(_assignment(u.var, scope, u.value, u.line))
        blocks.append(ir.LRuleBlock(event=None, assignments=tuple(assignments)))
    for event, body in (("pre", rule.on_pre), ("post", rule.on_post)):
        if not body:
            continue
        assignments = []
        for u in body:
            scope = scope_of(u.var, scopes)
            _check_reads(rule, u.var, u.value, f"`on {event}`,")
            if not may_change(event, scope):
                raise UnsupportedRule(f"rule '{rule.name}': `on {event}` cannot change the {scope} state '{u.var}'")
            blend = reset_blend(u.var, u.value, ())  # var' + gate' * e, or var' - gate' * (var' - value)
            assignments.append(_assignment(u.var, scope, blend, u.line))
        blocks.append(ir.LRuleBlock(event=event, assignments=tuple(assignments)))  # type: ignore[arg-type]
    for c in rule.clips:
        _check_reads(rule, c.var, ir.BinOp(op="+", left=c.low, right=c.high), "the clip of")
    return tuple(blocks)


def _check_reads(rule: ir.LRule, var: str, value: ir.Expr, where: str) -> None:
    scope = scope_of(var, rule.scopes)
    bad = unreadable(scope, (n.id for n in names(value)), rule.scopes)
    if bad:
        kinds = sorted({scope_of(n, rule.scopes) for n in bad})
        raise UnsupportedRule(f"rule '{rule.name}': {where} a {scope} value '{var}' cannot read "
                              f"{', '.join(kinds)} values")


def _assignment(var: str, scope: str, value: ir.Expr, line: int | None) -> ir.LRuleAssignment:
    if var == "w" and isinstance(value, ir.BinOp) and value.op in ("+", "-") and isinstance(value.left, ir.Name) \
            and value.left.id in ("w", "w'"):
        # `w + D`: the mean of the changes (a change that is exactly zero for every sample leaves `w`
        # exactly as it was, and small changes keep their precision)
        return ir.LRuleAssignment(var=var, scope=scope, value=value.right, line=line, op=value.op)
    return ir.LRuleAssignment(var=var, scope=scope, value=value, line=line)
