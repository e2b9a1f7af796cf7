"""Where each name of a plasticity rule lives, and what a value of each scope may read and change
(LANGUAGE.md §4). The checker reports a spec that breaks these rules (`check.check_rule_scopes`,
with spans); lowering refuses a lowered rule that breaks them (`lower.rule.rule_step`).

Scopes: a `pre state` holds one value per presynaptic neuron ([batch, pre]), a `post state` one
per postsynaptic neuron ([batch, post]), a `syn state` one per synapse ([batch, post, pre]); `w`
is the weight [post, pre], shared by the batch. Params, modulators and `dt` have no scope: they
broadcast everywhere (a modulator is a scalar or one value per batch item).

- A value reads what broadcasts to its own shape: a pre value reads pre values, a post value post
  values, a syn state or `w` anything (pre values broadcast along its rows, post values along its
  columns). The same holds for the bounds of a `clip`.
- `on pre` runs where a presynaptic neuron spiked: it may change pre and syn states and `w`, never a
  post state (which neuron's entry would change?); `on post` conversely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

EVERYTHING = frozenset({"pre", "post", "syn", "w"})
READS: dict[str, frozenset[str]] = {"pre": frozenset({"pre"}), "post": frozenset({"post"}), "syn": EVERYTHING,
                                    "w": EVERYTHING}


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
