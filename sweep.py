"""Run a grid of runs (env x method x seed), here or on a Ray cluster, resumably.

    python sweep.py --env ENV [ENV ...] --method M [M ...] --seed S [S ...] [--out DIR]
                    [--jobs K] [--threads T] [--retries R] [--ray [ADDRESS]]
                    [--results RESULTS] [-- FLAGS]

Every run has a fixed folder `DIR/ENV/METHOD/sSEED` (default DIR: data/sweep) and is a
`run.py` process, so calling the same command again carries the grid on: finished runs are
skipped, checkpointed ones continue with `run.py resume`, runs that stopped before their first
checkpoint start over (run.py moves their partial files aside, never deletes them). FLAGS after
`--` go to every run; a folder that was started with other settings is refused, not touched.
A larger `--n_epochs` than a run was started with extends it.

Locally, K runs go at a time (default: CPU cores / T, at T = 2 torch threads each: the faster
layout in runs per hour, see docs/sweep.md). With `--ray`, every run is a Ray task asking for T
CPUs, on the cluster at ADDRESS or on a local Ray instance; a run that fails or whose worker dies
is retried and resumes from its checkpoint. Run folders must then be on storage that every node
sees, with this checkout at the same path on every node.

A table of the runs (state, epoch, env steps, last evaluation, ETA) is kept up to date, and a
summary is printed at the end. Ctrl-C (or SIGTERM) stops every run at its next checkpoint; the
same command carries on. Each run's output goes to `DIR/ENV/METHOD/sSEED.log`. With
`--results RESULTS`, each finished run's small files (progress.csv and config.yaml, which records
the commit of the code that ran it) are copied to `RESULTS/ENV/METHOD/sSEED/`, ready to commit;
a copy there that differs is left as it is, with a warning.

Exit codes: 0 every run finished; 1 a run failed; 2 bad input (nothing started); 128+signal
when stopped.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import fcntl
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.abspath(__file__))
PROG = "sweep.py"
DEFAULT_OUT = os.path.join("data", "sweep")
#: torch threads per run: on 2 cores, one run at two threads finishes more runs per hour than
#: two runs at one thread each (bench/runs_per_hour.py, docs/sweep.md)
DEFAULT_THREADS = 2
#: settings a run folder may differ in from the sweep's request: where it is, how fast it runs
#: (resume keeps the run's own), and how long (a longer request extends it)
MAY_DIFFER = ("log_dir", "torch_threads", "n_epochs", "replay_buffer_size")
#: exit codes of run.py
STOPPED_CODES = {128 + int(s) for s in (signal.SIGINT, signal.SIGTERM)}
NOT_STARTED = -1  # a Ray task that found its stop asked for before it began
LOCK_WAIT_RAY = 120.0  # seconds a Ray retry waits for the process of the failed try to stop
STOP_WAIT = 300.0  # seconds the Ray driver waits for its runs to stop at their checkpoints


class SweepError(Exception):
    """Bad input, reported as one line before anything starts."""


@dataclass
class Run:
    """One cell of the grid and what is known of it."""
    env: str
    method: str
    seed: int
    folder: str
    flags: list[str]  # run.py flags of a new run (besides METHOD, --env, --seed, --log_dir)
    n_epochs: int
    threads: int  # torch threads, of a new run and of a resumed one from then on
    started_epochs: int | None = None  # n_epochs of the folder's config.yaml, if it has one
    state: str = "queued"
    tries: int = 0
    code: int | None = None
    proc: Any = None
    lock: Any = None
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.env}/{self.method}/s{self.seed}"

    @property
    def log_path(self) -> str:
        return self.folder + ".log"

    @property
    def lock_path(self) -> str:
        return self.folder + ".lock"

    @property
    def stop_path(self) -> str:
        return self.folder + ".stop"


# ---------------------------------------------------------------------------------------------
# the grid and its folders


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    flags: list[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, flags = argv[:k], argv[k + 1:]

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise SweepError(message)

    p = Parser(prog=PROG, allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--env", nargs="+", required=True, help="env ids")
    p.add_argument("--method", nargs="+", required=True, help="methods (see run.py)")
    p.add_argument("--seed", nargs="+", type=int, required=True, help="seeds")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"grid folder (default {DEFAULT_OUT})")
    p.add_argument("--jobs", type=int, help="runs at a time, locally (default: CPU cores / "
                   "threads)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"torch threads of each run (a resumed run takes them from then "
                   f"on); CPUs a Ray task asks for "
                   f"(default {DEFAULT_THREADS})")
    p.add_argument("--retries", type=int, default=1,
                   help="times a failed run is tried again, resuming (default 1)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on Ray: the cluster at ADDRESS, or a local instance without one")
    p.add_argument("--results", help="copy each finished run's progress.csv and config.yaml "
                   "to RESULTS/ENV/METHOD/sSEED")
    p.add_argument("--refresh", type=float, default=2.0,
                   help="seconds between table updates in a terminal (default 2)")
    args = p.parse_args(argv)
    args.flags = flags
    for name in ("jobs", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise SweepError(f"--{name} must be positive")
    if args.retries < 0:
        raise SweepError("--retries must be 0 or more")
    if any(f == "--torch_threads" or f.startswith("--torch_threads=") for f in flags):
        raise SweepError("give the threads of each run as sweep.py --threads T, not as a "
                         "run.py flag")
    for f in flags:
        if f.split("=")[0] in ("--env", "--seed", "--log_dir") or f in ("--help", "-h"):
            raise SweepError(f"{f} is set by the sweep for each run; it cannot be a run flag")
    return args


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan(args: argparse.Namespace) -> list[Run]:
    """The grid's runs, each checked against its folder (SweepError on a conflict)."""
    from experiment_utils import ExperimentError, load_run_config, resolve_config

    runs = []  # seed by seed, so that a grid cut short has every method at its first seeds
    for seed in dict.fromkeys(args.seed):
        for env in dict.fromkeys(args.env):
            for method in dict.fromkeys(args.method):
                folder = os.path.abspath(os.path.join(args.out, env, method, f"s{seed}"))
                flags = [*args.flags, "--torch_threads", str(args.threads)]
                try:
                    config = resolve_config([method, f"--env={env}", "--seed", str(seed),
                                             "--log_dir", folder, *flags])
                except ExperimentError as error:
                    raise SweepError(f"{env} {method}: {error}") from None
                run = Run(env, method, seed, folder, flags, config.n_epochs, args.threads)
                if os.path.exists(os.path.join(folder, "config.yaml")):
                    try:
                        old = load_run_config(folder)
                    except ExperimentError as error:
                        raise SweepError(str(error)) from None
                    _check_same(run, config.to_dict(), old.to_dict())
                    run.started_epochs = old.n_epochs
                runs.append(run)
    return runs


