"""The CLI and file loading as a careful Unix tool (snnspec/files.py, loader.py, cli.py): what it refuses
to read or write, and that each refusal is one clear line (or a diagnostic at the right place), never a
traceback, a hang, a replaced device node or link, or another file's contents quoted."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

import snnspec
from snnspec import files
from snnspec.cache import write_atomic as cache_write
from snnspec.cli import app
from snnspec.diagnostics import Diagnostic, Diagnostics, render
from snnspec.ir import Span
from snnspec.loader import load_program

SPEC = """from "std/neurons.snn" import Leaky
network Net {
    steps = 3
    input x[4] encode direct
    layer h = Leaky[3]
    x -> dense -> h
    output h.spike count
}
"""

CELL = "neuron N{k} {{\n    state v = 0\n    v <- 0.9 * v + I\n    spike when v > 1\n}}\n"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "main.snn"
    path.write_text(SPEC)
    return path


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def said(result: Result) -> str:
    """Everything the command printed, rich's error box taken apart: one space between words."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", result.output)).strip()


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def usage_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    return said(result)


# ---- build -o: where it refuses to write ------------------------------------------------------------------------


def test_build_refuses_a_device_node_and_leaves_it_alone(spec: Path) -> None:
    before = os.stat("/dev/null")
    line = one_line_error(invoke("build", spec, "-o", "/dev/null"))
    assert line == "error: cannot write '/dev/null': it is a character device, not a regular file"
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_build_refuses_a_symlink_and_keeps_the_link_and_its_file(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text("kept\n")
    (tmp_path / "link.py").symlink_to("real.py")
    (tmp_path / "dangling.py").symlink_to("nowhere.py")
    for name in ("link.py", "dangling.py"):
        line = one_line_error(invoke("build", spec, "-o", tmp_path / name))
        assert line.startswith(f"error: cannot write '{tmp_path / name}': it is a symbolic link")
        assert "name the file it links to" in line
    assert os.readlink(tmp_path / "link.py") == "real.py" and (tmp_path / "real.py").read_text() == "kept\n"
    assert os.readlink(tmp_path / "dangling.py") == "nowhere.py" and not (tmp_path / "nowhere.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.py", "link.py", "main.snn", "real.py"]


def test_build_refuses_a_directory_a_path_below_a_file_and_an_unwritable_place(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    line = one_line_error(invoke("build", spec, "-o", tmp_path / "folder"))
    assert line == f"error: cannot write '{tmp_path / 'folder'}': it is a directory, not a regular file"
    assert (tmp_path / "folder").is_dir() and not list((tmp_path / "folder").iterdir())
    below = tmp_path / "main.snn" / "out.py"
    line = one_line_error(invoke("build", spec, "-o", below))
    assert line == f"error: cannot write '{below}': '{spec}' is a file, not a folder"
    assert spec.read_text() == SPEC
    if Path("/proc/self").is_dir():  # a place nobody, root included, can create a file in
        line = one_line_error(invoke("build", spec, "-o", "/proc/snnspec-out.py"))
        assert line == "error: cannot write '/proc/snnspec-out.py': no such file or directory"


def test_build_writes_a_new_file_atomically_and_keeps_an_existing_files_mode(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deep" / "out.py"
    result = invoke("build", spec, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_text() == snnspec.generate(spec)
    assert [p.name for p in out.parent.iterdir()] == ["out.py"]  # no temporary file left
    out.chmod(0o640)
    assert invoke("build", spec, "-o", out, "-t", "jax").exit_code == 0
    assert out.read_text() == snnspec.generate(spec, "jax")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    dash = invoke("build", spec, "-o", "-")
    assert dash.exit_code == 0 and dash.stdout == snnspec.generate(spec)


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "f.txt"
    out.write_text("old\n")

    def half_then_fail(f: object) -> None:
        f.write(b"half")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(files.FileProblem, match="no space left on device"):
        files.write_atomic(out, half_then_fail)
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_cache_writes_go_through_the_same_door(tmp_path: Path) -> None:
    """snnspec/cache.py: a cache entry that is a symlink is not written through (the write is refused, the
    cache only costs time)."""
    (tmp_path / "victim").write_text("kept\n")
    (tmp_path / "entry.jsonl").symlink_to("victim")
    assert not cache_write(tmp_path / "entry.jsonl", "{}\n")
    assert (tmp_path / "victim").read_text() == "kept\n" and (tmp_path / "entry.jsonl").is_symlink()
    assert cache_write(tmp_path / "other.jsonl", "{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.jsonl", "other.jsonl", "victim"]


def test_simulate_refuses_a_figure_onto_a_link_or_of_an_unknown_kind(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "real.png").write_bytes(b"kept")
    (tmp_path / "fig.png").symlink_to("real.png")
    line = one_line_error(invoke("simulate", spec, "--plot", tmp_path / "fig.png"))
    assert "it is a symbolic link" in line and (tmp_path / "real.png").read_bytes() == b"kept"
    assert "name a .png, .svg or .pdf file" in usage_error(invoke("simulate", spec, "--plot", "/dev/null"))


# ---- reading specs and imports: regular .snn files of UTF-8 text, at most 1 MB ----------------------------------


def test_a_fifo_as_spec_or_import_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO nobody writes to would block a plain read forever: a subprocess, with a timeout."""
    fifo = tmp_path / "pipe.snn"
    os.mkfifo(fifo)
    (tmp_path / "main.snn").write_text('import "pipe.snn"\n' + CELL.format(k=0))
    for target, expected in ((fifo, f"error: cannot read '{fifo}': a FIFO (named pipe), not a regular file"),
                             (tmp_path / "main.snn", "error: cannot import 'pipe.snn': a FIFO (named pipe), not a "
                                                     f"regular file\n  --> {tmp_path / 'main.snn'}:1:1")):
        run = subprocess.run([sys.executable, "-m", "snnspec", "check", str(target)], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 1 and run.stderr.startswith(expected), run.stderr
        assert "Traceback" not in run.stderr


def test_devices_and_links_to_them_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "zero.snn").symlink_to("/dev/zero")
    (tmp_path / "main.snn").write_text('import "/dev/zero"\nimport "zero.snn"\n' + CELL.format(k=0))
    text = said(invoke("check", tmp_path / "main.snn"))
    assert "error: cannot import '/dev/zero': not a .snn file" in text
    assert f"--> {tmp_path / 'main.snn'}:1:1" in text and f"--> {tmp_path / 'main.snn'}:2:1" in text
    assert "error: cannot import 'zero.snn': it links to '/dev/zero', which is not a .snn file" in text
    assert "2 error(s)" in text
    dev = invoke("check", "/dev/zero")
    assert dev.exit_code == 1 and "cannot read '/dev/zero': not a .snn file" in said(dev)


def test_a_spec_over_the_size_limit_is_refused_with_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.snn"
    big.write_text(CELL.format(k=0) + "#" * files.SPEC_LIMIT)
    text = said(invoke("check", big))
    assert f"cannot read '{big}': larger than the limit of 1,000,000 bytes for a spec file ({big.stat().st_size:,} " \
           "bytes)" in text and "split it into files" in text


def test_an_import_of_a_non_snn_file_is_refused_and_never_quoted(tmp_path: Path) -> None:
    """A spec must not be able to show another file's contents in a diagnostic (import "/etc/passwd")."""
    (tmp_path / "secret.txt").write_text("SECRET-CONTENT line one\n")
    main = tmp_path / "main.snn"
    main.write_text(CELL.format(k=0) + 'import "secret.txt"\nimport "/etc/passwd"\n')
    result = invoke("check", main)
    text = said(result)
    assert result.exit_code == 1
    assert "error: cannot import 'secret.txt': not a .snn file" in text and f"--> {main}:6:1" in text
    assert "error: cannot import '/etc/passwd': not a .snn file" in text and f"--> {main}:7:1" in text
    assert "hint: snnspec reads only spec files named *.snn" in text
    assert "SECRET" not in text and "root:" not in text
    # nor does rendering quote a file that is not a spec, whatever a diagnostic's span names
    span = Span(file=str(tmp_path / "secret.txt"), line=1, column=1, end_line=1, end_column=4)
    assert "SECRET" not in render([Diagnostic(message="m", span=span)])


def test_a_600_file_import_chain_loads_and_cycles_are_still_diagnosed(tmp_path: Path) -> None:
    """reliability/deep_import_chain.py: RecursionError for 600 files each importing the next."""
    n = 600
    for k in range(n):
        nxt = f'import "c{k + 1}.snn"\n' if k + 1 < n else ""
        (tmp_path / f"c{k}.snn").write_text(nxt + CELL.format(k=k))
    result = invoke("check", tmp_path / "c0.snn")
    assert result.exit_code == 0 and said(result) == "ok: 1 file(s) checked", result.output
    program = load_program(tmp_path / "c0.snn", Diagnostics())
    assert set(program.modules) == {str(tmp_path / f"c{k}.snn") for k in range(n)} | {"std/surrogates.snn"}
    assert set(snnspec.load(tmp_path / "c0.snn").neurons) == {"N0", "N1"}  # an import is not transitive
    # close the chain: the last file imports the first
    (tmp_path / f"c{n - 1}.snn").write_text('import "c0.snn"\n' + CELL.format(k=n - 1))
    text = said(invoke("check", tmp_path / "c0.snn"))
    chain = " -> ".join(str(tmp_path / f"c{k}.snn") for k in (*range(n), 0))
    assert f"error: import cycle: {chain} --> {tmp_path / f'c{n - 1}.snn'}:1:1" in text
    assert "1 error(s)" in text


def test_a_file_importing_itself_is_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.snn").write_text('import "./a.snn"\n' + CELL.format(k=0))
    text = said(invoke("check", tmp_path / "a.snn"))
    assert f"error: import cycle: {tmp_path / 'a.snn'} -> {tmp_path / 'a.snn'} --> {tmp_path / 'a.snn'}:1:1" in text


def test_unreadable_specs_say_why(tmp_path: Path) -> None:
    """A spec that is not UTF-8, a directory, a missing file, an empty file, a file of comments only."""
    latin = tmp_path / "latin.snn"
    latin.write_bytes(b"# ok\nneuron \xe9t\xe9 {}\n")
    text = said(invoke("check", latin))
    assert f"error: cannot read '{latin}': not UTF-8 text (byte 0xe9 at line 2, column 8) --> {latin}:2:8" in text
    assert "hint: save the file as UTF-8" in text
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.snn").mkdir()
    cases = {
        tmp_path / "folder": "a directory, not a .snn file",
        tmp_path / "folder.snn": "a directory, not a regular file",
        tmp_path / "missing.snn": "no such file",
    }
    for path, why in cases.items():
        result = invoke("check", path)
        assert result.exit_code == 1 and said(result).startswith(f"error: cannot read '{path}': {why}"), result.output
    (tmp_path / "empty.snn").write_text("\n  \n")
    (tmp_path / "comments.snn").write_text("# a neuron will go here\n")
    for name, what in (("empty.snn", "is empty"), ("comments.snn", "declares nothing (only comments)")):
        result = invoke("check", tmp_path / name)
        assert result.exit_code == 1 and said(result).startswith(f"error: '{tmp_path / name}' {what}")
        assert "hint: a spec declares neurons, surrogates, rules or networks" in said(result)
        assert f"--> {tmp_path / name}:1:1" in said(result)  # located, as every diagnostic (found by the fuzzer)
        build = invoke("build", tmp_path / name)
        assert build.exit_code == 1 and build.stdout == ""


# ---- options: an unknown choice or a bad value is a usage error ------------------------------------------------


def test_unknown_choices_are_usage_errors(spec: Path) -> None:
    assert "Invalid value for '--format': 'yaml' is not one of: text, json" in usage_error(
        invoke("check", "--format", "yaml", spec))
    assert "'yaml' is not one of: torch, jax, summary" in usage_error(invoke("build", spec, "-t", "yaml"))
    assert "'hinge' is not one of: ce_rate, ce_count, mse_count, ce_max_mem, first_spike" in usage_error(
        invoke("train", spec, "--loss", "hinge"))


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What `snnspec train` would run with (the training itself replaced)."""
    import snnspec.train.loop

    configs: list[object] = []
    monkeypatch.setattr(snnspec.train.loop, "train", configs.append)
    return configs


@pytest.mark.parametrize(("args", "message"), [
    (["--lr", "nan"], "Invalid value for '--lr': nan is not a learning rate: use a positive finite number"),
    (["--lr", "-1"], "Invalid value for '--lr': -1.0 is not a learning rate"),
    (["--lr", "0"], "Invalid value for '--lr': 0.0 is not a learning rate"),
    (["--lr", "inf"], "Invalid value for '--lr': inf is not a learning rate"),
    (["--epochs", "0"], "Invalid value for '--epochs'"),
    (["--batch-size", "0"], "Invalid value for '--batch' / '--batch-size'"),
    (["--batch", "-3"], "Invalid value for '--batch' / '--batch-size'"),
    (["--seed", str(2**64)], "Invalid value for '--seed'"),
    (["--device", "gpu"], "'gpu' is not a device: use auto, cpu, cuda or cuda:N"),
])
def test_bad_train_options_are_usage_errors(spec: Path, tmp_path: Path, trained: list[object], args: list[str],
                                            message: str) -> None:
    assert message in usage_error(invoke("train", spec, "--out", tmp_path / "run", *args))
    assert trained == [] and not (tmp_path / "run").exists()


def test_cuda_devices_the_machine_lacks_are_usage_errors(spec: Path, trained: list[object],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    text = usage_error(invoke("train", spec, "--device", "cuda"))
    assert "'cuda': CUDA is not available on this machine" in text and "use --device cpu or auto" in text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert "'cuda:2': this machine has 2 CUDA device(s), cuda:0 to cuda:1" in usage_error(
        invoke("train", spec, "--device", "cuda:2"))
    assert trained == []
    assert invoke("train", spec, "--device", "cuda:1", "--batch-size", "16", "--lr", "0.01").exit_code == 0
    (config,) = trained
    assert (config.device, config.batch, config.lr) == ("cuda:1", 16, 0.01)  # type: ignore[attr-defined]


def test_a_fifo_where_a_cache_entry_belongs_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """snnspec/cache.py reads its entries through the same door as specs: a FIFO there (which nobody writes
    to) is not opened for reading, the value is derived again and the FIFO left alone."""
    import threading

    from snnspec.cache import cached, entry_file

    monkeypatch.setenv("SNNSPEC_CACHE_DIR", str(tmp_path))
    value = Span(file="x.snn", line=1, column=1, end_line=1, end_column=2)
    entry = entry_file("test", Span, ("input",))
    assert entry is not None
    entry.parent.mkdir(parents=True)
    os.mkfifo(entry)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(cached("test", Span, ("input",), lambda d: value,
                                                               Diagnostics())), daemon=True)
    reader.start()
    reader.join(30)
    assert got == [value] and stat.S_ISFIFO(os.lstat(entry).st_mode)
