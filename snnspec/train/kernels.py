"""Which fused kernels a generated network's layers run, for the header of `train` and `simulate`."""

from __future__ import annotations

import torch
from torch import nn


def kernel_line(model: nn.Module, device: str | torch.device) -> str:
    """`kernels: numba (cpu)`, `kernels: triton (cuda)` or `kernels: plain`; several where layers differ
    (`kernels: numba (cpu) for hidden, plain for out`, by layer). Layers without fused kernels always step
    plainly."""
    like = torch.empty(0, device=device)
    used: dict[str, list[str]] = {}
    for name, layer in model.named_modules():
        kernels_for = getattr(layer, "kernels_for", None)
        if callable(kernels_for):
            kind = kernels_for(like)
            used.setdefault(kind if kind == "plain" else f"{kind} ({like.device.type})", []).append(name)
    if not used:
        return "kernels: plain (no layer has fused kernels)"
    if len(used) == 1:
        return f"kernels: {next(iter(used))}"
    return "kernels: " + ", ".join(f"{kind} for {', '.join(names)}" for kind, names in used.items())
