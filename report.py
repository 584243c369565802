"""Reproduction report: the final values of finished (and running) runs next to the paper's.

Usage::

    python report.py [RESULTS_DIR] [--out FILE] [--readme README.md] [--paper CSV]

Reads the runs laid out as `RESULTS_DIR/ENV/METHOD/sSEED/{progress.csv,config.yaml}` (default
RESULTS_DIR: `results`; folders of any other layout, such as `results/short_runs`, are not read)
and writes FILE (default `RESULTS_DIR/REPORT.md`): one table row per env, method and evaluated
policy with the final value as mean +- std over seeds, each seed's value, the seeds that learned
nothing, the env-step budget and the paper's digitised value (CSV, default
`results/paper_results.csv` next to this file). It also draws one learning-curve figure per env,
`RESULTS_DIR/figures/ENV.png` (plot.py's curves, plus the paper's final values). The report states
how each number is computed. With --readme, the same table and the figures also replace what lies
between README_START and README_END in that file (README.md's results section). Prints the path
written; errors are one `report.py: error: ...` line with exit code 2.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import plot

PROG = "report.py"
PAPER_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                         "paper_results.csv")
#: the paper's names of the envs
ENV_NAMES = {
    "JacoReachMT5-v1": "Multistage Reacher", "MazeLarge-10-v0": "Maze Navigation",
    "MetaWorldCDS-v1": "Meta-World CDS", "KitchenMTEasy-v0": "Kitchen",
    "MetaWorldMT10-v2": "Meta-World MT10", "MetaWorldMT50-v2": "Meta-World MT50",
    "Walker2dMT4-v0": "Walker2D",
}
BUDGET_NOTE = "[^budget]"
#: per env, a second evaluation metric reported in its own table: (metric, what it counts)
SUPPLEMENTARY = {
    "JacoReachMT5-v1": ("FullSuccessRate", "episodes that finish their task: all three "
                        "sub-goals, or the stay task's 90 steps near its goal (the main table's "
                        "success, the original's, counts an episode that reaches any sub-goal)"),
}
#: The lines of a README between which `--readme` writes the table and figures.
README_START = "<!-- report.py --readme: start -->"
README_END = "<!-- report.py --readme: end -->"


class ReportError(Exception):
    """A problem that stops the report (one line, exit code 2)."""


@dataclass
class Paper:
    success: float  # percent
    env_steps: float
    note: str


@dataclass
class Row:
    """One table row: a group of runs (seeds) and one evaluated policy."""

    env: str
    name: str  # the group's name (plot.group_runs): its method, plus differing settings
    method: str
    requested: str  # the policy asked of plot.evaluation_column: "mixture" or "own"
    shows: str  # what the values show: plot.MIXTURE_SHOWN or plot.OWN_SHOWN
    success: bool  # a success rate (in percent) rather than a return
    finals: list[tuple[str, float]]  # (seed, final value)
    nothing: int  # seeds with success exactly 0 at every evaluation of the final window
    budget: float  # the smallest over seeds of TotalEnvSteps at the last row
    progress: str  # "" or "(in progress: epoch E of N)"
    main_metric: bool = True  # the env's main metric, the one the paper's values are of


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def load_paper(path: str) -> dict[tuple[str, str], Paper]:
    """(env, method) -> the paper's value, from a CSV whose lines starting with # are comments."""
    try:
        with open(path, newline="") as f:
            lines = [line for line in f if not line.lstrip().startswith("#")]
        return {(row["env"], row["method"]): Paper(float(row["paper_success"]),
                                                    float(row["paper_env_steps"]),
                                                    row.get("note") or "")
                for row in csv.DictReader(lines)}
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise ReportError(f"{path}: malformed ({type(error).__name__}: {error})") from None


def find_runs(results_dir: str) -> list[plot.Run]:
    """The runs at RESULTS_DIR/ENV/METHOD/sSEED, by env, method and seed number; unreadable ones
    are skipped with a warning."""
    if not os.path.isdir(results_dir):
        raise ReportError(f"no folder {results_dir}")
    runs = []
    for env in sorted(os.scandir(results_dir), key=lambda e: e.name):
        for method in sorted(os.scandir(env.path), key=lambda e: e.name) if env.is_dir() else []:
            seeds = os.scandir(method.path) if method.is_dir() else []
            for seed in sorted(seeds, key=lambda e: (len(e.name), e.name)):
                files = [os.path.join(seed.path, n) for n in ("progress.csv", "config.yaml")]
                if not (re.fullmatch(r"s\d+", seed.name) and all(map(os.path.isfile, files))):
                    continue
                try:
                    runs.append(plot.load_run(seed.path))
                except plot.RunError as error:
                    _warn(f"skipping {seed.path}: {error}")
    if not runs:
        raise ReportError(f"no usable run under {results_dir} (expected "
                          "ENV/METHOD/sSEED/ folders holding progress.csv and config.yaml)")
    return runs


