"""The ``v2a`` console script: ``v2a generate VIDEO ...``, ``v2a demo --ckpt CKPT`` and ``v2a detect FILE...``.

``generate`` composes ``v2a/conf/generate.yaml`` as ``python generate.py`` does. The video, the output, the
checkpoint, the texts and every other flag are plain arguments: their values are set on the composed config
verbatim, never read as Hydra override syntax, so a file name may hold any character (``"Reel (1967) [tape
2].mp4"``, quotes, ``=``, ``${...}``, a newline, bytes that are not UTF-8). Only the config-group choices
(``--vocoder``, ``--no-watermark``) and any further ``key=value`` arguments are Hydra overrides. A name that
starts with ``-`` goes after ``--`` or as ``./-name.mp4``. ``detect`` is the watermark detector
(``python -m v2a.watermark detect``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library at import: `v2a generate --server` hands its work to a warm server without
# loading torch, Hydra or OmegaConf (v2a.generation.remote); the local paths import them when they run.
from v2a.generation.remote import ENV_VAR as SERVER_ENV_VAR
from v2a.generation.remote import ServerUnavailable, default_socket_path, run_remote
from v2a.utils.console import console_for_any_name

if TYPE_CHECKING:
    from omegaconf import DictConfig

# flag -> generate.yaml key, for flags that take a value
VALUE_FLAGS = {
    "ckpt": "ckpt", "out": "out", "prompt": "prompt", "negative_prompt": "negative_prompt",
    "transcript": "transcript", "seed": "seed", "candidates": "num_candidates", "steps": "steps",
    "cfg_scale": "cfg_scale", "duration": "duration", "original_audio": "original_audio",
    "audio_format": "audio_format", "overlap": "overlap_s", "device": "device", "threads": "num_threads",
    "video_codec": "video_codec",
}
__all__ = ["compose_generate", "generate_overrides", "generate_parser", "main", "plain_values", "serve_parser"]


def default_out(video: Path) -> Path:
    """``IN_v2a.mp4`` beside a file (``.mkv``/``.mov`` kept), ``IN_v2a/`` beside a folder."""
    if video.is_dir():
        return video.with_name(f"{video.name}_v2a")
    suffix = video.suffix if video.suffix.lower() in (".mkv", ".mov") else ".mp4"
    return video.with_name(f"{video.stem}_v2a{suffix}")


def generate_overrides(args: argparse.Namespace) -> list[str]:
    """The Hydra overrides of ``v2a/conf/generate.yaml``: config-group choices and the extra ``key=value``
    arguments. No file name or text goes here (:func:`plain_values`)."""
    overrides = []
    vocoder = args.vocoder or ("neural" if args.vocoder_checkpoint is not None else None)
    if vocoder is not None:
        overrides.append(f"model/vocoder={vocoder}")
    if args.no_watermark:
        overrides.append("watermark=off")
    return overrides + list(args.overrides)


def plain_values(args: argparse.Namespace) -> dict[str, object]:
    """Config keys and the values the flags give them, set verbatim on the composed config."""
    video = Path(args.video)
    values: dict[str, object] = {"video": args.video, "out": args.out if args.out is not None else str(default_out(video))}
    for flag, key in VALUE_FLAGS.items():
        value = getattr(args, flag)
        if value is not None and key not in values:
            values[key] = value
    if args.vocoder_checkpoint is not None:
        values["model.vocoder.checkpoint"] = args.vocoder_checkpoint
    return values


def compose_generate(args: argparse.Namespace) -> DictConfig:
    """``v2a/conf/generate.yaml`` composed with the group choices and overrides, then the plain values set."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from v2a.conf import CONFIG_DIR  # inside the package: an installed wheel finds the configs too
    from v2a.conf.arguments import omegaconf_literal

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="generate", overrides=generate_overrides(args))
    for key, value in plain_values(args).items():
        OmegaConf.update(cfg, key, omegaconf_literal(value) if isinstance(value, str) else value, merge=False)
    return cfg


