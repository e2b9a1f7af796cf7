"""Training and simulation of a spec's network: `snnspec train` and `snnspec simulate`.

    data.py      data sources (built-in digits, Keras .npz, IDX folders), scaling, reshaping
    losses.py    the losses of LANGUAGE.md §5 and accuracy (equal to snnTorch's functional ones)
    model.py     choosing a network and building its nn.Module class
    loop.py      the training loop: progress, the output folder, --resume, DDP
    checkpoint.py  checkpoint.pt and metrics.json: atomic writes, checksum, checks on reading
    fingerprint.py what a checkpoint was trained from, and what changed since, in words
    simulate.py  one sample through the network: spike counts and a raster/membrane figure
    health.py    the gradient-health report per layer (GradRecorder, grad_report; --grad-report)
    health_warn.py the warning when gradients explode or vanish with depth
    health_show.py the report averaged over batches, as a table and a figure

Needs torch (and scikit-learn for the built-in data, matplotlib for figures); nothing here is
imported by the compiler itself.
"""

from __future__ import annotations

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in __all__:
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)