def _check_same(run: Run, new: dict[str, Any], old: dict[str, Any]) -> None:
    differ = [k for k in new if k not in MAY_DIFFER and new[k] != old.get(k)]
    if new.get("replay_buffer_size") is not None and \
            new["replay_buffer_size"] != old.get("replay_buffer_size"):
        differ.append("replay_buffer_size")
    if differ:
        shown = ", ".join(f"{k} {old.get(k)!r} (asked {new[k]!r})" for k in differ)
        raise SweepError(f"{run.folder} was started with other settings: {shown}; use another "
                         "--out or the run's own flags")
    if new["n_epochs"] < old["n_epochs"]:
        raise SweepError(f"{run.folder} has n_epochs {old['n_epochs']}, more than the asked "
                         f"{new['n_epochs']}; shorten it with run.py resume --shorten")


def check_writable(out: str) -> None:
    """The grid folder can be made and written to (SweepError otherwise, before any run)."""
    import tempfile

    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise SweepError(f"--out {out}: cannot write there ({error.strerror or error})"
                         ) from None


def finished_epochs(folder: str) -> int:
    """Epochs with a row in the folder's progress.csv."""
    return int(read_progress(folder).get("epoch", 0))


def launch_command(run: Run) -> list[str]:
    """The run.py command that continues the run from whatever its folder holds."""
    run_py = os.path.join(ROOT, "run.py")
    if os.path.exists(os.path.join(run.folder, "config.yaml")):
        extend = ["--n_epochs", str(run.n_epochs)] if run.started_epochs not in (
            None, run.n_epochs) else []
        return [sys.executable, run_py, "resume", "--snapshot_dir", run.folder, *extend,
                "--torch_threads", str(run.threads)]
    return [sys.executable, run_py, run.method, f"--env={run.env}", "--seed", str(run.seed),
            "--log_dir", run.folder, *run.flags]


