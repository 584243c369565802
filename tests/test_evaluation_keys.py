"""Evaluation keys as the authors logged them: QMP methods log the Q-switch mixture under
`Evaluation/...` and each task's own policy under `Evaluation/p/...`; other methods log their own
policy under `Evaluation/...` only. Checked on tiny PointReachMT4-v0 runs against a fresh
evaluation of each behaviour with the final weights (this checks which behaviour each key holds;
the metric values themselves are checked by hand in test_episode_metrics.py and, through the
`Evaluator`, on scripted envs below: deterministic actions, exactly `episodes_per_task` episodes
of every task, per-task metrics of the right episodes)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from experiment_utils import resolve_config
from garage_experiments import build_trainer, final_summary
from learning.policies.behaviour import Behaviour, OwnPolicy
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch
from learning.runs.evaluation import Evaluator, InlineEvaluation

N = 4  # PointReachMT4-v0
KEYS = ("SuccessRate", "AverageReturn", "AverageDiscountedReturn", "NumEpisodes")


def _train(method: str, tiny_flags: list[str], log_dir: Path
           ) -> tuple[list[dict[str, str]], dict[str, float], str]:
    """Trains a tiny run; returns its progress.csv rows, a fresh evaluation of the final weights
    at the last epoch under the prefixes "own" and (QMP) "mixture", and the final summary."""
    config = resolve_config([method, "--env=PointReachMT4-v0", *tiny_flags])
    trainer = build_trainer(config, str(log_dir), stdout=False)
    try:
        metrics = trainer.train()
        evaluation = trainer.evaluation
        assert isinstance(evaluation, InlineEvaluation)  # tiny flags: --eval_in_background False
        first = evaluation.behaviours["Evaluation"]
        policy = first.policy  # type: ignore[attr-defined]
        behaviours: dict[str, Behaviour] = {"own": OwnPolicy(policy)}
        if config.spec.qmp:
            assert isinstance(first, QSwitch)
            behaviours["mixture"] = QSwitch(policy, first.critic)
        fresh = evaluation.evaluator.metrics(behaviours, int(metrics["Epoch"]),
                                             evaluation.extra_names)
    finally:
        trainer.close()
    with open(log_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    return rows, fresh, final_summary(metrics, N, config.spec.qmp)


def _names() -> list[str]:
    return [*KEYS, *(f"Task{k}/{key}" for k in range(N) for key in KEYS)]


def test_qmp_logs_mixture_under_evaluation_and_own_policy_under_p(
        tiny_flags: list[str], tmp_path: Path) -> None:
    rows, fresh, summary = _train("qmp_dnc", tiny_flags, tmp_path)
    last = rows[-1]
    for key in ("Evaluation/SuccessRate", "Evaluation/p/SuccessRate",
                "Evaluation/Task0/SuccessRate", "Evaluation/p/Task0/SuccessRate"):
        assert key in last, key
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert not any(key.startswith("Evaluation/Mixture/") for key in last)
    for name in _names():
        assert float(last[f"Evaluation/{name}"]) == pytest.approx(fresh[f"mixture/{name}"]), name
        assert float(last[f"Evaluation/p/{name}"]) == pytest.approx(fresh[f"own/{name}"]), name
    # the two behaviours really differ on this run, so the checks above tell them apart
    assert fresh["mixture/AverageReturn"] != pytest.approx(fresh["own/AverageReturn"])
    assert "mixture (Q-switch acting), logged as Evaluation/" in summary
    assert "own policy of each task, logged as Evaluation/p/" in summary


def test_non_qmp_logs_own_policy_under_evaluation_only(tiny_flags: list[str],
                                                       tmp_path: Path) -> None:
    rows, fresh, summary = _train("dnc_sac", tiny_flags, tmp_path)
    last = rows[-1]
    assert not any(key.startswith(("Evaluation/p/", "Evaluation/Mixture/")) for key in last)
    for name in _names():
        assert float(last[f"Evaluation/{name}"]) == pytest.approx(fresh[f"own/{name}"]), name
    assert "own policy of each task, logged as Evaluation/" in summary
    assert "mixture" not in summary.split("Mixture matrix")[0]


# ---------------------------------------------------------------------------- scripted Evaluator

HORIZON = 5


class _ScriptedReturns(gym.Env):
    """Episode m after a seeded reset lasts lengths[m] steps of reward rewards[m] each; a length
    above HORIZON never terminates (the horizon cuts it). Success on the first step of episode
    m when m is in `succeed`."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, lengths: list[int], rewards: list[float], succeed: set[int]) -> None:
        self.lengths, self.rewards, self.succeed = lengths, rewards, succeed
        self.episode, self.t = -1, 0

    def reset(self, *, seed: int | None = None, options: object = None
              ) -> tuple[np.ndarray, dict[str, object]]:
        self.episode = 0 if seed is not None else self.episode + 1
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: np.ndarray
             ) -> tuple[np.ndarray, float, bool, bool, dict[str, object]]:
        m = self.episode
        self.t += 1
        info = {"success": self.t == 1 and m in self.succeed}
        return (np.zeros(1, np.float32), self.rewards[m], self.t >= self.lengths[m], False,
                info)


