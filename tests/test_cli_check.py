"""`snnspec check` and `snnspec schema` (DESIGN.md, CLI): exit codes, rendering, JSON output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snnspec.cli import app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "broken"
GOOD = ROOT / "specs" / "examples" / "mnist_mlp.snn"


@pytest.fixture
def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2 keeps stderr apart by default
        return CliRunner()


def _both(result) -> str:  # type: ignore[no-untyped-def]
    """stdout and stderr together (the CLI prints diagnostics to stderr)."""
    try:
        err = result.stderr
    except ValueError:
        err = ""
    return result.stdout + err


def test_clean_spec_exits_0(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(GOOD)])
    assert result.exit_code == 0, _both(result)
    assert "error" not in _both(result)


def test_several_clean_specs_exit_0(runner: CliRunner) -> None:
    files = [str(p) for p in sorted((ROOT / "specs" / "std").glob("*.snn"))]
    result = runner.invoke(app, ["check", *files])
    assert result.exit_code == 0, _both(result)


def test_broken_spec_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(CORPUS / "unknown_name.snn")])
    assert result.exit_code == 1


def test_one_broken_file_among_clean_ones_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(GOOD), str(CORPUS / "dim_add.snn")])
    assert result.exit_code == 1


def test_missing_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.snn")])
    assert result.exit_code == 1
    assert "cannot read" in _both(result)


def test_rendered_diagnostic(runner: CliRunner) -> None:
    """rustc style: message, `--> file:line:col`, the source line, a caret under the culprit, the hint."""
    path = CORPUS / "unknown_name.snn"
    result = runner.invoke(app, ["check", str(path)])
    text = _both(result)
    assert "error: unknown name 'tau_m'" in text
    arrow = re.search(r"--> (.+):(\d+):(\d+)", text)
    assert arrow is not None, text
    assert arrow.group(1).endswith("unknown_name.snn")
    line, column = int(arrow.group(2)), int(arrow.group(3))
    source = path.read_text().splitlines()[line - 1]
    lines = text.splitlines()
    quoted = next(i for i, s in enumerate(lines) if s.startswith(f"{line} | "))
    assert lines[quoted] == f"{line} | {source}"
    caret = lines[quoted + 1]
    gutter = " " * len(str(line)) + " | "
    assert caret.startswith(gutter)
    assert caret[len(gutter):] == " " * (column - 1) + "^" * len("tau_m")
    assert "= hint: did you mean 'tau_mem'?" in text
    assert "1 error(s)" in text


def test_rendered_diagnostic_in_an_imported_file(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(CORPUS / "import_cycle.snn")])
    text = _both(result)
    assert result.exit_code == 1
    assert re.search(r"--> .*cycle_back\.snn:1:1", text), text
    assert '1 | from "../import_cycle.snn" import Front' in text


def test_json_format(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", "--format", "json", str(CORPUS / "multiple_errors.snn")])
    assert result.exit_code == 1
    items = json.loads(result.stdout)
    assert [d["severity"] for d in items] == ["error"] * 3
    first = items[0]
    assert first["message"] == "unknown name 'tau_m'"
    assert first["hint"] == "did you mean 'tau'?"
    span = first["span"]
    assert (span["line"], span["column"]) == (14, 23)
    assert span["file"].endswith("multiple_errors.snn")
    assert {"end_line", "end_column"} <= set(span)


def test_json_format_clean(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", "--format", "json", str(GOOD)])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_schema_is_a_json_schema(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, _both(result)
    schema = json.loads(result.stdout)
    assert isinstance(schema, dict)
    assert "$defs" in schema and ("anyOf" in schema or "oneOf" in schema)
    titles = {d.get("title") for d in schema["$defs"].values()}
    assert {"Spec", "LoweredSpec", "Span"} <= titles
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_schema_validates_a_spec(runner: CliRunner) -> None:
    """A spec's JSON validates against the printed schema (when `jsonschema` is installed)."""
    jsonschema = pytest.importorskip("jsonschema")
    import snnspec

    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    jsonschema.validate(json.loads(snnspec.load(GOOD).model_dump_json()), schema)
    jsonschema.validate(json.loads(snnspec.load_lowered(GOOD).model_dump_json()), schema)
