"""Fresh namespaces for one job, made inside the warm sandbox, and the privileges dropped after.

Standard library only: the zygote imports this file by path, inside bubblewrap.

The zygote (uniopd/verifiers/zygote.py) runs in one bubblewrap sandbox for the whole run, with
CAP_SYS_ADMIN and CAP_SETPCAP inside its own user namespace and nowhere else. Each job's relay
calls `enter_fresh` right after it is forked: new mount, PID, IPC, network and UTS namespaces, so
that nothing one program leaves behind (a file in /tmp or /dev/shm, a SysV segment or POSIX queue,
an abstract unix socket, a process) exists for any other, later or concurrent. (The relay cannot
be PID 1 itself: setns back to the template's PID namespace is refused under --disable-userns.)
In the new mount namespace it mounts

    /tmp, /dev/shm   a fresh, size-capped tmpfs each (the job's working directory is /tmp)
    /proc, /dev/pts  an empty read-only tmpfs: no process of the zygote's, the relay's or another
                     job's is visible, and no pty is shared between jobs

Everything else is read-only already: bubblewrap binds / read-only and remounts its own /dev and
the tmpfs it lays over hidden folders read-only (isolation.bwrap_prefix). The job's PID 1
(harness.py) then calls `drop_privileges`: every capability set emptied (effective, permitted,
inheritable, ambient, bounding) and no-new-privileges, before a line of the program is loaded.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
FRESH = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63  # PR_CAPBSET_DROP says EINVAL past the kernel's last one

# A tmpfs smaller than a page cannot hold a file; 0 would mean "no limit" to the kernel.
MIN_TMP_BYTES = 4096

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int, data: bytes | None):
    _check(_libc.mount(source, target, fstype, flags, data), f"mount {target.decode()}")


def enter_fresh(tmp_bytes: int, keep: list[str]) -> None:
    """This process into new namespaces; its next child is PID 1 of the new PID namespace.
    `keep`: folders under /tmp or /dev/shm the job needs (a checkout or venv there), bound back
    into the fresh ones, read-only as they were."""
    if tmp_bytes < MIN_TMP_BYTES:
        raise ValueError(f"tmp_bytes={tmp_bytes}: a job's /tmp needs at least {MIN_TMP_BYTES}")
    _check(_libc.unshare(FRESH), "unshare")
    # private: our mounts must not propagate back to the zygote's namespace
    _mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    held = [(path, os.open(path, os.O_PATH)) for path in keep]  # before the fresh tmpfs hides them
    fresh = b"size=%d,mode=1777" % tmp_bytes
    for target in (b"/tmp", b"/dev/shm"):
        _mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, fresh)
    for path, fd in held:
        os.makedirs(path, exist_ok=True)
        # a bind keeps the source mount's flags: read-only stays read-only
        _mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None)
        os.close(fd)
    sealed = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    for target in (b"/proc", b"/dev/pts"):
        _mount(b"tmpfs", target, b"tmpfs", sealed, b"size=4k,mode=555")
    os.chdir("/tmp")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_privileges() -> None:
    """No capability in any set, and none to be gained by exec (no-new-privileges)."""
    for cap in range(_LAST_CAP + 1):  # needs CAP_SETPCAP, so before the capset below
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: past the kernel's last capability
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), empty), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def capabilities() -> int:
    """This process's effective capabilities, as a bit mask (0 after `drop_privileges`)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    return data[0].effective | (data[1].effective << 32)
