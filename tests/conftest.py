"""Shared test setup: headless rendering, one torch thread, and a tiny run configuration."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("MESA_SHADER_CACHE_DISABLE", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

#: flags that make any method finish an epoch on PointReachMT4-v0 in well under a second
TINY_FLAGS = [
    "--n_epochs", "2", "--batch_size", "200", "--min_buffer_size", "50",
    "--gradient_steps_per_itr", "8", "--buffer_batch_size", "8", "--hidden_sizes", "16", "16",
    "--num_evaluation_episodes", "4", "--steps_per_epoch", "1", "--eval_in_background", "False",
]


@pytest.fixture
def tiny_flags() -> list[str]:
    return list(TINY_FLAGS)
