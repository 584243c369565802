"""Input the command line used to end in a traceback or to take silently (issue 12): bad seeds and
run folders, abbreviated flags, the default env, frequencies, `python run.py` alone, --help, and
bare boolean flags. Bad input: one `run.py: error:` line, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import environments
import experiment_utils
import run
from experiment_utils import (
    BOOL_FLAGS,
    DEFAULT_ENV,
    HELP_DEFAULT_KEYS,
    METHOD_SUMMARIES,
    METHODS,
    ExperimentError,
    build_parser,
    load_run_config,
    make_log_dir,
    resolve_config,
    save_run_config,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENV_LINE = (f"no --env given: training {DEFAULT_ENV}, the built-in 4-task laboratory; "
                    "pass --env=ID for a paper benchmark")


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("run.py: error: "), err
    assert "Traceback" not in err and captured.out == ""
    return err


def _real_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# --- 1. seeds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", str(2**32), "-4294967296"])
def test_out_of_range_seed_is_refused_before_anything_is_written(
        seed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # the default run folder would go to ./data/
    assert run.main(["qmp_dnc", "--env=PointReachMT4-v0", "--seed", seed]) == 2
    assert _one_error_line(capsys) == (
        f"run.py: error: --seed must be in 0..2**32 - 1, got {seed}")
    assert os.listdir(tmp_path) == []


def test_seed_limits_and_config_file_seeds(tmp_path: Path) -> None:
    assert resolve_config(["dnc_sac", "--seed", str(2**32 - 1)]).seed == 2**32 - 1
    assert resolve_config(["dnc_sac", "--seed", "0"]).seed == 0
    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: -5\n")
    with pytest.raises(ExperimentError, match="--seed must be in"):
        resolve_config(["dnc_sac", "--config", str(mine)])


def test_negative_seed_from_a_real_process_is_one_line(tmp_path: Path) -> None:
    proc = _real_run(["qmp_dnc", "--seed", "-1"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "run.py: error: --seed must be in 0..2**32 - 1, got -1\n"
    assert proc.stdout == ""
    assert os.listdir(tmp_path) == []  # no empty data/..._s-1_... folder


@pytest.mark.parametrize(("argv", "error"), [
    (["dnc_sac", "--env=MazeLarge-10-v0", "--sparse_tasks", "99"],
     "--sparse_tasks [99]: task ids are 0..9"),
    (["uds_dnc", "--env=KitchenMTEasy-v0", "--unsupervised", "False"],
     "--unsupervised False (CDS) needs KitchenMTEasy-v0's reward"),
])
def test_envs_on_gymnasium_robotics_keep_errors_one_line(argv: list[str], error: str,
                                                          tmp_path: Path) -> None:
    """A fresh process imports gymnasium_robotics, which prints a notice on first import: it
    must not reach the user's terminal beside the error."""
    proc = _real_run(argv, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"run.py: error: {error}") and proc.stderr.count("\n") == 1
    assert proc.stdout == ""


# --- 2. run folders that cannot be made -------------------------------------------------------

def test_uncreatable_log_dir_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["qmp_dnc", "--log_dir", "/proc/nope"]) == 2
    assert _one_error_line(capsys) == ("run.py: error: --log_dir /proc/nope: cannot create a "
                                       "writable folder (No such file or directory)")
    assert not os.path.exists("/proc/nope")


