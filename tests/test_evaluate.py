"""evaluate.py end to end on a tiny checkpoint and tiny shards: every metric, caching, reuse, compare."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from tests.conftest import TINY, compose_config
from v2a.evaluation import cache as reference_cache
from v2a.evaluation.compare import compare
from v2a.evaluation.job import evaluate
from v2a.training.run import train
from v2a.watermark import Watermarker

# Every key an evaluation of impact clips must produce (speech keys need transcripts: tested in units).
EXPECTED = [f"{p}{m}" for p in ("sync/", "ref/gt_", "ref/mismatched_")
            for m in ("onset_precision", "onset_recall", "onset_f1", "onset_ap", "onset_mae_ms", "av_align")]
EXPECTED += [f"{p}{m}" for p in ("quality/", "ref/gt_", "ref/mismatched_")
             for m in ("fad_classifier", "fad_whisper", "kl_material", "material_acc")]
EXPECTED += [f"{p}{m}" for p in ("quality/", "ref/mismatched_") for m in ("mel_l1", "lsd_db")]
EXPECTED += ["sync/desync_s", "ref/gt_desync_s", "ref/mismatched_desync_s"]
EXPECTED += ["watermark/detection_rate", "watermark/false_positive_rate", "speed/rtf", "eval/clips",
             "detector/threshold", "detector/latency_ms"]


@pytest.fixture(scope="module")
def trained(tiny_shards, tmp_path_factory):
    """A 6-step audio-classifier export, then a 4-step V2A checkpoint (and its step-2 checkpoint) trained
    with the sweeps' evaluate-after-training callback, so train() returns an evaluation metric."""
    root = tmp_path_factory.mktemp("eval_models")
    clf = compose_config(["experiment=audio_classifier", f"paths.root_dir={root}", f"paths.output_dir={root / 'clf'}",
                          f"data.root={tiny_shards}", "data.batch_size=8", "data.num_workers=0",
                          "data.shuffle_buffer=16", "data.samples_per_epoch=32", "trainer.max_steps=6",
                          "trainer.val_check_interval=3", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
                          "trainer.enable_progress_bar=false", "model.scheduler.warmup_steps=1",
                          "callbacks.model_checkpoint.every_n_train_steps=3"])
    train(clf)
    classifier = root / "clf" / "export"
    sync = compose_config(["experiment=sync_base", f"paths.root_dir={root}", f"paths.output_dir={root / 'sync'}",
                           f"data.root={tiny_shards}", "data.batch_size=8", "data.num_workers=0",
                           "data.shuffle_buffer=16", "data.samples_per_epoch=32", "trainer.max_steps=2",
                           "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
                           "trainer.enable_progress_bar=false", "model.scheduler.warmup_steps=1"])
    sync_model = train(sync)["checkpoint"]
    cfg = compose_config(TINY + [f"paths.root_dir={root}", f"paths.output_dir={root / 'v2a'}", f"data.root={tiny_shards}",
                                 "callbacks.demo_samples.num_clips=0",
                                 "+sweep=eval_after_train",
                                 "callbacks.evaluate.max_clips=8", "callbacks.evaluate.calibration_clips=16",
                                 "callbacks.evaluate.batch_size=8", "+callbacks.evaluate.steps=2",
                                 "callbacks.evaluate.whisper=false", f"callbacks.evaluate.classifier={classifier}",
                                 f"callbacks.evaluate.cache_dir={root / 'cache'}"])
    result = train(cfg)
    return {"ckpt": result["checkpoint"], "step2": str(root / "v2a" / "checkpoints" / "step_0000002.ckpt"),
            "classifier": str(classifier), "cache": str(root / "cache"), "sync_model": sync_model, "train_metrics": result["metrics"],
            "train_eval": root / "v2a" / "eval"}


def _evaluate(trained, tiny_shards, out, ckpt=None, **kwargs):
    options = dict(ckpt=ckpt or trained["ckpt"], out=str(out), data=str(tiny_shards), batch_size=8, steps=2,
                   max_clips=8, calibration_clips=16, plots=2, classifier=trained["classifier"], whisper="false",
                   watermark=None, cache_dir=trained["cache"])
    return evaluate(**{**options, **kwargs})


@pytest.mark.slow
def test_training_returns_the_evaluation_metric_a_sweep_optimizes(trained):
    saved = json.loads((trained["train_eval"] / "metrics.json").read_text())["metrics"]
    assert trained["train_metrics"]["eval/sync/onset_f1"] == pytest.approx(saved["sync/onset_f1"])
    assert compose_config(["experiment=v2a_tiny", "+sweep=alignment"]).optimized_metric == "eval/sync/onset_f1"


