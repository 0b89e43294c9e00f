"""A throwaway local PostgreSQL cluster for the sweep tests: initdb in a temp dir, a free port on
127.0.0.1, trust auth, stopped and deleted afterwards. Uses the Debian server binaries (CI installs
them when missing); as root, the server runs as the `postgres` user, since it refuses root."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL server binaries not found ({name}); install Debian's postgresql"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_cluster():
    # its own folder under /tmp: pytest's temp dirs are private to the user, and the server may
    # have to run as `postgres`
    workdir = Path(tempfile.mkdtemp(prefix="uniopd-pg-"))
    data = workdir / "pgdata"
    data.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        os.chmod(workdir, 0o755)

    def run(*cmd):
        cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)] if as_root else list(cmd)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")

    port = _free_port()
    run(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    run(
        _bin("pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(workdir / "server.log"),
        "-w",
        "-o",
        f"'-p {port} -k {workdir} -h 127.0.0.1 -c fsync=off'",
        "start",
    )
    try:
        run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "sweeps")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/sweeps"
    finally:
        try:
            run(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
