"""The inference pipeline: a trained network with everything needed to turn video frames into audio.

Generation, evaluation, the reflow teacher, the demo callback and the Python API all sample through a
:class:`V2APipeline`; the training LightningModule holds one and trains its network. Nothing here
imports Lightning, so loading a model for inference costs only what inference needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from v2a.audio.mel import LogMel
from v2a.diffusion import ODESampler, batched_guided_velocity
from v2a.models.v2a_net import PRIOR_KEY, V2ANet
from v2a.models.vocoder.base import Vocoder
from v2a.shapes import MODALITIES, ClipSpec
from v2a.text.conditioning import STREAM_FIELDS, TextConditioning, TextInput, check_modalities
from v2a.text.phoneme_timing import PhonemeSpan, rasterize, recorded_spans
from v2a.text.phonemes import PhonemeVocabulary
from v2a.text.tokens import text_of

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# A phoneme track: (ids [B, N], position in the phoneme [B, N]) per audio token, or timed phonemes per row.
PhonemeInput = tuple[torch.Tensor, torch.Tensor] | list[list[PhonemeSpan]] | None


def stack_conditions(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two rows' worth of encoded conditions (same keys) as one batch: ``first`` rows, then ``second``'s.

    Text streams of different lengths (a prompt and a negative prompt) are padded at the end with masked
    zeros: a masked key takes no attention weight, so each row's velocity is the one it has alone.
    """
    if set(first) != set(second):
        raise ValueError(f"conditions differ: {sorted(set(first) ^ set(second))}")
    out = {}
    for name, a in first.items():
        b = second[name]
        if a.dim() >= 2 and a.shape[1] != b.shape[1] and name.endswith(("_tokens", "_mask")):
            length = max(a.shape[1], b.shape[1])
            a, b = (torch.cat([v, v.new_zeros(v.shape[0], length - v.shape[1], *v.shape[2:])], dim=1) for v in (a, b))
        out[name] = torch.cat([a, b])
    return out


