"""Checkpoint files: written atomically, validated on load, the last K kept.

A checkpoint is one torch.save archive `checkpoint_epochEEEEE.pt` in the run folder, EEEEE the
0-based epoch it was taken after, in 5 digits (progress.csv's `Epoch`, the progress line's and the
video files' epoch: `checkpoint_epoch00029.pt` follows the row `Epoch 29`). It is written
to a temporary file, flushed to disk and renamed over, so a kill at any instant leaves the previous
checkpoint whole. Loading checks the archive and its format before trusting it: a truncated or
foreign file is reported, never half-read.

`CheckpointWriter` writes on a background thread: the archive of a full replay buffer is hundreds
of MB (about a second to serialise and write), and torch.save releases the GIL while it does
that, so training goes on meanwhile. The state handed over must not share memory with the live
objects (see `Trainer.state_dict`).
"""

from __future__ import annotations

import glob
import os
import re
import threading
from typing import Any

import torch

#: 2: per-task buffer fills and per-member optimizer step counts (the original's samplers)
FORMAT = 2
_NAME = re.compile(r"checkpoint_epoch(\d+)\.pt$")
REQUIRED = ("format", "epoch", "config", "sac", "buffer", "learner", "collector", "rng",
            "trainer")


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated or not ours."""


def checkpoint_paths(run_dir: str) -> list[str]:
    """The run's checkpoint files, oldest first."""
    paths = [p for p in glob.glob(os.path.join(run_dir, "checkpoint_epoch*.pt"))
             if _NAME.search(p)]
    return sorted(paths, key=lambda p: int(_NAME.search(p).group(1)))  # type: ignore[union-attr]


def checkpoint_path(run_dir: str, epoch: int) -> str:
    return os.path.join(run_dir, f"checkpoint_epoch{epoch:05d}.pt")


def save_checkpoint(run_dir: str, epoch: int, state: dict[str, Any], keep: int = 1) -> str:
    path = checkpoint_path(run_dir, epoch)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, "epoch": epoch, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in checkpoint_paths(run_dir)[:-keep]:
        os.remove(old)
    return path


class CheckpointWriter:
    """Saves checkpoints one at a time on a background thread; `extra` is added to each.

    A write error surfaces at the next `submit`, `wait` or `close`. If the process dies while a
    write is in flight, the previous checkpoint is still whole (and resume continues from it)."""

    def __init__(self, run_dir: str, keep: int, extra: dict[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.keep = keep
        self.extra = dict(extra or {})
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, epoch: int, state: dict[str, Any]) -> None:
        """Start writing `state` as epoch `epoch`'s checkpoint (after the previous one is done)."""
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(epoch, state),
                                        name=f"checkpoint-{epoch}", daemon=True)
        self._thread.start()

    def _write(self, epoch: int, state: dict[str, Any]) -> None:
        try:
            save_checkpoint(self.run_dir, epoch, {**self.extra, **state}, keep=self.keep)
        except BaseException as error:  # handed to the training thread by wait()
            self._error = error

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; re-raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    close = wait


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read and validate a checkpoint (our own files: full unpickling is trusted)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # truncated zip, wrong file type, unpickling failure
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated "
                              f"({type(error).__name__})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this version")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return state