def final_window(run: plot.Run, column: str) -> np.ndarray:
    """`column`'s values at the evaluations in the last tenth of the run's E logged epochs (epochs
    E - ceil(E/10) to E - 1), or at the last evaluation when that stretch has none."""
    if column not in run.columns:
        raise plot.RunError(f"no column {column}")
    epochs, values = run.columns[plot.EPOCH], run.columns[column]
    evaluated = np.isfinite(epochs) & np.isfinite(values)
    if not evaluated.any():
        raise plot.RunError(f"no finite value of {column}")
    window = evaluated & (epochs >= run.num_epochs - math.ceil(run.num_epochs / 10))
    if not window.any():
        window = evaluated & (epochs == epochs[evaluated].max())
    return values[window]


def _budget(run: plot.Run) -> float:
    steps = run.columns[plot.STEPS]
    return float(steps[np.isfinite(steps)][-1])


def _progress(runs: Sequence[plot.Run]) -> str:
    """The mark of a group with an unfinished seed (fewer rows than n_epochs), from its least
    advanced one."""
    unfinished = [r for r in runs if r.n_epochs is not None and r.num_rows < r.n_epochs]
    if not unfinished:
        return ""
    run = min(unfinished, key=lambda r: r.num_rows)
    return f"(in progress: epoch {run.num_rows} of {run.n_epochs})"


def make_row(env: str, name: str, runs: Sequence[plot.Run], metric: str, policy: str) -> Row:
    """The row of evaluation metric `metric` (e.g. "SuccessRate") under `policy` for one group."""
    success = metric.endswith("SuccessRate")
    finals, nothing, shown = [], 0, set()
    for run in runs:
        column, what = plot.evaluation_column(run, metric, policy)
        try:
            values = final_window(run, column)
        except plot.RunError as error:
            _warn(f"{env} {name} seed {run.seed}: left out of the {policy} row ({error})")
            continue
        shown.add(what)
        finals.append((run.seed, float(values.mean()) * (100.0 if success else 1.0)))
        nothing += int(success and bool((values == 0).all()))
    return Row(env, name, plot.group_method(runs), policy, " / ".join(sorted(shown)) or "-",
               success, finals, nothing, min(_budget(run) for run in runs), _progress(runs),
               metric == plot.resolve_metric(plot.default_metric(env), None)[0])


def group_rows(env: str, name: str, runs: Sequence[plot.Run], metric: str) -> list[Row]:
    """A group's rows of `metric`: QMP methods get a mixture and an own-policy row."""
    policies = plot.POLICIES if plot.is_qmp(plot.group_method(runs)) else ("mixture",)
    return [make_row(env, name, runs, metric, policy) for policy in policies]


def report_rows(groups: dict[str, dict[str, list[plot.Run]]]) -> list[Row]:
    """Rows of every env and group, in each env's main metric."""
    rows = []
    for env, named in groups.items():
        metric, _ = plot.resolve_metric(plot.default_metric(env), None)
        for name, runs in named.items():
            rows += group_rows(env, name, runs, metric)
    return rows


def supplementary_rows(groups: dict[str, dict[str, list[plot.Run]]]) -> list[Row]:
    """Rows of each env's SUPPLEMENTARY metric, from the runs that logged it."""
    rows = []
    for env, named in groups.items():
        if env not in SUPPLEMENTARY:
            continue
        metric = SUPPLEMENTARY[env][0]
        for name, runs in named.items():
            logged = [run for run in runs if plot.EVALUATION + metric in run.columns]
            if logged:
                rows += group_rows(env, name, logged, metric)
    return rows


def env_budget(paper: dict[tuple[str, str], Paper], env: str) -> float | None:
    """The paper's budget on env (its figure's x-axis end), None when the CSV has no such env."""
    steps = [value.env_steps for (e, _), value in paper.items() if e == env]
    return max(steps) if steps else None


