"""End to end through the real command lines: data -> train -> evaluate -> generate."""

import json
import subprocess
import sys

import av
import pytest
import webdataset as wds

from tests.conftest import ROOT, TINY


def run(*args, cwd=ROOT, check=True):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.mark.slow
def test_data_train_evaluate_generate(tmp_path):
    data = tmp_path / "data"
    run("data_prep/make_synthetic.py", f"out={data}", "splits.train.clips=24", "splits.val.clips=8",
        "splits.test.clips=6", "shard_size=8", "workers=1", f"hydra.run.dir={tmp_path / 'prep'}")
    assert json.loads((data / "test" / "index.json").read_text())["samples"] == 6

    train = run("train.py", *TINY, f"data.root={data}", f"hydra.run.dir={tmp_path / 'run'}")
    lines = [line for line in train.stdout.splitlines() if line.startswith("checkpoint: ")]
    assert lines, train.stdout[-2000:]
    ckpt = lines[-1].split("checkpoint: ", 1)[1]

    out = tmp_path / "eval"
    run("evaluate.py", f"ckpt={ckpt}", f"out={out}", "batch_size=4", "steps=2")
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in ("sync/onset_precision", "sync/onset_recall", "sync/onset_f1", "sync/onset_mae_ms", "quality/mel_l1",
                "ref/gt_onset_f1", "ref/mismatched_onset_f1"):
        assert key in metrics
    assert metrics["eval/clips"] == 6
    assert metrics["ref/gt_onset_f1"] > 0.8
    assert "| onset_f1 |" in (out / "report.md").read_text()

    video = tmp_path / "in clip.mp4"  # a space in the name must not matter
    for sample in wds.WebDataset(str(data / "test" / "test-000000.tar"), shardshuffle=False):
        video.write_bytes(sample["mp4"])
        break
    result = tmp_path / "out" / "with sound.mp4"
    run("generate.py", f"video={video}", f"ckpt={ckpt}", f"out={result}", "steps=2")
    with av.open(str(result)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert abs(float(container.streams.audio[0].duration * container.streams.audio[0].time_base) - 2.0) < 0.1
    sidecar = json.loads(result.with_suffix(".json").read_text())
    assert sidecar["steps"] == 2 and len(sidecar["model_sha256"]) == 64
    assert result.with_suffix(".wav").exists()

    bad = run("generate.py", f"video={tmp_path / 'missing.mp4'}", f"ckpt={ckpt}", f"out={tmp_path / 'x.mp4'}",
              check=False)
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_generated_files_carry_the_watermark_and_off_is_explicit(tmp_path):
    from tests.conftest import compose_config
    from v2a.media import decode_audio
    from v2a.training.run import train
    from v2a.watermark import Watermarker

    data = tmp_path / "data"
    run("data_prep/make_synthetic.py", f"out={data}", "splits.train.clips=16", "splits.val.clips=4",
        "splits.test.clips=2", "shard_size=8", "workers=1", f"hydra.run.dir={tmp_path / 'prep'}")
    cfg = compose_config(TINY + [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}", f"data.root={data}",
                                 "trainer.max_steps=2", "callbacks.demo_samples.num_clips=0"])
    ckpt = train(cfg)["checkpoint"]
    # 8 s of video: the detector needs several seconds (2 s excerpts are its documented weak spot)
    from v2a.media import decode_video, encode_mp4

    frames = [decode_video(s["mp4"])[0] for s in wds.WebDataset(str(data / "train" / "train-000000.tar"),
                                                                shardshuffle=False)][:4]
    video = tmp_path / "clip.mp4"
    video.write_bytes(encode_mp4(__import__("numpy").concatenate(frames), 25))
    env_key = "V2A_WATERMARK_KEY=test-key-123"
    marked, plain = tmp_path / "marked.mp4", tmp_path / "plain.mp4"
    import os

    env = dict(os.environ, V2A_WATERMARK_KEY="test-key-123")
    for out, extra in ((marked, []), (plain, ["watermark=off"])):
        proc = subprocess.run([sys.executable, "generate.py", f"video={video}", f"ckpt={ckpt}", f"out={out}",
                               "steps=2", *extra], cwd=ROOT, capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    detector = Watermarker(key="test-key-123")
    for path in (marked.with_suffix(".wav"), marked):  # the wav and the muxed AAC track
        audio, rate = decode_audio(path)
        assert detector.detect(audio.mean(0), rate).watermarked, f"{path} ({env_key}) not detected"
    audio, rate = decode_audio(plain.with_suffix(".wav"))
    assert not detector.detect(audio.mean(0), rate).watermarked
    audio, rate = decode_audio(marked.with_suffix(".wav"))
    assert not Watermarker(key="another-key").detect(audio.mean(0), rate).watermarked
    assert json.loads(marked.with_suffix(".json").read_text())["watermarked"] is True
    assert json.loads(plain.with_suffix(".json").read_text())["watermarked"] is False