USAGE = """usage: v2a {generate,serve,demo,detect} ...

  v2a generate VIDEO --ckpt CKPT [-o OUT] [options] [key=value ...]   give a video a generated soundtrack
  v2a serve --ckpt CKPT [--socket PATH]                                 keep a model loaded for 'v2a generate --server'
  v2a demo --ckpt CKPT [--port PORT]                                    the demo web page (pip install 'v2a[demo]')
  v2a detect FILE... [--key KEY] [--fpr FPR]                            say whether files carry the watermark

'v2a generate --help' lists the options."""


def generate_parser() -> argparse.ArgumentParser:
    gen = argparse.ArgumentParser(
        prog="v2a generate", description="Writes OUT.mp4 (the video copied, or re-encoded if the container cannot "
                                         "hold it; the generated audio muxed), OUT.wav and OUT.json. File names are "
                                         "taken as they are, any character. Extra key=value arguments are "
                                         "v2a/conf/generate.yaml overrides.")
    gen.add_argument("video", help="a video file or a folder of videos")
    gen.add_argument("overrides", nargs="*", metavar="key=value", help="more v2a/conf/generate.yaml overrides")
    gen.add_argument("--ckpt", required=True, help="checkpoint (RUN/checkpoints/last.ckpt) or export folder")
    gen.add_argument("-o", "--out", help="output video (.mp4/.mkv/.mov), or folder for a folder of videos "
                                         "(default: VIDEO_v2a.mp4 beside the input)")
    gen.add_argument("--prompt", help="text prompt, or a UTF-8 .txt file")
    gen.add_argument("--negative-prompt", dest="negative_prompt", help="what to avoid, text or a .txt file")
    gen.add_argument("--transcript", help="dialogue, text or a UTF-8 .txt/.srt/.vtt file (subtitles are timed: each window gets its lines)")
    gen.add_argument("--seed", type=int)
    gen.add_argument("-n", "--candidates", type=int, help="candidates per video (OUT_cand{i}.*, seeds seed+i)")
    gen.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    gen.add_argument("--cfg-scale", dest="cfg_scale", type=float, help="guidance scale (default: the model's)")
    gen.add_argument("--duration", type=float, help="seconds to generate (default: the whole video)")
    gen.add_argument("--overlap", type=float, help="window overlap in seconds (default 0.5)")
    gen.add_argument("--original-audio", dest="original_audio", choices=("drop", "keep", "mix"))
    gen.add_argument("--video-codec", dest="video_codec", choices=("auto", "copy", "h264"),
                     help="auto (default): copy the video if the output container holds its codec, else H.264")
    gen.add_argument("--audio-format", dest="audio_format", choices=("wav", "flac"))
    gen.add_argument("--vocoder", help="a v2a/conf/model/vocoder config instead of the checkpoint's (griffin_lim, neural)")
    gen.add_argument("--vocoder-checkpoint", dest="vocoder_checkpoint",
                     help="export of a trained neural vocoder (implies --vocoder neural)")
    gen.add_argument("--no-watermark", dest="no_watermark", action="store_true",
                     help="do not watermark (the output will not be marked as generated)")
    gen.add_argument("--device", help="auto (the default: the GPU when present), cpu, cuda, cuda:1 ...")
    gen.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a busy shared CPU)")
    gen.add_argument("--server", action="store_true",
                     help=f"run in the warm 'v2a serve' process (no torch start-up, the model stays loaded); also "
                          f"when ${SERVER_ENV_VAR} names its socket")
    gen.add_argument("--socket", help=f"the server's Unix socket (default ${SERVER_ENV_VAR}, else {default_socket_path()})")
    return gen


def serve_parser() -> argparse.ArgumentParser:
    serve = argparse.ArgumentParser(prog="v2a serve", description="Keep torch imported and a model loaded, and run "
                                    "'v2a generate --server SOCKET' commands in this process, one at a time (each in "
                                    "its caller's folder, with its caller's V2A_* variables).")
    serve.add_argument("--ckpt", required=True, help="checkpoint or export to load now (others load when asked for)")
    serve.add_argument("--socket", default=str(default_socket_path()), help="Unix socket to listen on")
    serve.add_argument("--device", default="auto", help="device of the preloaded model (auto, cpu, cuda ...)")
    serve.add_argument("--threads", type=int, help="torch CPU threads")
    return serve


