"""Captions, transcripts and negative captions as fixed-length sentencepiece token ids with masks.

The model lives beside the shards (``ROOT/tokenizer.model``, trained by ``data_prep/train_tokenizer.py``).
Every field has a fixed length (truncated / padded with ``PAD_ID``), so batches keep one shape; missing
or empty text gives an all-padding row whose mask is all False.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import sentencepiece as spm

log = logging.getLogger(__name__)

TOKENIZER_NAME = "tokenizer.model"
TEXT_FIELDS = ("caption", "transcript", "negative_caption")
# Fixed special ids (set when training): 0 doubles as padding, so a zero row is "no text".
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
DEFAULT_MAX_TOKENS = {"caption": 64, "transcript": 128, "negative_caption": 64}


def pad_ids(ids: list[int], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids truncated to ``length`` and padded with ``PAD_ID`` (int64 [length]), and the mask of real ones."""
    ids = ids[:length]
    row = np.full(length, PAD_ID, dtype=np.int64)
    row[: len(ids)] = ids
    return row, np.arange(length) < len(ids)


def text_of(meta: dict, field: str) -> str:
    """The field's text, or "" when it is missing, empty or not a string."""
    value = meta.get(field)
    return value.strip() if isinstance(value, str) else ""


class TextTokenizer:
    """A sentencepiece model applied to a sample's text fields: ``{field}_tokens`` and ``{field}_mask``."""

    def __init__(self, path: str | Path, *, max_tokens: dict[str, int] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"tokenizer model {self.path} does not exist (train it with "
                                    "data_prep/train_tokenizer.py)")
        self.max_tokens = dict(max_tokens or DEFAULT_MAX_TOKENS)
        if any(n <= 0 for n in self.max_tokens.values()):
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        self._model = self.path.read_bytes()  # kept as bytes: data-loader workers rebuild the processor
        self._processor: spm.SentencePieceProcessor | None = None
        try:  # a broken file is one clear error here, not a skipped sample per clip later
            self.processor.get_piece_size()
        except RuntimeError as error:
            raise ValueError(f"{self.path} is not a sentencepiece model: {error}") from None

    @property
    def processor(self) -> spm.SentencePieceProcessor:
        if self._processor is None:
            self._processor = spm.SentencePieceProcessor(model_proto=self._model)
        return self._processor

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_processor": None}

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text, out_type=int) if text else []

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return self.processor.decode([int(i) for i in ids if int(i) != PAD_ID])

    def __call__(self, meta: dict) -> dict[str, np.ndarray]:
        """Token ids int64 [L] and mask bool [L] of each configured field of a sample's metadata."""
        out: dict[str, np.ndarray] = {}
        for field, length in self.max_tokens.items():
            out[f"{field}_tokens"], out[f"{field}_mask"] = pad_ids(self.encode(text_of(meta, field)), length)
        return out


def find_tokenizer(root: str | Path, path: str | Path | None = None,
                   max_tokens: dict[str, int] | None = None) -> TextTokenizer | None:
    """The tokenizer at ``path`` (must exist), else ``root/tokenizer.model`` when present, else None."""
    if path is not None:
        return TextTokenizer(path, max_tokens=max_tokens)
    default = Path(root) / TOKENIZER_NAME
    if default.is_file():
        return TextTokenizer(default, max_tokens=max_tokens)
    log.info("no %s in %s: batches carry no text tokens", TOKENIZER_NAME, root)
    return None
