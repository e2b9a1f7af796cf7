"""The broken-spec corpus (LANGUAGE.md §8): every file gives the diagnostics its header names.

Each `tests/corpus/broken/*.snn` begins with one or more header lines

    # expect: [FILE:]LINE:COLUMN WORDS
    # hint: WORDS                      (optional, for the `expect` line above it)

and `snnspec.check` must report, for each, an error at exactly that line and column whose
message contains WORDS (and whose hint contains the hint's words). FILE, when given, is relative
to the corpus file (an error reported in an imported file). A case reports no other errors, so a
mistake is never buried under errors that follow from it. Files in subfolders (`imports/`) are
helpers that the cases import, not cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import snnspec
from snnspec.diagnostics import Diagnostic

CORPUS = Path(__file__).parent / "corpus" / "broken"
CASES = sorted(CORPUS.glob("*.snn"))
_EXPECT = re.compile(r"^# expect: (?:(?P<file>[^\s:]+):)?(?P<line>\d+):(?P<column>\d+) (?P<words>.+)$")
_HINT = re.compile(r"^# hint: (?P<words>.+)$")


@dataclass
class Expected:
    file: Path
    line: int
    column: int
    words: str
    hint: str | None = None

    def __str__(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.file.name}:{self.line}:{self.column} {self.words}{hint}"


def expectations(path: Path) -> list[Expected]:
    """The `# expect:` / `# hint:` header of a corpus file."""
    found: list[Expected] = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if (m := _EXPECT.match(text)) is not None:
            file = (path.parent / m["file"]).resolve() if m["file"] else path.resolve()
            found.append(Expected(file, int(m["line"]), int(m["column"]), m["words"]))
        elif (h := _HINT.match(text)) is not None:
            assert found and found[-1].hint is None, f"{path.name}: `# hint:` must follow an `# expect:` line"
            found[-1].hint = h["words"]
        elif text.startswith("#"):
            continue
        else:
            break
    return found


def _where(d: Diagnostic, base: Path) -> str:
    if d.span is None:
        return f"{d.severity} (no span): {d.message}"
    return f"{d.severity} {d.span.file}:{d.span.line}:{d.span.column}: {d.message} [hint: {d.hint}]"


def _matches(d: Diagnostic, want: Expected, base: Path) -> bool:
    if d.severity != "error" or d.span is None or want.words not in d.message:
        return False
    if (d.span.line, d.span.column) != (want.line, want.column):
        return False
    if (base.parent / d.span.file).resolve() != want.file and Path(d.span.file).resolve() != want.file:
        return False
    return want.hint is None or (d.hint is not None and want.hint in d.hint)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    for path in CASES:
        assert expectations(path), f"{path.name} has no `# expect:` header"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_spec(path: Path) -> None:
    wanted = expectations(path)
    diagnostics = snnspec.check(path)
    shown = "\n".join(_where(d, path) for d in diagnostics) or "(no diagnostics)"
    for want in wanted:
        assert any(_matches(d, want, path) for d in diagnostics), f"expected error {want}; got:\n{shown}"
    errors = [d for d in diagnostics if d.severity == "error"]
    assert len(errors) == len(wanted), f"expected only {len(wanted)} error(s); got:\n{shown}"


def test_spans_are_in_the_file() -> None:
    """Every error of the corpus points inside the file it names, at a real line and column."""
    for path in CASES:
        for d in snnspec.check(path):
            if d.span is None:
                continue
            file = Path(d.span.file) if Path(d.span.file).exists() else path.parent / d.span.file
            lines = file.read_text(encoding="utf-8").splitlines() if file.exists() else []
            assert 1 <= d.span.line <= len(lines), _where(d, path)
            assert 1 <= d.span.column <= len(lines[d.span.line - 1]) + 1, _where(d, path)


def test_several_independent_errors_are_all_reported() -> None:
    errors = [d for d in snnspec.check(CORPUS / "multiple_errors.snn") if d.severity == "error"]
    assert len(errors) == 3
    assert len({d.span.line for d in errors if d.span}) == 3


def test_load_raises_spec_error_with_every_diagnostic() -> None:
    with pytest.raises(snnspec.SpecError) as info:
        snnspec.load(CORPUS / "multiple_errors.snn")
    assert len([d for d in info.value.diagnostics if d.severity == "error"]) == 3
    assert "unknown name 'tau_m'" in str(info.value)


def test_check_reports_an_unreadable_file(tmp_path: Path) -> None:
    diagnostics = snnspec.check(tmp_path / "missing.snn")
    assert [d.severity for d in diagnostics] == ["error"]
    assert "cannot read" in diagnostics[0].message


def test_text_and_name() -> None:
    """`check(text=..., name=...)` reports against the given name."""
    diagnostics = snnspec.check(text="neuron A {\n    state v = 0\n    v <- w\n}\n", name="inline.snn")
    assert [(d.span.file, d.span.line, d.span.column) for d in diagnostics if d.span] == [("inline.snn", 3, 10)]


@pytest.mark.parametrize("name", ["syn_next", "pre_trace", "post_x", "gradient", "smoothed", "synapse"])
def test_names_that_start_like_keywords(name: str) -> None:
    """`syn`, `pre`, `post`, `grad` and `smooth` are keywords only as whole words (regression)."""
    text = f"neuron A {{\n    state v = 0\n    state {name} = 0\n    {name} <- {name} + I\n    v <- v + {name}\n}}\n"
    assert snnspec.check(text=text, name="kw.snn") == []


@pytest.mark.parametrize("name", ["clip", "loss", "batch", "pre", "post", "syn", "grad", "smooth", "modulator"])
def test_another_blocks_keyword_as_a_name(name: str) -> None:
    """A keyword is reserved only where it can stand: a neuron may have a state named `clip` (regression)."""
    text = f"neuron A {{\n    state v = 0\n    state {name} = 0\n    {name} <- {name} + I\n    v <- v + {name}\n}}\n"
    assert snnspec.check(text=text, name="kw.snn") == []


def test_keywords_as_layer_names() -> None:
    text = ('from "std/neurons.snn" import Leaky\nnetwork N {\n    steps = 2\n    input x[3] encode rate\n'
            "    layer pre = Leaky[3]\n    layer post = Leaky[3]\n    x -> dense -> pre\n    pre -> dense -> post\n"
            "    post -> dense -> pre\n    output post.spike count\n}\n")
    assert snnspec.check(text=text, name="kw.snn") == []


def test_a_keyword_before_an_update_arrow_is_a_name() -> None:
    """Only a name stands before `<-`: `state <- 1` updates a state named `state` (unknown here)."""
    text = "neuron A {\n    state v = 0\n    state <- 1\n}\n"
    errors = [d for d in snnspec.check(text=text, name="kw.snn") if d.severity == "error"]
    assert [(d.message, d.span.line, d.span.column) for d in errors if d.span] == [("unknown state 'state'", 3, 5)]


def test_a_keyword_where_a_name_cannot_stand_is_still_an_error() -> None:
    text = "neuron A {\n    state v = 0\n    state = 1\n}\n"
    errors = [d for d in snnspec.check(text=text, name="kw.snn") if d.severity == "error"]
    assert [(d.message, d.span.line, d.span.column) for d in errors if d.span] == [("unexpected '='", 3, 11)]


def test_a_keyword_prefix_in_a_rule_block() -> None:
    text = ("rule R {\n    pre state x = 0\n    post state y = 0\n    syn state presyn = 0\n"
            "    presyn <- presyn + x\n    on pre { x += 1 }\n    on post { y += 1 }\n}\n")
    assert [d for d in snnspec.check(text=text, name="kw.snn") if d.severity == "error"] == []


def test_no_cascade_after_an_unknown_unit() -> None:
    """A param whose default has an error is not reported again where it is used."""
    text = "neuron A {\n    param tau = 10 msec\n    state v = 0 mV\n    dv/dt = -v / tau\n}\n"
    messages = [d.message for d in snnspec.check(text=text, name="u.snn")]
    assert messages == ["unknown unit 'msec'"]


def test_no_cascade_after_a_failed_op() -> None:
    """A layer fed only by a path with an error is not reported as having an unknown shape too."""
    text = ('from "std/neurons.snn" import Leaky\nnetwork N {\n    steps = 2\n    input x[1, 4, 4] encode direct\n'
            "    layer a = Leaky\n    layer b = Leaky\n    x -> conv2d(2, kernel = 9) -> a\n"
            "    a -> flatten -> dense(3) -> b\n    output b.spike count\n}\n")
    messages = [d.message for d in snnspec.check(text=text, name="n.snn") if d.severity == "error"]
    assert messages == ["conv2d(kernel=9) needs at least 9x9 input, got 4x4"]
