"""Shards rewritten with pre-extracted frames (frames.npy) load the same clips as the mp4 shards, without decoding."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import ROOT
from v2a.data.datamodule import ShardDataModule
from v2a.data.frames_npy import add_frames_to_root, tar_samples
from v2a.data.shard_writer import read_index, record_shard, write_shard
from v2a.data.tokenizer_training import train_tokenizer
from v2a.shapes import ClipSpec
from v2a.utils.hashing import sha256_file


def batches(root: Path) -> list[dict]:
    module = ShardDataModule(root=str(root), spec=ClipSpec(), eval_batch_size=8, num_workers=0)
    return list(module.test_dataloader())


def test_frames_npy_shards_load_the_same_clips(tiny_shards, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(tiny_shards / "test", src / "test")
    bad = {"__key__": "zz_bad", "mp4": b"not a video", "flac": b"", "json": b"{}"}
    bad_shard = src / "test" / "test-000009.tar"  # undecodable: copied as it is, skipped by the loader
    record_shard(src / "test", read_index(src / "test"), bad_shard, write_shard(bad_shard, [bad]))
    train_tokenizer(["a caption", "another caption"], src / "tokenizer.model", vocab_size=20)
    indexes = add_frames_to_root(src, tmp_path / "out", workers=1)
    out = tmp_path / "out"
    assert (out / "tokenizer.model").read_bytes() == (src / "tokenizer.model").read_bytes() and not list(out.rglob("*.tmp"))
    samples = [s for shard in sorted((out / "test").glob("*.tar")) for s in tar_samples(shard)]
    assert all("frames.npy" in s and "mp4" not in s for s in samples if s["__key__"] != "zz_bad")
    for shard in indexes["test"]["shards"]:
        assert sha256_file(out / "test" / shard["name"]) == shard["sha256"]
    assert read_index(out / "test")["samples"] == 17
    with_mp4, with_frames = batches(src), batches(out)
    assert [b["key"] for b in with_mp4] == [b["key"] for b in with_frames] and sum(len(b["key"]) for b in with_mp4) == 16
    for a, b in zip(with_mp4, with_frames, strict=True):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["audio"], b["audio"])
        assert a["meta"] == b["meta"]
    # a rerun keeps the finished shards
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "test").glob("*.tar")}
    add_frames_to_root(src, out, workers=1)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "test").glob("*.tar")}


def test_add_frames_in_place_cli(tiny_shards, tmp_path):
    shutil.copytree(tiny_shards / "val", tmp_path / "val")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "data_prep/add_frames.py", f"root={tmp_path}", "keep_mp4=true",
                           "workers=1"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    samples = [s for shard in (tmp_path / "val").glob("*.tar") for s in tar_samples(shard)]
    assert len(samples) == 16 and all("frames.npy" in s and "mp4" in s for s in samples)
    for shard in read_index(tmp_path / "val")["shards"]:
        assert sha256_file(tmp_path / "val" / shard["name"]) == shard["sha256"]
    proc = subprocess.run([sys.executable, "data_prep/add_frames.py", f"root={tmp_path / 'nope'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "error: no shards" in proc.stderr