def set_aside_partial(folder: str) -> str | None:
    """A folder with files but no config.yaml (killed as it started) is renamed beside itself,
    so the new start finds it empty; returns the new name."""
    if not os.path.isdir(folder) or not os.listdir(folder) or \
            os.path.exists(os.path.join(folder, "config.yaml")):
        return None
    aside = folder + ".partial_" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.rename(folder, aside)
    return aside


RESULT_FILES = ("progress.csv", "config.yaml")


def export_run(run: Run, results: str) -> str:
    """Copy a finished run's small files to RESULTS/ENV/METHOD/sSEED; never overwrites a
    differing copy. Returns what was done, in words."""
    dest = os.path.join(results, run.env, run.method, f"s{run.seed}")
    kept = [name for name in RESULT_FILES if os.path.exists(os.path.join(dest, name)) and
            not filecmp.cmp(os.path.join(run.folder, name), os.path.join(dest, name),
                            shallow=False)]
    if kept:
        return f"warning: {dest} holds a different {' and '.join(kept)}; left as it is"
    os.makedirs(dest, exist_ok=True)
    for name in RESULT_FILES:
        shutil.copyfile(os.path.join(run.folder, name), os.path.join(dest, name))
    return f"{run.name}: copied {' and '.join(RESULT_FILES)} to {dest}"


# ---------------------------------------------------------------------------------------------
# starting one run (the same in a local sweep and in a Ray task)


def take_lock(path: str, wait: float) -> int | None:
    """An exclusive lock on `path` (its fd), or None if another process holds it after `wait`
    seconds. The run.py child inherits the fd, so the lock lasts as long as either lives."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.5)


def is_locked(path: str) -> bool:
    """Whether a process holds the lock at `path` (a run of it is going on)."""
    if not os.path.exists(path):
        return False
    fd = take_lock(path, 0)
    if fd is None:
        return True
    os.close(fd)
    return False


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the sweep (or Ray worker) dies, so a run
    never goes on unsupervised (Linux; elsewhere a no-op)."""
    os.setsid()
    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_child(run: Run, lock_fd: int) -> subprocess.Popen[bytes]:
    """Start the run's run.py process (its own session), its output appended to its log."""
    note = set_aside_partial(run.folder)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("MUJOCO_GL", "egl")
    os.makedirs(os.path.dirname(run.log_path), exist_ok=True)
    with open(run.log_path, "ab") as log:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        command = launch_command(run)
        log.write(f"\n=== {stamp} sweep.py: {' '.join(command)}\n".encode())
        if note:
            log.write(f"=== partial files of a start without config.yaml moved to {note}\n"
                      .encode())
        log.flush()
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=env, pass_fds=(lock_fd,), preexec_fn=_die_with_parent)


def stop_child(proc: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# progress and the table


def _tail_rows(path: str, count: int) -> tuple[list[str], list[list[str]]]:
    """Header and the last `count` rows of a CSV file, read from its two ends."""
    import csv
    import io

    with open(path, "rb") as f:
        header = next(csv.reader([f.readline().decode()]), [])
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 8192 * (count + 1)))
        tail = f.read().decode(errors="replace")
    lines = tail.splitlines()[1:]  # the header, or a line cut by the seek
    rows = [r for r in csv.reader(io.StringIO("\n".join(lines))) if len(r) == len(header)]
    return header, rows[-count:]


def read_progress(folder: str) -> dict[str, Any]:
    """epoch (epochs logged), steps, the last evaluation and seconds per epoch of a run folder."""
    path = os.path.join(folder, "progress.csv")
    if not os.path.exists(path):
        return {}
    try:
        header, rows = _tail_rows(path, 21)
    except (OSError, StopIteration):
        return {}
    if not rows:
        return {}
    col = {k: i for i, k in enumerate(header)}

    def value(row: list[str], key: str) -> float:
        try:
            return float(row[col[key]])
        except (KeyError, ValueError):
            return float("nan")

    out: dict[str, Any] = {"epoch": int(value(rows[-1], "Epoch")) + 1,
                           "steps": value(rows[-1], "TotalEnvSteps")}
    for key, label in (("Evaluation/SuccessRate", "success"),
                       ("Evaluation/AverageReturn", "return")):
        if key in col:
            evaluated = [value(r, key) for r in rows if value(r, key) == value(r, key)]
            if evaluated:
                out["eval"] = (label, evaluated[-1])
            break
    times = [value(r, "Time") for r in rows]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b > a]
    if gaps:
        out["epoch_seconds"] = sum(gaps) / len(gaps)
    return out


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}"
    return f"{minutes}m{int(seconds) % 60:02d}"


