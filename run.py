"""Command-line entry point: `python run.py METHOD --env=ENV [flags]`.

Run `python run.py --help` for every flag. Bad input prints one `run.py: error: ...` line and exits
with code 2; nothing is written in that case.
"""

from __future__ import annotations

import os
import sys

from experiment_utils import ExperimentError, make_log_dir, resolve_config


def _error(message: object) -> int:
    print(f"run.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        config = resolve_config(argv)
        log_dir = make_log_dir(config)
    except ExperimentError as error:
        return _error(error)

    from garage_experiments import final_summary, run_experiment

    try:
        metrics = run_experiment(config, log_dir)
    except ExperimentError as error:  # found while building (e.g. buffers too large for RAM)
        if not os.listdir(log_dir):
            os.rmdir(log_dir)
        return _error(error)
    except KeyboardInterrupt:
        print(f"\ninterrupted; logs and the last snapshot are in {log_dir}", file=sys.stderr)
        return 130
    except FloatingPointError as error:
        print(f"run.py: training diverged: {error}; last snapshot kept in {log_dir}",
              file=sys.stderr)
        return 1
    print(final_summary(metrics, config.num_tasks, config.spec.qmp))
    print(f"logs: {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
