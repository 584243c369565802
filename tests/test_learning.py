"""Short real training runs on PointReachMT4-v0: Separated SAC and QMP must learn the dense tasks.

Fixed seeds; ~20 s each on 2 cores. The threshold is well below what these seeds reach (1.0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiment_utils import resolve_config
from garage_experiments import run_experiment

DENSE_TASKS = (0, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dnc_sac", "qmp_dnc"])
def test_learns_the_dense_tasks(method: str, tmp_path: Path) -> None:
    config = resolve_config([method, "--env=PointReachMT4-v0", "--seed", "0",
                             "--n_epochs", "18", "--evaluation_frequency", "3"])
    metrics = run_experiment(config, str(tmp_path), stdout=False)
    assert metrics["Epoch"] == 17
    own = "Evaluation/p" if method.startswith("qmp") else "Evaluation"  # each task's own policy
    dense = [metrics[f"{own}/Task{k}/SuccessRate"] for k in DENSE_TASKS]
    assert sum(dense) / len(dense) >= 0.8, dense
    assert metrics[f"{own}/Task0/AverageReturn"] > -20.0  # untrained policies score about -30
