"""Every spec under specs/ checks clean, and its IR survives a JSON round trip (DESIGN.md, Contracts)."""

from __future__ import annotations

from pathlib import Path

import pytest

import snnspec
from snnspec import ir
from snnspec.diagnostics import Diagnostics, render
from snnspec.lower import lower

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("**/*.snn"))
IDS = [p.relative_to(ROOT / "specs").as_posix() for p in SPECS]


def test_there_are_specs() -> None:
    names = set(IDS)
    assert {"std/neurons.snn", "std/rules.snn", "std/surrogates.snn"} <= names
    assert any(n.startswith("examples/") for n in names)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_spec_checks_clean(path: Path) -> None:
    diagnostics = snnspec.check(path)
    errors = [d for d in diagnostics if d.severity == "error"]
    assert not errors, render(errors)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_spec_round_trips(path: Path) -> None:
    spec = snnspec.load(path)
    text = spec.model_dump_json()
    again = ir.Spec.model_validate_json(text)
    assert again == spec
    assert again.model_dump_json() == text


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_lowered_spec_round_trips(path: Path) -> None:
    lowered = snnspec.load_lowered(path)
    text = lowered.model_dump_json()
    again = ir.LoweredSpec.model_validate_json(text)
    assert again == lowered
    assert again.model_dump_json() == text


@pytest.mark.parametrize("path", [p for p in SPECS if "examples" in p.parts],
                         ids=[i for i in IDS if i.startswith("examples/")])
def test_a_spec_read_back_from_json_lowers_the_same(path: Path) -> None:
    """Lowering needs only the checked IR: the values the checks evaluated travel in it (`NetworkFacts`)."""
    spec = snnspec.load(path)
    assert all(net.facts is not None for net in spec.networks.values())
    diags = Diagnostics()
    assert lower(ir.Spec.model_validate_json(spec.model_dump_json()), diags) == lower(spec, diags)
    assert not diags.items


def test_loading_is_deterministic() -> None:
    """The same file gives the same IR, byte for byte, every time."""
    for path in SPECS:
        assert snnspec.load(path).model_dump_json() == snnspec.load(path).model_dump_json()