def steps_text(steps: float) -> str:
    return f"{steps / 1e6:.4g}M"


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def row_cells(row: Row, paper: dict[tuple[str, str], Paper]) -> list[str]:
    label, _, _ = plot.method_style(row.method, {})
    method = f"{label} ({row.name})" + (f" {row.progress}" if row.progress else "")
    unit = " %" if row.success else " (return)"
    if row.finals:
        values = np.array([value for _, value in row.finals])
        final = f"{values.mean():.1f} ± {values.std(ddof=0):.1f}{unit}"
    else:
        final = "no data"
    seeds = ", ".join(f"s{seed} {_number(value)}" for seed, value in row.finals) or "-"
    nothing = f"{row.nothing} of {len(row.finals)}" if row.success else "-"
    budget = steps_text(row.budget)
    full = env_budget(paper, row.env)
    if full is not None and row.budget < full:
        budget += f" of the paper's {steps_text(full)} {BUDGET_NOTE}"
    compared = row.main_metric and row.requested == "mixture"
    value = paper.get((row.env, row.method)) if compared else None
    reference = f"{_number(value.success)} % at {steps_text(value.env_steps)}" if value else "-"
    return [f"`{row.env}`", method, row.shows, final, seeds, nothing, budget, reference]


def mark_paper(fig: Figure, panel: plot.Panel, paper: dict[tuple[str, str], Paper]) -> None:
    """Draws each method's paper value as a horizontal tick at the paper's budget, in the
    method's colour, on the figure's one panel."""
    if not panel.metric.endswith("SuccessRate"):
        return
    ax = fig.axes[0]
    # the x scale draw_panel used: from the longest curve
    scale, _ = plot._step_scale(max(float(c.x[-1]) for c in panel.curves.values()))
    marked = False
    for name in panel.curves:
        value = paper.get((panel.env, panel.method(name)))
        if value is not None:
            _, color, _ = plot.method_style(panel.method(name), {})
            ax.plot([value.env_steps / scale], [value.success / 100.0], marker="_",
                    markersize=18, markeredgewidth=3, color=color, linestyle="none")
            marked = True
    if marked:
        tick = Line2D([], [], color="black", marker="_", markersize=12, markeredgewidth=3,
                      linestyle="none")
        ax.legend([tick], ["paper's final value (±3 points)"], loc="best",
                  fontsize="small")


