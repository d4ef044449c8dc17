"""The vocoder stage: a LightningModule that trains a mel -> waveform generator with discriminators.

Manual optimisation, two optimisers. Until ``gan_start_step`` only the reconstruction losses train the
generator (log-mel L1 + multi-resolution STFT: cheap, and what makes a short CPU run beat
Griffin-Lim); from then on each batch takes a discriminator step and a generator step with the
adversarial and feature-matching terms added. ``trainer.global_step`` counts generator steps (=
batches), so ``trainer.max_steps`` means what it says.

``lsd_weight`` adds the benchmark's log-spectral distance (dB) of the output. ``magnitude_weight`` adds
an L1 between the head's predicted log-magnitude and the real STFT's (same window and hop): it keeps the predicted magnitude a true magnitude, which the inference-time phase
refinement (``NeuralVocoder.refine_iters``) re-imposes. ``init_from`` starts the generator from an
export's weights wherever names and shapes agree (e.g. the backbone of a generator with another head).

``gta_model`` (a dialogue model's export) fine-tunes the vocoder *ground-truth aligned*, as Tacotron 2 trained its
WaveNet: for a share ``gta_share`` of the clips the input is not the clip's own mel but the mel that model generates
for the clip's frames, prompt and transcript at the phoneme times the clip recorded (so it lines up with the real
audio), and the target is still the real audio: a model's mel is smoother than a recording's, and the vocoder learns
to render it as the recording. Measured at 600 steps, no better than the shipped vocoder (docs/benchmarks.md,
dialogue_session13). The data must carry frames and meta (``data=synthetic``), at the model's clip length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from v2a.audio.mel import LogMel
from v2a.models.vocoder.discriminators import VocoderDiscriminators
from v2a.models.vocoder.export import ARCHITECTURES, load_vocoder_export, write_vocoder_export
from v2a.models.vocoder.losses import (
    LogSpectralLoss,
    MultiResolutionSTFTLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1,
)
from v2a.models.vocoder.neural import vocoder_path
from v2a.text.phoneme_timing import recorded_spans
from v2a.training.stage import StageModule

log = logging.getLogger(__name__)


class VocoderModule(StageModule):
    """Trains ``generator`` (built from ``architecture`` + ``generator`` kwargs) on random audio crops."""

    def __init__(self, *, features: LogMel, architecture: str, generator: dict, discriminators: VocoderDiscriminators,
                 stft_loss: MultiResolutionSTFTLoss, optimizer_g: Callable[..., torch.optim.Optimizer],
                 optimizer_d: Callable[..., torch.optim.Optimizer], scheduler: Callable[..., Any] | None = None,
                 segment_frames: int = 64, gan_start_step: int = 0, mel_weight: float = 45.0,
                 stft_weight: float = 15.0, adv_weight: float = 1.0, fm_weight: float = 2.0,
                 magnitude_weight: float = 0.0, lsd_loss: LogSpectralLoss | None = None, lsd_weight: float = 0.0,
                 grad_clip: float | None = 10.0, init_from: str | None = None, gta_model: str | None = None,
                 gta_share: float = 0.5, gta_steps: int | None = None, seed: int = 0) -> None:
        super().__init__(scheduler=scheduler, seed=seed)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown vocoder architecture {architecture!r} (known: {sorted(ARCHITECTURES)})")
        if segment_frames < 2:
            raise ValueError(f"segment_frames must be >= 2, got {segment_frames}")
        self.automatic_optimization = False
        self.features = features
        self.architecture = architecture
        # plain types only: the kwargs go to config.json in the export
        self.generator_kwargs = OmegaConf.to_container(generator, resolve=True) if isinstance(generator, DictConfig) else dict(generator)
        self.generator = ARCHITECTURES[architecture](**self.generator_kwargs)
        if magnitude_weight and not hasattr(self.generator, "spectrogram"):
            raise ValueError(f"magnitude_weight needs a generator with an STFT head, not {architecture!r}")
        if init_from:
            self.init_generator(init_from)
        self.discriminators = discriminators
        self.stft_loss = stft_loss
        if lsd_weight and lsd_loss is None:
            raise ValueError("lsd_weight > 0 needs an lsd_loss")
        self.lsd_loss = lsd_loss if lsd_weight else None
        self.optimizer_g_factory = optimizer_g
        self.optimizer_d_factory = optimizer_d
        self.segment_frames = segment_frames
        self.gan_start_step = gan_start_step
        self.weights = {"mel": mel_weight, "stft": stft_weight, "adv": adv_weight, "fm": fm_weight,
                        "magnitude": magnitude_weight, "lsd": lsd_weight}
        self.grad_clip = grad_clip
        if not 0.0 <= gta_share <= 1.0:
            raise ValueError(f"gta_share must be in [0, 1], got {gta_share}")
        self.gta_model, self.gta_share, self.gta_steps = gta_model, gta_share, gta_steps
        self._gta: list = []  # the loaded model's pipeline, outside the module tree (not trained, not saved)
        self._fit_started: float | None = None

    # --- data ---------------------------------------------------------------------------------
    def random_segments(self, audio: torch.Tensor, audio_mask: torch.Tensor | None = None,
                        mel: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Random crops of ``segment_frames`` mel frames from clips [B, N]; offsets seeded by (seed, rank, step);
        with ``mel`` [B, n_mels, N / hop] (a generated mel of the clips) the same crops of it, else None.

        Crops start on a mel frame. With ``audio_mask`` [B, N] (False on padding) a crop stays inside the clip's
        real audio where it fits.
        """
        hop = self.features.spec.hop_length
        length = self.segment_frames * hop
        if audio.shape[-1] <= length:
            return audio, (mel[..., : audio.shape[-1] // hop] if mel is not None else None)
        generator = self.step_generator(batch_idx=None)
        starts = torch.randint(0, (audio.shape[-1] - length) // hop + 1, (audio.shape[0],), generator=generator) * hop
        if audio_mask is not None:  # fold into the real range (the identity for unpadded clips)
            starts = starts % ((audio_mask.sum(dim=-1).cpu() - length).clamp(min=0) // hop * hop + hop)
        crops = torch.stack([clip[s:s + length] for clip, s in zip(audio, starts.tolist(), strict=True)])
        if mel is None:
            return crops, None
        frames = [s // hop for s in starts.tolist()]
        return crops, torch.stack([m[:, f:f + self.segment_frames] for m, f in zip(mel, frames, strict=True)])

    def gta_mels(self, batch: dict) -> torch.Tensor | None:
        """The ``gta_model``'s mels [B, n_mels, F] of the batch's clips (at their recorded phoneme times), with the
        clips' own mels in the rows outside ``gta_share``; None without a ``gta_model``."""
        if not self.gta_model:
            return None
        if "frames" not in batch or "meta" not in batch:
            raise ValueError("gta_model needs batches with frames and meta (data=synthetic, not vocoder_audio)")
        if not self._gta:
            from v2a.pipeline import V2APipeline

            self._gta.append(V2APipeline.from_pretrained(self.gta_model, device=self.device))
        pipeline = self._gta[0]
        audio, metas = batch["audio"], batch["meta"]
        own = self.features(audio)
        if pipeline.spec.n_mel_frames != own.shape[-1]:
            raise ValueError(f"gta_model makes {pipeline.spec.n_mel_frames} mel frames a clip, the data's clips have "
                             f"{own.shape[-1]} (set spec.duration to the model's {pipeline.spec.duration} s)")
        generator = self.step_generator(batch_idx=1)  # not the crops' draws (batch_idx=None)
        rows = (torch.rand(len(metas), generator=generator) < self.gta_share).nonzero()[:, 0].tolist()
        if not rows:  # the model samples only the clips that take its mel
            return own
        chosen = [metas[i] for i in rows]
        texts = {"prompt": [m.get("caption") or "" for m in chosen], "transcript": [m.get("transcript") or "" for m in chosen]}
        texts = {k: v for k, v in texts.items() if k in pipeline.text_inputs}
        phonemes = {"phonemes": [recorded_spans(m) for m in chosen]} if pipeline.net.reads_phonemes else {}
        with torch.no_grad():
            made = pipeline.generate_mel(batch["frames"][rows], steps=self.gta_steps, generator=generator, **texts,
                                         **phonemes)
        own[rows] = made.to(own.dtype)
        return own

    def init_generator(self, export: str | Path) -> None:
        """Copy an export's (or a ``builtin:NAME`` one's) generator weights wherever name and shape agree; log what
        was left out."""
        source, _ = load_vocoder_export(vocoder_path(export))
        own = self.generator.state_dict()
        loaded = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
        self.generator.load_state_dict(loaded, strict=False)
        log.info("generator initialised from %s: %d of %d tensors (not loaded: %s)", export, len(loaded), len(own),
                 ", ".join(sorted(set(own) - set(loaded))) or "none")

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel [B, n_mels, F] -> waveform [B, F * hop]."""
        return self.generator(mel)

    # --- training -----------------------------------------------------------------------------
    def generate(self, real: torch.Tensor, mel: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(waveform generated from ``mel``, by default the mel of ``real``; the head-magnitude loss when it is
        weighted)."""
        mel = self.features(real) if mel is None else mel
        if not self.weights["magnitude"]:
            return self.generator(mel), {}
        spec = self.generator.spectrogram(mel)
        fake = self.generator.head.istft(spec, mel.shape[-1] * self.features.spec.hop_length)
        target = self.generator.head.stft(real.float()).abs()
        magnitude = (torch.log(spec.abs().clamp_min(1e-5)) - torch.log(target.clamp_min(1e-5))).abs().mean()
        return fake, {"magnitude": magnitude}

    def reconstruction_losses(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {"mel": mel_l1(self.features, fake, real), "stft": self.stft_loss(fake, real)}
        if self.lsd_loss is not None:
            losses["lsd"] = self.lsd_loss(fake, real)
        return losses

    def weighted(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The generator objective: the weighted sum of the losses present."""
        return sum(self.weights[k] * v for k, v in losses.items())

    def _step(self, optimizer: Any, loss: torch.Tensor, *, counted: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        # Only the generator's step goes through Lightning's wrapper, which counts global steps; the
        # discriminator's bypasses it, else global_step would advance twice per batch in the GAN phase.
        (optimizer.step if counted else optimizer.optimizer.step)()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        real, mel = self.random_segments(batch["audio"], batch.get("audio_mask"), self.gta_mels(batch))
        fake, extra = self.generate(real, mel)
        gan = self.global_step >= self.gan_start_step
        logs: dict[str, torch.Tensor] = {}
        if gan:
            self.discriminators.requires_grad_(True)
            d_loss = discriminator_loss(self.discriminators(real), self.discriminators(fake.detach()))
            self._step(opt_d, d_loss, counted=False)
            logs["train/d_loss"] = d_loss.detach()
        losses = {**self.reconstruction_losses(fake, real), **extra}
        g_loss = self.weighted(losses)
        if gan:
            self.discriminators.requires_grad_(False)  # the generator step must not touch D's gradients
            real_out, fake_out = self.discriminators(real), self.discriminators(fake)
            adversarial = {"adv": generator_adversarial_loss(fake_out), "fm": feature_matching_loss(real_out, fake_out)}
            g_loss = g_loss + self.weighted(adversarial)
            losses.update(adversarial)
        if not torch.isfinite(g_loss):
            raise FloatingPointError(f"non-finite training loss {g_loss.item()} at step {self.global_step}")
        self._step(opt_g, g_loss, counted=True)
        scheduler_g, scheduler_d = self.lr_schedulers() or (None, None)
        if scheduler_g is not None:
            scheduler_g.step()
            if gan:  # the discriminator's schedule (warm-up included) starts with its first step
                scheduler_d.step()
        logs.update({f"train/{k}": v.detach() for k, v in losses.items()})
        logs["train/loss"] = g_loss.detach()
        self.log_dict(logs, batch_size=real.shape[0])
        return g_loss.detach()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        real = batch["audio"]
        fake, extra = self.generate(real)
        losses = {**self.reconstruction_losses(fake, real), **extra}
        size = real.shape[0]
        self.log("val/mel_l1", losses["mel"], prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val/stft", losses["stft"], sync_dist=True, batch_size=size)
        for name in ("magnitude", "lsd"):
            if name in losses:
                self.log(f"val/{name}", losses[name], sync_dist=True, batch_size=size)
        self.log("val/loss", self.weighted(losses), sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> Any:
        opt_g = self.optimizer_g_factory(params=self.generator.parameters())
        opt_d = self.optimizer_d_factory(params=self.discriminators.parameters())
        if self.scheduler_factory is None:
            return [opt_g, opt_d]
        # The same schedule for both; the discriminator's advances only from gan_start_step.
        schedulers = [{"scheduler": self.scheduler_factory(optimizer=o), "interval": "step"} for o in (opt_g, opt_d)]
        return [opt_g, opt_d], schedulers

    # --- checkpoint state and export ----------------------------------------------------------
    def on_train_start(self) -> None:
        self._fit_started = time.monotonic()

    def export_to(self, out_dir: str | Path) -> Path | None:
        """Generator weights + config (``model/vocoder=neural model.vocoder.checkpoint=out_dir`` loads it)."""
        if self._trainer is not None and not self.trainer.is_global_zero:
            return None
        # wall time of this fit call (a resumed run counts only its own part)
        seconds = None if self._fit_started is None else round(time.monotonic() - self._fit_started, 1)
        return write_vocoder_export(out_dir, generator=self.generator, architecture=self.architecture,
                                    kwargs=self.generator_kwargs, features=self.features,
                                    extra={"trained_steps": int(self.global_step), "run_config": self.run_config,
                                           "fit_seconds": seconds})


def export_checkpoint(ckpt: str | Path, out_dir: str | Path) -> Path:
    """Write the inference export of any vocoder training checkpoint (e.g. ``step_0001500.ckpt``).

    Loaded with ``weights_only=True``; the module is rebuilt from the checkpoint's own config.
    """
    from hydra.utils import instantiate

    from v2a.checkpoints.loading import load_checkpoint

    checkpoint = load_checkpoint(ckpt)
    config = OmegaConf.create(checkpoint["v2a_config"])
    module: VocoderModule = instantiate(config.model)
    module.load_state_dict(checkpoint["state_dict"])
    module.run_config = checkpoint["v2a_config"]
    return write_vocoder_export(out_dir, generator=module.generator, architecture=module.architecture,
                                kwargs=module.generator_kwargs, features=module.features,
                                extra={"trained_steps": int(checkpoint.get("global_step", 0)),
                                       "run_config": module.run_config, "source_checkpoint": str(ckpt)})
