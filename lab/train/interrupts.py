"""Ctrl-C while training: the first finishes the step, saves and stops; a second stops at once. Either way the
run directory holds a complete, consistent checkpoint to resume from: the new one or the previous one.

Two rules make that true at any moment a signal can land:
- a step is all or nothing: a second Ctrl-C inside a step leaves weights, optimiser moments and batch-norm
  statistics half-way through it, so that state is never saved (the previous checkpoint stays);
- saving is never cut: SIGINT is held back (blocked, not lost) while a checkpoint and its bookkeeping are
  written, and delivered the moment they are complete."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back for the duration (a no-op off the main thread, where Python takes no signals). Nests:
    only the outermost block lets a held Ctrl-C through."""
    if not _on_main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # outermost exit: a held Ctrl-C is delivered here


@contextmanager
def stop_between_steps(request_stop: Callable[[], bool]) -> Iterator[None]:
    """First Ctrl-C: `request_stop()` (which returns whether a stop was already requested) and carry on to the
    end of the step. A second Ctrl-C raises KeyboardInterrupt at once."""
    if not _on_main_thread():
        yield
        return

    def handler(signum, frame):
        if request_stop():
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl-C again to stop now)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
