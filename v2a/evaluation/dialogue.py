"""Dialogue: does the generated speech say the transcript, in time with the mouth?

For clips with a transcript (talking heads), with the transcript's timing taken from one source —
``oracle`` (the phoneme times the clip recorded), ``subtitles`` (one cue over the recorded speech span,
filled by typical phoneme durations) or ``video`` (the lip-driven aligner) — this measures:

- ``speech/wer``, ``speech/cer``: Whisper tiny.en on the generated audio against the transcript given;
- ``speech/wer_swapped``: the same with every clip given *another* clip's transcript (timed by the same
  source on this clip's video): a model that says what it is given scores as on its own transcript;
- ``speech/lip_corr``: the audio envelope against the mouth opening;
- ``speech/word_onset_err_frames``: median |predicted - recorded| word start of the timing, in video frames;
- ceilings ``ref/gt_wer``, ``ref/gt_cer``, ``ref/gt_lip_corr`` (ground-truth audio) and the floor
  ``ref/mismatched_wer`` (ground-truth audio against another clip's transcript);
- with a speaker-type classifier (:class:`v2a.evaluation.speaker.SpeakerTypes`, the `eval` extra):
  ``speech/speaker_type_acc``, how often the type it hears in the generated audio ("man" / "woman") is the
  clip's (which its prompt names: "a man speaking"), beside the ceiling ``ref/gt_speaker_type_acc`` (ground-truth
  audio) and the floor ``ref/mismatched_speaker_type_acc`` (another clip's ground-truth audio); for models that
  read a prompt, ``speech/speaker_type_acc_asked_other``: the same clips generated with the prompt asking for the
  other type ("a woman speaking" for a man's clip), scored against the type asked — what shows that the prompt,
  not the video or the phonemes, chooses the voice.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from v2a.evaluation.references import iterate_batches
from v2a.evaluation.speaker import ask_for_other_type, speaker_of
from v2a.evaluation.speech import error_rates, lip_envelope_correlation
from v2a.pipeline.aligner import LipAligner
from v2a.pipeline.pipeline import V2APipeline
from v2a.text.phoneme_timing import DurationModel, PhonemeSpan, mouth_track, recorded_spans
from v2a.text.phonemes import PAUSES, Phonemizer

log = logging.getLogger(__name__)
TIMINGS = ("oracle", "subtitles", "video")


def speech_span(meta: dict) -> tuple[float, float] | None:
    """The recorded span of a clip's words (the cue a subtitle file would give), on the clip's clock."""
    words = [e for e in meta.get("events", []) if e.get("kind") == "word"]
    if not words:
        return None
    return float(words[0]["time"]), float(max(e.get("end", e["time"]) for e in words))


def word_starts(spans: list[PhonemeSpan]) -> list[float]:
    """The start of every word of a timeline (its first phoneme)."""
    starts: dict[int, float] = {}
    for span in spans:
        if span.word >= 0 and span.symbol not in PAUSES:
            starts.setdefault(span.word, span.start)
    return [starts[w] for w in sorted(starts)]


class Timing:
    """Times a transcript for one clip, from the chosen source."""

    def __init__(self, source: str, aligner: LipAligner | None, phonemizer: Phonemizer | None = None) -> None:
        if source not in TIMINGS:
            raise ValueError(f"timing must be one of {TIMINGS}, got {source!r}")
        if source in ("subtitles", "video") and aligner is None:
            raise ValueError(f"timing={source} needs aligner= (an export of python train.py experiment=aligner_tiny): "
                             "its phoneme durations fill the cues / speech segments")
        self.source = source
        self.aligner = aligner
        self.phonemizer = phonemizer or (aligner.phonemizer if aligner is not None else Phonemizer())

    def __call__(self, meta: dict, frames: torch.Tensor, transcript: str, *, own: bool) -> list[PhonemeSpan]:
        if self.source == "video":
            return self.aligner.timeline(frames, transcript)
        if self.source == "oracle" and own:
            return recorded_spans(meta)
        span = speech_span(meta)   # subtitles, and oracle timing of another clip's words: this clip's speech span
        if span is None:
            return []
        durations = self.aligner.durations if self.aligner is not None else DurationModel()
        return durations.fill(self.phonemizer(transcript), *span)


def evaluate_dialogue(pipeline: V2APipeline, *, data: str, split: str, out_dir: str | Path,
                      recognizer: Callable[[np.ndarray, int], str], timing: str = "video",
                      aligner: str | Path | LipAligner | None = None,
                      batch_size: int = 25, max_clips: int | None = None, steps: int | None = None,
                      cfg_scale: float | None = None, seed: int = 0,
                      speaker_types: Callable[[np.ndarray, int], str] | None = None) -> dict[str, float]:
    """Score the dialogue of ``pipeline`` on ``data``'s ``split``; writes ``dialogue.json`` and merges the metrics
    into ``metrics.json`` (both under ``out_dir``). Returns the metrics. ``speaker_types`` (audio, rate -> "man" /
    "woman") adds the speaker-type metrics."""
    if "transcript" not in pipeline.text_inputs:
        raise ValueError("dialogue=true needs a model conditioned on the transcript (experiment=v2a_dialogue_*)")
    if isinstance(aligner, str | Path):
        aligner = LipAligner.from_pretrained(aligner, device=pipeline.device)
    timer = Timing(timing, aligner)
    spec = pipeline.spec
    sr = spec.sample_rate
    generator = torch.Generator().manual_seed(seed)
    rows: list[dict] = []
    batches = iterate_batches(data, split, spec, batch_size, max_clips)
    for batch in tqdm(batches, desc=f"dialogue ({timing} timing)", unit="batch"):
        metas = batch["meta"]
        keep = [i for i, m in enumerate(metas) if (m.get("transcript") or "").strip()]
        if len(keep) < 2:
            continue
        frames = batch["frames"][keep]
        metas = [metas[i] for i in keep]
        own = [m["transcript"] for m in metas]
        other = own[1:] + own[:1]   # every clip is given its neighbour's transcript
        captions = [m.get("caption") or "" for m in metas]
        sampling = dict(steps=steps, cfg_scale=cfg_scale, generator=generator)

        own_phonemes = [timer(m, f, t, own=True) for m, f, t in zip(metas, frames, own, strict=True)]
        other_phonemes = [timer(m, f, t, own=False) for m, f, t in zip(metas, frames, other, strict=True)]
        audio = {"generated": _generate(pipeline, frames, captions, own, own_phonemes, **sampling),
                 "swapped": _generate(pipeline, frames, captions, other, other_phonemes, **sampling)}
        predicted = [word_starts(p) for p in own_phonemes]
        asked: list[tuple[str, str] | None] = [None] * len(metas)
        if speaker_types is not None and "prompt" in pipeline.text_inputs:
            # the voice the prompt chooses: the same clips, with the prompt asking for the other speaker type
            asked = [ask_for_other_type(c) for c in captions]
            prompts = [a[0] if a else c for a, c in zip(asked, captions, strict=True)]
            audio["asked"] = _generate(pipeline, frames, prompts, own, own_phonemes, **sampling)
        gt = batch["audio"][keep].numpy()
        for i, meta in enumerate(metas):
            recorded = [float(e["time"]) for e in meta.get("events", []) if e.get("kind") == "word"]
            errors = [abs(a - b) * spec.fps for a, b in zip(predicted[i], recorded, strict=False)] \
                if len(predicted[i]) == len(recorded) else []
            mouth = mouth_track(meta)
            rows.append({
                "key": batch["key"][keep[i]], "transcript": own[i], "given_swapped": other[i],
                "heard": recognizer(audio["generated"][i], sr), "heard_swapped": recognizer(audio["swapped"][i], sr),
                "heard_gt": recognizer(gt[i], sr),
                "lip": lip_envelope_correlation(audio["generated"][i], mouth, sr, spec.fps) if mouth is not None else None,
                "lip_gt": lip_envelope_correlation(gt[i], mouth, sr, spec.fps) if mouth is not None else None,
                "word_onset_err_frames": errors,
            })
            if speaker_types is not None and (speaker := speaker_of(meta)) is not None:
                rows[-1].update(speaker=speaker, speaker_heard=speaker_types(audio["generated"][i], sr),
                                speaker_heard_gt=speaker_types(gt[i], sr))
                if asked[i] is not None:
                    rows[-1].update(speaker_asked=asked[i][1], speaker_heard_asked=speaker_types(audio["asked"][i], sr))
        batch_rows = rows[-len(metas):]
        for i, row in enumerate(batch_rows):   # the floor: the type heard in the next clip's ground truth
            other_row = batch_rows[(i + 1) % len(batch_rows)]
            if "speaker" in row and "speaker_heard_gt" in other_row:
                row["speaker_heard_other"] = other_row["speaker_heard_gt"]
    if not rows:
        raise ValueError(f"{data} ({split}) has no clips with a transcript (build data with synthetic_dialogue)")
    metrics = summarize(rows)
    write_results(Path(out_dir), metrics, rows, timing)
    return metrics


def _generate(pipeline: V2APipeline, frames: torch.Tensor, prompts: list[str], transcripts: list[str],
              phonemes: list, **sampling) -> np.ndarray:
    """Audio [B, samples] for ``frames`` with the texts (and timed phonemes) the pipeline's model reads."""
    texts = {k: v for k, v in dict(prompt=prompts, transcript=transcripts).items() if k in pipeline.text_inputs}
    kwargs = {"phonemes": phonemes} if pipeline.net.reads_phonemes else {}
    return pipeline.generate_audio(frames, **sampling, **texts, **kwargs).cpu().numpy()


