"""Does the mouth say this transcript? The forced alignment's fit for matched and swapped transcripts, and what the
phoneme prior says of swapped transcripts under each placement.

    python bench/transcript_doubt.py --export MODEL_EXPORT --aligner ALIGNER_EXPORT --data data/synthetic_dialogue \
        --split val --max-clips 100 --threshold 0.04 --threshold 0.05 \
        [--placement forced --placement "forced:cap=0.001,doubt=0"] [--write]

Per clip, the transcript is the clip's own (matched) or its neighbour's (swapped, as in ``evaluate.py dialogue=true``).
The fit is :func:`v2a.text.forced_alignment.transcript_fit`: the mouth opening's mean squared error over the placed
phonemes, which ``AlignmentCosts.doubt`` is compared with. The first table gives its percentiles and, per threshold,
the share of matched and swapped transcripts doubted. With ``--placement`` (the ``eval`` extra), each placement's
swapped transcripts (and the aligner's own placement's matched ones) are rendered by the phoneme prior alone (its mel
through the model's vocoder, no sampling: deterministic) and heard by Whisper: what a placement does to the words,
in a fraction of a generation run's time.
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
from v2a.text.forced_alignment import AlignmentCosts, transcript_fit  # noqa: E402


def prior_audio(pipeline: V2APipeline, spans: list, frames: torch.Tensor, prompts: list) -> np.ndarray:
    """The phoneme prior's mel for each clip's timed phonemes, through the model's vocoder: [B, samples]."""
    track = pipeline.phoneme_track(spans, len(spans), pipeline.spec.n_audio_tokens)
    with torch.no_grad():
        mel = pipeline.prior_mel(track, pipeline.spec.n_mel_frames, prompt=prompts, frames=frames)
        return pipeline.vocoder(mel).cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a phoneme-track model's export (its spec, prior, vocoder)")
    parser.add_argument("--aligner", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-clips", type=int, default=100)
    parser.add_argument("--threshold", type=float, action="append", default=[], help="doubt thresholds to tabulate")
    parser.add_argument("--placement", action="append", default=[],
                        help="'forced[:field=value,...]' rows rendered by the prior (needs the eval extra)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = V2APipeline.from_pretrained(args.export)
    aligner = LipAligner.from_pretrained(args.aligner)
    own_costs = aligner.placement or AlignmentCosts()
    placements = {text: placement_from_text(text) for text in args.placement}
    recognizer = None
    if placements:
        from v2a.evaluation.speech import WhisperRecognizer, error_rates
        recognizer = WhisperRecognizer(threads=1).transcribe
    fits: dict[str, list[float]] = {"matched": [], "swapped": []}
    heard: dict[str, list[str]] = {}
    said: dict[str, list[str]] = {}
    for batch in iterate_batches(args.data, args.split, pipeline.spec, 25, args.max_clips):
        keep = [i for i, meta in enumerate(batch["meta"]) if (meta.get("transcript") or "").strip()]
        if len(keep) < 2:
            continue
        frames, metas = batch["frames"][keep], [batch["meta"][i] for i in keep]
        own = [meta["transcript"] for meta in metas]
        texts = {"matched": own, "swapped": own[1:] + own[:1]}
        speaking, opening = aligner.predict_batch(frames)
        phonemes = {kind: [aligner.phonemizer(text) for text in clip_texts] for kind, clip_texts in texts.items()}
        for kind, clips in phonemes.items():
            fits[kind] += [transcript_fit(ph, speaking[i], opening[i], aligner.fps, aligner.durations, own_costs)
                           for i, ph in enumerate(clips)]
        rows = [(f"{name}, swapped", costs, "swapped") for name, costs in placements.items()]
        if placements:
            rows.insert(0, ("the aligner's own placement, matched", own_costs, "matched"))
        prompts = [meta.get("caption") or "" for meta in metas]
        for row, costs, kind in rows:
            aligner.placement = costs
            spans = [aligner.place(ph, speaking[i], opening[i], frames.shape[1]) for i, ph in enumerate(phonemes[kind])]
            audio = prior_audio(pipeline, spans, frames, prompts)
            heard.setdefault(row, []).extend(recognizer(clip, pipeline.spec.sample_rate) for clip in audio)
            said.setdefault(row, []).extend(texts[kind])
        aligner.placement = own_costs
    matched, swapped = (np.array([f for f in fits[kind] if f is not None]) for kind in ("matched", "swapped"))
    auc = float(np.mean(matched[:, None] < swapped[None, :]))
    command = (f"python bench/transcript_doubt.py --export {args.export} --aligner {args.aligner} --data {args.data} "
               f"--split {args.split} --max-clips {args.max_clips}" + "".join(f" --threshold {t}" for t in args.threshold)
               + "".join(f' --placement "{p}"' for p in args.placement))
    lines = [f"`{command}` — {machine()}", "",
             f"The fit (mean squared error of the opening, the aligner's costs at cap {own_costs.cap}): "
             f"AUC {auc:.3f} that a matched transcript fits better than a swapped one.", "",
             "| transcripts | clips | fit, percentiles 10 / 50 / 90 / 95 / 99 | "
             + " | ".join(f"doubted over {t}" for t in args.threshold) + " |",
             "| --- | --- | --- |" + " --- |" * len(args.threshold)]
    for kind, values in (("matched", matched), ("swapped", swapped)):
        cells = " / ".join(f"{v:.4f}" for v in np.percentile(values, [10, 50, 90, 95, 99]))
        lines.append(f"| {kind} | {len(values)} | {cells} | " + " | ".join(f"{np.mean(values > t):.2f}" for t in args.threshold) + " |")
    if heard:
        lines += ["", "| placement, transcripts | WER through the prior alone |", "| --- | --- |"]
        lines += [f"| {row} | {error_rates(heard[row], said[row])['wer']:.3f} |" for row in heard]
    markdown = "\n".join(lines)
    print(markdown)
    if args.write:
        write_section(f"transcript_doubt_{args.split}", markdown)


if __name__ == "__main__":
    main()
