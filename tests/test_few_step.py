"""Few-step sampling: ODE methods and time grids, and the reflow distillation stage."""

import json
import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from tests.conftest import TINY, compose_config
from v2a.checkpoints.loading import load_checkpoint
from v2a.diffusion import ODESampler
from v2a.diffusion.samplers import time_grid
from v2a.evaluation.job import evaluate
from v2a.pipeline import V2APipeline
from v2a.training.reflow_buffer import PairBuffer
from v2a.training.reflow_module import ReflowModule
from v2a.training.run import train

# --- samplers ---------------------------------------------------------------------------------


def counting(velocity):
    """``velocity`` plus a count of its evaluations."""
    calls = []

    def wrapped(x, t):
        calls.append(float(t[0]))
        return velocity(x, t)

    return wrapped, calls


@pytest.mark.parametrize("method", ["heun", "midpoint"])
def test_second_order_methods_are_exact_on_velocity_linear_in_time(method):
    # dx/dt = c + d t  ->  x(1) = x0 + c + d / 2; Euler misses d / (2N), a 2nd-order method is exact.
    g = torch.Generator().manual_seed(0)
    x0, c, d = (torch.randn(3, 5, generator=g) for _ in range(3))
    velocity = lambda x, t: c + d * t[:, None]  # noqa: E731
    exact = x0 + c + d / 2
    for steps in (1, 3):
        assert torch.allclose(ODESampler(method=method)(velocity, x0, steps=steps), exact, atol=1e-5)
    euler = ODESampler(method="euler")(velocity, x0, steps=2)
    assert torch.allclose(euler - exact, -d / 4, atol=1e-5)


def test_midpoint_beats_euler_at_equal_nfe_on_a_linear_ode():
    # dx/dt = lam x  ->  x(1) = x0 exp(lam): an error of order h for Euler, h^2 for midpoint.
    lam, x0 = -1.5, torch.ones(1, 4)
    velocity = lambda x, t: lam * x  # noqa: E731
    exact = x0 * math.exp(lam)
    errors = {}
    for method in ("euler", "midpoint", "heun"):
        sampler = ODESampler(method=method)
        for nfe in (4, 8, 16):
            steps = nfe // sampler.EVALUATIONS_PER_STEP[method]
            wrapped, calls = counting(velocity)
            x = sampler(wrapped, x0, steps=steps)
            assert len(calls) == nfe == sampler.nfe(steps)
            errors[method, nfe] = float((x - exact).abs().max())
    for method in ("midpoint", "heun"):
        assert errors[method, 4] < errors["euler", 4]  # 2 steps vs 4: already better
        assert errors[method, 8] < errors["euler", 8] / 2 and errors[method, 16] < errors["euler", 16] / 4
    # convergence order: doubling NFE halves Euler's error and quarters midpoint's
    assert 1.6 < errors["euler", 8] / errors["euler", 16] < 2.4
    assert 3.2 < errors["midpoint", 8] / errors["midpoint", 16] < 4.8


def test_time_grids():
    assert torch.equal(time_grid(4), torch.linspace(0, 1, 5))  # the uniform grid is unchanged
    for schedule, shift in (("uniform", 3.0), ("cosine", 1.0), ("cosine", 0.5)):
        t = time_grid(6, schedule=schedule, shift=shift)
        assert t[0] == 0 and t[-1] == 1 and (t.diff() > 0).all(), (schedule, shift)
    cosine = time_grid(4, schedule="cosine")
    assert torch.allclose(cosine, 1 - cosine.flip(0), atol=1e-6)  # symmetric: short steps at both ends
    assert cosine[1] < 0.25
    assert time_grid(4, shift=3.0)[1] < 0.25 < time_grid(4, shift=1 / 3)[1]  # shift > 1: small steps near noise
    sampler = ODESampler(schedule="cosine", shift=2.0, method="midpoint")
    wrapped, calls = counting(lambda x, t: torch.zeros_like(x))
    sampler(wrapped, torch.zeros(2, 3), steps=3)
    grid = sampler.times(3)
    assert calls == pytest.approx([float(t) for pair in zip(grid[:-1], (grid[:-1] + grid[1:]) / 2, strict=True)
                                   for t in pair])
    for bad in ({"schedule": "linear"}, {"shift": 0.0}, {"method": "rk4"}, {"steps": 0}):
        with pytest.raises(ValueError):
            ODESampler(**bad)


