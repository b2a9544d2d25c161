"""Helpers the test files share (fixtures live in conftest.py; plain functions live here)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_lab(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the `lab` CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, cwd=cwd or ROOT,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )
