"""Training never loses or silently mixes state: broken data files, corrupted or foreign
checkpoints, a spec edited since training, another run's folder, a kill between the two files of
an epoch. Each case is a small synthetic dataset and a tiny network written to tmp_path."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from snnspec.cli import app  # noqa: E402
from snnspec.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from snnspec.train.data import DataError, load_idx, load_source  # noqa: E402
from snnspec.train.loop import DivergedError, TrainConfig, train  # noqa: E402
from snnspec.train.model import SetupError  # noqa: E402
from snnspec.train.simulate import simulate  # noqa: E402

SPEC = """
from "std/neurons.snn" import Leaky

network Tiny {{
    steps = 5
    input x[16] encode direct
    layer hidden = Leaky(beta = {beta})[{hidden}]
    layer out    = Leaky(beta = 0.9)[4]
    x      -> dense -> hidden
    hidden -> dense -> out
    output out.spike count
    train {{
        loss ce_count
        optimizer adam(lr = 2e-3)
        batch 16
        epochs 1
    }}
}}
"""


def spec(tmp_path: Path, beta: float = 0.9, hidden: int = 12, name: str = "tiny.snn") -> Path:
    path = tmp_path / name
    path.write_text(SPEC.format(beta=beta, hidden=hidden))
    return path


def dataset(tmp_path: Path, name: str = "d.npz", n: int = 48, seed: int = 0, **override: np.ndarray) -> Path:
    """A 4-class problem of 4x4 uint8 images (n training, n // 3 test samples)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = (rng.random((n, 4, 4)) * 60 + 40 * y[:, None, None]).astype(np.uint8)
    arrays = {"x_train": x, "y_train": y, "x_test": x[: n // 3], "y_test": y[: n // 3], **override}
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def run(tmp_path: Path, out: str = "run", **kw) -> object:
    if "data" not in kw:
        kw["data"] = str(dataset(tmp_path))
    if "spec" not in kw:
        kw["spec"] = spec(tmp_path)
    return train(TrainConfig(out=tmp_path / out, quiet=True, **kw))


def cli_error(args: list[str]) -> str:
    """The one line `snnspec` prints for a user error (exit 1, no traceback)."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# ---- data files ---------------------------------------------------------------------------------------


def test_truncated_npz_is_one_line_naming_the_file(tmp_path):
    """A truncated .npz raised zipfile.BadZipFile with a traceback."""
    good = dataset(tmp_path).read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(good[: len(good) // 2])
    line = cli_error(["train", str(spec(tmp_path)), "--data", str(bad), "--out", str(tmp_path / "r")])
    assert line == (f"error: {bad} is not a readable .npz archive (BadZipFile: File is not a zip file); "
                    "it may be truncated or corrupted: write it again")


def test_byte_flipped_npz_is_one_line_naming_the_file(tmp_path):
    """A flipped byte in an array of a .npz raised zipfile.BadZipFile (Bad CRC-32) with a traceback."""
    path = dataset(tmp_path)
    data = bytearray(path.read_bytes())
    data[data.index(b"x_train.npy") + 200] ^= 0xFF  # inside the stored x_train array
    path.write_bytes(bytes(data))
    line = cli_error(["train", str(spec(tmp_path)), "--data", str(path), "--out", str(tmp_path / "r")])
    assert line.startswith(f"error: {path} is not a readable .npz archive (BadZipFile: Bad CRC-32 for file "
                           "'x_train.npy'); it may be truncated or corrupted")


def test_zero_byte_npz_says_so(tmp_path):
    """A 0-byte .npz printed only "Aborted." (numpy's EOFError, taken by click for Ctrl-D)."""
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    line = cli_error(["train", str(spec(tmp_path)), "--data", str(path), "--out", str(tmp_path / "r")])
    assert line == f"error: {path} is empty (0 bytes); expected a .npz archive with x_train, y_train, x_test, y_test"


def test_npz_holding_one_array_is_an_error(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match=r"holds a single array, not a \.npz archive"):
        load_source(str(path))


def test_wrong_keys_name_what_is_there(tmp_path):
    x, y = np.zeros((4, 4, 4), np.uint8), np.zeros(4, np.int64)
    np.savez(tmp_path / "k.npz", X_train=x, y_train=y, x_test=x, y_test=y, extra=y)
    with pytest.raises(DataError) as e:
        load_source(str(tmp_path / "k.npz"))
    assert str(e.value) == (f"{tmp_path / 'k.npz'}: no array named x_train; it has X_train, extra "
                            "(the Keras layout has x_train, y_train, x_test, y_test)")


@pytest.mark.parametrize(("override", "message"), [
    ({"y_train": np.zeros(7, np.int64)}, "y_train must be one label per sample (48), got shape [7]"),
    ({"x_train": np.zeros(48, np.uint8)}, "x_train must hold samples [N, ...], got shape [48]"),
    ({"x_test": np.zeros((16, 5, 5), np.uint8)}, "training samples are [4, 4] but test samples are [5, 5]"),
    ({"x_train": np.zeros((48, 0), np.uint8)}, "the samples of x_train hold no values (shape [48, 0])"),
    ({"y_train": np.full(48, 1.5)}, "y_train must hold integer class labels, got float64 values such as"),
    ({"y_test": -np.ones(16, np.int64)}, "y_test has a negative label (-1 at sample 0)"),
    ({"x_train": np.array(["a"] * 48)[:, None]}, "x_train must be real numbers, got <U1"),
])
def test_wrong_shapes_and_types_are_named(tmp_path, override, message):
    with pytest.raises(DataError) as e:
        load_source(str(dataset(tmp_path, **override)))
    assert message in str(e.value) and str(tmp_path / "d.npz") in str(e.value)


def test_parts_that_do_not_join_are_an_error(tmp_path):
    a = dataset(tmp_path, "a.npz")
    b = dataset(tmp_path, "b.npz", x_train=np.zeros((48, 5), np.uint8))
    with pytest.raises(DataError, match=r"the parts of x_train do not join: their shapes are \[48, 4, 4\], \[48, 5\]"):
        load_source(f"{a},{b}")


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_split_is_an_error_not_a_zero_division(tmp_path, split):
    """An empty training set ended in ZeroDivisionError after the first epoch."""
    empty = {f"x_{split}": np.zeros((0, 4, 4), np.uint8), f"y_{split}": np.zeros(0, np.int64)}
    data = dataset(tmp_path, **empty)
    what = "training" if split == "train" else "test"
    line = cli_error(["train", str(spec(tmp_path)), "--data", str(data), "--out", str(tmp_path / "r")])
    assert line == f"error: {data}: the {what} set is empty (x_{split} has shape [0, 4, 4])"
    assert not (tmp_path / "r").exists()


def test_nan_and_inf_in_the_data_are_counted_and_located(tmp_path):
    """NaN in the samples trained to chance accuracy without a word."""
    x = np.random.default_rng(1).random((48, 4, 4)).astype(np.float32)
    x[3, 2, 1] = np.nan
    x[3, 0, 0] = np.nan
    x[9, 1, 1] = np.inf
    x[40, 3, 3] = -np.inf
    data = dataset(tmp_path, x_train=x)
    line = cli_error(["train", str(spec(tmp_path)), "--data", str(data), "--out", str(tmp_path / "r")])
    assert line == (f"error: {data}: x_train holds 2 NaN and 2 infinite value(s) in 3 of 48 samples (the first at "
                    "sample 3, index [0, 0]); remove or replace them before training")


def test_nan_labels_are_an_error(tmp_path):
    y = np.zeros(16)
    y[5] = np.nan
    with pytest.raises(DataError, match=r"y_test holds 1 NaN value\(s\) in 1 of 16 samples \(the first at sample 5\)"):
        load_source(str(dataset(tmp_path, y_test=y)))


def test_nan_in_a_simulated_sample_is_an_error(tmp_path):
    sample = np.ones(16, np.float32)
    sample[7] = np.nan
    np.save(tmp_path / "s.npy", sample)
    with pytest.raises(DataError, match=r"the sample holds 1 NaN value\(s\) .*index \[7\]"):
        simulate(spec(tmp_path), source=str(tmp_path / "s.npy"))
    (tmp_path / "e.npy").write_bytes(b"")
    line = cli_error(["simulate", str(spec(tmp_path)), "--input", str(tmp_path / "e.npy")])
    assert line.startswith(f"error: cannot read {tmp_path / 'e.npy'} as a .npy sample (EOFError")


def test_labels_out_of_range_for_the_output_size(tmp_path):
    y = np.zeros(48, np.int64)
    y[17] = 4  # out has 4 neurons: classes 0..3
    line = cli_error(["train", str(spec(tmp_path)), "--data", str(dataset(tmp_path, y_train=y)),
                      "--out", str(tmp_path / "r")])
    assert line == (f"error: {tmp_path / 'd.npz'} has labels up to 4 but the first output 'out_spike' "
                    "(out.spike) has 4 neuron(s); it needs one per class")


def test_truncated_gzipped_idx_file_is_a_data_error(tmp_path):
    """A truncated .gz raised EOFError ("Aborted." on the command line)."""
    def idx(kind: int, arr: np.ndarray) -> bytes:
        return bytes([0, 0, kind, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.tobytes()

    images, labels = np.zeros((3, 4, 4), np.uint8), np.zeros(3, np.uint8)
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(8, images)))
        (tmp_path / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(8, labels)))
    cut = tmp_path / "train-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:-12])
    with pytest.raises(DataError, match=rf"cannot read {cut} \(EOFError: .*\); it may be truncated or corrupted"):
        load_idx(tmp_path)


# ---- checkpoints ----------------------------------------------------------------------------------------


def _flip_in_payload(path: Path, weight: torch.Tensor) -> None:
    """Flip one byte of a stored weight (inside the checksummed payload)."""
    data = bytearray(path.read_bytes())
    at = data.index(weight.numpy().tobytes())
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))


def test_byte_flipped_checkpoint_is_refused_by_resume_and_simulate(tmp_path):
    """A flipped byte in checkpoint.pt resumed without complaint."""
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    _flip_in_payload(ckpt, load_checkpoint(ckpt)["model"]["x_hidden.weight"])
    expected = (f"error: {ckpt} is corrupted: its contents do not match the sha256 stored with them; "
                "train again (--force) or use another copy")
    args = ["--data", str(tmp_path / "d.npz")]
    assert cli_error(["train", str(spec(tmp_path)), "--out", str(tmp_path / "run"), "--resume", *args]) == expected
    assert cli_error(["simulate", str(spec(tmp_path)), "--checkpoint", str(ckpt), "--input", "random"]) == expected


def test_truncated_checkpoint_is_refused(tmp_path):
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="it is truncated, corrupted or not a checkpoint"):
        load_checkpoint(ckpt)


