"""Stopping a run with SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) on real processes:
the run writes a checkpoint of its last finished epoch, says where, and `resume` continues it
exactly; a run stopped before its first epoch finished starts over; the evaluation worker prints
nothing; resume says what it does."""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learning.runs.checkpoint import checkpoint_paths, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
#: PointReach epochs of about a tenth of a second; checkpoints at most once a minute (the
#: default), so only epoch 0's and the stop's are written
FLAGS = ["qmp_dnc", "--env=PointReachMT4-v0", "--batch_size", "200", "--min_buffer_size", "50",
         "--gradient_steps_per_itr", "40", "--buffer_batch_size", "16", "--hidden_sizes", "32",
         "32", "--num_evaluation_episodes", "8", "--steps_per_epoch", "2", "--seed", "3"]
#: the same run with 25 times the updates: epoch 0 trains for seconds, so a stop sent as the run
#: starts always lands before it finishes
LONG_FLAGS = ["1000" if before == "--gradient_steps_per_itr" else flag
              for before, flag in zip(["", *FLAGS[:-1]], FLAGS, strict=True)]


def _rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "progress.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("Time", "ItrTime")}
                for r in csv.DictReader(f)]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, **kwargs)  # type: ignore[call-overload]


def _start(log_dir: Path, epochs: int, flags: list[str] = FLAGS) -> subprocess.Popen[str]:
    """A run in its own process group, as a terminal's job (Ctrl-C reaches the whole group)."""
    return subprocess.Popen([sys.executable, "run.py", *flags, "--n_epochs", str(epochs),
                             "--log_dir", str(log_dir)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _progress_rows(log_dir: Path) -> int:
    try:
        return len(_rows(log_dir))
    except (FileNotFoundError, StopIteration):
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_checkpoints_the_last_finished_epoch(sig: signal.Signals,
                                                           tmp_path: Path) -> None:
    """Stopped after a random epoch, at a random instant: the checkpoint is of an epoch whose row
    was already written or later; a run that finished first is started again and stopped
    sooner, one that ended any other way fails the test."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert _run([*FLAGS, "--n_epochs", "14", "--log_dir", str(whole)]).returncode == 0
    rng = random.Random(os.getpid() + int(sig))
    target = rng.randint(2, 6)
    delay = rng.uniform(0.0, 0.2)  # anywhere in the next epoch
    for _ in range(3):
        shutil.rmtree(stopped, ignore_errors=True)
        proc = _start(stopped, 14)
        deadline = time.time() + 120
        while _progress_rows(stopped) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            break
        _, err = proc.communicate()
        assert proc.returncode == 0 and _progress_rows(stopped) == 14, err  # not a crash
        target, delay = 2, 0.0
    else:
        pytest.fail("the run finished three times before it could be stopped")
    seen = _progress_rows(stopped)  # epochs 0 .. seen - 1 have their rows: they had finished
    assert seen >= target, "the run did not reach its target epoch in 120 s"
    os.killpg(proc.pid, sig)  # the whole group, as a terminal or a scheduler does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err, err  # neither the run nor its evaluation worker
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"stopped by {sig.name}: the checkpoint of epoch ")
    epoch = int(message.split("the checkpoint of epoch ")[1].split()[0])
    assert [load_checkpoint(p)["epoch"] for p in checkpoint_paths(str(stopped))] == [epoch]
    assert str(stopped / f"checkpoint_epoch{epoch:05d}.pt") in message
    assert epoch >= seen - 1  # the last finished epoch, not the first checkpoint
    resumed = _run(["resume", "--snapshot_dir", str(stopped)])
    assert resumed.returncode == 0, resumed.stderr
    assert f"from its checkpoint of epoch {epoch}:" in resumed.stdout
    assert "resolved config" not in resumed.stdout  # resume says what it does instead
    assert _rows(stopped) == _rows(whole)  # exact, time columns aside


@pytest.mark.slow
def test_a_run_stopped_before_its_first_epoch_starts_over(tmp_path: Path) -> None:
    """SIGINT as soon as the run folder is written, seconds before epoch 0 can finish: the stop
    is honoured within the epoch (between env steps and updates), so nothing is checkpointed."""
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert _run([*LONG_FLAGS, "--n_epochs", "1", "--log_dir", str(whole)]).returncode == 0
    proc = _start(stopped, 1, LONG_FLAGS)
    deadline = time.time() + 60
    while not (stopped / "config.yaml").exists() and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not checkpoint_paths(str(stopped)), err  # not a stop honoured at the epoch's end
    assert "before epoch 0 finished: nothing was checkpointed" in err.strip().splitlines()[-1]
    resumed = _run(["resume", "--snapshot_dir", str(stopped)])
    assert resumed.returncode == 0, resumed.stderr
    assert "starting it over from its config.yaml" in resumed.stdout
    assert [p.name for p in stopped.iterdir() if p.name.startswith("restarted_")]
    assert _rows(stopped) == _rows(whole)


def test_resume_says_what_it_does(tmp_path: Path) -> None:
    log_dir = tmp_path / "r"
    # with the evaluation in the background the last checkpoint still awaits its row
    assert _run([*FLAGS, "--n_epochs", "3", "--log_dir", str(log_dir)]).returncode == 0
    done = _run(["resume", "--snapshot_dir", str(log_dir)])
    assert done.returncode == 0 and "nothing to do" in done.stdout, done.stdout
    assert _progress_rows(log_dir) == 3
    shorter = _run(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "2"])
    assert shorter.returncode == 2 and "already has 3 epochs" in shorter.stderr
    longer = _run(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "5"])
    assert longer.returncode == 0, longer.stderr
    assert "training epochs 3-4 of 5, extended from 3" in longer.stdout
    assert _progress_rows(log_dir) == 5


def test_shortening_needs_to_be_asked_for(tmp_path: Path) -> None:
    log_dir = tmp_path / "r"
    proc = _start(log_dir, 400)
    deadline = time.time() + 120
    while _progress_rows(log_dir) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=120)
    epoch = load_checkpoint(checkpoint_paths(str(log_dir))[-1])["epoch"]
    refused = _run(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", str(epoch + 2)])
    assert refused.returncode == 2 and "--shorten" in refused.stderr, refused.stderr
    assert "n_epochs: 400" in (log_dir / "config.yaml").read_text()
    asked = _run(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", str(epoch + 2),
                  "--shorten"])
    assert asked.returncode == 0, asked.stderr
    assert "shortened from 400" in asked.stdout
    assert _progress_rows(log_dir) == epoch + 2
