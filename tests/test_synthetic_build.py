"""Building shards of the synthetic benchmark: the impacts-only default is unchanged, the full preset mixes kinds."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from v2a.conf import CONFIG_DIR
from v2a.data.synthetic import espeak, render_impact_clip
from v2a.data.synthetic.build import build_split, render_clip
from v2a.data.synthetic.fan import FanSource
from v2a.data.synthetic.scene import Kind, Scene
from v2a.shapes import ClipSpec

CONF = CONFIG_DIR / "data_prep"
LEGACY_KEYS = {"fps", "sample_rate", "duration", "caption", "transcript", "negative_caption", "events", "materials",
               "source", "license"}


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def _samples(shard: Path) -> dict[str, dict]:
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_default_config_still_renders_the_impacts_only_benchmark(tmp_path):
    cfg = _compose("synthetic", [])
    assert cfg.get("scene") is None  # make train's data: impacts only
    spec = instantiate(cfg.spec)
    for clip in (0, 7):
        new = render_clip(cfg.seed, clip, spec, max_objects=cfg.max_objects)
        old = render_impact_clip(np.random.default_rng(np.random.SeedSequence([cfg.seed, clip])), spec,
                                 max_objects=cfg.max_objects)
        assert np.array_equal(new.frames, old.frames) and np.array_equal(new.audio, old.audio) and new.meta == old.meta
        assert new.meta["source"] == "synthetic:impacts" and set(new.meta) == LEGACY_KEYS
    index = build_split(tmp_path, "val", 2, 3, spec, shard_size=2, max_objects=2, workers=1)
    assert "scene" not in index and index["samples"] == 2


def test_full_preset_builds_mixed_shards_and_refuses_a_changed_recipe(tmp_path):
    overrides = ["spec.duration=2.0", "spec.image_size=32"]
    if not espeak.available():
        overrides.append("scene.kinds.talking_head.probability=0.0")
    cfg = _compose("synthetic_full", overrides)
    assert list(cfg.scene.kinds) == ["music", "impacts", "fan", "lamp", "rain", "talking_head"]
    spec, scene = instantiate(cfg.spec), instantiate(cfg.scene, _convert_="all")
    index = build_split(tmp_path, "test", 4, 11, spec, shard_size=4, max_objects=2, workers=1, scene=scene)
    assert index["samples"] == 4 and index["scene"]["kinds"]["fan"]["probability"] == 0.3
    members = _samples(tmp_path / "test" / "test-000000.tar")
    metas = [json.loads(v) for k, v in sorted(members.items()) if k.endswith(".json")]
    assert len(metas) == 4 and all(k.endswith((".json", ".mp4", ".flac")) for k in members)
    for meta in metas:
        assert LEGACY_KEYS <= set(meta) and meta["source"] == "synthetic:scene" and meta["kinds"]
        assert [e["time"] for e in meta["events"]] == sorted(e["time"] for e in meta["events"])
        assert meta["caption"] and meta["negative_caption"]
    rebuilt = build_split(tmp_path, "test", 4, 11, spec, shard_size=4, max_objects=2, workers=1, scene=scene)
    assert rebuilt["shards"] == index["shards"]  # finished: skipped
    other = Scene(kinds={"fan": Kind(1.0, FanSource())})
    with pytest.raises(ValueError, match="another scene"):
        build_split(tmp_path, "test", 4, 11, spec, shard_size=4, max_objects=2, workers=1, scene=other)
    with pytest.raises(ValueError, match="another scene"):
        build_split(tmp_path, "test", 4, 11, spec, shard_size=4, max_objects=2, workers=1)
    with pytest.raises(ValueError, match="another spec"):
        build_split(tmp_path, "test", 4, 11, ClipSpec(image_size=64), shard_size=4, max_objects=2, workers=1, scene=scene)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_parallel_build_equals_serial_even_after_torch_ran_in_the_parent(tmp_path):
    import torch
    import torchaudio.functional as AF

    AF.resample(torch.randn(2, 16000), 16000, 22050)  # starts torch's thread pool here, as a test or notebook would
    cfg = _compose("synthetic_full", ["spec.duration=1.2", "spec.image_size=32"]
                   + ([] if espeak.available() else ["scene.kinds.talking_head.probability=0.0"]))
    spec, scene = instantiate(cfg.spec), instantiate(cfg.scene, _convert_="all")
    for workers in (1, 2):
        build_split(tmp_path / str(workers), "val", 4, 5, spec, shard_size=2, max_objects=2, workers=workers, scene=scene)
    for shard in ("val-000000.tar", "val-000001.tar"):
        serial, parallel = (_samples(tmp_path / w / "val" / shard) for w in ("1", "2"))
        assert serial.keys() == parallel.keys()
        # mp4 bytes may differ by encoder nondeterminism (see media.encode_mp4); audio and json may not
        assert all(serial[k] == parallel[k] for k in serial if not k.endswith(".mp4"))
