"""The lip aligner on held-out talking heads: speaking-frame accuracy and word-onset error, over its settings.

    python bench/aligner.py --aligner ALIGNER_EXPORT --data data/synthetic_dialogue [--split val] [--write]

Word-onset error: |predicted - recorded| start of every word, in video frames, median over the words of the
clips whose transcript splits into as many words as espeak-ng recorded. Rows: the speech-activity threshold, and
how words are placed inside a speech segment — at their typical share of it, or (aligners that read the mouth's
opening) where the mouth closes, at several stiffnesses (``v2a.text.phoneme_timing.word_onsets``); and subtitle
timing (one cue over the recorded words) as the reference that needs no video.
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
from v2a.evaluation.dialogue import speech_span, word_starts  # noqa: E402
from v2a.evaluation.references import iterate_batches  # noqa: E402
from v2a.pipeline.aligner import LipAligner  # noqa: E402
from v2a.shapes import ClipSpec  # noqa: E402
from v2a.training.aligner_module import speaking_frames  # noqa: E402


def onset_errors(predicted: list[float], recorded: list[float], fps: float) -> list[float]:
    return [abs(a - b) * fps for a, b in zip(predicted, recorded, strict=True)] if len(predicted) == len(recorded) else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligner", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-clips", type=int, default=100)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    aligner = LipAligner.from_pretrained(args.aligner)
    spec = ClipSpec(duration=4.0, image_size=aligner.image_size or 32, fps=round(aligner.fps))
    clips, accuracy = [], []
    for batch in iterate_batches(args.data, args.split, spec, 25, args.max_clips):
        for frames, meta in zip(batch["frames"], batch["meta"], strict=True):
            probs, opening = aligner.predict(frames)
            accuracy.append(float(((probs > 0.5) == speaking_frames(meta, spec).numpy()).mean()))
            recorded = [float(e["time"]) for e in meta.get("events", []) if e.get("kind") == "word"]
            clips.append((probs, opening, aligner.phonemizer(meta["transcript"]), recorded, speech_span(meta)))
    reads_mouth = clips[0][1] is not None
    placements = [("typical shares", None)] + ([(f"mouth closing, stiffness {k}", k) for k in (1.0, 3.0, 10.0)]
                                                if reads_mouth else [])
    rows = []
    for threshold in (0.3, 0.5, 0.7):
        for label, stiffness in placements:
            errors = []
            for probs, opening, phonemes, recorded, _ in clips:
                spans = aligner.place(phonemes, probs, opening if stiffness else None, len(probs), threshold=threshold,
                                      stiffness=stiffness)
                errors += onset_errors(word_starts(spans), recorded, aligner.fps)
            rows.append(f"| video, threshold {threshold}, {label} | {np.median(errors):.3f} | {len(errors)} |")
    subtitle = [e for _, _, phonemes, recorded, span in clips if span
                for e in onset_errors(word_starts(aligner.durations.fill(phonemes, *span)), recorded, aligner.fps)]
    rows.append(f"| subtitles (one cue over the recorded words) | {np.median(subtitle):.3f} | {len(subtitle)} |")
    command = f"python bench/aligner.py --aligner {args.aligner} --data {args.data} --split {args.split} " \
              f"--max-clips {args.max_clips}"
    markdown = "\n".join([
        "## Lip aligner: speaking frames and word onsets (issue 15)", "",
        f"`{command}` — {machine()}", "",
        f"Speaking-frame accuracy (threshold 0.5): {np.mean(accuracy):.3f} over {len(clips)} clips.", "",
        "| timing | median word-onset error (frames) | words |", "| --- | --- | --- |", *rows])
    print(markdown)
    if args.write:
        write_section(f"aligner_{args.split}", markdown)


if __name__ == "__main__":
    main()
