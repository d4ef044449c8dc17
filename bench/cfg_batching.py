"""Classifier-free guidance as one network pass of 2B rows against two passes of B rows (the sampling loop alone).

    .venv/bin/python bench/cfg_batching.py [--ckpt CKPT] [--batches 1 5 8] [--repeats 7] [--write]

Both integrate the same guided velocity (``V2APipeline.guided_velocity`` batches the branches; the reference
calls ``v2a.diffusion.guided_velocity`` with the two branches as separate calls) from the same noise with the
model's sampler; the runs alternate and the medians are compared. ``--write`` puts the table into the
"cfg_batching" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.generate_long import newest_checkpoint  # noqa: E402
from bench.report import load_average, machine, write_section  # noqa: E402


@torch.no_grad()
def measure(pipe, batch: int, repeats: int) -> dict:
    from v2a.diffusion import guided_velocity

    spec, net = pipe.spec, pipe.net
    g = torch.Generator().manual_seed(batch)
    frames = torch.randint(0, 255, (batch, spec.n_video_frames, 3, spec.image_size, spec.image_size), generator=g,
                           dtype=torch.uint8)
    noise = torch.randn(batch, spec.n_mels, spec.n_mel_frames, generator=g)

    def one_pass() -> torch.Tensor:
        return pipe.sampler(pipe.guided_velocity(frames), noise)

    def two_passes() -> torch.Tensor:
        cond, keep = net(frames=frames), torch.ones(batch, dtype=torch.bool)
        velocity = guided_velocity(lambda x, t: net(x, t, cond, keep), lambda x, t: net(x, t, cond, ~keep),
                                   pipe.cfg_scale)
        return pipe.sampler(velocity, noise)

    difference = float((one_pass() - two_passes()).abs().max())
    times: dict[str, list[float]] = {"one": [], "two": []}
    for _ in range(repeats):
        for name, fn in (("one", one_pass), ("two", two_passes)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    one, two = statistics.median(times["one"]), statistics.median(times["two"])
    return {"batch": batch, "one": one, "two": two, "speedup": two / one, "difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint or export (default: newest outputs/**/last.ckpt)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 5, 8])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from v2a import V2APipeline

    ckpt = args.ckpt or newest_checkpoint()
    pipe = V2APipeline.from_pretrained(ckpt)
    rows = [measure(pipe, batch, args.repeats) for batch in args.batches]
    lines = ["| windows per batch (B) | one pass of 2B (ms) | two passes of B (ms) | speed-up | max difference |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['batch']} | {1000 * r['one']:.0f} | {1000 * r['two']:.0f} | {r['speedup']:.2f}x | "
              f"{r['difference']:.1e} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        load = load_average()
        write_section("cfg_batching", "\n".join([
            "## Guidance as one batched pass (V2APipeline.guided_velocity)", "",
            f"Command: `.venv/bin/python bench/cfg_batching.py {' '.join(sys.argv[1:])}`", "",
            f"Checkpoint `{ckpt}`: a whole {pipe.sampler.steps}-step sampling of B training-length windows with the "
            f"model's CFG scale ({pipe.cfg_scale:g}), conditions encoded once. Machine: {machine()}; {load} "
            f"(runs alternate; medians of {args.repeats}).", "", table]))


if __name__ == "__main__":
    main()
