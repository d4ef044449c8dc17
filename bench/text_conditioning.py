"""How much each condition of a text model is used: held-out flow-matching loss with conditions dropped or swapped.

    python bench/text_conditioning.py --ckpt outputs/v2a_text_tiny/demo/checkpoints/last.ckpt --split val --write

Every variant sees the same clips, noise and flow times, so differences come from the conditions alone.
A condition the model uses raises the loss when it is dropped (the learned null) or swapped for another
clip's (a mismatched caption / transcript / video). Transcripts are scored on the clips that have one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine, write_section  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402

VARIANTS = ("all conditions", "prompt dropped", "prompt swapped", "transcript dropped", "transcript swapped",
            "video dropped", "video swapped", "all dropped")


def _swap(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return pair[0].roll(1, dims=0), pair[1].roll(1, dims=0)  # each clip gets its neighbour's text


@torch.no_grad()
def variant_losses(module, batch: dict, draws: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-clip loss [B] of every variant, averaged over ``draws`` (noise, t) draws shared by all variants."""
    net = module.ema.module
    x1 = module.features(batch["audio"])
    text = module.text_conditioning.from_batch(batch)
    frames = batch["frames"]
    b = x1.shape[0]
    on, off = torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)
    conds = {"base": net(frames=frames, text=text)}
    if "prompt" in text:
        conds["prompt swapped"] = {**conds["base"], **net(text={"prompt": _swap(text["prompt"])})}
    if "transcript" in text:
        conds["transcript swapped"] = {**conds["base"], **net(text={"transcript": _swap(text["transcript"])})}
    if net.visual_encoder is not None:
        conds["video swapped"] = {**conds["base"], **net(frames=frames.roll(1, dims=0))}
    plans = {"all conditions": ("base", None), "prompt dropped": ("base", {"prompt": off}),
             "transcript dropped": ("base", {"transcript": off}), "video dropped": ("base", {"video": off}),
             "all dropped": ("base", {"video": off, "prompt": off, "transcript": off})}
    plans.update({name: (name, None) for name in conds if name != "base"})
    totals = {name: torch.zeros(b) for name in plans}
    generator = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        x0 = torch.randn(x1.shape, generator=generator)
        t = module.objective.sample_time(b, generator, torch.device("cpu"))
        xt, target = module.objective.interpolate(x0, x1, t), module.objective.target(x0, x1)
        for name, (cond, keep) in plans.items():
            v = net(xt, t, conds[cond], keep if keep is not None else on)
            totals[name] += ((v - target) ** 2).mean(dim=(1, 2)) / draws
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--draws", type=int, default=4, help="noise / flow-time draws per clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-command", default="", help="how the checkpoint was trained (quoted in the report)")
    parser.add_argument("--write", action="store_true", help="write the 'text-conditioning' section of docs/benchmarks.md")
    args = parser.parse_args()

    module = V2APipeline.from_pretrained(args.ckpt)
    if not module.net.text_streams:
        sys.exit(f"error: {args.ckpt} is a video-only model (no text streams to measure)")
    config = OmegaConf.create(module.run_config)
    data = instantiate(config.data)
    data.setup("validate" if args.split == "val" else "test")
    loader = data.val_dataloader() if args.split == "val" else data.test_dataloader()
    start = time.perf_counter()
    per_clip: dict[str, list[torch.Tensor]] = {}
    has_transcript: list[torch.Tensor] = []
    for index, batch in enumerate(loader):
        for name, losses in variant_losses(module, batch, args.draws, args.seed + index).items():
            per_clip.setdefault(name, []).append(losses)
        has_transcript.append(batch["transcript_mask"].any(dim=1) if "transcript_mask" in batch
                              else torch.zeros(len(batch["audio"]), dtype=torch.bool))
    losses = {name: torch.cat(parts) for name, parts in per_clip.items()}
    speech = torch.cat(has_transcript)
    rows = {name: {"all clips": losses[name].mean().item(),
                   "clips with a transcript": losses[name][speech].mean().item() if speech.any() else float("nan")}
            for name in VARIANTS if name in losses}
    result = {"clips": len(speech), "clips_with_transcript": int(speech.sum()), "seconds": time.perf_counter() - start,
              "loss": rows}
    print(json.dumps(result, indent=2))
    if args.write:
        command = shlex.join(["python", "bench/text_conditioning.py", *sys.argv[1:]])
        base = rows["all conditions"]
        table = "\n".join(f"| {name} | {r['all clips']:.4f} ({r['all clips'] - base['all clips']:+.4f}) | "
                          f"{r['clips with a transcript']:.4f} ({r['clips with a transcript'] - base['clips with a transcript']:+.4f}) |"
                          for name, r in rows.items())
        step = getattr(module, "global_step_loaded", "?")
        trained = f"\nTrained with `{args.train_command}`." if args.train_command else ""
        write_section("text-conditioning", f"""## Text conditioning: held-out loss with each condition dropped or swapped

`{command}` — {machine()}. Checkpoint: `{args.ckpt}` (step {step}).{trained}
Flow-matching loss (EMA weights) on the {args.split} split, {result['clips']} clips ({result['clips_with_transcript']} with a
transcript), {args.draws} shared noise/time draws per clip; in brackets the change from "all conditions".
Dropped = the learned null; swapped = another clip's caption / transcript / video. One checkpoint, one
seed: no significance is claimed for small differences.

| variant | all clips | clips with a transcript |
|---|---|---|
{table}
""")


if __name__ == "__main__":
    main()
