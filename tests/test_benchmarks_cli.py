"""The paper's benchmarks through the command line: per-env defaults, env options, memory
refusal, and one tiny qmp_dnc epoch on every benchmark."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import replace
from pathlib import Path

import pytest

import environments
import run
from experiment_utils import (
    env_options,
    max_env_steps,
    resolve_config,
    size_replay_buffers,
)
from learning.buffers.replay_buffer import MultiTaskReplayBuffer

BENCHMARKS = [e for e in environments.known_env_ids() if e != "PointReachMT4-v0"]


def test_env_defaults_apply_unless_a_flag_is_given() -> None:
    config = resolve_config(["qmp_dnc", "--env=MazeLarge-10-v0"])
    assert (config.num_tasks, config.batch_size, config.buffer_batch_size) == (10, 6000, 256)
    assert (config.min_buffer_size, config.n_epochs, config.num_evaluation_episodes) == (
        3000, 2000, 100)
    assert config.discount == 0.99  # not set by the env
    config = resolve_config(["qmp_dnc", "--env=MazeLarge-10-v0", "--batch_size", "60"])
    assert config.batch_size == 60 and config.buffer_batch_size == 256
    mt10 = resolve_config(["mtsac", "--env=MetaWorldMT10-v2"])
    assert (mt10.lr, mt10.buffer_batch_size, mt10.steps_per_epoch) == (1.5e-3, 2560, 10)
    assert mt10.replay_buffer_size is None  # decided when the run is built


def test_default_replay_capacity_fits_the_run_and_the_machine() -> None:
    """1e6 per buffer as the original, at most 40% of memory, whatever the run's length (so a
    run extended by resume keeps the capacity of a run started that long)."""
    mt50 = resolve_config(["qmp_dnc", "--env=MetaWorldMT50-v2"])
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    sized, note = size_replay_buffers(mt50, 89, 4, 500)
    per_transition = MultiTaskReplayBuffer.bytes_needed(1, 1, 89, 4)
    expected = min(1_000_000, int(0.4 * memory // (50 * per_transition)))
    assert sized.replay_buffer_size == expected
    assert (note is not None) == (expected < 1_000_000 < max_env_steps(mt50, 500))
    if note is not None:
        assert "lowered" in note and "--replay_buffer_size" in note
    brief = replace(mt50, n_epochs=1, steps_per_epoch=1, min_buffer_size=100)
    assert max_env_steps(brief, 500) < 273_000  # too short to fill a lowered capacity: no note
    assert size_replay_buffers(brief, 89, 4, 500) == (replace(brief, replay_buffer_size=expected),
                                                      None)
    shared, note = size_replay_buffers(resolve_config(["mtsac", "--env=MetaWorldMT50-v2"]),
                                       89, 4, 500)
    assert shared.replay_buffer_size == 1_000_000 and note is None  # one buffer for all tasks
    short = resolve_config(["dnc_sac", "--env=PointReachMT4-v0", "--n_epochs", "2"])
    assert size_replay_buffers(short, 2, 2, 50)[0].replay_buffer_size == 1_000_000
    explicit = resolve_config(["dnc_sac", "--env=PointReachMT4-v0",
                               "--replay_buffer_size", "1234"])
    assert size_replay_buffers(explicit, 2, 2, 50) == (explicit, None)


def test_sparse_tasks_reach_the_env() -> None:
    config = resolve_config(["dnc_sac", "--env=MazeLarge-10-v0", "--sparse_tasks", "2", "5"])
    family = environments.make_multitask_env(config.env, seed=0, **env_options(config))
    envs = family.make_task_envs(evaluation=False)
    assert [k for k, env in enumerate(envs) if env.unwrapped.sparse] == [2, 5]


@pytest.mark.parametrize(("argv", "message"), [
    (["dnc_sac", "--env=PointReachMT4-v0", "--sparse_tasks", "1"], "not an option"),
    (["dnc_sac", "--env=KitchenMTEasy-v0", "--sparse_tasks", "10"], "task ids are 0..9"),
])
def test_bad_env_options(argv: list[str], message: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_buffers_that_cannot_fit_are_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An explicit capacity is kept, or refused when it cannot fit (the default never is)."""
    log_dir = tmp_path / "mt50"
    assert run.main(["qmp_dnc", "--env=MetaWorldMT50-v2", "--replay_buffer_size", "1000000",
                     "--log_dir", str(log_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GiB" in err and "--replay_buffer_size" in err
    assert not log_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", BENCHMARKS)
def test_qmp_dnc_tiny_epoch(env_id: str, tmp_path: Path) -> None:
    n = len(environments.env_class(env_id).task_names)
    log_dir = tmp_path / "run"
    argv = ["qmp_dnc", f"--env={env_id}", "--n_epochs", "1", "--batch_size", str(2 * n),
            "--min_buffer_size", "4", "--gradient_steps_per_itr", str(n),
            "--buffer_batch_size", "4", "--hidden_sizes", "8", "8", "--steps_per_epoch", "1",
            "--num_evaluation_episodes", str(n), "--replay_buffer_size", "100",
            "--log_dir", str(log_dir)]
    assert run.main(argv) == 0
    with open(log_dir / "progress.csv") as f:
        row = next(csv.DictReader(f))
    # the warm-up round: whole episodes from task 0 on until they hold 4 steps per task
    steps = [float(row[f"Train/LocalPolicy{i}/EnvSteps"]) for i in range(n)]
    assert float(row["TotalEnvSteps"]) == sum(steps)
    horizon = environments.env_class(env_id).horizon
    assert 4 * n <= sum(steps) < 4 * n + horizon
    assert float(row["Evaluation/NumEpisodes"]) == n
    # smoke checks only (a mean of booleans, a loss): the rules are tested in tests/envs
    assert 0.0 <= float(row["Evaluation/SuccessRate"]) <= 1.0
    assert math.isfinite(float(row["Train/Qf1Loss"]))
    for name in environments.env_class(env_id).episode_info_metrics.values():
        assert f"Evaluation/{name[0]}" in row
