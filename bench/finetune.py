"""Fine-tuning on your own footage (experiment=finetune): the impacts model on a repainted material set.

    python data_prep/make_synthetic.py --config-name synthetic_recoloured        # 300 / 50 / 100 clips, seconds
    OMP_NUM_THREADS=1 python bench/finetune.py --init outputs/v2a_tiny/<time>/checkpoints/step_0000500.ckpt \
        --freeze encoders --freeze none --steps 200 --write

The repainted set (v2a/conf/data_prep/synthetic_recoloured.yaml) has the benchmark's four materials and sounds,
each shown in a colour the model never saw. For each ``--freeze`` setting the script runs the real command
(``python train.py experiment=finetune finetune.init=INIT data.root=NEW ...``), then scores the init and the
fine-tuned export on the repainted test split (what fine-tuning should teach) and on the benchmark's test split
(what it should keep): the material accuracy of generated audio, and the run's held-out losses.

Material accuracy: the judge is a softmax regression on log-mel profiles (the mean of the loudest fifth of the
frames and the mean of all), fitted on the single-material clips of the benchmark's train split; a generated clip
is a hit when the judged material is one of the clip's materials (as evaluate.py's ``quality/material_acc``).
It reads the generated mel directly (no vocoder): cheaper than evaluate.py with the audio classifier, which
needs a trained classifier export. Its accuracy on the real test audio is the ceiling given in the table.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine, write_section  # noqa: E402
from v2a.data.streams import split_batches  # noqa: E402
from v2a.evaluation.labels import clip_labels  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MATERIALS = ["metal", "wood", "glass", "rubber"]


def profiles(mel: torch.Tensor) -> torch.Tensor:
    """Normalised log-mel [B, M, F] -> [B, 2M]: the mean of the loudest fifth of the frames, and the mean of all."""
    energy = mel.mean(dim=1)
    k = max(1, mel.shape[-1] // 5)
    top = energy.topk(k, dim=-1).indices
    loud = torch.gather(mel, 2, top[:, None, :].expand(-1, mel.shape[1], -1)).mean(-1)
    return torch.cat([loud, mel.mean(-1)], dim=1)


class MaterialJudge:
    """Softmax regression from :func:`profiles` to the material of single-material clips."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, steps: int = 500) -> None:
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        x = (features - self.mean) / self.std
        torch.manual_seed(0)   # the same judge every run
        self.layer = torch.nn.Linear(x.shape[1], len(MATERIALS))
        optimizer = torch.optim.Adam(self.layer.parameters(), lr=0.05, weight_decay=1e-3)
        with torch.enable_grad():   # fitted inside fit_judge's no_grad
            for _ in range(steps):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(self.layer(x), labels).backward()
                optimizer.step()

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> list[str]:
        return [MATERIALS[i] for i in self.layer((profiles(mel) - self.mean) / self.std).argmax(-1).tolist()]


def accuracy(judged: list[str], metas: list[dict]) -> float:
    hits = [name in clip_labels(meta, "material") for name, meta in zip(judged, metas, strict=True)]
    return sum(hits) / len(hits)


def load(root: Path, split: str, clips: int, spec) -> list[dict]:
    return list(split_batches(root, split, spec, 25, clips))


@torch.no_grad()
def fit_judge(pipeline: V2APipeline, root: Path, clips: int) -> MaterialJudge:
    features, labels = [], []
    for batch in split_batches(root, "train", pipeline.spec, 50, clips):
        mel = pipeline.features(batch["audio"])
        for row, meta in enumerate(batch["meta"]):
            present = clip_labels(meta, "material")
            if len(present) == 1:
                features.append(profiles(mel[row:row + 1])[0])
                labels.append(MATERIALS.index(present.pop()))
    return MaterialJudge(torch.stack(features), torch.tensor(labels))


@torch.no_grad()
def judged(judge: MaterialJudge, batches: list[dict], pipeline: V2APipeline | None, seed: int) -> list[str]:
    """The judged material of each clip: its real audio (``pipeline`` None: features only) or a generation."""
    names = []
    for i, batch in enumerate(batches):
        if pipeline is None:
            mel = real_features(batch["audio"])
        else:
            mel = pipeline.generate_mel(batch["frames"], generator=torch.Generator().manual_seed(seed + i))
        names += judge(mel)
    return names


real_features = None   # the init's LogMel, set in main()


