"""sweep.py on real processes: a tiny grid runs and a second call skips it; a run whose process
is SIGKILLed mid-way is carried on (by a retry, or by the next call) to exactly the progress.csv of
an uninterrupted run (time columns aside); Ctrl-C stops the runs at a checkpoint; folders started
with other settings are refused untouched; the same grid on a real local Ray instance, with a
killed worker retried. The Ray tests need Ray (requirements-ray.txt): without it they skip unless
QMP_REQUIRE_RAY is set (CI sets it), where they fail."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweep
from learning.runs.checkpoint import checkpoint_paths

ROOT = Path(__file__).resolve().parent.parent
ENV = "PointReachMT4-v0"
#: PointReach epochs of a fraction of a second, a checkpoint after each
FLAGS = ["--batch_size", "200", "--min_buffer_size", "50", "--gradient_steps_per_itr", "40",
         "--buffer_batch_size", "16", "--hidden_sizes", "32", "32",
         "--num_evaluation_episodes", "8", "--steps_per_epoch", "2", "--snapshot_interval", "0"]


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "progress.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("Time", "ItrTime")}
                for r in csv.DictReader(f)]


def _sweep_cmd(out: Path, methods: list[str], epochs: int, *extra: str) -> list[str]:
    return [sys.executable, "sweep.py", "--env", ENV, "--method", *methods, "--seed", "0",
            "--out", str(out), *extra, "--", *FLAGS, "--n_epochs", str(epochs)]


def _sweep(out: Path, methods: list[str], epochs: int, *extra: str
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_sweep_cmd(out, methods, epochs, *extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def _reference(tmp_path: Path, method: str, epochs: int, threads: int = sweep.DEFAULT_THREADS
               ) -> list[dict[str, str]]:
    """The same run, uninterrupted, straight through run.py."""
    folder = tmp_path / f"reference_{method}_{epochs}_{threads}"
    subprocess.run([sys.executable, "run.py", method, f"--env={ENV}", "--seed", "0",
                    "--torch_threads", str(threads), *FLAGS, "--n_epochs",
                    str(epochs), "--log_dir", str(folder)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    return _rows(folder)


def _run_pids(folder: Path) -> list[int]:
    """Pids of run.py processes training in `folder`."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            continue
        if any(a.endswith("run.py") for a in args) and str(folder) in args:
            pids.append(int(pid))
    return pids


