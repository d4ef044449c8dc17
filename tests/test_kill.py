"""kill -9 in the middle of shard writing and of training: the rerun completes, nothing duplicated or corrupt."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import webdataset as wds

from tests.conftest import ROOT, TINY
from v2a.utils.hashing import sha256_file


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception:  # a file caught mid-write by the probe: look again
            pass
        if proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the kill point")
        time.sleep(0.05)
    raise AssertionError("kill point not reached in time")


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _popen(args, env=None):
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)


@pytest.mark.slow
def test_kill_during_shard_writing_then_rerun(tmp_path):
    args = ["data_prep/make_synthetic.py", "splits.train.clips=96", "splits.val.clips=0", "splits.test.clips=0",
            "shard_size=8", "workers=1", f"hydra.run.dir={tmp_path / 'h'}"]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = _popen([*args, f"out={killed}"])
    index = killed / "train" / "index.json"
    _wait_for(lambda: index.exists() and len(json.loads(index.read_text())["shards"]) >= 2, 120, proc)
    _kill(proc)
    assert len(json.loads(index.read_text())["shards"]) < 12  # really interrupted
    subprocess.run([sys.executable, *args, f"out={killed}"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, *args, f"out={clean}"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    resumed = json.loads(index.read_text())
    assert resumed["samples"] == 96 and len(resumed["shards"]) == 12
    assert not list((killed / "train").glob("*.tmp"))
    for shard in resumed["shards"]:  # every indexed shard is whole: its checksum matches the file
        assert sha256_file(killed / "train" / shard["name"]) == shard["sha256"]

    def contents(root):
        urls = sorted(str(p) for p in (root / "train").glob("*.tar"))
        return [(s["__key__"], s["flac"], s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)]

    got, expected = contents(killed), contents(clean)
    assert len({key for key, _, _ in got}) == 96  # nothing duplicated
    assert got == expected  # same clips, audio and metadata as an uninterrupted build


@pytest.mark.slow
def test_kill_during_training_then_resume(tiny_shards, tmp_path):
    run_dir = tmp_path / "run"
    args = ["train.py", *TINY, f"data.root={tiny_shards}", f"hydra.run.dir={run_dir}", "trainer.max_steps=40",
            "callbacks.model_checkpoint.every_n_train_steps=3", "trainer.val_check_interval=1000",
            "trainer.limit_val_batches=0", "callbacks.demo_samples.num_clips=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = _popen(args, env=env)
    last = run_dir / "checkpoints" / "last.ckpt"
    _wait_for(lambda: last.exists() and torch.load(last, weights_only=True)["global_step"] >= 6, 300, proc)
    _kill(proc)
    step_at_kill = torch.load(last, weights_only=True)["global_step"]
    assert step_at_kill < 40
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr + done.stdout
    final = torch.load(last, weights_only=True)
    assert final["global_step"] == 40
    assert all(torch.isfinite(v).all() for v in final["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_sigterm_during_training_saves_exits_cleanly_and_resumes_exactly(tiny_shards, tmp_path):
    """kill -TERM (SLURM's preemption signal) mid-training: the process saves last.ckpt after the batch and
    exits with 0; rerunning the command finishes on the weights of an uninterrupted run, in the same
    TensorBoard version folder."""
    args = ["train.py", *TINY, f"data.root={tiny_shards}", "trainer.max_steps=12", "trainer.val_check_interval=1000",
            "trainer.limit_val_batches=0", "callbacks.demo_samples.num_clips=0", "logger=[csv,tensorboard]"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight = subprocess.run([sys.executable, *args, f"hydra.run.dir={tmp_path / 'straight'}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, env=env)
    assert straight.returncode == 0, straight.stderr[-3000:]
    run_dir = tmp_path / "run"
    log_file = tmp_path / "killed.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen([sys.executable, *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
        last = run_dir / "checkpoints" / "last.ckpt"
        _wait_for(lambda: last.exists() and torch.load(last, weights_only=True)["global_step"] >= 4, 300, proc)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log_file.read_text()[-3000:]
    stopped_at = torch.load(last, weights_only=True)["global_step"]
    assert 4 <= stopped_at < 12
    assert f"stopped by SIGTERM at step {stopped_at}" in log_file.read_text()
    done = subprocess.run([sys.executable, *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr + done.stdout
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    assert max((a["state_dict"][k].float() - b["state_dict"][k].float()).abs().max().item() for k in a["state_dict"]) < 1e-6
    assert [p.name for p in (run_dir / "tensorboard").iterdir()] == ["version_0"]   # the logger run continued
