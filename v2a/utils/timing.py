"""Where the time of a run goes: named stages, each timed exclusive of the stages nested inside it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from torch import nn

F = TypeVar("F", bound=Callable[..., Any])


class StageClock:
    """Seconds per stage. ``with clock("vocoder"): ...`` adds to a stage; a stage entered inside another
    (a module watched with :meth:`watch` running inside a wrapped call) is taken out of the outer one, so
    the stages add up to the time spent in any of them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [name, started, time spent in nested stages]

    def start(self, name: str) -> None:
        self._stack.append([name, time.perf_counter(), 0.0])

    def stop(self) -> None:
        name, started, nested = self._stack.pop()
        elapsed = time.perf_counter() - started
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - nested
        if self._stack:
            self._stack[-1][2] += elapsed

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop()

    def wrap(self, name: str, fn: F) -> F:
        """``fn`` with its calls counted as ``name``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)

        return timed  # type: ignore[return-value]

    def watch(self, name: str, module: nn.Module) -> Callable[[], None]:
        """Count ``module``'s forward passes as ``name``; returns the function that stops watching."""
        before = module.register_forward_pre_hook(lambda *_: self.start(name))
        after = module.register_forward_hook(lambda *_: self.stop())

        def remove() -> None:
            before.remove()
            after.remove()

        return remove


def maybe(clock: StageClock | None, name: str, fn: F) -> F:
    """``fn`` timed as ``name`` when there is a clock, ``fn`` itself otherwise."""
    return fn if clock is None else clock.wrap(name, fn)