def summarize(rows: list[dict]) -> dict[str, float]:
    """The speech metrics of the scored clips, beside their ceilings and floor."""
    def rates(heard: str, against: str) -> dict[str, float]:
        return error_rates([r[heard] or "" for r in rows], [r[against] for r in rows])

    def mean(key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None and np.isfinite(r[key])]
        return float(np.mean(values)) if values else float("nan")

    generated, swapped, gt = rates("heard", "transcript"), rates("heard_swapped", "given_swapped"), rates("heard_gt", "transcript")
    errors = [e for r in rows for e in r["word_onset_err_frames"]]
    return {
        "speech/wer": generated["wer"], "speech/cer": generated["cer"],
        "speech/wer_swapped": swapped["wer"], "speech/cer_swapped": swapped["cer"],
        "speech/lip_corr": mean("lip"), "speech/word_onset_err_frames": float(np.median(errors)) if errors else float("nan"),
        "ref/gt_wer": gt["wer"], "ref/gt_cer": gt["cer"], "ref/gt_lip_corr": mean("lip_gt"),
        "ref/mismatched_wer": rates("heard_gt", "given_swapped")["wer"],
        "eval/speech_clips": float(len(rows)), "eval/word_onsets_scored": float(len(errors)),
        **_speaker_metrics(rows),
    }


