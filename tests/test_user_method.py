"""A user's own method (examples/mean_penalty_method.py), declared in one place and registered
from outside the package, runs and resumes through the real command line; a MODULE:NAME that
names no method is one error line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import experiment_utils
from garage_experiments import update_extensions
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

ROOT = Path(__file__).resolve().parent.parent
METHOD = "mean_penalty_method:qmp_dnc_mean_l2"
FLAGS = ["--env=PointReachMT4-v0", "--batch_size", "200", "--min_buffer_size", "50",
         "--gradient_steps_per_itr", "8", "--buffer_batch_size", "8", "--hidden_sizes", "16",
         "--num_evaluation_episodes", "4"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_registered_method_runs_and_resumes(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    done = run(METHOD, *FLAGS, "--n_epochs", "2", "--log_dir", str(log_dir))
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert config["method"] == METHOD
    done = run("resume", "--snapshot_dir", str(log_dir), "--n_epochs", "3")
    assert done.returncode == 0, done.stderr
    with open(log_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["Epoch"]) for r in rows] == [0, 1, 2]
    assert rows[-1]["Train/LocalPolicy0/MixtureProbs"] != ""  # a QMP method: the Q-switch acts


def test_the_method_declares_its_parts_and_its_term_reaches_the_update() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        config = experiment_utils.resolve_config([METHOD, "--env=PointReachMT4-v0"])
        spec = config.spec
        assert (spec.sampling, spec.qmp) == ("per_task", True)
        policy = TaskPolicy(Architecture.SEPARATE, 4, 2, 2, [8])
        critic = TwinCritic(Architecture.SEPARATE, 4, 2, 2, [8])
        extensions = update_extensions(config, policy, critic)
        assert extensions is not None and [t.name for t in extensions.loss_terms] == ["mean_l2"]
        sac = MultiTaskSAC(policy, critic, 4, 2, SACConfig(), extensions=extensions)
        assert not sac.hand_path
        import mean_penalty_method
        assert mean_penalty_method.PENALTY > 0
    finally:
        sys.path.remove(str(ROOT / "examples"))
    with pytest.raises(experiment_utils.ExperimentError, match="--use_pc_grad"):
        update_extensions(replace(config, use_pc_grad=True), policy, critic)


@pytest.mark.parametrize(("method", "message"), [
    ("no_such_module:m", "cannot import 'no_such_module'"),
    ("mean_penalty_method:nothing", "registers no method 'nothing'"),
])
def test_a_module_method_that_names_no_method_is_one_error_line(method: str, message: str,
                                                                tmp_path: Path) -> None:
    done = run(method, "--log_dir", str(tmp_path / "never"))
    assert done.returncode == 2
    line, = done.stderr.strip().splitlines()
    assert line.startswith("run.py: error:") and message in line
