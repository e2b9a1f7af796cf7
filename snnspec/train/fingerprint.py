"""What a checkpoint was trained from, so a later run can tell whether it may use it.

A fingerprint is plain JSON stored in the checkpoint: the layers (neuron, shape), the parameter
table of the program IR (`PTensor` key, shape, role), the values of the fixed params the module
holds (neuron and rule constants: they come from the spec, never from a checkpoint), and the
lowered network with its neurons and rules less source locations and the `train` block (moving
the spec or editing a comment changes nothing). `differences` says in words what changed.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from torch import nn

from .. import ir

# fields that say where a thing was written or what is derived from the rest, not what it computes
_UNHASHED = frozenset({"file", "line", "span", "equations", "kernel", "kernel_note", "method_note", "program",
                       "train"})


def table(net: ir.LNetwork) -> tuple[ir.PTensor, ...]:
    """The arrays a checkpoint holds: the program's learnable, frozen, plastic and statistic tensors."""
    if net.program is None:  # pragma: no cover - every lowered network has a program
        raise ValueError(f"network '{net.name}' has no program")
    return net.program.params + net.program.buffers


def fingerprint(lowered: ir.LoweredSpec, net: ir.LNetwork, module: nn.Module) -> dict[str, Any]:
    """The fingerprint of `net` as lowered, with the fixed values `module` (an instance of its class) holds."""
    keys = {t.key for t in table(net)}
    fixed = {k: b.detach().cpu().double().flatten().tolist() for k, b in module.named_buffers() if k not in keys}
    neurons = sorted({la.neuron for la in net.layers} & lowered.neurons.keys())
    rules = sorted({p.learn for p in net.paths if p.learn} & lowered.rules.keys())
    body: dict[str, Any] = {
        "layers": {la.name: {"neuron": la.neuron, "shape": list(la.shape)} for la in net.layers},
        "tensors": {t.key: {"shape": list(t.shape), "role": t.role} for t in table(net)},
        "fixed": fixed,
        "ir": _strip({"network": net.model_dump(mode="json"),
                      "neurons": {n: lowered.neurons[n].model_dump(mode="json") for n in neurons},
                      "rules": {r: lowered.rules[r].model_dump(mode="json") for r in rules}}),
    }
    return {"digest": digest(body), **body}


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _UNHASHED}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> list[str]:
    """What changed from the checkpoint's fingerprint `old` to this run's `new`, most telling first."""
    if old.get("digest") == new["digest"]:
        return []
    out: list[str] = []
    old_layers, new_layers = old.get("layers", {}), new["layers"]
    for name, la in new_layers.items():
        was = old_layers.get(name)
        if was is None:
            out.append(f"layer {name} is new")
        elif was.get("shape") != la["shape"]:
            out.append(f"layer {name}'s size changed {_shape(was.get('shape'))} → {_shape(la['shape'])}")
        elif was.get("neuron") != la["neuron"]:
            out.append(f"layer {name}'s neuron changed {was.get('neuron')} → {la['neuron']}")
    out += [f"layer {name} was removed" for name in old_layers if name not in new_layers]
    old_t, new_t = old.get("tensors", {}), new["tensors"]
    for key, t in new_t.items():
        was = old_t.get(key)
        if was is None:
            out.append(f"{key} is new ({t['role']} {_shape(t['shape'])})")
        elif was.get("shape") != t["shape"]:
            out.append(f"{key}'s shape changed {_shape(was.get('shape'))} → {_shape(t['shape'])}")
        elif was.get("role") != t["role"]:
            out.append(f"{key} was {was.get('role')}, is {t['role']} now")
    out += [f"{key} is gone" for key in old_t if key not in new_t]
    old_f, new_f = old.get("fixed", {}), new["fixed"]
    for key in sorted(old_f.keys() | new_f.keys()):
        if old_f.get(key) != new_f.get(key):
            out.append(f"{key} changed {_values(old_f.get(key))} → {_values(new_f.get(key))}")
    if not out:
        out = [f"{where}: {_brief(a)} → {_brief(b)}" for where, a, b in _leaves(old.get("ir"), new.get("ir"), "")]
        out = out or ["the lowered network differs"]
    return out[:limit] + ([f"and {len(out) - limit} more"] if len(out) > limit else [])


def _leaves(a: Any, b: Any, where: str) -> list[tuple[str, Any, Any]]:
    """The innermost places where two JSON values differ, as dotted paths (list items by index)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys(), key=str)
                for d in _leaves(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _leaves(x, y, f"{where}[{i}]")]
    return [] if a == b else [(where, a, b)]


def _shape(shape: list[int] | None) -> str:
    if not isinstance(shape, list):
        return "(unknown)"
    return str(math.prod(shape)) if len(shape) == 1 else "x".join(map(str, shape)) or "scalar"


def _values(values: list[float] | None) -> str:
    if not isinstance(values, list):
        return "(none)"
    if len(values) > 4:
        return f"({len(values)} values)"
    text = ", ".join(f"{v:.7g}" for v in values)
    return text if len(values) == 1 else f"[{text}]"


def _brief(value: Any) -> str:
    text = "(none)" if value is None else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
