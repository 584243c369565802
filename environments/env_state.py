"""Snapshots of live environments, for exact resume.

Pickling an env whole would copy its compiled MuJoCo model (tens of MB for the maze and kitchen)
and, for some envs, lose solver state. Instead the env's object graph is pickled with each
`mujoco.MjModel` replaced by a reference (the resumed run rebuilds the env, so its model is the
same, up to the few pose arrays envs edit, which are saved) and each `mujoco.MjData` by MuJoCo's
full integration state (`mj_getState`: positions,
velocities, activations, mocap, warm-start, time). Restoring unpickles the graph against a freshly
built env of the same family and writes the states back into its MjData. Numpy arrays that are
views into an MjData's buffers (envs cache `data.qpos` and the like) are saved as references to
the field they view, so they stay views of the restored MjData.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import mujoco
import numpy as np

_STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
#: model arrays that envs change at run time (Meta-World places objects by moving bodies)
_MUTABLE_MODEL_FIELDS = ("body_pos", "body_quat", "geom_pos", "geom_quat", "site_pos",
                         "site_quat", "eq_data", "geom_rgba")


def _mujoco_objects(root: Any) -> tuple[list[mujoco.MjModel], list[mujoco.MjData]]:
    """MjModel/MjData objects reachable from `root` through attributes, lists, tuples and dicts
    (in a deterministic order, so a rebuilt env lists its objects the same way)."""
    models: list[mujoco.MjModel] = []
    datas: list[mujoco.MjData] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, np.ndarray)):
            continue
        seen.add(id(obj))
        if isinstance(obj, mujoco.MjModel):
            models.append(obj)
        elif isinstance(obj, mujoco.MjData):
            datas.append(obj)
        elif isinstance(obj, dict):
            stack.extend(reversed(list(obj.values())))
        elif isinstance(obj, (list, tuple)):
            stack.extend(reversed(obj))
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(reversed(list(vars(obj).values())))
    return models, datas


def _field_ranges(datas: list[mujoco.MjData]) -> list[tuple[int, int, int, str]]:
    """(start address, end address, data index, field name) of every array field of the MjData."""
    ranges = []
    for k, data in enumerate(datas):
        for name in dir(data):
            if name.startswith("_"):
                continue
            try:
                value = getattr(data, name)
            except Exception:  # some attributes need arguments or are not arrays
                continue
            if isinstance(value, np.ndarray) and value.size:
                start = value.__array_interface__["data"][0]
                ranges.append((start, start + value.nbytes, k, name))
    return ranges


def _view_of(arr: np.ndarray, ranges: list[tuple[int, int, int, str]]) -> Any:
    """("view", data index, field, element offset, shape, strides) if `arr` views an MjData."""
    if arr.base is None or not arr.size:
        return None
    start = arr.__array_interface__["data"][0]
    for lo, hi, k, name in ranges:
        if lo <= start < hi:
            return ("view", k, name, start - lo, arr.shape, arr.strides, arr.dtype.str)
    return None


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, models: list[Any], datas: list[Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._models = {id(m): k for k, m in enumerate(models)}
        self._datas = {id(d): (k, d) for k, d in enumerate(datas)}
        self._ranges = _field_ranges(datas)

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return _view_of(obj, self._ranges)
        if id(obj) in self._models:
            fields = {name: getattr(obj, name).copy() for name in _MUTABLE_MODEL_FIELDS}
            return ("model", self._models[id(obj)], fields)
        if id(obj) in self._datas:
            k, data = self._datas[id(obj)]
            model = data.model if hasattr(data, "model") else None
            return ("data", k, _get_state(model, data))
        if type(obj).__name__ in ("Renderer", "MujocoRenderer", "OffScreenViewer", "GLContext"):
            return ("drop",)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, models: list[Any], datas: list[Any]) -> None:
        super().__init__(file)
        self._models, self._datas = models, datas

    def persistent_load(self, pid: Any) -> Any:
        if pid[0] == "model":
            model = self._models[pid[1]]
            for name, value in pid[2].items():
                getattr(model, name)[...] = value
            return model
        if pid[0] == "data":
            data = self._datas[pid[1]]
            _set_state(data.model, data, pid[2])
            return data
        if pid[0] == "view":
            _, k, name, offset, shape, strides, dtype = pid
            base = getattr(self._datas[k], name)
            return np.ndarray(shape, dtype=np.dtype(dtype), buffer=base, offset=offset,
                              strides=strides)
        return None


def _array_fields(data: mujoco.MjData) -> dict[str, np.ndarray]:
    fields = {}
    for name in dir(data):
        if name.startswith("_"):
            continue
        try:
            value = getattr(data, name)
        except Exception:  # some attributes are methods or need arguments
            continue
        if isinstance(value, np.ndarray) and value.size:
            fields[name] = value
    return fields


def _get_state(model: mujoco.MjModel, data: mujoco.MjData) -> Any:
    """The integration state and every derived array as they are (envs may read quantities
    that MuJoCo computed before the last integration, so recomputing them would not match)."""
    state = np.empty(mujoco.mj_stateSize(model, _STATE_SPEC))
    mujoco.mj_getState(model, data, state, _STATE_SPEC)
    return state, {name: value.copy() for name, value in _array_fields(data).items()}


def _set_state(model: mujoco.MjModel, data: mujoco.MjData, saved: Any) -> None:
    state, fields = saved
    mujoco.mj_setState(model, data, state, _STATE_SPEC)
    current = _array_fields(data)
    for name, value in fields.items():
        if name in current and current[name].shape == value.shape:
            current[name][...] = value


def save_env(env: Any) -> bytes:
    """A compact snapshot of a live env (see module docstring)."""
    models, datas = _mujoco_objects(env)
    buf = io.BytesIO()
    _Pickler(buf, models, datas).dump(env)
    return buf.getvalue()


def load_env(blob: bytes, fresh: Any) -> Any:
    """The env of `blob`, rebuilt on `fresh` (a newly made env of the same task and seed)."""
    models, datas = _mujoco_objects(fresh)
    return _Unpickler(io.BytesIO(blob), models, datas).load()
