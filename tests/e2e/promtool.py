"""promtool, Debian's, unpacked alone by `make promtool` (`make test` does it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = os.environ.get("PROMTOOL", str(ROOT / ".tools" / "bin" / "promtool"))


def promtool(*args: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
    """promtool ARGS..., with `text` on its standard input."""
    assert Path(PROMTOOL).is_file(), f"{PROMTOOL} is missing: `make promtool` installs it"
    return subprocess.run([PROMTOOL, *args], input=text, capture_output=True, text=True, timeout=60)
