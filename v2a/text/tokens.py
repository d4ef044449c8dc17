"""The one sentencepiece wrapper: text as fixed-length token ids with masks, in the loader and at inference.

The model lives beside the shards (``ROOT/tokenizer.model``, trained by ``data_prep/train_tokenizer.py``)
and, once a model is trained, inside its checkpoint and export (as bytes). Both sides tokenise the same
way: stripped text, sentencepiece ids, truncated / padded with ``PAD_ID`` to a fixed length per field,
a mask of real tokens; missing or empty text gives an all-padding row whose mask is all False.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch

log = logging.getLogger(__name__)

TOKENIZER_NAME = "tokenizer.model"
TEXT_FIELDS = ("caption", "transcript", "negative_caption")
# Fixed special ids (set when training): 0 doubles as padding, so a zero row is "no text".
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
DEFAULT_MAX_TOKENS = {"caption": 64, "transcript": 128, "negative_caption": 64}
# Which loader field feeds which text stream of a model.
STREAM_FIELDS = {"prompt": "caption", "transcript": "transcript", "negative_prompt": "negative_caption"}


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
    """A sentencepiece model held as bytes, with a fixed token count per text field.

    Build it from bytes (a checkpoint's) or with :meth:`from_file`. Pickles as its bytes (data-loader
    workers rebuild the processor). Two fixed-length views of the same tokenisation:

    - :meth:`fields`: a sample's metadata -> ``{field}_tokens`` int64 [L] and ``{field}_mask`` bool [L] for
      every field (what the loader puts in batches);
    - ``tokenizer(text, stream, batch)``: one text for a model's text stream (``prompt``, ``transcript``,
      ``negative_prompt``) -> ids int64 [batch, L] and mask bool [batch, L] (inference).
    """

    def __init__(self, model: bytes, *, max_tokens: dict[str, int] | None = None, path: str | Path | None = None) -> None:
        self.model = bytes(model)
        self.path = Path(path) if path is not None else None  # the file it was read from, if any
        self.max_tokens = {**DEFAULT_MAX_TOKENS, **(max_tokens or {})}
        if any(int(n) <= 0 for n in self.max_tokens.values()):
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")
        self._processor: spm.SentencePieceProcessor | None = None
        try:  # a broken model is one clear error here, not a skipped sample per clip later
            self.processor.get_piece_size()
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"{self.path or 'the stored tokenizer'} is not a sentencepiece model: {error}") from None

    @classmethod
    def from_file(cls, path: str | Path, *, max_tokens: dict[str, int] | None = None) -> TextTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model {path} does not exist (train it with "
                                    "data_prep/train_tokenizer.py)")
        return cls(path.read_bytes(), max_tokens=max_tokens, path=path)

    @property
    def processor(self) -> spm.SentencePieceProcessor:
        if self._processor is None:
            self._processor = spm.SentencePieceProcessor(model_proto=self.model)
        return self._processor

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_processor": None}

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str | None) -> list[int]:
        text = (text or "").strip()
        return self.processor.encode(text, out_type=int) if text else []

    def decode(self, ids: np.ndarray | torch.Tensor | list[int]) -> str:
        return self.processor.decode([int(i) for i in ids if int(i) != PAD_ID])

    def length(self, stream: str) -> int:
        """Token count of a model's text stream (that of the loader field feeding it)."""
        return int(self.max_tokens[STREAM_FIELDS[stream]])

    def fields(self, meta: dict) -> dict[str, np.ndarray]:
        """Token ids int64 [L] and mask bool [L] of every text field of a sample's metadata."""
        out: dict[str, np.ndarray] = {}
        for field, length in self.max_tokens.items():
            out[f"{field}_tokens"], out[f"{field}_mask"] = pad_ids(self.encode(text_of(meta, field)), int(length))
        return out

    def __call__(self, text: str | None, stream: str, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids int64 [batch, L] and mask bool [batch, L] of ``text`` for ``stream`` (None or blank: all padding)."""
        ids, mask = pad_ids(self.encode(text), self.length(stream))
        row, mask = torch.from_numpy(ids), torch.from_numpy(mask)
        return row.expand(batch, -1).clone(), mask.expand(batch, -1).clone()


def find_tokenizer(root: str | Path, path: str | Path | None = None,
                   max_tokens: dict[str, int] | None = None) -> TextTokenizer | None:
    """The tokenizer at ``path`` (must exist), else ``root/tokenizer.model`` when present, else None."""
    if path is not None:
        return TextTokenizer.from_file(path, max_tokens=max_tokens)
    default = Path(root) / TOKENIZER_NAME
    if default.is_file():
        return TextTokenizer.from_file(default, max_tokens=max_tokens)
    log.info("no %s in %s: batches carry no text tokens", TOKENIZER_NAME, root)
    return None