def finetune(init: str, data: Path, freeze: str, steps: int, out: Path, overrides: list[str]) -> tuple[list[str], float]:
    """Run the real command (``overrides``: more train.py overrides); returns it and its wall time."""
    freeze_list = "[]" if freeze == "none" else f"[{freeze}]"
    command = [sys.executable, "train.py", "experiment=finetune", f"finetune.init={init}", f"data.root={data}",
               f"finetune.freeze={freeze_list}", f"trainer.max_steps={steps}", "trainer.enable_progress_bar=false",
               "callbacks.demo_samples=null", *overrides, f"hydra.run.dir={out}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    return command, time.perf_counter() - start


def last_logged(run: Path) -> dict[str, float]:
    (path,) = run.glob("csv/**/metrics.csv")
    values: dict[str, float] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


def main() -> None:
    global real_features
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", default="outputs/v2a_tiny/2026-12-06_02-04-50/checkpoints/step_0000500.ckpt")
    parser.add_argument("--new", type=Path, default=Path("data/synthetic_recoloured"))
    parser.add_argument("--old", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--freeze", action="append", help="a finetune.freeze list (comma-separated) or none; repeatable")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--clips", type=int, default=100, help="test clips of each set")
    parser.add_argument("--judge-clips", type=int, default=800, help="benchmark train clips the judge is fitted on")
    parser.add_argument("--override", action="append", default=[], help="a train.py override for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/finetune_bench"))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    load_before = os.getloadavg()
    started = time.perf_counter()

    init = V2APipeline.from_pretrained(args.init)
    real_features = init.features
    judge = fit_judge(init, args.old, args.judge_clips)
    sets = {"new": load(args.new, "test", args.clips, init.spec), "old": load(args.old, "test", args.clips, init.spec)}
    metas = {name: [m for b in batches for m in b["meta"]] for name, batches in sets.items()}
    score = {name: lambda p, n=name: accuracy(judged(judge, sets[n], p, args.seed), metas[n]) for name in sets}
    ceiling = {name: score[name](None) for name in sets}
    before = {name: score[name](init) for name in sets}
    print(f"judge on real audio {ceiling}; init {before}", flush=True)

    rows, commands = [], []
    for freeze in args.freeze or ["encoders"]:
        run = args.out / (freeze.replace(",", "+") + "".join("_" + o.split(".")[-1].replace("=", "_")
                                                              for o in args.override))
        command, seconds = finetune(args.init, args.new, freeze, args.steps, run, args.override)
        commands.append(" ".join(shlex.quote(c) for c in ["python", *command[1:]]))
        tuned = V2APipeline.from_pretrained(run / "export")
        after = {name: score[name](tuned) for name in sets}
        logged = last_logged(run)
        rows.append({"freeze": freeze, "after": after, "seconds": seconds, "logged": logged})
        print(f"freeze {freeze}: {after}, {seconds:.0f} s, {logged}", flush=True)

    load_after = os.getloadavg()
    lines = [f"Machine: {machine()}; load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end; "
             f"{(time.perf_counter() - started) / 60:.1f} min in all.", "",
             "```", "python data_prep/make_synthetic.py --config-name synthetic_recoloured",
             f"OMP_NUM_THREADS={torch.get_num_threads()} python bench/finetune.py --init {args.init} "
             + " ".join(f"--freeze {f}" for f in args.freeze or ["encoders"]) + f" --steps {args.steps}"
             + "".join(f" --override {o}" for o in args.override) + " --write",
             "# each fine-tuning run:", *commands, "```", "",
             f"Material accuracy of generated audio ({args.clips} test clips per set, 8 Euler steps, the model's CFG; "
             f"hit = the judged material is one of the clip's). The judge reads real audio at "
             f"{ceiling['new']:.2f} (repainted) / {ceiling['old']:.2f} (benchmark).", "",
             "| model | freeze | steps | repainted set: material acc | benchmark: material acc | benchmark acc kept "
             "| val/loss (repainted) before → after | original val loss before → after (kept) | fine-tune time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| init ({Path(args.init).name}) | — | 0 | {before['new']:.2f} | {before['old']:.2f} | — | — | — | — |"]
    for r in rows:
        g = r["logged"]
        kept = r["after"]["old"] / before["old"] if before["old"] else float("nan")
        lines.append(
            f"| fine-tuned | {r['freeze']} | {int(g.get('step', args.steps - 1)) + 1} | {r['after']['new']:.2f} | "
            f"{r['after']['old']:.2f} | {kept:.0%} | {g['finetune/val_loss_before']:.4f} → {g['val/loss']:.4f} | "
            f"{g['finetune/original_val_loss_before']:.4f} → {g['finetune/original_val_loss']:.4f} "
            f"({g['finetune/original_kept']:.3f}) | {r['seconds'] / 60:.1f} min |")
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        name = "finetune" + "".join("_" + o.replace("=", "_").replace(".", "_") for o in args.override)
        title = "## Fine-tuning on new footage: the impacts model on a repainted material set (issue 19)"
        write_section(name, title + "".join(f", {o}" for o in args.override) + "\n\n" + markdown)


if __name__ == "__main__":
    main()
