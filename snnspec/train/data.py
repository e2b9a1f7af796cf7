"""Training data for `snnspec train` and `snnspec simulate`.

Sources (`--data SOURCE`):

- `digits` (the default): scikit-learn's bundled 8x8 digits (1797 images, no network access),
  split once and for all into 1437 training and 360 test images (a fixed permutation, seed 0).
- a `.npz` file in the Keras layout (`x_train, y_train, x_test, y_test`), or several joined by
  commas (`a.npz,b.npz`), whose arrays of the same name are concatenated in that order (for
  datasets split over files, like the Fashion-MNIST copy in the benchmarks' data folder);
- a folder of IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
  `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each optionally `.gz`, `-` or `.` before
  `idx`), as MNIST and Fashion-MNIST are distributed; a folder with no IDX files but `.npz`
  files reads those;
- `permuted:SOURCE`: SOURCE with the values of each sample flattened and put in one fixed random
  order (numpy's `default_rng(0).permutation`), the same for every sample and split: with MNIST,
  the permutation-invariant benchmark (PI-MNIST), on which no spatial prior can help;
- `saccades:SOURCE`: each image of SOURCE as an event stream `[30, 2, H + 6, W + 6]`, made the way
  N-MNIST was recorded (three saccades, ON/OFF channels; `events.py`); it needs an input with
  `encode none`. A synthetic stand-in, not N-MNIST.

Values are scaled to [0, 1]: `uint8` by 255; other data already in [0, 1] is kept; anything else
by the training set's minimum and maximum. Samples are reshaped to the network's input shape
when the number of values agrees (`8x8` fits `x[64]`, `x[8, 8]` or `x[1, 8, 8]`; channel-last
`HxWxC` images are transposed to `CxHxW`). An input with `encode none` or `delta` takes a
sequence: each sample becomes `[T, *shape]` (a 28x28 image into `x[28]` is 28 steps of one row),
and batches come out time-first, `[T, batch, *shape]`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .events import render, stream_shape

SEQUENCE_ENCODINGS = ("none", "delta")
BUILTIN = "digits"
PERMUTED, SACCADES = "permuted:", "saccades:"
KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")
# what a truncated, corrupted or non-archive file raises from numpy, zipfile, gzip and zlib
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """Data that cannot be read, or that does not fit the network (a user error, not a bug)."""


@dataclass(frozen=True)
class RawData:
    """A dataset as read: samples `[N, ...]` of any numeric dtype and integer labels `[N]`."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    events: bool = False     # samples are images that `batch` renders as saccade event streams

    @property
    def sample_shape(self) -> tuple[int, ...]:
        stored = tuple(self.x_train.shape[1:])
        return stream_shape(stored) if self.events else stored


def load_source(source: str | None) -> RawData:
    """Read a data source (see the module docstring); `None` is the built-in digits."""
    if source is None or source == BUILTIN:
        return load_digits()
    for prefix, transform in TRANSFORMS.items():
        if source.startswith(prefix):
            return transform(load_source(source[len(prefix):]))
    parts = [p.strip() for p in source.split(",") if p.strip()]
    if len(parts) > 1:
        return load_npz([Path(p) for p in parts])
    path = Path(parts[0]) if parts else Path(source)
    if path.is_dir():
        if _idx_files(path):
            return load_idx(path)
        npz = sorted(path.glob("*.npz"))
        if npz:
            return load_npz(npz)
        raise DataError(f"{path} holds no IDX files and no .npz files; expected "
                        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                        "t10k-labels-idx1-ubyte (optionally .gz)")
    if not path.exists():
        raise DataError(f"no such data source: {source} (use '{BUILTIN}', a .npz file or a folder of IDX files)")
    if path.suffix == ".npz":
        return load_npz([path])
    raise DataError(f"cannot read {path}: expected a .npz file (x_train, y_train, x_test, y_test) "
                    "or a folder of IDX files")


