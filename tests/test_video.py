"""Evaluation videos: one decodable mp4 per task and behaviour, the right length and size, with a
readable annotation band, and the acting policy named for QMP."""

from __future__ import annotations

import functools
import os
from typing import Any

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import environments
import learning.runs.video as video
from environments.multitask import MultiTaskEnv
from learning.nn.heads import Architecture
from learning.policies.behaviour import Behaviour, OwnPolicy
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic
from learning.runs.video import annotate_frame, frame_text, record_videos

ENV = "PointReachMT4-v0"
SEED = 10_000


@pytest.fixture
def family() -> MultiTaskEnv:
    return environments.make_multitask_env(ENV, seed=0)


def _behaviours(family: MultiTaskEnv) -> dict[str, Behaviour]:
    """Tiny random networks wired as garage_experiments wires qmp_dnc."""
    torch.manual_seed(0)
    n, obs_dim, act_dim = family.num_tasks, family.network_obs_dim(), family.action_dim
    policy = TaskPolicy(Architecture.SEPARATE, n, obs_dim, act_dim, [8])
    critic = TwinCritic(Architecture.SEPARATE, n, obs_dim, act_dim, [8])
    return {"own": OwnPolicy(policy), "mixture": QSwitch(policy, critic)}


def _split(family: MultiTaskEnv) -> Any:
    return functools.partial(family.split_observation, include_task_id=False)


def _read(path: str) -> np.ndarray:
    return iio.imread(path, plugin="FFMPEG", index=None)


def test_one_video_per_task_and_behaviour_with_every_frame(family: MultiTaskEnv,
                                                           tmp_path: Any) -> None:
    paths = record_videos(family, _behaviours(family), _split(family), str(tmp_path), 7,
                          seed=SEED)
    expected = [str(tmp_path / "videos" / f"epoch00007_{key}_task{k}.mp4")
                for key in ("own", "mixture") for k in range(family.num_tasks)]
    assert paths == expected
    for path in paths:
        frames = _read(path)
        # PointReach never terminates early: the reset frame plus one frame a step
        assert frames.shape == (family.horizon + 1, 200, 200, 3), path


#: a seed whose resets seed + 0 ... seed + 4 put the point at least 2 px apart from each other
FRAME_SEED = 10_255
#: rows below the annotation band (46 px on 200 px frames); every goal and the start lie below
SCENE_TOP = 60


def _pixel(x: float, y: float) -> np.ndarray:
    """(row, col) of the point (x, y) on a 200 px frame of the arena [-2, 2]^2, row 0 at the top:
    50 px a unit, pixel centres at half-integers."""
    return np.array([(2.0 - y) * 50.0 - 0.5, (x + 2.0) * 50.0 - 0.5])


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([rows.mean(), cols.mean()]) + [SCENE_TOP, 0]


def test_video_shows_the_episode_the_env_plays(family: MultiTaskEnv, tmp_path: Any) -> None:
    """Frame 0 of task k's video shows task k's goal disk in green, upright, and the point where
    reset(seed + k) puts it: located on the decoded frame, not averaged over the white scene."""
    paths = record_videos(family, {"own": _behaviours(family)["own"]}, _split(family),
                          str(tmp_path), 0, seed=FRAME_SEED, max_frames=1)
    env = family.make_task_envs(evaluation=True)[0]
    starts = [_pixel(*env.reset(seed=FRAME_SEED + j)[0][:2].astype(float)) for j in range(5)]
    apart = min(float(np.hypot(*(a - b))) for i, a in enumerate(starts) for b in starts[:i])
    assert apart >= 2.0  # a wrong seed + j pairing would put the point elsewhere
    goals = [(1.0, 0.25), (1.0, -0.25), (-1.0, 0.0), (1.4, 0.0)]
    for k, path in enumerate(paths):
        scene = _read(path)[0, SCENE_TOP:].astype(np.int16)
        green = scene[..., 1] - scene[..., 0] > 60  # (60, 170, 60): only this task's disk
        assert 100 < green.sum() < 250, path  # one disk of radius 7.5 px (about 177 px)
        assert np.hypot(*(_centroid(green) - _pixel(*goals[k]))) < 1.5, path
        black = (scene < 60).all(axis=-1)  # the point, radius 3 px (about 28 px)
        assert 15 < black.sum() < 50, path
        assert np.hypot(*(_centroid(black) - starts[k])) < 0.75, path


def test_max_frames_caps_every_video(family: MultiTaskEnv, tmp_path: Any) -> None:
    paths = record_videos(family, _behaviours(family), _split(family), str(tmp_path), 0,
                          seed=SEED, max_frames=5)
    assert all(_read(p).shape[0] == 5 for p in paths)


class _EndsEarly(gym.Wrapper):
    """Terminates its episode after `length` steps."""

    def __init__(self, env: gym.Env, length: int) -> None:
        super().__init__(env)
        self.length = length
        self.steps = 0
        self.closed = False

    def reset(self, **kwargs: Any) -> Any:
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, _, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, reward, self.steps >= self.length, truncated, info

    def close(self) -> None:
        self.closed = True
        self.env.close()