def demo_parser() -> argparse.ArgumentParser:
    demo = argparse.ArgumentParser(prog="v2a demo", description="Serve the demo page: upload a video, get it back "
                                   "with a generated, watermarked soundtrack, its spectrogram and the watermark check.")
    demo.add_argument("--ckpt", required=True, help="checkpoint (RUN/checkpoints/last.ckpt) or export folder")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    demo.add_argument("--port", type=int, default=7860)
    demo.add_argument("--device", default="auto", help="auto (the GPU when present), cpu, cuda, cuda:1 ...")
    demo.add_argument("--threads", type=int, help="torch CPU threads")
    demo.add_argument("--work", help="folder for the results (default: a temporary one, removed at exit)")
    return demo


def run_demo_cli(args: argparse.Namespace) -> int:
    if not Path(args.ckpt).exists():
        print(f"error: checkpoint {args.ckpt} does not exist", file=sys.stderr)
        return 2
    from v2a.generation.demo import serve

    try:
        serve(args.ckpt, host=args.host, port=args.port, device=args.device, threads=args.threads, work=args.work)
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run_serve_cli(args: argparse.Namespace) -> int:
    """``v2a serve``: preload the model, then answer ``v2a generate --server`` until interrupted."""
    if not Path(args.ckpt).exists():
        print(f"error: checkpoint {args.ckpt} does not exist", file=sys.stderr)
        return 2
    import torch

    from v2a.generation.server import PipelineCache, serve
    from v2a.pipeline import V2APipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    cache = PipelineCache(V2APipeline.from_pretrained)
    cache(args.ckpt, device=args.device, vocoder=None, sampler=None)

    def ready() -> None:
        print(f"serving {args.ckpt} at {args.socket}: v2a generate VIDEO --ckpt {args.ckpt} --server --socket "
              f"{args.socket}", flush=True)

    def generate_only(argv: list[str]) -> int:
        if argv[:1] != ["generate"]:
            print("error: a v2a server runs 'v2a generate' commands only", file=sys.stderr)
            return 2
        return main(argv, load_pipeline=cache)

    serve(args.socket, generate_only, ready=ready)
    return 0


def run_generate_cli(args: argparse.Namespace, load_pipeline: Callable[..., Any] | None = None) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from v2a.conf import ConfigError, check_config
    from v2a.generation.entry import run_generate

    try:
        cfg = compose_generate(args)
        check_config(cfg)  # impossible values (v2a/conf/schemas.py), before anything is loaded
    except (HydraException, OmegaConfBaseException, ConfigError) as error:
        cause = f": {str(error.__cause__).splitlines()[0]}" if error.__cause__ else ""  # e.g. the wrong type
        print(f"error: {str(error).splitlines()[0]}{cause}", file=sys.stderr)
        return 2
    return run_generate(cfg, load_pipeline=load_pipeline)


def main(argv: Sequence[str] | None = None, *, load_pipeline: Callable[..., Any] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 1 a file failed (detect), 2 bad usage or input).
    ``load_pipeline`` is the server's cache of loaded models (``v2a serve``; its requests are never forwarded)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    console_for_any_name()
    if argv[:1] == ["detect"]:  # the detector's own parser and messages
        from v2a.watermark.__main__ import main as watermark_main

        return watermark_main(argv)
    if argv[:1] == ["demo"]:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return run_demo_cli(demo_parser().parse_args(argv[1:]))
    if argv[:1] == ["serve"]:
        return run_serve_cli(serve_parser().parse_args(argv[1:]))
    if argv[:1] != ["generate"]:
        print(USAGE, file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    args = generate_parser().parse_intermixed_args(argv[1:])
    if (args.server or os.environ.get(SERVER_ENV_VAR)) and load_pipeline is None:
        try:
            return run_remote(args.socket or os.environ.get(SERVER_ENV_VAR) or default_socket_path(), argv)
        except ServerUnavailable as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_generate_cli(args, load_pipeline)


def console() -> None:
    """The ``v2a`` command: :func:`main`, then a prompt exit. Every result is written, closed and renamed into
    place before ``main`` returns, so the interpreter's teardown has nothing left to do — and tearing down
    torch (the CUDA build) costs more than a second and about 140 MB of extra peak memory
    (docs/benchmarks.md, generate_speed). Logs and standard streams are flushed first."""
    status = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it anyway
            pass
    os._exit(status)


if __name__ == "__main__":
    console()
