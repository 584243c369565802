"""Command-line entry point: `python run.py METHOD --env=ENV [flags]`.

Run `python run.py --help` for every flag. Bad input prints one `run.py: error: ...` line and exits
with code 2; nothing is written in that case. `python run.py` alone prints the usage, the methods
and the env ids (also exit code 2).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from experiment_utils import ExperimentError, make_log_dir, methods_overview, resolve_config


def _error(message: object) -> int:
    print(f"run.py: error: {message}", file=sys.stderr)
    return 2


def _trained(train: Callable[[], Any], log_dir: str) -> tuple[Any, int | None]:
    """(train(), None), or (None, exit code) after one line for a run, new or resumed, that was
    stopped or diverged."""
    from learning.runs.stopping import RunStopped

    try:
        return train(), None
    except RunStopped as stop:
        name = signal.Signals(stop.signum).name
        if stop.checkpoint is None:
            print(f"\nstopped by {name} before epoch 0 finished: nothing was checkpointed; "
                  f"`python run.py resume --snapshot_dir {log_dir}` starts the run over",
                  file=sys.stderr)
        else:
            wrote = f"written in {stop.seconds:.1f} s" if stop.seconds else "kept"
            print(f"\nstopped by {name}: the checkpoint of epoch {stop.epoch} ({wrote}) is "
                  f"{stop.checkpoint}; continue with `python run.py resume --snapshot_dir "
                  f"{log_dir}`", file=sys.stderr)
        return None, 128 + stop.signum
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once
        print(f"\ninterrupted at once; the newest whole checkpoint in {log_dir} (if any) is "
              "what resume continues from", file=sys.stderr)
        return None, 130
    except FloatingPointError as error:
        print(f"run.py: training diverged: {error}; the last good checkpoint is kept in "
              f"{log_dir}", file=sys.stderr)
        return None, 1


def _resume(argv: list[str]) -> int:
    """`run.py resume --snapshot_dir RUN_DIR [--n_epochs N [--shorten]] [--torch_threads T]`:
    continue a stopped run from its newest checkpoint."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise ExperimentError(message + " (resume takes --snapshot_dir, --n_epochs, "
                                  "--shorten and --torch_threads only; a run's other "
                                  "settings cannot change)")

    parser = Parser(prog="run.py resume", allow_abbrev=False,
                    description="Continue a stopped run from its newest checkpoint (a run "
                    "stopped before its first checkpoint starts over from its config.yaml).")
    parser.add_argument("--snapshot_dir", required=True, help="the run folder to continue")
    parser.add_argument("--n_epochs", type=int,
                        help="train up to this many epochs in total (extends a run)")
    parser.add_argument("--shorten", action="store_true",
                        help="allow --n_epochs below the run's own number of epochs")
    parser.add_argument("--torch_threads", type=int,
                        help="torch threads from now on (e.g. on another machine); not a "
                        "result setting, but the summation order of a few ops may change, so "
                        "the rest of the run is not bit-identical to one that kept its threads")
    try:
        args = parser.parse_args(argv)
        from garage_experiments import NothingToDo, final_summary, resume_experiment

        try:
            result, code = _trained(
                lambda: resume_experiment(args.snapshot_dir, n_epochs=args.n_epochs,
                                          shorten=args.shorten,
                                          torch_threads=args.torch_threads),
                args.snapshot_dir)
        except NothingToDo as done:
            print(f"run.py resume: {done}")
            return 0
    except ExperimentError as error:
        return _error(error)
    if code is not None:
        return code
    config, metrics = result
    print(final_summary(metrics, config.num_tasks, config.spec.qmp))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # an error too, but the one place that shows what there is to run
        print(methods_overview("no METHOD given"), file=sys.stderr)
        return 2
    if argv[:1] == ["resume"]:
        return _resume(argv[1:])
    notes: list[str] = []
    try:
        config = resolve_config(argv, notes)
        log_dir = make_log_dir(config)
    except ExperimentError as error:
        return _error(error)
    for note in notes:  # e.g. the default env taken
        print(note, flush=True)

    from garage_experiments import final_summary, run_experiment

    try:
        metrics, code = _trained(lambda: run_experiment(config, log_dir), log_dir)
    except ExperimentError as error:  # found while building (e.g. buffers too large for RAM)
        if not os.listdir(log_dir):
            os.rmdir(log_dir)
        return _error(error)
    if code is not None:
        return code
    print(final_summary(metrics, config.num_tasks, config.spec.qmp))
    print(f"logs: {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
