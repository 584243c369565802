"""Checkpoints and exact resume: a run stopped (or killed with SIGKILL at a random moment) and
resumed writes exactly the progress.csv of the same run never interrupted (time columns aside)."""

from __future__ import annotations

import copy
import csv
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import run
from experiment_utils import resolve_config
from garage_experiments import build_trainer
from learning.runs.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    checkpoint_paths,
    load_checkpoint,
)

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--batch_size", "120", "--min_buffer_size", "60", "--gradient_steps_per_itr", "40",
         "--buffer_batch_size", "16", "--hidden_sizes", "32", "32",
         "--num_evaluation_episodes", "8", "--steps_per_epoch", "2", "--seed", "5",
         "--snapshot_interval", "0"]  # a checkpoint after every epoch, however short


def _rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "progress.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("Time", "ItrTime")}
                for r in csv.DictReader(f)]


#: (method, flags): every learner (separate, multihead, UDS), the Q-switch holding a selection
#: across rounds (k = 7 does not divide a round's 30 steps per task, and episodes last 50 steps),
#: lockstep copies ending a round on a partial step, and the DnC KL term
RESUME_CASES = [
    ("qmp_dnc", ["--envs_per_task", "1"]),
    ("qmp_dnc", ["--envs_per_task", "4"]),
    ("qmp_dnc", ["--policy_sampling_freq", "7"]),
    ("qmp_sac", ["--policy_sampling_freq", "3", "--envs_per_task", "4"]),
    ("mtsac", []),
    ("uds_dnc", ["--sharing_quantile", "0.5"]),
    ("qmp_uds_dnc", ["--sharing_quantile", "0.5", "--policy_sampling_freq", "7"]),
    ("dnc_sac", ["--kl_coeff", "0.1"]),
    # the autograd path: distillation (its central policy and Adam persist), the
    # representation penalty; PCGrad's random order and gradient clipping
    ("qmp_dnc", ["--distillation_period", "1", "--distillation_n_epochs", "5",
                 "--kl_coeff", "0.1", "--regularize_representation"]),
    ("mtsac", ["--use_pc_grad", "--grad_clip", "1.0"]),
    ("decaf", []),  # the mixture weights and the whole target module persist
    ("qmp_mcal", []),  # MCAL's actor batches draw from the buffers' generator
]

#: what legitimately differs between an interrupted run's last checkpoint and the whole run's
RUN_SPECIFIC = {("config", "log_dir"), ("trainer", "time")}


def _final_state(log_dir: Path) -> dict:
    state = load_checkpoint(checkpoint_paths(str(log_dir))[-1])
    for section, key in RUN_SPECIFIC:
        del state[section][key]
    return state


@pytest.mark.parametrize(("method", "extra"), RESUME_CASES,
                         ids=[f"{m}{''.join(e)}" for m, e in RESUME_CASES])
def test_stop_and_resume_in_process_is_exact(method: str, extra: list[str],
                                             tmp_path: Path) -> None:
    """Stopped after epoch 2 and resumed to 5: the same progress.csv and the same final state
    (networks, optimizer moments, temperatures, buffers, envs, Q-switch selection, RNGs) as the
    run never stopped."""
    flags = [*FLAGS, "--eval_in_background", "False", *extra]
    assert run.main([method, *flags, "--n_epochs", "5", "--log_dir",
                     str(tmp_path / "whole")]) == 0
    assert run.main([method, *flags, "--n_epochs", "2", "--log_dir",
                     str(tmp_path / "parts")]) == 0
    assert run.main(["resume", "--snapshot_dir", str(tmp_path / "parts"),
                     "--n_epochs", "5"]) == 0
    assert _rows(tmp_path / "parts") == _rows(tmp_path / "whole")
    assert len(checkpoint_paths(str(tmp_path / "parts"))) == 1  # only the last is kept
    whole, parts = _final_state(tmp_path / "whole"), _final_state(tmp_path / "parts")
    assert parts["learner"]["gradient_steps"] > 0
    _assert_same(parts, whole)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["qmp_dnc", "mtsac", "qmp_uds_dnc"])
