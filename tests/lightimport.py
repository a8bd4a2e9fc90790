"""Run code in a fresh interpreter and check which heavy packages it imported (imported by the tests; `tests/` is on
pytest's pythonpath): commands and modules meant to start fast must not pull in torch."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence


def run_light(code: str, heavy: Sequence[str] = ("torch", "transformers")) -> subprocess.CompletedProcess:
    """Run ``code`` (Python source) offline in a new interpreter; assert it succeeded without importing any of
    ``heavy``; return the finished process (its ``stdout`` for further checks)."""
    check = f"\nimport sys as _sys\n_bad = [m for m in {tuple(heavy)!r} if m in _sys.modules]\nassert not _bad, _bad\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc
