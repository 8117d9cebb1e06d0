"""The dependency rules of ARCHITECTURE.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    # .typecheck/deskbot maps the source folders to the package names (see pyproject.toml).
    env = {**os.environ, "PYTHONPATH": str(ROOT / ".typecheck")}
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 kept, 0 broken" in result.stdout
