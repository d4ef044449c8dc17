"""Compare evaluations side by side:  python evaluate.py compare RUN_DIR... [--out DIR]

A RUN_DIR is an evaluation folder (holding metrics.json), a training run whose ``eval/`` holds one, or a
sweep folder whose sub-folders hold them. Writes ``table.md`` and ``table.csv`` (one row per run, every
metric), a bar chart per headline metric with the ceiling and floor of each run marked, and
spectrograms of a few clips with the true events and each run's detected onsets.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HEADLINE = ["sync/onset_f1", "sync/onset_precision", "sync/onset_recall", "sync/onset_ap", "sync/onset_mae_ms",
            "sync/av_align", "quality/fad_classifier", "quality/fad_whisper", "quality/material_acc",
            "quality/kl_material", "quality/mel_l1", "quality/lsd_db", "speech/wer", "speed/rtf"]


def find_runs(paths: list[str]) -> list[Path]:
    """Evaluation folders under the given paths (a folder itself, its eval/, or its sub-folders)."""
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "metrics.json").is_file():
            runs.append(path)
        elif (path / "eval" / "metrics.json").is_file():
            runs.append(path / "eval")
        else:
            found = sorted(p.parent for p in path.glob("*/metrics.json")) + sorted(p.parent for p in path.glob("*/eval/metrics.json"))
            if not found:
                raise FileNotFoundError(f"{path}: no metrics.json (in it, in eval/, or in its sub-folders)")
            runs += found
    return runs


def run_label(run: Path) -> str:
    """The Hydra overrides of a sweep job when recorded (what differs between runs), else the folder name."""
    for candidate in (run / ".hydra" / "overrides.yaml", run.parent / ".hydra" / "overrides.yaml"):
        if candidate.is_file():
            overrides = [line.strip()[2:] for line in candidate.read_text().splitlines() if line.strip().startswith("- ")]
            keep = [o for o in overrides if not o.startswith(("hydra.", "out=", "ckpt=", "+sweep=", "experiment="))]
            if keep:
                return " ".join(keep)
    return run.parent.name + "/" + run.name if run.name == "eval" else run.name


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) and np.isfinite(value) else ("—" if value is None else str(value))


def write_tables(out: Path, rows: list[tuple[str, dict]]) -> None:
    keys = [k for k in HEADLINE if any(k in m for _, m in rows)]
    lines = ["| run | " + " | ".join(k.split("/", 1)[1] for k in keys) + " | onset_f1 ceiling | onset_f1 floor |",
             "| --- |" + " --- |" * (len(keys) + 2)]
    for label, m in rows:
        cells = [_fmt(m.get(k)) for k in keys] + [_fmt(m.get("ref/gt_onset_f1")), _fmt(m.get("ref/mismatched_onset_f1"))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tmp = out / ".table.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out / "table.md")
    every = sorted({k for _, m in rows for k in m})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["run", *every])
    writer.writerows([label, *[m.get(k, "") for k in every]] for label, m in rows)
    tmp = out / ".table.csv.tmp"
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, out / "table.csv")


def bar_charts(out: Path, rows: list[tuple[str, dict]]) -> list[Path]:
    """One bar chart per headline metric; per run, its ceiling (green) and floor (red) as ticks."""
    written = []
    for key in HEADLINE:
        values = [m.get(key) for _, m in rows]
        if all(v is None for v in values):
            continue
        name = key.split("/", 1)[1]
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows) + 2), 3))
        x = np.arange(len(rows))
        ax.bar(x, [v if v is not None else 0 for v in values], color="tab:blue", label="generated")
        for i, (_, m) in enumerate(rows):
            for ref, colour, label in (("ref/gt_", "tab:green", "ground truth"), ("ref/mismatched_", "tab:red", "mismatched")):
                if ref + name in m:
                    ax.hlines(m[ref + name], i - 0.4, i + 0.4, colors=colour, linewidth=2, label=label if i == 0 else None)
        ax.set_xticks(x, [label for label, _ in rows], rotation=20, ha="right", fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "plots" / f"bar_{name}.png", dpi=90))
    return written


def _save(fig, path: Path, dpi: int) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def spectrograms(out: Path, runs: list[Path], labels: list[str], clips: int = 3) -> list[Path]:
    """Per clip: ground truth, then each run's generation; white dashes true events, red ticks detections."""
    common = set.intersection(*[{p.stem for p in (r / "plots").glob("*.npz")} for r in runs]) if runs else set()
    written = []
    for key in sorted(common)[:clips]:
        data = [np.load(r / "plots" / f"{key}.npz") for r in runs]
        panels = [("ground truth", data[0]["gt_mel"], data[0]["gt_onsets"])]
        panels += [(label, d["gen_mel"], d["gen_onsets"]) for label, d in zip(labels, data, strict=True)]
        rate = float(data[0]["mel_rate"])
        fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.8 * len(panels)), squeeze=False)
        for ax, (title, mel, onsets) in zip(axes[:, 0], panels, strict=True):
            ax.imshow(mel, origin="lower", aspect="auto", extent=(0, mel.shape[-1] / rate, 0, mel.shape[0]),
                      cmap="magma", vmin=-3, vmax=3)
            for t in data[0]["true"]:
                ax.axvline(t, color="white", linestyle="--", linewidth=0.8)
            for t in onsets:
                ax.plot([t, t], [mel.shape[0] * 0.85, mel.shape[0]], color="red", linewidth=2)
            ax.set_title(title, fontsize=8)
        axes[-1, 0].set_xlabel("time (s)")
        written.append(_save(fig, out / "plots" / f"spectrogram_{key}.png", dpi=80))
    return written


def compare(paths: list[str], out: str | Path) -> Path:
    """Write table.md, table.csv and plots/ for the evaluations under ``paths``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = find_runs(paths)
    labels = [run_label(r) for r in runs]
    if len(set(labels)) < len(labels):  # same overrides or names: make them unique with the folder
        labels = [f"{label} ({r})" for label, r in zip(labels, runs, strict=True)]
    rows = [(label, json.loads((r / "metrics.json").read_text())["metrics"]) for label, r in zip(labels, runs, strict=True)]
    write_tables(out, rows)
    bar_charts(out, rows)
    spectrograms(out, runs, labels)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="evaluate.py compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="evaluation folders, training runs or sweep folders")
    parser.add_argument("--out", default="outputs/compare", help="where table.md, table.csv and plots/ go")
    args = parser.parse_args(argv)
    try:
        out = compare(args.runs, args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}")
        return 2
    print((out / "table.md").read_text())
    print(f"table: {out / 'table.md'} (and table.csv, plots/)")
    return 0