def table(runs: Sequence[Run]) -> str:
    header = ["run", "state", "epoch", "env steps", "last eval", "ETA"]
    rows = []
    for run in runs:
        p = run.progress
        epoch = f"{p.get('epoch', 0)}/{run.n_epochs}"
        steps = f"{p['steps']:,.0f}" if p.get("steps") == p.get("steps") and "steps" in p else "-"
        last = f"{p['eval'][0]} {p['eval'][1]:.2f}" if "eval" in p else "-"
        eta = "-"
        if run.state == "running" and "epoch_seconds" in p:
            eta = _duration(max(0, run.n_epochs - p["epoch"]) * p["epoch_seconds"])
        state = run.state + (f" (exit {run.code})" if run.state == "failed" else "")
        if run.tries > 1 and run.state in ("running", "finished"):
            state += f" (try {run.tries})"
        rows.append([run.name, state, epoch, steps, last, eta])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    return "\n".join(lines)


class Display:
    """The live table: redrawn in place in a terminal; elsewhere printed when a state changes."""

    def __init__(self, stream: Any = None, refresh: float = 2.0) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.refresh = refresh if self.tty else 600.0
        self.drawn = 0
        self.last = 0.0
        self.states: list[str] = []

    def update(self, runs: Sequence[Run], force: bool = False) -> None:
        states = [r.state for r in runs]
        if not force and states == self.states and time.monotonic() - self.last < self.refresh:
            return
        for run in runs:
            run.progress = read_progress(run.folder)
        text = table(runs)
        if self.tty and self.drawn:
            self.stream.write(f"\033[{self.drawn}F\033[J")
        self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = text.count("\n") + 1 if self.tty else 0
        self.last, self.states = time.monotonic(), states

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = 0


def summary(runs: Sequence[Run]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.state] = counts.get(run.state, 0) + 1
    return f"{len(runs)} runs: " + ", ".join(f"{n} {state}" for state, n in counts.items())


# ---------------------------------------------------------------------------------------------
# the local scheduler


class Stop:
    """SIGINT/SIGTERM while the sweep runs: remembered, forwarded to the runs by the loop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0

    def __enter__(self) -> Stop:
        self.old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum
        self.count += 1


def run_local(runs: list[Run], jobs: int, retries: int, display: Display,
              finished: Callable[[Run], None]) -> int:
    queue = [r for r in runs if r.state == "queued"]
    active: list[Run] = []
    forwarded = 0
    with Stop() as stop:
        while queue or active:
            if stop.count > forwarded:  # forward each signal once to every run
                for run in active:
                    stop_child(run.proc, stop.signum or signal.SIGINT)
                forwarded = stop.count
                for run in queue:
                    run.state = "not started"
                queue = []
            while queue and len(active) < jobs and not stop.count:
                run = queue.pop(0)
                fd = take_lock(run.lock_path, 0)
                if fd is None:
                    run.state = "busy elsewhere"
                    continue
                run.lock, run.tries = fd, run.tries + 1
                run.proc, run.state = start_child(run, fd), "running"
                active.append(run)
            for run in list(active):
                code = run.proc.poll()
                if code is None:
                    continue
                active.remove(run)
                os.close(run.lock)
                run.code = code
                if code == 0:
                    run.state = "finished"
                    finished(run)
                elif stop.count or code in STOPPED_CODES:
                    run.state = "stopped"
                elif run.tries <= retries and code != 2:
                    run.state = "queued"
                    queue.insert(0, run)
                else:
                    run.state = "failed"
            display.update(runs)
            time.sleep(0.2)
    display.update(runs, force=True)
    return exit_code(runs, stop.signum)


def exit_code(runs: Sequence[Run], signum: int | None) -> int:
    if signum is not None:
        return 128 + signum
    return 0 if all(r.state == "finished" for r in runs) else 1


# ---------------------------------------------------------------------------------------------
# Ray


def ray_run(run: Run) -> int:
    """One run as a Ray task: take the folder's lock (waiting for the process of a failed try to
    stop), run it, raise on failure so that Ray tries again. The driver asks for a stop by
    writing the run's stop file (on the shared storage): the run then stops at its checkpoint.
    Returns run.py's exit code, or NOT_STARTED when the stop came first."""
    fd = take_lock(run.lock_path, LOCK_WAIT_RAY)
    if fd is None:
        raise RuntimeError(f"{run.folder} is locked by another process")
    try:
        if os.path.exists(run.stop_path):
            return NOT_STARTED
        proc = start_child(run, fd)
        asked = False
        while (code := proc.poll()) is None:
            if not asked and os.path.exists(run.stop_path):
                stop_child(proc, signal.SIGINT)
                asked = True
            time.sleep(0.5)
    finally:
        os.close(fd)
    if code != 0 and code not in STOPPED_CODES and code != 2:
        raise RuntimeError(f"{run.name} exited with code {code}; see {run.log_path}")
    return code


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs Ray: pip install -r requirements-ray.txt") from None
    return ray