def permuted(raw: RawData) -> RawData:
    """`permuted:`: every sample's values flattened, in one fixed random order."""
    if raw.events:
        raise DataError("permuted: applies to stored samples, not to the event streams saccades: renders")
    order = np.random.default_rng(0).permutation(int(np.prod(raw.sample_shape)))
    flat = {key: getattr(raw, key).reshape(len(getattr(raw, key)), -1)[:, order] for key in ("x_train", "x_test")}
    return replace(raw, name=f"{PERMUTED}{raw.name}", **flat)


def saccades(raw: RawData) -> RawData:
    """`saccades:`: the images rendered as event streams batch by batch (`events.render`)."""
    shape = raw.sample_shape
    grey = len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)
    if raw.events or not grey:
        raise DataError(f"saccades: needs grey images (HxW or 1xHxW); {raw.name} holds "
                        f"{_fmt(shape)} samples")
    return replace(raw, name=f"{SACCADES}{raw.name}", events=True)


# data-source prefixes (`permuted:SOURCE`) and what each does to SOURCE
TRANSFORMS = {PERMUTED: permuted, SACCADES: saccades}


def load_digits() -> RawData:
    """scikit-learn's bundled 8x8 digits, values 0..16, with a fixed 1437/360 split."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DataError("the built-in digits need scikit-learn: pip install 'snnspec[data]'") from e
    digits = sk_digits()
    x = np.asarray(digits.images, dtype=np.float32)  # [1797, 8, 8], 0..16
    y = np.asarray(digits.target, dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:360], order[360:]
    return RawData(BUILTIN, x[train], y[train], x[test], y[test])


def load_npz(paths: list[Path]) -> RawData:
    """Keras-layout `.npz` files; arrays of the same name are concatenated in the given order."""
    found: dict[str, list[np.ndarray]] = {k: [] for k in KERAS_KEYS}
    others: list[str] = []
    for path in paths:
        if not path.is_file():
            raise DataError(f"no such file: {path}")
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty (0 bytes); expected a .npz archive with {', '.join(KERAS_KEYS)}")
        try:
            f = np.load(path, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise DataError(f"{path} holds a single array, not a .npz archive with {', '.join(KERAS_KEYS)}")
            with f:
                for key in f.files:
                    if key in found:
                        found[key].append(f[key])
                    else:
                        others.append(key)
        except DataError:
            raise
        except _UNREADABLE as e:
            reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
            raise DataError(f"{path} is not a readable .npz archive ({reason}); it may be truncated or "
                            "corrupted: write it again") from None
    name = ",".join(str(p) for p in paths)
    missing = [k for k, v in found.items() if not v]
    if missing:
        extra = f"; it has {', '.join(sorted(set(others)))}" if others else ""
        raise DataError(f"{name}: no array named {', '.join(missing)}{extra} (the Keras layout has "
                        f"{', '.join(KERAS_KEYS)})")
    arrays = {k: _joined(name, k, v) for k, v in found.items()}
    return _checked(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])


def _joined(name: str, key: str, parts: list[np.ndarray]) -> np.ndarray:
    """The parts of one array from several files, concatenated along the samples."""
    if len(parts) == 1:
        return parts[0]
    shapes = {p.shape[1:] if p.ndim else None for p in parts}
    if len(shapes) > 1:
        listed = ", ".join(str(list(p.shape)) for p in parts)
        raise DataError(f"{name}: the parts of {key} do not join: their shapes are {listed} (all but the first "
                        "dimension must agree)")
    return np.concatenate(parts)


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped) as an array of its dtype and shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except _UNREADABLE as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); it may be truncated or corrupted") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header)")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: header says {'x'.join(map(str, dims))} values of {dtype.itemsize} byte(s) "
                        f"({expected} bytes) but the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


_IDX_NAME = re.compile(r"^(?P<split>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx\d[-_.]ubyte(\.gz)?$")


def _idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    files: dict[tuple[str, str], Path] = {}
    for p in sorted(folder.iterdir()):
        m = _IDX_NAME.match(p.name.lower())
        if m and p.is_file():
            split = "train" if m["split"] == "train" else "test"
            files.setdefault((split, m["kind"]), p)
    return files


def load_idx(folder: Path) -> RawData:
    """A folder with the four standard IDX files of MNIST or Fashion-MNIST."""
    files = _idx_files(folder)
    need = [("train", "images"), ("train", "labels"), ("test", "images"), ("test", "labels")]
    missing = [f"{'t10k' if s == 'test' else s}-{k}-idx{3 if k == 'images' else 1}-ubyte" for s, k in need
               if (s, k) not in files]
    if missing:
        raise DataError(f"{folder}: missing IDX file(s) {', '.join(missing)} (optionally .gz)")
    a = {key: read_idx(files[key]) for key in need}
    return _checked(str(folder), a[("train", "images")], a[("train", "labels")], a[("test", "images")],
                    a[("test", "labels")])


def _checked(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
             ) -> RawData:
    for xs, ys, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if xs.ndim < 2:
            raise DataError(f"{name}: x_{split} must hold samples [N, ...], got shape {list(xs.shape)}")
        if not (np.issubdtype(xs.dtype, np.number) or xs.dtype == np.bool_) or np.iscomplexobj(xs):
            raise DataError(f"{name}: x_{split} must be real numbers, got {xs.dtype}")
        if ys.ndim != 1 or len(ys) != len(xs):
            raise DataError(f"{name}: y_{split} must be one label per sample ({len(xs)}), got shape {list(ys.shape)}")
        if len(xs) == 0:
            raise DataError(f"{name}: the {'training' if split == 'train' else 'test'} set is empty "
                            f"(x_{split} has shape {list(xs.shape)})")
        if xs.size == 0:
            raise DataError(f"{name}: the samples of x_{split} hold no values (shape {list(xs.shape)})")
        not_finite(name, f"x_{split}", xs)
        not_finite(name, f"y_{split}", ys)
        integral = (np.issubdtype(ys.dtype, np.integer) or ys.dtype == np.bool_
                    or (np.issubdtype(ys.dtype, np.floating) and bool(np.all(np.mod(ys, 1) == 0))))
        if not integral:
            raise DataError(f"{name}: y_{split} must hold integer class labels, got {ys.dtype} values such as "
                            f"{ys[:3].tolist()}")
        if ys.min() < 0:
            raise DataError(f"{name}: y_{split} has a negative label ({int(ys.min())} at sample {int(ys.argmin())})")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{name}: training samples are {list(x_train.shape[1:])} but test samples are "
                        f"{list(x_test.shape[1:])}")
    return RawData(name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))


def not_finite(name: str, key: str, x: np.ndarray) -> None:
    """Raise `DataError` saying how many values of `x` are NaN or infinite, and where the first is."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    counts = " and ".join(f"{n} {w}" for n, w in ((nan, "NaN"), (inf, "infinite")) if n)
    first = np.unravel_index(int(np.argmax(bad)), x.shape)
    samples = int(bad.reshape(len(x), -1).any(axis=1).sum()) if x.ndim > 1 else int(bad.sum())
    where = f"sample {first[0]}" + (f", index {list(map(int, first[1:]))}" if x.ndim > 1 else "")
    raise DataError(f"{name}: {key} holds {counts} value(s) in {samples} of {len(x)} samples (the first at "
                    f"{where}); remove or replace them before training")


