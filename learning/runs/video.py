"""Evaluation videos: one deterministic episode per task and behaviour, annotated, as H.264 mp4.

Curves say *how well* each task does; a video says *what the agent does*, and for QMP *which
task's policy is acting* when task i borrows behaviour. `record_videos` plays every task in
lockstep (one batched policy call a step, as the Evaluator does) on fresh `rgb_array` evaluation
envs, so recording never disturbs the training or evaluation envs' episodes. Episodes start from
`reset(seed=seed + k)` for every behaviour, so "own" and "mixture" videos start from the same
states and compare like with like.

Frames stream to one ffmpeg (imageio-ffmpeg) process per task as they are rendered: holding every
frame until the end would take gigabytes for MT50 (50 tasks x 501 frames). Each frame gets a dark
translucent band at the top with the task, step, reward, return, success so far and, for QMP, the
acting policy.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import imageio_ffmpeg
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from environments.multitask import MultiTaskEnv
from learning.policies.behaviour import Behaviour
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch

#: maps raw observations (..., obs_dim) to network inputs (as in learning.samplers.sampler)
ObsSplit = Callable[[np.ndarray], np.ndarray]

#: the band keeps this fraction of the frame's brightness (out of 256): dark enough for white
#: text on MuJoCo's bright floors, light enough that the scene under it stays visible
BAND_KEEP = 80
TEXT_COLOUR = (255, 255, 255)
SUCCESS_COLOUR = (120, 255, 120)
#: annotation lines a frame carries; fixed so the band never changes height within a video
NUM_LINES = 3
#: libx264 constant quality: 20 keeps the small annotation text sharp at a few hundred kB a video
CRF = 20


def video_path(out_dir: str, epoch: int, key: str, task: int) -> str:
    """Where the video of `task` under behaviour `key` at `epoch` goes: the 0-based epoch in 5
    digits, as progress.csv's `Epoch` and the checkpoint files (`checkpoint_epochEEEEE.pt`). The
    key is made safe for a file name, so trainer prefixes such as "Evaluation/p" work too."""
    name = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_") or "behaviour"
    return os.path.join(out_dir, "videos", f"epoch{epoch:05d}_{name}_task{task}.mp4")


def frame_text(
    task: int,
    task_name: str,
    step: int,
    reward: float | None,
    ret: float,
    success: bool,
    acting: int | None = None,
) -> list[str]:
    """The NUM_LINES annotation lines of one frame.

    `reward` is None on the first frame (no step taken yet). `acting` is the policy whose action
    led to this frame; None leaves it out (own-policy videos, where it is always the task).
    """
    reward_text = "-" if reward is None else f"{reward:.3f}"
    last = f"success {'yes' if success else 'no'}"
    if acting is not None:
        last += f" | policy {acting}" + (" (own)" if acting == task else "")
    return [f"task {task}: {task_name}", f"step {step} | r {reward_text} | R {ret:.2f}", last]


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at `size` px, loaded once per size (not once per frame)."""
    return ImageFont.load_default(size)