def run_ray(runs: list[Run], address: str, threads: int, retries: int, display: Display,
            finished: Callable[[Run], None]) -> int:
    ray = import_ray()
    display.message(f"connecting to Ray {'at ' + address if address else '(a local instance)'}")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cpu_count(), include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=threads, max_retries=retries, retry_exceptions=True)(ray_run)
    refs = {}
    try:
        for run in runs:
            if run.state == "queued":
                if os.path.exists(run.stop_path):  # left by a driver that died
                    os.remove(run.stop_path)
                refs[task.remote(run)] = run
                run.state = "submitted"
        with Stop() as stop:
            while refs and not stop.count:
                done, _ = ray.wait(list(refs), timeout=1.0)
                for ref in done:
                    run = refs.pop(ref)
                    try:
                        run.code = ray.get(ref)
                    except Exception as error:  # the last try failed
                        run.code, run.state = None, "failed"
                        display.message(f"{run.name} failed: {str(error).splitlines()[-1]}")
                        continue
                    run.state = "finished" if run.code == 0 else "stopped"
                    if run.code == 0:
                        finished(run)
                for run in refs.values():
                    if run.state == "submitted" and is_locked(run.lock_path):
                        run.state = "running"
                display.update(runs)
            if stop.count:  # every task still out stops its run, or does not start it
                for run in refs.values():
                    with open(run.stop_path, "w") as f:
                        f.write(f"stop asked by sweep.py at {datetime.datetime.now()}\n")
                _, late = ray.wait(list(refs), num_returns=len(refs), timeout=STOP_WAIT)
                # only tasks still out are cancelled: cancelling one whose reply is arriving
                # can crash Ray's driver ("Tried to complete task that was not pending")
                for ref in late:
                    ray.cancel(ref)
                for run in refs.values():
                    done = finished_epochs(run.folder) >= run.n_epochs
                    started = os.path.exists(os.path.join(run.folder, "config.yaml"))
                    run.state = "finished" if done else "stopped" if started else "not started"
    finally:
        ray.shutdown()
        for run in runs:
            if os.path.exists(run.stop_path):
                os.remove(run.stop_path)
    display.update(runs, force=True)
    return exit_code(runs, stop.signum)


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, display: Callable[[], Display] | None = None
         ) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        if args.ray is not None:
            import_ray()
        runs = plan(args)
        check_writable(args.out)
    except SweepError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    out = display() if display else Display(refresh=args.refresh)

    def finished(run: Run) -> None:
        if args.results:
            out.message(export_run(run, args.results))

    for run in runs:
        if finished_epochs(run.folder) >= run.n_epochs:
            run.state = "finished"
            finished(run)
    todo = sum(r.state == "queued" for r in runs)
    if args.ray is not None:
        out.message(f"{len(runs)} runs in {args.out}, {todo} to run on Ray, "
                    f"{args.threads} CPU(s) each")
        code = run_ray(runs, args.ray, args.threads, args.retries, out, finished)
    else:
        jobs = args.jobs or max(1, cpu_count() // args.threads)
        out.message(f"{len(runs)} runs in {args.out}, {todo} to run, {jobs} at a time, "
                    f"{args.threads} thread(s) each")
        code = run_local(runs, jobs, args.retries, out, finished)
    out.message(summary(runs) + ("" if code == 0 else
                                 "; the same command carries the sweep on"))
    return code


if __name__ == "__main__":
    sys.exit(main())