def data_digest(raw: RawData) -> str:
    """sha256 of the arrays (dtype, shape and bytes), so a resumed run can tell it has the same data."""
    h = hashlib.sha256(b"saccades" if raw.events else b"")
    for a in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


# ---- fitting data to a network input --------------------------------------------------------------


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class Layout:
    """How raw samples become network inputs: scaling and a reshape (and transpose)."""

    sample_shape: tuple[int, ...]       # as stored
    input_shape: tuple[int, ...]        # the network input's shape (one step)
    sequence: bool                      # time-first batches [T, B, ...]
    steps: int | None                   # T of a sequence sample
    channel_last: bool                  # HxWxC stored, CxHxW wanted
    events: bool                        # images stored, saccade event streams wanted
    lo: float
    hi: float


def fit(raw: RawData, input_name: str, input_shape: tuple[int, ...], encoding: str, network: str) -> Layout:
    """Check that the data fits a network input and decide the reshape; raise `DataError` if not."""
    sample = raw.sample_shape
    n_sample, n_input = math.prod(sample), math.prod(input_shape)
    where = f"input '{input_name}' of network '{network}' is [{', '.join(map(str, input_shape))}]"
    sequence = encoding in SEQUENCE_ENCODINGS
    channel_last = False
    steps = None
    if raw.events and not sequence:
        raise DataError(f"{raw.name} gives event streams ({_fmt(sample)} per sample) but {where} with "
                        f"`encode {encoding}`; an input for them has `encode none`, e.g. `input x[2, "
                        f"{sample[2]}, {sample[3]}] encode none`")
    if sequence:
        if n_sample % n_input:
            raise DataError(f"the samples of {raw.name} are {_fmt(sample)} ({n_sample} values), which is not a "
                            f"whole number of steps for {where} ({n_input} values per step, `encode {encoding}`)")
        steps = n_sample // n_input
    else:
        if n_sample != n_input:
            hint = f"; a network for this data has an input of {n_sample} values, e.g. `input x[{n_sample}]`"
            if len(sample) == 2:
                hint += f" or `input x[1, {sample[0]}, {sample[1]}]`"
            raise DataError(f"the samples of {raw.name} are {_fmt(sample)} ({n_sample} values) but {where} "
                            f"({n_input} values){hint}")
        channel_last = (len(sample) == 3 and len(input_shape) == 3 and sample != input_shape
                        and sample[2] == input_shape[0] and sample[:2] == input_shape[1:])
    lo, hi = _scale(raw.x_train)
    return Layout(sample, input_shape, sequence, steps, channel_last, raw.events, lo, hi)