@functools.lru_cache(maxsize=8)
def _layout(height: int, width: int) -> tuple[int, int, int]:
    """(font size, line height, band height) for a frame size: the text scales with the frame,
    at least 10 px so it stays legible on the 200 px PointReach frames."""
    size = max(10, round(min(height, width) / 20))
    left, top, right, bottom = _font(size).getbbox("Ag|")
    line = int(bottom) + max(1, size // 5)
    return size, line, min(height, NUM_LINES * line + 2 * max(2, size // 4))


def fit_text(text: str, width: int, size: int) -> str:
    """`text` cut with an ellipsis so it fits `width` px (long Meta-World/Kitchen task names)."""
    font = _font(size)
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def annotate_frame(frame: np.ndarray, lines: Sequence[str], *, success: bool = False
                   ) -> np.ndarray:
    """A new frame, padded to even height and width (yuv420p needs both even), with `lines`
    drawn on a dark translucent band across the top. `success` draws the last line green."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 frame, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    out = np.zeros((h + h % 2, w + w % 2, 3), dtype=np.uint8)
    out[:h, :w] = frame
    size, line, band_h = _layout(h, w)
    band = out[:band_h]
    band[...] = (band.astype(np.uint16) * BAND_KEEP >> 8).astype(np.uint8)
    image = Image.fromarray(band)
    draw = ImageDraw.Draw(image)
    pad = max(2, size // 4)
    font = _font(size)
    for i, text in enumerate(lines):
        colour = SUCCESS_COLOUR if success and i == len(lines) - 1 else TEXT_COLOUR
        draw.text((pad, pad + i * line), text, fill=colour, font=font)
    band[...] = np.asarray(image)
    return out


class _Mp4Writer:
    """One mp4 file fed frame by frame through an imageio-ffmpeg subprocess (opened on the first
    frame, whose size fixes the video's)."""

    def __init__(self, path: str, fps: int) -> None:
        self.path = path
        self.fps = fps
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._gen: Any = None

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._gen is None:
            self._size = (w, h)
            self._gen = imageio_ffmpeg.write_frames(
                self.path,
                (w, h),
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                quality=None,
                macro_block_size=1,  # frames are already even-sized; never let ffmpeg rescale
                ffmpeg_log_level="error",
                # one encoder per task runs at once (50 for MT50): one thread each
                output_params=["-crf", str(CRF), "-preset", "veryfast", "-threads", "1"],
            )
            self._gen.send(None)
        elif (w, h) != self._size:
            raise ValueError(f"{self.path}: frame size changed from {self._size} to {(w, h)}")
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


def _record_behaviour(
    family: MultiTaskEnv,
    key: str,
    behaviour: Behaviour,
    split: ObsSplit,
    out_dir: str,
    epoch: int,
    seed: int,
    fps: int,
    max_steps: int,
) -> list[str]:
    """Run one deterministic episode per task in lockstep and write one video per task."""
    n = family.num_tasks
    show_policy = isinstance(behaviour, QSwitch)
    paths = [video_path(out_dir, epoch, key, k) for k in range(n)]
    writers = [_Mp4Writer(p, fps) for p in paths]
    envs: list[gym.Env] = family.make_task_envs(evaluation=True, render_mode="rgb_array")
    try:
        obs = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(envs)])
        obs = obs.astype(np.float32)
        names: list[str] = []
        for k, env in enumerate(envs):
            frame = env.render()
            size = _layout(*frame.shape[:2])[0]
            names.append(fit_text(family.task_names[k], frame.shape[1] - 8, size))
            writers[k].write(annotate_frame(frame, frame_text(k, names[k], 0, None, 0.0, False)))
        steps = np.zeros(n, dtype=np.int64)
        returns = np.zeros(n)
        success = np.zeros(n, dtype=bool)
        active = np.full(n, max_steps > 0)
        while active.any():
            actions, acting = behaviour.act(torch.from_numpy(split(obs))[None], steps[None], True)
            actions, acting = actions[0], acting[0]
            for k in np.flatnonzero(active):
                next_obs, reward, terminated, truncated, info = envs[k].step(actions[k])
                obs[k] = next_obs
                steps[k] += 1
                returns[k] += reward
                success[k] |= bool(info.get("success", False))
                policy = int(acting[k])
                lines = frame_text(
                    int(k), names[k], int(steps[k]), float(reward), float(returns[k]),
                    bool(success[k]), policy if show_policy or policy != k else None,
                )
                writers[k].write(annotate_frame(envs[k].render(), lines, success=success[k]))
                if terminated or truncated or steps[k] >= max_steps:
                    active[k] = False
                    writers[k].close()
    finally:
        for writer in writers:
            writer.close()
        for env in envs:
            env.close()
    return paths


def record_videos(
    family: MultiTaskEnv,
    behaviours: Mapping[str, Behaviour],
    split: ObsSplit,
    out_dir: str,
    epoch: int,
    *,
    seed: int,
    fps: int = 20,
    max_frames: int | None = None,
) -> list[str]:
    """Write `out_dir/videos/epoch{epoch:05d}_{key}_task{k}.mp4` for every behaviour and task.

    Each video is one deterministic episode of task k under `behaviours[key]` ("own": each
    task's own policy, "mixture": QMP's Q-switch), from `reset(seed=seed + k)` on fresh
    evaluation envs, first frame after the reset included, ending at termination or
    `family.horizon` steps; `max_frames` caps the frames a video holds (e.g. Walker's 1000-step
    episodes). Returns the paths written, behaviour by behaviour, task by task.
    """
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    names = [os.path.basename(video_path(out_dir, epoch, key, 0)) for key in behaviours]
    if len(set(names)) < len(names):
        raise ValueError(f"behaviour keys {list(behaviours)} give clashing video file names")
    max_steps = family.horizon if max_frames is None else min(family.horizon, max_frames - 1)
    os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
    paths: list[str] = []
    for key, behaviour in behaviours.items():
        paths += _record_behaviour(family, key, behaviour, split, out_dir, epoch, seed, fps,
                                   max_steps)
    return paths
