"""bench/epoch_profile.py: every part timed (none negative, the timed ones non-zero) and the epoch
within the profiling process's own wall time, on a fresh run and from a run's checkpoint. (The
parts sum to the epoch by construction: the rest is what the timed parts leave.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import run

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--batch_size", "80", "--min_buffer_size", "40", "--gradient_steps_per_itr", "8",
        "--buffer_batch_size", "16", "--hidden_sizes", "16", "16", "--steps_per_epoch", "1",
        "--num_evaluation_episodes", "4"]


def _profile(args: list[str], out: Path) -> tuple[dict[str, float], float]:
    """The profile's rows and the seconds its whole process took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "bench/epoch_profile.py", *args, "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    process = time.perf_counter() - start
    rows = {}
    for line in out.with_suffix(".csv").read_text().splitlines()[1:]:
        part, seconds, _share = line.rsplit(",", 2)
        rows[part] = float(seconds)
    return rows, process


def _check(profile: tuple[dict[str, float], float], epochs: int = 2) -> None:
    rows, process = profile
    parts = {k: v for k, v in rows.items() if not k.startswith(("epoch", "half"))}
    assert len(parts) == 10 and min(parts.values()) >= 0.0  # nested timers double-count nothing
    assert 0 < rows["epoch on 1 core"] * epochs < process
    assert parts["train: gradient updates"] > 0 and parts["evaluate: network inference"] > 0
    assert parts["collect: env Python"] > 0


@pytest.mark.slow
def test_profile_of_a_fresh_run_times_every_part(tmp_path: Path) -> None:
    _check(_profile(["--method", "qmp_dnc", "--env", "PointReachMT4-v0", "--epochs", "2"],
                    tmp_path / "fresh"))


@pytest.mark.slow
def test_profile_from_a_checkpoint_times_every_part(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    assert run.main(["dnc_sac", "--env=PointReachMT4-v0", *TINY, "--n_epochs", "3",
                     "--eval_in_background", "False", "--log_dir", str(log_dir)]) == 0
    _check(_profile(["--run", str(log_dir), "--epochs", "2"], tmp_path / "late"))
    tenths = (tmp_path / "late_run.csv").read_text().splitlines()
    assert tenths[-1].startswith("whole run (3 epochs), hours,")
