"""What generation writes: all three files or none, never over an input, cut to duration=, every folder file
reported (tests/test_corpus.py runs the whole damaged-file corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import v2a.generation.job as job
from tests.media_checks import check_muxed, digest, leftovers
from tests.media_corpus import encode
from v2a.generation.job import generate


@pytest.fixture(scope="module")
def ckpt(one_step_checkpoint):
    return one_step_checkpoint


@pytest.fixture(autouse=True)
def _threads():
    yield
    torch.set_num_threads(2)  # as tests/conftest.py set it


def test_out_equal_to_the_input_is_refused_before_anything_runs(ckpt, tmp_path):
    video = encode(tmp_path / "film.mp4", "libx264", frames=10)
    before = digest(video)
    for out in (video, tmp_path / "sub" / ".." / "film.mp4"):
        with pytest.raises(ValueError, match="would overwrite the input"):
            generate(video=str(video), ckpt=ckpt, out=str(out), steps=1)
    assert digest(video) == before


def test_a_folder_never_overwrites_its_own_files_and_keeps_same_stems_apart(ckpt, tmp_path):
    folder = tmp_path / "reels"
    folder.mkdir()
    encode(folder / "a.mp4", "libx264", frames=10)
    encode(folder / "a.avi", "mpeg4", frames=10)
    encode(folder / "b.mp4", "libx264", frames=10)
    encode(folder / "b_v2a.mp4", "libx264", frames=12)  # an input that b.mp4's result would replace
    before = digest(folder / "b_v2a.mp4")
    results = generate(video=str(folder), ckpt=ckpt, out=str(folder), steps=1)
    written = sorted(Path(r["video"]).name for r in results)
    assert written == ["a_avi_v2a.mp4", "a_mp4_v2a.mp4", "b_v2a_v2a.mp4"]
    assert [(Path(f["input"]).name, "would overwrite the input" in f["error"]) for f in results.failed] == [
        ("b.mp4", True)]
    assert digest(folder / "b_v2a.mp4") == before and leftovers(folder) == []


@pytest.mark.parametrize("where", ["audio", "mux", "interrupt"])
def test_a_failure_leaves_no_partial_file_and_keeps_earlier_results(ckpt, tmp_path, monkeypatch, where):
    video = encode(tmp_path / "in.mp4", "libx264", frames=20)
    out = tmp_path / "out" / "result.mp4"
    first = generate(video=str(video), ckpt=ckpt, out=str(out), steps=1)[0]
    earlier = {p.name: digest(p) for p in out.parent.iterdir()}
    error = KeyboardInterrupt if where == "interrupt" else RuntimeError

    def broken(*args, **kwargs):
        raise error("simulated failure")

    monkeypatch.setattr(job, "mux" if where != "audio" else "write_stream", broken)
    with pytest.raises(error):
        generate(video=str(video), ckpt=ckpt, out=str(out), steps=1, seed=1)
    assert {p.name: digest(p) for p in out.parent.iterdir()} == earlier  # untouched, nothing added
    assert json.loads(out.with_suffix(".json").read_bytes())["seed"] == first["seed"] == 0


def test_duration_cuts_the_whole_output(ckpt, tmp_path):
    video = encode(tmp_path / "long.mkv", "libx264", frames=75, options={"bf": "3"}, audio="aac")  # 3 s
    result = generate(video=str(video), ckpt=ckpt, out=str(tmp_path / "cut.mp4"), steps=1, duration=1.3,
                      original_audio="keep")[0]
    measured = check_muxed(video, result)
    assert abs(measured["video_s"] - 1.3) <= 0.04 and result["duration_s"] == pytest.approx(1.3)
    assert result["cut_to_s"] == 1.3 and result["muxed_video"].startswith("re-encoded as h264 (cut")
    whole = generate(video=str(video), ckpt=ckpt, out=str(tmp_path / "whole.mp4"), steps=1, duration=10.0)[0]
    assert whole["cut_to_s"] is None and whole["muxed_video"] == "copied" and whole["duration_s"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="video_codec=auto"):  # refused before generating, not after
        generate(video=str(video), ckpt=ckpt, out=str(tmp_path / "copy.mp4"), steps=1, duration=1.3,
                 video_codec="copy")
    assert not (tmp_path / "copy.mp4").exists() and leftovers(tmp_path) == []
