"""The house: inference stands on the pipeline and never imports Lightning; the layers import downward."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import webdataset as wds

from tests.conftest import ROOT

# Run in a fresh interpreter: this test process has imported Lightning already.
PROBE = """
import sys
from v2a.cli import main
status = main(["generate", sys.argv[1], "--ckpt", sys.argv[2], "-o", sys.argv[3], "--steps", "1", "--threads", "1"])
lightning = sorted(m for m in sys.modules if m.split(".")[0] in ("pytorch_lightning", "lightning", "lightning_fabric"))
print("LIGHTNING:", ",".join(lightning))
sys.exit(status)
"""


def first_test_clip(shards: Path, out: Path) -> Path:
    for sample in wds.WebDataset(str(sorted((shards / "test").glob("*.tar"))[0]), shardshuffle=False):
        out.write_bytes(sample["mp4"])
        return out
    raise AssertionError("no test clip")


@pytest.mark.parametrize("artifact", ["export", "checkpoint"])
def test_generating_imports_no_lightning(one_step_checkpoint, tiny_shards, tmp_path, artifact):
    ckpt = Path(one_step_checkpoint)
    model = ckpt.parent.parent / "export" if artifact == "export" else ckpt
    video = first_test_clip(tiny_shards, tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(video), str(model), str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and out.with_suffix(".wav").exists()
    assert "LIGHTNING: \n" in proc.stdout, proc.stdout  # nothing of Lightning was imported


def test_a_checkpoint_and_its_export_give_the_same_pipeline(one_step_checkpoint):
    from v2a.pipeline import V2APipeline

    ckpt = Path(one_step_checkpoint)
    from_ckpt = V2APipeline.from_pretrained(ckpt)
    from_export = V2APipeline.from_pretrained(ckpt.parent.parent / "export")
    assert from_ckpt.trained_steps == 1 and from_export.trained_steps == -1
    frames = torch.randint(0, 255, (1, 50, 3, 32, 32), dtype=torch.uint8)
    a = from_ckpt.generate_mel(frames, steps=2, generator=torch.Generator().manual_seed(0))
    b = from_export.generate_mel(frames, steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_a_non_v2a_checkpoint_is_refused_with_its_kind(tmp_path):
    from v2a.pipeline import V2APipeline

    path = tmp_path / "sync.ckpt"
    torch.save({"state_dict": {}, "v2a_config": {"model": {"_target_": "v2a.training.sync_module.SyncModule"}}}, path)
    with pytest.raises(ValueError, match="SyncModule checkpoint, not a video-to-audio model"):
        V2APipeline.from_pretrained(path)


def test_the_layer_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_a_hub_name_is_a_clear_local_error_never_a_download(tmp_path, monkeypatch):
    """Models come from local paths only: a hub-style name is a missing file, said in one line."""
    import socket

    from v2a.checkpoints.loading import CheckpointError
    from v2a.pipeline import V2APipeline
    from v2a.pipeline.aligner import LipAligner

    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        V2APipeline.from_pretrained("facebook/v2a-base")
    with pytest.raises(CheckpointError, match="not a lip-aligner export"):
        LipAligner.from_pretrained("org/aligner")
    from v2a.models.vocoder.export import load_vocoder_export
    from v2a.models.vocoder.neural import vocoder_path

    with pytest.raises(FileNotFoundError, match="not a vocoder export"):
        load_vocoder_export(vocoder_path("org/vocoder"))
    assert load_vocoder_export(vocoder_path("builtin:vocoder_tiny"))[1]["format"] == "v2a-vocoder"  # in the package