def test_sigkill_at_a_random_moment_then_resume_is_exact(method: str, tmp_path: Path) -> None:
    """A real process killed with SIGKILL mid-run (evaluation in a background worker)."""
    cmd = [sys.executable, "run.py", method, *FLAGS, "--n_epochs", "7"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*cmd, "--log_dir", str(whole)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    rng = random.Random(os.getpid())
    target = rng.randint(0, 3)  # kill after a random epoch's checkpoint, at a random instant
    delay = rng.uniform(0.0, 0.5)

    def checkpointed_epoch() -> int:
        paths = checkpoint_paths(str(killed))
        return int(paths[-1][-8:-3]) if paths else -1

    for _ in range(3):  # a run that finished first is started again and killed sooner
        shutil.rmtree(killed, ignore_errors=True)
        proc = subprocess.Popen([*cmd, "--log_dir", str(killed)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while checkpointed_epoch() < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is None:
            break
        delay, target = 0.0, 0
    else:
        pytest.fail("the run finished three times before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stopped_at = len(_rows(killed))
    resumed = subprocess.run([sys.executable, "run.py", "resume", "--snapshot_dir",
                              str(killed)], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    print(f"killed after {stopped_at} rows; resumed to {len(_rows(killed))} rows")
    assert _rows(killed) == _rows(whole)


def test_truncated_checkpoint_is_detected(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = tmp_path / "r"
    assert run.main(["dnc_sac", *FLAGS, "--n_epochs", "1", "--eval_in_background", "False",
                     "--log_dir", str(log_dir)]) == 0
    path = checkpoint_paths(str(log_dir))[-1]
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert run.main(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt or truncated" in err


def test_a_checkpoint_of_another_format_or_incomplete_is_refused(tmp_path: Path) -> None:
    from learning.runs.checkpoint import FORMAT, save_checkpoint

    path = save_checkpoint(str(tmp_path), 3, {"config": {}}, keep=1)
    with pytest.raises(CheckpointError, match="lacks"):
        load_checkpoint(path)
    torch.save({"format": FORMAT + 1, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="is not a checkpoint of this version"):
        load_checkpoint(path)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="is not a checkpoint of this version"):
        load_checkpoint(path)


@pytest.mark.parametrize(("argv", "message"), [
    (["--snapshot_dir", "/nonexistent/run"], "not a folder"),
    (["--snapshot_dir", "{tmp}", "--lr", "0.1"], "cannot change"),
    (["--n_epochs", "3"], "--snapshot_dir"),
])
def test_bad_resume_requests(argv: list[str], message: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert run.main(["resume", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_resume_refuses_a_changed_config_and_a_finished_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = tmp_path / "r"
    assert run.main(["dnc_sac", *FLAGS, "--n_epochs", "1", "--eval_in_background", "False",
                     "--log_dir", str(log_dir)]) == 0
    assert run.main(["resume", "--snapshot_dir", str(log_dir)]) == 0
    assert "already finished" in capsys.readouterr().out
    config = (log_dir / "config.yaml").read_text().replace("lr: 0.001", "lr: 0.002")
    (log_dir / "config.yaml").write_text(config)
    assert run.main(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "2"]) == 2
    assert "does not match its checkpoint" in capsys.readouterr().err


def test_resume_can_change_the_threads(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--torch_threads on resume (a run moved to another machine): saved in config.yaml and the
    checkpoint, and a config.yaml changed so before the next checkpoint still resumes."""
    log_dir = tmp_path / "r"
    assert run.main(["dnc_sac", *FLAGS, "--n_epochs", "1", "--eval_in_background", "False",
                     "--log_dir", str(log_dir)]) == 0
    try:
        assert run.main(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "2",
                         "--torch_threads", "2"]) == 0
        assert torch.get_num_threads() == 2
        assert yaml.safe_load((log_dir / "config.yaml").read_text())["torch_threads"] == 2
        assert load_checkpoint(checkpoint_paths(str(log_dir))[-1])["config"][
            "torch_threads"] == 2
        config = yaml.safe_load((log_dir / "config.yaml").read_text())
        (log_dir / "config.yaml").write_text(yaml.safe_dump({**config, "torch_threads": 1}))
        assert run.main(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "3"]) == 0
    finally:
        torch.set_num_threads(1)
    assert [float(r["Epoch"]) for r in _rows(log_dir)] == [0, 1, 2]
    capsys.readouterr()
    assert run.main(["resume", "--snapshot_dir", str(log_dir), "--torch_threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--torch_threads must be positive" in err


def test_checkpoint_holds_the_buffers_compactly(tmp_path: Path) -> None:
    log_dir = tmp_path / "r"
    assert run.main(["dnc_sac", *FLAGS, "--n_epochs", "1", "--eval_in_background", "False",
                     "--log_dir", str(log_dir)]) == 0
    state = load_checkpoint(checkpoint_paths(str(log_dir))[-1])
    obs = state["buffer"]["arrays"]["obs"]  # one tensor per task's buffer: its filled part
    assert [len(x) for x in obs] == state["buffer"]["sizes"].tolist()
    assert min(state["buffer"]["sizes"]) > 0
    assert isinstance(state["rng"]["torch"], torch.Tensor)


def test_divergence_stops_with_the_loss_named(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = tmp_path / "r"
    code = run.main(["dnc_sac", *FLAGS, "--n_epochs", "3", "--eval_in_background", "False",
                     "--reward_scale", "1e38", "--log_dir", str(log_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "Loss of task" in err and "is not finite in epoch 0" in err, err
    assert not checkpoint_paths(str(log_dir))  # the diverged epoch is not checkpointed


def _assert_same(a: object, b: object, where: str = "state") -> None:
    """Recursive equality of checkpoint states (tensors, arrays, containers, plain values)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, bytes) and a[:1] == b"\x80":  # a pickled env: compare what it holds
        _assert_same(pickle.loads(a), pickle.loads(b), f"{where}(unpickled)")
    elif isinstance(a, np.random.Generator):
        _assert_same(a.bit_generator.state, b.bit_generator.state, f"{where}.state")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        _assert_same(vars(a), vars(b), f"{where}.__dict__")
    else:
        assert a == b or (a != a and b != b), where  # NaN == NaN here


def test_checkpoint_state_shares_nothing_with_the_live_run(tmp_path: Path) -> None:
    """Checkpoints are written on a thread while training goes on, so the state handed over
    must not change when the run continues."""
    config = resolve_config(["qmp_dnc", *FLAGS, "--n_epochs", "1", "--eval_in_background",
                             "False", "--log_dir", str(tmp_path / "r")])
    os.makedirs(tmp_path / "r")
    trainer = build_trainer(config, str(tmp_path / "r"), stdout=False)
    try:
        trainer.collector.collect(trainer.learner.steps_to_collect(config.batch_size))
        state = trainer.state_dict(0, None, 0.0)
        frozen = copy.deepcopy(state)
        for _ in range(2):  # more collection and updates, as the next epoch would run
            steps = trainer.learner.steps_to_collect(config.batch_size)
            trainer.learner.train_round(trainer.collector.collect(steps))
        assert trainer.learner.gradient_steps > 0
        _assert_same(state, frozen)
    finally:
        trainer.close()


def test_a_failed_checkpoint_write_surfaces_in_the_training_thread(tmp_path: Path) -> None:
    writer = CheckpointWriter(str(tmp_path / "missing" / "folder"), keep=1)
    writer.submit(0, {"x": torch.zeros(3)})
    with pytest.raises(FileNotFoundError):
        writer.wait()
    writer.close()  # the error was reported once; nothing left in flight


@pytest.mark.parametrize("interval,expected", [("0", [0, 1, 2, 3]), ("60", [0, 3])])
def test_snapshot_interval_limits_how_often_checkpoints_are_written(
        interval: str, expected: list[int], tmp_path: Path) -> None:
    log_dir = tmp_path / "r"
    assert run.main(["dnc_sac", *FLAGS, "--n_epochs", "4", "--eval_in_background", "False",
                     "--keep_checkpoints", "10", "--snapshot_interval", interval,
                     "--log_dir", str(log_dir)]) == 0
    epochs = [load_checkpoint(p)["epoch"] for p in checkpoint_paths(str(log_dir))]
    assert epochs == expected  # the first and the last epoch are always saved


def test_a_run_from_before_newer_flags_still_resumes(tmp_path: Path) -> None:
    """Run folders written before a flag existed lack its key; it takes the value that matches
    what those versions did, and resume proceeds."""
    log_dir = tmp_path / "r"
    flags = [f for f in FLAGS if f not in ("--snapshot_interval", "0")]
    assert run.main(["dnc_sac", *flags, "--n_epochs", "2", "--eval_in_background", "False",
                     "--snapshot_interval", "0", "--log_dir", str(log_dir)]) == 0
    old_keys = ("envs_per_task", "snapshot_interval")
    with open(log_dir / "config.yaml") as f:
        config = yaml.safe_load(f)
    with open(log_dir / "config.yaml", "w") as f:
        yaml.safe_dump({k: v for k, v in config.items() if k not in old_keys}, f)
    path = checkpoint_paths(str(log_dir))[-1]
    state = torch.load(path, weights_only=False)
    state["config"] = {k: v for k, v in state["config"].items() if k not in old_keys}
    torch.save(state, path)
    assert run.main(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "3"]) == 0
    assert [float(r["Epoch"]) for r in _rows(log_dir)] == [0, 1, 2]
