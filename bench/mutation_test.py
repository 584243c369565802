"""Mutation testing of the core: does the suite notice a small wrong change in the code it guards?

Each mutant changes one node of one function (an arithmetic or comparison operator, a sign, a
number, min/max and argmin/argmax, and/or, True/False), in a private copy of the project's
tracked files (or of commit --rev: the suite as it was), never in this checkout (runs going on
here keep their code). The mapped test files then run on the copy with
`pytest -x`; a failing run kills the mutant, a passing one lets it survive, a run past the time
limit (3x the unmutated run, at least 30 s) counts as killed by timeout. Survivors are listed with
file, line and change, for a test to be written or a note of why the mutant is equivalent.

    python bench/mutation_test.py [--targets NAME ...] [--rev COMMIT] [--max K] [--out FILE]
    python bench/mutation_test.py --recheck REPORT.md [--rev COMMIT]  # a report's survivors again

Targets (see TARGETS) name a file, optionally some of its functions, and the tests that guard it.
The table goes to stdout and, with every survivor, to --out (default bench/results/mutation.md).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Target:
    path: str
    functions: tuple[str, ...]  # empty: every function of the file
    tests: tuple[str, ...]


#: the in-process resume tests (the SIGKILL ones are slower and test the same state)
_RESUME_TESTS = ("tests/test_resume.py::test_stop_and_resume_in_process_is_exact",
                 "tests/test_resume.py::test_truncated_checkpoint_is_detected",
                 "tests/test_resume.py::test_a_checkpoint_of_another_format_or_incomplete_is_refused",
                 "tests/test_resume.py::test_checkpoint_holds_the_buffers_compactly",
                 "tests/test_resume.py::test_checkpoint_state_shares_nothing_with_the_live_run",
                 "tests/test_resume.py::test_a_failed_checkpoint_write_surfaces_in_the_training_thread",
                 "tests/test_resume.py::test_snapshot_interval_limits_how_often_checkpoints_are_written",
                 "tests/test_resume.py::test_a_run_from_before_newer_flags_still_resumes")

#: what is mutated and which tests must catch it
TARGETS: dict[str, Target] = {
    "sac": Target("learning/algorithms/sac.py", (),
                  ("tests/test_sac_losses.py", "tests/test_sac.py",
                   "tests/test_update_gradients.py", "tests/test_update_extensions.py")),
    "sac_losses": Target("learning/algorithms/sac_losses.py", (),
                         ("tests/test_sac_losses.py", "tests/test_update_gradients.py",
                          "tests/test_update_extensions.py", "tests/test_pcgrad.py",
                          "tests/test_dnc_representation.py")),
    "distributions": Target("learning/nn/distributions.py", (),
                            ("tests/test_sac_losses.py", "tests/test_math.py")),
    "qswitch": Target("learning/policies/qswitch_mixture_policies_wrapper.py", (),
                      ("tests/test_qswitch.py",)),
    "learner": Target("learning/algorithms/learner.py", (),
                      ("tests/test_learner.py", "tests/test_replay_and_sharing.py")),
    "replay": Target("learning/buffers/replay_buffer.py", (), ("tests/test_replay_and_sharing.py",
                                                       "tests/test_learner.py")),
    "sampler": Target("learning/samplers/sampler.py", ("collect", "_round_complete", "_dropped",
                                              "_start_fresh_episodes", "_pass", "_keep",
                                              "_store_round"),
                      ("tests/test_collection_copies.py",)),
    "checkpoint": Target("learning/runs/checkpoint.py", (), _RESUME_TESTS),
    "trainer_state": Target("learning/runs/trainer.py", ("state_dict", "load_state_dict"),
                            _RESUME_TESTS),
    "point_reach": Target("environments/point_reach.py",
                          ("__init__", "reset", "set_position", "step"),
                          ("tests/envs/test_point_reach.py",)),
    "jaco": Target("environments/jaco.py", ("step", "_info", "stage", "goals"),
                   ("tests/envs/test_jaco.py",)),
    "maze": Target("environments/maze.py", ("step", "goal_distance", "qpos_to_cell"),
                   ("tests/envs/test_maze.py",)),
    "walker": Target("environments/walker.py", ("step", "delta_h", "ceiling_contact"),
                     ("tests/envs/test_walker.py",)),
    "kitchen": Target("environments/kitchen.py", ("step", "dense_reward", "tolerance",
                                                  "goal_distance", "hand_distance"),
                      ("tests/envs/test_kitchen.py",)),
    "metaworld_cds": Target("environments/metaworld_cds.py", ("step", "evaluate_state"),
                            ("tests/envs/test_metaworld.py",)),
}

_BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq}

_PAIRS = [("min", "max"), ("minimum", "maximum"), ("argmin", "argmax"), ("amin", "amax")]
_SWAPPED_ATTRS = {**dict(_PAIRS), **{b: a for a, b in _PAIRS}}


@dataclass(frozen=True)
class Mutant:
    target: str
    line: int
    change: str
    source: str  # the whole mutated module


def _mutations(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(description, replacement node) for each way of mutating `node` alone."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        new = copy.copy(node)
        new.op = _BINOPS[type(node.op)]()
        yield f"{type(node.op).__name__} -> {type(new.op).__name__}", new
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
        new = copy.copy(node)
        new.ops = [_CMPOPS[type(node.ops[0])]()]
        yield f"{type(node.ops[0]).__name__} -> {type(new.ops[0]).__name__}", new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield "-x -> x", node.operand
    elif isinstance(node, ast.BoolOp):
        new = copy.copy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield f"{type(node.op).__name__} -> {type(new.op).__name__}", new
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield f"{node.value} -> {not node.value}", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = node.value
        other = value + 1 if isinstance(value, int) else (value * 2 if value else 1.0)
        yield f"{value!r} -> {other!r}", ast.Constant(other)
    elif isinstance(node, ast.Attribute) and node.attr in _SWAPPED_ATTRS:
        new = copy.copy(node)
        new.attr = _SWAPPED_ATTRS[node.attr]
        yield f".{node.attr} -> .{new.attr}", new
    elif isinstance(node, ast.Name) and node.id in ("min", "max"):
        yield f"{node.id} -> {'max' if node.id == 'min' else 'min'}", ast.Name(
            "max" if node.id == "min" else "min", node.ctx)


class _Replace(ast.NodeTransformer):
    def __init__(self, old: ast.AST, new: ast.AST) -> None:
        self.old, self.new = old, new

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.old:
            return self.new
        return super().visit(node)


def mutants(name: str, target: Target, root: str = ROOT) -> list[Mutant]:
    """Every single-node mutant of the target's functions (annotations left alone)."""
    with open(os.path.join(root, target.path)) as f:
        source = f.read()
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))  # a fresh parse of `source` walks in the same order
    position = {id(n): i for i, n in enumerate(nodes)}
    found = []
    for func in nodes:
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if target.functions and func.name not in target.functions:
            continue
        annotations = [a.annotation for a in ast.walk(func.args)
                       if isinstance(a, ast.arg) and a.annotation is not None]
        skip = {id(n) for a in [*annotations, func.returns] if a for n in ast.walk(a)}
        for node in ast.walk(func):
            if id(node) not in skip:
                found += [(func.name, position[id(node)], node.lineno, change, new)
                          for change, new in _mutations(node)]
    result = []
    for func_name, index, line, change, new in found:
        fresh = ast.parse(source)
        old = list(ast.walk(fresh))[index]
        mutated = _Replace(old, ast.copy_location(new, old)).visit(fresh)
        result.append(Mutant(name, line, f"{func_name}: {change}",
                             ast.unparse(ast.fix_missing_locations(mutated))))
    return result