def _resave(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """The run's checkpoint, changed by `change(state)` and saved again with a valid checksum."""
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    change(state)
    save_checkpoint(ckpt, state)
    return ckpt


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    """A checkpoint holding NaN weights (with a valid checksum) resumed and simulated without complaint."""
    def poison(state):
        w = state["model"]["hidden_out.weight"]
        w[0, 0], w[1, 1], w[2, 2] = float("nan"), float("nan"), float("inf")

    ckpt = _resave(tmp_path, poison)
    with pytest.raises(CheckpointError) as e:
        run(tmp_path, resume=True)
    assert str(e.value) == f"{ckpt} holds non-finite values (hidden_out.weight: 2 NaN, 1 inf); it cannot be used"
    with pytest.raises(CheckpointError, match="holds non-finite values"):
        simulate(spec(tmp_path), checkpoint=ckpt, source="random")


def test_checkpoint_with_nan_optimizer_state_is_refused(tmp_path):
    ckpt = _resave(tmp_path, lambda s: s["optimizer"]["state"][0]["exp_avg"].fill_(float("nan")))
    with pytest.raises(CheckpointError, match=r"holds non-finite values \(optimizer\.state\.0\.exp_avg: 192 NaN\)"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("optimizer"), " is incomplete: it has no optimizer"),
    (lambda s: s.pop("fingerprint"), " is incomplete: it has no fingerprint"),
    (lambda s: s.update(epoch="1"), ": 'epoch' is a str, expected int"),
    (lambda s: s.update(epoch=0), ": epoch 0 does not agree with its metrics (1 epoch(s) recorded); "
                                  "the file was not written by snnspec train"),
    (lambda s: s.update(epoch=3), ": epoch 3 does not agree with its metrics (1 epoch(s) recorded); "
                                  "the file was not written by snnspec train"),
    (lambda s: s["model"].update(extra=[1, 2]), ": 'model' must map names to tensors"),
    (lambda s: s.update(fingerprint={"digest": 1}), ": its fingerprint of the spec is damaged (no digest, layers, "
                                                    "tensors, fixed)"),
])
def test_checkpoint_missing_keys_or_with_a_bad_epoch_is_a_clear_error(tmp_path, change, message):
    """A checkpoint missing a key ended in KeyError."""
    ckpt = _resave(tmp_path, change)
    line = cli_error(["train", str(spec(tmp_path)), "--out", str(tmp_path / "run"), "--resume",
                      "--data", str(tmp_path / "d.npz")])
    assert line == f"error: {ckpt}{message}"


