"""How long a stopped run takes to write its checkpoint: the replay buffers dominate it.

When SIGINT or SIGTERM stops a run, the trainer rolls its buffers back to the end of the last
finished epoch and writes them with the rest of its state (see learning/runs/stopping.py). This
times that write for buffers filled to the paper's capacity (1e6 transitions per task, the Separated
and Data methods' layout) at each env's network-input and action sizes: the copy of the filled
part (`state_dict`), then `torch.save` with fsync into a run folder, as the checkpoint writer
does. The buffers are filled with constant values (the write does not depend on them).

    python bench/stop_checkpoint.py [--envs NAME ...] [--capacity C] [--dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time

from common import write_table

from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.runs.checkpoint import save_checkpoint

#: env -> (tasks, network input size, action size)
SIZES = {
    "JacoReachMT5-v1": (5, 23, 6),
    "MazeLarge-10-v0": (10, 4, 2),
    "Walker2dMT4-v0": (4, 21, 6),
    "MetaWorldCDS-v1": (4, 25, 4),
    "KitchenMTEasy-v0": (10, 60, 9),
    "MetaWorldMT10-v2": (10, 49, 4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["JacoReachMT5-v1", "KitchenMTEasy-v0",
                                                      "MetaWorldMT10-v2"], choices=list(SIZES))
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--out", default="stop_checkpoint", help="name of the results table")
    args = parser.parse_args()
    rows = []
    for env in args.envs:
        n, obs_dim, act_dim = SIZES[env]
        buffer = MultiTaskReplayBuffer(n, args.capacity, obs_dim, act_dim, seed=0)
        for name in buffer.array_names:
            getattr(buffer, name).fill(1)
        buffer.sizes[:] = args.capacity
        size = MultiTaskReplayBuffer.bytes_needed(n, args.capacity, obs_dim, act_dim)
        with tempfile.TemporaryDirectory(dir=args.dir) as run_dir:
            start = time.perf_counter()
            state = {"buffer": buffer.state_dict()}
            copied = time.perf_counter()
            path = save_checkpoint(run_dir, 0, state)
            written = time.perf_counter()
            file_gib = os.path.getsize(path) / 2**30
        del state, buffer
        gc.collect()
        rows.append([env, n, f"{size / 2**30:.2f}", f"{file_gib:.2f}",
                     round(copied - start, 2), round(written - copied, 2),
                     round(written - start, 2)])
        print(rows[-1], flush=True)
    write_table(args.out, ["env", "tasks", "buffers GiB", "file GiB", "copy s", "write s",
                           "stop checkpoint s"], rows)


if __name__ == "__main__":
    main()
