"""plot.py: figures from real tiny runs, the mixture aggregation on a hand-written progress.csv,
the curve aggregation, and the one-line error when there is nothing to plot."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_FLAGS
from matplotlib.image import imread

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
