"""Stopping a run cleanly when it is asked to: SIGINT (Ctrl-C) and SIGTERM (what a cluster
scheduler sends before it preempts a job).

A signal only sets a flag. The training loop checks it at safe points (every env step and every
gradient update, and while it waits for the background evaluation), then writes a checkpoint of
the last finished epoch and stops (see `Trainer.train`). A second signal stops at once, as a
plain KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType

#: the signals that stop a run
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """A stop signal arrived; raised at the next safe point."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class RunStopped(Exception):
    """The run stopped on a signal after writing what it could (a checkpoint of the last
    finished epoch, or nothing when no epoch had finished)."""

    def __init__(self, signum: int, epoch: int, checkpoint: str | None, seconds: float
                 ) -> None:
        self.signum, self.epoch, self.checkpoint, self.seconds = signum, epoch, checkpoint, seconds
        super().__init__(signal.Signals(signum).name)


class StopSignals:
    """While active (a context manager), SIGINT and SIGTERM set `signum` instead of killing
    the process; `check()` raises StopRequested once one has arrived."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise StopRequested(self.signum)


def ignore_stop_signals() -> None:
    """For worker processes: the training process decides when they end (a terminal's Ctrl-C
    reaches the whole process group)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """Ignore the stop signals for a moment, e.g. while starting a worker process: an ignored
    signal stays ignored in the new process, so it never sees a terminal's Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
