"""A markdown report of one evaluation run: sync first, with floor and ceiling beside each number."""

from __future__ import annotations

import os
from pathlib import Path


def _fmt(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_report(path: Path, metrics: dict, info: dict) -> Path:
    rows = []
    for name in ("onset_precision", "onset_recall", "onset_f1", "onset_mae_ms"):
        rows.append(f"| {name} | {_fmt(metrics['sync/' + name])} | {_fmt(metrics['ref/gt_' + name])} "
                    f"| {_fmt(metrics['ref/mismatched_' + name])} |")
    plots = sorted((path.parent / "plots").glob("*.png"))
    lines = [
        "# v2a evaluation report",
        "",
        f"checkpoint `{info['ckpt']}` (step {info['global_step']}), data `{info['data']}` split `{info['split']}`, "
        f"{metrics['eval/clips']} clips, {info['steps']} sampling steps, CFG {info['cfg_scale']}, seed {info['seed']}.",
        "",
        "## Sync (onsets within ±1 video frame of the true events)",
        "",
        "| metric | generated | ground-truth audio (ceiling) | mismatched video (floor) |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "## Quality and speed",
        "",
        f"- mel L1 to the reference: {_fmt(metrics['quality/mel_l1'])}",
        f"- real-time factor of generation (denoiser + vocoder): {_fmt(metrics['speed/rtf'])}",
        f"- onset detector: threshold {_fmt(metrics['detector/threshold'])}, latency "
        f"{_fmt(metrics['detector/latency_ms'])} ms (calibrated on ground-truth validation audio)",
        "",
        "## Spectrograms (white dashes: true events; red ticks: detected onsets)",
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in plots],
        "",
    ]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path
