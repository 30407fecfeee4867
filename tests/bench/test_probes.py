"""The benchmark's CPU probes: user and system time of a server process tree."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.probes import process_cpu, process_cpu_split


def test_the_split_adds_up_to_the_total_and_counts_live_children():
    # A child that burns user time and then kernel time (many small writes), until told
    # to stop: its CPU is the parent's too, as a server's workers are.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "end = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\n"
            "fd = os.open(os.devnull, os.O_WRONLY)\n"
            "end = time.process_time() + 0.6\n"
            "while time.process_time() < end: os.write(fd, b'x')\n"
            "print('done', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"done\n"
        user, system = process_cpu_split(os.getpid())
        child_user, child_system = process_cpu_split(child.pid)
        assert child_user >= 0.25
        assert child_system > 0.05
        assert user >= child_user and system >= child_system
        assert process_cpu(os.getpid()) == pytest.approx(user + system, abs=0.05)
    finally:
        child.kill()
        child.wait()
