"""The LightningModule of the V2A stage: trains the network of a :class:`V2APipeline` with flow matching."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from v2a.audio import mel_frame_mask
from v2a.audio.mel import LogMel
from v2a.checkpoints.loading import load_checkpoint
from v2a.data.visual_features import visual_input
from v2a.diffusion import ODESampler, RectifiedFlow, SamplingStart
from v2a.models.v2a_net import MOUTH_KEY, PRIOR_KEY, VOICE_CODE_KEY, VOICE_TARGET_KEY, V2ANet
from v2a.models.vocoder.base import Vocoder
from v2a.pipeline.aligner import LipAligner
from v2a.pipeline.loading import text_conditioning_for, tokenizer_binder
from v2a.pipeline.pipeline import V2APipeline
from v2a.shapes import MODALITIES
from v2a.text.conditioning import TOKENIZER_KEY, TextInput
from v2a.text.phoneme_timing import PhonemeSpan, recorded_clip_spans, recorded_mouth, stack_tracks
from v2a.text.phonemes import DEFAULT_VOCABULARY, PhonemeVocabulary
from v2a.training.ema import make_ema
from v2a.training.health import log_flow_time_buckets
from v2a.training.stage import StageModule


class V2AModule(StageModule):
    """Trains ``pipeline.net`` with flow matching on log-mels; samples with the EMA weights.

    The module holds the inference :class:`V2APipeline` (network, features, sampler, vocoder, text
    conditioning, guidance) and an EMA copy of its network; everything that samples — validation
    demos, evaluation after training, a reflow student's teacher — goes through
    :meth:`sampling_pipeline`. Randomness of noise, flow times and condition dropout comes from
    :meth:`step_generator`, and validation uses a fixed seed so its loss is comparable across steps.
    """

    def __init__(self, *, visual_encoder: torch.nn.Module | None, denoiser: torch.nn.Module, objective: RectifiedFlow,
                 sampler: ODESampler, features: LogMel, vocoder: Vocoder, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, ema_decay: float = 0.998, cfg_scale: float = 3.0,
                 seed: int = 0, visual_init: str | None = None, freeze_visual: bool = False,
                 prompt_encoder: torch.nn.Module | None = None, transcript_encoder: torch.nn.Module | None = None,
                 tokenizer: str | None = None, text_max_tokens: dict[str, int] | None = None,
                 cfg_modalities: Sequence[str] = MODALITIES, modalities: Sequence[str] | None = None,
                 phoneme_encoder: torch.nn.Module | None = None, phoneme_vocabulary: Sequence[str] | None = None,
                 prior_loss_weight: float = 1.0, mouth_loss_weight: float = 1.0,
                 even_words: bool = False, timing_aligner: str | None = None, aligner_share: float = 0.0) -> None:
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        self.visual_init = visual_init  # a sync-stage checkpoint whose visual encoder starts this model
        self.freeze_visual = freeze_visual
        net = V2ANet(visual_encoder=visual_encoder, denoiser=denoiser, prompt_encoder=prompt_encoder,
                     transcript_encoder=transcript_encoder, phoneme_encoder=phoneme_encoder, modalities=modalities)
        text = text_conditioning_for(net, tokenizer_path=tokenizer, max_tokens=text_max_tokens)
        self.pipeline = V2APipeline(net=net, features=features, sampler=sampler, vocoder=vocoder,
                                    text_conditioning=text, cfg_scale=cfg_scale, cfg_modalities=cfg_modalities,
                                    phoneme_vocabulary=PhonemeVocabulary(phoneme_vocabulary or DEFAULT_VOCABULARY))
        self.ema = make_ema(net, ema_decay)
        text.on_tokenizer = tokenizer_binder(net, self.ema.module)
        self.objective = objective
        self.prior_loss_weight = prior_loss_weight  # the phoneme prior's regression loss beside the flow loss
        self.mouth_loss_weight = mouth_loss_weight  # a lip-driven track's opening regression beside it
        self.even_words = even_words  # train on tracks whose words' phonemes are evenly spread (recorded_track)
        # a share of the clips hear their transcript where a lip aligner places it from the frames (the timing
        # generation takes from the video), the rest at the recorded times
        if not 0.0 <= aligner_share <= 1.0:
            raise ValueError(f"model.aligner_share must be in [0, 1], got {aligner_share}")
        if aligner_share > 0 and not timing_aligner:
            raise ValueError("model.aligner_share > 0 needs model.timing_aligner=ALIGNER_RUN/export "
                             "(python train.py experiment=aligner_tiny)")
        self.timing_aligner, self.aligner_share = timing_aligner, aligner_share
        self._aligner: LipAligner | None = None   # loaded at fit start; not a submodule (neither trained nor saved)

    # The pipeline's parts, under the names the training code and callbacks use.
    @property
    def net(self) -> V2ANet:
        return self.pipeline.net

    @property
    def features(self) -> LogMel:
        return self.pipeline.features

    @property
    def vocoder(self) -> Vocoder:
        return self.pipeline.vocoder

    @property
    def text_conditioning(self):
        return self.pipeline.text_conditioning

    @property
    def text_inputs(self) -> tuple[str, ...]:
        return self.pipeline.text_inputs

    def sampling_pipeline(self, use_ema: bool = True) -> V2APipeline:
        """The pipeline with the EMA network (or the online one): what samples during and after training."""
        return self.pipeline.with_net(self.ema.module) if use_ema else self.pipeline

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
        state = load_checkpoint(checkpoint_path)["state_dict"]
        weights = {}
        for prefix in ("model.visual_encoder.", "visual_encoder."):  # SyncModule's layout, and the earlier flat one
            weights = weights or {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not weights:
            raise ValueError(f"{checkpoint_path} holds no visual_encoder weights (is it a sync_base checkpoint?)")
        if self.net.visual_encoder is None:
            raise ValueError("visual_init is set but this model has no visual encoder (model.visual_encoder=null)")
        for encoder in (self.net.visual_encoder, self.ema.module.visual_encoder):
            encoder.load_state_dict(weights)  # strict: a different encoder config is an error, not a silent skip

    def on_fit_start(self) -> None:
        # Under FSDP the EMA update lerps local shards element by element; that is only right when the
        # EMA copy is sharded exactly like the network (each V2ANet its own FSDP unit). Check once.
        shapes = [p.shape for p in self.net.parameters()], [p.shape for p in self.ema.module.parameters()]
        if shapes[0] != shapes[1]:
            raise RuntimeError("the EMA copy is sharded differently from the network: wrap every V2ANet as its "
                               "own FSDP unit (auto_wrap_policy in v2a/conf/trainer/fsdp.yaml)")
        if self.timing_aligner and self.aligner_share > 0:   # here the model is on its device
            self._aligner = LipAligner.from_pretrained(self.timing_aligner, device=self.device)

    # --- training ---------------------------------------------------------------------------
    def _loss(self, net: V2ANet, batch: dict, generator: torch.Generator, stage: str | None = "train") -> torch.Tensor:
        """Flow-matching loss (+ the phoneme prior's, logged as ``{stage}/prior_loss`` unless ``stage`` is None)."""
        audio = batch["audio"]
        text = self.text_conditioning.from_batch(batch) or None
        # a phoneme-track model hears the transcript at the times the clip recorded (oracle timing in training), or
        # for a share of the clips where the lip aligner places it
        track = self.training_phonemes(batch, generator) if net.reads_phonemes else None
        # Padded frames (clips shorter than the crop) are no target: padding is silence (the STFT of the last
        # real frames reaches into it), the loss averages over real frames only, and padded audio tokens are
        # masked out of the self-attention — so what fills the padding cannot matter.
        mask = mel_frame_mask(batch["audio_mask"], self.features) if "audio_mask" in batch else None
        if mask is not None and not bool(mask.all()):
            audio = audio.masked_fill(~batch["audio_mask"].bool(), 0.0)
        else:
            mask = None
        mel = self.features(audio)
        # frames, or the backbone's features cached in the shards (a pretrained visual encoder reads either); the
        # clip's own mel is where a voice-code prior reads the voice it must render
        cond = net(frames=visual_input(batch), text=text, phonemes=track, reference=mel if track is not None else None)
        if mask is not None:
            cond = {**cond, "token_mask": mask[:, ::self.features.spec.mel_frames_per_token]}
        # a model sampled from its prior plus noise (sampler.prior_source) is trained from there; the prior learns
        # from its own regression only
        source_mean = (self.pipeline.prior_as_mel(cond[PRIOR_KEY], mel.shape[-1]).detach()
                       if self.pipeline.sampler.prior_source and PRIOR_KEY in cond else None)
        loss = self.objective.loss(lambda x, t, keep: net(x, t, cond, keep), mel, generator, mask=mask,
                                   source_mean=source_mean,
                                   source_std=self.pipeline.sampler.prior_noise if source_mean is not None else 1.0,
                                   start=self._sampling_start(cond, track, mel) if source_mean is None else None)
        if PRIOR_KEY in cond and self.prior_loss_weight > 0:
            prior_loss = self._prior_loss(net, cond, mel, mask)
            if stage is not None:
                self.log(f"{stage}/prior_loss", prior_loss, batch_size=mel.shape[0], sync_dist=stage != "train")
            loss = loss + self.prior_loss_weight * prior_loss
        if MOUTH_KEY in cond:
            recorded, known = recorded_mouth(batch["meta"], cond[MOUTH_KEY].shape[1],
                                             self.features.spec.tokens_per_video_frame)
            mouth_loss = net.phoneme_encoder.mouth_loss(cond[MOUTH_KEY], recorded.to(self.device), known.to(self.device))
            if stage is not None:
                self.log(f"{stage}/mouth_loss", mouth_loss, batch_size=mel.shape[0], sync_dist=stage != "train")
            loss = loss + self.mouth_loss_weight * mouth_loss
        if VOICE_TARGET_KEY in cond:
            code_loss = net.phoneme_encoder.code_loss(cond[VOICE_CODE_KEY], cond[VOICE_TARGET_KEY],
                                                      (track[0] > 0).any(dim=1))
            if stage is not None:
                self.log(f"{stage}/voice_code_loss", code_loss, batch_size=mel.shape[0], sync_dist=stage != "train")
            loss = loss + code_loss
        return loss

    def _sampling_start(self, cond: dict, track: tuple[torch.Tensor, torch.Tensor] | None,
                        mel: torch.Tensor) -> SamplingStart | None:
        """Where generation starts the clips that say something (the prior, at ``sampler.prior_start``), for the
        objective's ``start_share``; None when sampling starts from noise or the objective does not use it."""
        start = self.pipeline.sampler.prior_start
        if PRIOR_KEY not in cond or track is None or start <= 0 or not self.objective.start_share:
            return None
        estimate = self.pipeline.prior_as_mel(cond[PRIOR_KEY], mel.shape[-1]).detach()
        return SamplingStart(estimate=estimate, rows=(track[0] > 0).any(dim=1), time=start)

    @staticmethod
    def _prior_loss(net: V2ANet, cond: dict, mel: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Mean squared error of the phoneme prior against the clip's mel tokens (real tokens only)."""
        target = net.denoiser.tokenize(mel)
        prior = cond[PRIOR_KEY][:, : target.shape[1]]
        error = (prior - target[:, : prior.shape[1]]).pow(2).mean(dim=-1)
        if mask is None:
            return error.mean()
        token_mask = cond["token_mask"][:, : error.shape[1]].float()
        return (error * token_mask).sum() / token_mask.sum().clamp(min=1.0)

    def training_phonemes(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The phoneme track of the batch's clips, one phoneme per audio token: at the times each clip recorded, or,
        for the ``aligner_share`` of clips with a transcript that ``generator`` draws, where the timing aligner
        places the transcript on the clip's frames."""
        spec = self.features.spec
        spans = recorded_clip_spans(batch["meta"], even_words=self.even_words)
        if self._aligner is not None:
            spans = self._aligned_spans(batch, spans, generator)
        ids, where = stack_tracks(spans, self.pipeline.phoneme_vocabulary, spec.n_audio_tokens, spec.token_rate)
        return ids.to(self.device), where.to(self.device)

    def _aligned_spans(self, batch: dict, spans: list[list[PhonemeSpan]],
                       generator: torch.Generator | None) -> list[list[PhonemeSpan]]:
        """``spans`` with the drawn talking heads' replaced by the aligner's timing of their transcripts."""
        if "frames" not in batch:
            raise ValueError("model.timing_aligner reads the clips' frames, but this data gives cached features")
        metas = batch["meta"]
        drawn = torch.rand(len(metas), generator=generator) < self.aligner_share
        rows = [row for row, meta in enumerate(metas)
                if drawn[row] and any(s.word >= 0 for s in spans[row]) and (meta.get("transcript") or "").strip()]
        if rows:
            timed = self._aligner.timelines(batch["frames"][rows], [metas[row]["transcript"] for row in rows])
            spans = list(spans)
            for row, clip in zip(rows, timed, strict=True):
                spans[row] = clip
        return spans

    def training_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor] | torch.Tensor:
        with self.objective.recording() as details:
            loss = self.check_finite(self._loss(self.net, batch, self.step_generator(batch_idx)))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        # each sample's flow time and loss: the health callback's loss per flow-time bucket (v2a/training/health.py)
        return {"loss": loss, "flow_t": details["t"], "flow_loss": details["per_sample"]} if details else loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here, not in on_train_batch_end: once per optimizer step (gradient accumulation), and
        # before checkpoint callbacks run, so a checkpoint never misses the step's EMA update.
        self.ema.update_parameters(self.net)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

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
        with self.objective.recording() as details:
            loss = self._loss(self.ema.module, batch, generator, stage="val")
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["audio"].shape[0])
        if details:
            log_flow_time_buckets(self, "val", details["t"], details["per_sample"], sync_dist=True)

    # --- sampling (the EMA pipeline's) --------------------------------------------------------
    @torch.no_grad()
    def generate_mel(self, frames: torch.Tensor, *, use_ema: bool = True, **kwargs: Any) -> torch.Tensor:
        """:meth:`V2APipeline.generate_mel` with the EMA (default) or online network."""
        return self.sampling_pipeline(use_ema).generate_mel(frames, **kwargs)

    @torch.no_grad()
    def generate_audio(self, frames: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.vocoder(self.generate_mel(frames, **kwargs))

    def clip_texts(self, batch: dict, rows: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self.pipeline.clip_texts(batch, rows)

    def guided_velocity_for(self, frames: torch.Tensor, *, use_ema: bool = True, **kwargs: TextInput | Any):
        return self.sampling_pipeline(use_ema).guided_velocity(frames, **kwargs)

    # --- checkpoint state -------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
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

        tokenizer = self.text_conditioning.tokenizer
        write = self._trainer is None or self.trainer.is_global_zero
        return export_inference(self.ema.module, self.run_config, out_dir, write=write,
                                tokenizer=tokenizer.model if tokenizer is not None else None)
