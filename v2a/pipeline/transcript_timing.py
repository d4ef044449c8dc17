"""When the words of a transcript are spoken in a video: for models that hear the transcript as a phoneme track.

Subtitles (SRT/WebVTT) give each cue's span, filled by typical phoneme durations; plain text is placed on the
frames where the mouth moves by the lip-driven aligner (``aligner=``, experiment=aligner_tiny).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from v2a.media import VideoInput, read_windows
from v2a.pipeline.aligner import LipAligner
from v2a.pipeline.pipeline import V2APipeline
from v2a.text.phoneme_timing import DurationModel, PhonemeSpan
from v2a.text.phonemes import Phonemizer
from v2a.text.subtitles import is_subtitles, parse_subtitles

log = logging.getLogger(__name__)


def transcript_timeline(pipeline: V2APipeline, video: VideoInput | Callable[[list[int], int], torch.Tensor],
                        transcript: str | None, n_frames: int, *, aligner: LipAligner | None) -> list[PhonemeSpan] | None:
    """The transcript's phonemes in time over the whole video (seconds from its first frame), or None when the
    model does not read a phoneme track or no transcript is given. ``video``: a file, or a reader of frames on
    the model's grid (``read(starts, count)`` -> uint8 [len(starts), count, 3, S, S])."""
    if not transcript or not pipeline.net.reads_phonemes:
        return None
    phonemizer = aligner.phonemizer if aligner is not None else Phonemizer()
    if is_subtitles(transcript):
        if aligner is None:
            log.warning("no aligner= given: subtitle cues are filled with uniform phoneme durations")
        durations = aligner.durations if aligner is not None else DurationModel()
        return [span for cue in parse_subtitles(transcript) for span in durations.fill(phonemizer(cue.text), cue.start,
                                                                                          cue.end)]
    if aligner is None:
        raise ValueError("this model hears the transcript as timed phonemes: give aligner=ALIGNER_EXPORT (python "
                         "train.py experiment=aligner_tiny) to time it from the video, or a timed .srt/.vtt transcript")
    spec = pipeline.spec
    if abs(aligner.fps - spec.fps) > 1e-6:
        raise ValueError(f"the aligner works at {aligner.fps} fps but the model at {spec.fps} fps")
    frames = (video([0], n_frames) if callable(video) else read_windows(video, [0], n_frames, spec))[0]
    return aligner.timeline(frames, transcript)
