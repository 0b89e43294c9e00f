"""No sockets for any job: a seccomp filter, installed once in the zygote's template, that makes
every attempt to create a socket fail (EPERM) in the template, each relay and each program.

Standard library only: the zygote imports this file by path, inside bubblewrap.

Why. A network namespace is the dearest part of a job's fresh ones: about 0.5 ms of CPU to make in
the clone and 0.4 ms more of the kernel's own threads to tear down, an eighth of a job. All of a
network namespace's state is reached through sockets: abstract unix names and bound ports (a
socket passed over itself outlives its process until the kernel's collector runs), IPv6 flow
labels that linger up to 150 s after their socket, the counters a failed send bumps, netlink. A
process that cannot make a socket cannot touch any of it, so the jobs can share one empty network
namespace (the template's own, without even loopback up), later and at the same time, and keep
nothing in it. Programs that legitimately need a socket already failed (the audit hook refuses
them; docs/grading.md).

What the filter refuses, on the architecture it was written for (any other, such as 32-bit calls
from a 64-bit process, is refused outright, and so are x32 calls on x86_64):

    socket, socketpair   every way to make a socket by system call
    io_uring_setup       an io_uring can make sockets without calling socket (IORING_OP_SOCKET)

Accepting or receiving a socket needs one already; no process of a job holds any (the template's
channel to the zygote is closed in each relay before the job is read). Where no filter can be had
(`install` returns False: another machine, or a kernel without seccomp filters), each job gets a
fresh network namespace of its own, as before. tests/verifiers/hostile/test_shared_network.py
attacks what sharing would otherwise open.
"""

from __future__ import annotations

import ctypes
import os
from errno import EINVAL, EPERM

# Per architecture: its audit number, its system call numbers (socket, socketpair, io_uring_setup),
# and whether numbers from this bit up are another ABI's on the same architecture (x32).
_FILTERS = {
    "x86_64": (0xC000003E, (41, 53, 425), 0x40000000),
    "aarch64": (0xC00000B7, (198, 199, 425), None),
}

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_LD_W_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06  # classic BPF opcodes
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_ARCH_OFFSET, _NR_OFFSET = 4, 0  # in struct seccomp_data


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def program(machine: str) -> list[tuple[int, int, int, int]] | None:
    """The filter for `machine` as (code, jump if true, jump if false, k), or None if unknown.
    Every refusal jumps to the last instruction, which returns EPERM."""
    if machine not in _FILTERS:
        return None
    arch, refused, other_abi = _FILTERS[machine]
    checks = [(_JGE, other_abi)] if other_abi else []
    checks += [(_JEQ, nr) for nr in refused]
    # 0 arch, 1 is it ours, 2 the call's number, 3.. the checks, then allow, then refuse
    deny = 3 + len(checks) + 1
    code = [(_LD_W_ABS, 0, 0, _ARCH_OFFSET), (_JEQ, 0, deny - 2, arch), (_LD_W_ABS, 0, 0, 0)]
    for i, (op, k) in enumerate(checks):
        code.append((op, deny - (3 + i) - 1, 0, k))
    return code + [(_RET, 0, 0, _ALLOW), (_RET, 0, 0, _ERRNO | EPERM)]


def install() -> bool:
    """Refuse socket creation in this process and every process it starts from now on, for
    good (a seccomp filter cannot be removed). False, and no filter, on an unknown machine or a
    kernel built without seccomp filters (EINVAL)."""
    code = program(os.uname().machine)
    if code is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    instructions = (_Instruction * len(code))(*[_Instruction(*i) for i in code])
    fprog = _Program(len(code), instructions)
    for args in (
        (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),  # what the kernel asks before a filter
        (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0),
    ):
        if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            errno = ctypes.get_errno()
            if errno == EINVAL and args[0] == _PR_SET_SECCOMP:
                return False
            raise OSError(errno, f"the socket filter: {os.strerror(errno)}")
    return True
