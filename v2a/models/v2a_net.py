"""The trainable V2A network: visual and text encoders + denoiser, exposed as a velocity function."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from v2a.models.denoiser import MelDenoiser
from v2a.shapes import MODALITIES, Keep

PRIOR_KEY = "phoneme_prior"  # the condition holding the phoneme encoder's predicted mel tokens [B, N, token_dim]
VOICE_CODE_KEY = "voice_code"  # the voice code the prompt asks for [B, code_dim] (phoneme encoders with code_dim)
VOICE_TARGET_KEY = "voice_code_read"  # the voice code read from the clip's own mel (encode's ``reference``)
MOUTH_KEY = "mouth_opening"  # the mouth's opening the phoneme encoder read per audio token [B, N] (``mouth_dim``)
NOT_FOR_THE_DENOISER = frozenset({PRIOR_KEY, VOICE_CODE_KEY, VOICE_TARGET_KEY, MOUTH_KEY})


class V2ANet(nn.Module):
    """Encodes conditions once, then answers velocity queries for any (x_t, t, keep-mask).

    ``keep`` is one bool [B] mask for every condition (the video-only convention), or a dict of masks
    per modality (``video``, ``prompt``, ``transcript``; a missing one is kept).
    """

    def __init__(self, *, visual_encoder: nn.Module | None, denoiser: MelDenoiser,
                 prompt_encoder: nn.Module | None = None, transcript_encoder: nn.Module | None = None,
                 phoneme_encoder: nn.Module | None = None, modalities: Sequence[str] | None = None) -> None:
        """``modalities`` (the config's one ``model.modalities`` key; None: every encoder given) chooses the
        conditions: an encoder of a modality not listed is not part of the network."""
        super().__init__()
        if modalities is not None:
            unknown = set(modalities) - set(MODALITIES)
            if unknown:
                raise ValueError(f"unknown modalities {sorted(unknown)} (known: {list(MODALITIES)})")
            encoders = {"video": visual_encoder, "prompt": prompt_encoder,
                        "transcript": transcript_encoder or phoneme_encoder}
            missing = [name for name in modalities if encoders[name] is None]
            if missing:
                raise ValueError(f"model.modalities lists {missing} but no encoder is configured for it (model."
                                 "visual_encoder / prompt_encoder / transcript_encoder or phoneme_encoder)")
            if "video" not in modalities:
                visual_encoder = None
            if "prompt" not in modalities:
                prompt_encoder = None
            if "transcript" not in modalities:
                transcript_encoder = phoneme_encoder = None
        self.visual_encoder = visual_encoder
        self.denoiser = denoiser
        # Separate instances, not one shared encoder: a prompt is a short description of the whole clip
        # (read as one pooled vector and a few tokens), a transcript a sequence to be spoken in time.
        self.text_encoders = nn.ModuleDict({name: encoder for name, encoder in
                                            (("prompt", prompt_encoder), ("transcript", transcript_encoder))
                                            if encoder is not None})
        streams = tuple(self.text_encoders)
        if set(streams) != set(denoiser.text_streams):
            raise ValueError(f"the text encoders ({list(streams) or 'none'}) do not match the denoiser's "
                             f"text_streams ({list(denoiser.text_streams) or 'none'})")
        for name, encoder in self.text_encoders.items():
            if encoder.dim != denoiser.text_dim:
                raise ValueError(f"{name} encoder dim {encoder.dim} != denoiser text_dim {denoiser.text_dim}")
        # The transcript as spoken in time: a phoneme per audio token, added to the tokens (not attended to).
        self.phoneme_encoder = phoneme_encoder
        if (phoneme_encoder is None) != (getattr(denoiser, "phoneme_dim", None) is None):
            raise ValueError("a phoneme encoder needs a denoiser with phoneme_dim and vice versa")
        if phoneme_encoder is not None and phoneme_encoder.dim != denoiser.phoneme_dim:
            raise ValueError(f"phoneme encoder dim {phoneme_encoder.dim} != denoiser phoneme_dim {denoiser.phoneme_dim}")
        if denoiser.reads_prior and not self.has_prior:
            raise ValueError("a denoiser with prior_input needs a phoneme encoder with a prior (prior_dim)")
        if phoneme_encoder is not None and phoneme_encoder.reads_mouth and visual_encoder is None:
            raise ValueError("a phoneme encoder that reads the mouth (mouth_dim) needs a visual encoder")
        if (visual_encoder is None) != (denoiser.visual_dim is None):
            raise ValueError("a visual encoder needs a denoiser with visual_dim and vice versa "
                             "(no-video models set both to null)")

    @property
    def text_streams(self) -> tuple[str, ...]:
        return tuple(self.text_encoders)

    @property
    def reads_phonemes(self) -> bool:
        """Whether the transcript reaches this network as a phoneme track (``phonemes=`` of :meth:`encode`)."""
        return self.phoneme_encoder is not None

    @property
    def has_prior(self) -> bool:
        """Whether the phoneme encoder predicts the spoken mel (``cond[PRIOR_KEY]``)."""
        return self.phoneme_encoder is not None and self.phoneme_encoder.has_prior

    @property
    def reads_transcript(self) -> bool:
        return "transcript" in self.text_encoders or self.reads_phonemes

    def encode(self, frames: torch.Tensor | None = None,
               text: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
               phonemes: tuple[torch.Tensor, torch.Tensor] | None = None,
               reference: torch.Tensor | None = None,
               voice_noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Conditions: visual tokens + pooled vector of frames [B, T, 3, H, W]; per text stream
        (``text[name] = (ids [B, L], mask [B, L])``) its features and mask, and the pooled prompt; the
        phoneme track (``phonemes = (ids [B, N], position [B, N])``, one per audio token) as features.
        ``reference`` (the clip's own mel [B, n_mels, F] in training; at generation a recording whose voice to render)
        is where a phoneme encoder with a voice code reads the voice its prior renders; without it the code is the one the prompt asks for, drawn around it
        with ``voice_noise`` [B, code_dim] (unit normal times a temperature; None: the mean code). A phoneme encoder
        that reads the mouth needs the frames with the phonemes (``cond[MOUTH_KEY]``: the opening it read)."""
        cond: dict[str, torch.Tensor] = {}
        if self.visual_encoder is not None and frames is not None:
            cond["visual_tokens"], cond["pooled"] = self.visual_encoder(frames)
        if phonemes is not None:
            if self.phoneme_encoder is None:
                raise ValueError("this network reads no phoneme track (it has no phoneme encoder)")
            opening = None
            if self.phoneme_encoder.reads_mouth:
                if "visual_tokens" not in cond:
                    raise ValueError("this network's phoneme track reads the mouth: pass frames with the phonemes")
                # the opening is a bottleneck the track reads as given: the flow loss does not move the reader
                cond[MOUTH_KEY] = self.phoneme_encoder.read_mouth(
                    self.denoiser.align(cond["visual_tokens"], phonemes[0].shape[1]))
                opening = cond[MOUTH_KEY].detach()
            cond["phoneme_tokens"] = self.phoneme_encoder(*phonemes, opening=opening)
        for name, (ids, mask) in (text or {}).items():
            if name not in self.text_encoders:
                raise ValueError(f"this network has no {name} encoder (it has: {list(self.text_encoders) or 'none'})")
            # an encoder that re-tokenises (a pretrained one) returns the mask of its own tokens
            features, pooled, *own_mask = self.text_encoders[name](ids, mask)
            cond[f"{name}_tokens"], cond[f"{name}_mask"] = features, (own_mask[0] if own_mask else mask).bool()
            if name == "prompt":
                cond["prompt_pooled"] = pooled
        if phonemes is not None and self.phoneme_encoder.has_prior:
            # the expected spoken mel tokens (in the prompt's voice, as loud as the mouth is open where the
            # encoder reads the video): a training target, a sampling start
            visual = None
            if self.phoneme_encoder.reads_video and "visual_tokens" in cond:
                visual = self.denoiser.align(cond["visual_tokens"], cond["phoneme_tokens"].shape[1])
            code = None
            if self.phoneme_encoder.has_voice_code:
                code = cond[VOICE_CODE_KEY] = self.phoneme_encoder.predicted_code(
                    cond.get("prompt_pooled"), phonemes[0].shape[0], noise=voice_noise)
                if reference is not None:
                    code = cond[VOICE_TARGET_KEY] = self.phoneme_encoder.voice_code(
                        self.denoiser.tokenize(reference), phonemes[0])
            features = self.phoneme_encoder.prior_features(*phonemes, cond["phoneme_tokens"])
            cond[PRIOR_KEY] = self.phoneme_encoder.prior(features, voice=cond.get("prompt_pooled"),
                                                         visual=visual, code=code)
        return cond

    def forward(self, x: torch.Tensor | None = None, t: torch.Tensor | None = None,
                cond: dict[str, torch.Tensor] | None = None, keep: Keep | None = None, *,
                frames: torch.Tensor | None = None, text: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                phonemes: tuple[torch.Tensor, torch.Tensor] | None = None,
                reference: torch.Tensor | None = None,
                voice_noise: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """The velocity at (x_t, t) given ``cond``; or, given only ``frames``/``text``/``phonemes``, the conditions.

        Encoding is reachable through forward because FSDP gathers a wrapped unit's weights only when
        the unit itself is called: code that may run sharded calls ``net(frames=...)``, not ``encode``.
        """
        if frames is not None or text is not None or phonemes is not None:
            return self.encode(frames, text, phonemes, reference, voice_noise)
        if x is None or t is None or cond is None:
            raise TypeError("V2ANet needs (x, t, cond) or frames= / text=")
        if isinstance(keep, dict):
            unknown = set(keep) - set(MODALITIES)
            if unknown:
                raise ValueError(f"unknown modalities in keep: {sorted(unknown)} (known: {MODALITIES})")
            masks = {name: keep.get(name) for name in MODALITIES}
        else:
            masks = dict.fromkeys(MODALITIES, keep)
        denoiser_cond = {name: value for name, value in cond.items() if name not in NOT_FOR_THE_DENOISER}
        if self.denoiser.reads_prior:
            denoiser_cond["phoneme_prior"] = cond.get(PRIOR_KEY)
        return self.denoiser(x, t, visual_mask=masks["video"], prompt_keep=masks["prompt"],
                             transcript_keep=masks["transcript"], **denoiser_cond)
