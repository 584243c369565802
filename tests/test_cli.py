"""The command line: every method runs end to end and writes well-formed logs; the same seed gives
the same numbers; bad input gives one line on stderr, exit code 2, and touches nothing."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_FLAGS

import run
from learning.runs.checkpoint import checkpoint_paths, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["sac", "mtsac", "dnc_sac", "qmp_dnc", "qmp_sac", "uds_dnc", "qmp_uds_dnc"]
N = 4  # PointReachMT4-v0


def _read_progress(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "progress.csv") as f:
        return list(csv.DictReader(f))


def _run(argv: list[str]) -> int:
    return run.main(argv)


def _buffer_columns(log_dir: Path, name: str) -> list[np.ndarray]:
    """Array `name` of every task's stored transitions, in storage order, from the run's last
    checkpoint (the tiny runs' buffers never wrap: their capacity is lowered to the run's steps)."""
    state = load_checkpoint(checkpoint_paths(str(log_dir))[-1])["buffer"]
    arrays = state["arrays"]
    if len(arrays[name]) == N:  # per-task buffers
        return [arrays[name][i].numpy() for i in range(N)]
    task = arrays["task"][0].numpy()  # one shared buffer: each task's transitions in order
    return [arrays[name][0].numpy()[task == i] for i in range(N)]


def _acting_counts(log_dir: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """(epochs, N, N): how many of task i's transitions stored in epoch e policy j acted, read
    from the replay buffer. Buffer and logged matrix are written from the same acting ids, so
    this checks their layout and normalisation; the ids themselves are checked against a
    scripted behaviour in test_collection_copies.py."""
    acting = _buffer_columns(log_dir, "acting_policy")
    counts = np.zeros((len(rows), N, N), dtype=np.int64)
    for i in range(N):
        start = 0
        for e, r in enumerate(rows):
            steps = int(float(r[f"Train/LocalPolicy{i}/EnvSteps"]))
            counts[e, i] = np.bincount(acting[i][start:start + steps], minlength=N)
            start += steps
        assert start == len(acting[i])
    return counts


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_and_logs(method: str, tiny_flags: list[str], tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    extra = ["--sharing_quantile", "0.5"] if "uds" in method else []
    if method in ("sac", "mtsac", "qmp_sac"):  # their warm-up is min_buffer_size in all: reach
        extra = ["--min_buffer_size", "200"]  # every task (whole episodes from task 0 on)
    assert _run([method, "--env=PointReachMT4-v0", *tiny_flags, *extra,
                 "--log_dir", str(log_dir)]) == 0
    rows = _read_progress(log_dir)
    assert len(rows) == 2
    assert [int(float(r["Epoch"])) for r in rows] == [0, 1]
    steps = [float(r["TotalEnvSteps"]) for r in rows]
    # --batch_size 200 = N x the 50-step horizon: one whole episode of every task a round, as
    # the paper's settings give on most benchmarks
    assert steps[1] - steps[0] == 200
    assert [float(rows[1][f"Train/LocalPolicy{k}/EnvSteps"]) for k in range(N)] == [50] * N
    for key in ("Evaluation/SuccessRate", "Evaluation/AverageReturn", "Train/Qf1Loss",
                "Train/PolicyLoss", "Train/AlphaTemperature",
                *(f"Evaluation/Task{k}/SuccessRate" for k in range(N)),
                *(f"Train/LocalPolicy{k}/{s}" for k in range(N)
                  for s in ("Qf1Loss", "Qf2Loss", "PolicyLoss", "AlphaTemperature", "EnvSteps"))):
        assert key in rows[0], key
        assert all(math.isfinite(float(r[key])) for r in rows), key
    qmp = method.startswith("qmp")
    # the authors' keys: QMP methods add their own policy under Evaluation/p/ (Evaluation/ is
    # the mixture); other methods log their own policy under Evaluation/ only
    assert ("Evaluation/p/SuccessRate" in rows[0]) == qmp
    assert ("Evaluation/p/Task0/SuccessRate" in rows[0]) == qmp
    assert not any(key.startswith("Evaluation/Mixture/") for key in rows[0])
    assert ("Train/LocalPolicy0/Policy1Prob" in rows[0]) == qmp
    if qmp:  # the logged matrix is the share of each task's stored steps acted by policy j
        acting = _acting_counts(log_dir, rows)
        assert (acting.sum(2) == 50).all()  # every task's 50 steps of every epoch counted
        for e, r in enumerate(rows):
            for i in range(N):
                for j in range(N):
                    assert float(r[f"Train/LocalPolicy{i}/Policy{j}Prob"]) == pytest.approx(
                        acting[e, i, j] / 50), (e, i, j)
                assert float(r[f"Train/LocalPolicy{i}/MixtureProbs"]) == pytest.approx(
                    acting[e, i, i] / 50), (e, i)
        assert (acting[:, ~np.eye(N, dtype=bool)] > 0).any()  # other policies did act
    if "uds" in method:  # --sharing_quantile 0.5 keeps some of the offered data, not all
        for r in rows:
            for i in range(N):
                assert 0.0 < float(r[f"Train/LocalPolicy{i}/SharedData"]) < 1.0, (r["Epoch"], i)
    assert (log_dir / "config.yaml").exists()
    assert any(p.startswith("checkpoint_epoch") for p in os.listdir(log_dir))
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(log_dir))


@pytest.mark.parametrize("method", ["sac", "mtsac"])
def test_shared_architecture_with_task_id(method: str, tiny_flags: list[str],
                                          tmp_path: Path) -> None:
    assert _run([method, *tiny_flags, "--policy_architecture", "shared", "--Q_architecture",
                 "shared", "--include_task_id", "True", "--log_dir", str(tmp_path / "r")]) == 0
    assert len(_read_progress(tmp_path / "r")) == 2


def _qmp_run(log_dir: Path, *extra: str) -> list[dict[str, str]]:
    assert _run(["qmp_dnc", *TINY_FLAGS, *extra, "--log_dir", str(log_dir)]) == 0
    return _read_progress(log_dir)


def _mixture(rows: list[dict[str, str]]) -> np.ndarray:
    """The logged (epochs, N, N) mixture matrices."""
    return np.array([[[float(r[f"Train/LocalPolicy{i}/Policy{j}Prob"]) for j in range(N)]
                      for i in range(N)] for r in rows])


@pytest.fixture(scope="module")
def default_qmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny qmp_dnc run with every option at its default: what each option is compared with."""
    log_dir = tmp_path_factory.mktemp("options") / "default"
    _qmp_run(log_dir)
    return log_dir


