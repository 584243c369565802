"""Deterministic evaluation, inline or in a background process.

`Evaluator` runs `episodes_per_task` deterministic episodes of every task on its own environment
instances. Episodes run `copies` at a time per task (copies x N envs in lockstep, one batched
policy call a step), and every evaluation first reseeds its environments from (seed, epoch), so
its result depends only on the network weights and the epoch: it can run in another process, or
again after a resume, and give the same numbers.

`InlineEvaluation` evaluates in the training process. `BackgroundEvaluation` hands the weights to
a worker process, so evaluation of epoch k overlaps training of epoch k + 1 on a second core.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learning.policies.behaviour import Behaviour
from learning.runs.run_logger import episode_metrics
from learning.runs.stopping import stop_signals_ignored
from learning.samplers.sampler import Episode, EpisodeTracker, ObsSplit, TaskVectorEnv


class Evaluator:
    """Deterministic episodes of every task on dedicated evaluation envs."""

    def __init__(
        self,
        envs: Sequence[gym.Env],
        num_tasks: int,
        horizon: int,
        split: ObsSplit,
        episodes_per_task: int,
        discount: float,
        info_metrics: dict[str, tuple[str, str]],
        seed: int,
    ) -> None:
        if len(envs) % num_tasks:
            raise ValueError("evaluation envs must be whole copies of the task set")
        self.num_tasks = num_tasks
        self.copies = len(envs) // num_tasks
        self.venv = TaskVectorEnv(envs, horizon, seed)
        self.split = split
        self.episodes_per_task = episodes_per_task
        self.discount = discount
        self.info_metrics = info_metrics
        self.seed = seed
        copy_of_row = np.arange(len(envs)) // num_tasks
        #: episodes each env row runs: copy c runs episodes c, c + copies, ...
        self._episodes_of_row = np.array(
            [len(range(c, episodes_per_task, self.copies)) for c in copy_of_row]
        )
        self._tasks = np.arange(len(envs)) % num_tasks

    def seeds(self, epoch: int) -> list[int]:
        """Reset seeds of every env row for the evaluation of `epoch`."""
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(self.venv.num_envs)
        return [int(s) for s in state]

    def run(self, behaviour: Behaviour, epoch: int) -> list[Episode]:
        """The evaluation's episodes, sorted by task."""
        venv, n, c = self.venv, self.num_tasks, self.copies
        venv.reset_all(self.seeds(epoch))
        tracker = EpisodeTracker(venv.num_envs, self.discount, self.info_metrics, self._tasks)
        remaining = self._episodes_of_row.copy()
        while remaining.any():
            active = remaining > 0
            obs = torch.from_numpy(self.split(venv.obs)).view(c, n, -1)
            actions, _ = behaviour.act(obs, venv.steps_in_episode.reshape(c, n), True)
            step = venv.step(actions.reshape(c * n, -1), active)
            tracker.record(step, active)
            remaining -= step.ended
        return sorted(tracker.pop_finished(), key=lambda e: e.task)

    def metrics(self, behaviours: dict[str, Behaviour], epoch: int,
                extra_names: Sequence[str]) -> dict[str, float]:
        """The logged evaluation metrics of every behaviour, under its prefix."""
        out: dict[str, float] = {}
        for prefix, behaviour in behaviours.items():
            episodes = self.run(behaviour, epoch)
            for name, value in episode_metrics(episodes, extra_names).items():
                out[f"{prefix}/{name}"] = value
            for k in range(self.num_tasks):
                own = [e for e in episodes if e.task == k]
                for name, value in episode_metrics(own, extra_names).items():
                    out[f"{prefix}/Task{k}/{name}"] = value
            out[f"{prefix}/Iteration"] = epoch
        return out

    def close(self) -> None:
        self.venv.close()


