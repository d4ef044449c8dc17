"""Callbacks used by tests that run training in subprocesses (importable as ``tests.helpers``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import FSDPStrategy


def state_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RankAudit(pl.Callback):
    """Writes, per rank, the clip keys it trained on, digests of its final weights and EMA, and (with
    ``save_weights``) the weights themselves. ``state_dict()`` runs on every rank: under FSDP it gathers."""

    def __init__(self, out_dir: str, save_weights: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.save_weights = save_weights
        self.keys: list[str] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.keys += list(batch["key"])

    def on_train_end(self, trainer, module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        net, ema = module.net.state_dict(), module.ema.state_dict()
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "keys": self.keys,
                  "net": state_digest(net), "ema": state_digest(ema)}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
        if self.save_weights:
            weights = {"net": {k: v.detach().cpu().clone() for k, v in net.items()},
                       "ema": {k: v.detach().cpu().clone() for k, v in ema.items()}}
            torch.save(weights, self.out_dir / f"rank{trainer.global_rank}.pt")


class CPUFSDPStrategy(FSDPStrategy):
    """Lightning's FSDPStrategy, allowed on CPU (gloo) so FSDP's sharded semantics are testable here.

    Lightning refuses ``FSDPStrategy`` on non-CUDA accelerators by an exact type check; torch's FSDP itself
    runs on CPU with gloo. Only tests use this; production configs use the real strategy on GPUs.
    """

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        # torch's FSDP needs an explicit CPU device_id (Lightning passes None on CPU); wrap here, with the
        # same arguments Lightning would use, and let Lightning finish its setup on the wrapped model.
        from torch.distributed.fsdp import FullyShardedDataParallel

        model = FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload,
                                         mixed_precision=self.mixed_precision_config,
                                         sharding_strategy=self.sharding_strategy,
                                         device_id=torch.device("cpu"), **self.kwargs)
        self.kwargs.pop("auto_wrap_policy", None)
        return super()._setup_model(model)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        # torch's full optimizer-state gather reuses one buffer per flat parameter and, with
        # offload_to_cpu=True (Lightning's setting), skips the copy because `.cpu()` of a CPU tensor is
        # the tensor itself: on CPU, exp_avg comes back overwritten by exp_avg_sq. On GPUs `.cpu()` copies.
        # Gather without offload (which clones) to keep the CPU test's checkpoints right.
        from torch.distributed.fsdp import (
            FullOptimStateDictConfig,
            FullStateDictConfig,
            OptimStateKeyType,
            StateDictType,
        )
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=True),
                                  FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=True)):
            state = FSDP.optim_state_dict(self.model, optimizer)
            if self.global_rank == 0:
                state = FSDP.rekey_optim_state_dict(state, OptimStateKeyType.PARAM_ID, self.model)
            return state


class SignalAtStep(pl.Callback):
    """Sends this process a real signal (default SIGTERM) at the end of training step ``step`` — what a
    scheduler does to a job — so the preemption path runs as it would under SLURM."""

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step = step
        self.signal_name = signal_name

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            import os
            import signal

            os.kill(os.getpid(), getattr(signal, self.signal_name))
