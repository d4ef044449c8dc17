"""Command lines that take any file name: literal path values, one-line override errors, a console that
prints any name.

Hydra's override grammar refuses parentheses, brackets, commas, ``=``, quotes, spaces and non-ASCII letters in
an unquoted value, so ``video=Reel (1967) [tape 2].mp4`` is a grammar error. The entry points therefore quote
the values of their *path keys* (``video=``, ``out=``, ``ckpt=`` ...) before Hydra reads them: any character
works, ``${...}`` included (taken literally). A value already in Hydra quotes (``video='a b.mp4'``) is left as
the user wrote it. Other keys keep Hydra's grammar.

Bad overrides (a typo in a key, ``duration=abc``) are reported as one line with exit code 2, before Hydra's
own multi-line report (:func:`check_overrides`). File names that are not UTF-8 (Latin-1 bytes on disk) reach
Python as lone surrogates; :func:`console_for_any_name` makes printing and logging them safe.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from v2a.utils.console import console_for_any_name


def hydra_quote(value: str) -> str:
    """``value`` as a single-quoted Hydra override value that reads back verbatim."""
    value = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)  # backslashes before a quote double
    value = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value)  # ... and at the end
    return "'" + value.replace("${", "\\${") + "'"  # no interpolation of user text


def omegaconf_literal(value: str) -> str:
    """``value`` as an OmegaConf string that resolves to itself (``${`` is not an interpolation)."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)


def _is_quoted(value: str) -> bool:
    return len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""


def literal_paths(argv: Sequence[str], keys: Iterable[str]) -> list[str]:
    """``argv`` with the value of every ``KEY=VALUE`` (also ``+KEY=``/``++KEY=``) whose key is in ``keys``
    quoted for Hydra, unless already quoted; ``KEY=null`` stays Hydra's null."""
    keys = set(keys)
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in keys and value != "null" and not _is_quoted(value):
            arg = f"{key}={hydra_quote(value)}"
        out.append(arg)
    return out


def check_overrides(config_dir: str | Path, config_name: str, argv: Sequence[str]) -> None:
    """Compose the config with ``argv``'s overrides once; on an error print one line and exit with code 2.

    Skipped when Hydra gets a flag (``--help``, ``--cfg``, ``-m``: sweep values are not plain values);
    ``hydra.*`` overrides are left to Hydra.
    """
    if any(arg.startswith("-") for arg in argv):
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [arg for arg in argv if not arg.lstrip("+~").startswith(("hydra.", "hydra/"))]
    if GlobalHydra.instance().is_initialized():
        return
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        cause = f": {str(error.__cause__).splitlines()[0]}" if error.__cause__ else ""  # e.g. the wrong type
        print(f"error: {str(error).splitlines()[0]}{cause}", file=sys.stderr, flush=True)
        sys.exit(2)


def prepare_command_line(config_dir: str | Path, config_name: str, path_keys: Iterable[str],
                         argv: Sequence[str] | None = None) -> list[str]:
    """For an entry point's ``__main__``: a safe console, path values quoted, overrides checked.
    Returns the new ``sys.argv[1:]``."""
    console_for_any_name()
    args = literal_paths(sys.argv[1:] if argv is None else argv, path_keys)
    check_overrides(config_dir, config_name, args)
    return args
