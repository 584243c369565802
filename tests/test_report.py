"""report.py on hand-written runs: the final value over the last tenth of epochs, mean and std
over seeds, learned-nothing seeds, reduced budgets, the paper's values, QMP's mixture and own
rows, unfinished runs, the figures, and the one-line error exit."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

import plot
import report

NAN = math.nan
JACO = "JacoReachMT5-v1"
WALKER = "Walker2dMT4-v0"


def write_run(folder: Path, env: str, method: str, seed: int, n_epochs: int,
              columns: dict[str, list[float]], steps_per_epoch: float = 1000.0) -> Path:
    """A run folder: config.yaml and a progress.csv with one row per value of `columns`, epoch e
    at TotalEnvSteps steps_per_epoch * (e + 1); NaN is written as an empty cell."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"method": method, "env": env, "seed": seed, "n_epochs": n_epochs, "num_tasks": 5}))
    rows = len(next(iter(columns.values())))
    table = {"Epoch": list(range(rows)),
             "TotalEnvSteps": [steps_per_epoch * (e + 1) for e in range(rows)], **columns}
    with open(folder / "progress.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table)
        for e in range(rows):
            writer.writerow(["" if math.isnan(v) else v for v in (table[k][e] for k in table)])
    return folder


def seed_run(root: Path, env: str, method: str, seed: int, n_epochs: int,
             columns: dict[str, list[float]], steps_per_epoch: float = 1000.0) -> Path:
    return write_run(root / env / method / f"s{seed}", env, method, seed, n_epochs, columns,
                     steps_per_epoch)


SUCCESS, OWN = "Evaluation/SuccessRate", "Evaluation/p/SuccessRate"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qmp_dnc (2 seeds, 20 of 20 epochs at 1000 steps), dnc_sac (10 of 20 epochs, evaluated on
    even epochs), mtsac (2M steps, success always 0) on Jaco; mtsac on Walker; plus folders
    outside the ENV/METHOD/sSEED layout that must not be read."""
    root = tmp_path_factory.mktemp("results")
    seed_run(root, JACO, "qmp_dnc", 0, 20, {SUCCESS: [0.1] * 18 + [0.9, 1.0],
                                            OWN: [0.3] * 18 + [0.5, 0.7]})
    seed_run(root, JACO, "qmp_dnc", 1, 20, {SUCCESS: [0.2] * 18 + [0.8, 0.9],
                                            OWN: [0.3] * 18 + [0.0, 0.0]})
    seed_run(root, JACO, "dnc_sac", 0, 20,
             {SUCCESS: [0.0, NAN, 0.2, NAN, 0.2, NAN, 0.2, NAN, 0.4, NAN]})
    seed_run(root, JACO, "mtsac", 0, 10, {SUCCESS: [0.0] * 10}, steps_per_epoch=200_000.0)
    seed_run(root, WALKER, "mtsac", 0, 10, {"Evaluation/AverageReturn": [10.0] * 9 + [200.0],
                                            SUCCESS: [0.0] * 10})
    ignored = {SUCCESS: [1.0] * 20, OWN: [1.0] * 20}
    write_run(root / "short_runs" / f"{JACO}_qmp_dnc_s0", JACO, "qmp_dnc", 7, 20, ignored)
    write_run(root / JACO / "qmp_dnc" / "extra", JACO, "qmp_dnc", 8, 20, ignored)
    return root


@pytest.fixture(scope="module")
def report_text(sample: Path) -> str:
    assert report.main([str(sample)]) == 0
    return (sample / "REPORT.md").read_text()


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_final_value_is_the_mean_over_the_last_tenth(tmp_path: Path) -> None:
    # 30 epochs: the last tenth is epochs 27-29; epoch 26's 1.0 is outside it
    run = plot.load_run(str(write_run(tmp_path / "a", JACO, "dnc_sac", 0, 30,
                                      {SUCCESS: [1.0] * 27 + [0.2, 0.4, 0.9]})))
    assert report.final_window(run, SUCCESS).tolist() == [0.2, 0.4, 0.9]
    assert report.final_window(run, SUCCESS).mean() == pytest.approx(0.5)
    # 25 epochs: ceil(2.5) = 3 epochs (22-24), of which 23 was not evaluated
    run = plot.load_run(str(write_run(tmp_path / "b", JACO, "dnc_sac", 0, 25,
                                      {SUCCESS: [1.0] * 22 + [0.1, NAN, 0.3]})))
    assert report.final_window(run, SUCCESS).tolist() == [0.1, 0.3]
    # no evaluation in the last tenth: the last evaluation (epoch 8)
    run = plot.load_run(str(write_run(tmp_path / "c", JACO, "dnc_sac", 0, 10,
                                      {SUCCESS: [0.0] * 8 + [0.4, NAN]})))
    assert report.final_window(run, SUCCESS).tolist() == [0.4]
    with pytest.raises(plot.RunError, match="no column"):
        report.final_window(run, OWN)


def test_table_rows_exact(report_text: str) -> None:
    assert table_rows(report_text) == [
        [f"`{JACO}`", "Separated (dnc_sac) (in progress: epoch 10 of 20)", "own policy",
         "40.0 ± 0.0 %", "s0 40", "0 of 1", "0.01M of the paper's 2M [^budget]", "80 % at 2M"],
        [f"`{JACO}`", "Separated + QMP (qmp_dnc)", "mixture", "90.0 ± 5.0 %", "s0 95, s1 85",
         "0 of 2", "0.02M of the paper's 2M [^budget]", "98 % at 2M"],
        [f"`{JACO}`", "Separated + QMP (qmp_dnc)", "own policy", "30.0 ± 30.0 %", "s0 60, s1 0",
         "1 of 2", "0.02M of the paper's 2M [^budget]", "-"],
        [f"`{JACO}`", "Parameters (mtsac)", "own policy", "0.0 ± 0.0 %", "s0 0", "1 of 1", "2M",
         "44 % at 2M"],
        [f"`{WALKER}`", "Parameters (mtsac)", "own policy", "200.0 ± 0.0 (return)", "s0 200",
         "-", "0.01M", "-"],
    ]
    # the reduced budget is explained, and the definitions are stated
    assert "\n[^budget]: budget below the paper's" in report_text
    assert "std with ddof=0" in report_text and "last tenth of the run's E logged" in report_text


def test_env_lines_and_figures(report_text: str, sample: Path) -> None:
    assert (f"- `{JACO}` (Multistage Reacher): 3 method groups, 4 runs, metric "
            f"`Evaluation/SuccessRate`; paper budget 2M env steps; figure: "
            f"[{JACO}.png](figures/{JACO}.png)") in report_text
    assert (f"- `{WALKER}` (Walker2D): 1 method group, 1 run, metric `Evaluation/AverageReturn`; "
            f"no paper values; figure: [{WALKER}.png](figures/{WALKER}.png)") in report_text
    assert sorted(p.name for p in (sample / "figures").iterdir()) == [f"{JACO}.png",
                                                                      f"{WALKER}.png"]
    image = imread(sample / "figures" / f"{JACO}.png")
    assert image.shape[0] > 500 and image[..., :3].std() > 0.05


def test_paper_csv_values_and_comments(tmp_path: Path) -> None:
    paper = report.load_paper(report.PAPER_CSV)
    assert len(paper) == 32  # 5 envs x 6 methods, and MT50's parameter-sharing pair
    assert (paper[(JACO, "qmp_dnc")].success, paper[(JACO, "qmp_dnc")].env_steps) == (98, 2e6)
    assert paper[("MetaWorldMT50-v2", "qmp_sac")].env_steps == 300e6
    assert "uncertain" in paper[("MetaWorldMT50-v2", "mtsac")].note
    assert ("MetaWorldMT50-v2", "dnc_sac") not in paper
    custom = tmp_path / "paper.csv"
    custom.write_text("# a comment, with a comma\nenv,method,paper_success,paper_env_steps,note\n"
                      "# another\nE,m,12.5,1000,\n")
    assert report.load_paper(str(custom)) == {("E", "m"): report.Paper(12.5, 1000.0, "")}


def test_out_option_paper_csv_and_printed_path(sample: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "elsewhere" / "R.md"
    out.parent.mkdir()
    paper = tmp_path / "paper.csv"
    paper.write_text("env,method,paper_success,paper_env_steps,note\n"
                     f"{JACO},qmp_dnc,50,100000,\n")
    assert report.main([str(sample), "--out", str(out), "--paper", str(paper)]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    text = out.read_text()
    link = os.path.relpath(sample / "figures" / f"{JACO}.png", out.parent)
    assert f"figure: [{JACO}.png]({link})" in text
    # the values come from the CSV: qmp_dnc's, and the env's budget for every Jaco row
    rows = {(r[0], r[1], r[2]): r for r in table_rows(text)}
    assert rows[(f"`{JACO}`", "Separated + QMP (qmp_dnc)", "mixture")][6:] == [
        "0.02M of the paper's 0.1M [^budget]", "50 % at 0.1M"]
    assert rows[(f"`{JACO}`", "Parameters (mtsac)", "own policy")][6:] == ["2M", "-"]


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_no_runs_is_one_error_line_and_exit_2(tmp_path: Path, make: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "results"
    if make == "empty":
        (folder / JACO / "qmp_dnc" / "s0").mkdir(parents=True)  # no files: not a run
    assert report.main([str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line, = captured.err.splitlines()
    assert line.startswith("report.py: error: ")
    assert ("no usable run" if make == "empty" else "no folder") in line
    assert not (folder / "REPORT.md").exists()


def test_std_is_population_std() -> None:
    row = report.Row(JACO, "qmp_sac", "qmp_sac", "mixture", "mixture", True,
                     [("0", 10.0), ("1", 20.0), ("2", 60.0)], 0, 2e6, "")
    cells = report.row_cells(row, {})
    assert cells[3] == f"30.0 ± {np.std([10.0, 20.0, 60.0]):.1f} %" == "30.0 ± 21.6 %"
    assert cells[6] == "2M" and cells[7] == "-"


def test_readme_block_is_replaced_with_the_table_and_figures(
        sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    before = f"# Title\n\n## Results\n\n{report.README_START}\nold table\n{report.README_END}\n"
    after = "\n## Next\n\ntext\n"
    readme.write_text(before + after)
    assert report.main([str(sample), "--readme", str(readme)]) == 0
    text = readme.read_text()
    head, block = text.split(report.README_START + "\n")
    block, tail = block.split("\n" + report.README_END)
    assert head == "# Title\n\n## Results\n\n" and tail == "\n" + after
    assert "old table" not in block
    # the same rows as REPORT.md, then one image per env with a path relative to the README
    assert table_rows(block) == table_rows((sample / "REPORT.md").read_text())
    assert "\n[^budget]: budget below the paper's" in block
    for env in (JACO, WALKER):
        link = os.path.relpath(sample / "figures" / f"{env}.png", tmp_path)
        assert f"]({link})" in block and (tmp_path / link).exists()
    # a second run leaves the file as it is (the block is replaced, not appended)
    assert report.main([str(sample), "--readme", str(readme)]) == 0
    assert readme.read_text() == text
    capsys.readouterr()


def test_readme_without_markers_is_an_error_and_left_alone(
        sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nno markers here\n")
    assert report.main([str(sample), "--readme", str(readme)]) == 2
    line, = capsys.readouterr().err.splitlines()
    assert line.startswith("report.py: error: ") and "no '<!-- report.py" in line
    assert readme.read_text() == "# Title\n\nno markers here\n"
    assert report.main([str(sample), "--readme", str(tmp_path / "absent.md")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_supplementary_table_of_jaco_full_success(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Jaco's FullSuccessRate gets its own table with the main table's columns, from the runs
    that logged it (mixture and own rows for QMP; a run without it is left out without a
    warning), the reduced budget stated, and no paper value (the paper's are of the main metric);
    the main table is unchanged by it."""
    short = "0.01M of the paper's 2M [^budget]"
    full, own_full = "Evaluation/FullSuccessRate", "Evaluation/p/FullSuccessRate"
    seed_run(tmp_path, JACO, "qmp_dnc", 0, 10, {SUCCESS: [1.0] * 10, OWN: [1.0] * 10,
                                                full: [0.2] * 9 + [0.8], own_full: [0.0] * 10})
    seed_run(tmp_path, JACO, "dnc_sac", 0, 10, {SUCCESS: [0.8] * 10, full: [0.6] * 10})
    seed_run(tmp_path, JACO, "dnc_sac", 1, 10, {SUCCESS: [0.8] * 10})  # logged no FullSuccessRate
    assert report.main([str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
    main, supplementary = (tmp_path / "REPORT.md").read_text().split("## Supplementary metrics")
    assert [row[3:6] for row in table_rows(main)] == [
        ["80.0 ± 0.0 %", "s0 80, s1 80", "0 of 2"], ["100.0 ± 0.0 %", "s0 100", "0 of 1"],
        ["100.0 ± 0.0 %", "s0 100", "0 of 1"]]
    assert "`Evaluation/FullSuccessRate`, episodes that finish their task" in supplementary
    assert table_rows(supplementary) == [
        [f"`{JACO}`", "Separated (dnc_sac)", "own policy", "60.0 ± 0.0 %", "s0 60", "0 of 1",
         short, "-"],
        [f"`{JACO}`", "Separated + QMP (qmp_dnc)", "mixture", "80.0 ± 0.0 %", "s0 80", "0 of 1",
         short, "-"],
        [f"`{JACO}`", "Separated + QMP (qmp_dnc)", "own policy", "0.0 ± 0.0 %", "s0 0", "1 of 1",
         short, "-"],
    ]


def test_no_supplementary_section_without_the_metric(report_text: str) -> None:
    assert "## Supplementary metrics" not in report_text
