"""The transcript as it is spoken: one phoneme per audio token, embedded with where in the phoneme the token is."""

from __future__ import annotations

import math

import torch
from torch import nn


class PhonemeTrackEncoder(nn.Module):
    """(phoneme ids [B, N], position in the phoneme [B, N]) -> features [B, N, dim], one per audio token.

    A phoneme embedding plus a few sinusoids of the position within the phoneme, then residual 1-D
    convolutions over time so each token also sees its neighbours (co-articulation). Id 0 means "no
    phoneme" (silence, padding). The denoiser *adds* the features to the audio tokens in time, as it adds
    the visual tokens: what is said reaches the audio at the moment it is said.

    ``prior_dim`` (the denoiser's token width, n_mels x mel frames per token) adds a linear head that
    predicts the mel tokens being spoken from the features (:meth:`prior`), trained by regression beside
    the flow loss, as Grad-TTS trains its encoder's mel prior: the regression gets clean gradients
    where the flow loss sees the speech through noise, so the phoneme features learn what each phoneme
    sounds like in a few hundred steps (docs/benchmarks.md, dialogue_prior). The sampler can start from
    the prior (the sampler's ``prior_start``). ``voice_dim`` (the prompt encoder's width) lets the pooled
    prompt shape the prior, so the voice the prompt names reaches the sampling start. ``visual_dim`` (the visual
    tokens' width) lets the frame-aligned visual tokens shape it: the phonemes say *what* is heard, the mouth how
    loud it is at each moment, so the sampling start already follows the lips.

    ``code_dim`` adds a *voice code*: a few numbers that say how the clip's voice sounds (its pitch, its timbre),
    which a regression prior cannot guess from the phonemes and so averages away (a mean over men's and women's
    pitches is no voice at all). In training the code is read from the clip's own mel over the tokens where a
    phoneme is spoken (:meth:`voice_code`, a bottleneck of ``code_dim`` tanh units) and shifts the prior's
    features, so the prior renders that voice; beside it a linear map from the pooled prompt (``code_prompt_dim``,
    the prompt encoder's width) learns to predict the code (:meth:`code_loss`), which is what generation uses:
    "a woman speaking" gives the code women's voices have. Without a prompt the prediction is the learnt mean code.
    The codes of one type still differ (a voice's pitch and formants): a learnt spread (:attr:`code_log_std`, fitted
    by the Gaussian likelihood of the read codes around the prediction) lets generation *draw* a code, one voice of
    the type asked for, instead of the type's mean (:meth:`predicted_code` with ``noise``).

    ``mouth_dim`` (the visual tokens' width) makes the track *lip-driven*: a linear reader turns each audio token's
    visual token into the mouth's opening there (0 shut .. 1 widest; trained by regression on the opening the clips
    record, :meth:`mouth_loss`), and that one number per token, detached, is embedded and added to the spoken
    phonemes' features before the convolutions. The phonemes say *what* is said, the mouth *how loud, and when
    inside a word*: the timing sources place a word's phonemes only approximately, the mouth shows where its vowels
    are. A scalar bottleneck, unlike ``visual_dim``'s free visual features, carries only what the lips show.

    ``prior_hidden`` gives the prior's head a hidden layer of that width. A linear head renders a mel that is linear
    in what shifts its features (the voice, the code): a voice's harmonics move across the mel bands with its pitch,
    which no linear map of a code draws.

    ``prior_own`` gives the prior a phoneme stack of its own (embedding, position, convolutions, as this one's, no
    mouth): the regression alone trains it, as a stand-alone regressor is trained, while the flow's gradient shapes
    the features the denoiser adds (:meth:`prior_features`). Shared, the two losses pull one set of features.
    """

    def __init__(self, *, vocab_size: int, dim: int = 128, layers: int = 2, kernel: int = 5,
                 position_frequencies: int = 4, prior_dim: int | None = None, voice_dim: int | None = None,
                 visual_dim: int | None = None, code_dim: int | None = None,
                 code_prompt_dim: int | None = None, mouth_dim: int | None = None, prior_own: bool = False,
                 prior_hidden: int = 0) -> None:
        super().__init__()
        if vocab_size < 3 or dim < 1 or layers < 0 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"bad phoneme track encoder: vocab_size={vocab_size}, dim={dim}, layers={layers}, "
                             f"kernel={kernel} (odd)")
        self.dim = dim
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(position_frequencies, dtype=torch.float32),
                             persistent=False)
        self.position = nn.Linear(2 * position_frequencies, dim)
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2), nn.GELU())
                                   for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.prior_dim = prior_dim
        if prior_hidden < 0:
            raise ValueError(f"prior_hidden must be >= 0, got {prior_hidden}")
        self.prior_head = ((nn.Sequential(nn.Linear(dim, prior_hidden), nn.GELU(), nn.Linear(prior_hidden, prior_dim))
                            if prior_hidden else nn.Linear(dim, prior_dim)) if prior_dim else None)
        if prior_own and not prior_dim:
            raise ValueError("prior_own needs a prior (prior_dim)")
        self.prior_track = (PhonemeTrackEncoder(vocab_size=vocab_size, dim=dim, layers=layers, kernel=kernel,
                                                position_frequencies=position_frequencies) if prior_own else None)
        # The voice: the pooled prompt ("a woman speaking") shifts the prior's features, so the expected mel
        # carries the voice the prompt asks for. Zero at first: the prior starts as the voice-free one.
        self.voice = nn.Linear(voice_dim, dim) if (voice_dim and prior_dim) else None
        if self.voice is not None:
            nn.init.zeros_(self.voice.weight)
            nn.init.zeros_(self.voice.bias)
        # The mouth: per-token visual features shift the prior's features (zero at first, as the voice).
        self.visual = (nn.Sequential(nn.Linear(visual_dim, dim), nn.GELU(), nn.Linear(dim, dim))
                       if (visual_dim and prior_dim) else None)
        if self.visual is not None:
            nn.init.zeros_(self.visual[-1].weight)
            nn.init.zeros_(self.visual[-1].bias)
        # The voice code: read from the clip's mel (training), predicted from the prompt (generation).
        has_code = bool(code_dim and prior_dim)
        self.code_reader = (nn.Sequential(nn.Linear(prior_dim, dim), nn.GELU(), nn.Linear(dim, code_dim), nn.Tanh())
                            if has_code else None)
        self.code_shift = nn.Linear(code_dim, dim) if has_code else None
        self.code_from_prompt = nn.Linear(code_prompt_dim, code_dim) if (has_code and code_prompt_dim) else None
        self.code_mean = nn.Parameter(torch.zeros(code_dim)) if has_code else None
        self.code_log_std = nn.Parameter(torch.zeros(code_dim)) if has_code else None
        # The mouth: visual token -> opening (a regression), opening -> features (what the track adds).
        self.mouth_reader = nn.Linear(mouth_dim, 1) if mouth_dim else None
        self.opening = (nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim)) if mouth_dim else None)

    @property
    def has_prior(self) -> bool:
        return self.prior_head is not None

    @property
    def reads_video(self) -> bool:
        """Whether the prior reads the frame-aligned visual tokens (built with ``visual_dim``)."""
        return self.visual is not None

    @property
    def reads_mouth(self) -> bool:
        """Whether the track reads the mouth's opening from the visual tokens (built with ``mouth_dim``)."""
        return self.mouth_reader is not None

    def read_mouth(self, visual: torch.Tensor) -> torch.Tensor:
        """The mouth's opening [B, N] at each audio token, from its visual token [B, N, mouth_dim]."""
        if self.mouth_reader is None:
            raise ValueError("this phoneme encoder does not read the mouth (mouth_dim is not set)")
        return self.mouth_reader(visual)[..., 0]

    @staticmethod
    def mouth_loss(predicted: torch.Tensor, recorded: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the read opening [B, N] against the recorded one [B, N], over the clips whose
        opening is ``known`` [B] (a clip without a talking head records none); 0 when none is."""
        n = min(predicted.shape[1], recorded.shape[1])
        weight = known.to(predicted.dtype)[:, None].expand(-1, n)
        error = (predicted[:, :n] - recorded[:, :n].to(predicted.dtype)).pow(2) * weight
        return error.sum() / weight.sum().clamp(min=1.0)

    @property
    def has_voice_code(self) -> bool:
        """Whether the prior renders a voice code (built with ``code_dim``)."""
        return self.code_reader is not None

    def voice_code(self, mel_tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The voice code [B, code_dim] of mel tokens [B, N, prior_dim], read over the tokens where a phoneme is
        spoken (``ids`` [B, N] > 0); a clip where nobody speaks gets zeros."""
        if self.code_reader is None:
            raise ValueError("this phoneme encoder has no voice code (code_dim is not set)")
        n = min(mel_tokens.shape[1], ids.shape[1])
        speaking = (ids[:, :n] > 0).to(mel_tokens.dtype)[..., None]
        hidden = self.code_reader[:2](mel_tokens[:, :n])
        pooled = (hidden * speaking).sum(1) / speaking.sum(1).clamp(min=1.0)
        return self.code_reader[2:](pooled) * (speaking.sum(1) > 0).to(pooled.dtype)

    def predicted_code(self, prompt_pooled: torch.Tensor | None, batch: int,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
        """The voice code [B, code_dim] the prompt asks for (the learnt mean code without a prompt); given ``noise``
        [B, code_dim] (unit normal, scaled by a temperature), a code drawn around it with the learnt spread."""
        if self.code_mean is None:
            raise ValueError("this phoneme encoder has no voice code (code_dim is not set)")
        if self.code_from_prompt is not None and prompt_pooled is not None:
            code = self.code_mean + self.code_from_prompt(prompt_pooled)
        else:
            code = self.code_mean.expand(batch, -1)
        return code if noise is None else code + self.code_log_std.exp() * noise.to(code)

    def code_loss(self, predicted: torch.Tensor, target: torch.Tensor, speaking: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted codes (from the prompt, and the mean code) against the codes read
        from clips where someone speaks (``speaking`` [B] bool), plus the Gaussian negative log-likelihood of the
        read codes around the prediction, which fits only the spread; the read codes are not moved by it."""
        target = target.detach()
        weight = speaking.to(target.dtype)[:, None]
        count = weight.sum().clamp(min=1.0) * target.shape[1]
        from_prompt = ((predicted - target).pow(2) * weight).sum() / count
        mean = ((self.code_mean - target).pow(2) * weight).sum() / count
        spread = (0.5 * (predicted.detach() - target).pow(2) * torch.exp(-2 * self.code_log_std)
                  + self.code_log_std) * weight
        return from_prompt + mean + spread.sum() / count

    def prior_features(self, ids: torch.Tensor, position: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The features [B, N, dim] the prior reads: the track's own ``features`` (from :meth:`forward`), or, built
        with ``prior_own``, those of the prior's own stack for the same phonemes (``ids``, ``position`` [B, N])."""
        return features if self.prior_track is None else self.prior_track(ids, position)

    def prior(self, features: torch.Tensor, voice: torch.Tensor | None = None,
              visual: torch.Tensor | None = None, code: torch.Tensor | None = None) -> torch.Tensor:
        """Features [B, N, dim] -> the predicted mel tokens [B, N, prior_dim] (the expected spoken sound).
        ``voice`` [B, voice_dim] (the pooled prompt; encoders built with ``voice_dim``) shifts every token's
        features before the head; ``visual`` [B, N, visual_dim] (the visual tokens, one per audio token; encoders
        built with ``visual_dim``) shifts each token's own; ``code`` [B, code_dim] (a voice code; encoders built with
        ``code_dim``) every token's. None leaves them."""
        if self.prior_head is None:
            raise ValueError("this phoneme encoder has no prior head (prior_dim is not set)")
        if self.voice is not None and voice is not None:
            features = features + self.voice(voice)[:, None]
        if self.visual is not None and visual is not None:
            features = features + self.visual(visual[:, : features.shape[1]])
        if self.code_shift is not None and code is not None:
            features = features + self.code_shift(code)[:, None]
        return self.prior_head(features)

    def forward(self, ids: torch.Tensor, position: torch.Tensor, opening: torch.Tensor | None = None) -> torch.Tensor:
        """Features [B, N, dim] of the track; ``opening`` [B, N] (encoders that read the mouth, required there):
        the mouth's opening at each token, added where a phoneme is spoken."""
        angles = position.float()[..., None] * self.frequencies
        speaking = (ids > 0).float()[..., None]  # no position signal where nothing is said
        h = self.embed(ids) + speaking * self.position(torch.cat([angles.sin(), angles.cos()], dim=-1))
        if self.opening is not None:
            if opening is None:
                raise ValueError("this phoneme encoder reads the mouth: pass the opening (read_mouth)")
            h = h + speaking * self.opening(opening[:, : h.shape[1], None].to(h.dtype))
        h = h.transpose(1, 2)
        for conv in self.convs:
            h = h + conv(h)
        return self.norm(h.transpose(1, 2))
