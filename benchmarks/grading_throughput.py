"""Code grading throughput on the tiny world's code domain: programs graded per second, end to end
through the code verifier (sandbox start-up included, after one warm-up batch).

    python benchmarks/grading_throughput.py                      # 256 programs, 4 jobs at a time
    python benchmarks/grading_throughput.py --programs 512 --parallel 8 --rounds 5
    UNIOPD_SANDBOX_ISOLATION=off python benchmarks/grading_throughput.py   # Python layers only

Half the programs are the reference solutions of `builtin:code/test` and half are the same with
the last step left out (the world's early-stop habit), so about half pass; the measured pass
rate is printed beside the speed as a check that grading still works. Figures are read, never
asserted.

CPU milliseconds per program are printed too, for the caller (this process) and the sandbox (every
process of the zygote's tree, the ended ones included through their parents' counts): on a shared
machine they vary far less than programs/s does. Work the kernel does later in its own threads (a
namespace's teardown) is in neither: `kernel_threads` is the CPU of every kernel worker thread of
the machine during a round, per program, so on a busy machine it holds other work too. Compare two
versions by running them back to back:

    python benchmarks/grading_throughput.py --rounds 5                 # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/grading_throughput.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from uniopd.tasks.builtin import builtin_problems
from uniopd.tasks.pyfunc import early_stop_solution
from uniopd.verifiers import get_verifier
from uniopd.verifiers.sandbox import Limits


def batch(n: int):
    problems = builtin_problems("code", "test")
    chosen = [problems[i % len(problems)] for i in range(n)]
    responses = [p.solution if i % 2 == 0 else early_stop_solution(p) for i, p in enumerate(chosen)]
    return chosen, responses


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its descendants, living and reaped (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return 0.0  # it ended meanwhile; its parent counts it once reaped
    own = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime .. cstime
    return own + sum(tree_cpu_s(child) for child in children)


def kernel_threads_cpu_s() -> float:
    """CPU seconds of the machine's kernel worker threads (kworker/*), where the kernel does
    deferred work such as tearing a namespace down."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                name, fields = f.read().split(" (", 1)[1].rsplit(")", 1)
            if name.startswith("kworker"):
                total += sum(int(x) for x in fields.split()[11:13])  # utime, stime
        except (OSError, ValueError, IndexError):
            pass  # it ended meanwhile
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=256)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wall-s", type=float, default=3.0)
    args = parser.parse_args()

    problems, responses = batch(args.programs)
    verifier = get_verifier("code", limits=Limits(wall_s=args.wall_s), max_parallel=args.parallel)
    try:
        verifier.grade(problems[:8], responses[:8])  # starts the sandbox server
        rates, passed, caller_ms, sandbox_ms, kernel_ms = [], [], [], [], []
        for _ in range(args.rounds):
            server = verifier.sandbox._server.pid
            cpu, tree, kernel = time.process_time(), tree_cpu_s(server), kernel_threads_cpu_s()
            start = time.perf_counter()
            scores = verifier.grade(problems, responses)
            rates.append(len(problems) / (time.perf_counter() - start))
            caller_ms.append((time.process_time() - cpu) / len(problems) * 1e3)
            sandbox_ms.append((tree_cpu_s(server) - tree) / len(problems) * 1e3)
            kernel_ms.append((kernel_threads_cpu_s() - kernel) / len(problems) * 1e3)
            passed.append(sum(s == 1.0 for s in scores) / len(scores))
        isolation = getattr(verifier.sandbox, "isolation", lambda: "python layers")()
    finally:
        verifier.close()
    print(
        json.dumps(
            {
                "programs": args.programs,
                "parallel": args.parallel,
                "isolation": isolation,
                "programs_per_s": [round(r, 1) for r in rates],
                "median_programs_per_s": round(statistics.median(rates), 1),
                "cpu_ms_per_program": {
                    "caller": round(statistics.median(caller_ms), 2),
                    "sandbox": round(statistics.median(sandbox_ms), 2),
                    "kernel_threads": round(statistics.median(kernel_ms), 2),
                },
                "pass_rate": passed,
            }
        )
    )


if __name__ == "__main__":
    main()
