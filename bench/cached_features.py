"""Training throughput: cached backbone features vs decode + backbone every step, beside the from-scratch encoder.

    python bench/cached_features.py [--root data/synthetic] [--clips 16] [--batch 4] [--steps 3] [--write]

Builds a small root from the benchmark's first clips (``--clips`` train, a quarter as many val/test), extracts
EfficientNet-Lite0 features into it with ``data_prep/extract_features.py`` (224 px, the real ImageNet weights),
then times end-to-end training steps (the real shard loader in this process, forward, backward, AdamW, EMA) of
``experiment=v2a_tiny`` with three visual encoders at the same batch size:

- ``frame_cnn``: the from-scratch CNN on decoded 32 px frames;
- ``efficientnet_lite0``, decode + backbone: frames decoded and the frozen backbone run in every step;
- ``efficientnet_lite0``, cached: the loader reads the features, no video is decoded, the backbone never runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.conf import CONFIG_DIR  # noqa: E402
from v2a.data.frames_npy import tar_samples  # noqa: E402
from v2a.data.shard_writer import read_index, record_shard, shard_urls, write_index, write_shard  # noqa: E402


def subset_root(src: Path, out: Path, clips: dict[str, int]) -> Path:
    """The first ``clips[split]`` clips of each split of ``src`` as a shard root (one shard per split)."""
    for split, count in clips.items():
        folder = out / split
        if read_index(folder)["samples"] == count:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        samples = []
        for url in shard_urls(src / split):
            samples += [s for _, s in zip(range(count - len(samples)), tar_samples(Path(url)), strict=False)]
            if len(samples) >= count:
                break
        index = {**read_index(src / split), "shards": [], "samples": 0}
        index.pop("visual_features", None)
        write_index(folder, index)
        shard = folder / f"{split}-000000.tar"
        record_shard(folder, index, shard, write_shard(shard, samples))
    return out


def compose_cfg(root: Path, encoder: str, batch: int):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["experiment=v2a_tiny", f"model/visual_encoder={encoder}",
                                            f"data.root={root}", f"data.batch_size={batch}", "data.num_workers=0",
                                            "data.shuffle_buffer=8", "data.samples_per_epoch=100000",
                                            "paths.root_dir=/tmp/bench_cached",
                                            "paths.output_dir=/tmp/bench_cached/run"])


def time_training(root: Path, encoder: str, batch: int, steps: int, cached: bool) -> dict:
    """clips/s of full training steps, the loader included (one warm-up step, then ``steps`` timed)."""
    cfg = compose_cfg(root, encoder, batch)
    module = instantiate(cfg.model)
    if not cached:
        cfg.data.visual_features = None   # the loader decodes frames, the model runs its backbone
    data = instantiate(cfg.data)
    loader = iter(data.train_dataloader())
    optimizer = torch.optim.AdamW([p for p in module.net.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    seen = set()

    def one_step() -> None:
        batch_ = next(loader)
        seen.update(k for k in ("frames", "visual_features") if k in batch_)
        loss = module._loss(module.net, batch_, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.ema.update_parameters(module.net)

    one_step()   # warm-up (and the loader's first shard open)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    seconds = (time.perf_counter() - start) / steps
    return {"step_s": seconds, "clips_per_s": batch / seconds, "inputs": sorted(seen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data/synthetic")
    parser.add_argument("--out", default="outputs/bench_cached_features")
    parser.add_argument("--clips", type=int, default=16, help="train clips in the small root")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cached-steps", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    root = subset_root(ROOT / args.root, ROOT / args.out / "data",
                       {"train": args.clips, "val": max(4, args.clips // 4), "test": max(4, args.clips // 4)})
    start = time.perf_counter()
    extract = [sys.executable, "data_prep/extract_features.py", f"root={root}",
               f"num_threads={torch.get_num_threads()}", "model/visual_encoder=efficientnet_lite0"]
    subprocess.run(extract, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    extract_s = time.perf_counter() - start
    n_clips = sum(read_index(root / s)["samples"] for s in ("train", "val", "test"))
    rows = []
    for label, encoder, cached, steps in (("frame_cnn (from scratch), decoded 32 px frames", "frame_cnn", False, args.cached_steps),
                                          ("efficientnet_lite0, decode + backbone every step", "efficientnet_lite0", False, args.steps),
                                          ("efficientnet_lite0, cached features", "efficientnet_lite0", True, args.cached_steps)):
        r = time_training(root, encoder, args.batch, steps, cached)
        rows.append((label, r))
        print(f"{label}: {r['step_s'] * 1000:.0f} ms/step, {r['clips_per_s']:.2f} clips/s (batch reads {r['inputs']})",
              flush=True)
    base = rows[1][1]["clips_per_s"]
    load = os.getloadavg()[0]
    command = "python bench/cached_features.py " + " ".join(sys.argv[1:])
    table = "\n".join([
        "## Cached visual features: training throughput (issue \"Train like the field\", part 2)", "",
        f"Command: `{command}` — {machine()}, load average {load:.1f} at the end (a shared 2-core machine: "
        "compare rows, not absolute values).", "",
        f"Extraction (`data_prep/extract_features.py`, EfficientNet-Lite0 at 224 px, real weights): {n_clips} clips "
        f"in {extract_s:.0f} s ({n_clips / extract_s:.2f} clips/s, 50 frames each, process start included).", "",
        f"Training steps of `experiment=v2a_tiny` (batch {args.batch}, loader in the process, forward + backward + "
        "AdamW + EMA; one warm-up step):", "",
        "| visual encoder, input | time/step | clips/s | vs decode + backbone |",
        "| --- | --- | --- | --- |",
        *[f"| {label} | {r['step_s'] * 1000:.0f} ms | {r['clips_per_s']:.2f} | {r['clips_per_s'] / base:.1f} x |"
          for label, r in rows]])
    print(table)
    if args.write:
        write_section("cached_features", table)


if __name__ == "__main__":
    main()
