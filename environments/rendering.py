"""Offscreen frames of a MuJoCo model, with the GL context made only when a frame is asked for."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first `import mujoco`

import mujoco  # noqa: E402
import numpy as np  # noqa: E402


class OffscreenCamera:
    """Renders `camera` of `model` at (height, width); envs that never render never pay for a GL
    context. Pickling (env snapshots, deepcopy) drops the context; it is remade on demand."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int, camera: str | int) -> None:
        self.model = model
        self.size = (height, width)
        self.camera = camera
        self._renderer: mujoco.Renderer | None = None

    def frame(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=self.size[0], width=self.size[1])
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_renderer": None}


#: what headless rendering needs on Debian/Ubuntu
RENDER_PACKAGES = ("MUJOCO_GL=egl (the default here) needs libegl1 and libegl-mesa0 "
                   "(`apt-get install libegl1 libegl-mesa0`); MUJOCO_GL=osmesa needs libosmesa6")


def rendering_problem() -> str | None:
    """None if an offscreen frame can be rendered here, else what is missing (one line)."""
    try:
        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>")
        renderer = mujoco.Renderer(model, height=8, width=8)
        try:
            renderer.update_scene(mujoco.MjData(model))
            renderer.render()
        finally:
            renderer.close()
    except Exception as error:  # no GL library, no display device, ...
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return (f"offscreen rendering with MUJOCO_GL={os.environ.get('MUJOCO_GL')} failed "
                f"({first}); {RENDER_PACKAGES}")
    return None
