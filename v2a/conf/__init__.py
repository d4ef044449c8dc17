"""The Hydra configs, shipped inside the package so an installed ``v2a`` finds them (``CONFIG_DIR``)."""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
