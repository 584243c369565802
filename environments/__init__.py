"""The project's multi-task environments, registered with gymnasium on import.

`make_multitask_env(env_id, seed=...)` gives the `MultiTaskEnv` family behind an id; the training
code uses it. `gymnasium.make(env_id)` works too and wraps the family in the usual gymnasium
wrappers (use `.unwrapped` to reach the family API).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from environments.multitask import MultiTaskEnv

#: env id -> (entry point, horizon)
ENV_ENTRY_POINTS: dict[str, tuple[str, int]] = {
    "PointReachMT4-v0": ("environments.point_reach:PointReachMT4Env", 50),
    "JacoReachMT5-v1": ("environments.jaco:JacoReachMT5Env", 200),
    "MazeLarge-10-v0": ("environments.maze:MazeLarge10Env", 600),
    "Walker2dMT4-v0": ("environments.walker:Walker2dMT4Env", 1000),
    "KitchenMTEasy-v0": ("environments.kitchen:KitchenMTEasyEnv", 140),
    "MetaWorldCDS-v1": ("environments.metaworld_cds:MetaWorldCDSEnv", 500),
    "MetaWorldMT10-v2": ("environments.metaworld_mt:MetaWorldMT10Env", 500),
    "MetaWorldMT50-v2": ("environments.metaworld_mt:MetaWorldMT50Env", 500),
}


def _register_all() -> None:
    for env_id, (entry_point, horizon) in ENV_ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=horizon)


def known_env_ids() -> list[str]:
    return list(ENV_ENTRY_POINTS)


def env_class(env_id: str) -> type[MultiTaskEnv]:
    """The family class behind `env_id`, imported but not built (for its defaults and names)."""
    module, name = ENV_ENTRY_POINTS[env_id][0].split(":")
    return getattr(importlib.import_module(module), name)


def make_multitask_env(env_id: str, seed: int | None = None, **kwargs: Any) -> MultiTaskEnv:
    """The multi-task family behind `env_id` (raises KeyError for an unknown id)."""
    if env_id not in ENV_ENTRY_POINTS:
        raise KeyError(env_id)
    env = gym.make(env_id, seed=seed, disable_env_checker=True, **kwargs).unwrapped
    assert isinstance(env, MultiTaskEnv)
    return env


_register_all()

__all__ = ["ENV_ENTRY_POINTS", "MultiTaskEnv", "env_class", "known_env_ids", "make_multitask_env"]
