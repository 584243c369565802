"""Command-line entry point: `python run.py METHOD --env=ENV [flags]`.

Run `python run.py --help` for every flag. Bad input prints one `run.py: error: ...` line and exits
with code 2; nothing is written in that case.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from experiment_utils import ExperimentError, make_log_dir, resolve_config


def _error(message: object) -> int:
    print(f"run.py: error: {message}", file=sys.stderr)
    return 2


def _trained(train: Callable[[], Any], log_dir: str) -> tuple[Any, int | None]:
    """(train(), None), or (None, exit code) after one line for a run, new or resumed, that was
    interrupted or diverged."""
    try:
        return train(), None
    except KeyboardInterrupt:
        print(f"\ninterrupted; logs and the last checkpoint are in {log_dir}", file=sys.stderr)
        return None, 130
    except FloatingPointError as error:
        print(f"run.py: training diverged: {error}; the last good checkpoint is kept in "
              f"{log_dir}", file=sys.stderr)
        return None, 1


def _resume(argv: list[str]) -> int:
    """`run.py resume --snapshot_dir RUN_DIR [--n_epochs N]`: continue a stopped run."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise ExperimentError(message + " (resume takes --snapshot_dir and --n_epochs only;"
                                  " a run's other settings cannot change)")

    parser = Parser(prog="run.py resume")
    parser.add_argument("--snapshot_dir", required=True, help="the run folder to continue")
    parser.add_argument("--n_epochs", type=int, help="train up to this many epochs in total")
    try:
        args = parser.parse_args(argv)
        from garage_experiments import final_summary, resume_experiment

        result, code = _trained(
            lambda: resume_experiment(args.snapshot_dir, n_epochs=args.n_epochs),
            args.snapshot_dir)
    except ExperimentError as error:
        return _error(error)
    if code is not None:
        return code
    config, metrics = result
    print(final_summary(metrics, config.num_tasks, config.spec.qmp))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["resume"]:
        return _resume(argv[1:])
    try:
        config = resolve_config(argv)
        log_dir = make_log_dir(config)
    except ExperimentError as error:
        return _error(error)

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
