"""What each sampler allocates once a policy has learned: collection rounds with a run's trained
networks under `--sampler_type local` and `mt_local`.

Untrained policies run every episode to the horizon, so on most benchmarks both samplers then
give every task the same steps. Trained policies end episodes early (Jaco's reach tasks terminate
after their third sub-goal, the stay task after 90 success steps), and the samplers differ: under
`local` (the original's default) the cycle from task 0 goes on until the round is full, so the
tasks before the short episodes get more data and gradient steps. This loads the newest
checkpoint of a run folder, and for each sampler runs `--rounds` rounds of the run's batch_size
with its behaviour (own policies or the Q-switch), starting each sampler from the checkpoint's
state. It prints each round's env steps and gradient steps per task.

    python bench/trained_allocation.py --run RUN_DIR [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace

from common import write_table

from experiment_utils import load_run_config
from garage_experiments import build_trainer
from learning.runs.checkpoint import checkpoint_paths, load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder with a checkpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="trained_allocation", help="name of the results table")
    args = parser.parse_args()
    paths = checkpoint_paths(args.run)
    if not paths:
        sys.exit(f"trained_allocation.py: error: {args.run} has no checkpoint")
    state = load_checkpoint(paths[-1])
    base = load_run_config(args.run)
    rows = []
    for sampler in ("local", "mt_local"):
        config = replace(base, sampler_type=sampler, eval_in_background=False)
        with tempfile.TemporaryDirectory() as log_dir:
            trainer = build_trainer(config, log_dir, stdout=False)
            try:
                trainer.load_state_dict(state)
                learner, collector = trainer.learner, trainer.collector
                for r in range(args.rounds):
                    samples = collector.collect(config.batch_size)
                    steps = learner.gradient_steps_per_task(samples)
                    rows.append([config.env, config.method, sampler, r + 1,
                                 " / ".join(map(str, samples.tolist())), int(samples.sum()),
                                 " / ".join(map(str, steps.tolist()))])
                    print(rows[-1], flush=True)
            finally:
                trainer.close()
    write_table(args.out, ["env", "method", "sampler", "round", "env steps per task",
                           "round steps", "gradient steps per task"], rows)


if __name__ == "__main__":
    main()
