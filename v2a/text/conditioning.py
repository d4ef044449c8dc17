"""Prompts and transcripts as token ids at inference, with the tokenizer stored in the checkpoint/export.

The loader (``v2a.text.tokens``) tokenises the same way during training: stripped text,
sentencepiece ids, truncated to a fixed length, padded with ``PAD_ID``, a mask of real tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import sentencepiece as spm
import torch

from v2a.shapes import MODALITIES
from v2a.text.tokens import DEFAULT_MAX_TOKENS, pad_ids

# Which loader field feeds which text stream of the model, and its default length.
STREAM_FIELDS = {"prompt": "caption", "transcript": "transcript", "negative_prompt": "negative_caption"}


class PromptTokenizer:
    """A sentencepiece model held as bytes (it travels inside checkpoints): text -> (ids [L], mask [L])."""

    def __init__(self, model: bytes, *, max_tokens: dict[str, int] | None = None) -> None:
        self.model = bytes(model)
        try:
            self.processor = spm.SentencePieceProcessor(model_proto=self.model)
            self.vocab_size = self.processor.get_piece_size()
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"the stored tokenizer is not a sentencepiece model: {error}") from None
        self.max_tokens = {**DEFAULT_MAX_TOKENS, **(max_tokens or {})}

    def length(self, stream: str) -> int:
        return int(self.max_tokens[STREAM_FIELDS[stream]])

    def __call__(self, text: str | None, stream: str, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids int64 [batch, L] and mask bool [batch, L] of ``text`` (None or blank: all padding)."""
        text = (text or "").strip()
        ids, mask = pad_ids(self.processor.encode(text, out_type=int) if text else [], self.length(stream))
        row, mask = torch.from_numpy(ids), torch.from_numpy(mask)
        return row.expand(batch, -1).clone(), mask.expand(batch, -1).clone()


TOKENIZER_KEY = "v2a_tokenizer"  # where a training checkpoint stores the tokenizer's bytes
# one text for every row, one text per row, or ids and mask already
TextInput = str | list[str] | tuple[torch.Tensor, torch.Tensor] | None


def check_modalities(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a clear error naming what is not a modality."""
    names = tuple(names)
    unknown = [n for n in names if n not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modalities {unknown} (known: {list(MODALITIES)})")
    return names


class TextConditioning:
    """The text side of a V2A model: its streams, its tokenizer, and text as the network wants it.

    The tokenizer is read once when training starts (``model.tokenizer``, else the data's own) and
    from then on lives in the module: saved in checkpoints and exports, restored with them.
    """

    def __init__(self, streams: Sequence[str], *, tokenizer_path: str | Path | None = None,
                 max_tokens: dict[str, int] | None = None, vocab_sizes: dict[str, int | None] | None = None,
                 on_tokenizer: Callable[[PromptTokenizer], None] | None = None) -> None:
        self.streams = tuple(streams)
        self.tokenizer_path = tokenizer_path
        self.max_tokens = dict(max_tokens) if max_tokens else None
        # None: an encoder that takes any vocabulary (a pretrained one decodes the ids back to text)
        self.vocab_sizes = {name: size for name, size in (vocab_sizes or {}).items() if size is not None}
        self.on_tokenizer = on_tokenizer   # told whenever the tokenizer is set (encoders that read text)
        self.tokenizer: PromptTokenizer | None = None

    def load_for_training(self, data_tokenizer: str | Path | None) -> None:
        """Read the configured tokenizer (or the data loader's); it must be the one the batches use."""
        if not self.streams:
            return
        path = self.tokenizer_path or data_tokenizer
        if path is None:
            raise ValueError("a text-conditioned model needs a tokenizer: train one with "
                             "`python data_prep/train_tokenizer.py root=DATA` (or set data.tokenizer)")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model {path} does not exist (train it with data_prep/train_tokenizer.py)")
        model = path.read_bytes()
        if data_tokenizer is not None and Path(data_tokenizer).read_bytes() != model:
            raise ValueError(f"model.tokenizer ({path}) is not the tokenizer the data loader uses ({data_tokenizer})")
        self.set_tokenizer(model)

    def set_tokenizer(self, model: bytes) -> None:
        tokenizer = PromptTokenizer(model, max_tokens=self.max_tokens)
        for name, size in self.vocab_sizes.items():
            if tokenizer.vocab_size > size:
                raise ValueError(f"the tokenizer has {tokenizer.vocab_size} pieces but the {name} encoder only "
                                 f"{size} embeddings: raise model.{name}_encoder.vocab_size")
        self.tokenizer = tokenizer
        if self.on_tokenizer is not None:
            self.on_tokenizer(tokenizer)

    def from_batch(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{stream: (ids, mask)}`` from a loader batch (captions feed the prompt)."""
        out = {}
        for name in self.streams:
            field = STREAM_FIELDS[name]
            if f"{field}_tokens" not in batch:
                raise ValueError(f"this model is conditioned on {name} but the batch has no {field}_tokens: train "
                                 "the data's tokenizer (python data_prep/train_tokenizer.py root=DATA)")
            out[name] = (batch[f"{field}_tokens"], batch[f"{field}_mask"])
        return out

    def tokenize(self, batch: int, device: torch.device | str, **texts: TextInput) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (ids [B, L], mask [B, L])}`` for the given texts (``prompt``, ``negative_prompt``,
        ``transcript``: a string for every row, a list of one string per row — a blank one is an empty row —
        or ids and mask already); None and blank strings are left out."""
        out = {}
        for name, value in texts.items():
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            stream = "prompt" if name == "negative_prompt" else name
            if stream not in self.streams:
                raise ValueError(f"this model has no conditioning for {name} "
                                 f"(it has: {', '.join(self.streams) or 'video only'})")
            if isinstance(value, (str, list)):
                if self.tokenizer is None:
                    raise ValueError("this model carries no tokenizer, so text cannot be tokenised "
                                     "(was it trained? checkpoints and exports of trained text models hold one)")
                if isinstance(value, str):
                    ids, mask = self.tokenizer(value, name, batch)
                elif len(value) != batch:
                    raise ValueError(f"{name}: {len(value)} texts for a batch of {batch} (one per row)")
                else:
                    rows = [self.tokenizer(text, name) for text in value]
                    ids, mask = torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])
            else:
                ids, mask = value
            out[name] = (ids.to(device), mask.to(device).bool())
        return out
