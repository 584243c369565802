"""Process-wide runtime settings (learning.runs.runtime), checked in fresh processes: they act on
the threads a process starts, which a shared pytest process has started already."""

from __future__ import annotations

import subprocess
import sys

import pytest

ROOT = __file__.rsplit("/tests/", 1)[0]

#: a parallel multiply of the smallest positive denormal by 1: it stays denormal unless every
#: intra-op thread treats denormals as zero
PROBE = """
import torch
{setup}
x = torch.ones(8_000_000, dtype=torch.int32).view(torch.float32)  # bit pattern 1: 1.4e-45
assert torch.get_num_threads() == 2
print(int((x * 1.0).count_nonzero()))
"""


def _nonzero_after(setup: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.parametrize("configured", [False, True])
def test_denormals_flushed_in_every_intra_op_thread(configured: bool) -> None:
    if configured:
        setup = "from learning.runs.runtime import configure_runtime\nconfigure_runtime(2)"
        assert _nonzero_after(setup) == 0
    else:  # the probe can fail: without the setting the denormals survive
        assert _nonzero_after("torch.set_num_threads(2)") == 8_000_000
