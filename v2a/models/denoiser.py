"""The flow-matching denoiser: a transformer over mel tokens with time-aligned visual tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from v2a.models.layers import AdaLNBlock, TimestepEmbedding, sinusoidal
from v2a.shapes import ClipSpec, frames_to_tokens

TEXT_STREAMS = ("prompt", "transcript")


class MelDenoiser(nn.Module):
    """Predicts the flow velocity of a noisy normalised log-mel.

    Audio tokens are groups of ``spec.mel_frames_per_token`` mel frames. Visual tokens (one per video
    frame) are repeated ``spec.tokens_per_video_frame`` times and **added** to the audio tokens they
    cover (``align_visual=True``), so token i sees the frame shown while it sounds. With
    ``align_visual=False`` only the pooled clip token conditions the model (the ablation);
    ``visual_dim=None`` removes video conditioning altogether (the no-video ablation).
    ``visual_mask`` (bool [B]) replaces visual conditioning by learned null embeddings (CFG dropout).

    Text (``text_streams`` of ``prompt``/``transcript``, features of width ``text_dim``) reaches the
    audio tokens by cross-attention in every block, over one joint sequence: a learned null token
    (always present, so a sample without text attends to it alone) followed by each stream's tokens
    plus a learned stream embedding. The pooled prompt also joins the adaLN conditioning vector. A
    dropped stream (``{name}_keep`` False) is all padding, a dropped pooled prompt the learned null.
    Text parts start at zero output: a text model begins as the same function as a video-only one.

    ``phoneme_dim`` (the transcript as a phoneme track, one feature per audio token) is *added* to the audio
    tokens in time, like the visual tokens; a dropped transcript (``transcript_keep`` False) adds a learned
    null instead.

    ``prior_input`` (models whose flow starts from the phoneme prior, ``sampler.prior_source``) adds the prior's mel
    tokens to the audio tokens, never dropped: the prior is where the path started, not a condition to guide by, so
    both guidance branches must know it to tell the noise from the prior in ``x`` (Grad-TTS feeds its decoder the
    same mean it starts from).

    ``gelu``: the blocks' GELU, ``"none"`` (exact; the size presets' choice) or ``"tanh"`` (the approximation,
    about 3x slower on the CPU; the default, so checkpoints whose config predates the setting load as trained).
    """

    def __init__(self, *, spec: ClipSpec, visual_dim: int | None, width: int = 128, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0, align_visual: bool = True, text_dim: int | None = None,
                 text_streams: Sequence[str] = (), phoneme_dim: int | None = None, gelu: str = "tanh",
                 prior_input: bool = False) -> None:
        super().__init__()
        text_streams = tuple(text_streams or ())
        unknown = [s for s in text_streams if s not in TEXT_STREAMS]
        if unknown or len(set(text_streams)) != len(text_streams):
            raise ValueError(f"text_streams must be distinct names from {TEXT_STREAMS}, got {list(text_streams)}")
        if text_streams and text_dim is None:
            raise ValueError("text_streams need text_dim (the text encoder's feature width)")
        self.spec = spec
        self.align_visual = align_visual
        self.width = width
        self.visual_dim = visual_dim
        self.text_dim = text_dim if text_streams else None
        self.text_streams = text_streams
        self.in_proj = nn.Linear(spec.token_dim, width)
        if visual_dim is not None:
            self.visual_proj = nn.Linear(visual_dim, width)
            self.pooled_proj = nn.Linear(visual_dim, width)
            self.null_visual = nn.Parameter(torch.zeros(width))
            self.null_pooled = nn.Parameter(torch.zeros(width))
        self.time_embed = TimestepEmbedding(width)
        if gelu not in ("tanh", "none"):
            raise ValueError(f"gelu must be 'tanh' or 'none' (exact), got {gelu!r}")
        self.blocks = nn.ModuleList(AdaLNBlock(width, heads, mlp_ratio, context_dim=self.text_dim, gelu=gelu)
                                    for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_mod = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out_proj = nn.Linear(width, spec.token_dim)
        nn.init.zeros_(self.final_mod[1].weight)
        nn.init.zeros_(self.final_mod[1].bias)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        if text_streams:  # registered last: a video-only model's parameters keep their order and names
            self.null_text = nn.Parameter(torch.zeros(1, text_dim))
            self.stream_embed = nn.Parameter(torch.randn(len(text_streams), text_dim) * 0.02)
            if "prompt" in text_streams:
                self.prompt_proj = nn.Linear(text_dim, width)
                nn.init.zeros_(self.prompt_proj.weight)  # adds nothing to adaLN until trained
                nn.init.zeros_(self.prompt_proj.bias)
                self.null_prompt = nn.Parameter(torch.zeros(width))
        self.phoneme_dim = phoneme_dim
        if phoneme_dim is not None:  # registered last: models without it keep their parameter names
            self.phoneme_proj = nn.Linear(phoneme_dim, width)
            self.null_phonemes = nn.Parameter(torch.zeros(width))
        self.prior_proj = nn.Linear(spec.token_dim, width) if prior_input else None

    @property
    def reads_prior(self) -> bool:
        """Whether ``forward`` takes the phoneme prior's mel tokens (``prior_input``)."""
        return self.prior_proj is not None

    def tokenize(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, F] -> [B, F / k, n_mels * k] (k mel frames per token)."""
        batch, n_mels, frames = mel.shape
        k = self.spec.mel_frames_per_token
        return mel.reshape(batch, n_mels, frames // k, k).permute(0, 2, 1, 3).reshape(batch, frames // k, n_mels * k)

    def untokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, n_tokens, _ = tokens.shape
        k = self.spec.mel_frames_per_token
        return tokens.reshape(batch, n_tokens, -1, k).permute(0, 2, 1, 3).reshape(batch, -1, n_tokens * k)

    def align(self, visual_tokens: torch.Tensor, n_audio_tokens: int) -> torch.Tensor:
        """[B, T_v, D] -> [B, T_a, D]: each video frame's token repeated over the audio tokens it covers."""
        return frames_to_tokens(visual_tokens, self.spec.tokens_per_video_frame, n_audio_tokens)

    def _visual(self, h: torch.Tensor, visual_tokens: torch.Tensor | None, pooled: torch.Tensor | None,
                keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(audio tokens + aligned visual tokens, pooled visual conditioning) — or unchanged without video."""
        if self.visual_dim is None:
            return h, None
        if visual_tokens is None or pooled is None:
            raise ValueError("this denoiser is conditioned on video: pass visual_tokens and pooled")
        pooled_h = torch.where(keep[:, None], self.pooled_proj(pooled), self.null_pooled)
        if self.align_visual:
            visual = self.visual_proj(self.align(visual_tokens, h.shape[1]))
            h = h + torch.where(keep[:, None, None], visual, self.null_visual)
        return h, pooled_h

    def _text(self, batch: int, device: torch.device, text: dict[str, torch.Tensor | None],
              keep: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(context [B, 1 + L, C], context mask [B, 1 + L], pooled prompt conditioning [B, W]) or Nones."""
        if not self.text_streams:
            return None, None, None
        context = [self.null_text.expand(batch, 1, -1)]
        masks = [torch.ones(batch, 1, dtype=torch.bool, device=device)]
        prompt_h = None
        for index, name in enumerate(self.text_streams):
            tokens, mask = text.get(f"{name}_tokens"), text.get(f"{name}_mask")
            if tokens is None:  # not given at all: the same as all padding
                continue
            mask = mask.bool() & keep[name][:, None]
            context.append(tokens + self.stream_embed[index])
            masks.append(mask)
            if name == "prompt" and text.get("prompt_pooled") is not None:
                present = mask.any(dim=1, keepdim=True)
                prompt_h = torch.where(present, self.prompt_proj(text["prompt_pooled"]), self.null_prompt)
        if "prompt" in self.text_streams and prompt_h is None:
            prompt_h = self.null_prompt.expand(batch, -1)
        return torch.cat(context, dim=1), torch.cat(masks, dim=1), prompt_h

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, visual_tokens: torch.Tensor | None = None,
                pooled: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None,
                prompt_keep: torch.Tensor | None = None, transcript_keep: torch.Tensor | None = None,
                token_mask: torch.Tensor | None = None, phoneme_tokens: torch.Tensor | None = None,
                phoneme_prior: torch.Tensor | None = None, **text: torch.Tensor | None) -> torch.Tensor:
        """Velocity [B, n_mels, F] of ``x`` at flow time ``t``.

        ``text``: ``{stream}_tokens`` [B, L, text_dim], ``{stream}_mask`` bool [B, L] and ``prompt_pooled``
        [B, text_dim] (from the text encoders); ``*_keep`` / ``visual_mask`` (bool [B]) drop a condition
        per sample; ``token_mask`` (bool [B, F / k], False on padded audio tokens) keeps padding out of
        the self-attention.
        """
        unknown = set(text) - {f"{s}_{part}" for s in TEXT_STREAMS for part in ("tokens", "mask")} - {"prompt_pooled"}
        if unknown:
            raise TypeError(f"unexpected conditions {sorted(unknown)}")
        batch = x.shape[0]
        ones = torch.ones(batch, dtype=torch.bool, device=x.device)
        h = self.in_proj(self.tokenize(x))
        n_tokens = h.shape[1]
        # Audio positions in units of video frames, so audio and video share one positional clock.
        positions = torch.arange(n_tokens, device=x.device) / self.spec.tokens_per_video_frame
        h = h + sinusoidal(positions, self.width)[None]
        h, pooled_h = self._visual(h, visual_tokens, pooled, ones if visual_mask is None else visual_mask)
        keep = {"prompt": ones if prompt_keep is None else prompt_keep,
                "transcript": ones if transcript_keep is None else transcript_keep}
        context, context_mask, prompt_h = self._text(batch, x.device, text, keep)
        if self.phoneme_dim is not None:
            if phoneme_tokens is None:
                raise ValueError("this denoiser reads the transcript as a phoneme track: pass phoneme_tokens")
            spoken = self.phoneme_proj(phoneme_tokens[:, :n_tokens])
            h = h + torch.where(keep["transcript"][:, None, None], spoken, self.null_phonemes)
        if self.prior_proj is not None:
            if phoneme_prior is None:
                raise ValueError("this denoiser reads the phoneme prior its flow starts from: pass phoneme_prior")
            h = h + self.prior_proj(phoneme_prior[:, :n_tokens])
        cond = self.time_embed(t)
        for extra in (pooled_h, prompt_h):
            if extra is not None:
                cond = cond + extra
        for block in self.blocks:
            h = block(h, cond, context, context_mask, token_mask)
        shift, scale = self.final_mod(cond)[:, None].chunk(2, dim=-1)
        return self.untokenize(self.out_proj(self.final_norm(h) * (1 + scale) + shift))
