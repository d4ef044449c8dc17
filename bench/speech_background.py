"""What lies under generated speech: the background a dialogue model renders where a clip has none, and what
Whisper hears once it is taken away.

    python bench/speech_background.py --row "NAME=MODEL_EXPORT" --aligner ALIGNER_EXPORT \
        --data data/synthetic_dialogue_solo --split val --max-clips 50 [--write]

For talking heads alone (no other source in the ground truth), each row's model generates every clip once (video
timing from the lip aligner, the model's own sampling settings). Reported:

- the mean normalised log-mel outside the speech span (where the aligner places no phoneme), in the lowest, middle
  and highest third of the mel bands, for the generated and the ground-truth audio: how loud the background is;
- Whisper tiny.en's WER of the generated audio as it is, and after spectral subtraction of the background
  (its median magnitude per band outside the speech span, times ``alpha``, taken from every frame, floored at 5 %
  of the magnitude). The subtraction is a diagnostic, not part of generation: if it lowers the WER, the background
  the model renders is part of what makes its speech hard to hear.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.audio.mel import LogMel  # noqa: E402
from v2a.evaluation.references import iterate_batches  # noqa: E402
from v2a.evaluation.speech import WhisperRecognizer, error_rates  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402
from v2a.pipeline.aligner import LipAligner  # noqa: E402
from v2a.text.phoneme_timing import PhonemeSpan  # noqa: E402

ALPHAS = (1.0, 2.0)
FLOOR = 0.05


def speech_frames(spans: list[list[PhonemeSpan]], n_frames: int, duration: float) -> torch.Tensor:
    """bool [B, n_frames]: the mel frames from a clip's first phoneme to its last."""
    rate = n_frames / duration
    speech = torch.zeros(len(spans), n_frames, dtype=torch.bool)
    for row, clip in enumerate(spans):
        if clip:
            speech[row, int(min(s.start for s in clip) * rate):int(max(s.end for s in clip) * rate) + 1] = True
    return speech


def background_levels(mel: torch.Tensor, speech: torch.Tensor) -> list[float]:
    """Mean normalised log-mel outside the speech span, per third of the mel bands (low, middle, high)."""
    quiet = mel.permute(1, 0, 2)[:, ~speech]   # [n_mels, frames outside speech]
    return [float(band.mean()) for band in quiet.chunk(3, dim=0)]


def subtract_background(mel: torch.Tensor, speech: torch.Tensor, features: LogMel, alpha: float) -> torch.Tensor:
    """Spectral subtraction of each clip's background (median magnitude per band outside its speech span)."""
    magnitude = torch.exp(features.denormalize(mel))
    out = []
    for row in range(mel.shape[0]):
        quiet = magnitude[row][:, ~speech[row]]
        if quiet.shape[-1] < 4:   # no room outside the speech: the quietest tenth of the frames
            quiet = magnitude[row].quantile(0.1, dim=-1, keepdim=True)
        noise = quiet.median(dim=-1, keepdim=True).values
        out.append(torch.maximum(magnitude[row] - alpha * noise, FLOOR * magnitude[row]))
    return features.normalize(torch.log(torch.stack(out).clamp_min(1e-8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", action="append", required=True, help="NAME=MODEL_EXPORT")
    parser.add_argument("--aligner", required=True, help="lip-aligner export (video timing)")
    parser.add_argument("--data", required=True, help="talking heads alone (synthetic_dialogue_solo)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-clips", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--section", default="speech_background")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = WhisperRecognizer(threads=args.threads)
    aligner = LipAligner.from_pretrained(args.aligner)
    header = ["| model | background outside speech, low / mid / high bands (normalised log-mel) | GT background | "
              "GT WER | WER | " + " | ".join(f"WER, background subtracted x {a:g}" for a in ALPHAS) + " |",
              "| --- " * (5 + len(ALPHAS)) + "|"]
    lines = []
    for row in args.row:
        name, _, export = row.partition("=")
        pipeline = V2APipeline.from_pretrained(export)
        spec, generator = pipeline.spec, torch.Generator().manual_seed(0)
        heard: dict[str, list[str]] = {"gt": [], "generated": [], **{f"x{a:g}": [] for a in ALPHAS}}
        references, levels, gt_levels = [], [], []
        for batch in iterate_batches(args.data, args.split, spec, 25, args.max_clips):
            metas, frames = batch["meta"], batch["frames"]
            transcripts = [m["transcript"] for m in metas]
            spans = [aligner.timeline(f, t) for f, t in zip(frames, transcripts, strict=True)]
            mel = pipeline.generate_mel(frames, transcript=transcripts, phonemes=spans, generator=generator,
                                        prompt=[m.get("caption") or "" for m in metas])
            gt = pipeline.features(batch["audio"])[..., :mel.shape[-1]]
            speech = speech_frames(spans, mel.shape[-1], spec.duration)
            levels.append(background_levels(mel, speech))
            gt_levels.append(background_levels(gt, speech))
            renders = {"generated": mel, **{f"x{a:g}": subtract_background(mel, speech, pipeline.features, a)
                                            for a in ALPHAS}}
            for key, render in renders.items():
                heard[key] += [recognizer.transcribe(a, spec.sample_rate) for a in pipeline.vocoder(render).numpy()]
            heard["gt"] += [recognizer.transcribe(a, spec.sample_rate) for a in batch["audio"].numpy()]
            references += transcripts
        wer = {key: error_rates(hyp, references)["wer"] for key, hyp in heard.items()}
        level, gt_level = torch.tensor(levels).mean(0).tolist(), torch.tensor(gt_levels).mean(0).tolist()
        lines.append(f"| {name} | {' / '.join(f'{v:.2f}' for v in level)} | {' / '.join(f'{v:.2f}' for v in gt_level)} | "
                     f"{wer['gt']:.3f} | {wer['generated']:.3f} | " + " | ".join(f"{wer[f'x{a:g}']:.3f}" for a in ALPHAS)
                     + " |")
        print(lines[-1], flush=True)
    command = ("python bench/speech_background.py " + " ".join(f'--row "{r}"' for r in args.row)
               + f" --aligner {args.aligner} --data {args.data} --split {args.split} --max-clips {args.max_clips}")
    markdown = "\n".join(["## What lies under generated speech: the background, and Whisper without it (issue 15)", "",
                          f"`{command}` — {machine()}", "", *header, *lines])
    print(markdown)
    if args.write:
        write_section(args.section, markdown)


if __name__ == "__main__":
    main()
