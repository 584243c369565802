"""A user's own multi-task family (examples/two_goals_env.py), registered with gymnasium from
outside the project, runs through the real command line; ids that name no family are refused
with one line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import environments

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--n_epochs", "2", "--batch_size", "80", "--min_buffer_size", "40",
         "--gradient_steps_per_itr", "10", "--buffer_batch_size", "8", "--hidden_sizes", "16",
         "--num_evaluation_episodes", "4", "--eval_in_background", "False"]


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["qmp_dnc", "qmp_sac"])
def test_a_registered_family_runs_with_module_colon_id(method: str, tmp_path: Path) -> None:
    done = run(method, "--env=two_goals_env:TwoGoalsMT2-v0", *FLAGS,
               "--log_dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for key in ("Evaluation/SuccessRate", "Evaluation/p/SuccessRate",
                "Evaluation/Task1/AverageReturn", "Train/LocalPolicy1/MixtureProbs"):
        assert rows[-1][key] != "", key
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["env"] == "two_goals_env:TwoGoalsMT2-v0" and config["num_tasks"] == 2
    # the evaluation worker process (the default) builds the family by the same id
    done = run("dnc_sac", "--env=two_goals_env:TwoGoalsMT2-v0", *FLAGS[:-2],
               "--log_dir", str(tmp_path / "background"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("env", "message"), [
    ("NoSuchEnv-v0", "unknown env 'NoSuchEnv-v0'"),
    ("no_such_module:Env-v0", "cannot import 'no_such_module'"),
    ("CartPole-v1", "not a multi-task family"),
])
def test_ids_that_name_no_family_are_one_line_errors(env: str, message: str,
                                                     tmp_path: Path) -> None:
    done = run("dnc_sac", f"--env={env}", "--log_dir", str(tmp_path / "never"))
    assert done.returncode == 2
    line, = done.stderr.strip().splitlines()
    assert line.startswith("run.py: error:") and message in line
    assert not (tmp_path / "never").exists()


def test_the_family_class_behind_an_id() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        family = environments.env_class("two_goals_env:TwoGoalsMT2-v0")
        assert family.task_names == ("left", "right") and family.horizon == 20
        env = environments.make_multitask_env("TwoGoalsMT2-v0", seed=0)  # registered now
        assert env.num_tasks == 2 and env.network_obs_dim() == 1
        assert environments.env_class("JacoReachMT5-v1").__name__ == "JacoReachMT5Env"
    finally:
        sys.path.remove(str(ROOT / "examples"))
