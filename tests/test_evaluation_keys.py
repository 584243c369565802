"""Evaluation keys as the authors logged them: QMP methods log the Q-switch mixture under
`Evaluation/...` and each task's own policy under `Evaluation/p/...`; other methods log their own
policy under `Evaluation/...` only. Checked on tiny PointReachMT4-v0 runs against a fresh
evaluation of each behaviour with the final weights."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from experiment_utils import resolve_config
from garage_experiments import build_trainer, final_summary
from learning.behaviour import Behaviour, OwnPolicy, QSwitch
from learning.evaluation import InlineEvaluation

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