def test_a_solve_can_start_part_way_along_the_flow():
    # On the straight path toward a target (v = (target - x) / (1 - t)) Euler lands on it from any start
    # on that path, with the grid squeezed into [start, 1].
    g = torch.Generator().manual_seed(1)
    target, noise = torch.randn(2, 6, generator=g), torch.randn(2, 6, generator=g)
    wrapped, calls = counting(lambda x, t: (target - x) / (1 - t[:, None]))
    x = ODESampler(steps=4)(wrapped, 0.6 * target + 0.4 * noise, start=0.6)
    assert torch.allclose(x, target, atol=1e-5)
    assert calls == pytest.approx([0.6, 0.7, 0.8, 0.9])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="start"):
            ODESampler()(wrapped, noise, start=bad)


def test_pair_buffer_keeps_the_last_batches_and_samples_across_them():
    buffer = PairBuffer(2)
    for i in range(3):
        buffer.add(torch.full((4, 1), i), torch.full((4, 2), float(i)), torch.full((4, 2), float(i) + 10))
    assert len(buffer) == 8
    frames, x0, x1 = buffer.sample(8, torch.Generator().manual_seed(0))
    assert sorted(frames.flatten().tolist()) == [1] * 4 + [2] * 4  # the oldest batch was dropped
    assert torch.equal(x1 - x0, torch.full((8, 2), 10.0))  # rows stay paired
    with pytest.raises(ValueError):
        buffer.add(torch.zeros(2, 1), torch.zeros(3, 2), torch.zeros(3, 2))


# --- reflow -----------------------------------------------------------------------------------


def reflow_cfg(tiny_shards, tmp_path, teacher: str):
    overrides = [o for o in TINY if not o.startswith(("experiment=", "model.scheduler"))]
    cfg = compose_config(["experiment=v2a_reflow", *overrides, f"paths.root_dir={tmp_path}",
                          f"paths.output_dir={tmp_path / 'run'}", f"data.root={tiny_shards}",
                          f"model.reflow.teacher={teacher}", "model.reflow.steps=2", "model.reflow.buffer_batches=2",
                          "model.scheduler.warmup_steps=1", "trainer.max_steps=1",
                          "trainer.limit_val_batches=0"])
    with open_dict(cfg):
        cfg.callbacks.demo_samples = None
    return cfg


@pytest.fixture()
def student(tiny_shards, tmp_path, one_step_checkpoint):
    module = instantiate(reflow_cfg(tiny_shards, tmp_path, one_step_checkpoint).model)
    module.load_teacher()
    return module


def test_student_starts_from_the_teacher_ema(student):
    assert isinstance(student, ReflowModule)
    teacher = student.teacher.net.state_dict()
    for name, weights in (("net", student.net.state_dict()), ("ema", student.ema.module.state_dict())):
        assert weights.keys() == teacher.keys()
        assert all(torch.equal(weights[k], teacher[k]) for k in teacher), name
    assert student.pipeline.cfg_scale == 1.0 and student.reflow.cfg_scale == 3.0
    assert not any(k.startswith("_teacher") or "teacher" in k for k in student.state_dict())


def test_reflow_targets_are_the_teacher_samples(student, monkeypatch):
    # A teacher with a known velocity, v = -x: N Euler steps take x0 to x0 (1 - 1/N)^N.
    monkeypatch.setattr(student, "teacher_velocity", lambda frames: (lambda x, t: -x))
    frames = torch.randint(0, 255, (3, 50, 3, 32, 32), dtype=torch.uint8)
    x0, x1 = student.teacher_pairs(frames, torch.Generator().manual_seed(0))
    assert x0.shape == (3, 80, 200)
    assert torch.allclose(x1, x0 * (1 - 1 / 2) ** 2)  # model.reflow.steps=2

    seen = {}

    def capture(frames_, x0_, x1_, generator):
        seen.update(frames=frames_, x0=x0_, x1=x1_)
        return torch.tensor(0.5, requires_grad=True)

    monkeypatch.setattr(student, "reflow_loss", capture)
    student.training_step({"frames": frames}, 0)
    assert torch.allclose(seen["x1"], seen["x0"] * 0.25) and seen["x0"].std() > 0.5  # fresh noise, teacher's endpoint
    clip_sums = lambda f: f.sum(dim=(1, 2, 3, 4)).sort().values  # noqa: E731  (rows come shuffled)
    assert torch.equal(clip_sums(seen["frames"]), clip_sums(frames))