def test_qswitch_critic_min_changes_the_mixture(default_qmp: Path, tmp_path: Path) -> None:
    """Same seed, same initial networks: scoring with min(Q1, Q2) instead of Q1 must change
    which policies act already in epoch 0 (a flag that never reached the Q-switch would not)."""
    rows = _qmp_run(tmp_path / "r", "--qswitch_critic", "min")
    default = _mixture(_read_progress(default_qmp))
    assert not np.allclose(_mixture(rows)[0], default[0])


def _blocks_with_a_switch(log_dir: Path, freq: int) -> int:
    """How many aligned `freq`-step blocks of the stored 50-step episodes change policy."""
    switches = 0
    for acting in _buffer_columns(log_dir, "acting_policy"):
        blocks = acting.reshape(-1, freq)  # whole episodes of 50 steps, stored from slot 0
        switches += int((blocks != blocks[:, :1]).any(1).sum())
    return switches


def test_policy_sampling_freq_holds_the_choice_for_k_steps(default_qmp: Path,
                                                           tmp_path: Path) -> None:
    """With --policy_sampling_freq 5 a task re-selects only at steps 0, 5, 10, ... of its
    episode: the stored acting policy is constant over every such block. The default run
    (re-selecting every step) does switch inside blocks, so the check can fail."""
    _qmp_run(tmp_path / "r", "--policy_sampling_freq", "5")
    assert _blocks_with_a_switch(default_qmp, 5) > 0
    assert _blocks_with_a_switch(tmp_path / "r", 5) == 0
    # and it does re-select every 5 steps: some episode changes policy at a step 5 (mod 10),
    # which a switch held for 10 or 50 steps (or never re-selecting) could not do
    odd_boundaries = borrowed = 0
    for task, acting in enumerate(_buffer_columns(tmp_path / "r", "acting_policy")):
        episodes = acting.reshape(-1, 50)
        odd_boundaries += int((episodes[:, 5::10] != episodes[:, 4::10]).sum())
        borrowed += int((acting != task).sum())
    assert odd_boundaries > 0 and borrowed > 0  # and the Q-switch still borrows policies