def write_figures(groups: dict[str, dict[str, list[plot.Run]]],
                  paper: dict[tuple[str, str], Paper], out_dir: str) -> dict[str, str]:
    """env -> the path of its curves figure (plot.py's, with the paper's values marked)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create {out_dir}: {error.strerror}") from None
    written = {}
    for panel in plot.build_panels(groups, None, 1):
        fig = plot.curves_figure([panel], 1)
        mark_paper(fig, panel, paper)
        written[panel.env] = plot.save(fig, out_dir, plot._slug(panel.env), exts=("png",))[0]
    return written


def render(rows: Sequence[Row], groups: dict[str, dict[str, list[plot.Run]]],
           paper: dict[tuple[str, str], Paper], figures: dict[str, str], out_dir: str) -> str:
    """The text of REPORT.md; figure links are relative to `out_dir`."""
    lines = [
        "# Reproduction report", "",
        "Written by `python report.py`, from the runs in `ENV/METHOD/sSEED/` folders.", "",
        "- **final**: a run's final value is the mean of `Evaluation/SuccessRate` (own-policy "
        "rows of QMP methods: `Evaluation/p/SuccessRate`; Walker envs: "
        "`Evaluation/AverageReturn`) over the evaluations in the last tenth of the run's E logged "
        "epochs (epochs E - ceil(E/10) to E - 1; the last evaluation if none is there). Success "
        "in percent. Shown: mean ± std over seeds, std with ddof=0 (population std).",
        "- **policy**: `mixture` is the Q-switch acting (QMP methods' `Evaluation/` keys); "
        "`own policy` is each task's own policy (QMP methods' `Evaluation/p/` keys; other methods "
        "evaluate only their own policy, under `Evaluation/`).",
        "- **learned nothing**: seeds whose success is exactly 0 at every evaluation of that last "
        "tenth.",
        "- **budget**: `TotalEnvSteps` at a run's last row, the smallest over the seeds.",
        "- **paper**: the last plotted point of the mean curve in the paper's main figure, read "
        "off the image (±3 points), at the paper's budget (`results/paper_results.csv`); shown "
        "on each method's `Evaluation/` row (QMP: the mixture row).", "",
        "## Environments", "",
    ]
    for env, named in groups.items():
        full = env_budget(paper, env)
        runs = sum(len(group) for group in named.values())
        reference = (f"paper budget {steps_text(full)} env steps" if full is not None
                     else "no paper values")
        figure = (f"; figure: [{os.path.basename(figures[env])}]"
                  f"({os.path.relpath(figures[env], out_dir)})" if env in figures else "")
        lines.append(f"- `{env}` ({ENV_NAMES.get(env, env)}): {len(named)} method group"
                     f"{'s' if len(named) != 1 else ''}, {runs} run{'s' if runs != 1 else ''}, "
                     f"metric `{plot.default_metric(env)}`; {reference}{figure}")
    lines += ["", "## Final values", "", *table_lines(rows, paper)]
    extra = supplementary_rows(groups)
    if extra:
        lines += ["", "## Supplementary metrics", "",
                  "The same columns for a second metric; the paper reports none of these.", ""]
        lines += [f"- `{env}`: `Evaluation/{metric}`, {what}." for env, (metric, what)
                  in SUPPLEMENTARY.items() if any(row.env == env for row in extra)]
        lines += ["", *table_lines(extra, paper)]
    return "\n".join(lines) + "\n"


def table_lines(rows: Sequence[Row], paper: dict[tuple[str, str], Paper]) -> list[str]:
    """The final-values table (markdown), with the note on short budgets when a row has one."""
    header = ["env", "method", "policy", "final (mean ± std)", "per seed", "learned nothing",
              "budget (env steps)", "paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table = [row_cells(row, paper) for row in rows]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    if any(BUDGET_NOTE in cells[6] for cells in table):
        lines += ["", f"{BUDGET_NOTE}: budget below the paper's: these runs stopped at fewer env "
                  "steps than the paper's curves end, so their final values are not measured at "
                  "the paper's budget."]
    return lines


def readme_block(rows: Sequence[Row], paper: dict[tuple[str, str], Paper],
                 figures: dict[str, str], readme_dir: str) -> str:
    """What goes between README's report markers: the table and every env's figure."""
    lines = table_lines(rows, paper)
    for env, path in figures.items():
        lines += ["", f"![{env}: curves per method, the paper's final values marked]"
                  f"({os.path.relpath(path, readme_dir)})"]
    return "\n".join(lines)


def update_readme(path: str, block: str) -> None:
    """Replace the text between README_START and README_END in `path` with `block`; the file is
    left as it was when a marker is missing or the write fails."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror}") from None
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ReportError(f"{path} has no '{README_START}' ... '{README_END}' block to fill")
    new = text[:start + len(README_START)] + "\n" + block + "\n" + text[end:]
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(new)
        os.replace(tmp, path)
    except OSError as error:
        raise ReportError(f"cannot write {path}: {error.strerror}") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", nargs="?", default="results", metavar="RESULTS_DIR",
                        help="folder of ENV/METHOD/sSEED run folders (default: results)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="report file (default: RESULTS_DIR/REPORT.md)")
    parser.add_argument("--readme", default=None, metavar="FILE",
                        help=f"also write the table and figures into FILE, between the lines "
                        f"'{README_START}' and '{README_END}' (e.g. README.md)")
    parser.add_argument("--paper", default=PAPER_CSV, metavar="CSV",
                        help="the paper's values (default: results/paper_results.csv)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or os.path.join(args.results_dir, "REPORT.md")
    try:
        paper = load_paper(args.paper)
        groups = plot.group_runs(find_runs(args.results_dir))
        figures = write_figures(groups, paper, os.path.join(args.results_dir, "figures"))
        rows = report_rows(groups)
        text = render(rows, groups, paper, figures, os.path.dirname(os.path.abspath(out)))
        try:
            with open(out, "w") as f:
                f.write(text)
        except OSError as error:
            raise ReportError(f"cannot write {out}: {error.strerror}") from None
        if args.readme is not None:
            update_readme(args.readme, readme_block(
                rows, paper, figures, os.path.dirname(os.path.abspath(args.readme))))
    except (ReportError, plot.PlotError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
