"""A 30-step CPU run with logger=[csv,tensorboard,wandb] (wandb offline): every logger's files hold the demo
audio, the spectrogram images and the health scalars; evaluation after training lands in the same run."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import TINY, compose_config
from tests.logger_files import tensorboard_tags, wandb_history
from v2a.training.run import train

# health scalars every run logs (sys/gpu_* and sys/mfu need a GPU)
HEALTH = ["train/loss", "val/loss", "train/grad_norm", "train/grad_norm/denoiser", "train/grad_norm/visual_encoder",
          "train/param_norm", "train/ema_distance", "train/loss_t_small", "train/loss_t_middle", "train/loss_t_large",
          "val/loss_t_small", "val/loss_t_middle", "val/loss_t_large", "train/lr", "sys/clips_per_s",
          "sys/tokens_per_s", "sys/data_wait_frac", "sys/cpu_peak_rss_gb", "sys/tflops_per_s"]
CLIPS = 2
EVAL = "eval/sync/onset_f1"


@pytest.fixture(scope="module")
def run(tiny_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("logged")
    cfg = compose_config(TINY + [
        f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}", f"data.root={tiny_shards}",
        "logger=[csv,tensorboard,wandb]", "trainer.max_steps=30", "trainer.log_every_n_steps=10",
        "trainer.val_check_interval=15", "callbacks.model_checkpoint.every_n_train_steps=10",
        f"callbacks.demo_samples.num_clips={CLIPS}", "callbacks.demo_samples.every_n_steps=15",
        "callbacks.health.flops=true",   # the FLOP count (sys/tflops_per_s) runs on the CPU too
        # evaluation inside the run: every 20 steps on 8 clips, and after training (the sweeps' callback)
        "callbacks.periodic_eval.every_n_steps=20", "callbacks.periodic_eval.max_clips=8",
        "callbacks.periodic_eval.calibration_clips=16", "callbacks.periodic_eval.batch_size=8",
        "+callbacks.periodic_eval.steps=2", "+sweep=eval_after_train", "callbacks.evaluate.max_clips=8",
        "callbacks.evaluate.calibration_clips=16", "callbacks.evaluate.batch_size=8", "+callbacks.evaluate.steps=2",
        "callbacks.evaluate.plots=2", "callbacks.evaluate.whisper=false"])
    result = train(cfg)
    return {"dir": out / "run", "result": result}


def test_tensorboard_holds_audio_spectrograms_and_health_scalars(run):
    tags = tensorboard_tags(run["dir"] / "tensorboard" / "version_0")
    assert set(HEALTH) <= tags["scalars"], set(HEALTH) - tags["scalars"]
    generated = {t for t in tags["audio"] if t.startswith("samples/") and t.endswith("/generated")}
    truth = {t for t in tags["audio"] if t.startswith("samples/") and t.endswith("/ground_truth")}
    images = {t for t in tags["images"] if t.startswith("samples/") and t.endswith("/spectrogram")}
    assert len(generated) == len(truth) == len(images) == CLIPS
    assert EVAL in tags["scalars"]
    assert len({t for t in tags["images"] if t.startswith("eval/") and t.endswith("/spectrogram")}) == 2
    assert len({t for t in tags["audio"] if t.startswith("eval/") and t.endswith("/generated")}) == 2


def test_wandb_offline_run_holds_audio_spectrograms_videos_and_health_scalars(run):
    [folder] = (run["dir"] / "wandb").glob("offline-run-*")
    assert folder.name.endswith((run["dir"] / "wandb_run_id").read_text().strip())
    media = folder / "files" / "media"
    assert len(list((media / "audio" / "samples").glob("generated_*.wav"))) == 2 * CLIPS   # steps 15 and 30
    assert len(list((media / "audio" / "samples").glob("ground_truth_*.wav"))) >= CLIPS
    assert len(list((media / "images" / "samples").glob("spectrogram_*.png"))) == 2 * CLIPS
    assert len(list((media / "videos" / "samples").glob("video_*.mp4"))) == 2 * CLIPS
    history = wandb_history(folder)
    logged = {key.split("/_type")[0] for row in history for key in row}
    assert set(HEALTH) | {EVAL, "eval/spectrogram", "eval/generated", "eval/video"} <= logged, set(HEALTH) - logged
    kinds = {k: json.loads(v) for row in history for k, v in row.items() if k.endswith("/_type")}
    assert kinds == {"samples/generated/_type": "audio", "samples/ground_truth/_type": "audio",
                     "samples/spectrogram/_type": "images/separated", "samples/video/_type": "videos",
                     "eval/generated/_type": "audio", "eval/spectrogram/_type": "images/separated",
                     "eval/video/_type": "videos"}


def test_csv_run_holds_the_health_scalars_and_the_media_files(run):
    with open(run["dir"] / "csv" / "version_0" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    columns = set(rows[0])
    assert set(HEALTH) <= columns, set(HEALTH) - columns
    assert all(0.0 <= float(r["sys/data_wait_frac"]) <= 1.0 for r in rows if r["sys/data_wait_frac"])
    for step in ("step_0000015", "step_0000030"):
        files = list((run["dir"] / "samples" / step).iterdir())
        assert {p.suffix for p in files} == {".wav", ".png", ".mp4"} and len(files) == 3 * CLIPS
    assert len(list((run["dir"] / "samples" / "ground_truth").glob("*.wav"))) == CLIPS
    evaluated = [float(r[EVAL]) for r in rows if r.get(EVAL)]
    assert len(evaluated) == 2   # periodic at step 20, after training
    final = json.loads((run["dir"] / "eval" / "metrics.json").read_text())["metrics"]
    assert evaluated[-1] == pytest.approx(final["sync/onset_f1"]) == run["result"]["metrics"][EVAL]
    assert [p.name for p in (run["dir"] / "eval_periodic").iterdir()] == ["step_0000020"]
    assert (run["dir"] / "eval_periodic" / "step_0000020" / "metrics.json").exists()


def test_wandb_leaves_no_service_process_behind(run):
    psutil = pytest.importorskip("psutil")  # installed with wandb
    # wandb's service (wandb-core) outlives its run unless torn down, spinning on a core until this process exits
    children = [p.name() for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not [name for name in children if "wandb" in name], children
