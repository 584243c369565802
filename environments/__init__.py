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
    """The benchmarks this project ships (a user's own registered families work too)."""
    return list(ENV_ENTRY_POINTS)


class UnknownEnvError(KeyError):
    """An env id that names no multi-task family; str() is the one-line reason."""

    def __str__(self) -> str:
        return str(self.args[0])


def import_prefix(text: str, what: str) -> str:
    """NAME of a "MODULE:NAME" text, once MODULE is imported (its import registers NAME, as
    gymnasium.make does for env ids); a text without a module prefix is returned as it is.
    Raises ValueError, naming `what`, when MODULE cannot be imported."""
    if ":" not in text:
        return text
    module, _, name = text.partition(":")
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ValueError(f"cannot import {module!r} for {what} {name!r}: {error}") from None
    return name


def _registered_id(env_id: str) -> str:
    """The gymnasium id behind `env_id` (MODULE:ID imports MODULE first)."""
    try:
        env_id = import_prefix(env_id, "env")
    except ValueError as error:
        raise UnknownEnvError(str(error)) from None
    if env_id not in gym.registry:
        raise UnknownEnvError(f"unknown env {env_id!r}; choose one of: "
                              f"{', '.join(known_env_ids())}, or a multi-task family you "
                              "registered with gymnasium (MODULE:ID imports MODULE first)")
    return env_id


def env_class(env_id: str) -> type[MultiTaskEnv]:
    """The family class behind `env_id`, imported but not built (for its defaults and names):
    a benchmark, or any gymnasium id whose entry point is a `MultiTaskEnv` subclass."""
    entry = gym.registry[_registered_id(env_id)].entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    if not (isinstance(entry, type) and issubclass(entry, MultiTaskEnv)):
        raise UnknownEnvError(f"env {env_id!r} is registered, but its entry point is not a "
                              "multi-task family (a subclass of environments.MultiTaskEnv)")
    return entry


def make_multitask_env(env_id: str, seed: int | None = None, **kwargs: Any) -> MultiTaskEnv:
    """The multi-task family behind `env_id` (raises UnknownEnvError, a KeyError, for an id
    that names none)."""
    env_class(env_id)  # checks the id names a family
    env = gym.make(_registered_id(env_id), seed=seed, disable_env_checker=True,
                   **kwargs).unwrapped
    assert isinstance(env, MultiTaskEnv)
    return env


_register_all()

__all__ = ["ENV_ENTRY_POINTS", "MultiTaskEnv", "UnknownEnvError", "env_class", "import_prefix",
           "known_env_ids", "make_multitask_env"]
