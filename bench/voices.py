"""The talking heads' voices: ground-truth WER through Whisper, and the speaker type a speaker encoder hears.

    python bench/voices.py [--clips 50] [--references 10] [--data data/synthetic_dialogue_piper] [--write]

Each voice group (espeak-ng's men, espeak-ng's women, Piper's joe) speaks the same ``--clips`` sentences of the
benchmark (talking_head.candidate_sentences, rates 140-200 wpm, espeak-ng pitches 30-70; espeak-ng groups cycle
through their voices), alone, peak 0.3 at 16 kHz as in a clip. Whisper tiny.en (the project's recognizer, the
`eval` extra) transcribes them: WER / CER against the sentence. The speaker-type classifier
(v2a.evaluation.speaker, Resemblyzer's weights) is fitted on ``--references`` other sentences per group (centroids
"man": espeak-ng men + joe, "woman": espeak-ng women) and once on espeak-ng's voices alone (does joe, never seen,
still sound like "a man speaking"?); the table gives the share of clips given their group's type.
With ``--data``, the same on a built benchmark's test clips (ground truth, the mix as stored), per voice, with the
centroids of the evaluation's speaker-type metric (its val split), and the share whose caption ("a man speaking")
names the type heard. Needs espeak-ng's library and the `piper` and `eval` extras.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.data.synthetic.talking_head import DEFAULT_VOICES, candidate_sentences, say  # noqa: E402
from v2a.evaluation.speaker import SpeakerEncoder, SpeakerTypes  # noqa: E402
from v2a.evaluation.speech import WhisperRecognizer, error_rates  # noqa: E402
from v2a.media import resample  # noqa: E402

SR = 16000
GROUPS = {
    "espeak-ng men": ("man", sorted(v for v, kind in DEFAULT_VOICES.items() if kind == "man")),
    "espeak-ng women": ("woman", sorted(v for v, kind in DEFAULT_VOICES.items() if kind == "woman")),
    "Piper joe": ("man", ["piper-joe"]),
}


def utterances(group: str, count: int, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """(voice, sentence, 16 kHz audio at peak 0.3) for ``count`` sentences; sentence i is the same in every group."""
    _, voices = GROUPS[group]
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        text = candidate_sentences(rng)[0 if i % 3 else 1]   # long and medium sentences
        rate, pitch = int(rng.integers(140, 201)), int(rng.integers(30, 71))
        voice = voices[i % len(voices)]
        speech = say(text, voice=voice, rate=rate, pitch=pitch)
        wave = resample(speech.audio, speech.sample_rate, SR)
        out.append((voice, text, 0.3 * wave / (np.abs(wave).max() + 1e-9)))
    return out


def built_split(data: str, max_clips: int, recognizer, encoder: SpeakerEncoder) -> list[str]:
    """Rows of the table for a built benchmark's test clips: per voice, GT WER and speaker type vs caption."""
    from v2a.evaluation.references import iterate_batches
    from v2a.evaluation.speaker import speaker_of
    from v2a.shapes import ClipSpec

    spec = ClipSpec(**json.loads((Path(data) / "test" / "index.json").read_text())["spec"])
    types = SpeakerTypes.from_split(data, "val", spec, encoder=encoder)
    clips: dict[str, list[tuple[str, str, str, str]]] = {}
    for batch in iterate_batches(data, "test", spec, 25, max_clips):
        for meta, audio in zip(batch["meta"], batch["audio"].numpy(), strict=True):
            head = next((s for s in meta.get("sources", []) if s.get("kind") == "talking_head"), None)
            if head is None:
                continue
            wave = resample(audio, spec.sample_rate, SR)
            clips.setdefault(head["voice"], []).append((meta["transcript"], recognizer(wave, SR), speaker_of(meta),
                                                        types(audio, spec.sample_rate)))
    lines = []
    for voice, rows in sorted(clips.items()):
        rates = error_rates([r[1] for r in rows], [r[0] for r in rows])
        acc = np.mean([r[2] == r[3] for r in rows])
        lines.append(f"| {voice} | {rows[0][2]} | {len(rows)} | {rates['wer']:.3f} | {rates['cer']:.3f} | {acc:.2f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--references", type=int, default=10)
    parser.add_argument("--data", help="also score a built benchmark's test split (e.g. data/synthetic_dialogue_piper)")
    parser.add_argument("--max-clips", type=int, default=100, help="test clips of --data")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recognizer = WhisperRecognizer(threads=1).transcribe
    encoder = SpeakerEncoder()
    started = time.perf_counter()
    references = {g: utterances(g, args.references, seed=1) for g in GROUPS}
    every = SpeakerTypes(encoder).fit([a for g in GROUPS for _, _, a in references[g]],
                                      [GROUPS[g][0] for g in GROUPS for _ in references[g]], SR)
    espeak_only = SpeakerTypes(encoder).fit([a for g in GROUPS if "espeak" in g for _, _, a in references[g]],
                                            [GROUPS[g][0] for g in GROUPS if "espeak" in g for _ in references[g]], SR)
    lines = ["| voice | type (prompt) | clips | GT WER | GT CER | speaker type acc (refs: all voices) | "
             "speaker type acc (refs: espeak-ng voices) |", "| --- " * 7 + "|"]
    per_voice = []
    for group, (kind, voices) in GROUPS.items():
        clips = utterances(group, args.clips, seed=0)
        heard = [recognizer(audio, SR) for _, _, audio in clips]
        rates = error_rates(heard, [text for _, text, _ in clips])
        acc = np.mean([every(audio, SR) == kind for _, _, audio in clips])
        acc_espeak = np.mean([espeak_only(audio, SR) == kind for _, _, audio in clips])
        lines.append(f"| {group} ({', '.join(voices)}) | {kind} | {len(clips)} | {rates['wer']:.3f} | {rates['cer']:.3f} "
                     f"| {acc:.2f} | {acc_espeak:.2f} |")
        print(lines[-1], flush=True)
        if len(voices) > 1:
            for voice in voices:
                mine = [k for k, (v, _, _) in enumerate(clips) if v == voice]
                wer = error_rates([heard[k] for k in mine], [clips[k][1] for k in mine])["wer"]
                per_voice.append(f"{voice} {wer:.2f} ({len(mine)})")
    data_lines = built_split(args.data, args.max_clips, recognizer, encoder) if args.data else []
    seconds = time.perf_counter() - started
    command = f"python bench/voices.py --clips {args.clips} --references {args.references}" + \
        (f" --data {args.data} --max-clips {args.max_clips}" if args.data else "")
    markdown = "\n".join([
        "## Talking-head voices: ground-truth WER and speaker type (issue 15)", "",
        f"`{command}` — {machine()}, {seconds:.0f} s", "",
        "Each voice group speaks the same sentences alone (16 kHz, peak 0.3); Whisper tiny.en transcribes the "
        "ground truth. The speaker type is Resemblyzer's embedding's nearest centroid (v2a.evaluation.speaker), "
        f"centroids from {args.references} other sentences per group — of all three groups, or of espeak-ng's two "
        "alone (joe never seen). \"a man speaking\" in a prompt means a voice of type man.", "",
        *lines, "",
        f"WER per espeak-ng voice (clips): {'; '.join(per_voice)}.",
    ] + ([
        "", f"{args.data} (built by `python data_prep/make_synthetic.py --config-name synthetic_dialogue_piper "
        f"out={args.data}`), test split (ground truth as stored; speaker-type centroids from its val split, as "
        "`evaluate.py dialogue=true` fits them): does the voice say the transcript, and is it heard as the type its "
        "caption names?", "",
        "| voice | caption type | clips | GT WER | GT CER | speaker type = caption's |", "| --- " * 6 + "|",
        *data_lines] if args.data else []))
    print(markdown)
    if args.write:
        write_section("voices", markdown)


if __name__ == "__main__":
    main()
