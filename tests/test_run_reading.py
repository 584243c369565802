"""Reading a run: the progress line's ETA from recent epochs (no warm-up, no videos), the
rendering notice, labelled and ordered console blocks with a background evaluation, 0-based
5-digit file names, config.yaml's provenance, and a run that survives a closed stdout."""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from conftest import TINY_FLAGS

import run
from experiment_utils import (
    PROVENANCE_KEY,
    PROVENANCE_PACKAGES,
    append_provenance,
    git_state,
    load_run_config,
    save_run_config,
)
from learning.runs.checkpoint import save_checkpoint
from learning.runs.trainer import RECENT_EPOCHS, Schedule, Trainer, progress_line
from learning.runs.video import video_path

ROOT = Path(__file__).resolve().parent.parent
N = 4  # PointReachMT4-v0
MIN_BUFFER = 50


class _Log:
    """A stand-in RunLogger that keeps every call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def text(self, message: str) -> None:
        self.calls.append(("text", message))

    def notice(self, message: str) -> None:
        self.calls.append(("notice", message))

    def record_many(self, values: dict[str, float]) -> None:
        self.calls.append(("row", dict(values)))

    def dump(self, step: int) -> None:
        self.calls.append(("dump", step))

    def progress(self, line: str) -> None:
        self.calls.append(("progress", line))

    def lines(self, kind: str) -> list[str]:
        return [value for name, value in self.calls if name == kind]


def _trainer(n_epochs: int, *, vis_freq: int = -1, qmp: bool = False,
             videos: Any = None) -> Trainer:
    """A Trainer over stand-ins: enough for `_write_row` and `_render_videos`."""
    learner = SimpleNamespace(num_tasks=N, min_buffer_size=MIN_BUFFER, sampling="per_task",
                              buffer=SimpleNamespace(capacity=10_000))
    return Trainer(
        schedule=Schedule(n_epochs, 1, 200, 1),
        learner=learner,  # type: ignore[arg-type]
        collector=SimpleNamespace(),  # type: ignore[arg-type]
        evaluation=SimpleNamespace(background=False),  # type: ignore[arg-type]
        logger=_Log(),  # type: ignore[arg-type]
        log_mixture=qmp,
        videos=videos,
        vis_freq=vis_freq,
    )


def _row(epoch: int, time_s: float, size: int, stored: int) -> dict[str, float]:
    """A row of `epoch` whose tasks' buffers end at `size` after storing `stored` steps each."""
    row: dict[str, float] = {"Epoch": epoch, "Itr": epoch, "TotalEnvSteps": 200 * (epoch + 1),
                             "Time": time_s, "ItrTime": 1.0}
    for i in range(N):
        row[f"Train/LocalPolicy{i}/ReplayBufferSize"] = size
        row[f"Train/LocalPolicy{i}/EnvSteps"] = stored
    return row


def _eta_seconds(line: str) -> int:
    h, m, s = re.search(r"ETA (\d+):(\d\d):(\d\d)$", line).groups()  # type: ignore[union-attr]
    return int(h) * 3600 + int(m) * 60 + int(s)


# ---------------------------------------------------------------------------- ETA


