"""The wheel works installed: built from the sources, installed in a fresh venv, run away from the repo."""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import webdataset as wds

from tests.conftest import ROOT

WHERE = "import v2a, v2a.cli, v2a.conf; print(v2a.__file__); print(v2a.cli.__file__); print(v2a.conf.CONFIG_DIR)"


def _run(args: list, cwd: Path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**clean, "OMP_NUM_THREADS": "1", **env})
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def first_test_clip(shards: Path, out: Path) -> Path:
    for sample in wds.WebDataset(str(sorted((shards / "test").glob("*.tar"))[0]), shardshuffle=False):
        out.write_bytes(sample["mp4"])
        return out
    raise AssertionError("no test clip")


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the sources (what an sdist holds), so the shared working tree gets no build/."""
    src = out / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "v2a", src / "v2a", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", out / "dist", src], cwd=out)
    (wheel,) = (out / "dist").glob("v2a-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A venv that sees this environment's installed dependencies (a .pth line naming its site-packages: a plain
    path, so the editable install of the repo found there is never activated) but none of the repo's files."""
    venv.create(path, with_pip=False, symlinks=True)
    python = path / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "_deps_of_the_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_installed_wheel_generates(one_step_checkpoint, tiny_shards, tmp_path):
    wheel = build_wheel(tmp_path / "build")
    names = subprocess.check_output([sys.executable, "-m", "zipfile", "-l", wheel], text=True)
    for config in ("v2a/conf/generate.yaml", "v2a/conf/spec/default.yaml", "v2a/conf/model/denoiser/tiny.yaml",
                   "v2a/conf/data_prep/synthetic.yaml", "v2a/conf/schemas.py",
                   "v2a/models/vocoder/builtin/vocoder_tiny/model.safetensors",   # the default vocoder
                   "v2a/models/vocoder/builtin/vocoder_tiny/config.json"):
        assert config in names, config

    env = tmp_path / "venv"
    python = fresh_venv(env)
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=tmp_path)

    work = tmp_path / "work"  # a cwd away from the repo: nothing of the source tree is importable
    work.mkdir()
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work).stdout.strip())
    where = _run([python, "-c", WHERE], cwd=work).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where   # the package and its configs, installed
    assert not any(Path(p).is_relative_to(ROOT) for p in where), where
    assert Path(where[2], "generate.yaml").is_file()

    export = Path(one_step_checkpoint).parent.parent / "export"
    probe = first_test_clip(tiny_shards, work / "probe.mp4")
    proc = _run([env / "bin" / "v2a", "generate", probe, "--ckpt", export, "-o", work / "out.mp4", "--steps", "1",
                 "--threads", "1"], cwd=work)
    assert (work / "out.mp4").stat().st_size > 0 and (work / "out.wav").is_file(), proc.stdout
    assert "wrote" in proc.stdout

    # the installed configs compose on their own: data_prep reaches the spec/ group, the checks run
    check = ("from hydra import compose, initialize_config_dir\nfrom v2a.conf import CONFIG_DIR, check_config\n"
             "with initialize_config_dir(config_dir=str(CONFIG_DIR / 'data_prep'), version_base='1.3'):\n"
             "    check_config(compose(config_name='shards', overrides=['input=a', 'out=b']))\n"
             "with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base='1.3'):\n"
             "    check_config(compose(config_name='config', overrides=['paths.root_dir=.', 'paths.output_dir=.']))\n"
             "print('composed')")
    assert "composed" in _run([python, "-c", check], cwd=work).stdout
