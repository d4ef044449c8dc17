"""The Hydra configs, shipped inside the package so an installed ``v2a`` finds them (``CONFIG_DIR``).

Importing this package registers the configs' schemas and the ``${clip:...}`` resolver (``schemas.register``):
whoever composes from ``CONFIG_DIR`` has them.
"""

from pathlib import Path

from v2a.conf.schemas import ConfigError, check_config, exit_if_invalid, register

CONFIG_DIR = Path(__file__).resolve().parent

register()

__all__ = ["CONFIG_DIR", "ConfigError", "check_config", "exit_if_invalid"]
