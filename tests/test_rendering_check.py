"""Videos need offscreen rendering: without it a run with --vis_freq is refused before anything
is written, with the packages to install named."""

from __future__ import annotations

from pathlib import Path

import pytest

import environments.rendering as rendering
import run


def test_videos_without_rendering_are_refused_in_one_line(
        tiny_flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gl(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot initialize a EGL device display")

    monkeypatch.setattr(rendering.mujoco, "Renderer", no_gl)
    log_dir = tmp_path / "run"
    assert run.main(["qmp_dnc", *tiny_flags, "--vis_freq", "1", "--log_dir", str(log_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "libegl1" in err and "EGL device" in err, err
    assert not log_dir.exists()


def test_rendering_works_here() -> None:
    """CI's machine has the EGL libraries: the check passes and videos can be tested."""
    assert rendering.rendering_problem() is None
