"""The outputs of one evaluation: metrics.json, metrics.csv, report.md, plots, samples, optional wandb."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from v2a.utils.plots import plot_mels

log = logging.getLogger(__name__)

# (section, metric name without prefix, generated-audio prefix) in report order: sync first
ROWS = [
    ("Sync (onsets within ±1 video frame of the true events)", ["onset_precision", "onset_recall", "onset_f1",
                                                                "onset_ap", "onset_mae_ms", "av_align"], "sync/"),
    ("Quality", ["fad_classifier", "fad_whisper", "kl_material", "material_acc", "kl_category", "category_acc",
                 "mel_l1", "lsd_db"], "quality/"),
    ("Speech", ["wer", "cer", "lip_corr"], "speech/"),
]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else f"{value:.3f}"
    return "—" if value is None else str(value)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def report_markdown(metrics: dict, skipped: dict, info: dict) -> str:
    lines = ["# v2a evaluation report", "",
             f"checkpoint `{info['ckpt']}` (step {info['global_step']}), data `{info['data']}` split `{info['split']}`, "
             f"{metrics['eval/clips']} clips, {info['steps']} sampling steps, CFG {info['cfg_scale']}, seed {info['seed']}; "
             f"reference cache: {info['reference_cache']}; generations reused: {info['reused_generations']}.", ""]
    extra = sorted(k for k in metrics if k.startswith("quality/fad_") and k.split("/", 1)[1] not in ROWS[1][1])
    for title, names, gen_prefix in ROWS:
        names = names + ([k.split("/", 1)[1] for k in extra] if gen_prefix == "quality/" else [])
        rows = [f"| {n} | {_fmt(metrics.get(gen_prefix + n))} | {_fmt(metrics.get('ref/gt_' + n))} "
                f"| {_fmt(metrics.get('ref/mismatched_' + n))} |" for n in names if gen_prefix + n in metrics]
        if rows:
            lines += [f"## {title}", "", "| metric | generated | ground-truth audio (ceiling) | mismatched video (floor) |",
                      "| --- | --- | --- | --- |", *rows, ""]
    lines += ["## Watermark and speed", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in metrics.items() if k.startswith(("watermark/", "speed/"))]
    lines += [f"- onset detector: threshold {_fmt(metrics['detector/threshold'])}, latency "
              f"{_fmt(metrics['detector/latency_ms'])} ms (calibrated on ground-truth validation audio)", ""]
    if skipped:
        lines += ["## Skipped", "", *[f"- `{k}`: {v}" for k, v in sorted(skipped.items())], ""]
    lines += ["## Spectrograms (white dashes: true events; red ticks: detected onsets)", ""]
    lines += [f"![{key}](plots/{key}.png)" for key in info.get("plots", [])]
    return "\n".join(lines) + "\n"


def _samples(out_dir: Path, plot_data: list, spec, detector) -> list[str]:
    """Spectrogram images (true vs detected onsets) and muxed mp4s of the first clips."""
    import torch

    from v2a.evaluation.references import event_times
    from v2a.evaluation.store import GenerationStore
    from v2a.media import encode_mp4, mux_audio

    store, keys = GenerationStore(out_dir), []
    for key, gt_mel, gen_mel, meta, frames in plot_data:
        found = {name: detector(torch.from_numpy(m)[None])[0].tolist()
                 for name, m in (("ground truth", gt_mel), ("generated", gen_mel))}
        plot_mels(out_dir / "plots" / f"{key}.png", [("ground truth", gt_mel), ("generated", gen_mel)],
                  spec.mel_rate, event_times(meta).tolist(), found)
        # the same panels as data, so `evaluate.py compare` can put several runs side by side
        np.savez(out_dir / "plots" / f"{key}.npz", gt_mel=gt_mel, gen_mel=gen_mel, true=event_times(meta),
                 gt_onsets=np.asarray(found["ground truth"]), gen_onsets=np.asarray(found["generated"]),
                 mel_rate=spec.mel_rate)
        try:  # a sample video with the generated soundtrack, as a user would watch it
            silent = out_dir / "samples" / f".{key}.silent.mp4"
            silent.parent.mkdir(parents=True, exist_ok=True)
            silent.write_bytes(encode_mp4(frames.permute(0, 2, 3, 1).numpy(), spec.fps))
            mux_audio(silent, store.read("generated", key), spec.sample_rate, out_dir / "samples" / f"{key}.mp4")
            silent.unlink()
        except Exception as error:  # a sample video is a convenience: never fail an evaluation on it
            log.warning("sample video for %s not written: %s", key, error)
        keys.append(key)
    return keys


def _log_wandb(out_dir: Path, metrics: dict, info: dict, keys: list[str], sample_rate: int) -> None:
    """Metrics, audio and spectrograms to Weights & Biases (offline unless WANDB_MODE says otherwise)."""
    import wandb

    from v2a.evaluation.store import GenerationStore

    os.environ.setdefault("WANDB_MODE", "offline")
    run = wandb.init(project="v2a-eval", dir=str(out_dir), name=Path(info["ckpt"]).stem, config=info, reinit=True)
    try:
        store = GenerationStore(out_dir)
        media = {f"samples/{k}/audio": wandb.Audio(store.read("generated", k), sample_rate=sample_rate) for k in keys}
        media.update({f"samples/{k}/spectrogram": wandb.Image(str(out_dir / "plots" / f"{k}.png")) for k in keys})
        media.update({f"samples/{k}/video": wandb.Video(str(out_dir / "samples" / f"{k}.mp4"))
                      for k in keys if (out_dir / "samples" / f"{k}.mp4").exists()})
        run.log({**{f"eval/{k}": v for k, v in metrics.items()}, **media})
    finally:
        run.finish()


def write_outputs(out_dir: Path, metrics: dict, skipped: dict, info: dict, plot_data: list, spec, detector, *,
                  wandb: bool = False) -> None:
    """Write every artifact of one evaluation (atomically, file by file)."""
    keys = _samples(out_dir, plot_data, spec, detector)
    info = {**info, "plots": keys}
    _write_text(out_dir / "metrics.json", json.dumps({"metrics": metrics, "skipped": skipped, "run": info}, indent=2))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "value"])
    writer.writerows([k, v] for k, v in metrics.items())
    _write_text(out_dir / "metrics.csv", buffer.getvalue())
    _write_text(out_dir / "report.md", report_markdown(metrics, skipped, info))
    if wandb:
        _log_wandb(out_dir, metrics, info, keys, spec.sample_rate)
