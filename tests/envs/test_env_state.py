"""Env snapshots for exact resume (environments/env_state.py): every family except the Meta-World
ones declares `exact_resume`, and an env saved mid-episode and restored onto a freshly built env
continues with exactly the same observations and rewards, across resets."""

from __future__ import annotations

import numpy as np
import pytest

import environments
from environments.env_state import load_env, save_env

#: the only families whose resumed runs start fresh episodes (Meta-World keeps state of its own)
NOT_EXACT = {"MetaWorldCDS-v1", "MetaWorldMT10-v2", "MetaWorldMT50-v2"}
FAMILIES = [e for e in environments.known_env_ids() if e not in NOT_EXACT]


def test_exact_resume_flags() -> None:
    """A family switched off by mistake would make its resumed runs restart their episodes."""
    ids = environments.known_env_ids()
    assert NOT_EXACT <= set(ids)
    assert {e for e in ids if not environments.env_class(e).exact_resume} == NOT_EXACT


@pytest.mark.parametrize("env_id", FAMILIES)
def test_snapshot_round_trip(env_id: str) -> None:
    family = environments.make_multitask_env(env_id, seed=0)
    assert family.exact_resume
    env = family.make_task_envs(evaluation=False)[1]
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    for _ in range(9):
        env.step(rng.uniform(-1, 1, family.action_dim).astype(np.float32))
    blob = save_env(env)
    assert len(blob) < 4 * 2**20  # compact: no compiled model inside
    copy = load_env(blob, family.make_task_envs(evaluation=False)[1])
    steps = 60 if env_id == "KitchenMTEasy-v0" else 300
    for t in range(steps):
        action = rng.uniform(-1, 1, family.action_dim).astype(np.float32)
        a = env.step(action)
        b = copy.step(action)
        np.testing.assert_array_equal(a[0], b[0], err_msg=f"step {t}")
        assert a[1:4] == b[1:4], f"step {t}"
        if a[2] or t % 100 == 99:
            np.testing.assert_array_equal(env.reset()[0], copy.reset()[0])
