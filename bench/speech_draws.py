"""How much generated speech differs from one draw of the sampler's noise to the next, as Whisper hears it.

    python bench/speech_draws.py --export MODEL_EXPORT --aligner ALIGNER_EXPORT \
        --data data/synthetic_dialogue_solo --split val --max-clips 50 --draws 4 [--write]

Each clip is generated ``--draws`` times (video timing from the lip aligner, the model's own sampling settings,
draw k seeded with k). Reported: the corpus WER of each draw, their mean, and the WER when each clip keeps its best
and its worst draw as Whisper itself scores them. Best-of-draws by Whisper is an upper bound, not a method: it says
how much a selector that knows which draw says the words could gain, and so whether one is worth building.

``--voice`` (models whose prior renders a voice code, ``code_dim``): ``prompt`` (the code the prompt asks for, what
generation uses), ``own`` (the code read from the clip's own recording: which voice is no longer a guess) or
``other`` (draw k reads the recording of the k+1-th next clip of the batch with the same speaker type: a real voice
of the type asked for, drawn, not averaged). ``--voice-temperature T`` draws the code around the prompt's with the
model's learnt spread times T (``sampler.voice_temperature``; with ``--voice prompt``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.evaluation.references import iterate_batches  # noqa: E402
from v2a.evaluation.speaker import speaker_of  # noqa: E402
from v2a.evaluation.speech import WhisperRecognizer, error_rates, normalize_text  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402
from v2a.pipeline.aligner import LipAligner  # noqa: E402


def word_errors(hypothesis: str, reference: str) -> float:
    """Word errors (substitutions + deletions + insertions) of one clip."""
    return error_rates([hypothesis], [reference])["wer"] * max(len(normalize_text(reference).split()), 1)


def voice_references(mel: torch.Tensor, metas: list[dict], voice: str, draw: int) -> torch.Tensor | None:
    """The recordings [B, n_mels, F] whose voices draw ``draw`` renders (see ``--voice``); None: the prompt's."""
    if voice == "prompt":
        return None
    if voice == "own":
        return mel
    types, order = [speaker_of(m) for m in metas], []
    for row, kind in enumerate(types):
        same = [i for i in range(row + 1, row + len(metas)) if types[i % len(metas)] == kind]
        order.append(same[draw % len(same)] % len(metas) if same else row)
    return mel[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="model export")
    parser.add_argument("--aligner", required=True, help="lip-aligner export (video timing)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-clips", type=int, default=50)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--voice", choices=("prompt", "own", "other"), default="prompt")
    parser.add_argument("--voice-temperature", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--section", default="speech_draws")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = WhisperRecognizer(threads=args.threads)
    aligner = LipAligner.from_pretrained(args.aligner)
    pipeline = V2APipeline.from_pretrained(args.export)
    spec = pipeline.spec
    if args.voice_temperature is not None:
        pipeline.sampler.voice_temperature = args.voice_temperature
    errors: list[list[float]] = []   # [clip][draw]
    words: list[int] = []
    for batch in iterate_batches(args.data, args.split, spec, 25, args.max_clips):
        metas, frames = batch["meta"], batch["frames"]
        transcripts = [m["transcript"] for m in metas]
        spans = [aligner.timeline(f, t) for f, t in zip(frames, transcripts, strict=True)]
        recorded = pipeline.features(batch["audio"])
        per_draw = []
        for draw in range(args.draws):
            mel = pipeline.generate_mel(frames, transcript=transcripts, phonemes=spans,
                                        generator=torch.Generator().manual_seed(draw),
                                        prompt=[m.get("caption") or "" for m in metas],
                                        voice_reference=voice_references(recorded, metas, args.voice, draw))
            heard = [recognizer.transcribe(a, spec.sample_rate) for a in pipeline.vocoder(mel).numpy()]
            per_draw.append([word_errors(h, r) for h, r in zip(heard, transcripts, strict=True)])
            print(f"batch of {len(metas)}, draw {draw}: WER {sum(per_draw[-1]) / sum(len(normalize_text(r).split()) for r in transcripts):.3f}",
                  flush=True)
        errors += [list(clip) for clip in zip(*per_draw, strict=True)]
        words += [len(normalize_text(r).split()) for r in transcripts]
    table = torch.tensor(errors)          # [clips, draws]
    total = float(sum(words))
    draw_wers = (table.sum(0) / total).tolist()
    best, worst = float(table.min(1).values.sum() / total), float(table.max(1).values.sum() / total)
    command = (f"python bench/speech_draws.py --export {args.export} --aligner {args.aligner} --data {args.data} "
               f"--split {args.split} --max-clips {args.max_clips} --draws {args.draws} --voice {args.voice}"
               + (f" --voice-temperature {args.voice_temperature:g}" if args.voice_temperature is not None else ""))
    markdown = "\n".join([
        "## Generated speech from one noise draw to the next (issue 15)", "", f"`{command}` — {machine()}", "",
        "| voice | clips | WER of each draw | mean | each clip's best draw (by Whisper) | each clip's worst draw |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {args.voice}{f' (temperature {args.voice_temperature:g})' if args.voice_temperature else ''} | {len(words)} | {' / '.join(f'{w:.3f}' for w in draw_wers)} | {sum(draw_wers) / len(draw_wers):.3f} | "
        f"{best:.3f} | {worst:.3f} |"])
    print(markdown)
    if args.write:
        write_section(args.section, markdown)


if __name__ == "__main__":
    main()
