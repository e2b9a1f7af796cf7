import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def pytest_configure(config: pytest.Config) -> None:
    """The whole run caches (compiled modules, parser tables, parsed and lowered IR) in a fresh folder,
    never in ~/.cache: set before collection, and inherited by the subprocesses tests start."""
    folder = tempfile.mkdtemp(prefix="snnspec-cache-")
    patch = pytest.MonkeyPatch()
    patch.setenv("SNNSPEC_CACHE_DIR", folder)
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    config.add_cleanup(patch.undo)


@pytest.fixture
def spec_file(tmp_path):
    """Write a spec to a temporary file and return its path."""

    def write(text: str, name: str = "model.snn") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def float64():
    """float64 by default in torch and, where it is installed, JAX (params given as Python floats stay
    exact), for tests that compare paths to 1e-10."""
    import torch

    jax = pytest.importorskip("jax")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)
        torch.set_default_dtype(old)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (trainings to an accuracy, installs) first: run in parallel (`-n auto`), each
    starts on a worker at once instead of leaving one long test alone at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
