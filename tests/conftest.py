from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def spec_file(tmp_path):
    """Write a spec to a temporary file and return its path."""

    def write(text: str, name: str = "model.snn") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
