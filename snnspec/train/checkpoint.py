"""The files of a run: `checkpoint.pt` and `metrics.json`, written atomically and read with checks.

A checkpoint file is `torch.save({"format", "sha256", "payload"})` where `payload` holds the
bytes of `torch.save(state)` (a uint8 tensor: stored as they are, where pickle protocol 2 would
re-encode `bytes`) and `sha256` their digest: a flipped or truncated byte is refused, not
resumed from. The state holds only the tensors of the program's parameter table (learnable,
frozen, plastic, statistic), never the fixed params (those come from the spec), and is checked
for its keys, its epoch and finite values before anything uses it.

Both files go through a temporary file in the same folder, fsynced, then `os.replace`d over the
old one; the checkpoint is written first, so `metrics.json` never runs ahead of it. A kill leaves
at most a stale `.NAME.PID.XXXX.tmp`, which `clean_temporaries` removes on the next run.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import write_atomic
from .model import SetupError

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
FORMAT = "snnspec-checkpoint/2"
_REQUIRED = {"network": str, "epoch": int, "model": dict, "optimizer": dict, "rng": dict, "metrics": dict,
             "settings": dict, "fingerprint": dict}


class CheckpointError(SetupError):
    """A checkpoint that cannot be trusted or does not belong to this run."""


def clean_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries a killed run left in `folder`; returns them."""
    stale = [p for name in (CHECKPOINT, METRICS) for p in folder.glob(f".{name}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n", durable=True)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    sealed = {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
              "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    write_atomic(path, lambda f: torch.save(sealed, f), durable=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by `save_checkpoint`, verified; `CheckpointError` says what is wrong."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    hint = "train again (--force) or use another copy"
    try:
        sealed = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"cannot read checkpoint {path}: it is truncated, corrupted or not a checkpoint "
                              f"({type(e).__name__}: {_first_line(e)}); {hint}") from None
    if isinstance(sealed, dict) and sealed.get("format") == "snnspec-checkpoint/1":
        raise CheckpointError(f"{path} was written by an older snnspec, without a checksum and with the spec's "
                              "fixed params in it; it cannot be verified: train again")
    sealed = sealed if isinstance(sealed, dict) else {}
    packed = sealed.get("payload")
    if sealed.get("format") != FORMAT or not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise CheckpointError(f"{path} is not an snnspec checkpoint")
    payload = packed.numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != sealed.get("sha256"):
        raise CheckpointError(f"{path} is corrupted: its contents do not match the sha256 stored with them; {hint}")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a checksummed payload that does not load: not ours
        raise CheckpointError(f"cannot read checkpoint {path} ({type(e).__name__}: {_first_line(e)})") from None
    _validate(state, path)
    return state


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


def _validate(state: Any, path: Path) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an snnspec checkpoint")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path} is incomplete: it has no {', '.join(missing)}")
    for key, kind in _REQUIRED.items():
        if not isinstance(state[key], kind) or (kind is int and isinstance(state[key], bool)):
            raise CheckpointError(f"{path}: '{key}' is a {type(state[key]).__name__}, expected {kind.__name__}")
    fp = state["fingerprint"]
    tables = ("layers", "tensors", "fixed")
    if not isinstance(fp.get("digest"), str) or not all(isinstance(fp.get(k), dict) for k in tables):
        raise CheckpointError(f"{path}: its fingerprint of the spec is damaged (no digest, layers, tensors, fixed)")
    if not all(isinstance(v, dict) for k in ("layers", "tensors") for v in fp[k].values()):
        raise CheckpointError(f"{path}: its fingerprint of the spec is damaged (entries that are not tables)")
    epochs = state["metrics"].get("epochs")
    if state["epoch"] < 1 or not isinstance(epochs, list) or len(epochs) != state["epoch"]:
        told = len(epochs) if isinstance(epochs, list) else "no"
        raise CheckpointError(f"{path}: epoch {state['epoch']} does not agree with its metrics ({told} epoch(s) "
                              "recorded); the file was not written by snnspec train")
    if not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        raise CheckpointError(f"{path}: 'model' must map names to tensors")
    bad = non_finite(state["model"].items()) + non_finite(_nested("optimizer", state["optimizer"]))
    if bad:
        raise CheckpointError(f"{path} holds non-finite values ({'; '.join(bad[:4])}); it cannot be used")


def _nested(where: str, value: Any) -> list[tuple[str, torch.Tensor]]:
    """The tensors inside dicts and lists, with their places (an optimiser's state)."""
    if isinstance(value, torch.Tensor):
        return [(where, value)]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    return [t for k, v in items for t in _nested(f"{where}.{k}", v)]


def non_finite(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """`KEY: N NaN, M inf` for each floating tensor with values that are not finite."""
    out = []
    for key, t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            nan = int(torch.isnan(t).sum())
            inf = int(torch.isinf(t).sum())
            out.append(f"{key}: " + ", ".join(f"{n} {w}" for n, w in ((nan, "NaN"), (inf, "inf")) if n))
    return out


def table_state(net: nn.Module, keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """The module's tensors of the parameter table (what a checkpoint holds)."""
    state = net.state_dict()
    return {k: state[k] for k in keys}


def load_table(net: nn.Module, keys: Iterable[str], saved: dict[str, torch.Tensor], where: str) -> None:
    """Copy the parameter-table tensors `saved` into `net`; its fixed params keep the spec's values.
    Raises `CheckpointError` naming each missing, extra or misshapen tensor."""
    state = net.state_dict()
    keys = list(keys)
    problems = [f"it has no {k}" for k in keys if k not in saved]
    problems += [f"{k} is {_shape(saved[k])} there, {_shape(state[k])} here" for k in keys
                 if k in saved and saved[k].shape != state[k].shape]
    problems += [f"it has {k}, which this network does not" for k in saved if k not in keys]
    if problems:
        raise CheckpointError(f"{where}: {'; '.join(problems[:4])}")
    net.load_state_dict({**state, **{k: saved[k] for k in keys}})


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(map(str, t.shape)) + "]"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    state = {"torch": torch.get_rng_state(), "numpy": [kind, [int(k) for k in keys], pos, has_gauss, gauss],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