class _RecordingBehaviour:
    """Zero actions acted by each task's own policy; keeps every call's `deterministic`."""

    def __init__(self) -> None:
        self.deterministic: list[bool] = []

    def act(self, obs: torch.Tensor, steps_in_episode: np.ndarray, deterministic: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
        self.deterministic.append(deterministic)
        c, n, _ = obs.shape
        return np.zeros((c, n, 1), np.float32), np.tile(np.arange(n), (c, 1))


def test_evaluator_runs_deterministic_episodes_per_task_by_hand() -> None:
    """2 tasks, 2 copies, 3 episodes per task: copy 0 plays its episodes 0 and 1, copy 1 only
    its episode 0 (its episode 1, return 1000, must not be run). Task 0 plays (length, reward)
    (2, 1), (3, 2) and (7 cut at 5, -1); task 1 (1, 4), (4, 0.5) and (2, 3)."""
    envs = [  # row c * N + i: copy c of task i
        _ScriptedReturns([2, 3, 9], [1.0, 2.0, 1000.0], {1}),
        _ScriptedReturns([1, 4, 9], [4.0, 0.5, 1000.0], set()),
        _ScriptedReturns([7, 9], [-1.0, 1000.0], set()),
        _ScriptedReturns([2, 9], [3.0, 1000.0], {0}),
    ]
    evaluator = Evaluator(envs, 2, HORIZON, lambda obs: obs, episodes_per_task=3,
                          discount=0.5, info_metrics={}, seed=0)
    behaviour = _RecordingBehaviour()
    episodes = evaluator.run(behaviour, epoch=0)
    assert behaviour.deterministic and all(d is True for d in behaviour.deterministic)
    assert [e.task for e in episodes] == [0, 0, 0, 1, 1, 1]
    assert sorted((e.task, e.length, e.ret, e.terminated) for e in episodes) == [
        (0, 2, 2.0, True), (0, 3, 6.0, True), (0, 5, -5.0, False),
        (1, 1, 4.0, True), (1, 2, 6.0, True), (1, 4, 2.0, True)]
    metrics = evaluator.metrics({"own": behaviour}, 3, [])
    assert metrics["own/Iteration"] == 3
    assert metrics["own/NumEpisodes"] == 6
    assert metrics["own/Task0/NumEpisodes"] == metrics["own/Task1/NumEpisodes"] == 3
    assert metrics["own/Task0/AverageReturn"] == pytest.approx(1.0)  # (2 + 6 - 5) / 3
    assert metrics["own/Task1/AverageReturn"] == pytest.approx(4.0)  # (4 + 6 + 2) / 3
    assert metrics["own/Task0/TerminationRate"] == pytest.approx(2 / 3)
    assert metrics["own/Task0/SuccessRate"] == pytest.approx(1 / 3)
    assert metrics["own/Task1/SuccessRate"] == pytest.approx(1 / 3)
    assert metrics["own/Task0/AverageEpisodeLength"] == pytest.approx(10 / 3)
    # discount 0.5: (1 + 0.5) + 2 (1 + 0.5 + 0.25) - (1 + 0.5 + 0.25 + 0.125 + 0.0625)
    assert metrics["own/Task0/AverageDiscountedReturn"] == pytest.approx(
        (1.5 + 3.5 - 1.9375) / 3)
    evaluator.close()
