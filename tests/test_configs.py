"""Configuration precedence (built-in < configs/ENV.yaml < --config FILE < flags) and checking of
config files: unknown keys and wrong types are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import environments
import run
from experiment_utils import env_config, resolve_config


def test_every_env_has_a_valid_config_file() -> None:
    for env_id in environments.known_env_ids():
        defaults, methods = env_config(env_id)
        assert {"n_epochs", "batch_size", "buffer_batch_size", "lr"} <= set(defaults), env_id
        for method in methods:
            resolve_config([method, f"--env={env_id}"])  # every override validates


#: the original's per-env defaults: n_epochs, batch_size, steps_per_epoch,
#: gradient_steps_per_itr, buffer_batch_size, min_buffer_size, lr, hidden_sizes, evaluation
#: episodes (in all); MT10 keeps the global n_epochs, Kitchen's 500 was a misspelled key
PAPER_ENV_DEFAULTS = {
    "JacoReachMT5-v1": (2000, 1000, 1, 1000, 32, 10000, 3e-4, [256, 256], 50),
    "MazeLarge-10-v0": (2000, 6000, 1, 1000, 256, 3000, 3e-4, [256, 256], 100),
    "Walker2dMT4-v0": (2000, 4000, 1, 6000, 32, 10000, 3e-4, [256, 256], 40),
    "MetaWorldCDS-v1": (500, 2000, 10, 200, 256, 5000, 1.5e-3, [256, 256], 40),
    "MetaWorldMT10-v2": (1000, 5000, 10, 500, 2560, 5000, 1.5e-3, [256, 256], 100),
    "MetaWorldMT50-v2": (1000, 25000, 8, 2500, 1280, 1500, 3e-4, [400, 400], 250),
    "KitchenMTEasy-v0": (1000, 2000, 5, 500, 1280, 2000, 3e-4, [256, 256], 50),
}
ENV_KEYS = ("n_epochs", "batch_size", "steps_per_epoch", "gradient_steps_per_itr",
            "buffer_batch_size", "min_buffer_size", "lr", "hidden_sizes",
            "num_evaluation_episodes")
#: the original's run.py defaults that no env overrides
PAPER_GLOBALS = {"discount": 0.99, "target_update_tau": 5e-3, "reward_scale": 1.0,
                 "target_entropy": None, "evaluation_frequency": 1, "policy_sampling_freq": 1,
                 "sharing_quantile": 0.0, "kl_coeff": [0.0], "include_task_id": False,
                 "layer_norm": False, "sampler_type": "local", "seed": 0}


@pytest.mark.parametrize("env_id", list(PAPER_ENV_DEFAULTS))
def test_each_benchmark_runs_the_originals_defaults(env_id: str) -> None:
    config = resolve_config(["dnc_sac", f"--env={env_id}"]).to_dict()
    assert tuple(config[k] for k in ENV_KEYS) == PAPER_ENV_DEFAULTS[env_id]
    assert {k: config[k] for k in PAPER_GLOBALS} == PAPER_GLOBALS


def test_every_benchmark_is_pinned() -> None:
    assert set(environments.known_env_ids()) - {"PointReachMT4-v0"} == set(PAPER_ENV_DEFAULTS)


def test_precedence(tmp_path: Path) -> None:
    # configs/JacoReachMT5-v1.yaml: defaults lr 3e-4, hidden 256 256; mtsac: lr 1e-3, 512 512
    base = resolve_config(["dnc_sac", "--env=JacoReachMT5-v1"])
    assert (base.lr, base.hidden_sizes, base.batch_size) == (3e-4, [256, 256], 1000)
    assert base.discount == 0.99
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
