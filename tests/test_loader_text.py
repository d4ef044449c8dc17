"""The shard set's sentencepiece tokenizer: trained from captions/transcripts, stored atomically, used by the loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from v2a.data.datamodule import ShardDataModule
from v2a.data.shard_writer import write_shard
from v2a.data.tokenizer_training import train_shard_tokenizer
from v2a.media import encode_flac, encode_mp4
from v2a.text.tokens import PAD_ID, TextTokenizer

TEXTS = [
    {"caption": "a metal ball bouncing on a wooden floor", "transcript": "hello there, how are you today",
     "negative_caption": "a dog barking"},
    {"caption": "a fan humming in a quiet room", "transcript": ""},  # no transcript, no negative caption
    {"caption": "rain falling on a tin roof", "transcript": "the rain will stop soon", "negative_caption": 3},
    {},  # no text at all
]


@pytest.fixture(scope="module")
def text_root(tmp_path_factory) -> Path:
    """A shard root whose clips have captions, transcripts, negatives or nothing (12 clips in 2 shards)."""
    root = tmp_path_factory.mktemp("text_root")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (50, 32, 32, 3), dtype=np.uint8)
    video, audio = encode_mp4(frames, 25), encode_flac(0.1 * rng.standard_normal(32000).astype(np.float32), 16000)
    for split in ("train", "val"):
        (root / split).mkdir()
        for shard in range(2):
            samples = [{"__key__": f"{split}{shard}_{i}", "mp4": video, "flac": audio,
                        "json": json.dumps(TEXTS[i % len(TEXTS)] | {"fps": 25}).encode()} for i in range(6)]
            write_shard(root / split / f"{split}-{shard:06d}.tar", samples)
    return root


def test_tokenizer_is_trained_from_shard_text_and_stored_beside_the_shards(text_root):
    info = train_shard_tokenizer(text_root, vocab_size=200)
    assert (text_root / "tokenizer.model").is_file() and not list(text_root.glob("*.tmp"))
    assert json.loads((text_root / "tokenizer.json").read_text())["vocab_size"] == info["vocab_size"] <= 200
    assert info["counts"] == {"samples": 12, "caption": 10, "transcript": 6, "negative_caption": 4}
    tokenizer = TextTokenizer.from_file(text_root / "tokenizer.model", max_tokens={"caption": 64, "transcript": 4})
    row = tokenizer.fields({"caption": "a fan humming in a quiet room", "transcript": "hello there, how are you today"})
    assert tokenizer.decode(row["caption_tokens"]) == "a fan humming in a quiet room"
    assert row["caption_mask"].sum() == np.count_nonzero(row["caption_tokens"] != PAD_ID) > 0
    assert row["transcript_mask"].all() and row["transcript_tokens"].shape == (4,)  # truncated to its length
    empty = tokenizer.fields({"caption": None})
    assert not empty["caption_mask"].any() and (empty["caption_tokens"] == PAD_ID).all()


def test_loader_batches_carry_tokens_and_masks(text_root):
    if not (text_root / "tokenizer.model").exists():
        train_shard_tokenizer(text_root, vocab_size=200)
    module = ShardDataModule(root=str(text_root), spec=__import__("v2a.shapes").shapes.ClipSpec(), batch_size=4,
                             eval_batch_size=4, num_workers=0)
    batch = next(iter(module.val_dataloader()))  # in order: TEXTS[0..3]
    assert batch["caption_tokens"].shape == (4, 64) and batch["transcript_tokens"].shape == (4, 128)
    assert batch["caption_mask"].any(1).tolist() == [True, True, True, False]
    assert batch["transcript_mask"].any(1).tolist() == [True, False, True, False]
    assert batch["negative_caption_mask"].any(1).tolist() == [True, False, False, False]  # 3 is not text
    assert module.tokenizer.decode(batch["transcript_tokens"][2]) == "the rain will stop soon"
    assert batch["frames"].shape == (4, 50, 3, 32, 32)  # what the model consumes is unchanged
    train = next(iter(module.train_dataloader()))
    assert train["caption_tokens"].shape == (4, 64)


def test_no_text_is_a_clear_error_and_the_loader_works_without_a_tokenizer(tmp_path, tiny_shards):
    (tmp_path / "train").mkdir()
    write_shard(tmp_path / "train" / "train-000000.tar", [{"__key__": "a", "json": b"{}"}])
    with pytest.raises(ValueError, match="no text"):
        train_shard_tokenizer(tmp_path)
    module = ShardDataModule(root=str(tiny_shards), spec=__import__("v2a.shapes").shapes.ClipSpec(), num_workers=0)
    assert module.tokenizer is None and "caption_tokens" not in next(iter(module.test_dataloader()))


def test_train_tokenizer_cli(text_root, tmp_path):
    out = tmp_path / "tok" / "tokenizer.model"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "data_prep/train_tokenizer.py", f"root={text_root}", f"out={out}",
                           "vocab_size=100"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and "tokenizer:" in proc.stdout
    proc = subprocess.run([sys.executable, "data_prep/train_tokenizer.py", f"root={tmp_path / 'nope'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "error: no shards" in proc.stderr
