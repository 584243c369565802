"""plot.py: figures from real tiny runs, the mixture aggregation on a hand-written progress.csv,
the curve aggregation, and the one-line error when there is nothing to plot."""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_FLAGS
from matplotlib.image import imread

import experiment_utils
import plot
import run

ROOT = Path(__file__).resolve().parent.parent
ENV = "PointReachMT4-v0"


def _flags(epochs: int) -> list[str]:
    flags = list(TINY_FLAGS)
    flags[flags.index("--n_epochs") + 1] = str(epochs)
    return flags


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds each of qmp_dnc and dnc_sac (3 epochs), plus a run folder with no epoch yet."""
    root = tmp_path_factory.mktemp("runs")
    for method in ("qmp_dnc", "dnc_sac"):
        for seed in (1, 2):
            assert run.main([method, f"--env={ENV}", *_flags(3), "--seed", str(seed),
                             "--log_dir", str(root / f"{method}_s{seed}")]) == 0
    partial = root / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_text((root / "qmp_dnc_s1" / "config.yaml").read_text())
    header = (root / "qmp_dnc_s1" / "progress.csv").read_text().splitlines()[0]
    (partial / "progress.csv").write_text(header + "\n")
    return root


def test_plots_from_real_runs(runs_root: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots"
    assert plot.main([str(runs_root), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipping" in captured.err and "partial" in captured.err
    stems = {f"curves_{ENV}": (720, 1050), f"mixture_{ENV}_qmp_dnc": (585, 1440)}
    expected = {str(out / f"{stem}.{ext}") for stem in stems for ext in ("png", "pdf")}
    assert set(captured.out.split()) == expected  # no mixture figure for dnc_sac
    for stem, (height, width) in stems.items():
        assert (out / f"{stem}.pdf").stat().st_size > 1000
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (out / f"{stem}.png").stat().st_size > 1000
        image = imread(out / f"{stem}.png")
        assert image.shape[:2] == (height, width) and image.shape[2] in (3, 4)
        assert image[..., :3].std() > 0.05  # something is drawn
    # a metric no run logged is an error, not mixture plots alone
    assert plot.main([str(runs_root), "--metric", "Evaluation/Nope", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("plot.py: error: nothing to plot")


def test_groups_and_curves_of_real_runs(runs_root: Path) -> None:
    runs = plot.load_runs([str(runs_root / "qmp_dnc_s1"), str(runs_root)])  # each run once
    groups = plot.group_runs(runs)
    assert {m: sorted(r.seed for r in rs) for m, rs in groups[ENV].items()} == {
        "dnc_sac": ["1", "2"], "qmp_dnc": ["1", "2"]}
    panel, = plot.build_panels(groups, None, 1)
    assert panel.metric == "Evaluation/SuccessRate"
    curve = panel.curves["qmp_dnc"]
    steps = [float(r["TotalEnvSteps"]) for r in
             csv.DictReader(open(runs_root / "qmp_dnc_s1" / "progress.csv"))]
    assert curve.x.tolist() == steps and curve.num_runs == 2 and curve.spread == "min-max"


def _write_run(folder: Path, method: str, rows: list[dict[str, float]], num_tasks: int,
               env: str = ENV) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"method": method, "env": env, "seed": 0, "num_tasks": num_tasks}))
    with open(folder / "progress.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if math.isnan(v) else v for k, v in row.items()})
    return folder


def _mixture_row(epoch: int, matrix: list[list[float]]) -> dict[str, float]:
    row = {"Epoch": float(epoch), "TotalEnvSteps": 100.0 * (epoch + 1),
           "Evaluation/SuccessRate": math.nan}
    for i, values in enumerate(matrix):
        for j, value in enumerate(values):
            row[f"Train/LocalPolicy{i}/Policy{j}Prob"] = value
    return row


def test_mixture_heatmap_values(tmp_path: Path) -> None:
    # 6 epochs, N = 2; thirds are epochs 0-1, 2-3, 4-5. Epoch 1 of task 1 is NaN (no steps).
    nan = math.nan
    epochs = [
        [[1.0, 0.0], [0.2, 0.8]],
        [[0.5, 0.5], [nan, nan]],
        [[0.6, 0.4], [0.0, 1.0]],
        [[0.8, 0.2], [0.5, 0.5]],
        [[0.9, 0.1], [0.1, 0.9]],
        [[0.7, 0.3], [0.3, 0.7]],
    ]
    first = plot.load_run(str(_write_run(
        tmp_path / "s0", "qmp_dnc", [_mixture_row(e, m) for e, m in enumerate(epochs)], 2)))
    stages, spans = plot.mixture_stages(first)
    assert spans == [(0, 1), (2, 3), (4, 5)]
    np.testing.assert_allclose(stages, [
        [[0.75, 0.25], [0.2, 0.8]],
        [[0.7, 0.3], [0.25, 0.75]],
        [[0.8, 0.2], [0.2, 0.8]],
    ])
    # a second seed whose matrix is the identity throughout: the seed mean halves the distance
    second = plot.load_run(str(_write_run(
        tmp_path / "s1", "qmp_dnc", [_mixture_row(e, [[1.0, 0.0], [0.0, 1.0]]) for e in range(6)],
        2)))
    mean, labels = plot.average_mixtures([first, second])
    assert labels == ["epochs 0-1", "epochs 2-3", "epochs 4-5"]
    np.testing.assert_allclose(mean, [
        [[0.875, 0.125], [0.1, 0.9]],
        [[0.85, 0.15], [0.125, 0.875]],
        [[0.9, 0.1], [0.1, 0.9]],
    ])
    # an epoch count that does not divide by 3: np.array_split sizes 3, 2, 2
    seven = plot.load_run(str(_write_run(
        tmp_path / "s2", "qmp_dnc",
        [_mixture_row(e, [[e / 6, 1 - e / 6], [0.5, 0.5]]) for e in range(7)], 2)))
    stages, spans = plot.mixture_stages(seven)
    assert spans == [(0, 2), (3, 4), (5, 6)]
    np.testing.assert_allclose(stages[:, 0, 0], [1 / 6, 3.5 / 6, 5.5 / 6])


def test_curve_aggregation_and_default_metric(tmp_path: Path) -> None:
    x = np.array([10.0, 20.0, 30.0])
    two = plot.aggregate_curves([(x, np.array([0.0, 0.5, 1.0])), (x, np.array([1.0, 0.5, 0.0]))])
    np.testing.assert_allclose(two.mean, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(two.low, [0.0, 0.5, 0.0])
    np.testing.assert_allclose(two.high, [1.0, 0.5, 1.0])
    three = plot.aggregate_curves([(x, np.full(3, v)) for v in (0.0, 0.3, 0.6)])
    assert three.spread == "std"
    np.testing.assert_allclose(three.high - three.mean, np.full(3, np.std([0.0, 0.3, 0.6])))
    # NaN rows (epochs without evaluation) are dropped; Walker plots the return by default
    rows = [{"Epoch": float(e), "TotalEnvSteps": 1000.0 * (e + 1),
             "Evaluation/SuccessRate": 0.1 * e if e % 2 else math.nan,
             "Evaluation/AverageReturn": 10.0 * e if e % 2 else math.nan} for e in range(6)]
    walker = plot.load_run(str(_write_run(tmp_path / "w", "dnc_sac", rows, 4,
                                          env="Walker2dMT4-v0")))
    panel, = plot.build_panels(plot.group_runs([walker]), None, 2)
    assert panel.metric == "Evaluation/AverageReturn"
    curve = panel.curves["dnc_sac"]
    np.testing.assert_allclose(curve.x, [2000.0, 4000.0, 6000.0])
    np.testing.assert_allclose(curve.mean, [10.0, 20.0, 40.0])  # smoothed over 2 points


def test_nothing_to_plot_is_one_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "plot.py"), str(empty)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("plot.py: error: ")
    assert not (tmp_path / "plots").exists()


def _eval_rows(values: dict[str, float]) -> list[dict[str, float]]:
    """Three evaluated epochs holding constant `values` (column -> value)."""
    return [{"Epoch": float(e), "TotalEnvSteps": 100.0 * (e + 1), **values} for e in range(3)]


@pytest.mark.parametrize("policy", [None, "mixture", "own"])
def test_policy_choice_reads_the_right_column(tmp_path: Path, policy: str | None) -> None:
    # QMP: Evaluation/ is the mixture (0.9), Evaluation/p/ the own policy (0.2); dnc_sac logs its
    # own policy under Evaluation/ only (0.5); a run logged before the authors' keys had the own
    # policy under Evaluation/ (0.3) and the mixture under Evaluation/Mixture/ (0.7)
    qmp = plot.load_run(str(_write_run(tmp_path / "q", "qmp_dnc", _eval_rows(
        {"Evaluation/SuccessRate": 0.9, "Evaluation/p/SuccessRate": 0.2}), 2)))
    own = plot.load_run(str(_write_run(tmp_path / "d", "dnc_sac", _eval_rows(
        {"Evaluation/SuccessRate": 0.5}), 2)))
    legacy = plot.load_run(str(_write_run(tmp_path / "l", "qmp_sac", _eval_rows(
        {"Evaluation/SuccessRate": 0.3, "Evaluation/Mixture/SuccessRate": 0.7}), 2)))
    panel, = plot.build_panels(plot.group_runs([qmp, own, legacy]), None, 1, policy)
    mean = {m: float(c.mean[0]) for m, c in panel.curves.items()}
    if policy == "own":
        assert mean == pytest.approx({"qmp_dnc": 0.2, "dnc_sac": 0.5, "qmp_sac": 0.3})
        assert panel.columns == {"qmp_dnc": "Evaluation/p/SuccessRate",
                                 "dnc_sac": "Evaluation/SuccessRate",
                                 "qmp_sac": "Evaluation/SuccessRate"}
        assert panel.shows == dict.fromkeys(("qmp_dnc", "dnc_sac", "qmp_sac"), "own policy")
        assert plot.shown_text([panel]) == (
            "QMP curves: own policy of each task; other curves: own policy of each task "
            "[Evaluation/SuccessRate, Evaluation/p/SuccessRate]")
    else:  # the default is the authors' Evaluation/ key: the mixture for QMP methods
        assert mean == pytest.approx({"qmp_dnc": 0.9, "dnc_sac": 0.5, "qmp_sac": 0.7})
        assert panel.columns == {"qmp_dnc": "Evaluation/SuccessRate",
                                 "dnc_sac": "Evaluation/SuccessRate",
                                 "qmp_sac": "Evaluation/Mixture/SuccessRate"}
        assert panel.shows == {"qmp_dnc": "mixture", "dnc_sac": "own policy",
                               "qmp_sac": "mixture"}
        assert plot.shown_text([panel]) == (
            "QMP curves: mixture (Q-switch acting); other curves: own policy of each task "
            "[Evaluation/Mixture/SuccessRate, Evaluation/SuccessRate]")
    # the figure says it: title and legend entries
    fig = plot.curves_figure([panel], 1)
    assert fig.get_suptitle() == plot.shown_text([panel])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    what = "own policy" if policy == "own" else "mixture"
    assert labels == ["Separated (dnc_sac, own policy, 1 seed)",
                      f"Separated + QMP (qmp_dnc, {what}, 1 seed)",
                      f"Parameters + QMP (qmp_sac, {what}, 1 seed)"]
    assert fig.axes[0].get_ylabel() == "Success rate"


def test_policy_own_on_real_runs_and_metric_rules(runs_root: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = plot.load_runs([str(runs_root)])
    qmp_rows = list(csv.DictReader(open(runs_root / "qmp_dnc_s1" / "progress.csv")))
    assert "Evaluation/p/SuccessRate" in qmp_rows[0]
    groups = plot.group_runs(runs)
    for policy, column in ((None, "Evaluation/AverageReturn"),
                           ("own", "Evaluation/p/AverageReturn")):
        panel, = plot.build_panels(groups, "Evaluation/AverageReturn", 1, policy)
        assert panel.columns == {"dnc_sac": "Evaluation/AverageReturn", "qmp_dnc": column}
        expected = np.mean([[float(r[column]) for r in csv.DictReader(
            open(runs_root / f"qmp_dnc_s{seed}" / "progress.csv"))] for seed in (1, 2)], axis=0)
        np.testing.assert_allclose(panel.curves["qmp_dnc"].mean, expected)
    # a full Evaluation/p/ key is the own policy (dnc_sac reads its Evaluation/ key)
    panel, = plot.build_panels(groups, "Evaluation/p/SuccessRate", 1)
    assert panel.columns == {"dnc_sac": "Evaluation/SuccessRate",
                             "qmp_dnc": "Evaluation/p/SuccessRate"}
    # other columns are read as given; --policy does not apply to them
    panel, = plot.build_panels(groups, "Train/Qf1Loss", 1)
    assert panel.shows == {} and plot.shown_text([panel]) is None
    assert set(panel.columns.values()) == {"Train/Qf1Loss"}
    out = tmp_path / "plots"
    for bad in (["--metric", "Train/Qf1Loss", "--policy", "own"],
                ["--metric", "Evaluation/p/SuccessRate", "--policy", "mixture"]):
        assert plot.main([str(runs_root), *bad, "--out", str(out)]) == 2
        assert capsys.readouterr().err.splitlines()[-1].startswith("plot.py: error: ")
    # --policy own writes its own files next to the default ones
    assert plot.main([str(runs_root), "--policy", "own", "--out", str(out)]) == 0
    assert str(out / f"curves_{ENV}_own-policy.png") in capsys.readouterr().out.split()


# --------------------------------------------------------------------------- grouping, lengths


def _full_config(n_epochs: int, **changes: object) -> dict[str, object]:
    """config.yaml as run.py writes it for qmp_dnc on ENV, with a replay capacity that the run
    never fills (as earlier versions' default, lowered to the run's total steps)."""
    config = experiment_utils.resolve_config(
        ["qmp_dnc", f"--env={ENV}", "--n_epochs", str(n_epochs)]).to_dict()
    config["replay_buffer_size"] = 1000 * n_epochs + 700
    config.update(changes)
    return config


def _write_full_run(folder: Path, config: dict[str, object], value: Callable[[int], float],
                    step_offset: float = 0.0) -> Path:
    """A run folder with `config` and one evaluated row per epoch of config["n_epochs"]."""
    n_epochs = config["n_epochs"]
    assert isinstance(n_epochs, int)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with open(folder / "progress.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Epoch", "TotalEnvSteps", "Evaluation/SuccessRate"])
        for epoch in range(n_epochs):
            writer.writerow([epoch, 100.0 * (epoch + 1) + step_offset, value(epoch)])
    return folder


def _user_case(root: Path) -> Path:
    """The reported folder: qmp_dnc on ENV, all seed 0, n_epochs 5/10/20/30 x layer_norm."""
    for n_epochs in (5, 10, 20, 30):
        for layer_norm in (False, True):
            _write_full_run(
                root / f"qmp_dnc_e{n_epochs}_ln{int(layer_norm)}",
                _full_config(n_epochs, layer_norm=layer_norm, seed=0),
                lambda e, n=n_epochs, ln=layer_norm: e / 100 + n / 1000 + 0.5 * ln)
    return root


def test_config_keys_are_all_classified() -> None:
    # a new config key must be put in one list: otherwise plot.py would ignore it silently
    fields = {f.name for f in dataclasses.fields(experiment_utils.ExperimentConfig)}
    assert fields <= set(plot.RESULT_KEYS) | set(plot.NOT_RESULT_KEYS)
    assert not set(plot.RESULT_KEYS) & set(plot.NOT_RESULT_KEYS)
    assert {"seed", "n_epochs", "log_dir", "torch_threads", "provenance"} <= set(
        plot.NOT_RESULT_KEYS)


def test_later_keys_take_the_configs_defaults() -> None:
    """A run written before a result key existed groups with runs at that key's default: the
    defaults plot.py assumes are the config's own, and every defaulted result key has one."""
    defaulted = {f.name: f.default for f in dataclasses.fields(experiment_utils.ExperimentConfig)
                 if f.default is not dataclasses.MISSING and f.name in plot.RESULT_KEYS
                 and f.name != "num_tasks"}  # num_tasks: always written, from the env
    assert defaulted == plot.LATER_KEYS
    old = {"method": "qmp_dnc", "env": ENV, "kl_coeff": [0.0]}
    new = {**old, "use_pc_grad": False, "distillation_period": 0, "grad_clip": None}
    steps = np.array([1000.0])
    assert plot.result_settings(old, steps) == plot.result_settings(new, steps)
    assert plot.result_settings(old, steps) != plot.result_settings(
        {**new, "use_pc_grad": True}, steps)


