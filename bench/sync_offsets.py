"""Offset accuracy of a sync_base checkpoint on held-out clips shifted by known amounts.

    python bench/sync_offsets.py --ckpt outputs/sync_base/checkpoints/last.ckpt --data data/synthetic --write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine, write_section  # noqa: E402
from v2a.checkpoints.sync_model import load_sync_model  # noqa: E402
from v2a.sync.offsets import offset_accuracy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", required=True, help="shard root with a test/ split")
    parser.add_argument("--max-batches", type=int, default=0, help="0: the whole test split")
    parser.add_argument("--write", action="store_true", help="write the 'sync' section of docs/benchmarks.md")
    args = parser.parse_args()

    module = load_sync_model(args.ckpt)
    config = OmegaConf.create(module.run_config)
    config.data.root = args.data
    data = instantiate(config.data)
    data.setup("test")
    batches = list(data.test_dataloader())
    if args.max_batches:
        batches = batches[: args.max_batches]
    start = time.perf_counter()
    delays = range(-module.max_lag, module.max_lag + 1)
    metrics = offset_accuracy(module, batches, delays)
    metrics["seconds"] = time.perf_counter() - start
    print(json.dumps(metrics, indent=2))
    if args.write:
        command = " ".join(["python bench/sync_offsets.py", *sys.argv[1:]])
        clips = sum(len(b["audio"]) for b in batches)
        write_section("sync", f"""## Sync stage: offset prediction on held-out clips

`{command}` — {machine()}. Checkpoint: `{args.ckpt}`.
Each of {clips} test clips is delayed by every offset in {delays.start}..{delays.stop - 1} video frames
(40 ms each) and the model predicts the delay back.

| metric | value |
|---|---|
| exact offset accuracy | {metrics['sync/offset_acc']:.3f} |
| accuracy within ±1 frame (all clips) | {metrics['sync/offset_acc_1frame']:.3f} |
| accuracy within ±1 frame (clips with an impact in the scored window) | {metrics['sync/offset_acc_1frame_eventful']:.3f} |
| fraction of trials with an impact in the window | {metrics['sync/eventful_fraction']:.3f} |
| trials | {int(metrics['sync/offset_trials'])} |
""")


if __name__ == "__main__":
    main()
