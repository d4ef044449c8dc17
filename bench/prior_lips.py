"""How well a transcript's timing lets the voice follow the lips, without generating: the phoneme prior's loudness.

    python bench/prior_lips.py --export MODEL_EXPORT --aligner ALIGNER_EXPORT \
        --data data/synthetic_dialogue_solo --split val --max-clips 50 \
        --placement segments --placement forced --placement "forced:mouth=16,stiffness=4" [--write]

Sampling starts from the phoneme prior (a regression of the mel from the timed phonemes) at flow time 0.9, so the
generated speech is as loud where the prior is. Per clip this scores the Pearson correlation of the mouth's recorded
opening with the prior's loudness per video frame (the square root of its mel power, summed over bands), for the
recorded phoneme times (oracle) and for each placement of the aligner on the clip's frames. A row costs one forward
pass of the model per batch, not a sampling run and a vocoder, so placements can be compared in seconds; the lip
correlation that ``bench/dialogue.py`` measures on generated audio ranks the same way (docs/benchmarks.md,
dialogue_forced_alignment).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.evaluation.references import iterate_batches  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402
from v2a.pipeline.aligner import LipAligner, placement_from_text  # noqa: E402
from v2a.text.phoneme_timing import mouth_track, recorded_spans  # noqa: E402


def prior_loudness(pipeline: V2APipeline, spans: list, frames: torch.Tensor, prompts: list) -> np.ndarray:
    """The prior's loudness per video frame [B, T] for each clip's timed phonemes."""
    spec = pipeline.spec
    track = pipeline.phoneme_track(spans, len(spans), spec.n_audio_tokens)
    with torch.no_grad():
        mel = pipeline.prior_mel(track, spec.n_mel_frames, prompt=prompts, frames=frames)
    power = torch.exp(pipeline.features.denormalize(mel)).sum(dim=1)           # [B, mel frames]
    per_frame = spec.mel_frames_per_video_frame
    n_frames = min(frames.shape[1], power.shape[1] // per_frame)
    return power[:, : n_frames * per_frame].unflatten(1, (n_frames, per_frame)).mean(dim=2).sqrt().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True)
    parser.add_argument("--aligner", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-clips", type=int, default=50)
    parser.add_argument("--placement", action="append", default=[], help="'segments' or 'forced[:field=value,...]'; "
                        "repeat for several rows (default: the aligner's own)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = V2APipeline.from_pretrained(args.export)
    aligner = LipAligner.from_pretrained(args.aligner)
    placements = {text: placement_from_text(text) for text in args.placement} or {"the aligner's own": aligner.placement}
    scores: dict[str, list[float]] = {"oracle (recorded phoneme times)": [], **{name: [] for name in placements}}
    for batch in iterate_batches(args.data, args.split, pipeline.spec, 25, args.max_clips):
        frames, metas = batch["frames"], batch["meta"]
        speaking, opening = aligner.predict_batch(frames)
        prompts = [meta.get("caption") for meta in metas]
        for name in scores:
            if name in placements:
                aligner.placement = placements[name]
                spans = [aligner.place(aligner.phonemizer(meta.get("transcript") or ""), speaking[i],
                                       None if opening is None else opening[i], frames.shape[1])
                         for i, meta in enumerate(metas)]
            else:
                spans = [recorded_spans(meta) for meta in metas]
            loudness = prior_loudness(pipeline, spans, frames, prompts)
            for row, meta in enumerate(metas):
                mouth = mouth_track(meta)
                if mouth is not None and (meta.get("transcript") or "").strip():
                    n = min(len(mouth), loudness.shape[1])
                    scores[name].append(float(np.corrcoef(mouth[:n], loudness[row, :n])[0, 1]))
    command = (f"python bench/prior_lips.py --export {args.export} --aligner {args.aligner} --data {args.data} "
               f"--split {args.split} --max-clips {args.max_clips}" + "".join(f' --placement "{p}"' for p in args.placement))
    markdown = "\n".join([
        "## Lip correlation of the phoneme prior's loudness, per timing (issue 15)", "",
        f"`{command}` — {machine()}", "",
        "| timing | mouth vs prior loudness, mean Pearson r | clips |", "| --- | --- | --- |",
        *(f"| {name} | {np.nanmean(values):.3f} | {len(values)} |" for name, values in scores.items())])
    print(markdown)
    if args.write:
        write_section(f"prior_lips_{args.split}", markdown)


if __name__ == "__main__":
    main()
