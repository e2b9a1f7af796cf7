"""Plasticity rules (LANGUAGE.md §4), backend-neutral: where each name of a rule lives, what a
value may read, and one step of a rule as the assignments every backend prints.

Scopes: a `pre state` holds one value per presynaptic neuron ([batch, pre]), a `post state` one
per postsynaptic neuron ([batch, post]), a `syn state` one per synapse ([batch, post, pre]); `w`
is the weight [post, pre], shared by the batch. Params, modulators and `dt` have no scope: they
broadcast everywhere (a modulator is a scalar or one value per batch item).

- A value reads what broadcasts to its own shape: a pre value reads pre values, a post value post
  values, a syn state or `w` anything (pre values broadcast along its rows, post values along its
  columns). The same holds for the bounds of a `clip`.
- `on pre` runs where a presynaptic neuron spiked: it may change pre and syn states and `w`, never a
  post state (which neuron's entry would change?); `on post` conversely.

The checker reports a spec that breaks these (`check.check_rule`, with spans); `rule_step`
raises `UnsupportedRule` for a lowered rule that breaks them (IR from another front end).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .. import ir
from ..expr import names
from .adjoint import reset_blend

EVERYTHING = frozenset({"pre", "post", "syn", "w"})
READS: dict[str, frozenset[str]] = {"pre": frozenset({"pre"}), "post": frozenset({"post"}), "syn": EVERYTHING,
                                    "w": EVERYTHING}
SHAPES = {"pre": "[batch, pre]", "post": "[batch, post]", "syn": "[batch, post, pre]", "w": "[post, pre]"}
GATE = "gate'"


class UnsupportedRule(Exception):
    """A lowered rule whose statements cannot broadcast (e.g. a post state changed `on pre`)."""


def scope_of(name: str, scopes: Mapping[str, str]) -> str:
    """`pre`, `post`, `syn`, `w`, or "" for a name without scope (param, modulator, `dt`)."""
    return "w" if name == "w" else scopes.get(name, "")


def unreadable(scope: str, read: Iterable[str], scopes: Mapping[str, str]) -> list[str]:
    """The names in `read` that a value of `scope` cannot read, in order (each once)."""
    allowed = READS.get(scope, EVERYTHING)
    out: list[str] = []
    for name in read:
        other = scope_of(name, scopes)
        if other and other not in allowed and name not in out:
            out.append(name)
    return out


def may_change(event: str, scope: str) -> bool:
    """Whether `on EVENT` may change a value of `scope`: not the other side's states."""
    return not (event == "pre" and scope == "post" or event == "post" and scope == "pre")


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
