"""Checkpoint files: written atomically, validated on load, the last K kept.

A checkpoint is one torch.save archive `checkpoint_epochEEEEE.pt` in the run folder. It is written
to a temporary file, flushed to disk and renamed over, so a kill at any instant leaves the previous
checkpoint whole. Loading checks the archive and its format before trusting it: a truncated or
foreign file is reported, never half-read.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import torch

FORMAT = 1
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


def save_checkpoint(run_dir: str, epoch: int, state: dict[str, Any], keep: int = 1) -> str:
    path = os.path.join(run_dir, f"checkpoint_epoch{epoch:05d}.pt")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, "epoch": epoch, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in checkpoint_paths(run_dir)[:-keep]:
        os.remove(old)
    return path


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
