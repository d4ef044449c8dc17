"""Wall time of `generate.py` on one clip, this tree against another checkout, and the cost of importing Lightning.

    python bench/generate_startup.py --video clip.mp4 --ckpt RUN/export --baseline /tmp/old [--runs 3] [--write]

Each run is a fresh process (`python generate.py video=... ckpt=... out=...`, one torch thread), alternating
between the two trees so both see the same machine load; the numbers are the median of ``--runs``. The
baseline tree is imported through PYTHONPATH, so the same virtual environment serves both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed in {cwd}:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def generate_command(tree: Path, video: str, ckpt: str, out: Path) -> list[str]:
    return [sys.executable, str(tree / "generate.py"), f"video={video}", f"ckpt={ckpt}", f"out={out}",
            "num_threads=1", f"hydra.run.dir={out.parent / 'hydra'}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True)
    parser.add_argument("--ckpt", required=True, help="an export or checkpoint both trees can load")
    parser.add_argument("--baseline", required=True, help="another checkout of the repository (e.g. git worktree)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    trees = {"this tree": ROOT, "baseline": Path(args.baseline).resolve()}
    times: dict[str, list[float]] = {name: [] for name in trees}
    imports: list[float] = []   # importing Lightning on top of torch (torch is imported by both trees)
    with tempfile.TemporaryDirectory() as work:
        for run in range(args.runs):
            for name, tree in trees.items():
                out = Path(work) / f"{name.replace(' ', '_')}_{run}" / "out.mp4"
                times[name].append(timed(generate_command(tree, args.video, args.ckpt, out), tree))
            with_lightning = timed([sys.executable, "-c", "import torch, pytorch_lightning"], ROOT)
            imports.append(with_lightning - timed([sys.executable, "-c", "import torch"], ROOT))
    median = {name: statistics.median(values) for name, values in times.items()}
    lightning = statistics.median(imports)
    rows = [f"| {name} | {median[name]:.2f} s | {', '.join(f'{v:.2f}' for v in times[name])} |" for name in trees]
    command = (f"python bench/generate_startup.py --video {args.video} --ckpt {args.ckpt} --baseline {args.baseline} "
               f"--runs {args.runs}")
    markdown = "\n".join([
        "## generate.py wall time: inference without Lightning (issue 16)", "",
        f"`{command}` — {machine()}; each run a fresh process, one torch thread, the trees alternating.", "",
        "| tree | median wall | runs |", "| --- | --- | --- |", *rows, "",
        f"Importing `pytorch_lightning` after `torch`: {lightning:.2f} s (median of {len(imports)}). Saved per call: "
        f"{median['baseline'] - median['this tree']:.2f} s "
        f"({'at least' if median['baseline'] - median['this tree'] >= lightning else 'less than'} the import time).",
    ])
    print(markdown)
    if args.write:
        write_section("generate_startup", markdown)


if __name__ == "__main__":
    main()
