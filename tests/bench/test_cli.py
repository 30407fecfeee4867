"""The benchmark commands docs/benchmarks.md gives start from a plain shell: no Django
settings in the environment (bench.run once imported a module that needs them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.live import ROOT


@pytest.mark.parametrize(
    "module",
    [
        "bench.run",
        "bench.loadgen",
        "bench.idle",
        "bench.capacity_sim",
        "bench.webhooks",
        "bench.write_cost",
        "bench.fanout_cost",
        "bench.seed",
    ],
)
def test_the_command_starts_without_django_settings(module):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage:" in done.stdout
