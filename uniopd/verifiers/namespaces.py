"""Fresh namespaces for one job, made inside the warm sandbox, and the privileges dropped after.

Standard library only: the zygote imports this file by path, inside bubblewrap.

The zygote (uniopd/verifiers/zygote.py) runs in one bubblewrap sandbox for the whole run, with
CAP_SYS_ADMIN and CAP_SETPCAP inside its own user namespace and nowhere else. Its template, once,
before the first job (`enter_template_namespaces`), moves into a mount namespace of its own, where
every mount is private and /proc and /dev/pts are sealed, and into an empty network namespace (not
even loopback up) that every job shares: the template forbids sockets for good first
(no_sockets.py), so no job can reach anything in it. It then makes each job's relay with
`clone_fresh`: a fork whose child is born in new mount, PID, IPC and UTS namespaces (and a new
network one too where no socket filter is known), as PID 1 of its PID namespace, so that nothing
one program leaves behind (a file in /tmp or /dev/shm, a SysV segment or POSIX queue, a process)
exists for any other, later or concurrent. (A clone, not unshare: unshare(CLONE_NEWPID) moves only
the caller's next child, and the template cannot setns back to its own PID namespace under
--disable-userns, whose nested user namespace does not own it; a clone changes nothing of the
caller's.) The relay then calls `mount_fresh`:

    /tmp, /dev/shm   a fresh, size-capped tmpfs each (the job's working directory is /tmp)

on top of the copy of the template's mounts its mount namespace starts with:

    /proc, /dev/pts  an empty read-only tmpfs: no process of the zygote's, the relay's or another
                     job's is visible, and no pty is shared between jobs

Everything else is read-only already: bubblewrap binds / read-only and remounts its own /dev and
the tmpfs it lays over hidden folders read-only (isolation.bwrap_prefix). The relay then calls
`drop_privileges`: every capability set emptied (effective, permitted, inheritable, ambient,
bounding) and no-new-privileges, before it forks the program's process.
"""

from __future__ import annotations

import ctypes
import os
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
FRESH = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000

PR_CAPBSET_READ, PR_CAPBSET_DROP = 23, 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63  # PR_CAPBSET_DROP says EINVAL past the kernel's last one

# A tmpfs smaller than a page cannot hold a file; 0 would mean "no limit" to the kernel.
MIN_TMP_BYTES = 4096

_libc = ctypes.CDLL(None, use_errno=True)
# looked up once, at import in the template: a relay that looked it up would pay for it every job
_capset = _libc.capset
# The raw clone system call, with the GIL held (PyDLL) as os.fork holds it: its number, and whether
# the architecture takes the new stack before the flags (s390x).
_CLONE = {
    "x86_64": (56, False),
    "aarch64": (220, False),
    "riscv64": (220, False),
    "loongarch64": (220, False),
    "ppc64le": (120, False),
    "s390x": (120, True),
}
_python = ctypes.PyDLL(None, use_errno=True)
_python.syscall.restype = ctypes.c_long
_python.syscall.argtypes = [ctypes.c_long] * 6


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int, data: bytes | None):
    _check(_libc.mount(source, target, fstype, flags, data), f"mount {target.decode()}")


def clone_fresh(network: bool = True) -> int:
    """os.fork, but the child is born in new mount, PID, IPC, UTS and (with `network`) network
    namespaces, as PID 1 of its PID namespace: 0 in the child, the child's pid (in our namespace)
    here."""
    machine = os.uname().machine
    number, stack_first = _CLONE.get(machine, (None, False))
    if number is None:
        raise OSError(f"no clone system call known for {machine}")
    flags = (FRESH if network else FRESH & ~CLONE_NEWNET) | signal.SIGCHLD
    args = (0, flags) if stack_first else (flags, 0)
    # what os.fork does around fork(): the import lock, at-fork hooks, the thread state
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _python.syscall(number, *args, 0, 0, 0)  # no parent/child tid, no TLS
    errno = ctypes.get_errno()
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(errno, f"clone: {os.strerror(errno)}")
    return pid


def enter_template_namespaces(network: bool) -> int:
    """Once, in the zygote's template: a mount namespace of our own (owned by the user namespace
    we hold capabilities in, which the zygote's is not), every mount in it private so that no job's
    mount propagates anywhere, and /proc and /dev/pts sealed (an empty read-only tmpfs); each job's
    mount namespace starts as a copy of it. With `network`, an empty network namespace of our own
    too, which the jobs share (only where sockets are forbidden: no_sockets.py). Returns an fd of
    the /proc it sealed, to count processes by (`processes_now`); each relay closes it before its
    program starts."""
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    _check(_libc.unshare(CLONE_NEWNS | (CLONE_NEWNET if network else 0)), "unshare")
    _mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    sealed = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    for target in (b"/proc", b"/dev/pts"):
        _mount(b"tmpfs", target, b"tmpfs", sealed, b"size=4k,mode=555")
    return proc


def processes_now(proc: int) -> int:
    """Processes in the zygote's PID namespace (every one of the sandbox's uid), from its /proc
    (`proc`, the fd `enter_template_namespaces` returned), counted by the template before each
    clone."""
    return sum(name.isdigit() for name in os.listdir(proc))


def mount_fresh(tmp_bytes: int, keep: list[str]) -> None:
    """In a job's new mount namespace (`clone_fresh`, from the template's): its own /tmp and
    /dev/shm. `keep`: folders under /tmp or /dev/shm the job needs (a checkout or venv there),
    bound back into the fresh ones, read-only as they were."""
    if tmp_bytes < MIN_TMP_BYTES:
        raise ValueError(f"tmp_bytes={tmp_bytes}: a job's /tmp needs at least {MIN_TMP_BYTES}")
    held = [(path, os.open(path, os.O_PATH)) for path in keep]  # before the fresh tmpfs hides them
    fresh = b"size=%d,mode=1777" % tmp_bytes
    for target in (b"/tmp", b"/dev/shm"):
        _mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, fresh)
    for path, fd in held:
        os.makedirs(path, exist_ok=True)
        # bound from the working directory: the sealed /proc has no /proc/self/fd to name it by;
        # a bind keeps the source mount's flags, so read-only stays read-only
        os.fchdir(fd)
        _mount(b".", path.encode(), None, MS_BIND | MS_REC, None)
        os.close(fd)
    os.chdir("/tmp")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def bounding_set() -> list[int]:
    """The capabilities in this process's bounding set. Read once in the template: a child's set
    can only be smaller, so dropping these empties it (two, under our bwrap, not 64 calls a job)."""
    held = []
    for cap in range(_LAST_CAP + 1):
        answer = _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0)
        if answer < 0:
            break  # EINVAL: past the kernel's last capability
        if answer == 1:
            held.append(cap)
    return held


def drop_privileges(bounding: list[int]) -> None:
    """No capability in any set, and none to be gained by exec (no-new-privileges). `bounding`:
    what `bounding_set` found in an ancestor (or this process)."""
    for cap in bounding:  # needs CAP_SETPCAP, so before the capset below
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()
    _check(_capset(ctypes.byref(header), empty), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def capabilities() -> int:
    """This process's effective capabilities, as a bit mask (0 after `drop_privileges`)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    return data[0].effective | (data[1].effective << 32)