def test_uncreatable_log_dir_from_a_real_process(tmp_path: Path) -> None:
    proc = _real_run(["dnc_sac", "--log_dir", "/proc/nope/run"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("run.py: error: --log_dir /proc/nope/run: cannot create")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_log_dir_under_a_file_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    assert run.main(["dnc_sac", "--log_dir", str(tmp_path / "a_file" / "run")]) == 2
    assert "cannot create a writable folder (Not a directory)" in _one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
    # an existing file as the run folder itself is "not empty", as before
    assert run.main(["dnc_sac", "--log_dir", str(tmp_path / "a_file")]) == 2
    assert "exists and is not empty" in _one_error_line(capsys)


def test_unwritable_log_dir_leaves_no_folder_behind(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Folders made on the way are removed when the run folder turns out not writable (the
    tests run as root, so the write is made to fail)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    deep = tmp_path / "new" / "deeper" / "run"
    assert run.main(["dnc_sac", "--log_dir", str(deep)]) == 2
    assert _one_error_line(capsys) == (f"run.py: error: --log_dir {deep}: cannot create a "
                                       "writable folder (Permission denied)")
    assert os.listdir(tmp_path) == []
    # an existing empty folder that is not writable is reported and kept
    (tmp_path / "mine").mkdir()
    with pytest.raises(ExperimentError, match="Permission denied"):
        make_log_dir(resolve_config(["dnc_sac", "--log_dir", str(tmp_path / "mine")]))
    assert os.listdir(tmp_path) == ["mine"]


def test_default_run_folder_that_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").write_text("not a folder")
    assert run.main(["dnc_sac", "--env=PointReachMT4-v0"]) == 2
    err = _one_error_line(capsys)
    assert err.startswith("run.py: error: the run folder data/dnc_sac_PointReachMT4-v0_s0_")
    assert err.endswith("cannot create a writable folder (Not a directory); pass --log_dir DIR")
    assert os.listdir(tmp_path) == ["data"]


# --- 3. no abbreviations ----------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "suggestion"), [
    (["dnc_sac", "--n_epoch", "2"], "--n_epochs"),
    (["dnc_sac", "--n_epoch=2"], "--n_epochs"),
    (["dnc_sac", "--en", "PointReachMT4-v0"], "--env"),
    (["dnc_sac", "--layer"], "--layer_norm"),
])
def test_abbreviated_flags_are_unknown(argv: list[str], suggestion: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([*argv, "--log_dir", str(tmp_path / "never")]) == 2
    err = _one_error_line(capsys)
    assert err.startswith(f"run.py: error: unrecognized arguments: {argv[1]}")
    assert err.endswith(f"(flags are never abbreviated: did you mean {suggestion}?)")
    assert not (tmp_path / "never").exists()


def test_unknown_flag_far_from_any_gets_no_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["dnc_sac", "--zzzzzzzz", "1"]) == 2
    assert _one_error_line(capsys) == "run.py: error: unrecognized arguments: --zzzzzzzz 1"


# --- 4. the default env -----------------------------------------------------------------------

def test_default_env_is_said(tiny_flags: list[str], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["dnc_sac", *tiny_flags, "--n_epochs", "1",
                     "--log_dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == DEFAULT_ENV_LINE  # first, before the config and training
    assert out.count(DEFAULT_ENV_LINE) == 1
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["env"] == DEFAULT_ENV


def test_default_env_note_only_without_env() -> None:
    notes: list[str] = []
    assert resolve_config(["dnc_sac"], notes).env == DEFAULT_ENV
    assert notes == [DEFAULT_ENV_LINE]
    for given in (["--env=PointReachMT4-v0"], ["--env", "MazeLarge-10-v0"]):
        notes = []
        resolve_config(["dnc_sac", *given], notes)
        assert notes == []


def test_default_env_note_not_printed_on_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["dnc_sac", "--n_epochs", "0"]) == 2
    _one_error_line(capsys)  # also checks that stdout stayed empty


# --- 5. frequencies ---------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "value"), [
    ("--vis_freq", "0"), ("--vis_freq", "-2"), ("--evaluation_frequency", "0"),
    ("--evaluation_frequency", "-1"),
])
def test_frequencies_are_positive(flag: str, value: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["dnc_sac", flag, value, "--log_dir", str(tmp_path / "never")]) == 2
    err = _one_error_line(capsys)
    if flag == "--vis_freq":
        assert err == ("run.py: error: --vis_freq must be positive (a video every K epochs) or "
                       f"-1 (off), got {value}")
    else:
        assert err == f"run.py: error: --evaluation_frequency must be positive, got {value}"
    assert not (tmp_path / "never").exists()


def test_vis_freq_off_and_on_values() -> None:
    assert resolve_config(["dnc_sac"]).vis_freq == -1  # the default: off
    assert resolve_config(["dnc_sac", "--vis_freq", "-1"]).vis_freq == -1
    assert resolve_config(["dnc_sac", "--vis_freq", "3"]).vis_freq == 3


@pytest.mark.parametrize(("written", "loaded"), [(-1, -1), (0, -1), (-7, -1), (5, 5)])
def test_run_configs_of_earlier_versions_still_load(written: int, loaded: int,
                                                    tmp_path: Path) -> None:
    """Earlier versions took any vis_freq <= 0 as off and wrote it to config.yaml."""
    save_run_config(str(tmp_path), resolve_config(["dnc_sac", "--n_epochs", "2"]))
    path = tmp_path / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["vis_freq"] = written
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_run_config(str(tmp_path))
    assert config.vis_freq == loaded and config.n_epochs == 2


# --- 6. `python run.py` alone -----------------------------------------------------------------

def _check_overview(err: str) -> None:
    lines = err.splitlines()
    assert lines[0].startswith("usage: python run.py METHOD [--env=ID] [flags]")
    assert lines[1].strip() == ("python run.py resume --snapshot_dir RUN_DIR "
                                "[--n_epochs N [--shorten]] [--torch_threads T]")
    assert lines[2] == "run.py: error: no METHOD given"
    for method in METHODS:
        assert any(line.split()[:1] == [method] and line.endswith(METHOD_SUMMARIES[method])
                   for line in lines), method
    assert {"Separated", "Parameters", "Data (UDS)"} <= {
        s.split(":")[0].split(" +")[0] for s in METHOD_SUMMARIES.values()}
    for env_id in environments.known_env_ids():
        assert env_id in err
    assert len(lines) <= 16 and "Traceback" not in err


def test_no_arguments_lists_methods_and_envs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert run.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _check_overview(captured.err)
    assert os.listdir(tmp_path) == []