def test_user_case_groups_by_layer_norm_and_keeps_the_longest_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _user_case(tmp_path / "data")
    groups = plot.group_runs(plot.load_runs([str(data)]))
    assert {name: sorted(run.num_epochs for run in runs) for name, runs in groups[ENV].items()
            } == {"qmp_dnc, layer_norm=False": [5, 10, 20, 30],
                  "qmp_dnc, layer_norm=True": [5, 10, 20, 30]}
    capsys.readouterr()
    panel, = plot.build_panels(groups, None, 1)
    err = capsys.readouterr().err.splitlines()
    # the curves it draws: 30 points, the mean of the seeds that reach each one
    curve = panel.curves["qmp_dnc, layer_norm=False"]
    epochs = np.arange(30)
    np.testing.assert_allclose(curve.x, 100.0 * (epochs + 1))
    assert curve.counts.tolist() == [4] * 5 + [3] * 5 + [2] * 10 + [1] * 10
    lengths = [np.array(n) for n in ([5, 10, 20, 30], [10, 20, 30], [20, 30], [30])]
    expected = [epochs[e] / 100 + lengths[0 if e < 5 else 1 if e < 10 else 2 if e < 20 else 3]
                .mean() / 1000 for e in range(30)]
    np.testing.assert_allclose(curve.mean, expected)
    np.testing.assert_allclose(curve.high[:5] - curve.mean[:5], np.std([5, 10, 20, 30]) / 1000)
    np.testing.assert_allclose(curve.high[10:20], 0.030 + epochs[10:20] / 100)  # max of 2
    np.testing.assert_allclose(curve.low[20:], curve.mean[20:])  # one seed: no spread
    assert curve.spread == "std / min-max" and curve.num_runs == 4
    assert curve.drops() == [(500.0, 3), (1000.0, 2), (2000.0, 1)]
    np.testing.assert_allclose(panel.curves["qmp_dnc, layer_norm=True"].mean, curve.mean + 0.5)
    # one warning per group: the seeds of each length and where the count drops
    for layer_norm in ("False", "True"):
        line, = [e for e in err if f"layer_norm={layer_norm}: seeds cover different" in e]
        ln = int(layer_norm == "True")
        assert line.startswith(f"plot.py: warning: {ENV} qmp_dnc, layer_norm={layer_norm}: ")
        assert (f"5 epochs: seed 0 (qmp_dnc_e5_ln{ln}); 10 epochs: seed 0 (qmp_dnc_e10_ln{ln}); "
                f"20 epochs: seed 0 (qmp_dnc_e20_ln{ln}); 30 epochs: seed 0 (qmp_dnc_e30_ln{ln})"
                ) in line
        assert line.endswith("the curve is the mean of 4 seeds up to step 500, then 3 seeds up "
                             "to step 1,000, then 2 seeds up to step 2,000, then 1 seed up to "
                             "step 3,000")
    assert sum("seed 0 repeats" in e for e in err) == 2
    # the figure: the drawn lines hold all 30 points, the legend names the differing setting
    fig = plot.curves_figure([panel], 1)
    lines = [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert [len(line.get_xdata()) for line in lines] == [30, 30]
    np.testing.assert_allclose(lines[0].get_ydata(), curve.mean)
    assert lines[0].get_marker() in (None, "None") and lines[1].get_marker() == "o"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "Separated + QMP (qmp_dnc, layer_norm=False, mixture, 4 seeds)",
        "Separated + QMP (qmp_dnc, layer_norm=True, mixture, 4 seeds)"]
    # the command: both warnings on stderr, the curves written
    out = tmp_path / "plots"
    assert plot.main([str(data), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert sum("seeds cover different lengths" in e for e in captured.err.splitlines()) == 2
    assert set(captured.out.split()) == {str(out / f"curves_{ENV}.{e}") for e in ("png", "pdf")}


def test_grouping_ignores_settings_that_do_not_change_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    others = [
        {"seed": 1, "log_dir": "/a", "torch_threads": 1, "provenance": {"git_commit": "abc"}},
        {"seed": 2, "log_dir": "/b", "torch_threads": 4,
         "provenance": [{"event": "start", "git_commit": "def", "host": "box"},
                        {"event": "resume from epoch 5", "git_commit": "0a1"}],
         "git_commit": "def", "host": "box", "versions": {"torch": "2.4"}, "snapshot_gap": 5,
         "snapshot_interval": 0.0, "keep_checkpoints": 3, "vis_freq": 10, "wandb": True,
         "eval_in_background": False},
        {"seed": 3, "log_dir": "/c", "torch_threads": None, "provenance": None},
    ]
    for k, changes in enumerate(others):
        _write_full_run(tmp_path / f"q{k}", _full_config(10, **changes), lambda e: e / 10)
    # settings that do change results: a group each, named by what differs
    _write_full_run(tmp_path / "lr", _full_config(10, lr=3e-3, seed=1), lambda e: 0.0)
    _write_full_run(tmp_path / "small", _full_config(10, replay_buffer_size=500), lambda e: 0.0)
    config = _full_config(10, method="dnc_sac", layer_norm=True)
    _write_full_run(tmp_path / "dnc", config, lambda e: 0.0)
    groups = plot.group_runs(plot.load_runs([str(tmp_path)]))
    assert {name: sorted(run.seed for run in runs) for name, runs in groups[ENV].items()} == {
        "dnc_sac": ["0"],  # the only dnc_sac group: nothing to tell apart
        "qmp_dnc, lr=0.001, replay_buffer_size=never full": ["1", "2", "3"],
        "qmp_dnc, lr=0.003, replay_buffer_size=never full": ["1"],
        "qmp_dnc, lr=0.001, replay_buffer_size=500": ["0"],
    }
    capsys.readouterr()
    panel, = plot.build_panels(groups, None, 1)
    assert capsys.readouterr().err == ""  # equal lengths, distinct seeds: nothing to warn about
    curve = panel.curves["qmp_dnc, lr=0.001, replay_buffer_size=never full"]
    assert curve.num_runs == 3 and curve.counts.tolist() == [3] * 10 and curve.spread == "std"
    assert list(panel.curves)[0] == "dnc_sac"  # the paper's method order, then the name


def test_seeds_of_one_length_share_their_common_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # same length, slightly different steps: interpolated onto the range both cover, as before
    for seed, offset in ((0, 0.0), (1, 10.0)):
        _write_full_run(tmp_path / f"s{seed}", _full_config(3, seed=seed), lambda e: e / 10,
                        step_offset=offset)
    panel, = plot.build_panels(plot.group_runs(plot.load_runs([str(tmp_path)])), None, 1)
    curve = panel.curves["qmp_dnc"]
    np.testing.assert_allclose(curve.x, [110.0, 200.0, 210.0, 300.0])
    assert curve.counts.tolist() == [2, 2, 2, 2] and curve.drops() == []
    assert capsys.readouterr().err == ""
    # the rule itself: lengths decide which ends are cut together
    a = (np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    b = (np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([2.0, 3.0, 4.0, 5.0, 6.0]))
    same = plot.aggregate_curves([a, b], [5, 5])
    np.testing.assert_allclose(same.x, [1.0, 2.0, 3.0])
    longer = plot.aggregate_curves([a, b], [3, 5])
    np.testing.assert_allclose(longer.x, [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(longer.mean, [1.0, 2.0, 3.0, 5.0, 6.0])
    assert longer.counts.tolist() == [2, 2, 2, 1, 1] and longer.drops() == [(3.0, 1)]
