"""The socket filter the zygote's template installs (uniopd/verifiers/no_sockets.py): on this
kernel, in a forked child, every way to make a socket is refused and everything else still works."""

import os
import socket

import pytest

from uniopd.verifiers import no_sockets

ALLOW, EPERM = 0x7FFF0000, 0x00050001


def _in_child(check) -> int:
    """Run check() in a forked child (the filter is for good); its exit code: 0 when it held."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = check()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _refused(make) -> bool:
    try:
        made = make()
    except PermissionError:
        return True
    for s in made if isinstance(made, tuple) else (made,):
        s.close()
    return False


def test_no_socket_can_be_made_and_the_rest_works():
    if no_sockets.program(os.uname().machine) is None:
        pytest.skip(f"no socket filter for {os.uname().machine}")

    def check() -> int:
        assert no_sockets.install()
        makes = [
            lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
            lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),
            lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW),
            socket.socketpair,
        ]
        if not all(_refused(make) for make in makes):
            return 2
        read, write = os.pipe()  # what the frames travel on
        os.write(write, b"frame")
        return 0 if os.read(read, 5) == b"frame" else 3

    assert _in_child(check) == 0
    socket.socket().close()  # this process is untouched


def _run(code: list, arch: int, nr: int) -> int:
    """What the classic BPF program returns for a call `nr` of architecture `arch`."""
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == no_sockets._RET:
            return k
        if op == no_sockets._LD_W_ABS:
            acc = arch if k == no_sockets._ARCH_OFFSET else nr
            pc += 1
            continue
        taken = acc == k if op == no_sockets._JEQ else acc >= k
        pc += 1 + (jt if taken else jf)


def test_the_filter_refuses_what_it_lists_and_other_abis():
    """Walk each BPF program by hand: each listed call, a 32-bit call and an x32 call reach the
    EPERM return; ordinary calls (read, exit) reach the allowing one."""
    for machine, (arch, refused, other_abi) in no_sockets._FILTERS.items():
        code = no_sockets.program(machine)
        assert [_run(code, arch, nr) for nr in refused] == [EPERM] * len(refused), machine
        assert _run(code, arch, 0) == ALLOW and _run(code, arch, 60) == ALLOW, machine
        assert _run(code, 0x40000003, refused[0]) == EPERM, machine  # i386 on x86_64
        if other_abi:
            assert _run(code, arch, other_abi + refused[0]) == EPERM, machine
    assert no_sockets.program("vax") is None
