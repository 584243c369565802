"""Configuration precedence (built-in < configs/ENV.yaml < --config FILE < flags) and checking of
config files: unknown keys and wrong types are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import environments
import run
from experiment_utils import GLOBAL_DEFAULTS, env_config, resolve_config


def test_every_env_has_a_valid_config_file() -> None:
    for env_id in environments.known_env_ids():
        defaults, methods = env_config(env_id)
        assert {"n_epochs", "batch_size", "buffer_batch_size", "lr"} <= set(defaults), env_id
        for method in methods:
            resolve_config([method, f"--env={env_id}"])  # every override validates


def test_precedence(tmp_path: Path) -> None:
    # configs/JacoReachMT5-v1.yaml: defaults lr 3e-4, hidden 256 256; mtsac: lr 1e-3, 512 512
    base = resolve_config(["dnc_sac", "--env=JacoReachMT5-v1"])
    assert (base.lr, base.hidden_sizes, base.batch_size) == (3e-4, [256, 256], 1000)
    assert base.discount == GLOBAL_DEFAULTS["discount"]
    method = resolve_config(["mtsac", "--env=JacoReachMT5-v1"])
    assert (method.lr, method.hidden_sizes) == (1e-3, [512, 512])
    user = tmp_path / "mine.yaml"
    user.write_text("lr: 0.002\nbatch_size: 500\nlayer_norm: true\nkl_coeff: [0]\n")
    mine = resolve_config(["mtsac", "--env=JacoReachMT5-v1", "--config", str(user)])
    assert (mine.lr, mine.batch_size, mine.layer_norm, mine.hidden_sizes) == (
        0.002, 500, True, [512, 512])
    flag = resolve_config(["mtsac", "--env=JacoReachMT5-v1", "--config", str(user),
                           "--lr", "0.005"])
    assert (flag.lr, flag.batch_size) == (0.005, 500)


@pytest.mark.parametrize(("text", "message"), [
    ("lr_rate: 0.1\n", "unknown key 'lr_rate'"),
    ("batch_size: 12.5\n", "batch_size must be int"),
    ("hidden_sizes: 256\n", "hidden_sizes must be list[int]"),
    ("layer_norm: 'yes'\n", "layer_norm must be bool"),
    ("- 1\n- 2\n", "must map flag names to values"),
    ("lr: [unclosed\n", "not valid YAML"),
    ("env: MazeLarge-10-v0\n", "on the command line"),
])
def test_bad_config_files(text: str, message: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert run.main(["dnc_sac", "--config", str(path), "--log_dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["dnc_sac", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err
