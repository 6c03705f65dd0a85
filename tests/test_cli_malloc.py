"""The CLI re-executes itself once with glibc's allocator keeping large blocks for reuse."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from nerfvae.cli.malloc import TUNABLES, tuned_environment


def test_tuned_environment_adds_the_tunables_only_when_nobody_set_them():
    assert tuned_environment({"PATH": "/bin"}, "glibc") == {
        "PATH": "/bin",
        "GLIBC_TUNABLES": TUNABLES,
    }
    assert tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "glibc") is None
    assert tuned_environment({}, "") is None  # musl or unknown libc: nothing to tune
    assert tuned_environment({"NERFVAE_NO_MALLOC_TUNING": "1"}, "glibc") is None
    assert tuned_environment({"NERFVAE_NO_MALLOC_TUNING": "0"}, "glibc") is not None


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)
def test_reexec_runs_the_same_command_once_with_the_tunables():
    code = (
        "import os, sys; from nerfvae.cli.malloc import reexec_with_tuned_malloc; "
        "print('start', flush=True); reexec_with_tuned_malloc(); "
        "print(os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])"
    )
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    result = subprocess.run(
        [sys.executable, "-c", code, "an-argument"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == ["start", "start", f"{TUNABLES} ['an-argument']"]
