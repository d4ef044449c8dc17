"""Few-step sampling table and plot from evaluate.py runs (teacher samplers vs a reflow student).

    python bench/few_step.py --teacher outputs/eval/fewstep_teacher --student outputs/eval/fewstep_student \
        --commands outputs/eval/fewstep_logs/commands.sh [--notes NOTES.md] --write

Every number comes from an evaluation folder's metrics.json (written by evaluate.py); this script only
tabulates them, adds the cost of each sampler (velocity evaluations, network passes) and the ratio of
onset F1 to the teacher's 25-step Euler value, and draws onset F1 against network passes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from v2a.diffusion import ODESampler  # noqa: E402
from v2a.evaluation.compare import find_runs  # noqa: E402

PLOT = Path(__file__).resolve().parent.parent / "docs" / "few_step_f1_vs_nfe.png"
COLUMNS = [("sync/onset_f1", "onset F1"), ("sync/onset_precision", "P"), ("sync/onset_recall", "R"),
           ("sync/onset_ap", "AP"), ("sync/onset_mae_ms", "MAE ms"), ("quality/material_acc", "material acc"),
           ("speed/rtf", "RTF")]


def read_run(folder: Path, model: str) -> dict:
    """One evaluation: its model label, sampler, cost and metrics."""
    data = json.loads((folder / "metrics.json").read_text())
    run, metrics = data["run"], data["metrics"]
    sampler = run.get("sampler") or {}
    method = sampler.get("method") or "euler"
    schedule = sampler.get("schedule") or "uniform"
    shift = sampler.get("shift") or 1.0
    nfe = ODESampler.EVALUATIONS_PER_STEP[method] * int(run["steps"])
    passes = nfe * (1 if float(run["cfg_scale"]) == 1.0 else 2)  # CFG: a conditional and an unconditional pass
    name = method + ("" if schedule == "uniform" else f" {schedule}") + ("" if shift == 1.0 else f" shift {shift:g}")
    return {"model": model, "sampler": name, "method": method, "plain": schedule == "uniform" and shift == 1.0,
            "steps": int(run["steps"]), "nfe": nfe, "passes": passes, "cfg": float(run["cfg_scale"]),
            "clips": int(metrics["eval/clips"]), "metrics": metrics, "folder": str(folder)}


def table(rows: list[dict], reference: dict) -> str:
    ref_f1 = reference["metrics"]["sync/onset_f1"]
    head = ["model", "sampler", "steps", "NFE", "network passes", "CFG"] + [c[1] for c in COLUMNS] + [f"F1 / {reference['steps']}-step F1"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["model"], r["sampler"], str(r["steps"]), str(r["nfe"]), str(r["passes"]), f"{r['cfg']:g}"]
        cells += [f"{r['metrics'][k]:.3f}" if k != "sync/onset_mae_ms" else f"{r['metrics'][k]:.1f}" for k, _ in COLUMNS]
        cells.append(f"{r['metrics']['sync/onset_f1'] / ref_f1:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], reference: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["plain"]:
            groups.setdefault((r["model"], r["method"]), []).append(r)
    for (model, method), runs in groups.items():
        runs.sort(key=lambda r: r["passes"])
        ax.plot([r["passes"] for r in runs], [r["metrics"]["sync/onset_f1"] for r in runs], marker="o",
                linestyle="-" if model == "teacher" else "--", label=f"{model} ({method})")
    ref = reference["metrics"]["sync/onset_f1"]
    ax.axhline(0.95 * ref, color="grey", linestyle=":", label=f"95 % of teacher {reference['steps']}-step Euler")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("network passes per clip (CFG counts 2 per evaluation)")
    ax.set_ylabel("onset F1 (200 test clips)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", nargs="+", required=True, help="evaluation folders (or sweep folders) of the teacher")
    parser.add_argument("--student", nargs="*", default=[], help="evaluation folders of the reflow student")
    parser.add_argument("--commands", help="a file with the exact commands that produced the evaluations")
    parser.add_argument("--notes", help="a markdown file appended after the table")
    parser.add_argument("--reference-steps", type=int, default=25, help="the teacher's Euler steps the ratio refers to")
    parser.add_argument("--write", action="store_true", help="write the 'few_step' section and the plot")
    args = parser.parse_args()

    rows = [read_run(f, "teacher") for f in find_runs(args.teacher)]
    rows += [read_run(f, "student") for f in find_runs(args.student)] if args.student else []
    rows.sort(key=lambda r: (r["model"] != "teacher", not r["plain"], r["method"], r["sampler"], r["steps"]))
    references = [r for r in rows if r["model"] == "teacher" and r["method"] == "euler" and r["plain"] and r["steps"] == args.reference_steps]
    if not references:
        raise SystemExit(f"no teacher run with {args.reference_steps} uniform Euler steps: the reference of the ratio")
    reference = references[0]
    markdown = table(rows, reference)
    print(markdown)
    if not args.write:
        return
    plot(rows, reference, PLOT)
    commands = Path(args.commands).read_text().strip() if args.commands else ""
    notes = Path(args.notes).read_text().strip() if args.notes else ""
    this = " ".join(["python bench/few_step.py", *sys.argv[1:]])
    write_section("few_step", f"""## Few-step sampling: samplers and a reflow student (issue 4)

Commands (CPU, 2 cores shared with other jobs, every one under `OMP_NUM_THREADS=1 nice -n 10`; the table and
plot: `{this}`):

```bash
{commands}
```

{reference['clips']} test clips, Griffin-Lim, watermark on, seed 0. NFE = velocity evaluations per clip (Heun and
midpoint: 2 per step); network passes = NFE x 2 with CFG (the teacher, CFG 3), x 1 without (the student,
CFG 1). RTF includes Griffin-Lim and was measured while the load on the shared CPU changed from run to run:
it does not rank the samplers (network passes do).
Ratio = onset F1 / the teacher's {reference['steps']}-step Euler onset F1 ({reference['metrics']['sync/onset_f1']:.3f}; ceiling
{reference['metrics']['ref/gt_onset_f1']:.3f}, mismatched-video floor {reference['metrics']['ref/mismatched_onset_f1']:.3f}).

{markdown}

![onset F1 vs network passes](few_step_f1_vs_nfe.png)

{notes}""")
    print(f"wrote the few_step section and {PLOT}")


if __name__ == "__main__":
    main()
