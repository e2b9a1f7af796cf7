import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# Triton kernels run on CPU tensors under its interpreter; `KERNELS = "auto"` never picks them on the
# CPU, so only the tests that ask for "triton" by name run them.
os.environ.setdefault("TRITON_INTERPRET", "1")
# the fused kernel paths this machine can run, each compared with the plain step loop
KERNEL_PATHS = [k for k in ("numba", "triton") if importlib.util.find_spec(k) is not None]


def kernel_paths(layer) -> list[str]:
    """The fused paths of `KERNEL_PATHS` that a generated neuron module has kernels for."""
    import torch

    out = []
    for path in KERNEL_PATHS:
        try:
            layer.kernels = path
            layer.kernels_for(torch.empty(0))
            out.append(path)
        except RuntimeError:  # e.g. no Triton kernel for this neuron
            pass
        finally:
            layer.kernels = None
    return out


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
