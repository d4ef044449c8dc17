"""Resume parity with data-loader worker processes: train N == train k, resume, train N - k (same clips, same losses)."""

import pytest
from omegaconf import open_dict

from tests.test_resume import _run


@pytest.mark.slow
def test_resume_parity_with_two_workers(tiny_cfg, tmp_path):
    with open_dict(tiny_cfg):
        tiny_cfg.data.num_workers = 2
        tiny_cfg.data.spec.duration = 1.0  # random 1 s crops of the 2 s clips must replay as well
    full_model, full = _run(tiny_cfg.copy(), tmp_path / "full", 7)
    _, first = _run(tiny_cfg.copy(), tmp_path / "split", 3)  # 4 batches per epoch: resume on worker 1's batch
    ckpt = tmp_path / "split" / "checkpoints" / "last.ckpt"
    resumed_model, second = _run(tiny_cfg.copy(), tmp_path / "split", 7, ckpt_path=str(ckpt))
    assert sorted(second.losses) == [4, 5, 6, 7]
    for step in range(4, 8):
        assert second.keys[step] == full.keys[step], f"step {step} saw different clips after resume"
        assert abs(second.losses[step] - full.losses[step]) < 1e-5, (step, second.losses[step], full.losses[step])
    raw = max((a - b).abs().max().item() for a, b in zip(full_model.net.parameters(), resumed_model.net.parameters(), strict=True))
    assert raw < 1e-6