def test_kl_coeff_weights_the_dnc_penalty(default_qmp: Path, tmp_path: Path) -> None:
    """--kl_coeff with N x N values, read row-major (row i: the weights of policy i's penalty
    towards each policy j). Row i's off-diagonal weights are all 0.1 (i + 1), so policy i's
    penalty sum_j B[i][j] KL(pi_j || pi_i) is 0.1 (i + 1) (N - 1) times its mean KL to the
    others; read column-wise, the weights of a row would differ and break the proportion. The
    diagonal (9) weighs KL(pi_i || pi_i) = 0. Without the flag there is no penalty at all."""
    beta = [9.0 if i == j else 0.1 * (i + 1) for i in range(N) for j in range(N)]
    rows = _qmp_run(tmp_path / "r", "--kl_coeff", *map(str, beta))
    for r in rows:
        for i in range(N):
            kl = float(r[f"Train/LocalPolicy{i}/PolicyKL"])
            assert kl > 0.0
            assert float(r[f"Train/LocalPolicy{i}/PolicyKLPenalty"]) == pytest.approx(
                0.1 * (i + 1) * (N - 1) * kl, rel=1e-5)
    assert "Train/LocalPolicy0/PolicyKLPenalty" not in _read_progress(default_qmp)[0]


def test_layer_norm_puts_layer_norms_in_the_critics_only(default_qmp: Path,
                                                         tmp_path: Path) -> None:
    """--layer_norm True adds a LayerNorm after each hidden layer of the critics (as in the
    authors' code: critics only): its parameters are in the checkpoint's critic, not in the
    policy or the default run."""
    _qmp_run(tmp_path / "r", "--layer_norm", "True")

    def layer_norm_keys(log_dir: Path, part: str) -> list[str]:
        sac = load_checkpoint(checkpoint_paths(str(log_dir))[-1])["sac"]
        # a norm's weight is (members, 1, features), a linear's (members, in >= 2, out)
        return [k for k, v in sac[part].items() if k.endswith("weight") and v.shape[1] == 1]

    assert len(layer_norm_keys(tmp_path / "r", "critic")) == 2  # TINY_FLAGS: 2 hidden layers
    assert layer_norm_keys(tmp_path / "r", "policy") == []
    assert layer_norm_keys(default_qmp, "critic") == []


def test_update_path_autograd_trains_like_the_hand_path(default_qmp: Path,
                                                        tmp_path: Path) -> None:
    """The same run on the autograd path: recorded in config.yaml, and the same numbers as the
    default (hand) path up to float rounding, which over a short run stays far below the
    differences a wrong gradient makes."""
    rows = _qmp_run(tmp_path / "ag", "--update_path", "autograd")
    config = yaml.safe_load((tmp_path / "ag" / "config.yaml").read_text())
    assert config["update_path"] == "autograd"
    default = _read_progress(default_qmp)
    assert len(rows) == len(default)
    for key in ("Train/LocalPolicy0/Qf1Loss", "Train/LocalPolicy2/PolicyLoss",
                "Train/LocalPolicy3/AlphaTemperature", "Evaluation/AverageReturn"):
        ours = np.array([float(r[key]) for r in rows])
        np.testing.assert_allclose(ours, [float(r[key]) for r in default], rtol=1e-3,
                                   atol=1e-4, err_msg=key)


def _without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in ("Time", "ItrTime")} for r in rows]


def test_same_seed_same_numbers(tiny_flags: list[str], tmp_path: Path) -> None:
    # "d": 2 threads, handing one to the background evaluation while it runs: same numbers
    threads = ["--torch_threads", "2", "--eval_in_background", "True"]
    before = torch.get_num_threads()
    try:
        for name, seed, extra in (("a", "3", []), ("b", "3", []), ("c", "4", []),
                                  ("d", "3", threads)):
            assert _run(["qmp_uds_dnc", *tiny_flags, "--seed", seed, *extra,
                         "--log_dir", str(tmp_path / name)]) == 0
    finally:
        torch.set_num_threads(before)
    a, b, c, d = (_without_time(_read_progress(tmp_path / x)) for x in "abcd")
    assert a == b == d
    assert a != c