def _require_ray() -> None:
    """Ray, the optional extra: missing, these tests fail where QMP_REQUIRE_RAY is set (CI) and
    skip, saying how to install it, elsewhere (a user who installed requirements.txt only)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("QMP_REQUIRE_RAY"):
            raise
        pytest.skip("Ray is not installed: pip install -r requirements-ray.txt")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _wait_for_checkpoint(folder: Path, epoch: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        paths = checkpoint_paths(str(folder))
        if paths and int(paths[-1][-8:-3]) >= epoch and _run_pids(folder):
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of epoch {epoch} in {folder} while the sweep ran")


def test_a_grid_runs_then_a_second_call_skips_it(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    first = _sweep(out, ["dnc_sac", "qmp_dnc"], 3, "--jobs", "2")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "2 runs: 2 finished" in first.stdout
    folders = [out / ENV / m / "s0" for m in ("dnc_sac", "qmp_dnc")]
    assert [len(_rows(f)) for f in folders] == [3, 3]
    assert _rows(folders[1]) == _reference(tmp_path, "qmp_dnc", 3)
    before = {f: (f / "progress.csv").stat().st_mtime_ns for f in folders}
    logs = {f: Path(str(f) + ".log").read_text() for f in folders}
    results = tmp_path / "results"
    second = _sweep(out, ["dnc_sac", "qmp_dnc"], 3, "--jobs", "2", "--results", str(results))
    assert second.returncode == 0, second.stderr
    assert "0 to run" in second.stdout and "2 runs: 2 finished" in second.stdout
    assert {f: (f / "progress.csv").stat().st_mtime_ns for f in folders} == before
    assert {f: Path(str(f) + ".log").read_text() for f in folders} == logs  # nothing started
    for f in folders:  # the small files, ready to commit
        copy = results / ENV / f.parent.name / "s0"
        assert sorted(p.name for p in copy.iterdir()) == ["config.yaml", "progress.csv"]
        assert (copy / "progress.csv").read_bytes() == (f / "progress.csv").read_bytes()


def test_a_differing_copy_in_results_is_not_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "grid" / ENV / "dnc_sac" / "s0"
    folder.mkdir(parents=True)
    for name in sweep.RESULT_FILES:
        (folder / name).write_text(f"the run's {name}\n")
    run = sweep.Run(ENV, "dnc_sac", 0, str(folder), [], 2, 1)
    results = tmp_path / "results"
    assert "copied" in sweep.export_run(run, str(results))
    assert "copied" in sweep.export_run(run, str(results))  # the same files again: fine
    (results / ENV / "dnc_sac" / "s0" / "progress.csv").write_text("an earlier run's\n")
    said = sweep.export_run(run, str(results))
    assert said.startswith("warning:") and "progress.csv" in said
    assert (results / ENV / "dnc_sac" / "s0" / "progress.csv").read_text() == "an earlier run's\n"


def test_a_longer_request_extends_the_runs(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert _sweep(out, ["dnc_sac"], 2).returncode == 0
    longer = _sweep(out, ["dnc_sac"], 4)
    assert longer.returncode == 0, longer.stderr
    assert _rows(out / ENV / "dnc_sac" / "s0") == _reference(tmp_path, "dnc_sac", 4)


def test_a_resumed_run_takes_the_sweeps_threads(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert _sweep(out, ["dnc_sac"], 1).returncode == 0  # started at the default threads
    args = sweep.parse_args(["--env", ENV, "--method", "dnc_sac", "--seed", "0", "--out",
                             str(out), "--threads", "1", "--", *FLAGS, "--n_epochs", "2"])
    [planned] = sweep.plan(args)
    assert sweep.launch_command(planned)[2:] == [
        "resume", "--snapshot_dir", planned.folder, "--n_epochs", "2", "--torch_threads", "1"]
    assert _sweep(out, ["dnc_sac"], 2, "--threads", "1").returncode == 0
    config = (out / ENV / "dnc_sac" / "s0" / "config.yaml").read_text()
    assert "torch_threads: 1\n" in config and len(_rows(out / ENV / "dnc_sac" / "s0")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("retries", ["0", "1"])
def test_a_sigkilled_run_carries_on_exactly(retries: str, tmp_path: Path) -> None:
    """retries 1: the sweep itself tries again; retries 0: the run fails and the next call
    carries it on."""
    out, epochs = tmp_path / "grid", 8
    folder = out / ENV / "qmp_dnc" / "s0"
    proc = subprocess.Popen(_sweep_cmd(out, ["qmp_dnc"], epochs, "--retries", retries),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(folder, 2, proc)
    for pid in _run_pids(folder):
        os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    killed_rows = len(_rows(folder))
    if retries == "0":
        assert proc.returncode == 1, stderr
        assert "failed (exit -9)" in stdout
        assert killed_rows < epochs
        again = _sweep(out, ["qmp_dnc"], epochs, "--retries", retries)
        assert again.returncode == 0, again.stderr
    else:
        assert proc.returncode == 0, stderr
        assert "(try 2)" in stdout
    assert _rows(folder) == _reference(tmp_path, "qmp_dnc", epochs)


@pytest.mark.slow
def test_ctrl_c_stops_the_runs_at_a_checkpoint_and_a_second_call_finishes(tmp_path: Path
                                                                          ) -> None:
    out, epochs = tmp_path / "grid", 40
    folder = out / ENV / "dnc_sac" / "s0"
    proc = subprocess.Popen(_sweep_cmd(out, ["dnc_sac", "qmp_dnc"], epochs, "--jobs", "1"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _wait_for_checkpoint(folder, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "stopped" in stdout and "not started" in stdout
    assert "the same command carries the sweep on" in stdout
    assert not _run_pids(folder)
    assert checkpoint_paths(str(folder))
    assert not (out / ENV / "qmp_dnc" / "s0").exists()
    again = _sweep(out, ["dnc_sac"], epochs, "--jobs", "1")
    assert again.returncode == 0, again.stderr
    assert len(_rows(folder)) == epochs


def test_a_folder_of_other_settings_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert _sweep(out, ["dnc_sac"], 2).returncode == 0
    folder = out / ENV / "dnc_sac" / "s0"
    files = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    other = subprocess.run([*_sweep_cmd(out, ["dnc_sac"], 2), "--discount", "0.9"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1
    assert "was started with other settings: discount" in other.stderr
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files


def test_a_folder_killed_before_its_config_is_moved_aside(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    folder = out / ENV / "dnc_sac" / "s0"
    folder.mkdir(parents=True)
    (folder / "debug.log").write_text("a start killed before config.yaml was written\n")
    result = _sweep(out, ["dnc_sac"], 2)
    assert result.returncode == 0, result.stderr
    aside = list(folder.parent.glob("s0.partial_*"))
    assert len(aside) == 1 and (aside[0] / "debug.log").read_text().startswith("a start")
    assert len(_rows(folder)) == 2


@pytest.mark.parametrize("argv, message", [
    (["--env", ENV, "--method", "dnc_sac", "--seed", "0", "--jobs", "0"],
     "--jobs must be positive"),
    (["--env", ENV, "--method", "nope", "--seed", "0"], "nope"),
    (["--env", ENV, "--method", "dnc_sac", "--seed", "0", "--", "--torch_threads", "2"],
     "sweep.py --threads"),
    (["--env", ENV, "--method", "dnc_sac", "--seed", "0", "--", "--seed", "3"],
     "set by the sweep"),
    (["--env", ENV, "--method", "dnc_sac"], "--seed"),
])
def test_bad_input_is_one_line_and_starts_nothing(argv: list[str], message: str,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture
                                                  ) -> None:
    assert sweep.main([*argv, "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sweep.py: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "g").exists()


def test_an_unwritable_grid_folder_is_one_line(capsys: pytest.CaptureFixture) -> None:
    argv = ["--env", ENV, "--method", "dnc_sac", "--seed", "0", "--out", "/proc/grid"]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err
    assert err == "sweep.py: error: --out /proc/grid: cannot write there (No such file or " \
        "directory)\n"


def test_ray_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    argv = ["--env", ENV, "--method", "dnc_sac", "--seed", "0", "--ray", "--out",
            str(tmp_path / "g")]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err == ("sweep.py: error: --ray needs Ray: pip install -r "
                                       "requirements-ray.txt\n")


def test_a_grid_on_a_local_ray_instance_retries_a_killed_worker(tmp_path: Path) -> None:
    """Without Ray this skips unless QMP_REQUIRE_RAY is set (CI sets it), where it fails."""
    _require_ray()

    out, epochs = tmp_path / "grid", 8
    folder = out / ENV / "qmp_dnc" / "s0"
    proc = subprocess.Popen(_sweep_cmd(out, ["dnc_sac", "qmp_dnc"], epochs, "--ray",
                                       "--threads", "1"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(folder, 2, proc)
    workers = {_parent(pid) for pid in _run_pids(folder)}
    assert workers and proc.pid not in workers  # the runs are children of Ray workers
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr + stdout
    assert "2 runs: 2 finished" in stdout
    log = Path(str(folder) + ".log").read_text()
    assert log.count("sweep.py: ") == 2 and "run.py resume" in log  # the retry resumed
    assert _rows(folder) == _reference(tmp_path, "qmp_dnc", epochs, threads=1)
    assert _rows(out / ENV / "dnc_sac" / "s0") == _reference(tmp_path, "dnc_sac", epochs,
                                                             threads=1)


@pytest.mark.slow
def test_ctrl_c_stops_a_ray_grid_at_checkpoints(tmp_path: Path) -> None:
    _require_ray()
    out = tmp_path / "grid"
    cmd = _sweep_cmd(out, ["dnc_sac", "qmp_dnc"], 400, "--ray", "--threads", "1")
    cmd[cmd.index("--seed") + 1:cmd.index("--seed") + 2] = ["0", "1"]  # 4 runs on 2 CPUs
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for method in ("dnc_sac", "qmp_dnc"):  # both running, past their first checkpoint
        _wait_for_checkpoint(out / ENV / method / "s0", 0, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "the same command carries the sweep on" in stdout
    for method in ("dnc_sac", "qmp_dnc"):
        folder = out / ENV / method / "s0"
        log = Path(str(folder) + ".log").read_text()
        assert "stopped by SIGINT: the checkpoint of epoch" in log
        assert not _run_pids(folder)
        assert not (out / ENV / method / "s1").exists()  # queued tasks did not start
    assert not list(out.rglob("*.stop"))
