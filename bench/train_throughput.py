"""Training throughput of the V2A denoiser stage: steps/s and clips/s per model size (and bf16 MFU on GPU).

    python bench/train_throughput.py [--sizes tiny small] [--steps 20] [--batch 32] [--write]

Times optimizer steps (forward, backward, AdamW, EMA) on batches of the benchmark's shape held in
memory, so it measures the model, not the disk. ``--loader`` also times the real shard loader alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.conf import CONFIG_DIR  # noqa: E402

# Dense bf16 peak FLOP/s used for MFU (per device); extend for other GPUs.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def build(size: str, device: torch.device):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=v2a_tiny", f"model/denoiser={size}", "paths.root_dir=/tmp",
                                           "paths.output_dir=/tmp/bench"])
    module = instantiate(cfg.model).to(device)
    return module, instantiate(cfg.data.spec)


def step_flops(module, batch) -> float:
    with FlopCounterMode(display=False) as counter:
        loss = module._loss(module.net, batch, torch.Generator().manual_seed(0))
        loss.backward()
    module.net.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def time_steps(size: str, steps: int, batch_size: int, device: torch.device) -> dict:
    module, spec = build(size, device)
    optimizer = torch.optim.AdamW(module.net.parameters(), lr=1e-4)
    batch = {"frames": torch.randint(0, 255, (batch_size, spec.n_video_frames, 3, spec.image_size, spec.image_size),
                                     dtype=torch.uint8, device=device),
             "audio": 0.1 * torch.randn(batch_size, spec.n_samples, device=device)}
    generator = torch.Generator().manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def one_step():
        with autocast:
            loss = module._loss(module.net, batch, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.ema.update_parameters(module.net)

    for _ in range(3):  # warm-up
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    result = {"size": size, "params_m": sum(p.numel() for p in module.net.parameters()) / 1e6, "batch": batch_size,
              "step_s": seconds, "steps_per_s": 1 / seconds, "clips_per_s": batch_size / seconds, "mfu": None}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        if peak:
            result["mfu"] = step_flops(module, batch) / seconds / peak
    return result


def time_loader(root: str, batches: int, batch_size: int) -> float:
    from v2a.data.datamodule import ShardDataModule
    from v2a.shapes import ClipSpec

    loader = ShardDataModule(root=root, spec=ClipSpec(), batch_size=batch_size, num_workers=0).train_dataloader()
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--loader", default=None, help="shard root to time the data loader alone")
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for size in args.sizes:
        r = time_steps(size, args.steps, args.batch, device)
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a (CPU)"
        rows.append(f"| {size} | {r['params_m']:.1f} M | {r['batch']} | {r['step_s'] * 1000:.0f} ms | "
                    f"{r['steps_per_s']:.2f} | {r['clips_per_s']:.0f} | {mfu} |")
        print(rows[-1], flush=True)
    loader_line = ""
    if args.loader:
        rate = time_loader(args.loader, 10, args.batch)
        loader_line = f"\nShard loader alone (decode + batch, 1 process, `--loader {args.loader}`): {rate:.0f} clips/s.\n"
        print(loader_line.strip())
    command = "python bench/train_throughput.py " + " ".join(sys.argv[1:])
    table = "\n".join([
        "## Training throughput (denoiser stage)", "",
        f"Command: `{command}` — {machine()}.", "",
        "| size | parameters | batch | time/step | steps/s | clips/s | bf16 MFU |",
        "| --- | --- | --- | --- | --- | --- | --- |", *rows, loader_line])
    if args.write:
        write_section("throughput", table)


if __name__ == "__main__":
    main()
