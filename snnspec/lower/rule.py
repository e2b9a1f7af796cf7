"""Plasticity rules (LANGUAGE.md §4), backend-neutral: one step of a rule as the assignments every
backend prints, and how a value of one scope broadcasts against values of another.

What each name's scope is and what a value may read and change is `rule_scope.py`; `rule_step`
raises `UnsupportedRule` for a lowered rule that breaks those rules (IR from another front end).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from ..expr import names
from ..rule_scope import may_change, scope_of, unreadable
from .adjoint import reset_blend

SHAPES = {"pre": "[batch, pre]", "post": "[batch, post]", "syn": "[batch, post, pre]", "w": "[post, pre]"}
GATE = "gate'"


class UnsupportedRule(Exception):
    """A lowered rule whose statements cannot broadcast (e.g. a post state changed `on pre`)."""


def broadcast(scope: str, context: str) -> str:
    """The index that makes a value of `scope` broadcast against values of `context`: a pre value
    [batch, pre] read per synapse is `x[:, None, :]`, a post value `x[:, :, None]`; otherwise none.
    (The same text in torch and jax.numpy.)"""
    if context in ("syn", "w"):
        return {"pre": "[:, None, :]", "post": "[:, :, None]"}.get(scope, "")
    return ""


def modulator_index(context: str) -> str:
    """A modulator, flattened to [batch] (or [1]), read by a value of `context`."""
    return "[:, None]" if context in ("pre", "post") else "[:, None, None]"


def gate(event: str, scope: str) -> str:
    """The gate of `on EVENT` for a value of `scope`: this step's spikes of that side, broadcast."""
    return event + broadcast(event, scope)


@dataclass(frozen=True)
class Assignment:
    """`var = value` for every sample. For `w` (shared by the batch) the new weight is the batch
    mean: `w + mean(value)` / `w - mean(value)` when `op` is "+" / "-" (`value` is then the change),
    else `mean(value)`. In an `on` block, `var'` is the value before the block and `gate'` the gate."""

    var: str
    scope: str
    value: ir.Expr
    line: int | None
    op: str | None = None


@dataclass(frozen=True)
class Block:
    """Simultaneous assignments: the rule's own updates (`event` None), or `on pre` / `on post`."""

    event: str | None
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class RuleStep:
    """One step of a rule, after the postsynaptic layer spiked: updates, `on pre`, `on post`, clips."""

    blocks: tuple[Block, ...]
    clips: tuple[ir.Clip, ...]


def rule_step(rule: ir.LRule) -> RuleStep:
    """The blocks of one step of `rule`, each checked against the scope rules above."""
    scopes = rule.scopes
    blocks: list[Block] = []
    if rule.updates:
        assignments = []
        for u in rule.updates:
            scope = scope_of(u.var, scopes)
            _check_reads(rule, u.var, u.value, "an update of")
            assignments.append(_assignment(u.var, scope, u.value, u.line))
        blocks.append(Block(event=None, assignments=tuple(assignments)))
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
        blocks.append(Block(event=event, assignments=tuple(assignments)))
    for c in rule.clips:
        _check_reads(rule, c.var, ir.BinOp(op="+", left=c.low, right=c.high), "the clip of")
    return RuleStep(blocks=tuple(blocks), clips=rule.clips)


def _check_reads(rule: ir.LRule, var: str, value: ir.Expr, where: str) -> None:
    scope = scope_of(var, rule.scopes)
    bad = unreadable(scope, (n.id for n in names(value)), rule.scopes)
    if bad:
        kinds = sorted({scope_of(n, rule.scopes) for n in bad})
        raise UnsupportedRule(f"rule '{rule.name}': {where} a {scope} value '{var}' cannot read "
                              f"{', '.join(kinds)} values")


def _assignment(var: str, scope: str, value: ir.Expr, line: int | None) -> Assignment:
    if var == "w" and isinstance(value, ir.BinOp) and value.op in ("+", "-") and isinstance(value.left, ir.Name) \
            and value.left.id in ("w", "w'"):
        # `w + D`: the mean of the changes (a change that is exactly zero for every sample leaves `w`
        # exactly as it was, and small changes keep their precision)
        return Assignment(var, scope, value.right, line, value.op)
    return Assignment(var, scope, value, line)
