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