def copy_project(dest: str, rev: str | None) -> None:
    """The tracked files as they are, or as they were at commit `rev`."""
    if rev is not None:
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        return
    files = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    for rel in files:
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def survivors_of(report: str) -> dict[str, set[tuple[int, str]]]:
    """(line, change) of every survivor a report lists, by target."""
    found: dict[str, set[tuple[int, str]]] = {}
    with open(report) as f:
        for line in f:
            match = re.match(r"- `(\w+)` line (\d+): (.+)$", line.rstrip("\n"))
            if match:
                found.setdefault(match[1], set()).add((int(match[2]), match[3]))
    return found


def run_tests(workdir: str, tests: tuple[str, ...], timeout: float
              ) -> tuple[bool, float, bool]:
    """(passed, seconds, timed out); a run past `timeout` counts as failed."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", *tests], cwd=workdir, capture_output=True,
                              timeout=timeout, env={**os.environ, "MUJOCO_GL": "egl"})
        passed, timed_out = done.returncode == 0, False
    except subprocess.TimeoutExpired:
        passed, timed_out = False, True
    return passed, time.perf_counter() - start, timed_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--rev", help="mutate and test the project as it was at this commit")
    p.add_argument("--max", type=int, help="at most this many mutants per target (the first)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "mutation.md"))
    p.add_argument("--count", action="store_true", help="only count each target's mutants")
    p.add_argument("--recheck", metavar="REPORT",
                   help="run only the mutants that share a line and change with a survivor "
                        "listed in REPORT (an earlier --out), e.g. after adding tests; use the "
                        "--rev of the mutated files' version if their lines moved since")
    a = p.parse_args()
    keep: dict[str, set[tuple[int, str]]] | None = None
    if a.recheck is not None:
        keep = survivors_of(a.recheck)
        a.targets = [name for name in a.targets if name in keep]
    if a.count:
        for name in a.targets:
            print(f"{name:14s} {len(mutants(name, TARGETS[name])):4d}  {TARGETS[name].path}")
        return
    rows, survivors = [], []
    with tempfile.TemporaryDirectory() as work:
        copy_project(work, a.rev)
        for name in a.targets:
            target = TARGETS[name]
            path = os.path.join(work, target.path)
            with open(path) as f:
                original = f.read()
            tests = tuple(t for t in target.tests
                          if os.path.exists(os.path.join(work, t.split("::")[0])))
            if tests != target.tests:  # an older --rev: the tests that existed then
                print(f"{name}: tests absent at this revision: "
                      f"{sorted(set(target.tests) - set(tests))}", flush=True)
            passed, seconds, _ = run_tests(work, tests, timeout=3600)
            if not passed:
                raise SystemExit(f"{name}: the tests fail without any mutation; fix them first")
            limit = max(30.0, 3 * seconds)
            made = mutants(name, target, work)[:a.max]
            if keep is not None:
                made = [m for m in made if (m.line, m.change) in keep[name]]
            killed = timeouts = 0
            for m in made:
                with open(path, "w") as f:
                    f.write(m.source)
                try:
                    ok, _, timed_out = run_tests(work, tests, limit)
                finally:
                    with open(path, "w") as f:
                        f.write(original)
                killed += not ok
                timeouts += timed_out
                if ok:
                    survivors.append(m)
                verdict = "survived" if ok else "timeout " if timed_out else "killed  "
                print(f"{verdict} {target.path}:{m.line} {m.change}", flush=True)
            rows.append((name, target.path, len(made), killed, timeouts, len(made) - killed))
    lines = ["| target | file | mutants | killed | of which by timeout | survived |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {n} | `{p}` | {m} | {k} | {t} | {s} |" for n, p, m, k, t, s in rows]
    lines += ["", "Survivors:", ""] + [f"- `{s.target}` line {s.line}: {s.change}"
                                        for s in survivors]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