def _scale(x: np.ndarray) -> tuple[float, float]:
    if x.dtype == np.uint8:
        return 0.0, 255.0
    if x.dtype == np.bool_ or x.size == 0:
        return 0.0, 1.0
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


class Tensors:
    """One split as torch tensors, with `batch(index)` giving network-ready inputs."""

    def __init__(self, x: np.ndarray, y: np.ndarray, layout: Layout):
        import torch

        self.layout = layout
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        self.y = torch.from_numpy(np.ascontiguousarray(y)).long()
        self._scale = 1.0 / (layout.hi - layout.lo)

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index, device=None):  # type: ignore[no-untyped-def]
        """Inputs `[B, *shape]` (or `[T, B, *shape]` for sequences) in [0, 1], and labels `[B]`."""
        import torch

        lay = self.layout
        x = self.x[index].to(device=device, dtype=torch.get_default_dtype(), non_blocking=True)
        x = (x - lay.lo) * self._scale if lay.lo else x * self._scale
        b = x.shape[0]
        if lay.events:
            x = render(x)
        if lay.sequence:
            x = x.reshape(b, lay.steps, *lay.input_shape).transpose(0, 1)
        elif lay.channel_last:
            x = x.permute(0, 3, 1, 2)
        else:
            x = x.reshape(b, *lay.input_shape)
        return x, self.y[index].to(device=device, non_blocking=True)


def prepare(raw: RawData, layout: Layout) -> tuple[Tensors, Tensors]:
    return Tensors(raw.x_train, raw.y_train, layout), Tensors(raw.x_test, raw.y_test, layout)
