"""Training health in the loggers: gradient and weight norms, EMA distance, loss per flow time, throughput.

:class:`TrainingHealth` logs, every ``trainer.log_every_n_steps`` (the steps Lightning writes to the loggers):

- ``train/grad_norm`` (global, before clipping) and ``train/grad_norm/<module>`` per top-level module of the
  trained parameters (``denoiser``, ``visual_encoder``, ...); ``train/param_norm``;
- ``train/ema_distance`` = ||EMA - online|| / ||online|| (modules with ``ema`` and ``net``);
- ``train/loss_t_small|middle|large``: the loss of the samples whose flow time fell in [0, 1/3), [1/3, 2/3),
  [2/3, 1] over the interval (from a ``training_step`` that returns ``flow_t`` and ``flow_loss``);
- ``train/lr`` (and ``train/lr_opt1`` ... for more optimizers);
- ``sys/clips_per_s``, ``sys/tokens_per_s`` (audio tokens, all ranks together), ``sys/data_wait_frac`` (the
  share of the loop spent waiting for the next batch; needs :class:`FetchTimer` as the trainer's profiler,
  ``v2a/conf/trainer/default.yaml``), ``sys/cpu_peak_rss_gb``;
- on a GPU: ``sys/gpu_mem_peak_gb`` (peak allocated since the last log), ``sys/gpu_mem_reserved_gb``, and with
  the FLOPs of one training step counted once (``torch.utils.flop_counter``) ``sys/tflops_per_s`` and ``sys/mfu``
  (against ``lightning_fabric``'s table of peak FLOPs for the device and precision).

Timing is host time; on a GPU the host waits for the device at least at every logged step, so sums over an
interval are right even though single steps are asynchronous.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable

import pytorch_lightning as pl
import torch
from pytorch_lightning.profilers import Profiler

# (name, lower bound) of the flow-time buckets; t = 0 is noise, t = 1 is data (v2a.diffusion.flow_matching)
FLOW_TIME_BUCKETS = (("small", 0.0), ("middle", 1 / 3), ("large", 2 / 3))


def flow_time_buckets(t: torch.Tensor, per_sample: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(sum of the per-sample losses, count) of the samples whose flow time is in each bucket."""
    edges = torch.tensor([low for _, low in FLOW_TIME_BUCKETS[1:]], device=t.device, dtype=t.dtype)
    index = torch.bucketize(t.detach(), edges, right=True)
    loss = per_sample.detach().float()
    return {name: ((loss * (index == i)).sum(), (index == i).sum()) for i, (name, _) in enumerate(FLOW_TIME_BUCKETS)}


def log_flow_time_buckets(module: pl.LightningModule, stage: str, t: torch.Tensor, per_sample: torch.Tensor,
                          sync_dist: bool = False) -> None:
    """Log ``{stage}/loss_t_<bucket>``: the mean per-sample loss of each flow-time bucket over the epoch
    (each batch weighted by its count in the bucket; every bucket is logged at every batch, so ranks agree)."""
    for name, (total, count) in flow_time_buckets(t, per_sample).items():
        n = int(count)
        module.log(f"{stage}/loss_t_{name}", total / max(n, 1), on_step=False, on_epoch=True, batch_size=n,
                   sync_dist=sync_dist)


class FetchTimer(Profiler):
    """A profiler that only adds up the time the training loop waits for ``next(train_dataloader)``.

    Lightning calls the trainer's profiler around every fetch of a training batch; :class:`TrainingHealth`
    reads :attr:`fetch_seconds` to log the data-wait fraction. Everything else is not profiled (no overhead,
    no report).
    """

    ACTION = "train_dataloader_next"

    def __init__(self) -> None:
        super().__init__()
        self.fetch_seconds = 0.0
        self._started: float | None = None

    def start(self, action_name: str) -> None:
        if action_name.endswith(self.ACTION):
            self._started = time.perf_counter()

    def stop(self, action_name: str) -> None:
        if action_name.endswith(self.ACTION) and self._started is not None:
            self.fetch_seconds += time.perf_counter() - self._started
            self._started = None

    def summary(self) -> str:
        return ""


def _norm(tensors: Iterable[torch.Tensor], device: torch.device) -> torch.Tensor:
    tensors = [t.detach() for t in tensors]
    if not tensors:   # e.g. a rank whose FSDP shard holds none of these parameters
        return torch.zeros((), device=device)
    return torch.nn.utils.get_total_norm(tensors, norm_type=2.0).to(device)


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".")[:-1] for n in names]
    prefix: list[str] = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return ".".join(prefix) + "." if prefix else ""


