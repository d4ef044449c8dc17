"""The LightningModule that wires network, objective, sampler, features and vocoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from v2a.audio.mel import LogMel
from v2a.diffusion import ODESampler, RectifiedFlow, guided_velocity
from v2a.models.v2a_net import MODALITIES, V2ANet
from v2a.models.vocoder.base import Vocoder
from v2a.text.conditioning import STREAM_FIELDS, TOKENIZER_KEY, TextConditioning, TextInput, check_modalities
from v2a.text.tokens import text_of
from v2a.training.ema import make_ema


class V2AModule(pl.LightningModule):
    """Trains ``net`` with flow matching on log-mels; samples with the EMA weights.

    Randomness of noise, flow times and condition dropout comes from a dedicated generator seeded
    from (seed, rank, step) at every step — so a resumed run, on any rank, draws exactly what the
    uninterrupted run drew, with no generator state to carry — and validation uses a fixed seed so its
    loss is comparable across steps.
    """

    text_inputs: tuple[str, ...] = ()  # text conditions this model accepts (none: video only)

    def __init__(self, *, visual_encoder: torch.nn.Module | None, denoiser: torch.nn.Module, objective: RectifiedFlow,
                 sampler: ODESampler, features: LogMel, vocoder: Vocoder, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, ema_decay: float = 0.998, cfg_scale: float = 3.0,
                 seed: int = 0, visual_init: str | None = None, freeze_visual: bool = False,
                 prompt_encoder: torch.nn.Module | None = None, transcript_encoder: torch.nn.Module | None = None,
                 tokenizer: str | None = None, text_max_tokens: dict[str, int] | None = None,
                 cfg_modalities: Sequence[str] = MODALITIES) -> None:
        super().__init__()
        self.visual_init = visual_init  # a sync-stage checkpoint whose visual encoder starts this model
        self.freeze_visual = freeze_visual
        self.net = V2ANet(visual_encoder=visual_encoder, denoiser=denoiser, prompt_encoder=prompt_encoder,
                          transcript_encoder=transcript_encoder)
        streams = self.net.text_streams
        self.text_inputs = (("prompt", "negative_prompt") if "prompt" in streams else ()) + \
            (("transcript",) if "transcript" in streams else ())
        self.cfg_modalities = check_modalities(cfg_modalities)
        self.ema = make_ema(self.net, ema_decay)
        self.text_conditioning = TextConditioning(streams, tokenizer_path=tokenizer, max_tokens=text_max_tokens,
                                                  vocab_sizes={n: e.vocab_size for n, e in self.net.text_encoders.items()},
                                                  on_tokenizer=self._bind_tokenizer)
        self.objective = objective
        self.sampler = sampler
        self.features = features
        self.vocoder = vocoder
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.cfg_scale = cfg_scale
        self.seed = seed
        self.run_config: dict | None = None  # resolved Hydra config, stored in checkpoints by train.py

    def _bind_tokenizer(self, tokenizer) -> None:
        """Hand the tokenizer to text encoders that read text (a pretrained one), in the network and its EMA."""
        for net in (self.net, self.ema.module):
            for encoder in net.text_encoders.values():
                if hasattr(encoder, "bind_tokenizer"):
                    encoder.bind_tokenizer(tokenizer.processor)

    def setup(self, stage: str) -> None:
        # Before Lightning restores a resumed checkpoint (which then wins), after construction — so
        # loading a trained model for inference never needs the sync checkpoint (nor the data's tokenizer).
        if stage == "fit" and self.visual_init:
            self.load_visual_encoder(self.visual_init)
        if stage == "fit" and self.net.text_streams:
            data_tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
            self.text_conditioning.load_for_training(getattr(data_tokenizer, "path", None))
        if self.freeze_visual and self.net.visual_encoder is not None:
            self.net.visual_encoder.requires_grad_(False)

    def load_visual_encoder(self, checkpoint_path: str) -> None:
        """Copy a sync-stage checkpoint's visual encoder into the network and its EMA copy."""
        from v2a.checkpoints.loading import load_checkpoint

        state = load_checkpoint(checkpoint_path)["state_dict"]
        prefix = "visual_encoder."
        weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not weights:
            raise ValueError(f"{checkpoint_path} holds no visual_encoder weights (is it a sync_base checkpoint?)")
        if self.net.visual_encoder is None:
            raise ValueError("visual_init is set but this model has no visual encoder (model.visual_encoder=null)")
        for encoder in (self.net.visual_encoder, self.ema.module.visual_encoder):
            encoder.load_state_dict(weights)  # strict: a different encoder config is an error, not a silent skip

    # --- randomness -------------------------------------------------------------------------
    def step_generator(self, batch_idx: int = 0) -> torch.Generator:
        """The noise generator of this (step, micro-batch, rank), on the CPU: portable across devices."""
        seed = hash((self.seed, self.global_rank, self.global_step, batch_idx)) % (2**63)
        return torch.Generator().manual_seed(seed)

    def on_fit_start(self) -> None:
        # Under FSDP the EMA update lerps local shards element by element; that is only right when the
        # EMA copy is sharded exactly like the network (each V2ANet its own FSDP unit). Check once.
        shapes = [p.shape for p in self.net.parameters()], [p.shape for p in self.ema.module.parameters()]
        if shapes[0] != shapes[1]:
            raise RuntimeError("the EMA copy is sharded differently from the network: wrap every V2ANet as its "
                               "own FSDP unit (auto_wrap_policy in v2a/conf/trainer/fsdp.yaml)")

    # --- training ---------------------------------------------------------------------------
    def _loss(self, net: V2ANet, batch: dict, generator: torch.Generator) -> torch.Tensor:
        mel = self.features(batch["audio"])
        text = self.text_conditioning.from_batch(batch)
        cond = net(frames=batch["frames"], text=text) if text else net(frames=batch["frames"])
        return self.objective.loss(lambda x, t, keep: net(x, t, cond, keep), mel, generator)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(self.net, batch, self.step_generator(batch_idx))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here, not in on_train_batch_end: once per optimizer step (gradient accumulation), and
        # before checkpoint callbacks run, so a checkpoint never misses the step's EMA update.
        self.ema.update_parameters(self.net)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        from pytorch_lightning.strategies import FSDPStrategy

        if gradient_clip_val and isinstance(self.trainer.strategy, FSDPStrategy):
            # The global norm spans every rank's shards: only the root FSDP module can compute it.
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(12345 + batch_idx)  # same noise at every validation
        loss = self._loss(self.ema.module, batch, generator)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["audio"].shape[0])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.net.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "step"}}

    # --- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def guided_velocity_for(self, frames: torch.Tensor, *, cfg_scale: float | None = None, use_ema: bool = True,
                            prompt: TextInput = None, negative_prompt: TextInput = None, transcript: TextInput = None,
                            cfg_modalities: Sequence[str] | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The CFG-guided velocity ``v(x, t)`` that :meth:`generate_mel` integrates (also the reflow teacher's)."""
        net = self.ema.module if use_ema else self.net
        frames = frames.to(self.device)
        batch = frames.shape[0]
        texts = self.text_conditioning.tokenize(batch, self.device, prompt=prompt, transcript=transcript,
                                                negative_prompt=negative_prompt)
        negative = texts.pop("negative_prompt", None)
        cond = net(frames=frames, text=texts) if texts else net(frames=frames)
        scale = self.cfg_scale if cfg_scale is None else cfg_scale
        drop = self.cfg_modalities if cfg_modalities is None else check_modalities(cfg_modalities)
        keep = torch.ones(batch, dtype=torch.bool, device=self.device)
        if not self.net.text_streams:  # video only: the one-mask convention, as before text existed
            unconditional = (lambda x, t: net(x, t, cond, ~keep)) if "video" in drop else None
        else:
            uncond = dict(cond)
            uncond_keep = {name: ~keep if name in drop else keep for name in MODALITIES}
            if negative is not None:  # steer away from the negative prompt instead of from "no prompt"
                uncond.update(net(text={"prompt": negative}))
                uncond_keep["prompt"] = keep
            unconditional = lambda x, t: net(x, t, uncond, uncond_keep)  # noqa: E731
        conditional = lambda x, t: net(x, t, cond, keep)  # noqa: E731
        return guided_velocity(conditional, unconditional, scale)

    @torch.no_grad()
    def generate_mel(self, frames: torch.Tensor, *, steps: int | None = None, cfg_scale: float | None = None,
                     generator: torch.Generator | None = None, n_mel_frames: int | None = None,
                     use_ema: bool = True, prompt: TextInput = None, negative_prompt: TextInput = None,
                     transcript: TextInput = None, cfg_modalities: Sequence[str] | None = None) -> torch.Tensor:
        """Video frames [B, T, 3, H, W] -> normalised log-mel [B, n_mels, F] (EMA weights, CFG).

        Text (models with text encoders): a string (tokenised with the checkpoint's tokenizer, the same
        for every row) or ``(ids [B, L], mask [B, L])``. Guidance: v = v_u + s (v_c - v_u), where the
        unconditional branch drops ``cfg_modalities`` (default: the model's ``cfg_modalities``) and has
        the prompt replaced by ``negative_prompt`` when one is given: v = v_neg + s (v_cond - v_neg).
        """
        spec = self.features.spec
        frames = frames.to(self.device)
        batch = frames.shape[0]
        n_mel_frames = n_mel_frames or frames.shape[1] * spec.tokens_per_video_frame * spec.mel_frames_per_token
        velocity = self.guided_velocity_for(frames, cfg_scale=cfg_scale, use_ema=use_ema, prompt=prompt,
                                            negative_prompt=negative_prompt, transcript=transcript,
                                            cfg_modalities=cfg_modalities)
        source = generator.device if generator is not None else self.device
        noise = torch.randn((batch, spec.n_mels, n_mel_frames), generator=generator, device=source).to(self.device)
        return self.sampler(velocity, noise, steps=steps)

    def clip_texts(self, batch: dict, rows: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The ``generate_mel`` text arguments of a loader batch's clips (their captions as the prompt, their
        transcripts), first ``rows`` only; ``{}`` for a video-only model.

        The clips' texts are tokenised with the model's own tokenizer when it has one: a data folder's
        tokenizer may be another one, whose ids would mean other words to this model.
        """
        if not self.net.text_streams:
            return {}
        tokenizer = self.text_conditioning.tokenizer
        if tokenizer is None or "meta" not in batch:
            return {name: (ids[:rows], mask[:rows]) for name, (ids, mask) in self.text_conditioning.from_batch(batch).items()}
        out = {}
        for name in self.net.text_streams:
            pairs = [tokenizer(text_of(meta, STREAM_FIELDS[name]), name) for meta in batch["meta"][:rows]]
            out[name] = (torch.cat([ids for ids, _ in pairs]), torch.cat([mask for _, mask in pairs]))
        return out

    @torch.no_grad()
    def generate_audio(self, frames: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Video frames -> waveform [B, samples] through the configured vocoder."""
        return self.vocoder(self.generate_mel(frames, **kwargs))

    # --- checkpoint state -------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["v2a_config"] = self.run_config
        if self.text_conditioning.tokenizer is not None:  # the tokenizer travels with the weights, never looked up later
            checkpoint[TOKENIZER_KEY] = self.text_conditioning.tokenizer.model

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get(TOKENIZER_KEY):
            self.text_conditioning.set_tokenizer(checkpoint[TOKENIZER_KEY])

    def export_to(self, out_dir: Any) -> Any:
        """Write the inference export (EMA weights in safetensors + config JSON) to ``out_dir``.

        Called on every rank (a sharded state dict is gathered collectively); rank 0 writes.
        """
        from v2a.checkpoints.export import export_inference

        write = self._trainer is None or self.trainer.is_global_zero
        return export_inference(self, out_dir, write=write)
