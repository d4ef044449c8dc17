"""The ``v2a`` console script and generate end to end: flags -> config, outputs, sidecar, clear refusals."""

import json

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from tests.data.videos import make_video
from v2a.cli import compose_generate, generate_overrides, generate_parser, main
from v2a.conf.arguments import hydra_quote


@pytest.fixture(scope="module")
def ckpt(one_step_checkpoint):
    return one_step_checkpoint


def test_flags_are_plain_values_that_read_back_verbatim():
    nasty = "it's a ${oc.env:HOME} \"quoted\" path\\"
    args = generate_parser().parse_intermixed_args(
        ["my clip's.mp4", "--ckpt", "run/last.ckpt", "steps=3", "--prompt", nasty, "--transcript", "a\\b c",
         "-n", "2", "--cfg-scale", "2.5", "--vocoder", "neural", "--vocoder-checkpoint", "voc/export",
         "--original-audio", "keep", "--no-watermark"])
    assert not any("clip" in o or "HOME" in o for o in generate_overrides(args))  # no path through the grammar
    cfg = compose_generate(args)
    assert cfg.video == "my clip's.mp4" and cfg.out == "my clip's_v2a.mp4" and cfg.prompt == nasty
    assert cfg.transcript == "a\\b c" and cfg.steps == 3 and cfg.num_candidates == 2 and cfg.cfg_scale == 2.5
    assert cfg.original_audio == "keep" and cfg.watermark.disabled
    assert cfg.model.vocoder.checkpoint == "voc/export" and cfg.model.vocoder._target_.endswith("NeuralVocoder")
    assert hydra_quote("x'") == "'x\\''"


def test_detect_is_the_watermark_detector(tmp_path, capsys):
    from v2a.watermark import Watermarker

    noise = np.random.default_rng(0).standard_normal(16000 * 8).astype(np.float32) * 0.1
    sf.write(tmp_path / "marked.wav", Watermarker(key="k1").embed(noise, 16000), 16000)
    sf.write(tmp_path / "plain.wav", noise, 16000)
    assert main(["detect", str(tmp_path / "marked.wav"), str(tmp_path / "plain.wav"), "--key", "k1"]) == 0
    out = capsys.readouterr().out
    assert "marked.wav: watermarked" in out and "plain.wav: not watermarked" in out
    assert main([]) == 2 and main(["--help"]) == 0


def test_generate_end_to_end_with_a_vocoder_override(ckpt, tmp_path, capsys):
    video = make_video(tmp_path / "in.mp4", size=(64, 48), fps=30, seconds=4.3, clicks=(1.0,))
    out = tmp_path / "out" / "with sound.mkv"
    status = main(["generate", str(video), "--ckpt", ckpt, "-o", str(out), "--steps", "1", "--vocoder", "griffin_lim",
                   "model.vocoder.n_iter=2", "sampler.method=heun", "--original-audio", "keep", "--audio-format", "flac", "--seed", "7",
                   "--no-watermark", "--threads", "1"])
    torch.set_num_threads(2)  # as tests/conftest.py set it
    assert status == 0, capsys.readouterr().err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["num_threads"] == 1 and sidecar["sampler"]["method"] == "heun"  # chosen at generation time
    assert sidecar["vocoder"]["override"]["n_iter"] == 2 and sidecar["seed"] == 7 and sidecar["windows"] == 3
    assert len(sidecar["model_sha256"]) == 64 and sidecar["watermarked"] is False and sidecar["original_audio"] == "keep"
    audio, rate = sf.read(out.with_suffix(".flac"))
    assert rate == 16000 and len(audio) == round(4.3 * 16000)  # exactly the video's length
    with av.open(str(out)) as container:
        kinds = [s.type for s in container.streams]
        assert kinds == ["video", "audio", "audio"]  # generated first, the original kept as a second track
        assert container.streams.audio[1].codec_context.sample_rate == 44100  # copied untouched


@pytest.mark.parametrize("extra,message", [
    (["--transcript", "hello there"], "no conditioning for transcript"),
    (["--prompt", "PROMPTFILE"], "not UTF-8"),
    (["--steps", "0"], "steps must be >= 1"),
    (["-o", "out.avi"], "must end in one of"),
    (["--vocoder", "no_such_vocoder"], "no_such_vocoder"),
])
def test_generate_refuses_clearly(ckpt, tmp_path, capsys, extra, message):
    video = make_video(tmp_path / "in.mp4", size=(32, 32), seconds=0.5, audio=None)
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"\xff\xfe bad")
    extra = [str(bad) if x == "PROMPTFILE" else x for x in extra]
    args = ["generate", str(video), "--ckpt", ckpt, "-o", str(tmp_path / "o.mp4"), "--no-watermark"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_a_neural_vocoder_export_replaces_the_checkpoints_vocoder(ckpt, tmp_path, capsys):
    import torch

    from v2a.models.vocoder.export import write_vocoder_export
    from v2a.models.vocoder.vocos import VocosGenerator
    from v2a.pipeline import V2APipeline

    torch.manual_seed(0)
    kwargs = {"dim": 16, "hidden": 32, "depth": 1}
    export = write_vocoder_export(tmp_path / "voc", generator=VocosGenerator(**kwargs), architecture="vocos",
                                  kwargs=kwargs, features=V2APipeline.from_pretrained(ckpt).features)
    video = make_video(tmp_path / "in.mp4", size=(32, 32), seconds=1.0, audio=None)
    out = tmp_path / "o.mp4"
    base = ["generate", str(video), "--ckpt", ckpt, "-o", str(out), "--steps", "1", "--no-watermark"]
    assert main(base + ["--vocoder", "neural", "--vocoder-checkpoint", str(export)]) == 0, capsys.readouterr().err
    assert json.loads(out.with_suffix(".json").read_text())["vocoder"]["class"] == "NeuralVocoder"
    assert main(base + ["--vocoder", "neural", "--vocoder-checkpoint", str(tmp_path / "nope")]) == 2
    assert "cannot build the model with the chosen vocoder" in capsys.readouterr().err
