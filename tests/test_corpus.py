"""Every file in, nothing wrong out: the damaged and unusual corpus (tests/media_corpus.py) through generation
(file and folder mode, the ``v2a`` command, ``generate.py``), ingestion and the watermark detector.

Each case ends in a playable result whose audio and video last equally long (within a frame), whose copied
video lost no packet, with the input untouched and no partial file left; or in one clear line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from tests.media_checks import check_muxed, digest, leftovers
from tests.media_corpus import CASES, EXPECT, LATIN1_NAME, ODD_NAMES, build_corpus
from v2a.cli import main as v2a_main
from v2a.generation.job import generate
from v2a.media import MuxError, VideoInputError

ARCHIVE = ["cinepak.avi", "msmpeg4v2.avi", "msmpeg4v3.avi", "wmv2.wmv", "flv1.flv", "h263.3gp", "pal.dv",
           "huffyuv.avi", "prores.mov", "animation.gif", "av1.mkv", "theora.ogv", "mpeg1.mpg", "mpeg2.vob"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def ckpt(one_step_checkpoint):
    return one_step_checkpoint


def _generate_one(path: Path, out: Path, ckpt: str, **options) -> dict | Exception:
    before = digest(path)
    try:
        result = generate(video=str(path), ckpt=ckpt, out=str(out), steps=1, **options)[0]
    except (VideoInputError, MuxError, ValueError) as error:
        assert "\n" not in str(error).replace(str(path), ""), error  # one line (the name may hold a newline)
        assert not out.exists() and not out.with_suffix(".wav").exists() and not out.with_suffix(".json").exists()
        result = error
    finally:
        torch.set_num_threads(2)
    assert digest(path) == before, "the input changed"
    assert leftovers(out.parent) == [], leftovers(out.parent)
    return result


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_each_file_gives_a_playable_result_or_one_clear_line(corpus, ckpt, tmp_path, name):
    if name not in corpus:
        pytest.skip(f"{name}: no encoder on this machine")
    result = _generate_one(corpus[name], tmp_path / "out" / "result.mp4", ckpt)
    if EXPECT[name] == "ok":
        assert isinstance(result, dict), result
    elif EXPECT[name] == "error":
        assert isinstance(result, Exception), f"{name} was accepted"
    if isinstance(result, dict):
        check_muxed(corpus[name], result)
        assert result["input_duration_s"] > 0 and Path(result["audio"]).is_file()


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_archive_codecs_in_other_containers(corpus, ckpt, tmp_path, suffix):
    """mkv and mov take more codecs as they are (Theora, ProRes, DV, Cinepak ...); the rest is re-encoded."""
    copied = set()
    for name in ARCHIVE + ["bframes.mkv", "bframes.mp4", "pcm_192k_24bit.mov"]:
        if name not in corpus:
            continue
        result = _generate_one(corpus[name], tmp_path / name.replace(".", "_") / f"out{suffix}", ckpt,
                               original_audio="keep")
        assert isinstance(result, dict), (name, result)
        check_muxed(corpus[name], result)
        if result["muxed_video"] == "copied":
            copied.add(name)
        if name == "pcm_192k_24bit.mov":  # the studio track kept at its rate and depth
            with av.open(result["video"]) as container:
                kept = container.streams.audio[1].codec_context
                assert kept.sample_rate == 192000 and kept.format.bytes == 4, (kept.name, kept.format)
    expected = {".mkv": {"prores.mov", "av1.mkv", "mpeg1.mpg", "bframes.mkv"},
                ".mov": {"prores.mov", "pal.dv", "cinepak.avi", "h263.3gp", "bframes.mp4"}}[suffix]
    assert expected <= copied, copied


def test_folder_mode_reports_skips_and_summarises(corpus, ckpt, tmp_path, capsys):
    folder = next(iter(corpus.values())).parent
    out = tmp_path / "batch"
    status = v2a_main(["generate", str(folder), "--ckpt", ckpt, "-o", str(out), "--steps", "1", "--no-watermark"])
    torch.set_num_threads(2)
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err  # some inputs are not videos: exit 1, not a crash
    failed = {line.split(": ", 2)[1] for line in captured.err.splitlines() if line.startswith("failed: ")}
    written = [json.loads(p.read_bytes()) for p in out.glob("*.json")]
    assert f"summary: {len(written)} written, {len(failed)} failed" in captured.out
    for name, path in corpus.items():
        done = [w for w in written if w["input"] == str(path)]
        if EXPECT[name] == "ok":
            assert len(done) == 1, name
            check_muxed(path, done[0])
        elif EXPECT[name] == "error":
            assert not done and str(path) in failed, name
    assert leftovers(out) == []


@pytest.mark.parametrize("name", ODD_NAMES)
def test_any_file_name_works_from_the_v2a_command(corpus, ckpt, tmp_path, capsys, name):
    out = tmp_path / f"out {name}"  # the output takes the odd name too
    status = v2a_main(["generate", "--ckpt", ckpt, "-o", str(out.with_suffix(".mkv")), "--steps", "1",
                       "--no-watermark", "--", str(corpus[name])])
    torch.set_num_threads(2)
    assert status == 0, capsys.readouterr().err
    sidecar = json.loads(out.with_suffix(".json").read_bytes())
    assert sidecar["input"] == str(corpus[name]) and Path(sidecar["video"]) == out.with_suffix(".mkv")


@pytest.mark.slow
def test_any_file_name_works_from_generate_py(corpus, ckpt, tmp_path):
    """Quoted for the shell and nothing else: generate.py takes the path keys literally."""
    for name in ("Reel (1967) [tape 2].mp4", LATIN1_NAME):
        out = tmp_path / f"{name[:-4]}, take=2 (it's).mp4"
        args = [sys.executable, "generate.py", f"video={corpus[name]}", f"ckpt={ckpt}", f"out={out}", "steps=1",
                "watermark=off"]
        proc = subprocess.run([os.fsencode(a) for a in args], cwd=ROOT, capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
        assert b"Traceback" not in proc.stderr and out.is_file() and out.with_suffix(".wav").is_file()
    bad = subprocess.run([sys.executable, "generate.py", f"video={corpus['cinepak.avi']}", f"ckpt={ckpt}",
                          f"out={tmp_path / 'x.mp4'}", "duration=abc"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "duration" in bad.stderr, bad.stderr


def test_ingestion_uses_or_skips_every_video_file(corpus, tmp_path):
    from v2a.data.ingest import ingest
    from v2a.data.ingest.sources import is_video_name
    from v2a.shapes import ClipSpec

    folder = next(iter(corpus.values())).parent
    out = tmp_path / "shards" / "train"
    index = ingest(folder, out, ClipSpec(duration=1.0, fps=25, sample_rate=16000, image_size=32), shard_size=50,
                   workers=0)
    plan = json.loads((out / "plan.json").read_bytes())
    used = {source["rel"] for source in plan["sources"]}
    skipped = {entry["path"] for entry in index["skipped"]}
    for name in corpus:
        if is_video_name(name):
            assert name in used or name in skipped, name  # .dv, .vob, .gif ... are neither ignored nor lost
    assert LATIN1_NAME in used and "mpeg2.vob" in used and "pal.dv" in used | skipped
    assert "theora.ogv" in used or "theora.ogv" not in corpus
    thumbnail = next(s for s in plan["sources"] if s["rel"] == "thumbnail_first.mp4")
    assert (thumbnail["width"], thumbnail["height"]) == (64, 48)  # the film, not the 1-frame thumbnail

    loop_a, loop_b = tmp_path / "loop_a.mp4", tmp_path / "loop_b.mp4"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path\nloop_a.mp4\n{corpus['bframes.mkv']}\n")
    try:
        index = ingest(manifest, tmp_path / "m" / "train", ClipSpec(duration=1.0, image_size=32), workers=0)
    finally:  # pytest's own clean-up of the temporary folder trips over a symlink loop
        loop_a.unlink()
        loop_b.unlink()
    assert index["samples"] == 2 and index["counts"]["skipped"] == {"missing": 1}


@pytest.mark.slow
def test_make_shards_command_on_the_corpus(corpus, tmp_path):
    folder = next(iter(corpus.values())).parent
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "make_shards.py"), f"input={folder}",
                           f"out={tmp_path / 'out (1)' / 'train'}", "workers=1", "spec.duration=1.0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, errors="replace")
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    plan = json.loads((tmp_path / "out (1)" / "train" / "plan.json").read_bytes())
    assert LATIN1_NAME in {source["rel"] for source in plan["sources"]}  # written, and read back to the same name


def test_damaged_shards_are_skipped_with_a_logged_reason(tiny_shards, tiny_spec, tmp_path, caplog):
    from v2a.evaluation.references import iterate_batches

    split = tmp_path / "test"
    split.mkdir()
    shards = sorted((tiny_shards / "test").glob("*.tar"))
    intact = shards[0].read_bytes()
    (split / "a-000000.tar").write_bytes(intact)
    (split / "b-000001.tar").write_bytes(intact[: len(intact) // 3])  # truncated mid-member
    (split / "c-000002.tar").write_bytes(np.random.default_rng(0).bytes(5000))  # garbage
    keys = [k for batch in iterate_batches(tmp_path, "test", tiny_spec, batch_size=4) for k in batch["key"]]
    assert len(keys) >= 16 and "b-000001.tar" in caplog.text and "c-000002.tar" in caplog.text


def test_detect_on_the_corpus_never_hangs_or_crashes(corpus):
    files = [str(path) for path in corpus.values()]
    proc = subprocess.run([sys.executable, "-m", "v2a.cli", "detect", *files], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, errors="replace")  # a FIFO among them: refused, not opened
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "fifo.mp4: error: cannot open: not a regular file (a FIFO)" in proc.stderr
    assert proc.stdout.count(": not watermarked") + proc.stderr.count(": error: ") >= len(files) - 1
