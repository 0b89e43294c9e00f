"""$UNIOPD_HOME (default ~/.cache/uniopd): the tiny world's models and the difficulty-estimate
cache live under it. Defined once, for every module that writes there."""

from __future__ import annotations

import os
from pathlib import Path


def uniopd_home() -> Path:
    return Path(os.environ.get("UNIOPD_HOME", Path.home() / ".cache" / "uniopd"))