BAD_INPUTS = [
    (["no_such_method"], "invalid choice"),
    (["qmp_dnc", "--env", "NoSuchEnv-v0"], "unknown env"),
    (["qmp_sac", "--policy_architecture", "separate"], "multihead"),
    (["qmp_sac", "--policy_architecture", "shared", "--Q_architecture", "multihead"],
     "multihead"),
    (["dnc_sac", "--n_epochs", "-3"], "--n_epochs must be positive"),
    (["dnc_sac", "--batch_size", "2"], "smaller than the 4 tasks"),
    (["mtsac", "--policy_architecture", "shared", "--Q_architecture", "shared"],
     "--include_task_id"),
    (["qmp_dnc", "--include_task_id", "True"], "include_task_id"),
    (["dnc_sac", "--lr", "abc"], "invalid float"),
    (["uds_dnc", "--kl_coeff", "0.5"], "kl_coeff"),
    (["dnc_sac", "--sharing_quantile", "1.5"], "sharing_quantile"),
    (["dnc_sac", "--replay_buffer_size", "10", "--min_buffer_size", "100"],
     "replay_buffer_size"),
    (["dnc_sac", "--update_path", "fast"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_one_line_exit_2(argv: list[str], message: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = tmp_path / "never"
    assert _run([*argv, "--log_dir", str(log_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("run.py: error:"), err
    assert message in err
    assert not log_dir.exists()


def test_bad_input_from_a_real_process_has_no_traceback() -> None:
    proc = subprocess.run([sys.executable, "run.py", "qmp_sac", "--n_epochs", "-1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_existing_run_folder_is_never_overwritten(tiny_flags: list[str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = tmp_path / "mine"
    log_dir.mkdir()
    (log_dir / "progress.csv").write_text("precious\n")
    assert _run(["dnc_sac", *tiny_flags, "--log_dir", str(log_dir)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (log_dir / "progress.csv").read_text() == "precious\n"
    assert os.listdir(log_dir) == ["progress.csv"]


def test_background_evaluation_gives_the_same_numbers(tiny_flags: list[str],
                                                      tmp_path: Path) -> None:
    """Evaluation depends only on the weights and the epoch, so running it in a worker process
    (overlapping the next epoch) must not change any logged number."""
    flags = [*tiny_flags, "--n_epochs", "3", "--evaluation_frequency", "2"]
    for name, background in (("inline", "False"), ("worker", "True")):
        assert _run(["qmp_dnc", *flags, "--eval_in_background", background,
                     "--log_dir", str(tmp_path / name)]) == 0
    inline = _without_time(_read_progress(tmp_path / "inline"))
    worker = _without_time(_read_progress(tmp_path / "worker"))
    assert [float(r["Epoch"]) for r in worker] == [0, 1, 2]
    assert math.isnan(float(worker[1]["Evaluation/SuccessRate"]))  # epoch 1: no evaluation
    assert inline == worker


def test_vis_freq_writes_annotated_videos(tiny_flags: list[str], tmp_path: Path) -> None:
    assert _run(["qmp_dnc", *tiny_flags, "--n_epochs", "3", "--vis_freq", "2",
                 "--log_dir", str(tmp_path / "r")]) == 0
    names = sorted(os.listdir(tmp_path / "r" / "videos"))
    expected = sorted(f"epoch{e:05d}_{kind}_task{k}.mp4" for e in (0, 2)
                      for kind in ("own", "mixture") for k in range(N))
    assert names == expected


def test_wandb_is_optional_and_offline(tiny_flags: list[str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util
    import types

    if importlib.util.find_spec("wandb") is None:
        assert _run(["dnc_sac", *tiny_flags, "--wandb", "True",
                     "--log_dir", str(tmp_path / "x")]) == 2
        assert "pip install wandb" in capsys.readouterr().err
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class FakeRun:
        id = "abc123"

        def log(self, data: dict, step: int) -> None:
            calls["log"].append((step, data))

        def finish(self) -> None:
            calls["finish"].append(True)

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kw: calls["init"].append(kw) or FakeRun()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert _run(["qmp_dnc", *tiny_flags, "--wandb", "True", "--log_dir", str(tmp_path / "r")]) == 0
    init = calls["init"][0]
    assert init["mode"] == "offline" and init["config"]["method"] == "qmp_dnc"
    assert [step for step, _ in calls["log"]] == [0, 1]
    assert "Evaluation/SuccessRate" in calls["log"][0][1] and calls["finish"]
    assert (tmp_path / "r" / "wandb_run_id.txt").read_text() == "abc123"
