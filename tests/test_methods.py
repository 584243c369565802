"""Each method's parts, as the original builds them: temperatures, temperature loss, how batches
are drawn, one buffer or one per task, who collects (own policy or Q-switch) and the network
architectures. Written out per method, so a one-word edit of the method table fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_FLAGS

from experiment_utils import resolve_config
from garage_experiments import build_trainer

N = 4  # PointReachMT4-v0
TWIN, DECAF = "TwinCritic", "DecafCritic"

#: method -> (temperatures, temperature loss, batches, shared buffer, collector, policy, critic,
#: critic class)
EXPECTED = {
    "sac": (1, "alpha", "mixed", True, "OwnPolicy", "multihead", "multihead", TWIN),
    "mtsac": (N, "alpha", "mixed", True, "OwnPolicy", "multihead", "multihead", TWIN),
    "qmp_sac": (N, "alpha", "mixed", True, "QSwitch", "multihead", "multihead", TWIN),
    "dnc_sac": (N, "log_alpha", "per_task", False, "OwnPolicy", "separate", "separate", TWIN),
    "qmp_dnc": (N, "log_alpha", "per_task", False, "QSwitch", "separate", "separate", TWIN),
    "uds_dnc": (N, "log_alpha", "sharing", False, "OwnPolicy", "separate", "separate", TWIN),
    "qmp_uds_dnc": (N, "log_alpha", "sharing", False, "QSwitch", "separate", "separate", TWIN),
    "decaf": (N, "log_alpha", "per_task", False, "OwnPolicy", "separate", "separate", DECAF),
    "mcal": (1, "log_alpha", "per_task", False, "OwnPolicy", "multihead", "separate", TWIN),
    "qmp_mcal": (1, "log_alpha", "per_task", False, "QSwitch", "multihead", "separate", TWIN),
}


@pytest.mark.parametrize("method", list(EXPECTED))
def test_each_method_is_built_from_the_originals_parts(method: str, tmp_path: Path) -> None:
    config = resolve_config([method, *TINY_FLAGS, "--log_dir", str(tmp_path / "r")])
    (tmp_path / "r").mkdir()
    trainer = build_trainer(config, str(tmp_path / "r"), stdout=False)
    try:
        learner, sac = trainer.learner, trainer.learner.sac
        built = (sac.log_alpha.numel(), sac.config.temperature_loss, learner.sampling,
                 learner.buffer.shared, type(trainer.collector.behaviour).__name__,
                 sac.policy.architecture.value, sac.critic.architecture.value,
                 type(sac.critic).__name__)
    finally:
        trainer.close()
    assert built == EXPECTED[method]


def test_every_method_is_listed() -> None:
    from experiment_utils import METHODS

    assert set(METHODS) == set(EXPECTED)
