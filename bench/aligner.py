"""The lip aligner on held-out talking heads: speaking-frame accuracy, word- and phoneme-onset error, over its settings.

    python bench/aligner.py --aligner ALIGNER_EXPORT --data data/synthetic_dialogue [--split val] [--write]

Word-onset error: |predicted - recorded| start of every word, in video frames, median over the words of the
clips whose transcript splits into as many words as espeak-ng recorded. Rows: the speech-activity threshold, and
how words are placed inside a speech segment — at their typical share of it, or (aligners that read the mouth's
opening) where the mouth closes, at several stiffnesses (``v2a.text.phoneme_timing.word_onsets``); and subtitle
timing (one cue over the recorded words) as the reference that needs no video. Phoneme-onset error: the same for
every phoneme (pauses left out) of the clips whose phonemes are the recorded ones; the last rows place a word's
phonemes by the mouth (``DurationModel.fill_by_mouth``: the mouth's opening against each phoneme's typical openness,
aligners whose export carries it) at several weights, instead of at their typical shares; and the forced alignment
of the whole transcript on the speaking probability and the opening (``v2a.text.forced_alignment``) at several
costs. For an aligner that exports a placement, its time and memory on 1- and 10-minute clips (the clips end to end).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
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
from v2a.text.forced_alignment import AlignmentCosts, align_on_frames  # noqa: E402
from v2a.text.phoneme_timing import recorded_spans  # noqa: E402
from v2a.text.phonemes import PAUSES, Phoneme  # noqa: E402
from v2a.training.aligner_module import speaking_frames  # noqa: E402


def onset_errors(predicted: list[float], recorded: list[float], fps: float) -> list[float]:
    return [abs(a - b) * fps for a, b in zip(predicted, recorded, strict=True)] if len(predicted) == len(recorded) else []


def phoneme_errors(spans: list, recorded: list, fps: float) -> list[float]:
    """|predicted - recorded| start of every phoneme (pauses left out), in frames; none unless the sequences match."""
    said = [s for s in spans if s.symbol not in PAUSES]
    heard = [s for s in recorded if s.symbol not in PAUSES]
    if [s.symbol for s in said] != [s.symbol for s in heard]:
        return []
    return [abs(a.start - b.start) * fps for a, b in zip(said, heard, strict=True)]


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
            clips.append((probs, opening, aligner.phonemizer(meta["transcript"]), recorded, speech_span(meta),
                          recorded_spans(meta)))
    reads_mouth = clips[0][1] is not None
    durations = aligner.durations
    chosen_weight = durations.mouth_weight
    own_placement, aligner.placement = aligner.placement, None   # the rows by speech segments; forced rows call it
    placements = [("typical shares", None, 0.0)] + ([(f"mouth closing, stiffness {k}", k, 0.0) for k in (1.0, 3.0, 10.0)]
                                                     if reads_mouth else [])
    settings = [(threshold, *placement) for threshold in (0.3, 0.5, 0.7) for placement in placements]
    if reads_mouth and durations.openness:
        settings += [(0.5, f"mouth closing, stiffness 3.0, phonemes by the mouth (weight {w})", 3.0, w)
                     for w in (1.0, 4.0, 8.0, 16.0, 32.0)]

    if reads_mouth and durations.openness:
        settings += [(0.5, f"forced alignment (mouth {m}, speaking {k}, stiffness {st}{', spread' if spread else ''})",
                      None, AlignmentCosts(mouth=m, speaking=k, stiffness=st, spread=spread))
                     for m, k, st in ((4.0, 1.0, 1.0), (4.0, 1.0, 4.0), (16.0, 1.0, 1.0), (16.0, 1.0, 4.0),
                                      (16.0, 0.25, 4.0), (16.0, 4.0, 4.0), (64.0, 1.0, 4.0))
                     for spread in ((False, True) if durations.spreads else (False,))]

    def row(label: str, timed: list[tuple[list, list, list]]) -> str:
        words = [e for spans, recorded, _ in timed for e in onset_errors(word_starts(spans), recorded, aligner.fps)]
        phones = [e for spans, _, spoken in timed for e in phoneme_errors(spans, spoken, aligner.fps)]
        return f"| {label} | {np.median(words):.3f} | {len(words)} | {np.median(phones):.3f} | {len(phones)} |"

    rows = []
    for threshold, label, stiffness, weight in settings:
        if isinstance(weight, AlignmentCosts):
            rows.append(row(f"video, {label}", [
                (align_on_frames(phonemes, probs, opening, aligner.fps, durations, weight), recorded, spoken)
                for probs, opening, phonemes, recorded, _, spoken in clips]))
            continue
        durations.mouth_weight = weight
        rows.append(row(f"video, threshold {threshold}, {label}", [
            (aligner.place(phonemes, probs, opening if stiffness else None, len(probs), threshold=threshold,
                           stiffness=stiffness), recorded, spoken)
            for probs, opening, phonemes, recorded, _, spoken in clips]))
    durations.mouth_weight = chosen_weight
    rows.append(row("subtitles (one cue over the recorded words)", [
        (durations.fill(phonemes, *span), recorded, spoken)
        for _, _, phonemes, recorded, span, spoken in clips if span]))
    command = f"python bench/aligner.py --aligner {args.aligner} --data {args.data} --split {args.split} " \
              f"--max-clips {args.max_clips}"
    aligner.placement = own_placement
    long_rows = [long_clip_row(aligner, clips, minutes) for minutes in (1, 10)] if own_placement else []
    markdown = "\n".join([
        "## Lip aligner: speaking frames and word onsets (issue 15)", "",
        f"`{command}` — {machine()}", "",
        f"Speaking-frame accuracy (threshold 0.5): {np.mean(accuracy):.3f} over {len(clips)} clips.", "",
        "| timing | median word-onset error (frames) | words | median phoneme-onset error (frames) | phonemes |",
        "| --- | --- | --- | --- | --- |", *rows,
        *(["", "The export's own placement on long clips (the clips above end to end, their transcripts joined):", "",
           "| clip | phonemes | placement time (s) | peak memory added (MB) |", "| --- | --- | --- | --- |", *long_rows]
          if long_rows else [])])
    print(markdown)
    if args.write:
        write_section(f"aligner_{args.split}", markdown)


def long_clip_row(aligner: LipAligner, clips: list, minutes: float) -> str:
    """Time the aligner's placement of a ``minutes``-long clip: the clips' frame signals and transcripts, repeated
    end to end (the same speaking probability and opening a long video would give the search)."""
    n_frames = int(minutes * 60 * aligner.fps)
    repeats = -(-n_frames // sum(len(probs) for probs, *_ in clips))
    chosen = (clips * repeats)
    speaking = np.concatenate([probs for probs, *_ in chosen])[:n_frames]
    opening = np.concatenate([opening for _, opening, *_ in chosen])[:n_frames]
    phonemes, words, total = [], 0, 0
    for probs, _, clip, *_ in chosen:   # renumber the words so every clip's are new ones
        if total >= n_frames:
            break
        phonemes += [Phoneme(p.symbol, p.word + words if p.word >= 0 else -1, p.stressed) for p in clip]
        words += max((p.word for p in clip), default=-1) + 1
        total += len(probs)
    tracemalloc.start()
    began = time.perf_counter()
    spans = aligner.place(phonemes, speaking, opening, n_frames)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    assert len(spans) == sum(p.symbol not in PAUSES for p in phonemes)
    return f"| {minutes:g} min ({n_frames} frames) | {len(spans)} | {seconds:.2f} | {peak:.0f} |"


if __name__ == "__main__":
    main()