def test_reflow_loss_regresses_the_straight_line_velocity(student):
    class Zero(torch.nn.Module):
        def forward(self, x=None, t=None, cond=None, keep=None, *, frames=None):
            return {} if frames is not None else torch.zeros_like(x)

    student.pipeline.net = Zero()
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(2, 80, 200, generator=g), torch.randn(2, 80, 200, generator=g)
    loss = student.reflow_loss(torch.zeros(2, 50, 3, 32, 32), x0, x1, g)
    assert torch.isclose(loss, ((x1 - x0) ** 2).mean())


def test_reflow_training_writes_a_plain_v2a_checkpoint_that_samples_in_one_step(tiny_shards, tmp_path,
                                                                                one_step_checkpoint):
    cfg = reflow_cfg(tiny_shards, tmp_path, one_step_checkpoint)
    result = train(cfg)
    checkpoint = load_checkpoint(result["checkpoint"])
    config = checkpoint["v2a_config"]
    assert config["model"]["_target_"] == "v2a.training.v2a_module.V2AModule" and "reflow" not in config["model"]
    assert config["model"]["cfg_scale"] == 1.0 and config["distilled_from"]["teacher"] == one_step_checkpoint
    assert checkpoint["global_step"] == 1
    teacher = V2APipeline.from_pretrained(one_step_checkpoint)
    frames = torch.randint(0, 255, (2, 50, 3, 32, 32), dtype=torch.uint8)
    for path in (result["checkpoint"], tmp_path / "run" / "export"):
        module = V2APipeline.from_pretrained(path)  # the normal loader: no reflow code involved
        assert type(module).__name__ == "V2APipeline" and module.cfg_scale == 1.0 and module.sampler.steps == 2
        mel = module.generate_mel(frames, steps=1, generator=torch.Generator().manual_seed(0))
        assert mel.shape == (2, 80, 200) and torch.isfinite(mel).all()
    # the student trained: its weights moved away from the teacher's EMA weights
    student = load_checkpoint(result["checkpoint"])["state_dict"]
    assert any(not torch.equal(v, student[f"pipeline.net.{k}"]) for k, v in teacher.net.state_dict().items())
    assert OmegaConf.create(config).model.sampler.steps == 2


def test_reflow_resume_draws_from_the_same_pairs(tiny_shards, tmp_path, one_step_checkpoint):
    """4 steps == 2 steps + resume + 2: the pair buffer travels in the checkpoint.

    With new pairs every 2nd step into a 2-batch buffer, step 3 samples from pairs made before the stop;
    a resume that lost them would train step 3 on other pairs and end with other weights.
    """
    def run(out: str, max_steps: int, ckpt_path: str | None = None):
        cfg = reflow_cfg(tiny_shards, tmp_path, one_step_checkpoint)
        with open_dict(cfg):
            cfg.trainer.max_steps = max_steps
            cfg.model.reflow.refresh_every = 2
            cfg.model.scheduler.total_steps = 4
            cfg.paths.output_dir = str(tmp_path / out)
            cfg.callbacks.model_checkpoint.every_n_train_steps = 1
            cfg.ckpt_path = ckpt_path
        return train(cfg)

    full = run("full", 4)
    run("split", 2)
    saved = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(saved["reflow_pairs"]["batches"]) == 1 and saved["global_step"] == 2
    resumed = run("split", 4, str(tmp_path / "split" / "checkpoints" / "last.ckpt"))
    a, b = load_checkpoint(full["checkpoint"])["state_dict"], load_checkpoint(resumed["checkpoint"])["state_dict"]
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-6


def test_evaluate_takes_the_sampler_method_at_evaluation_time(one_step_checkpoint, tiny_shards, tmp_path, monkeypatch):
    used = []
    original = ODESampler.__call__
    monkeypatch.setattr(ODESampler, "__call__", lambda self, *a, **k: used.append((self.method, self.schedule)) or
                        original(self, *a, **k))
    evaluate(ckpt=one_step_checkpoint, out=str(tmp_path / "eval"), data=str(tiny_shards), steps=1, max_clips=4,
             calibration_clips=8, batch_size=4, plots=0, whisper="false", watermark=None, cache_dir=None,
             sampler={"method": "midpoint", "schedule": "cosine", "shift": None})
    assert used and set(used) == {("midpoint", "cosine")}
    run = json.loads((tmp_path / "eval" / "metrics.json").read_text())["run"]
    assert run["sampler"] == {"method": "midpoint", "schedule": "cosine", "shift": 1.0, "prior_start": 0.0} and run["steps"] == 1
