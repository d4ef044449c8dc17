"""Per-step cost and whole sampling of the denoiser: today's token rate against a cheaper one (issue 17).

    .venv/bin/python bench/step_cost.py [--sizes tiny small] [--variants 2:tanh 4:tanh 4:none] [--steps 8 3]
        [--repeats 7] [--threads 2] [--write]

For each denoiser size (``model/denoiser=tiny|small``) and variant ``K:GELU`` — the audio-token rate
(``spec.mel_frames_per_token``: 2 mel frames a token = 50 tokens/s, the former networks'; 4 = 25 tokens/s) and the
MLP's GELU (``model.denoiser.gelu``: the former ``tanh`` approximation or the exact ``none``) — a V2A pipeline is
built from the configs with random weights (``experiment=v2a_tiny``, its visual encoder and sampler), and timed
on an 8 s clip as generation runs it:
5 training-length windows in one batch, CFG as one batched pass (batch 10):

- **per step**: one denoiser forward of that batch (the network's cost per sampling step);
- **whole sampling**: ``V2APipeline.guided_velocity`` (conditions encoded once) integrated by the Euler sampler
  with each ``--steps`` count, from the same noise.

The runs alternate between configurations, medians of ``--repeats``. Ratios are to the former network of the same
size (2 mel frames a token, tanh GELU) and, for whole sampling, to its former default (8 steps).
``--write`` puts the tables into the "step_cost" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.report import load_average, machine, write_section  # noqa: E402

CLIP_S = 8.0
TODAY, TODAY_STEPS = (2, "tanh"), 8


def build(size: str, rate: int, gelu: str, steps: int):
    """A randomly initialised pipeline of ``experiment=v2a_tiny`` with that denoiser size, token rate, GELU and steps."""
    from hydra import compose, initialize_config_dir

    from v2a.conf import CONFIG_DIR
    from v2a.pipeline.loading import build_pipeline

    overrides = ["experiment=v2a_tiny", f"model/denoiser={size}", f"spec.mel_frames_per_token={rate}",
                 f"model.denoiser.gelu={gelu}", f"model.sampler.steps={steps}", "model/vocoder=griffin_lim"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    torch.manual_seed(0)
    pipe = build_pipeline(cfg.model).eval()
    for parameter in pipe.net.denoiser.parameters():  # zero-initialised output layers would skip no work, but
        torch.nn.init.normal_(parameter, std=0.02)      # random weights keep every value realistic
    return pipe


def windows(spec) -> int:
    """Training-length windows generation cuts an 8 s clip into (0.5 s overlap, as ``v2a generate``)."""
    from v2a.pipeline.windowed import window_starts

    return len(window_starts(round(CLIP_S * spec.fps), spec.n_video_frames, round(0.5 * spec.fps)))


def gelu_timing(configs: list[tuple], repeats: int = 200) -> str:
    """The MLP activation alone, both GELUs alternating, on the hidden layer of the first configuration's batch."""
    import torch.nn.functional as F

    x = torch.randn(2 * 5, 50, 512)
    times: dict[str, list[float]] = {"tanh": [], "none": []}
    for _ in range(repeats):
        for approximate in times:
            began = time.perf_counter()
            F.gelu(x, approximate=approximate)
            times[approximate].append(time.perf_counter() - began)
    tanh, exact = (1000 * statistics.median(times[k]) for k in ("tanh", "none"))
    return (f"The GELU alone on a [10, 50, 512] tensor (tiny's MLP at 25 tokens/s), medians of {repeats}: tanh "
            f"approximation {tanh:.3f} ms, exact {exact:.3f} ms ({tanh / exact:.1f}x).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--variants", nargs="+", default=["2:tanh", "4:tanh", "4:none"],
                        help="K:GELU: mel frames per audio token and the MLP's GELU (tanh or none)")
    parser.add_argument("--steps", nargs="+", type=int, default=[8, 3], help="Euler steps for whole sampling")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [(int(v.split(":")[0]), v.split(":")[1]) for v in args.variants]
    configs = [(size, *variant) for size in args.sizes for variant in variants]
    pipes = {key: build(*key, steps=TODAY_STEPS) for key in configs}
    g = torch.Generator().manual_seed(0)
    inputs = {}
    for key, pipe in pipes.items():
        spec = pipe.spec
        n = windows(spec)
        frames = torch.randint(0, 255, (n, spec.n_video_frames, 3, spec.image_size, spec.image_size), generator=g,
                               dtype=torch.uint8)
        noise = torch.randn(n, spec.n_mels, spec.n_mel_frames, generator=g)
        with torch.no_grad():
            cond = pipe.net(frames=frames)
        inputs[key] = (frames, noise, cond)
    forward_ms: dict[tuple, list[float]] = {key: [] for key in configs}
    sampling_s: dict[tuple, list[float]] = {(*key, s): [] for key in configs for s in args.steps}

    @torch.no_grad()
    def one_forward(key) -> None:
        pipe, (_, noise, cond) = pipes[key], inputs[key]
        batch = noise.shape[0]
        keep = torch.cat([torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)])
        both = {k: torch.cat([v, v]) if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
        x, t = torch.cat([noise, noise]), torch.full((2 * batch,), 0.5)
        began = time.perf_counter()
        pipe.net(x, t, both, keep)
        forward_ms[key].append(1000 * (time.perf_counter() - began))

    @torch.no_grad()
    def sampling(key, steps: int) -> None:
        pipe, (frames, noise, _) = pipes[key], inputs[key]
        pipe.sampler.steps = steps
        began = time.perf_counter()
        pipe.sampler(pipe.guided_velocity(frames), noise)
        sampling_s[(*key, steps)].append(time.perf_counter() - began)

    for key in configs:  # warm-up
        one_forward(key)
        forward_ms[key].clear()
    for _ in range(args.repeats):
        for key in configs:
            one_forward(key)
            for steps in args.steps:
                sampling(key, steps)

    def params(key) -> float:
        return sum(p.numel() for p in pipes[key].net.denoiser.parameters()) / 1e6

    median = statistics.median
    lines = ["| denoiser | mel frames / token (tokens/s) | GELU | parameters per step | ms / forward (batch "
             f"{2 * windows(pipes[configs[0]].spec)}) | vs the former network of that size |",
             "| --- | --- | --- | --- | --- | --- |"]
    for key in configs:
        today = (key[0], *TODAY)
        ratio = median(forward_ms[key]) / median(forward_ms[today]) if today in forward_ms else float("nan")
        lines.append(f"| {key[0]} | {key[1]} ({pipes[key].spec.token_rate}) | {key[2]} | {params(key):.2f} M | "
                     f"{median(forward_ms[key]):.1f} | **{ratio:.3f}x** |")
    lines += ["", "| denoiser | mel frames / token | GELU | Euler steps | whole sampling of an 8 s clip (ms) | vs the "
              f"former default ({TODAY[0]} mel frames / token, {TODAY[1]}, {TODAY_STEPS} steps) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for key in configs:
        base = sampling_s.get((key[0], *TODAY, TODAY_STEPS))
        for steps in args.steps:
            values = sampling_s[(*key, steps)]
            ratio = median(values) / median(base) if base else float("nan")
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {steps} | {1000 * median(values):.0f} | "
                         f"**{ratio:.2f}x** |")
    lines += ["", gelu_timing(configs)]
    table = "\n".join(lines)
    load = load_average()
    print(table, load, sep="\n")
    if args.write:
        command = ".venv/bin/python bench/step_cost.py " + shlex.join(sys.argv[1:])
        write_section("step_cost", "\n".join([
            "## Per-step cost and whole sampling: a cheaper audio-token rate (issue 17)", "",
            f"`{command}` — {machine()}; {load}. Random weights, the configs' networks "
            f"(`experiment=v2a_tiny`, `model/denoiser=SIZE`, `spec.mel_frames_per_token=K`, `model.denoiser.gelu=G`); "
            f"an {CLIP_S:.0f} s clip as "
            f"generation runs it ({windows(pipes[configs[0]].spec)} windows in one batch, CFG as one batched pass); "
            f"configurations alternating, medians of {args.repeats}.", "", table]))


if __name__ == "__main__":
    main()
