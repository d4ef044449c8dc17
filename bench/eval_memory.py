"""Peak memory of an evaluation against the size of the split (docs/benchmarks.md, "eval_memory").

    python bench/eval_memory.py --work /tmp/eval_memory [--sizes 200 2000] [--write]

Builds a test split of each size with data_prep/make_synthetic.py (the training clip grid: 2 s, 16 kHz,
32x32 frames), trains a 1-step v2a_tiny checkpoint, then evaluates every split in a fresh process and reads
that process's peak resident memory (``ru_maxrss``): 1 sampling step, a 2-iteration Griffin-Lim, no
watermark, no classifier or Whisper, so the number is the evaluation's own bookkeeping. Each split is also
evaluated the way evaluate.py read it before streaming (every batch decoded into a list first:
``--materialize`` in the child), for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCODER = {"_target_": "v2a.models.vocoder.GriffinLimVocoder", "features": "${model.features}", "n_iter": 2}


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True, text=True, **kwargs)


def build_data(work: Path, sizes: list[int]) -> dict[int, Path]:
    roots = {}
    for n in sizes:
        root = work / f"data_{n}"
        if not (root / "test" / "index.json").exists():
            _run(["data_prep/make_synthetic.py", f"out={root}", f"splits.train.clips={48 if n == min(sizes) else 0}",
                  "splits.val.clips=16", f"splits.test.clips={n}", "shard_size=200", "workers=2",
                  f"hydra.run.dir={work / 'hydra' / str(n)}"])
        roots[n] = root
    return roots


def train_checkpoint(work: Path, data: Path) -> Path:
    ckpt = work / "model" / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        _run(["train.py", "experiment=v2a_tiny", f"data.root={data}", "data.batch_size=8", "data.num_workers=0",
              "data.samples_per_epoch=32", "trainer.max_steps=1", "trainer.limit_val_batches=0",
              "trainer.enable_progress_bar=false", "callbacks.demo_samples=null", f"hydra.run.dir={work / 'model'}"])
    return ckpt


def child(args: argparse.Namespace) -> None:
    """Evaluate once; print the peak RSS of this process."""
    import v2a.evaluation.job as job
    from v2a.evaluation.references import iterate_batches

    if args.materialize:  # the former reading: every batch of the split decoded before the first one is used
        job.iterate_batches = lambda *a, **k: iter(list(iterate_batches(*a, **k)))
    start = time.perf_counter()
    metrics = job.evaluate(ckpt=args.ckpt, out=args.out, data=args.data, steps=1, batch_size=50, calibration_clips=16,
                           plots=0, device="cpu", cache_dir=None, whisper="false", watermark=None, vocoder=VOCODER)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"clips": metrics["eval/clips"], "peak_rss_mb": round(peak_mb, 1),
                      "seconds": round(time.perf_counter() - start, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/eval_memory")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--materialize", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    sys.path.insert(0, str(ROOT))
    from bench.report import machine, write_section

    work = Path(args.work)
    roots = build_data(work, args.sizes)
    ckpt = train_checkpoint(work, roots[min(args.sizes)])
    rows = []
    for n in args.sizes:
        for mode in ("streamed", "materialized"):
            command = ["bench/eval_memory.py", "--child", "--ckpt", str(ckpt), "--data", str(roots[n]),
                       "--out", str(work / "eval" / f"{mode}_{n}")] + (["--materialize"] if mode == "materialized" else [])
            result = json.loads(_run(command, env=dict(os.environ, OMP_NUM_THREADS="1")).stdout.strip().splitlines()[-1])
            rows.append({"split": n, "reading": mode, **result})
            print(rows[-1], flush=True)
    base = {r["reading"]: r["peak_rss_mb"] for r in rows if r["split"] == min(args.sizes)}
    load = os.getloadavg()
    lines = ["## Evaluation memory against the split's size (`evaluate.py`, streamed batches)", "",
             f"`python bench/eval_memory.py --work {args.work} --sizes {' '.join(map(str, args.sizes))} --write` — "
             f"{machine()}, OMP_NUM_THREADS=1 per evaluation; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
             "at the end (a shared machine: the seconds include waiting for the CPU; memory does not).", "",
             "Each split (2 s clips, 16 kHz, 32x32 frames; data_prep/make_synthetic.py) is evaluated in a fresh process "
             "with a 1-step v2a_tiny checkpoint: 1 sampling step, a 2-iteration Griffin-Lim, no watermark, no classifier or "
             "Whisper, batch 50, 16 calibration clips. Peak memory is the process's peak resident set (`ru_maxrss`). "
             "*materialized* is the former reading (`tqdm(list(iterate_batches(...)))`: the whole split decoded before "
             "the first batch), measured by the same script for comparison.", "",
             "| test clips | reading | peak RSS (MB) | vs the smallest split | seconds |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = r["peak_rss_mb"] / base[r["reading"]]
        lines.append(f"| {r['split']:,} | {r['reading']} | {r['peak_rss_mb']:,.0f} | {100 * (ratio - 1):+.1f} % | {r['seconds']} |")
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        write_section("eval_memory", markdown)


if __name__ == "__main__":
    main()