def evaluation_copies(episodes_per_task: int, num_tasks: int, limit: int) -> int:
    """How many episodes per task to run side by side: enough to batch the policy calls, at most
    `limit` (the env family's choice) and about 64 envs in all."""
    return max(1, min(episodes_per_task, limit, 64 // num_tasks))


class InlineEvaluation:
    """Evaluates in the training process when asked."""

    background = False

    def __init__(self, evaluator: Evaluator, behaviours: dict[str, Behaviour],
                 extra_names: Sequence[str]) -> None:
        self.evaluator = evaluator
        self.behaviours = behaviours
        self.extra_names = list(extra_names)
        self._result: dict[str, float] | None = None

    @property
    def check(self) -> Callable[[], None] | None:
        """Called before every evaluation step (the trainer checks for a stop signal)."""
        return self.evaluator.venv.before_step

    @check.setter
    def check(self, hook: Callable[[], None] | None) -> None:
        self.evaluator.venv.before_step = hook

    def start(self, epoch: int) -> None:
        self._result = self.evaluator.metrics(self.behaviours, epoch, self.extra_names)

    def busy(self) -> bool:
        """Inline evaluation is done when start() returns."""
        return False

    def finish(self) -> dict[str, float]:
        assert self._result is not None, "finish() without start()"
        result, self._result = self._result, None
        return result

    def close(self) -> None:
        self.evaluator.close()


class BackgroundEvaluation:
    """Evaluates in a worker process on copies of the networks' weights.

    `worker` is a module-level function (picklable for the spawn start method) that builds the
    evaluator from `worker_args` and serves requests from its end of the pipe.
    """

    background = True

    def __init__(self, modules: dict[str, torch.nn.Module],
                 worker: Callable[..., None], worker_args: tuple[Any, ...]) -> None:
        self.modules = modules
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=worker, args=(child, *worker_args), daemon=True)
        with stop_signals_ignored():  # inherited: the worker ignores them from its start
            self._process.start()
        child.close()
        self._waiting = False
        #: called while waiting for the worker (the trainer checks for a stop signal)
        self.check: Callable[[], None] | None = None

    def start(self, epoch: int) -> None:
        # numpy arrays are pickled by value; tensors would be shared through file descriptors
        # served by a helper thread, which prints a traceback if the worker is killed mid-way
        weights = {name: {k: v.detach().numpy() for k, v in m.state_dict().items()}
                   for name, m in self.modules.items()}
        self._conn.send((epoch, weights))
        self._waiting = True

    def busy(self) -> bool:
        """Whether the worker is still computing a requested evaluation."""
        return self._waiting and not self._conn.poll()

    def finish(self) -> dict[str, float]:
        assert self._waiting, "finish() without start()"
        while self.check is not None and not self._conn.poll(0.05):
            self.check()
        self._waiting = False
        try:
            kind, payload = self._conn.recv()
        except EOFError as error:
            raise RuntimeError("the evaluation worker process died") from error
        if kind == "error":
            raise RuntimeError(f"evaluation failed in the worker process:\n{payload}")
        return payload

    def close(self) -> None:
        """Stop the worker: at once if it is still computing (a stopped run redoes that
        evaluation when resumed), else after it has read the stop request."""
        if self._process.is_alive():
            if self.busy():  # SIGKILL: the worker ignores SIGTERM (see learning.runs.stopping)
                self._process.kill()
            else:
                try:
                    self._conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()
        self._conn.close()


def serve_evaluations(conn: Any, evaluation: InlineEvaluation,
                      modules: dict[str, torch.nn.Module]) -> None:
    """Worker loop: load the weights of each request, evaluate, answer; stop on None."""
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the training process is gone
            break
        if request is None:
            break
        epoch, weights = request
        try:
            for name, module in modules.items():
                module.load_state_dict({k: torch.from_numpy(v)
                                        for k, v in weights[name].items()})
            evaluation.start(epoch)
            answer: tuple[str, Any] = ("ok", evaluation.finish())
        except Exception:  # report, keep serving: the trainer decides what to do
            answer = ("error", traceback.format_exc())
        try:
            conn.send(answer)
        except (BrokenPipeError, OSError):  # the training process is gone (killed)
            break
    evaluation.close()
