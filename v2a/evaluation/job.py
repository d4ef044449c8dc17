"""The evaluation job: generate for a held-out split and score sync and quality, with references.

Every sync number comes with its ceiling (ground-truth audio through the same detector) and its floor
(generation from a mismatched video), computed in the same run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from v2a.evaluation.onsets import OnsetScores, calibrate
from v2a.evaluation.references import event_times, iterate_batches
from v2a.evaluation.report import write_report
from v2a.inference.loading import load_module
from v2a.utils.audio_files import write_audio
from v2a.utils.plots import plot_mels

log = logging.getLogger(__name__)


def _mismatched(frames: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """Each clip gets another clip's video: roll within the batch, borrow from the last batch if alone."""
    if frames.shape[0] > 1:
        return frames.roll(1, dims=0)
    if previous is None:
        raise ValueError("mismatched-video reference needs at least two clips")
    return previous[-1:]


def evaluate(*, ckpt: str, out: str, data: str | None = None, split: str = "test", calibration_split: str = "val",
             steps: int | None = None, cfg_scale: float | None = None, batch_size: int = 50,
             max_clips: int | None = None, calibration_clips: int = 200, seed: int = 0, save_audio: bool = True,
             plots: int = 4, device: str = "cpu") -> dict:
    """Score ``ckpt`` on ``split``; writes ``out/metrics.json`` and ``out/report.md``; returns the metrics."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = load_module(ckpt, device=device)
    spec = module.features.spec
    data = data or module.run_config["data"]["root"]
    tolerance = 1.0 / spec.fps  # ±1 video frame

    # 1. Calibrate the onset detector on ground-truth validation audio.
    cal_mels, cal_refs = [], []
    for batch in iterate_batches(data, calibration_split, spec, batch_size, calibration_clips):
        cal_mels.append(module.features(batch["audio"]))
        cal_refs += [event_times(m) for m in batch["meta"]]
    detector = calibrate(cal_mels, cal_refs, spec.mel_rate, tolerance)
    log.info("onset detector: threshold %.4f, latency %.1f ms", detector.threshold, 1000 * detector.latency)

    # 2. Generate for the test split (matched and mismatched video) and score.
    scores = {"sync": OnsetScores(), "ref_gt": OnsetScores(), "ref_mismatched": OnsetScores()}
    mel_l1, n_clips, gen_seconds, previous = [], 0, 0.0, None
    generator = torch.Generator().manual_seed(seed)
    audio_dir = out_dir / "audio"
    for batch in tqdm(list(iterate_batches(data, split, spec, batch_size, max_clips)), desc="evaluate", unit="batch"):
        frames, references = batch["frames"], [event_times(m) for m in batch["meta"]]
        start = time.perf_counter()
        generated = module.generate_audio(frames, steps=steps, cfg_scale=cfg_scale, generator=generator)
        gen_seconds += time.perf_counter() - start
        mismatched = module.generate_audio(_mismatched(frames, previous), steps=steps, cfg_scale=cfg_scale,
                                           generator=generator)
        previous = frames
        gt_mel = module.features(batch["audio"].to(module.device))
        gen_mel = module.features(generated)
        detections = {"sync": detector(gen_mel), "ref_gt": detector(gt_mel),
                      "ref_mismatched": detector(module.features(mismatched))}
        for name, detected_per_clip in detections.items():
            for detected, reference in zip(detected_per_clip, references, strict=True):
                scores[name].add(detected, reference, tolerance)
        mel_l1.append((gen_mel - gt_mel).abs().mean(dim=(1, 2)).cpu())
        for i, key in enumerate(batch["key"]):
            if save_audio:
                write_audio(audio_dir / f"{key}.wav", generated[i].cpu().numpy(), spec.sample_rate)
            if n_clips + i < plots:
                plot_mels(out_dir / "plots" / f"{key}.png",
                          [("ground truth", gt_mel[i].cpu().numpy()), ("generated", gen_mel[i].cpu().numpy())],
                          spec.mel_rate, references[i].tolist(),
                          {"ground truth": detections["ref_gt"][i].tolist(),
                           "generated": detections["sync"][i].tolist()})
        n_clips += len(batch["key"])
    if n_clips == 0:
        raise ValueError(f"split '{split}' of {data} holds no clips")

    metrics: dict[str, float] = {}
    for prefix, name in (("sync/", "sync"), ("ref/gt_", "ref_gt"), ("ref/mismatched_", "ref_mismatched")):
        metrics.update({prefix + k: v for k, v in scores[name].as_dict().items()})
    metrics["quality/mel_l1"] = float(torch.cat(mel_l1).mean())
    metrics["speed/rtf"] = gen_seconds / (n_clips * spec.duration)
    metrics["eval/clips"] = n_clips
    metrics["detector/threshold"] = detector.threshold
    metrics["detector/latency_ms"] = 1000 * detector.latency
    info = {"ckpt": str(ckpt), "global_step": module.global_step_loaded, "data": str(data), "split": split,
            "steps": module.sampler.steps if steps is None else steps, "cfg_scale": module.cfg_scale if cfg_scale is None else cfg_scale,
            "seed": seed}
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps({"metrics": metrics, "run": info}, indent=2))
    os.replace(tmp, out_dir / "metrics.json")
    write_report(out_dir / "report.md", metrics, info)
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    return "\n".join(f"{k}: {v:.4f}" if isinstance(v, float) and np.isfinite(v) else f"{k}: {v}" for k, v in metrics.items())