def test_a_task_stops_at_its_episode_end_while_others_go_on(
    family: MultiTaskEnv, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[_EndsEarly] = []
    original = family.make_task_envs

    def make_task_envs(**kwargs: Any) -> list[gym.Env]:
        assert kwargs["evaluation"] and kwargs["render_mode"] == "rgb_array"
        envs = [_EndsEarly(env, 6 if k == 1 else 10**6) for k, env in enumerate(original(**kwargs))]
        made.extend(envs)
        return envs

    monkeypatch.setattr(family, "make_task_envs", make_task_envs)
    paths = record_videos(family, {"own": _behaviours(family)["own"]}, _split(family),
                          str(tmp_path), 0, seed=SEED)
    lengths = [_read(p).shape[0] for p in paths]
    h = family.horizon + 1
    assert lengths == [h, 7, h, h]
    assert len(made) == family.num_tasks and all(env.closed for env in made)


def test_annotation_darkens_the_band_and_writes_text(family: MultiTaskEnv) -> None:
    env = family.make_task_envs(evaluation=True, render_mode="rgb_array")[0]
    env.reset(seed=0)
    raw = env.render()
    lines = frame_text(0, family.task_names[0], 3, -0.5, -1.5, False)
    annotated = annotate_frame(raw, lines)
    blank = annotate_frame(raw, ["", "", ""])
    band = video._layout(*raw.shape[:2])[2]
    assert annotated.shape == raw.shape
    assert (annotated[:band] != raw[:band]).mean() > 0.9  # the band covers the top
    assert (annotated[:band] != blank[:band]).any()  # and carries text
    np.testing.assert_array_equal(annotated[band:], raw[band:])  # the scene is untouched
    assert annotated[:band].mean() < raw[:band].mean()  # dark band: white text stays readable
    np.testing.assert_array_equal(raw, env.render())  # the render itself is left alone


def test_odd_frames_are_padded_to_even_and_encode(tmp_path: Any) -> None:
    frame = np.full((101, 75, 3), 200, dtype=np.uint8)
    padded = annotate_frame(frame, frame_text(0, "t", 0, None, 0.0, False))
    assert padded.shape == (102, 76, 3)
    writer = video._Mp4Writer(str(tmp_path / "odd.mp4"), 20)
    for _ in range(3):
        writer.write(padded)
    writer.close()
    assert _read(str(tmp_path / "odd.mp4")).shape == (3, 102, 76, 3)


def test_text_names_the_acting_policy() -> None:
    own = frame_text(1, "reach", 4, -0.25, -1.0, True)
    assert own == ["task 1: reach", "step 4 | r -0.250 | R -1.00", "success yes"]
    assert "policy" not in " ".join(own)
    assert frame_text(1, "reach", 4, -0.25, -1.0, True, acting=3)[2].endswith("policy 3")
    assert frame_text(1, "reach", 4, -0.25, -1.0, True, acting=1)[2].endswith("policy 1 (own)")
    first = frame_text(2, "left", 0, None, 0.0, False)
    assert first[1] == "step 0 | r - | R 0.00"


def test_mixture_videos_carry_the_switchs_choices(
    family: MultiTaskEnv, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every post-step frame of the mixture names the policy the Q-switch chose for that step;
    own-policy frames name none (the acting policy is always the task)."""
    calls: list[tuple[int, int, int | None]] = []

    def spy(task: int, name: str, step: int, reward: float | None, ret: float, success: bool,
            acting: int | None = None) -> list[str]:
        calls.append((task, step, acting))
        return frame_text(task, name, step, reward, ret, success, acting)

    behaviours = _behaviours(family)
    choices: list[np.ndarray] = []
    switch = behaviours["mixture"]
    real_act = switch.act

    def act(*args: Any) -> tuple[np.ndarray, np.ndarray]:
        actions, acting = real_act(*args)
        choices.append(acting[0].copy())  # one copy of the task set
        return actions, acting

    monkeypatch.setattr(video, "frame_text", spy)
    monkeypatch.setattr(switch, "act", act)
    record_videos(family, behaviours, _split(family), str(tmp_path), 0, seed=SEED,
                  max_frames=11)
    n = family.num_tasks
    own, mixture = calls[: n * 11], calls[n * 11 :]
    assert all(acting is None for _, _, acting in own)
    assert len(mixture) == n * 11 and len(choices) == 10
    for task, step, acting in mixture:
        assert acting == (None if step == 0 else int(choices[step - 1][task]))
    assert len({a for _, _, a in mixture if a is not None}) > 1  # not a vacuous check


def test_clashing_keys_are_refused(family: MultiTaskEnv, tmp_path: Any) -> None:
    own = _behaviours(family)["own"]
    with pytest.raises(ValueError, match="clashing"):
        record_videos(family, {"Own": own, "own": own}, _split(family), str(tmp_path), 0,
                      seed=SEED)
    assert not os.path.exists(tmp_path / "videos")