def test_no_arguments_from_a_real_process(tmp_path: Path) -> None:
    proc = _real_run([], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    _check_overview(proc.stderr)


def test_flags_without_a_method_stay_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--seed", "3"]) == 2
    assert "required: METHOD" in _one_error_line(capsys)


# --- 7. --help --------------------------------------------------------------------------------

def _help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        run.main(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_names_resume_and_the_per_env_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert "python run.py resume --snapshot_dir RUN_DIR [--n_epochs N [--shorten]]" in text
    assert "configs/ENV.yaml" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["env", "n_epochs"])
    assert header.split()[1:] == list(HELP_DEFAULT_KEYS)
    for env_id in environments.known_env_ids():
        with open(ROOT / "configs" / f"{env_id}.yaml") as f:
            defaults = yaml.safe_load(f)["defaults"]
        row = next(line for line in lines if line.split()[:1] == [env_id])
        expected = [str(defaults.get(k, experiment_utils.GLOBAL_DEFAULTS[k]))
                    for k in HELP_DEFAULT_KEYS]
        assert row.split()[1:] == expected, env_id
    assert "    mtsac, qmp_sac: lr 0.001" in lines  # Jaco's Parameters methods' own entry
    assert "--vis_freq -1 is off" in text and "never abbreviated" in text
    assert "a bare --layer_norm means True" in " ".join(text.split())


def test_help_reads_the_config_files_when_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name in os.listdir(ROOT / "configs"):
        (tmp_path / name).write_text((ROOT / "configs" / name).read_text())
    (tmp_path / f"{DEFAULT_ENV}.yaml").write_text("defaults: {n_epochs: 77, lr: 0.5}\n")
    (tmp_path / "MazeLarge-10-v0.yaml").write_text("defaults: [oops\n")
    monkeypatch.setattr(experiment_utils, "CONFIG_DIR", str(tmp_path))
    lines = _help(capsys).splitlines()
    row = next(line for line in lines if line.split()[:1] == [DEFAULT_ENV]).split()
    assert row[1] == "77" and row[-1] == "0.5" and row[2] == "1000"  # batch_size: global
    maze = lines.index(next(line for line in lines if line.split()[:1] == ["MazeLarge-10-v0"]))
    assert "is not valid YAML" in lines[maze + 1]  # shown, not a traceback


# --- 8. boolean flags -------------------------------------------------------------------------

def _parse(argv: list[str]) -> dict[str, object]:
    return vars(build_parser().parse_args(experiment_utils._bare_booleans(argv)))


def test_every_boolean_flag_takes_a_bare_form() -> None:
    parser = build_parser()
    booleans = {a.dest for a in parser._actions if a.type is experiment_utils._bool}
    assert booleans == set(BOOL_FLAGS)
    for action in parser._actions:
        if action.dest in booleans:
            assert action.nargs == "?" and action.const is True, action.dest


@pytest.mark.parametrize("flag", BOOL_FLAGS)
def test_boolean_forms(flag: str) -> None:
    assert _parse(["dnc_sac", f"--{flag}"])[flag] is True
    assert _parse(["dnc_sac", f"--{flag}", "--seed", "3"]) == {
        **_parse(["dnc_sac", "--seed", "3"]), flag: True}
    for text, value in (("True", True), ("False", False), ("true", True), ("0", False)):
        assert _parse(["dnc_sac", f"--{flag}", text])[flag] is value
        assert _parse(["dnc_sac", f"--{flag}={text}"])[flag] is value
    assert _parse(["dnc_sac"])[flag] is None  # not given: the defaults decide


@pytest.mark.parametrize("flag", BOOL_FLAGS)
def test_a_bare_boolean_never_takes_the_method(flag: str) -> None:
    args = _parse([f"--{flag}", "qmp_sac", "--seed", "2"])
    assert args["method"] == "qmp_sac" and args[flag] is True and args["seed"] == 2
    args = _parse(["--seed", "2", f"--{flag}", "False", "qmp_sac"])
    assert args["method"] == "qmp_sac" and args[flag] is False


def test_bare_booleans_resolve(tmp_path: Path) -> None:
    config = resolve_config(["--layer_norm", "dnc_sac", "--eval_in_background", "False",
                             "--include_task_id"])
    assert (config.method, config.layer_norm, config.eval_in_background,
            config.include_task_id) == ("dnc_sac", True, False, True)
    assert resolve_config(["dnc_sac", "--layer_norm", "False"]).layer_norm is False


@pytest.mark.parametrize(("argv", "message"), [
    (["dnc_sac", "--layer_norm", "maybe"],
     "argument --layer_norm: expected True or False, got 'maybe'"),
    (["dnc_sac", "--layer_norm", "True", "False"], "unrecognized arguments: False"),
    (["qmp_dnc", "--include_task_id"], "does not take --include_task_id True"),
])
def test_bad_boolean_input_is_one_line(argv: list[str], message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([*argv, "--log_dir", str(tmp_path / "never")]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "never").exists()
