"""The bad-input corpus: every case ends in a clear error or a logged skip, never a crash or a half-written file."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import ROOT
from v2a.checkpoints.loading import CheckpointError
from v2a.data.datamodule import ShardDataModule
from v2a.data.decode import decode_sample
from v2a.data.synthetic import render_impact_clip
from v2a.generation.job import generate
from v2a.media import VideoInputError, encode_flac, encode_mp4
from v2a.pipeline import V2APipeline


@pytest.fixture(scope="module")
def ckpt(one_step_checkpoint):
    return one_step_checkpoint


@pytest.fixture(scope="module")
def good_video(tmp_path_factory) -> Path:
    clip = render_impact_clip(np.random.default_rng(0), __import__("v2a.shapes").shapes.ClipSpec())
    path = tmp_path_factory.mktemp("videos") / "good.mp4"
    path.write_bytes(encode_mp4(clip.frames, 25))
    return path


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _bad_videos(root: Path, good: Path) -> dict[str, Path]:
    wav = io.BytesIO()
    sf.write(wav, np.zeros(16000, np.float32), 16000, format="WAV")
    one_frame = encode_mp4(np.zeros((1, 32, 32, 3), np.uint8), 25)
    return {
        "missing": root / "missing.mp4",
        "empty": _write(root / "empty.mp4", b""),
        "garbage": _write(root / "garbage.mp4", bytes(range(256)) * 40),
        "truncated": _write(root / "truncated.mp4", good.read_bytes()[: len(good.read_bytes()) // 3]),
        "audio_only": _write(root / "audio_only.mp4", wav.getvalue()),
        "text": _write(root / "notes.mp4", b"just some text\n" * 50),
        "directory_named_like_a_video": (root / "folder.mp4"),
        "one_frame": _write(root / "one_frame.mp4", one_frame),
        "spaces": _write(root / "with spaces.mp4", good.read_bytes()),
        "quotes_semicolon": _write(root / "it's; \"quoted\".mp4", good.read_bytes()),
        "leading_dash": _write(root / "-rf.mp4", good.read_bytes()),
        "unicode": _write(root / "vidéo_音.mp4", good.read_bytes()),
    }


GOOD_NAMES = {"spaces", "quotes_semicolon", "leading_dash", "unicode", "one_frame"}


def test_generate_on_the_video_corpus(ckpt, good_video, tmp_path):
    videos = _bad_videos(tmp_path / "in", good_video)
    videos["directory_named_like_a_video"].mkdir()
    for name, path in videos.items():
        out = tmp_path / "out" / f"{name}.mp4"
        if name in GOOD_NAMES:  # odd names and 1-frame videos are valid input
            result = generate(video=str(path), ckpt=ckpt, out=str(out), steps=1)
            assert out.exists() and result[0]["duration_s"] > 0, name
            continue
        with pytest.raises(VideoInputError):
            generate(video=str(path), ckpt=ckpt, out=str(out), steps=1)
        assert not out.exists() and not list(out.parent.glob(f".{name}*")), f"{name} left files behind"


def test_generate_folder_skips_bad_files_and_keeps_going(ckpt, good_video, tmp_path, caplog):
    folder = tmp_path / "batch"
    _write(folder / "a_good.mp4", good_video.read_bytes())
    _write(folder / "b_garbage.mp4", b"\x00" * 1000)
    _write(folder / "c_empty.mkv", b"")
    results = generate(video=str(folder), ckpt=ckpt, out=str(tmp_path / "batch_out"), steps=1)
    assert [Path(r["input"]).name for r in results] == ["a_good.mp4"]
    assert "b_garbage.mp4" in caplog.text and "c_empty.mkv" in caplog.text
    _write(tmp_path / "no_videos" / "readme.txt", b"nothing to see")
    with pytest.raises(VideoInputError, match="no video files"):
        generate(video=str(tmp_path / "no_videos"), ckpt=ckpt, out=str(tmp_path / "x"), steps=1)


@pytest.mark.parametrize("options,match", [
    ({"num_candidates": 0}, "num_candidates"),
    ({"duration": -3.0}, "duration must be positive"),
    ({"original_audio": "shuffle"}, "original_audio must be one of"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"prompt": "a dog barking"}, "no conditioning for prompt"),
    ({"negative_prompt": "music"}, "no conditioning for negative_prompt"),
    ({"transcript": "hello there"}, "no conditioning for transcript"),
])
def test_generate_rejects_bad_options(ckpt, good_video, tmp_path, options, match):
    out = tmp_path / "o.mp4"
    with pytest.raises(ValueError, match=match):
        generate(video=str(good_video), ckpt=ckpt, out=str(out), **options)
    assert not out.exists()


def test_bad_checkpoints_are_refused(tmp_path, ckpt):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    cases = {
        "missing": tmp_path / "nope.ckpt",
        "garbage": _write(tmp_path / "garbage.ckpt", b"not a checkpoint" * 10),
        "empty": _write(tmp_path / "empty.ckpt", b""),
        "pickled_code": _write(tmp_path / "evil.ckpt", pickle.dumps({"state_dict": Evil(), "v2a_config": {"x": 1}})),
        "plain_tensor_dict": tmp_path / "plain.ckpt",
        "export_folder_without_files": tmp_path / "empty_export",
    }
    torch.save({"weights": torch.zeros(2)}, cases["plain_tensor_dict"])
    cases["export_folder_without_files"].mkdir()
    for name, path in cases.items():
        with pytest.raises(CheckpointError):
            V2APipeline.from_pretrained(path)
        assert not (tmp_path / "pwned").exists(), f"{name} executed code"
    truncated = _write(tmp_path / "truncated.ckpt", Path(ckpt).read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        V2APipeline.from_pretrained(truncated)


def test_bad_samples_in_shards_are_skipped(tmp_path, tiny_spec, caplog):
    rng = np.random.default_rng(5)
    clip = render_impact_clip(rng, tiny_spec)
    good = {"__key__": "good", "mp4": encode_mp4(clip.frames, 25), "flac": encode_flac(clip.audio, 16000),
            "json": json.dumps(clip.meta).encode()}
    nan_audio = io.BytesIO()
    sf.write(nan_audio, np.full(16000, np.nan, np.float32), 16000, format="WAV", subtype="FLOAT")
    corpus = {
        "nan_audio": {**{k: v for k, v in good.items() if k != "flac"}, "wav": nan_audio.getvalue()},
        "empty_audio": dict(good, flac=b""),
        "garbage_audio": dict(good, flac=b"fLaC" + b"\x00" * 100),
        "garbage_video": dict(good, mp4=b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 200),
        "empty_video": dict(good, mp4=b""),
        "no_video": {k: v for k, v in good.items() if k != "mp4"},
        "bad_json": dict(good, json=b"{not json"),
        "non_utf8_json": dict(good, json=b'{"caption": "\xff\xfe"}'),
        "zero_frames": dict(good, mp4=encode_mp4(np.zeros((1, 32, 32, 3), np.uint8), 25)[:40]),
    }
    split = tmp_path / "test"
    split.mkdir()
    with tarfile.open(split / "test-000000.tar", "w") as tar:
        for key, sample in [("good", good), *corpus.items(), ("../escape", good)]:
            for ext, data in sample.items():
                if ext == "__key__" or data is None:
                    continue
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    module = ShardDataModule(root=str(tmp_path), spec=tiny_spec, eval_batch_size=4, num_workers=0)
    keys = [k for b in module.test_dataloader() for k in b["key"]]
    assert "good" in keys
    for name in corpus:
        assert name not in keys, name
        assert name in caplog.text, f"{name} skipped without a logged reason"
    assert not (tmp_path.parent / "escape.mp4").exists()  # member names are keys, never extraction paths
    with pytest.raises(ValueError):
        decode_sample(dict(corpus["nan_audio"], __key__="x", json=b"{}"), tiny_spec)


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["train.py", "experiment=v2a_tiyn"], "Could not find 'experiment/v2a_tiyn'"),
    (["train.py", "trainer.max_stepz=3"], "Could not override 'trainer.max_stepz'"),
    (["train.py", "trainer.max_steps=abc"], "max_steps"),
    (["train.py", "data.root=/nonexistent/shards", "trainer.max_steps=1"], "does not exist"),
    (["evaluate.py", "ckpt=/nonexistent.ckpt", "out=/tmp/v2a_eval_bad"], "does not exist"),
    (["evaluate.py"], "missing required argument(s): ckpt=..., out=..."),
    (["generate.py", "ckpt=x.ckpt"], "missing required argument(s): video=..., out=..."),
    (["generate.py", "video=/nonexistent.mp4", "ckpt=/nonexistent.ckpt", "out=/tmp/x.mp4"], "does not exist"),
])
def test_command_line_user_errors_have_no_traceback(args, message, tmp_path):
    proc = subprocess.run([sys.executable, *args, f"hydra.run.dir={tmp_path}"] if args[0] == "train.py" else
                          [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
