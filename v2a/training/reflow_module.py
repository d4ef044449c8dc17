"""Reflow distillation: a few-step student trained on the straight (noise -> teacher sample) pairs.

The teacher (a trained V2A checkpoint) integrates its CFG-guided ODE from noise x0 to x1_hat; the
student, initialised from the teacher's EMA weights, learns the constant velocity x1_hat - x0 along the
straight line between them (rectified flow on the teacher's coupling, Liu et al. 2022). Straight paths
can be integrated in one to a few Euler steps. The student distils the *guided* teacher, so it is
sampled without guidance (``cfg_scale`` 1, one network pass per step).

The module is a :class:`V2AModule` with the same weights, so its checkpoints and exports are ordinary
V2A checkpoints: ``run_config`` (what checkpoints and exports store as the model's config) describes
the student as a plain ``V2AModule`` and evaluate.py / generate.py load it without special code.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from v2a.data.visual_features import visual_input
from v2a.diffusion import ODESampler, RectifiedFlow
from v2a.diffusion.samplers import Velocity
from v2a.pipeline.pipeline import V2APipeline
from v2a.training.reflow_buffer import PairBuffer
from v2a.training.v2a_module import V2AModule

log = logging.getLogger(__name__)

V2A_TARGET = "v2a.training.v2a_module.V2AModule"
PAIRS_KEY = "reflow_pairs"


@dataclass(frozen=True)
class ReflowSettings:
    """How the teacher makes pairs (v2a/conf/experiment/v2a_reflow.yaml, ``model.reflow``)."""

    teacher: str                  # a V2A checkpoint (.ckpt) or export folder
    steps: int = 16               # the teacher's ODE steps per pair
    method: str = "euler"
    cfg_scale: float = 3.0        # the guidance the student distils
    refresh_every: int = 1        # generate a new batch of pairs every N student steps ...
    buffer_batches: int = 1       # ... into a buffer of the last M batches, which each step samples from

    def __post_init__(self) -> None:
        if self.steps < 1 or self.refresh_every < 1 or self.buffer_batches < 1:
            raise ValueError(f"reflow steps, refresh_every and buffer_batches must be >= 1: {self}")
        if self.method not in ODESampler.METHODS:
            raise ValueError(f"reflow method must be one of {ODESampler.METHODS}, got {self.method!r}")


class ReflowModule(V2AModule):
    """A V2A student distilled from a teacher checkpoint; every other argument is V2AModule's."""

    def __init__(self, *, reflow: dict | ReflowSettings, **v2a_kwargs: Any) -> None:
        super().__init__(**v2a_kwargs)
        self.reflow = reflow if isinstance(reflow, ReflowSettings) else ReflowSettings(**reflow)
        self.teacher_sampler = ODESampler(steps=self.reflow.steps, method=self.reflow.method)
        self.pairs = PairBuffer(self.reflow.buffer_batches)
        # A tuple, not an attribute: the teacher is no submodule, so it is neither trained, nor saved in
        # the student's checkpoints, nor counted as its parameters.
        self._teacher: tuple[V2APipeline, ...] = ()
        self._train_config: dict | None = None

    # --- the config checkpoints and exports store -------------------------------------------------
    @property
    def run_config(self) -> dict | None:  # type: ignore[override]
        """The training config with ``model`` rewritten as the plain V2AModule the student is."""
        if self._train_config is None:
            return None
        config = copy.deepcopy(self._train_config)
        model = config["model"]
        settings = model.pop("reflow", None)
        model["_target_"] = V2A_TARGET
        model["visual_init"] = None  # the weights are the student's own: never re-initialise from elsewhere
        config["distilled_from"] = settings  # provenance only; nothing reads it to build the model
        return config

    @run_config.setter
    def run_config(self, value: dict | None) -> None:
        self._train_config = value

    # --- the teacher ------------------------------------------------------------------------------
    @property
    def teacher(self) -> V2APipeline:
        if not self._teacher:
            raise RuntimeError("no teacher loaded: call load_teacher() (fit does it in setup)")
        return self._teacher[0]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # Before Lightning restores a resumed checkpoint, which then wins over the teacher's weights.
        if stage == "fit" and not self._teacher:
            self.load_teacher()

    def load_teacher(self, teacher: V2APipeline | None = None) -> None:
        """Load the teacher (default: ``reflow.teacher``, its EMA weights) and start the student from it."""
        if teacher is None:
            teacher = V2APipeline.from_pretrained(self.reflow.teacher)
        if teacher.features.spec != self.features.spec or (teacher.features.mean, teacher.features.std) != (
                self.features.mean, self.features.std):
            raise ValueError(f"teacher {self.reflow.teacher} uses other mel features than the student config "
                             "(spec / model.features must match the teacher's)")
        weights = teacher.net.state_dict()
        try:
            self.net.load_state_dict(weights)
        except RuntimeError as error:
            raise ValueError(f"teacher {self.reflow.teacher} does not match the student's architecture "
                             f"(model/denoiser, model/visual_encoder): {str(error).splitlines()[0]}") from error
        self.ema.module.load_state_dict(weights)
        teacher.requires_grad_(False).eval()
        self._teacher = (teacher.to(self.device),)
        self.pairs.clear()
        log.info("reflow teacher %s: %d %s steps, CFG %.1f", self.reflow.teacher, self.reflow.steps,
                 self.reflow.method, self.reflow.cfg_scale)

    def teacher_velocity(self, frames: torch.Tensor) -> Velocity:
        """The teacher's guided velocity for these clips (EMA weights), exactly as its generate_mel uses it."""
        return self.teacher.guided_velocity(frames, cfg_scale=self.reflow.cfg_scale)

    @torch.no_grad()
    def teacher_pairs(self, frames: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, x1_hat): fresh noise and where the teacher's ODE takes it."""
        spec = self.features.spec
        n_mel_frames = frames.shape[1] * spec.mel_frames_per_video_frame
        x0 = torch.randn((frames.shape[0], spec.n_mels, n_mel_frames), generator=generator).to(self.device)
        self.teacher.to(self.device)
        return x0, self.teacher_sampler(self.teacher_velocity(frames), x0)

    # --- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[PAIRS_KEY] = self.pairs.state_dict()   # a resumed run must draw from the same pairs

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if PAIRS_KEY in checkpoint:   # restored after setup() loaded the teacher and emptied the buffer
            self.pairs.load_state_dict(checkpoint[PAIRS_KEY])

    # --- training ---------------------------------------------------------------------------------
    def reflow_loss(self, frames: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
        """Rectified-flow loss on given pairs: uniform t, always conditioned (the student is unguided)."""
        t = torch.rand(x0.shape[0], generator=generator).to(x0)
        keep = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
        cond = self.net(frames=frames)
        prediction = self.net(RectifiedFlow.interpolate(x0, x1, t), t, cond, keep)
        return F.mse_loss(prediction.float(), RectifiedFlow.target(x0, x1).float())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        generator = self.step_generator(batch_idx)
        frames = visual_input(batch).to(self.device)   # frames, or cached backbone features
        if self.global_step % self.reflow.refresh_every == 0 or not self.pairs.batches:
            self.pairs.add(frames, *self.teacher_pairs(frames, generator))
        pairs = (t.to(self.device) for t in self.pairs.sample(frames.shape[0], generator))   # restored ones are on CPU
        loss = self.check_finite(self.reflow_loss(*pairs, generator), "reflow loss")
        self.log("train/loss", loss, prog_bar=True, batch_size=frames.shape[0])
        return loss