def test_eta_uses_recent_epochs_without_warm_up_or_videos() -> None:
    """Epoch 0 fills the buffers (100 s), epoch 1 still warms up (a task below the minimum,
    40 s), epochs 2-10 are slow (10 s), later ones take 2 s; epoch 25 renders videos. After
    epoch 30 the line shows the mean of epochs 11-30 (2 s) and an ETA of 2 s per epoch left
    plus the renders still to come; the old Time / epochs estimate would say ~9.6 s."""
    rendered: list[int] = []

    def videos(epoch: int) -> list[str]:
        rendered.append(epoch)
        time.sleep(0.05)
        return [f"v{k}.mp4" for k in range(N)]

    n_epochs = 2000
    trainer = _trainer(n_epochs, vis_freq=100, videos=videos)
    log: _Log = trainer.logger  # type: ignore[assignment]
    t = 100.0
    trainer._write_row(_row(0, t, MIN_BUFFER, MIN_BUFFER), {})
    t += 40.0
    trainer._write_row(_row(1, t, MIN_BUFFER + 30, 40), {})  # began at 40 < 50: warm-up
    size = MIN_BUFFER + 30
    video = 0.0
    for epoch in range(2, 31):
        t += (10.0 if epoch <= 10 else 2.0) + video
        size += 200 // N
        trainer._write_row(_row(epoch, t, size, 200 // N), {})
        video = 0.0
        if epoch == 25:
            assert trainer.videos is not None
            trainer.videos(epoch)
            video = trainer._video_seconds[epoch]  # the measured rendering time
    line = log.lines("progress")[-1]
    assert rendered == [25]
    assert "epoch 30 of 0-1999" in line
    assert f"2.0 s/epoch (last {RECENT_EPOCHS})" in line
    assert list(trainer._epoch_seconds) == pytest.approx([2.0] * RECENT_EPOCHS)
    # renders after epoch 30 at 100, 200, ..., 1900 and the last epoch 1999: 20
    assert trainer._renders_after(30) == 20
    render = trainer._render_seconds[0]
    assert f"+ videos {render:.0f} s x 20" in line
    assert _eta_seconds(line) == round(2.0 * (n_epochs - 1 - 30) + 20 * render)
    # the first two lines had nothing to measure from: epoch 0 and the warm-up epoch 1
    assert [line.endswith("s/epoch not measured yet | ETA --")
            for line in log.lines("progress")[:3]] == [True, True, False]


def test_warm_up_epochs_are_recognised_from_the_row() -> None:
    trainer = _trainer(10)
    assert trainer._warm_up_epoch(_row(0, 1.0, MIN_BUFFER, MIN_BUFFER))  # began empty
    assert trainer._warm_up_epoch(_row(1, 1.0, 60, 20))  # began at 40
    assert not trainer._warm_up_epoch(_row(2, 1.0, 100, 50))  # began at 50
    assert not trainer._warm_up_epoch(_row(3, 1.0, 10_000, 10_000))  # full: it evicted
    trainer.learner.sampling = "mixed"  # one buffer: 4 x 20 = 80 at the start, >= 50
    assert not trainer._warm_up_epoch(_row(1, 1.0, 40, 20))


def test_progress_line_is_zero_based_and_says_what_the_eta_rests_on() -> None:
    row = _row(29, 300.0, 100, 50)
    line = progress_line(row, 30, 0.5, seconds_per_epoch=4.0, measured=12)
    assert "epoch 29 of 0-29" in line and "success 0.50" in line
    assert line.startswith("[" + "#" * 20 + "]")
    assert line.endswith("4.0 s/epoch (last 12) | ETA 0:00:00")
    line = progress_line(_row(9, 300.0, 100, 50), 30, math.nan, seconds_per_epoch=4.0,
                         measured=3, video_seconds=60.0, renders_left=2)
    assert line.endswith("4.0 s/epoch (last 3) + videos 60 s x 2 | ETA 0:03:20")


def test_a_notice_comes_before_rendering_videos() -> None:
    seen: list[list[tuple[str, Any]]] = []

    def videos(epoch: int) -> list[str]:
        seen.append(list(trainer.logger.calls))  # type: ignore[attr-defined]
        return [f"v{k}.mp4" for k in range(2 * N)]

    trainer = _trainer(10, vis_freq=1, qmp=True, videos=videos)
    assert trainer.videos is not None
    assert trainer.videos(3) == [f"v{k}.mp4" for k in range(2 * N)]
    assert seen == [[("notice", "epoch 3: rendering 8 videos ...")]]
    done = trainer.logger.lines("notice")[-1]  # type: ignore[attr-defined]
    assert re.fullmatch(r"epoch 3: 8 videos rendered in \d+\.\d s \(left out of s/epoch\)",
                        done)


def test_mixture_matrix_is_printed_with_its_row() -> None:
    """Task i's share acted by policy j is (4i + j + 1) / 100, so the printed line of task 0
    reads 0.01 ... 0.04 and a transposed print (rows: acting policy) reads 0.01 0.05 ..."""
    trainer = _trainer(10, qmp=True)
    row = _row(12, 5.0, 100, 50)
    for i in range(N):
        for j in range(N):
            row[f"Train/LocalPolicy{i}/Policy{j}Prob"] = (i * 4 + j + 1) / 100
    trainer._write_row(row, {})
    calls: list[tuple[str, Any]] = trainer.logger.calls  # type: ignore[attr-defined]
    assert [name for name, _ in calls] == ["text", "row", "dump", "progress"]
    title, *table = calls[0][1].splitlines()
    assert title == "Mixture matrix of epoch 12 (collection; row: task, column: acting policy):"
    assert table[0].split() == ["pi_0", "pi_1", "pi_2", "pi_3"]
    lines = [line.split() for line in table[2:]]
    assert [line[:2] for line in lines] == [["task", "0"], ["task", "1"], ["task", "2"],
                                            ["task", "3"]]
    assert [[float(x) for x in line[2:]] for line in lines] == [
        [0.01, 0.02, 0.03, 0.04], [0.05, 0.06, 0.07, 0.08],
        [0.09, 0.10, 0.11, 0.12], [0.13, 0.14, 0.15, 0.16]]


# ---------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def background_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny qmp_dnc run of 3 epochs evaluated in a background worker, and its stdout."""
    log_dir = tmp_path_factory.mktemp("run") / "r"
    flags = [*TINY_FLAGS, "--n_epochs", "3", "--eval_in_background", "True"]
    out = subprocess.run([sys.executable, "run.py", "qmp_dnc", "--env=PointReachMT4-v0", *flags,
                          "--log_dir", str(log_dir)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return log_dir, out.stdout


def test_blocks_are_labelled_and_in_epoch_order_with_background_evaluation(
        background_run: tuple[Path, str]) -> None:
    _, stdout = background_run
    events: list[tuple[str, int]] = []
    for line in stdout.splitlines():
        if m := re.fullmatch(r"Mixture matrix of epoch (\d+) \(collection; row: task, "
                             r"column: acting policy\):", line):
            events.append(("matrix", int(m.group(1))))
        elif m := re.fullmatch(r"Epoch\s+(\d+)", line):
            events.append(("table", int(m.group(1))))
        elif m := re.search(r"\] epoch (\d+) of 0-2 \|", line):
            events.append(("progress", int(m.group(1))))
    assert "Mixture matrix (" not in stdout  # no unlabelled block
    assert events == [(kind, epoch) for epoch in range(3)
                      for kind in ("matrix", "table", "progress")]


def test_files_are_named_by_the_zero_based_epoch_in_5_digits(
        background_run: tuple[Path, str], tmp_path: Path) -> None:
    log_dir, _ = background_run
    with open(log_dir / "progress.csv") as f:
        epochs = [int(float(r["Epoch"])) for r in csv.DictReader(f)]
    assert epochs == [0, 1, 2]
    assert sorted(p.name for p in log_dir.glob("checkpoint_epoch*.pt")) == [
        "checkpoint_epoch00002.pt"]
    assert video_path("out", 29, "own", 0) == os.path.join("out", "videos",
                                                           "epoch00029_own_task0.mp4")
    assert video_path("out", 7, "Evaluation/p", 3).endswith("epoch00007_evaluation_p_task3.mp4")
    path = save_checkpoint(str(tmp_path), 29, {})
    assert os.path.basename(path) == "checkpoint_epoch00029.pt"


# ---------------------------------------------------------------------------- provenance


def test_provenance_is_written_at_start_and_ignored_as_config(
        background_run: tuple[Path, str]) -> None:
    log_dir, _ = background_run
    with open(log_dir / "config.yaml") as f:
        data = yaml.safe_load(f)
    (entry,) = data[PROVENANCE_KEY]
    assert set(entry) == {"event", "time", "host", "command", "git_commit", "git_dirty",
                          "versions"}
    assert entry["event"] == "start"
    assert entry["command"][0].endswith("run.py") and "qmp_dnc" in entry["command"]
    assert entry["host"] and "T" in entry["time"]
    assert list(entry["versions"]) == list(PROVENANCE_PACKAGES)
    assert all(isinstance(v, str) and v for v in entry["versions"].values())
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert entry["git_commit"] == head.stdout.strip()
        assert isinstance(entry["git_dirty"], bool)
    config = load_run_config(str(log_dir))
    assert PROVENANCE_KEY not in config.to_dict()
    assert config.n_epochs == 3 and config.method == "qmp_dnc"


def test_provenance_is_appended_and_kept_when_the_config_is_rewritten(
        background_run: tuple[Path, str], tmp_path: Path) -> None:
    log_dir, _ = background_run
    run_dir = tmp_path / "copy"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text((log_dir / "config.yaml").read_text())
    entry = append_provenance(str(run_dir), "resume from epoch 3")
    assert entry["event"] == "resume from epoch 3"
    save_run_config(str(run_dir), load_run_config(str(run_dir)))  # e.g. resume --n_epochs
    with open(run_dir / "config.yaml") as f:
        events = [e["event"] for e in yaml.safe_load(f)[PROVENANCE_KEY]]
    assert events == ["start", "resume from epoch 3"]
    assert load_run_config(str(run_dir)) == load_run_config(str(log_dir))


def test_a_run_with_provenance_resumes(tmp_path: Path) -> None:
    """resume compares config.yaml with the checkpoint's config: provenance takes no part."""
    log_dir = tmp_path / "r"
    flags = [*TINY_FLAGS, "--n_epochs", "1"]
    assert run.main(["dnc_sac", "--env=PointReachMT4-v0", *flags, "--log_dir",
                     str(log_dir)]) == 0
    assert run.main(["resume", "--snapshot_dir", str(log_dir), "--n_epochs", "2"]) == 0
    with open(log_dir / "config.yaml") as f:
        data = yaml.safe_load(f)
    assert data["n_epochs"] == 2 and data[PROVENANCE_KEY][0]["event"] == "start"


def test_provenance_without_git_or_a_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import experiment_utils

    monkeypatch.setattr(experiment_utils, "_git", lambda *args: None)
    assert git_state() == ("unknown", "unknown")
    monkeypatch.setattr(experiment_utils, "PROVENANCE_PACKAGES", ("numpy", "no-such-dist-qmp"))
    entry = experiment_utils.provenance_entry("start")
    assert entry["git_commit"] == "unknown" and entry["git_dirty"] == "unknown"
    assert entry["versions"]["no-such-dist-qmp"] == "not installed"
    assert entry["versions"]["numpy"] != "not installed"


# ---------------------------------------------------------------------------- closed stdout


def test_a_closed_stdout_does_not_stop_the_run(tmp_path: Path) -> None:
    """`run.py ... | head -1`: the reader goes away after the first line; the run trains on,
    writes every epoch's row and exits 0 (the rest of its stdout goes to /dev/null)."""
    log_dir = tmp_path / "r"
    n_epochs = 4
    errors = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "run.py", "qmp_dnc", "--env=PointReachMT4-v0",
                             *TINY_FLAGS, "--n_epochs", str(n_epochs), "--log_dir", str(log_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as head -1 does after its line
    code = proc.wait(timeout=600)
    errors.seek(0)
    stderr = errors.read()
    errors.close()
    assert first.startswith(b"qmp_dnc on PointReachMT4-v0")
    assert code == 0, stderr
    assert "BrokenPipeError" not in stderr
    with open(log_dir / "progress.csv") as f:
        assert [int(float(r["Epoch"])) for r in csv.DictReader(f)] == list(range(n_epochs))
    assert (log_dir / f"checkpoint_epoch{n_epochs - 1:05d}.pt").exists()


def test_a_notice_is_printed_at_once_after_the_text_before_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from learning.runs.run_logger import RunLogger

    logger = RunLogger(str(tmp_path), tensorboard=False)
    try:
        logger.text("video: a.mp4")
        assert capsys.readouterr().out == ""  # text lines wait for the row's dump
        logger.notice("epoch 3: rendering 4 videos ...")
        assert capsys.readouterr().out == "video: a.mp4\nepoch 3: rendering 4 videos ...\n"
    finally:
        logger.close()
    assert (tmp_path / "debug.log").read_text().rstrip().endswith(
        "| epoch 3: rendering 4 videos ...")
