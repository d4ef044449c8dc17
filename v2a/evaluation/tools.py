"""Assemble the measuring tools of an evaluation from its options; the distributed state, if any."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from hydra.utils import instantiate

from v2a.evaluation.analysis import Tools
from v2a.evaluation.speech import MISSING_WHISPER

log = logging.getLogger(__name__)


def _whisper(option: str | bool, notes: dict[str, str]):
    """(recognizer, embedder) of Whisper tiny.en, or (None, None) with the reason in ``notes``."""
    option = str(option).lower()
    if option in ("false", "off", "none"):
        notes["whisper"] = "whisper=false"
        return None, None
    try:
        from v2a.evaluation.embedders import WhisperEmbedder
        from v2a.evaluation.speech import WhisperRecognizer

        recognizer = WhisperRecognizer()
    except ImportError as error:
        if option == "true":
            raise ValueError(f"whisper=true but {MISSING_WHISPER}") from error
        log.warning("speech/WER and the Whisper FAD are skipped: %s", MISSING_WHISPER)
        notes["whisper"] = MISSING_WHISPER
        return None, None
    return recognizer, WhisperEmbedder(model_path=recognizer.model_path, model=recognizer.model)


def build_tools(module, *, classifier: str | None, whisper: str | bool, embedders: list | None,
                watermark: object | None) -> Tools:
    """Tools for ``module``'s features; classifier, Whisper and extra embedders when available."""
    notes: dict[str, str] = {}
    tools = Tools(features=module.features, watermarker=watermark, notes=notes)
    if classifier:
        from v2a.evaluation.classifier import ClassifierEmbedder

        tools.classifier = ClassifierEmbedder(classifier, device=str(module.device))
        tools.embedders.append(tools.classifier)
    else:
        notes["classifier"] = "no classifier= given (train one: python train.py experiment=audio_classifier)"
        log.warning("classifier FAD / KL / accuracy skipped: %s", notes["classifier"])
    tools.recognizer, whisper_embedder = _whisper(whisper, notes)
    if whisper_embedder is not None:
        tools.embedders.append(whisper_embedder)
    for spec in embedders or []:
        tools.embedders.append(instantiate(spec) if isinstance(spec, dict) or hasattr(spec, "keys") else spec)
    return tools


def distributed_state():
    """accelerate's PartialState when launched with several processes (``accelerate launch``), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes: a gloo process group
    if state.num_processes <= 1:
        raise RuntimeError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but accelerate formed no process group")
    return state


@contextlib.contextmanager
def whole_split() -> Iterator[None]:
    """Read every clip in this process: the shard reader splits by ``RANK``/``WORLD_SIZE`` (or the process
    group); rank 0 scores all clips after the ranks have generated their shares."""
    # RANK/WORLD_SIZE in the environment take precedence over the process group in webdataset's view
    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE")}
    os.environ.update({"RANK": "0", "WORLD_SIZE": "1"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