def test_simulate_with_no_checkpoint_there_says_so(tmp_path):
    line = cli_error(["simulate", str(spec(tmp_path)), "--checkpoint", str(tmp_path / "none.pt")])
    assert line == f"error: no checkpoint at {tmp_path / 'none.pt'}"


def test_checkpoint_of_the_old_format_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "snnspec-checkpoint/1", "model": {}}, path)
    with pytest.raises(CheckpointError, match="written by an older snnspec, without a checksum"):
        load_checkpoint(path)


# ---- a spec edited since training ----------------------------------------------------------------------


def _hidden_mem(w: np.ndarray, b: np.ndarray, x: np.ndarray, beta: float, steps: int) -> np.ndarray:
    """snnTorch's Leaky (subtract reset, threshold 1) driven by the constant current W x + b, in float64."""
    current = w.astype(np.float64) @ x + b
    mem, spk, trace = np.zeros_like(current), np.zeros_like(current), []
    for _ in range(steps):
        mem = beta * mem + current - spk
        spk = (mem > 1.0).astype(np.float64)
        trace.append(mem)
    return np.stack(trace)


def test_simulate_with_an_edited_fixed_param_uses_the_spec(tmp_path):
    """beta edited 0.9 → 0.5 after training; `simulate --checkpoint` used the saved 0.9."""
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    saved = load_checkpoint(ckpt)
    assert "hidden.beta" not in saved["model"] and "hidden.threshold" not in saved["model"]  # fixed: never saved
    x = np.linspace(0.0, 1.0, 16, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    w, b = saved["model"]["x_hidden.weight"].numpy(), saved["model"]["x_hidden.bias"].numpy()

    edited = spec(tmp_path, beta=0.5, name="edited.snn")
    sim = simulate(edited, checkpoint=ckpt, source=str(tmp_path / "x.npy"))
    mem = sim.layers[0].state
    np.testing.assert_allclose(mem, _hidden_mem(w, b, x, 0.5, 5), rtol=1e-5, atol=1e-6)
    assert not np.allclose(mem, _hidden_mem(w, b, x, 0.9, 5), rtol=1e-3, atol=1e-4)
    assert sim.notes == [f"the spec differs from the one {ckpt} was trained with (hidden.beta changed 0.9 → 0.5); "
                         "simulated with the spec's values"]
    same = simulate(spec(tmp_path), checkpoint=ckpt, source=str(tmp_path / "x.npy"))
    np.testing.assert_allclose(same.layers[0].state, _hidden_mem(w, b, x, 0.9, 5), rtol=1e-5, atol=1e-6)
    assert same.notes == []


MIXED = """
neuron LearnLeaky {
    param beta = 0.8 learnable per neuron in [0, 1]
    param threshold = 1
    state mem = 0
    mem <- beta * mem + I - detach(spiked) * threshold
    spike when mem > threshold surrogate atan(alpha = 2)
}

from "std/neurons.snn" import Leaky

network Mixed {
    steps = 4
    input x[16] encode direct
    layer hidden = LearnLeaky[12]
    layer out    = Leaky(beta = 0.9)[4]
    x      -> dense -> batchnorm -> hidden
    hidden -> dense -> out frozen
    output out.spike count
    train {
        batch 16
        epochs 1
    }
}
"""


def test_a_checkpoint_holds_the_parameter_table_and_nothing_fixed(tmp_path):
    """Learnable neuron params, batchnorm statistics and frozen weights are saved and restored; the
    fixed params (threshold, the std Leaky's beta) are not saved at all."""
    path = tmp_path / "mixed.snn"
    path.write_text(MIXED)
    run(tmp_path, spec=path)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    roles = {k: v["role"] for k, v in state["fingerprint"]["tensors"].items()}
    assert roles == {"hidden.beta": "learnable", "x_hidden_dense.weight": "learnable",
                     "x_hidden_dense.bias": "learnable", "x_hidden_batchnorm.weight": "learnable",
                     "x_hidden_batchnorm.bias": "learnable", "hidden_out.weight": "frozen", "hidden_out.bias": "frozen",
                     "x_hidden_batchnorm.running_mean": "statistic", "x_hidden_batchnorm.running_var": "statistic",
                     "x_hidden_batchnorm.num_batches_tracked": "statistic"}
    assert sorted(state["model"]) == sorted(roles)
    assert state["fingerprint"]["fixed"] == {"hidden.threshold": [1.0], "out.beta": [pytest.approx(0.9)],
                                             "out.threshold": [1.0]}
    assert not torch.allclose(state["model"]["hidden.beta"], torch.full((12,), 0.8))  # it trained
    assert int(state["model"]["x_hidden_batchnorm.num_batches_tracked"]) == 3

    resumed = run(tmp_path, spec=path, resume=True, epochs=2)
    assert torch.equal(resumed.model.state_dict()["hidden_out.weight"], state["model"]["hidden_out.weight"])
    assert int(resumed.model.state_dict()["x_hidden_batchnorm.num_batches_tracked"]) == 6  # continued from 3


def test_simulate_cli_prints_the_note(tmp_path):
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    result = CliRunner().invoke(app, ["simulate", str(spec(tmp_path, beta=0.5, name="e.snn")), "--checkpoint",
                                      str(ckpt), "--input", "random"])
    assert result.exit_code == 0, result.output
    assert "note: the spec differs from the one" in result.output and "hidden.beta changed 0.9 → 0.5" in result.output


def test_simulate_with_a_resized_layer_says_what_changed(tmp_path):
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(CheckpointError) as e:
        simulate(spec(tmp_path, hidden=20, name="wide.snn"), checkpoint=ckpt, source="random")
    assert str(e.value).startswith(f"{ckpt} does not fit network 'Tiny': layer hidden's size changed 12 → 20; "
                                   "x_hidden.weight's shape changed 12x16 → 20x16")


def test_resume_refuses_an_edited_spec_and_says_what_differs(tmp_path):
    """`train --resume` after editing beta used the checkpoint's 0.9 without a word."""
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    before = ckpt.read_bytes()
    tail = ". Resume with the same spec and options (only --epochs and --device may change), start over " \
           "with --force, or choose another --out"
    with pytest.raises(CheckpointError) as e:
        run(tmp_path, spec=spec(tmp_path, beta=0.5, name="e.snn"), resume=True, epochs=2)
    assert str(e.value) == f"cannot resume from {ckpt}: the spec changed since: hidden.beta changed 0.9 → 0.5{tail}"
    with pytest.raises(CheckpointError) as e:
        run(tmp_path, spec=spec(tmp_path, hidden=20, name="w.snn"), resume=True, epochs=2)
    assert str(e.value).startswith(f"cannot resume from {ckpt}: the spec changed since: layer hidden's size "
                                   "changed 12 → 20, ")
    assert ckpt.read_bytes() == before


def test_resume_refuses_changed_settings_and_data(tmp_path):
    run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    tail = ". Resume with the same spec and options (only --epochs and --device may change), start over " \
           "with --force, or choose another --out"
    with pytest.raises(CheckpointError) as e:
        run(tmp_path, resume=True, epochs=2, lr=0.01, batch=8)
    assert str(e.value) == (f"cannot resume from {ckpt}: the checkpoint was trained with batch=16, this run has "
                            "batch=8; the checkpoint was trained with lr=0.002, this run has lr=0.01" + tail)
    data = tmp_path / "d.npz"
    dataset(tmp_path, seed=5)  # other samples at the same path
    with pytest.raises(CheckpointError, match=rf"the checkpoint was trained on other data \({data}, sha256 "):
        run(tmp_path, resume=True, epochs=2, data=str(data))


def test_resume_accepts_the_same_spec_moved_and_reformatted(tmp_path):
    run(tmp_path)
    moved = tmp_path / "elsewhere" / "tiny.snn"
    moved.parent.mkdir()
    moved.write_text("# a comment that shifts every line\n\n" + spec(tmp_path).read_text())
    result = run(tmp_path, spec=moved, resume=True, epochs=2)
    assert [e["epoch"] for e in result.metrics["epochs"]] == [1, 2]


# ---- one run per folder ----------------------------------------------------------------------------


def test_train_refuses_another_runs_folder_without_resume_or_force(tmp_path):
    """`train` silently overwrote the checkpoint and metrics of the run already in --out."""
    run(tmp_path)
    out = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = ["train", str(spec(tmp_path)), "--data", str(tmp_path / "d.npz"), "--out", str(out)]
    assert cli_error(args) == (f"error: {out} already holds a run (checkpoint.pt, metrics.json); continue it with "
                               "--resume, replace it with --force, or choose another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert cli_error([*args, "--resume", "--force"]) == ("error: --resume continues the run in --out and --force "
                                                        "replaces it: give one of them")
    result = CliRunner().invoke(app, [*args, "--force", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["settings"]["seed"] == 4
    assert load_checkpoint(out / "checkpoint.pt")["settings"]["seed"] == 4


def test_out_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SetupError, match="is a file, not a folder"):
        run(tmp_path, out="f")


# ---- a kill between the files of an epoch ------------------------------------------------------------


def _strip(epochs: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if "second" not in k} for e in epochs]


def test_kill_leftovers_are_cleaned_and_metrics_trimmed_to_the_checkpoint(tmp_path):
    """A kill during the checkpoint write left a .tmp file and a metrics.json one epoch ahead of the checkpoint."""
    whole = run(tmp_path, out="whole", epochs=2)
    run(tmp_path, epochs=1)
    out = tmp_path / "run"
    stale = [out / ".checkpoint.pt.4242.tmp", out / ".metrics.json.4242.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    metrics = json.loads((out / "metrics.json").read_text())
    ghost = {**metrics["epochs"][0], "epoch": 2, "test_accuracy": 0.123}
    (out / "metrics.json").write_text(json.dumps({**metrics, "epochs": [*metrics["epochs"], ghost]}))

    run(tmp_path, resume=True, epochs=1)  # nothing to train: the files are still made consistent
    assert not any(p.exists() for p in stale)
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1]

    resumed = run(tmp_path, resume=True, epochs=2)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert _strip(on_disk["epochs"]) == _strip(resumed.metrics["epochs"]) == _strip(whole.metrics["epochs"])
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


def test_the_checkpoint_is_written_before_the_metrics(tmp_path, monkeypatch):
    from snnspec.train import loop

    run(tmp_path, epochs=1)
    out = tmp_path / "run"
    real = loop.save_json

    def killed(path, data):
        if len(data["epochs"]) == 2:
            raise KeyboardInterrupt  # killed after the checkpoint of epoch 2 replaced the old one
        real(path, data)

    monkeypatch.setattr(loop, "save_json", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, resume=True, epochs=2)
    monkeypatch.setattr(loop, "save_json", real)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 1  # behind, never ahead
    run(tmp_path, resume=True, epochs=2)
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1, 2]


def test_a_diverged_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run(tmp_path, epochs=1)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    before = ckpt.read_bytes()
    real_step = torch.optim.Adam.step

    def step_to_nan(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0][0, :3] = float("nan")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step_to_nan)
    with pytest.raises(DivergedError) as e:
        run(tmp_path, resume=True, epochs=2)
    assert re.match(r"training diverged in epoch 2: x_hidden\.weight: \d+ NaN; x_hidden\.bias: \d+ NaN \(train loss ",
                    str(e.value))
    assert str(e.value).endswith(f"{ckpt} still holds epoch 1. Try a lower --lr")
    assert ckpt.read_bytes() == before
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]) == 1