def top_level_groups(module: torch.nn.Module) -> dict[int, str]:
    """id(parameter) -> the top-level module it belongs to, below the common prefix of the trained
    parameters (``pipeline.net.denoiser.blocks.0.w`` -> ``denoiser``)."""
    wrappers = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    for wrapper in wrappers:  # FSDP, activation checkpointing and torch.compile add these to the names
        named = [(n.replace(wrapper, ""), p) for n, p in named]
    prefix = _common_prefix([n for n, _ in named])
    return {id(p): n[len(prefix):].split(".")[0] for n, p in named}


class TrainingHealth(pl.Callback):
    """Logs the health of a run (module docstring) at the steps Lightning writes to its loggers.

    ``every_n_steps``: None = ``trainer.log_every_n_steps``. ``per_module``: gradient norm per top-level
    module too. ``flops``: count the FLOPs of one training step for ``sys/tflops_per_s`` and ``sys/mfu`` —
    ``auto`` (on a GPU only), ``true`` or ``false``.
    """

    def __init__(self, *, every_n_steps: int | None = None, per_module: bool = True, flops: str | bool = "auto") -> None:
        if str(flops).lower() not in ("auto", "true", "false"):
            raise ValueError(f"flops must be auto, true or false, got {flops!r}")
        self.every_n_steps = every_n_steps
        self.per_module = per_module
        self.flops = str(flops).lower()
        self._groups: dict[int, str] = {}
        self._counter = None
        self.flops_per_batch: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._busy = 0.0           # seconds in training batches (forward, backward, step)
        self._batches = 0
        self._clips = 0
        self._fetch_mark: float | None = None
        self._buckets: dict[str, list[torch.Tensor]] = {}
        self._batch_started: float | None = None
        self._measuring = False

    # --- when -------------------------------------------------------------------------------
    def _interval(self, trainer: pl.Trainer) -> int:
        return max(1, int(self.every_n_steps or trainer.log_every_n_steps or 1))

    def _due(self, trainer: pl.Trainer) -> bool:
        """Whether Lightning writes this batch's logged values to the loggers (its `should_update_logs`)."""
        loop = trainer.fit_loop.epoch_loop
        step = getattr(loop, "_batches_that_stepped", trainer.global_step) + 1
        return step % self._interval(trainer) == 0

    # --- hooks ------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._groups = top_level_groups(pl_module)
        self._reset()
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def _fetch_seconds(self, trainer: pl.Trainer) -> float | None:
        return getattr(trainer.profiler, "fetch_seconds", None)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._fetch_mark is None:
            self._fetch_mark = self._fetch_seconds(trainer)
        count = self.flops == "true" or (self.flops == "auto" and pl_module.device.type == "cuda")
        if count and self.flops_per_batch is None and self._counter is None:
            from torch.utils.flop_counter import FlopCounterMode

            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
            self._measuring = True
        self._batch_started = time.perf_counter()

    def _stop_counting(self) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops_per_batch = float(self._counter.get_total_flops())
            self._counter = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self._due(trainer):
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        index = next((i for i, o in enumerate(trainer.optimizers) if o is optimizer), 0)
        suffix = "" if index == 0 else f"_opt{index}"
        device = pl_module.device
        norms = {f"train/grad_norm{suffix}": self._global(trainer, [p.grad for p in params if p.grad is not None], device)}
        if self.per_module:
            # the groups come from the parameters, not from which of them hold a gradient on this rank: every
            # rank makes the same reductions (under FSDP a rank's shard may hold no gradient of a module)
            groups: dict[str, list[torch.Tensor]] = {self._groups.get(id(p), "other"): [] for p in params}
            for p in params:
                if p.grad is not None:
                    groups[self._groups.get(id(p), "other")].append(p.grad)
            if len(groups) > 1:
                norms.update({f"train/grad_norm{suffix}/{name}": self._global(trainer, grads, device)
                              for name, grads in sorted(groups.items())})
        for name, value in norms.items():
            pl_module.log(name, value, on_step=True, on_epoch=False)

    def _global(self, trainer: pl.Trainer, tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        """The L2 norm over every rank's part (FSDP shards each parameter; DDP holds whole copies)."""
        from pytorch_lightning.strategies import FSDPStrategy

        norm = _norm(tensors, device)
        if isinstance(trainer.strategy, FSDPStrategy):
            norm = trainer.strategy.reduce(norm.square(), reduce_op="sum").sqrt()
        return norm

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        elapsed = time.perf_counter() - (self._batch_started or time.perf_counter())
        if self._measuring:  # the step whose FLOPs were counted is slow: keep it out of the timing
            self._stop_counting()
            self._measuring = False
            self._fetch_mark = self._fetch_seconds(trainer)
        else:
            self._busy += elapsed
            self._batches += 1
            self._clips += _batch_size(batch)
        if isinstance(outputs, dict) and "flow_t" in outputs and "flow_loss" in outputs:
            for name, (total, count) in flow_time_buckets(outputs["flow_t"], outputs["flow_loss"]).items():
                sums = self._buckets.setdefault(name, [torch.zeros((), device=total.device),
                                                       torch.zeros((), device=total.device)])
                sums[0] += total
                sums[1] += count
        if not self._due(trainer):
            return
        metrics: dict[str, float | torch.Tensor] = {}
        trained = [p for optimizer in trainer.optimizers for group in optimizer.param_groups for p in group["params"]]
        device = pl_module.device
        metrics["train/param_norm"] = self._global(trainer, trained, device)
        ema, net = getattr(pl_module, "ema", None), getattr(pl_module, "net", None)
        if ema is not None and net is not None and hasattr(ema, "module"):
            online = list(net.parameters())
            difference = [a.detach() - b.detach() for a, b in zip(ema.module.parameters(), online, strict=True)]
            metrics["train/ema_distance"] = (self._global(trainer, difference, device)
                                             / self._global(trainer, online, device).clamp_min(1e-12))
        for name, (total, count) in self._buckets.items():
            if int(count) > 0:
                metrics[f"train/loss_t_{name}"] = total / count
        for i, optimizer in enumerate(trainer.optimizers):
            metrics["train/lr" if i == 0 else f"train/lr_opt{i}"] = float(optimizer.param_groups[0]["lr"])
        metrics.update(self._system(trainer, pl_module))
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=True, on_epoch=False)
        self._reset()
        self._fetch_mark = self._fetch_seconds(trainer)

    def _system(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        metrics: dict[str, float] = {}
        fetched = self._fetch_seconds(trainer)
        wait = (fetched - self._fetch_mark) if fetched is not None and self._fetch_mark is not None else None
        seconds = self._busy + (wait or 0.0)
        if self._batches and seconds > 0:
            clips = self._clips * trainer.world_size
            metrics["sys/clips_per_s"] = clips / seconds
            spec = getattr(getattr(trainer, "datamodule", None), "spec", None)
            if spec is not None:
                metrics["sys/tokens_per_s"] = clips * spec.n_audio_tokens / seconds
            if wait is not None:
                metrics["sys/data_wait_frac"] = wait / seconds
            if self.flops_per_batch:
                achieved = self.flops_per_batch * self._batches / seconds   # per device
                metrics["sys/tflops_per_s"] = achieved / 1e12
                peak = _peak_flops(pl_module.device, str(trainer.precision))
                if peak:
                    metrics["sys/mfu"] = achieved / peak
        metrics["sys/cpu_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        device = pl_module.device
        if device.type == "cuda":
            metrics["sys/gpu_mem_peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
            metrics["sys/gpu_mem_reserved_gb"] = torch.cuda.memory_reserved(device) / 2**30
            torch.cuda.reset_peak_memory_stats(device)
        return metrics

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._stop_counting()

    def teardown(self, trainer, pl_module, stage) -> None:
        self._stop_counting()


def _batch_size(batch: object) -> int:
    if isinstance(batch, dict):
        if "key" in batch:
            return len(batch["key"])
        batch = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
    return int(batch.shape[0]) if isinstance(batch, torch.Tensor) and batch.dim() else 0


def _peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's theoretical peak FLOP/s at the training precision (lightning_fabric's table), if known."""
    from lightning_fabric.utilities.throughput import get_available_flops

    dtype = torch.bfloat16 if "bf16" in precision else torch.float16 if precision.startswith("16") else torch.float32
    if device.type != "cuda":
        return None
    peak = get_available_flops(device, dtype)
    return float(peak) if peak else None
