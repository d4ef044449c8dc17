"""The text side of a model at inference: its text streams and its tokenizer, stored in the checkpoint/export.

The tokenizer is :class:`v2a.text.tokens.TextTokenizer`, the loader's own: training batches and inference
text are tokenised the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from v2a.shapes import MODALITIES
from v2a.text.tokens import STREAM_FIELDS, TextTokenizer

__all__ = ["STREAM_FIELDS", "TOKENIZER_KEY", "TextConditioning", "TextInput", "check_modalities"]

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
                 on_tokenizer: Callable[[TextTokenizer], None] | None = None) -> None:
        self.streams = tuple(streams)
        self.tokenizer_path = tokenizer_path
        self.max_tokens = dict(max_tokens) if max_tokens else None
        # None: an encoder that takes any vocabulary (a pretrained one decodes the ids back to text)
        self.vocab_sizes = {name: size for name, size in (vocab_sizes or {}).items() if size is not None}
        self.on_tokenizer = on_tokenizer   # told whenever the tokenizer is set (encoders that read text)
        self.tokenizer: TextTokenizer | None = None

    def load_for_training(self, data_tokenizer: str | Path | None) -> None:
        """Read the configured tokenizer (or the data loader's); it must be the one the batches use."""
        if not self.streams:
            return
        path = self.tokenizer_path or data_tokenizer
        if path is None:
            raise ValueError("a text-conditioned model needs a tokenizer: train one with "
                             "`python data_prep/train_tokenizer.py root=DATA` (or set data.tokenizer)")
        model = TextTokenizer.from_file(path).model
        if data_tokenizer is not None and Path(data_tokenizer).read_bytes() != model:
            raise ValueError(f"model.tokenizer ({path}) is not the tokenizer the data loader uses ({data_tokenizer})")
        self.set_tokenizer(model)

    def set_tokenizer(self, model: bytes) -> None:
        tokenizer = TextTokenizer(model, max_tokens=self.max_tokens)
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