class V2APipeline(nn.Module):
    """Network + mel features + ODE sampler + vocoder + text conditioning + classifier-free guidance.

    ``net`` is the network that samples: a loaded model's EMA weights, or (inside training) whichever
    copy :meth:`with_net` was given. ``cfg_modalities`` are the conditions the unconditional branch drops
    (a negative prompt replaces the dropped prompt there).
    """

    def __init__(self, *, net: V2ANet, features: LogMel, sampler: ODESampler, vocoder: Vocoder,
                 text_conditioning: TextConditioning | None = None, cfg_scale: float = 3.0,
                 cfg_modalities: Sequence[str] = MODALITIES,
                 phoneme_vocabulary: PhonemeVocabulary | None = None) -> None:
        super().__init__()
        self.net = net
        self.features = features
        self.sampler = sampler
        self.vocoder = vocoder
        self.text_conditioning = text_conditioning or TextConditioning(net.text_streams)
        self.cfg_scale = float(cfg_scale)
        self.cfg_modalities = check_modalities(cfg_modalities)
        self.phoneme_vocabulary = phoneme_vocabulary or PhonemeVocabulary()
        self.run_config: dict | None = None  # the resolved config it was built from (set when loaded)
        self.trained_steps = -1              # optimizer steps of the loaded checkpoint (-1: an export)

    @property
    def spec(self) -> ClipSpec:
        return self.features.spec

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def text_inputs(self) -> tuple[str, ...]:
        """The text arguments this model accepts (none: video only)."""
        streams = self.net.text_streams
        return (("prompt", "negative_prompt") if "prompt" in streams else ()) + \
            (("transcript",) if self.net.reads_transcript else ())

    def with_net(self, net: V2ANet) -> V2APipeline:
        """The same pipeline sampling with another copy of the network (training: the EMA weights)."""
        return V2APipeline(net=net, features=self.features, sampler=self.sampler, vocoder=self.vocoder,
                           text_conditioning=self.text_conditioning, cfg_scale=self.cfg_scale,
                           cfg_modalities=self.cfg_modalities, phoneme_vocabulary=self.phoneme_vocabulary)

    def phoneme_track(self, phonemes: PhonemeInput, batch: int, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``phonemes`` as the (ids, position) track of ``n_tokens`` audio tokens per row, on the device."""
        if phonemes is None:
            return None
        if isinstance(phonemes, list):
            if len(phonemes) != batch:
                raise ValueError(f"phonemes: {len(phonemes)} timed rows for a batch of {batch}")
            rows = [rasterize(spans, self.phoneme_vocabulary, n_tokens, self.spec.token_rate) for spans in phonemes]
            phonemes = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        ids, where = phonemes
        return ids.to(self.device), where.to(self.device)

    # --- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def guided_velocity(self, frames: torch.Tensor, *, cfg_scale: float | None = None, prompt: TextInput = None,
                        negative_prompt: TextInput = None, transcript: TextInput = None,
                        cfg_modalities: Sequence[str] | None = None, phonemes: PhonemeInput = None) -> Velocity:
        """The CFG-guided velocity ``v(x, t)`` that :meth:`generate_mel` integrates (also a reflow teacher's)."""
        return self._guidance(frames, cfg_scale=cfg_scale, prompt=prompt, negative_prompt=negative_prompt,
                              transcript=transcript, cfg_modalities=cfg_modalities, phonemes=phonemes)[0]

    def _guidance(self, frames: torch.Tensor, *, cfg_scale: float | None, prompt: TextInput,
                  negative_prompt: TextInput, transcript: TextInput, cfg_modalities: Sequence[str] | None,
                  phonemes: PhonemeInput, voice_reference: torch.Tensor | None = None,
                  voice_noise: torch.Tensor | None = None) -> tuple[Velocity, dict[str, torch.Tensor]]:
        """The guided velocity and the conditional branch's conditions (holding the phoneme prior, if any)."""
        net, device = self.net, self.device
        frames = frames.to(device)
        batch = frames.shape[0]
        if "transcript" not in net.text_streams:
            transcript = None  # a phoneme-track model reads the transcript through ``phonemes`` only
        texts = self.text_conditioning.tokenize(batch, device, prompt=prompt, transcript=transcript,
                                                negative_prompt=negative_prompt)
        negative = texts.pop("negative_prompt", None)
        n_tokens = frames.shape[1] * self.spec.tokens_per_video_frame
        if net.reads_phonemes and phonemes is None:
            phonemes = [[] for _ in range(batch)]  # nothing said: the "no phoneme" track
        track = self.phoneme_track(phonemes, batch, n_tokens) if net.reads_phonemes else None
        if voice_reference is not None and not (track is not None and net.phoneme_encoder.has_voice_code):
            raise ValueError("voice_reference needs a model whose phoneme prior renders a voice code (code_dim)")
        reference = voice_reference.to(device) if voice_reference is not None else None
        cond = net(frames=frames, text=texts or None, phonemes=track, reference=reference, voice_noise=voice_noise)
        scale = self.cfg_scale if cfg_scale is None else cfg_scale
        drop = self.cfg_modalities if cfg_modalities is None else check_modalities(cfg_modalities)
        keep = torch.ones(batch, dtype=torch.bool, device=device)
        conditional = lambda x, t: net(x, t, cond, keep)  # noqa: E731
        if scale == 1.0:
            return conditional, cond
        if not net.text_streams and not net.reads_phonemes:  # video only: the one-mask convention
            if "video" not in drop:
                return conditional, cond
            uncond, both_keep = cond, torch.cat([keep, ~keep])
        else:
            uncond = dict(cond)
            uncond_keep = {name: ~keep if name in drop else keep for name in MODALITIES}
            if negative is not None:  # steer away from the negative prompt instead of from "no prompt"
                uncond.update(net(text={"prompt": negative}))
                uncond_keep["prompt"] = keep
            both_keep = {name: torch.cat([keep, uncond_keep[name]]) for name in MODALITIES}
        # both branches as one batch of 2B: one network pass per velocity evaluation instead of two
        both = stack_conditions(cond, uncond)
        return batched_guided_velocity(lambda x, t: net(x, t, both, both_keep), scale), cond

    @torch.no_grad()
    def generate_mel(self, frames: torch.Tensor, *, steps: int | None = None, cfg_scale: float | None = None,
                     generator: torch.Generator | None = None, n_mel_frames: int | None = None,
                     prompt: TextInput = None, negative_prompt: TextInput = None, transcript: TextInput = None,
                     cfg_modalities: Sequence[str] | None = None, phonemes: PhonemeInput = None,
                     voice_reference: torch.Tensor | None = None) -> torch.Tensor:
        """Video frames [B, T, 3, H, W] -> normalised log-mel [B, n_mels, F].

        Text (models with text encoders): a string (tokenised with the model's tokenizer, the same for
        every row), a list of one string per row, or ``(ids [B, L], mask [B, L])``. Guidance:
        v = v_u + s (v_c - v_u), where the unconditional branch drops ``cfg_modalities`` (default: the
        model's) and has the prompt replaced by ``negative_prompt`` when one is given. ``phonemes`` (models that
        read the transcript as a phoneme track): timed phonemes per row, or the rasterised (ids, position) track.
        ``voice_reference`` (models whose prior renders a voice code): a normalised log-mel [B, n_mels, F] of
        recordings whose voices the prior renders, read where the track speaks, instead of the voice the prompt asks for.
        """
        spec, device = self.spec, self.device
        batch = frames.shape[0]
        n_mel_frames = n_mel_frames or frames.shape[1] * spec.mel_frames_per_video_frame
        # A model with a phoneme prior starts part way, from the prior it predicts (sampler.prior_start), when
        # something is said; with nothing to say the prior holds no speech, and the flow makes every sound from noise.
        start = self.sampler.prior_start if self.net.has_prior and phonemes is not None else 0.0
        if start > 0:  # rasterised once: the prior and the velocity read the same track
            phonemes = self.phoneme_track(phonemes, batch, frames.shape[1] * spec.tokens_per_video_frame)
            start = start if bool((phonemes[0] > 0).any()) else 0.0
        source = generator.device if generator is not None else device
        noise = torch.randn((batch, spec.n_mels, n_mel_frames), generator=generator, device=source).to(device)
        voice_noise = None
        encoder = self.net.phoneme_encoder
        if self.sampler.voice_temperature > 0 and encoder is not None and encoder.has_voice_code:
            # one voice of the type asked for, drawn after the sampling noise so that noise is the same at any temperature
            voice_noise = self.sampler.voice_temperature * torch.randn(
                (batch, encoder.code_mean.shape[0]), generator=generator, device=source).to(device)
        velocity, cond = self._guidance(frames, cfg_scale=cfg_scale, prompt=prompt, negative_prompt=negative_prompt,
                                        transcript=transcript, cfg_modalities=cfg_modalities, phonemes=phonemes,
                                        voice_reference=voice_reference, voice_noise=voice_noise)
        if self.sampler.prior_source and PRIOR_KEY in cond:
            # trained to flow from the prior plus noise, for every clip (the prior of silence where nothing is said);
            # started part way, where that path passes if the clip sounds as predicted
            noise = self.prior_as_mel(cond[PRIOR_KEY], n_mel_frames) + (1 - start) * self.sampler.prior_noise * noise
        elif start > 0:  # the prior the conditions already hold: the track, prompt and video are encoded once
            noise = start * self.prior_as_mel(cond[PRIOR_KEY], n_mel_frames) + (1 - start) * noise
        return self.sampler(velocity, noise, steps=steps, start=start)

    @torch.no_grad()
    def prior_mel(self, track: tuple[torch.Tensor, torch.Tensor], n_mel_frames: int, prompt: TextInput = None,
                  frames: torch.Tensor | None = None) -> torch.Tensor:
        """The phoneme encoder's predicted mel [B, n_mels, n_mel_frames] for a rasterised phoneme track, in the
        voice of ``prompt`` and following the mouth in ``frames`` [B, T, 3, H, W] for an encoder that reads them."""
        texts = self.text_conditioning.tokenize(track[0].shape[0], self.device, prompt=prompt) if prompt is not None else {}
        prompt_only = {"prompt": texts["prompt"]} if "prompt" in texts else None
        encoder = self.net.phoneme_encoder
        frames = frames.to(self.device) if frames is not None and (encoder.reads_video or encoder.reads_mouth) else None
        return self.prior_as_mel(self.net(frames=frames, phonemes=track, text=prompt_only)[PRIOR_KEY], n_mel_frames)

    def prior_as_mel(self, prior: torch.Tensor, n_mel_frames: int) -> torch.Tensor:
        """The prior's mel tokens [B, N, token_dim] as a mel [B, n_mels, n_mel_frames]."""
        mel = self.net.denoiser.untokenize(prior)[..., :n_mel_frames]
        if mel.shape[-1] < n_mel_frames:  # a trailing partial token: hold the last frame
            mel = torch.cat([mel, mel[..., -1:].expand(-1, -1, n_mel_frames - mel.shape[-1])], dim=-1)
        return mel

    @torch.no_grad()
    def generate_audio(self, frames: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Video frames -> waveform [B, samples] through the pipeline's vocoder (``generate_mel``'s arguments)."""
        return self.vocoder(self.generate_mel(frames, **kwargs))

    # --- whole videos: the Python API ------------------------------------------------------
    @torch.no_grad()
    def forward(self, video: Any = None, *, prompt: str | list[str | None] | None = None,
                negative_prompt: str | list[str | None] | None = None,
                transcript: str | list[str | None] | None = None, steps: int | None = None,
                cfg_scale: float | None = None, seed: int = 0, fps: float | None = None, duration: float | None = None,
                overlap_s: float = 0.5, watermark: bool | Any = True, aligner: Any = None,
                streaming: Any = None, clock: Any = None) -> tuple[Any, int]:
        """``audio, sample_rate = pipe(video, prompt=..., steps=...)``: a video's soundtrack, in memory.

        ``video``: a file path, or uint8 frames [T, H, W, 3] / [T, 3, H, W] (numpy or torch) at ``fps`` (default:
        the model's), any size (centre square, area-scaled); or a list of these, which returns a list of
        soundtracks. Any length: windows of the training clip length are crossfaded. ``audio`` is float32 mono
        [samples], as long as the video (or ``duration`` seconds of it). Text (text models): one string for every
        video, or a list of one per video; a transcript may be SRT/WebVTT text (each window gets its lines).
        ``seed`` makes the result reproducible — the same as ``v2a generate --seed`` on the file. ``watermark``:
        True marks the audio with :class:`v2a.watermark.Watermarker` (key from ``$V2A_WATERMARK_KEY``), or pass
        a watermarker, or False. ``aligner``: a lip-aligner (or its export path) for phoneme-track models.
        """
        from v2a.pipeline.video import Streaming, each_video, open_source, stream_audio

        many, calls = each_video(video, prompt=prompt, negative_prompt=negative_prompt, transcript=transcript)
        streaming = streaming or Streaming()
        watermarker, lip_aligner = self._watermarker(watermark), self._aligner(aligner)
        outputs = []
        for item, texts in calls:
            stream = stream_audio(self, open_source(item, self.spec, fps=fps, streaming=streaming), steps=steps,
                                  cfg_scale=cfg_scale, seed=seed, overlap_s=overlap_s, duration=duration, texts=texts,
                                  aligner=lip_aligner, watermarker=watermarker, streaming=streaming, clock=clock)
            outputs.append(np.concatenate(list(stream.pieces)))
        return (outputs if many else outputs[0]), self.spec.sample_rate

    @torch.no_grad()
    def generate_to(self, video: Any, out: Any, *, original_audio: str = "drop", audio_format: str = "wav",
                    video_codec: str = "auto",
                    prompt: str | list[str | None] | None = None, negative_prompt: str | list[str | None] | None = None,
                    transcript: str | list[str | None] | None = None, steps: int | None = None,
                    cfg_scale: float | None = None, seed: int = 0, duration: float | None = None,
                    overlap_s: float = 0.5, watermark: bool | Any = True, aligner: Any = None,
                    streaming: Any = None, clock: Any = None) -> dict | list[dict]:
        """Give video files a soundtrack on disk: ``out`` (the video stream copied, the audio muxed; .mp4/.mkv/
        .mov), the audio beside it (``audio_format``) and a json sidecar; returns the sidecar. A list of videos
        writes ``NAME_v2a.mp4`` each into the folder ``out`` and returns a list. ``original_audio``: ``drop``,
        ``keep`` (a second track) or ``mix``; ``video_codec``: ``auto`` copies the video stream where the container
        holds its codec (else H.264), ``copy``, ``h264``. The audio streams to disk: memory does not grow with the length.
        Other arguments as for calling the pipeline.
        """
        from v2a.pipeline.video import (
            Frames,
            Streaming,
            each_video,
            open_source,
            output_path,
            stream_audio,
            write_result,
        )

        many, calls = each_video(video, prompt=prompt, negative_prompt=negative_prompt, transcript=transcript)
        outs = [output_path(item, out, many) for item, _ in calls]  # a bad out= fails before any work
        streaming = streaming or Streaming()
        watermarker, lip_aligner = self._watermarker(watermark), self._aligner(aligner)
        results = []
        for (item, texts), path in zip(calls, outs, strict=True):
            started = time.perf_counter()
            source = open_source(item, self.spec, streaming=streaming)
            if isinstance(source, Frames):
                raise ValueError("generate_to writes a muxed video: give a video file (for frames, call the pipeline)")
            stream = stream_audio(self, source, steps=steps, cfg_scale=cfg_scale, seed=seed, overlap_s=overlap_s,
                                  duration=duration, texts=texts, aligner=lip_aligner, watermarker=watermarker,
                                  streaming=streaming, clock=clock)
            settings = {"steps": self.sampler.steps if steps is None else steps,
                        "cfg_scale": self.cfg_scale if cfg_scale is None else cfg_scale, "overlap_s": overlap_s,
                        "original_audio": original_audio, "duration": duration, **texts,
                        "watermarked": watermarker is not None, "seed": seed}
            results.append(write_result(stream, source, path, original_audio=original_audio, audio_format=audio_format,
                                        video_codec=video_codec, clock=clock, settings=settings, started=started))
        return results if many else results[0]

    def _watermarker(self, watermark: bool | Any) -> Any:
        """The watermarker a call asked for: True -> the default one (made once), False/None -> none."""
        if watermark is True:
            if getattr(self, "_default_watermarker", None) is None:
                from v2a.watermark import Watermarker

                self._default_watermarker = Watermarker()
            return self._default_watermarker
        return watermark or None

    def _aligner(self, aligner: Any) -> Any:
        if aligner is None or hasattr(aligner, "timeline"):
            return aligner
        from v2a.pipeline.aligner import LipAligner

        return LipAligner.from_pretrained(aligner, device=self.device)

    def clip_texts(self, batch: dict, rows: int | None = None) -> dict[str, Any]:
        """The ``generate_mel`` text arguments of a loader batch's clips (their captions as the prompt, their
        transcripts — as the phoneme times the clips recorded, for a phoneme-track model), first ``rows``
        only; ``{}`` for a video-only model.

        The clips' texts are tokenised with the model's own tokenizer when it has one: a data folder's
        tokenizer may be another one, whose ids would mean other words to this model.
        """
        out: dict[str, Any] = {}
        if self.net.reads_phonemes and "meta" in batch:
            out["phonemes"] = [recorded_spans(meta) for meta in batch["meta"][:rows]]
        if not self.net.text_streams:
            return out
        tokenizer = self.text_conditioning.tokenizer
        if tokenizer is None or "meta" not in batch:
            return {**out, **{name: (ids[:rows], mask[:rows])
                              for name, (ids, mask) in self.text_conditioning.from_batch(batch).items()}}
        for name in self.net.text_streams:
            pairs = [tokenizer(text_of(meta, STREAM_FIELDS[name]), name) for meta in batch["meta"][:rows]]
            out[name] = (torch.cat([ids for ids, _ in pairs]), torch.cat([mask for _, mask in pairs]))
        return out

    # --- loading ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: Any, *, device: str | torch.device = "cpu", vocoder: dict | None = None,
                        sampler: dict | None = None, overrides: dict | None = None) -> V2APipeline:
        """The pipeline of a training checkpoint (``.ckpt``) or an inference export (folder or its
        ``model.safetensors``), with the EMA weights, in eval mode. See :func:`v2a.pipeline.loading.load_pipeline`."""
        from v2a.pipeline.loading import load_pipeline

        return load_pipeline(path, device=device, vocoder=vocoder, sampler=sampler, overrides=overrides)
