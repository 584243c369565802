"""Episode statistics against hand values: `EpisodeTracker` turns lockstep steps into episodes
(return, discounted return with gamma^t from t = 0, length, terminated only for genuine
terminations, success = any step's info["success"], info metrics reduced by "last" / "mean" /
"max"), and `episode_metrics` averages them as the original logged them (population StdReturn)."""

from __future__ import annotations

import numpy as np
import pytest

from learning.runs.run_logger import episode_metrics
from learning.samplers.sampler import Episode, EpisodeTracker, StepResult

INFO_METRICS = {"stage": ("StagesCompleted", "last"), "v": ("Velocity", "mean"),
                "full": ("FullSuccessRate", "max")}
EXTRA_NAMES = ["StagesCompleted", "Velocity", "FullSuccessRate"]


def _info(success: bool, stage: float, v: float, full: float) -> dict[str, float | bool]:
    return {"success": success, "stage": stage, "v": v, "full": full}


def _two_episodes() -> tuple[list[Episode], list[list[bool]]]:
    """Row 0 plays episode A (rewards 1, 2, 3; success on step 2 only; stage 0, 1, 1; v 1, 2, 6;
    full 0, 1, 0; terminated on step 3, then idle). Row 1 plays episode B (rewards -1 x 4; no
    success; stage 0; v 0, 0, 0, 4; full 0; cut by the horizon on step 4, not terminated).
    Returns the finished episodes and the per-step success flags `record` returned."""
    tracker = EpisodeTracker(2, 0.99, INFO_METRICS)
    a = [(1.0, _info(False, 0, 1, 0)), (2.0, _info(True, 1, 2, 1)),
         (3.0, _info(False, 1, 6, 0))]
    b = [(-1.0, _info(False, 0, v, 0)) for v in (0, 0, 0, 4)]
    flags = []
    for t in range(4):
        active = np.array([t < 3, True])
        rewards = np.array([a[t][0] if t < 3 else 0.0, b[t][0]], dtype=np.float32)
        infos = [a[t][1] if t < 3 else {}, b[t][1]]
        step = StepResult(next_obs=np.zeros((2, 1), np.float32), rewards=rewards,
                          terminated=np.array([t == 2, False]),
                          ended=np.array([t == 2, t == 3]), infos=infos)
        flags.append(tracker.record(step, active).tolist())
    return tracker.pop_finished(), flags


def test_tracker_builds_each_episode_from_its_steps() -> None:
    (ep_a, ep_b), flags = _two_episodes()
    assert flags == [[False, False], [True, False], [False, False], [False, False]]
    assert (ep_a.task, ep_a.ret, ep_a.length, ep_a.terminated, ep_a.success) == (
        0, 6.0, 3, True, True)  # success on step 2 although step 3 has none
    assert ep_a.discounted_return == pytest.approx(1 + 0.99 * 2 + 0.9801 * 3)  # 5.9203
    assert ep_a.extras == pytest.approx(
        {"StagesCompleted": 1.0, "Velocity": 3.0, "FullSuccessRate": 1.0})
    assert (ep_b.task, ep_b.ret, ep_b.length, ep_b.terminated, ep_b.success) == (
        1, -4.0, 4, False, False)  # a horizon cut is no termination
    assert ep_b.discounted_return == pytest.approx(-(1 + 0.99 + 0.9801 + 0.970299))
    assert ep_b.extras == pytest.approx(
        {"StagesCompleted": 0.0, "Velocity": 1.0, "FullSuccessRate": 0.0})


def test_episode_metrics_of_two_episodes_by_hand() -> None:
    episodes, _ = _two_episodes()
    metrics = episode_metrics(episodes, EXTRA_NAMES)
    expected = {
        "AverageReturn": 1.0,
        "StdReturn": 5.0,  # population std of (6, -4); ddof=1 would give 7.07
        "MaxReturn": 6.0,
        "MinReturn": -4.0,
        "AverageDiscountedReturn": (5.9203 - 3.940399) / 2,  # 0.9899505
        "AverageEpisodeLength": 3.5,
        "NumEpisodes": 2.0,
        "TerminationRate": 0.5,
        "SuccessRate": 0.5,
        "StagesCompleted": 0.5,
        "Velocity": 2.0,
        "FullSuccessRate": 0.5,
    }
    assert metrics == pytest.approx(expected, rel=1e-6)