def _speaker_metrics(rows: list[dict]) -> dict[str, float]:
    """Speaker-type accuracy of the generated audio, its ground-truth ceiling and mismatched floor (clips with a type)."""
    typed = [r for r in rows if "speaker_heard" in r]
    if not typed:
        return {}
    floor = [r["speaker_heard_other"] == r["speaker"] for r in typed if "speaker_heard_other" in r]
    asked = [r["speaker_heard_asked"] == r["speaker_asked"] for r in typed if "speaker_asked" in r]
    return {
        "speech/speaker_type_acc": float(np.mean([r["speaker_heard"] == r["speaker"] for r in typed])),
        # the prompt asks for the other type: a voice that follows the prompt scores as high as above
        **({"speech/speaker_type_acc_asked_other": float(np.mean(asked))} if asked else {}),
        "ref/gt_speaker_type_acc": float(np.mean([r["speaker_heard_gt"] == r["speaker"] for r in typed])),
        "ref/mismatched_speaker_type_acc": float(np.mean(floor)) if floor else float("nan"),
        "eval/speaker_type_clips": float(len(typed)),
    }


def write_results(out: Path, metrics: dict[str, float], rows: list[dict], timing: str) -> None:
    """``dialogue.json`` (metrics and every clip's transcripts) and the metrics merged into ``metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "dialogue.json", {"timing": timing, "metrics": metrics, "clips": rows})
    path = out / "metrics.json"
    report = json.loads(path.read_text()) if path.is_file() else {"metrics": {}}
    report["metrics"] = {**report.get("metrics", {}), **metrics}
    report["dialogue_timing"] = timing
    _write_json(path, report)


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=float))
    os.replace(tmp, path)
