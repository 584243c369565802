"""A user's own method, declared in one place: Separated + QMP with an L2 penalty on the policies'
pre-tanh means added to the actor loss.

    PYTHONPATH=examples python run.py mean_penalty_method:qmp_dnc_mean_l2 --env=PointReachMT4-v0

A method is a `MethodSpec`: how batches are drawn ("per_task", "mixed" or "sharing"), whether the
Q-switch collects the data, how temperatures are kept, and what it adds to the SAC update
(`extensions`, built from the run's config and networks). `run.py MODULE:NAME` imports MODULE,
whose import registers NAME; resumed runs and the evaluation worker import it again the same way.
The update then runs on autograd, since the hand-written gradients do not know the new term.
"""

from __future__ import annotations

from experiment_utils import METHODS, ExperimentConfig, MethodSpec, register_method
from learning.algorithms.sac import Extensions, LossContext, LossTerm
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

PENALTY = 1e-2


def mean_penalty(ctx: LossContext) -> object:
    """PENALTY x the mean square of the policies' pre-tanh means on the batch."""
    assert ctx.mean is not None
    return PENALTY * ctx.mean.square().mean()


def extensions(config: ExperimentConfig, policy: TaskPolicy, critic: TwinCritic) -> Extensions:
    return Extensions(loss_terms=[LossTerm("actor", mean_penalty, "mean_l2")])


if "qmp_dnc_mean_l2" not in METHODS:
    register_method(
        "qmp_dnc_mean_l2",
        MethodSpec("per_task", qmp=True, per_task_temperature=True, temperature_loss="log_alpha",
                   extensions=extensions),
        "Separated + QMP with an L2 penalty on the policies' pre-tanh means",
    )
