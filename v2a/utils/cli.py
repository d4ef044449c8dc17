"""Helpers shared by the thin command-line entry points."""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf


def require(cfg: DictConfig, *keys: str) -> None:
    """Exit with one clear line (no traceback) when mandatory ``key=value`` arguments are missing."""
    missing = [key for key in keys if OmegaConf.is_missing(cfg, key)]
    if missing:
        print(f"error: missing required argument(s): {', '.join(f'{k}=...' for k in missing)}", file=sys.stderr)
        sys.exit(2)


def plain_options(cfg: DictConfig, exclude: tuple[str, ...]) -> dict:
    """The top-level entries of ``cfg`` as plain values (resolved), leaving out ``exclude`` — nodes such as
    ``model`` whose interpolations only resolve inside a checkpoint's config."""
    return {key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            for key, value in cfg.items() if key not in exclude}
