"""A frozen pretrained visual backbone (EfficientNet-Lite0, cached features) beside the from-scratch encoder.

    python bench/pretrained_visual.py --scratch-run RUN_A [RUN_A2 ...] --cached-run RUN_B [RUN_B2 ...] \
        --scratch-eval EVAL_A [EVAL_A2 ...] --cached-eval EVAL_B [EVAL_B2 ...] --timeline TIMES.json --load LOAD.txt \
        [--decode-json DECODE.json] [--subset TEXT] [--conclusion TEXT] [--write]

Reads what the training runs (one per training seed and encoder) and their evaluations left on disk (no training,
no generation here), and writes the section ``pretrained_visual`` of docs/benchmarks.md:

- each run's CSV log (``RUN/csv/version_0/metrics.csv``): ``sys/clips_per_s`` (v2a/training/health.py, every
  logged interval; the table gives the mean over the intervals after the first, which holds the start-up) and the
  step it reached; its ``.hydra/overrides.yaml`` for the command;
- each evaluation's ``metrics.json`` (``python evaluate.py ckpt=... out=... whisper=false plots=0``);
- ``TIMES.json``: ``{"phase": [start, end, note], ...}`` unix seconds of each phase (``extract``,
  ``train_scratch``, ``eval_cached``, ...; the second seed's with the suffix ``_s1``) and ``LOAD.txt``: ``unix_seconds load1 load5 load15`` lines sampled during them, for the
  load average of each phase (a 2-core machine shared with other training runs).

``--decode-json FILE`` adds the decode + backbone row: training steps that decode the frames and run the frozen
backbone every step (what the cache saves), timed once on ``--root`` at the runs' batch size by
``bench/cached_features.py``'s ``time_training`` (one warm-up step, ``--decode-steps`` timed) when FILE is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402

SYNC_KEYS = (("sync/onset_precision", "precision"), ("sync/onset_recall", "recall"),
             ("sync/onset_mae_ms", "MAE ms"), ("sync/onset_ap", "AP"), ("sync/av_align", "AV-Align"))


def throughput(run: Path) -> dict:
    """Mean ``sys/clips_per_s`` over the logged intervals after the first, and the last step logged."""
    rows = list(csv.DictReader(open(run / "csv" / "version_0" / "metrics.csv")))
    clips = [(int(r["step"]), float(r["sys/clips_per_s"])) for r in rows if r.get("sys/clips_per_s")]
    steps = max(int(r["step"]) for r in rows) + 1
    later = [c for _, c in clips[1:]] or [c for _, c in clips]
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    return {"clips_per_s": statistics.fmean(later) if later else float("nan"), "intervals": len(later),
            "steps": steps, "val_loss": val[-1] if val else float("nan")}


def overrides(run: Path) -> str:
    return " ".join(yaml.safe_load(open(run / ".hydra" / "overrides.yaml")))


def load_range(samples: list[tuple[float, float]], start: float, end: float) -> str:
    inside = [load for t, load in samples if start <= t <= end]
    return f"{min(inside):.1f}-{max(inside):.1f}" if inside else "n/a"


def decode_backbone(root: Path, batch: int, steps: int, image_size: int) -> dict:
    """clips/s of training steps that decode frames and run EfficientNet-Lite0 (no cache) at ``image_size``."""
    import os

    from bench import cached_features

    compose = cached_features.compose_cfg

    def compose_at_size(root_, encoder, batch_):
        cfg = compose(root_, encoder, batch_)
        cfg.model.visual_encoder.backbone.image_size = image_size
        return cfg

    cached_features.compose_cfg = compose_at_size
    result = cached_features.time_training(root, "efficientnet_lite0", batch, steps, cached=False)
    return {**result, "batch": batch, "steps": steps, "image_size": image_size, "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch-run", type=Path, nargs="+", required=True, help="one run per training seed")
    parser.add_argument("--cached-run", type=Path, nargs="+", required=True)
    parser.add_argument("--scratch-eval", type=Path, nargs="+", required=True, help="their evaluations, in order")
    parser.add_argument("--cached-eval", type=Path, nargs="+", required=True)
    parser.add_argument("--timeline", type=Path, required=True)
    parser.add_argument("--load", type=Path, required=True)
    parser.add_argument("--extract-command", default="")
    parser.add_argument("--extracted-clips", type=int, default=0)
    parser.add_argument("--subset", default="", help="the data the runs used, in words")
    parser.add_argument("--decode-json", type=Path)
    parser.add_argument("--root", type=Path, default=Path("/tmp/synth_sub"))
    parser.add_argument("--decode-steps", type=int, default=2)
    parser.add_argument("--conclusion", default="", help="what the numbers say, in words")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    decode = None
    if args.decode_json:
        if not args.decode_json.exists():
            import torch
            torch.set_num_threads(1)
            args.decode_json.write_text(json.dumps(decode_backbone(args.root, 32, args.decode_steps, 112), indent=1))
        decode = json.loads(args.decode_json.read_text())

    times = json.loads(args.timeline.read_text())
    samples = [(float(line.split()[0]), float(line.split()[1])) for line in args.load.read_text().splitlines()
               if len(line.split()) >= 2]
    loads = {name: load_range(samples, start, end) for name, (start, end, *_) in times.items()}
    rows, metrics, commands = [], {"scratch": [], "cached": []}, []
    runs = [("scratch", run, ev, i, "`frame_cnn` (from scratch)", "decoded 32 px frames")
            for i, (run, ev) in enumerate(zip(args.scratch_run, args.scratch_eval, strict=True))]
    runs += [("cached", run, ev, i, "`efficientnet_lite0` (ImageNet, frozen)",
              "cached features (32 px frames resized to 112 px)")
             for i, (run, ev) in enumerate(zip(args.cached_run, args.cached_eval, strict=True))]
    for name, run, ev, i, encoder, given in sorted(runs, key=lambda r: (r[3], r[0] != "scratch")):
        suffix = f"_s{i}" if i else ""   # the timeline's phases of the i-th seed
        seed = yaml.safe_load(open(run / ".hydra" / "config.yaml"))["seed"]
        encoder = f"{encoder}, seed {seed}"
        speed = throughput(run)
        m = json.loads((ev / "metrics.json").read_text())["metrics"]
        metrics[name].append((speed, m))
        commands += [f"python train.py {overrides(run)}   # load {loads.get(f'train_{name}{suffix}', 'n/a')}",
                     f"python evaluate.py ckpt={run}/checkpoints/last.ckpt out={ev} whisper=false plots=0"
                     f"   # load {loads.get(f'eval_{name}{suffix}', 'n/a')}"]
        other = ", ".join(f"{label} {m[k]:.3f}" if "ms" not in label else f"{label} {m[k]:.1f}"
                          for k, label in SYNC_KEYS if k in m)
        rows.append(f"| {encoder} | {given} | {speed['steps']} | {speed['clips_per_s']:.1f} | "
                    f"**{m['sync/onset_f1']:.3f}** | {m['ref/gt_onset_f1']:.3f} | {m['ref/mismatched_onset_f1']:.3f} | "
                    f"{other}; mel L1 {m.get('quality/mel_l1', float('nan')):.3f}; val loss {speed['val_loss']:.3f} |")
    if decode:
        rows.append(f"| `efficientnet_lite0`, decode + backbone every step (timed apart, {decode['steps']} steps) | "
                    f"decoded 32 px frames resized to {decode['image_size']} px | - | {decode['clips_per_s']:.2f} | - | - "
                    f"| - | {decode['step_s']:.1f} s a step at batch {decode['batch']}, load {decode['load']:.1f} |")
    extract = times.get("extract")
    extract_line = ""
    if extract and args.extracted_clips:
        seconds = extract[1] - extract[0]
        extract_line = (f"Extraction (once): `{args.extract_command}` — {args.extracted_clips} clips in {seconds / 60:.1f} "
                        f"min, {args.extracted_clips / seconds:.2f} clips/s on one thread, process start included (load "
                        f"{loads['extract']}); stopped once the train shards used here were written (it resumes "
                        "where it stopped).")
    def mean(name: str, key: str) -> float:
        return statistics.fmean(m[key] if key in m else speed[key] for speed, m in metrics[name])

    ratio = mean("cached", "clips_per_s") / mean("scratch", "clips_per_s")
    f1 = {name: mean(name, "sync/onset_f1") for name in metrics}
    seeds = {name: ", ".join(f"{m['sync/onset_f1']:.3f}" for _, m in metrics[name]) for name in metrics}
    markdown = "\n".join([
        "## A pretrained frozen visual backbone vs the from-scratch encoder, equal steps (issue 19)", "",
        f"{machine()}. {args.subset}", "",
        "EfficientNet-Lite0 (ImageNet weights, frozen; trained: its projection and temporal layers) reads the "
        "benchmark's 32 px frames resized to 112 px instead of its native 224: the resize adds no detail the 32 px "
        "source lacks, and the backbone costs about 5 x less a frame (0.69 s vs 3.76 s a 50-frame clip on one "
        "thread). Every run: `experiment=v2a_tiny`, batch 32, the 1,200-step warm-up + cosine schedule "
        "(`model.scheduler.total_steps=1200`) stopped at step 500 (`trainer.max_steps=500`), like the from-scratch "
        "step-500 checkpoint of the onset-matching section; all evaluated the same way on the same 200 test clips "
        "(8 Euler steps, CFG 3, detector calibrated on the 200 val clips). Load averages (1 min, min-max over each "
        "phase) beside each command:", "",
        "```bash", *commands, "```", "",
        "| encoder | input | steps | train clips/s | onset F1 | onset F1 GT ceiling | mismatched floor | other sync metrics |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |", *rows, "",
        f"Train clips/s: the mean of `sys/clips_per_s` over the logged intervals after the first (loader, forward, "
        f"backward, AdamW, EMA; validation excluded): cached / from scratch = {ratio:.2f} x"
        + (f"; cached / decode + backbone = {mean('cached', 'clips_per_s') / decode['clips_per_s']:.0f} x"
           if decode else "") + f" (goal >= 3 x). {extract_line}", "",
        f"Onset F1 on the 200 test clips by training seed: from scratch {seeds['scratch']} (mean {f1['scratch']:.3f}), "
        f"cached pretrained {seeds['cached']} (mean {f1['cached']:.3f}); difference of the means "
        f"{f1['cached'] - f1['scratch']:+.3f}. {args.conclusion}", "",
        "Table: `python bench/pretrained_visual.py --scratch-run RUN... --cached-run RUN... --scratch-eval DIR... "
        "--cached-eval DIR... --timeline TIMES.json --load LOAD.txt --decode-json DECODE.json --write` (reads the "
        "runs' CSV logs and metrics.json; the decode + backbone row is timed once on `--root /tmp/synth_sub`)."])
    print(markdown)
    if args.write:
        write_section("pretrained_visual", markdown)


if __name__ == "__main__":
    main()
