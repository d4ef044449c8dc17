"""Sampling on the CPU in fp32, under bf16 autocast, and with ``torch.compile`` on the denoiser (issue 17).

    .venv/bin/python bench/cpu_precision.py [--ckpt CKPT] [--batch 1] [--repeats 5] [--threads 2] [--write]

One clip's sampling loop (``V2APipeline.guided_velocity`` integrated by the model's sampler, CFG as one batched
pass) from the same noise, three ways, the runs alternating: eager fp32 (what generation does), eager under
``torch.autocast("cpu", dtype=torch.bfloat16)``, and fp32 with the denoiser compiled by ``torch.compile`` (its
compile time reported apart). Medians, and each result's largest difference from fp32 on the normalised log-mel.
``--write`` puts the table into the "cpu_precision" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.generate_long import newest_checkpoint  # noqa: E402
from bench.report import load_average, machine, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint or export (default: newest outputs/**/last.ckpt)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from v2a import V2APipeline

    ckpt = args.ckpt or newest_checkpoint()
    pipe = V2APipeline.from_pretrained(ckpt)
    spec = pipe.spec
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (args.batch, spec.n_video_frames, 3, spec.image_size, spec.image_size), generator=g,
                           dtype=torch.uint8)
    noise = torch.randn(args.batch, spec.n_mels, spec.n_mel_frames, generator=g)
    eager = pipe.net.denoiser

    @torch.no_grad()
    def sample(autocast: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext():
            return pipe.sampler(pipe.guided_velocity(frames), noise).float()

    def run(name: str) -> torch.Tensor:
        pipe.net.denoiser = compiled if name == "compiled" else eager
        return sample(name == "bf16")

    reference = run("fp32")
    started = time.perf_counter()
    compiled = torch.compile(eager)
    try:
        first = run("compiled")  # the first call compiles
        compile_s, compile_error = time.perf_counter() - started, None
    except Exception as error:  # no C++ toolchain, or an unsupported op: reported, not fatal
        compile_s, compile_error, first = None, f"{type(error).__name__}: {str(error).splitlines()[0][:120]}", None
    names = ["fp32", "bf16"] + (["compiled"] if compile_error is None else [])
    times: dict[str, list[float]] = {name: [] for name in names}
    outputs = {"fp32": reference, "compiled": first}
    for _ in range(args.repeats):
        for name in names:
            began = time.perf_counter()
            outputs[name] = run(name)
            times[name].append(time.perf_counter() - began)
    pipe.net.denoiser = eager
    base = statistics.median(times["fp32"])
    labels = {"fp32": "eager fp32 (generation's default)", "bf16": "eager, bf16 autocast",
              "compiled": "torch.compile(denoiser), fp32"}
    lines = ["| sampling | median (ms) | vs fp32 | max abs difference from fp32 (normalised log-mel) |",
             "| --- | --- | --- | --- |"]
    for name in names:
        median = statistics.median(times[name])
        difference = float((outputs[name] - reference).abs().max())
        lines.append(f"| {labels[name]} | {1000 * median:.0f} | {base / median:.2f}x | {difference:.1e} |")
    if compile_error is not None:
        lines.append(f"| torch.compile(denoiser) | failed: {compile_error} | — | — |")
    load = load_average()
    notes = [f"Compile time of the first call: {compile_s:.1f} s." if compile_s is not None else "",
             f"Model: `{ckpt}` ({sum(p.numel() for p in eager.parameters()) / 1e6:.2f} M denoiser parameters), "
             f"{spec.n_mel_frames} mel frames, {pipe.sampler.steps} {pipe.sampler.method} steps, CFG {pipe.cfg_scale}, "
             f"batch {args.batch}; {load}."]
    table = "\n".join(lines)
    print(table, *notes, sep="\n")
    if args.write:
        command = f"python bench/cpu_precision.py --ckpt {ckpt} --batch {args.batch} --repeats {args.repeats} " \
                  f"--threads {args.threads}"
        write_section("cpu_precision", "\n".join([
            "## Sampling on the CPU: fp32, bf16 autocast, torch.compile (issue 17)", "",
            f"`{command}` — {machine()}", "", table, "", *filter(None, notes)]))


if __name__ == "__main__":
    main()
