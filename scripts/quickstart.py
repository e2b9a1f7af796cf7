"""Build a spec, import the generated PyTorch module and train it in a plain training loop.

The data is scikit-learn's bundled 8x8 digits, so this runs offline:

    snnspec build specs/examples/digits_mlp.snn -o build/digits_mlp.py
    python scripts/quickstart.py build/digits_mlp.py
"""

from __future__ import annotations

import importlib.util
import sys
import time

import torch
from sklearn.datasets import load_digits
from torch import nn


def import_file(path: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generated_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(path: str, epochs: int = 15, seed: int = 0) -> None:
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x))
    train, test = order[:1400], order[1400:]

    net = import_file(path).DigitsMLP()  # the generated nn.Module, used like any other
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            counts = net(x[batch]).out_spike  # spike counts over the steps, [batch, 10]
            loss = loss_fn(counts, y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            accuracy = (net(x[test]).out_spike.argmax(1) == y[test]).float().mean().item()
        print(f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  test accuracy {accuracy:.2%}")
    print(f"test accuracy: {accuracy:.2%} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/digits_mlp.py")