@pytest.mark.slow
def test_every_metric_is_present_finite_and_ground_truth_beats_mismatched(trained, tiny_shards, tmp_path):
    out = tmp_path / "eval"
    metrics = _evaluate(trained, tiny_shards, out, whisper="auto", watermark=Watermarker(key="test-eval-key"),
                        sync_model=trained["sync_model"])
    expected = EXPECTED
    if importlib.util.find_spec("faster_whisper") is None:  # the optional eval extra: its metric is skipped
        expected = [k for k in EXPECTED if "whisper" not in k]
        skipped = json.loads((out / "metrics.json").read_text())["skipped"]
        assert any("whisper" in k for k in skipped), skipped
    missing = [k for k in expected if k not in metrics]
    assert not missing, missing
    assert all(math.isfinite(metrics[k]) for k in expected), {k: metrics[k] for k in expected}
    assert metrics["eval/clips"] == 8
    for name in ("onset_f1", "onset_ap", "onset_precision", "onset_recall", "av_align"):
        assert metrics[f"ref/gt_{name}"] > metrics[f"ref/mismatched_{name}"], name
    assert metrics["ref/gt_onset_mae_ms"] < metrics["ref/mismatched_onset_mae_ms"]
    # the watermark is found in marked generations and not in (unmarked) ground truth
    assert metrics["watermark/false_positive_rate"] == 0.0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(metrics)
    assert "speech/wer, speech/cer" in saved["skipped"] and "sync/desync_s" not in saved["skipped"]
    assert (out / "metrics.csv").read_text().startswith("metric,value")
    report = (out / "report.md").read_text()
    assert "| onset_f1 |" in report and "| fad_classifier |" in report
    assert len(list((out / "generations" / "generated").glob("*.wav"))) == 8
    assert len(list((out / "samples").glob("*.mp4"))) == 2 and len(list((out / "plots").glob("*.png"))) == 2


@pytest.mark.slow
def test_references_are_cached_and_generations_reused(trained, tiny_shards, tmp_path):
    # the evaluation after training (same data and tools) filled the cache: both runs below hit it
    hits = reference_cache.STATS["hits"]
    first = _evaluate(trained, tiny_shards, tmp_path / "a")
    second = _evaluate(trained, tiny_shards, tmp_path / "b", ckpt=trained["step2"])
    assert reference_cache.STATS["hits"] == hits + 2
    run = json.loads((tmp_path / "b" / "metrics.json").read_text())["run"]
    assert run["reference_cache"] == "hit"
    for key in ("ref/gt_onset_f1", "ref/gt_av_align", "ref/gt_fad_classifier", "detector/threshold"):
        assert second[key] == pytest.approx(first[key]), key
    assert second["sync/onset_f1"] != first["sync/onset_f1"] or second["quality/mel_l1"] != first["quality/mel_l1"]

    # reuse=true rescores the stored generations without generating: same numbers
    again = _evaluate(trained, tiny_shards, tmp_path / "a", reuse=True)
    for key in ("sync/onset_f1", "quality/mel_l1", "quality/fad_classifier", "speed/rtf"):
        assert again[key] == pytest.approx(first[key]), key
    with pytest.raises(ValueError, match="cfg_scale"):
        _evaluate(trained, tiny_shards, tmp_path / "a", reuse=True, cfg_scale=1.5)
    # a vocoder chosen at evaluation time replaces the checkpoint's: recorded, and not confused with it
    few_iters = {"_target_": "v2a.models.vocoder.GriffinLimVocoder", "features": "${model.features}", "n_iter": 2}
    with pytest.raises(ValueError, match="vocoder"):
        _evaluate(trained, tiny_shards, tmp_path / "a", reuse=True, vocoder=few_iters)
    swapped = _evaluate(trained, tiny_shards, tmp_path / "c", vocoder=few_iters)
    manifest = json.loads((tmp_path / "c" / "generations" / "manifest.json").read_text())
    assert manifest["vocoder"]["n_iter"] == 2
    assert swapped["quality/lsd_db"] != pytest.approx(first["quality/lsd_db"])
    with pytest.raises(ValueError, match="chosen vocoder"):
        _evaluate(trained, tiny_shards, tmp_path / "d", vocoder={**few_iters, "_target_": "v2a.models.vocoder.Nope"})

    table = compare([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "cmp")
    rows = (table / "table.md").read_text().splitlines()
    assert len(rows) == 4 and rows[2].startswith("| a |") and rows[3].startswith("| b |")
    assert (table / "table.csv").read_text().count("\n") == 3
    assert (table / "plots" / "bar_onset_f1.png").exists()
    assert len(list((table / "plots").glob("spectrogram_*.png"))) == 2
