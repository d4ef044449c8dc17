"""Onset F1 of the default generation settings, by token rate, vocoder and steps (issue 17): the table from
``evaluate.py`` runs on the impacts benchmark's test split.

    .venv/bin/python bench/token_rate.py --baseline outputs/eval/speed/k2_gl_s8 --runs outputs/eval/speed/* \
        --commands outputs/eval/speed/commands.sh [--write]

Each run folder holds the ``metrics.json`` that ``evaluate.py`` wrote; the model's token rate, the vocoder and the
steps are read from its ``run`` record. ``--baseline`` is the former default (2 mel frames a token, Griffin-Lim,
8 steps); each row reports its onset F1 against it and against its own 25-step run when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.report import write_section  # noqa: E402


def read(folder: Path) -> dict:
    """Model, settings and onset scores of one evaluation."""
    from v2a.pipeline.loading import read_pretrained

    data = json.loads((folder / "metrics.json").read_text())
    metrics, run = data["metrics"], data.get("run", {})
    stored = read_pretrained(ROOT / run["ckpt"])[0]
    spec = stored["spec"]
    vocoder = run.get("vocoder") or {}
    return {"name": folder.name, "ckpt": run.get("ckpt", "?"), "steps": run.get("steps"),
            "mel_frames_per_token": spec.get("mel_frames_per_token"),
            "gelu": stored["model"]["denoiser"].get("gelu", "tanh"),
            "vocoder": str(vocoder.get("_target_", "?")).rsplit(".", 1)[-1],
            "f1": metrics["sync/onset_f1"], "precision": metrics["sync/onset_precision"],
            "recall": metrics["sync/onset_recall"], "mae": metrics["sync/onset_mae_ms"],
            "gt_f1": metrics.get("ref/gt_onset_f1"), "clips": metrics.get("eval/onset_clips")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--commands", type=Path, default=None, help="the shell commands that made the runs")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    base = read(args.baseline)
    rows = [read(folder) for folder in args.runs if (folder / "metrics.json").is_file()]
    full = {(r["ckpt"], r["vocoder"]): r["f1"] for r in rows if r["steps"] == 25}
    lines = ["| run | checkpoint | mel frames / token | GELU | vocoder | steps | onset F1 | vs the former default | "
             "vs its 25 steps | precision | recall | MAE (ms) |", "| --- |" + " --- |" * 11]
    for r in sorted(rows, key=lambda r: (r["ckpt"], r["vocoder"], r["steps"] or 0)):
        reference = full.get((r["ckpt"], r["vocoder"]))
        vs_full = f"{100 * r['f1'] / reference:.1f} %" if reference else "—"
        lines.append(f"| {r['name']} | `{r['ckpt']}` | {r['mel_frames_per_token']} | {r['gelu']} | {r['vocoder']} | "
                     f"{r['steps']} | "
                     f"**{r['f1']:.3f}** | {r['f1'] - base['f1']:+.3f} | {vs_full} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['mae']:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        commands = args.commands.read_text().strip() if args.commands else ""
        write_section("token_rate", "\n".join([
            "## Onset F1 by token rate, vocoder and steps: the default generation settings (issue 17)", "",
            f"`.venv/bin/python bench/token_rate.py --baseline {args.baseline} --runs ... --write`, from these "
            f"`evaluate.py` runs (impacts test split, {base['clips']} clips; ground truth onset F1 {base['gt_f1']:.3f}; "
            f"the former default `{base['name']}`: onset F1 {base['f1']:.3f}):", "", "```bash", commands, "```", "",
            table]))


if __name__ == "__main__":
    main()
