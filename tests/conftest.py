"""Shared test settings and fixtures.

Hypothesis explores new random cases on developers' machines; CI replays a fixed sequence so a
landing never depends on luck (a case found locally becomes an @example regression).
"""
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Callable[[], None]]]:
    """``lock(path)`` makes a file or folder read-only for this process and returns its undo (also run at
    teardown). ``chattr +i`` where it works, so the refusal is real even as root (for whom ``chmod``
    stops nothing); else ``chmod``; as root without ``chattr`` the test skips, saying why."""
    undos: list[Callable[[], None]] = []

    def lock(path: Path) -> Callable[[], None]:
        path = Path(path)
        if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)],
                                                     capture_output=True).returncode == 0:
            def undo() -> None:
                subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=True)
        elif IS_ROOT:
            pytest.skip("running as root without a working chattr: nothing makes a file read-only for root")
        else:
            mode = path.stat().st_mode
            path.chmod(0o555 if path.is_dir() else 0o444)

            def undo() -> None:
                path.chmod(mode)
        done = []

        def once() -> None:
            if not done:
                done.append(True)
                undo()
        undos.append(once)
        return once

    yield lock
    for undo in reversed(undos):
        undo()
