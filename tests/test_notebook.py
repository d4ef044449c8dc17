"""The quickstart notebook runs top to bottom (with few training steps)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("V2A_QUICKSTART_STEPS", "4")
    monkeypatch.setenv("V2A_QUICKSTART_DIR", str(tmp_path))
    monkeypatch.setenv("V2A_REPO", str(ROOT))
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "checkpoint:" in outputs and "sync/onset_f1" in outputs and "DetectionResult" in outputs
    displays = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "display_data"]
    assert any("image/png" in o.get("data", {}) for o in displays)
    assert any("<audio" in o.get("data", {}).get("text/html", "") for o in displays)  # the soundtrack to listen to
    assert "detected onsets:" in outputs
    assert Path(tmp_path / "with_sound.mp4").exists()
    assert "same audio as generate: True" in outputs and "a batch of two:" in outputs  # the Python API
    assert Path(tmp_path / "with_sound_api.mp4").exists()
