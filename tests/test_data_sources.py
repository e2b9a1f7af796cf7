"""The `permuted:` and `saccades:` data sources (PI-MNIST, a synthetic N-MNIST stand-in)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from snnspec.cli import app  # noqa: E402
from snnspec.train import events  # noqa: E402
from snnspec.train.data import DataError, fit, load_source, prepare  # noqa: E402
from snnspec.train.loop import TrainConfig, train  # noqa: E402


def _npz(tmp_path, x_train, x_test, name="d.npz"):
    path = tmp_path / name
    np.savez(path, x_train=x_train, y_train=np.arange(len(x_train)) % 10,
             x_test=x_test, y_test=np.arange(len(x_test)) % 10)
    return str(path)


def test_permuted_puts_every_sample_in_one_fixed_order(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = rng.integers(0, 255, (5, 4, 6), dtype=np.uint8), rng.integers(0, 255, (3, 4, 6), dtype=np.uint8)
    raw = load_source("permuted:" + _npz(tmp_path, x_train, x_test))
    again = load_source("permuted:" + _npz(tmp_path, x_train, x_test))
    assert raw.sample_shape == (24,)
    order = np.random.default_rng(0).permutation(24)
    assert np.array_equal(raw.x_train, x_train.reshape(5, 24)[:, order])
    assert np.array_equal(raw.x_test, x_test.reshape(3, 24)[:, order])  # the same order for the test split
    assert np.array_equal(raw.x_train, again.x_train)
    assert not np.array_equal(raw.x_train, x_train.reshape(5, 24))


def test_saccade_path_is_a_closed_triangle_of_thirty_steps():
    path = events.offsets()
    assert len(path) == events.STEPS + 1
    for k, vertex in enumerate((*events.TRIANGLE, events.TRIANGLE[0])):
        assert path[k * events.STEPS_PER_SACCADE] == pytest.approx(vertex)
    a, b, c = (np.array(v) for v in events.TRIANGLE)
    assert np.linalg.norm(c - a) == pytest.approx(np.linalg.norm(c - b))  # isosceles
    assert max(abs(v) for point in path for v in point) <= events.PAD  # the digit stays in the frame


def test_a_bar_moving_right_gives_on_events_at_its_leading_edge_and_off_at_its_trailing_edge():
    image = torch.zeros(1, 28, 28)
    image[0, 8:20, 10:14] = 1.0
    stream = events.render(image)[0]  # [T, 2, 34, 34]
    assert stream.shape == (30, 2, 34, 34)
    assert set(stream.unique().tolist()) <= {0.0, 1.0}
    first = stream[:events.STEPS_PER_SACCADE].sum(0)  # the first saccade moves the image +5 px in x
    columns = torch.arange(34.0)
    on_x = (first[0].sum(0) * columns).sum() / first[0].sum()
    off_x = (first[1].sum(0) * columns).sum() / first[1].sum()
    # padded, the bar covers columns 13..16 and sits 2.5 px left at the start: its right edge sweeps
    # x = 14..19 (ON events) and its left edge x = 10..15 (OFF), pixel centres 0.5 left of those
    assert on_x == pytest.approx(16.0, abs=0.75) and off_x == pytest.approx(12.0, abs=0.75)
    assert first[:, :12].sum() == 0 and first[:, 25:].sum() == 0  # rows 11..22, 1.5 px down: 12..24
    assert torch.equal(events.render(image), stream[None])  # no noise: the same image, the same stream
    assert events.render(torch.zeros(2, 28, 28)).sum() == 0


def test_saccade_streams_fit_an_encode_none_input_time_first(tmp_path):
    rng = np.random.default_rng(2)
    source = "saccades:" + _npz(tmp_path, rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
                                rng.integers(0, 255, (2, 28, 28), dtype=np.uint8))
    raw = load_source(source)
    assert raw.sample_shape == (30, 2, 34, 34)
    layout = fit(raw, "x", (2312,), "none", "N")
    train_t, _test = prepare(raw, layout)
    x, y = train_t.batch(torch.arange(3))
    assert x.shape == (30, 3, 2312) and y.shape == (3,)
    direct = events.render(torch.from_numpy(raw.x_train[:3]).float() / 255)
    assert torch.equal(x, direct.reshape(3, 30, 2312).transpose(0, 1))
    with pytest.raises(DataError, match="encode none"):
        fit(raw, "x", (2, 34, 34), "rate", "N")
    with pytest.raises(DataError, match="grey images"):
        load_source("saccades:" + source)


NMNIST_LIKE = """
from "std/neurons.snn" import Leaky
network Events {
    input x[2, 34, 34] encode none
    layer h = Leaky[32]
    layer out = Leaky[10]
    x -> flatten -> dense -> h
    h -> dense -> out
    output out.spike count
    train { loss ce_count; optimizer adam(lr = 0.01); batch 8; epochs 1 }
}
"""


def test_train_reads_saccade_streams_and_records_the_source(tmp_path):
    spec = tmp_path / "events.snn"
    spec.write_text(NMNIST_LIKE)
    rng = np.random.default_rng(3)
    data = _npz(tmp_path, rng.integers(0, 255, (16, 28, 28), dtype=np.uint8),
                rng.integers(0, 255, (8, 28, 28), dtype=np.uint8))
    result = train(TrainConfig(spec, data="saccades:" + data, out=tmp_path / "r", quiet=True))
    assert result.metrics["settings"]["data"] == "saccades:" + str((tmp_path / "d.npz").resolve())
    assert 0.0 <= result.test_accuracy <= 1.0
    cli = CliRunner().invoke(app, ["train", str(spec), "--data", "saccades:" + data, "--out", str(tmp_path / "c")])
    assert cli.exit_code == 0, cli.output
    assert "input [2x34x34] encode none, 30 steps (from the data)" in cli.output
    assert f"data saccades:{data}: 16 train / 8 test" in cli.output
