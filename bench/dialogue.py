"""The dialogue table: WER / transcript swap / lip sync / word-onset error of dialogue models, per timing source.

    python bench/dialogue.py --row "aligned, video timing=MODEL_EXPORT:video" --row "...=EXPORT:oracle" \
        --aligner ALIGNER_EXPORT --data data/synthetic_dialogue [--data-solo data/synthetic_dialogue_solo] \
        [--max-clips 100] [--write]

Each ``--row "NAME=EXPORT:TIMING[:PRIOR_START]"`` is scored by :func:`v2a.evaluation.dialogue.evaluate_dialogue` on the test
split (Whisper tiny.en, the `eval` extra); rows are also scored on ``--data-solo`` (speech alone) when given.
``PRIOR_START`` (models with a phoneme prior) starts sampling from the prior at that flow time.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.evaluation.dialogue import evaluate_dialogue  # noqa: E402
from v2a.evaluation.speech import WhisperRecognizer  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402
from v2a.pipeline.aligner import LipAligner, placement_from_text  # noqa: E402
from v2a.text.conditioning import check_modalities  # noqa: E402

COLUMNS = ("speech/wer", "ref/gt_wer", "speech/cer", "speech/wer_swapped", "ref/mismatched_wer", "speech/lip_corr",
           "ref/gt_lip_corr", "speech/word_onset_err_frames", "speech/speaker_type_acc", "ref/gt_speaker_type_acc",
           "speech/speaker_type_acc_asked_other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--row", action="append", required=True,
                        help="NAME=EXPORT:TIMING[:PRIOR_START] (timing: oracle|subtitles|video)")
    parser.add_argument("--aligner", help="lip-aligner export (timing video / subtitles)")
    parser.add_argument("--mouth-weight", type=float,
                        help="place a word's phonemes by the mouth at this weight (0: at their typical shares; "
                             "default: the aligner export's)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--data-solo", help="talking heads alone (synthetic_dialogue_solo)")
    parser.add_argument("--label", default="mixed", help="what --data holds, for the table's data column")
    parser.add_argument("--max-clips", type=int, default=100)
    parser.add_argument("--split", default="test", help="val to choose settings, test to report")
    parser.add_argument("--speaker-types", action="store_true", help="score the speaker type (the resemblyzer extra)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--vocoder", help="a model/vocoder config to render with (griffin_lim, neural, neural_bare; "
                                          "default: the model's)")
    parser.add_argument("--vocoder-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the vocoder config (e.g. refine_iters=12), repeatable")
    parser.add_argument("--vocoder-checkpoint", help="the neural vocoder's export (e.g. a vocoder_gta_tiny run's export; "
                                                     "default: the config's, builtin:vocoder_tiny)")
    parser.add_argument("--cfg", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--voice-temperature", type=float,
                        help="models with a voice code: draw the code at this temperature (default: the model's)")
    parser.add_argument("--cfg-modalities", nargs="+", help="what the unconditional branch drops (default: the model's)")
    parser.add_argument("--placement", help="how the aligner places the transcript: 'segments', or 'forced' with "
                        "AlignmentCosts fields, e.g. 'forced:mouth=4,speaking=1' (default: the export's)")
    parser.add_argument("--section", default="dialogue_timing", help="the docs/benchmarks.md section to write")
    parser.add_argument("--title", default="Dialogue: the transcript in time (issue 15)")
    parser.add_argument("--keep", help="keep each row's per-clip results (dialogue.json: what Whisper heard) under this folder")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recognizer = WhisperRecognizer(threads=1).transcribe
    speaker_types = None
    if args.speaker_types:  # man / woman by Resemblyzer, centroids from the ground truth of the data's val split
        from v2a.evaluation.speaker import SpeakerTypes
        from v2a.shapes import ClipSpec
        speaker_types = SpeakerTypes.from_split(args.data, "val", ClipSpec(duration=4.0))
    lines = ["| model, timing | data | WER | GT WER | CER | WER, swapped transcripts | GT vs other transcript | "
             "lip corr | GT lip corr | word-onset error (frames) | speaker type | GT speaker type | "
             "speaker type, the prompt asking for the other |", "| --- " * 13 + "|"]
    aligner = LipAligner.from_pretrained(args.aligner) if args.aligner else None
    if aligner is not None and args.mouth_weight is not None:
        aligner.durations.mouth_weight = args.mouth_weight
    if aligner is not None and args.placement:
        aligner.placement = placement_from_text(args.placement)
    vocoder = vocoder_config(args.vocoder, args.vocoder_checkpoint, args.vocoder_option) if args.vocoder else None
    datasets = [(args.label, args.data)] + ([("speech alone", args.data_solo)] if args.data_solo else [])
    for row in args.row:
        name, _, rest = row.partition("=")
        export, timing, *start = rest.split(":")
        pipeline = V2APipeline.from_pretrained(export, vocoder=vocoder)
        if start:
            pipeline.sampler.prior_start = float(start[0])
        if args.voice_temperature is not None:
            pipeline.sampler.voice_temperature = args.voice_temperature
        if args.cfg_modalities:
            pipeline.cfg_modalities = check_modalities(args.cfg_modalities)
        for label, data in datasets:
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(args.keep) / _slug(f"{name} {label}") if args.keep else scratch
                m = evaluate_dialogue(pipeline, data=data, split=args.split, out_dir=out, recognizer=recognizer,
                                      timing=timing, aligner=aligner, batch_size=25, max_clips=args.max_clips,
                                      steps=args.steps, cfg_scale=args.cfg, speaker_types=speaker_types)
            cells = " | ".join(f"{m[c]:.3f}" if c in m else "—" for c in COLUMNS)
            lines.append(f"| {name} | {label} | {cells} |")
            print(lines[-1], flush=True)
    options = [f"--aligner {args.aligner}", f"--mouth-weight {args.mouth_weight}" if args.mouth_weight is not None else "",
               f"--placement {args.placement}" if args.placement else "",
               f"--data {args.data}",
               f'--label "{args.label}"' if args.label != "mixed" else "",
               f"--data-solo {args.data_solo}" if args.data_solo else "", f"--max-clips {args.max_clips}",
               f"--split {args.split}" if args.split != "test" else "", "--speaker-types" if args.speaker_types else "",
               f"--steps {args.steps}" if args.steps else "", f"--vocoder {args.vocoder}" if args.vocoder else "",
               f"--vocoder-checkpoint {args.vocoder_checkpoint}" if args.vocoder_checkpoint else "",
               *(f"--vocoder-option {o}" for o in args.vocoder_option), f"--cfg {args.cfg:g}" if args.cfg is not None else "",
               f"--cfg-modalities {' '.join(args.cfg_modalities)}" if args.cfg_modalities else "",
               f"--voice-temperature {args.voice_temperature:g}" if args.voice_temperature is not None else ""]
    command = "python bench/dialogue.py " + " ".join([*(f'--row "{r}"' for r in args.row), *filter(None, options)])
    markdown = "\n".join([f"## {args.title}", "", f"`{command}` — {machine()}", "",
                          *lines])
    print(markdown)
    if args.write:
        write_section(args.section, markdown)


def vocoder_config(name: str, checkpoint: str | None, options: list[str]) -> dict | None:
    """The vocoder ``evaluate.py model/vocoder=NAME [model.vocoder.checkpoint=...] [model.vocoder.KEY=VALUE]`` chooses."""
    from hydra import compose, initialize_config_dir

    from v2a.conf import CONFIG_DIR
    from v2a.pipeline.loading import chosen_vocoder

    overrides = [f"model/vocoder={name}", *([f"model.vocoder.checkpoint={checkpoint}"] if checkpoint else []),
                 *(f"model.vocoder.{option}" for option in options)]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return chosen_vocoder(compose(config_name="evaluate", overrides=overrides))


def _slug(text: str) -> str:
    """A folder name for a row: letters, digits and dashes."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


if __name__ == "__main__":
    main()
